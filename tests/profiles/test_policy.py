"""Profile selection (``NAME[@VERSION]``) and the rows themselves."""

from __future__ import annotations

import pytest

from apicmap.errors import InputError
from apicmap.profiles.policy import (
    PROFILES,
    QEMU_7_2,
    QEMU_9_0,
    KvmBasedPolicy,
    PeerPolicy,
    every_profile,
    profile_for,
    profile_names,
)


def test_bare_name_is_the_newest_row() -> None:
    assert profile_for("qemu") is QEMU_9_0
    assert profile_for("QEMU@latest") is QEMU_9_0


@pytest.mark.parametrize(("text", "row"), [("qemu@7.2", QEMU_7_2), ("qemu@8.2.1", QEMU_7_2), ("qemu@6.0", QEMU_7_2),
                                           ("qemu@9.0", QEMU_9_0), ("qemu@10.1", QEMU_9_0)])
def test_version_picks_the_row_whose_range_holds_it(text: str, row: PeerPolicy) -> None:
    assert profile_for(text) is row


def test_kvm_version_is_a_kernel_release() -> None:
    policy = profile_for("kvm@6.2")
    assert isinstance(policy, KvmBasedPolicy) and policy.kernel == "6.2" and policy.key == "kvm@6.2"


@pytest.mark.parametrize(("text", "problem"), [
    ("vmware", "unknown profile 'vmware'"),
    ("qemu@x.y", "cannot read version 'x.y' of qemu"),
    ("xen@4.10", "xen 4.10 is not modelled"),
    ("hyperv@2019", "hyperv 2019 is not modelled"),
])
def test_bad_names_and_versions_are_one_line_with_the_allowed_names(text: str, problem: str) -> None:
    with pytest.raises(InputError) as err:
        profile_for(text)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"--profile: {problem} (allowed: ")
    assert "qemu[@7.2|9.0]" in message and "kvm[@KERNEL]" in message and "cloud-hypervisor" in message


def test_kvm_with_an_unmodelled_kernel_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not modelled"):
        profile_for("kvm@3.10")


def test_all_lists_every_row_and_selection_checks_names() -> None:
    names = every_profile()
    assert names[0] == "kvm" and "qemu@7.2" in names and "qemu" in names and len(names) == 14
    assert profile_names("all") == names and profile_names(None) == names
    assert profile_names("kvm, xen") == ["kvm", "xen"]
    with pytest.raises(InputError, match="--profiles: unknown profile 'bogus'"):
        profile_names("kvm,bogus")


def test_every_row_names_its_sources() -> None:
    for rows in PROFILES.values():
        for row in rows:
            assert row.sources and all(s.files and s.functions and s.commit for s in row.sources)
            assert row.summary
