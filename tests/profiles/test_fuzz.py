"""Fuzzing one profile against another: disagreements grouped by the policy field that differs."""

from __future__ import annotations

from pathlib import Path

import pytest

from apicmap.errors import InputError
from apicmap.fuzz.profiles import differing_fields, fuzz_profiles
from apicmap.profiles.policy import BOCHS, QEMU_7_2, QEMU_9_0, XEN


def test_differing_fields() -> None:
    assert "physical_aliasing" in differing_fields(QEMU_7_2, QEMU_9_0)
    assert "x2apic_id" in differing_fields(XEN, BOCHS)
    assert differing_fields(QEMU_9_0, QEMU_9_0) == []


def test_campaign_finds_qemu_aliasing_change_with_a_shrunk_reproducer(tmp_path: Path) -> None:
    campaign = fuzz_profiles("qemu@7.2", "qemu", seconds=20, seed=3, out=str(tmp_path))
    rules = {f.rule for f in campaign.findings}
    assert "physical_aliasing" in rules
    finding = next(f for f in campaign.findings if f.rule == "physical_aliasing")
    assert len(finding.vm.vcpus) <= 3  # shrunk
    assert finding.reproducer is not None and "profile qemu@7.2 vs profile qemu" in Path(
        finding.reproducer).read_text()


def test_identical_profiles_never_disagree() -> None:
    assert fuzz_profiles("xen", "xen", seconds=2, seed=0).findings == []


def test_bad_profile_name() -> None:
    with pytest.raises(InputError, match="--profiles: unknown profile"):
        fuzz_profiles("kvm", "nope", seconds=1)


def test_cli_entry_groups_by_rule(capsys: pytest.CaptureFixture[str]) -> None:
    from apicmap.app.fuzz_profiles import run_fuzz_profiles

    assert run_fuzz_profiles("xen,xen", None, 1.0, 0, None, False) == 0
    assert "xen vs xen:" in capsys.readouterr().out
    assert run_fuzz_profiles("bochs,qemu", None, 8.0, 1, None, True) == 1
    import json

    data = json.loads(capsys.readouterr().out)
    assert data["profiles"] == ["bochs", "qemu"] and data["by_rule"]
    with pytest.raises(InputError, match="exactly two profiles"):
        run_fuzz_profiles("kvm", None, 1.0, 0, None, False)
