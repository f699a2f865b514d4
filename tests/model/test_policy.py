"""The release table: its rows, its boundaries, its backports, and that every field is read."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from pathlib import Path

import pytest

from apicmap import MsiInjection, Vcpu, VmState
from apicmap.domain.outcome import EffectKind
from apicmap.errors import InputError
from apicmap.files.scenario import load_scenario
from apicmap.files.sequence import apply, load_sequence
from apicmap.model.apic_map import build_map
from apicmap.model.attribution import model_outcome, outcome_key
from apicmap.model.lifecycle import ModelLifecycle
from apicmap.model.policy import (
    BEHAVIOUR_FIELDS,
    VARIANTS,
    KernelPolicy,
    X2apicSetLapic,
    differing_fields,
    parse_release,
    policy_for_release,
    with_field,
)
from tests.helpers import SMI, msi

ROOT = Path(__file__).resolve().parents[2]
HISTORY = ROOT / "corpus" / "history"


def row(key: str) -> KernelPolicy:
    return next(p for p in VARIANTS if p.key == key)


# --- the table -------------------------------------------------------------------------------------

def test_rows_are_the_audited_ranges_and_contiguous() -> None:
    assert [p.releases for p in VARIANTS] == [
        "4.9–4.10", "4.11–4.19", "4.20–5.2", "5.3–5.18", "5.19–6.1", "6.2", "6.3", "6.4–6.5", "6.6–6.10",
        "6.11", "6.12–6.15", "6.16–mainline"]
    for before, after in itertools.pairwise(VARIANTS):
        assert before.last is not None
        assert after.first in ((before.last[0], before.last[1] + 1), (before.last[0] + 1, 0)), (before, after)


def test_each_boundary_cites_the_commits_of_exactly_the_fields_that_change() -> None:
    for before, after in itertools.pairwise(VARIANTS):
        cited = {name for commit in after.commits for name in commit.fields}
        assert cited == set(differing_fields(before, after)), after.key
        assert after.commits, f"{after.key}: a boundary without a commit"


# --- every behaviour field is read: flipping it alone changes some outcome ----------------------------

def _scenario(name: str) -> Callable[[KernelPolicy], Hashable]:
    scenario = load_scenario(HISTORY / name)
    return lambda p: tuple(outcome_key(model_outcome(scenario.vm, c.injection, p)) for c in scenario.interrupts)


def _sequence(name: str) -> Callable[[KernelPolicy], Hashable]:
    steps, _ = load_sequence(HISTORY / name)

    def run(policy: KernelPolicy) -> Hashable:
        model = ModelLifecycle(policy)
        return tuple(apply(s, model) for s in steps)
    return run


def _smi(vm: VmState) -> Callable[[KernelPolicy], Hashable]:
    return lambda p: outcome_key(model_outcome(vm, msi(0, 0, mode=SMI), p))


def _inhibits(vm: VmState) -> Callable[[KernelPolicy], Hashable]:
    return lambda p: build_map(vm, p).inhibits


ALIASED = VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1)))
PROBES: dict[str, tuple[str, str, Callable[[KernelPolicy], Hashable]]] = {
    # field: (base row, donor row, what to observe)
    "phys_map": ("K6.2", "K6.3", _scenario("09-aliased-xapic-ids.toml")),
    "mda": ("K4.9", "K4.11", _scenario("02-mda-sender-format.toml")),
    # Nobody has a logical ID: legacy lookups fail (slow path, -1); the enum's SW_DISABLED drops (0).
    "logical_map": ("K6.2", "K6.3", lambda p: outcome_key(model_outcome(VmState.simple(2), msi(1, logical=True), p))),
    "logical_map_multi_bit_disables": ("K6.3", "K6.2", _scenario("11-multi-bit-logical-id.toml")),
    "logical_map_alias_disables": ("K6.3", "K6.2", _scenario("10-aliased-logical.toml")),
    "x2apic_logical_in_phys_map": ("K6.2", "K6.3", _scenario("12-planted-ldr-steals-phys-slot.toml")),
    "logical_map_skips_sw_disabled": ("K4.20", "K5.3", _scenario("06-sw-disabled-logical.toml")),
    "fast_path_no_target_result": ("K4.11", "K4.20", _scenario("05-fast-path-no-target.toml")),
    "smi_check": ("K6.12", "K6.16", _smi(VmState((Vcpu(0),), smm=False))),
    "icr_reserved_bits_fault": ("K6.11", "K6.12", _scenario("22-icr-reserved-bits.toml")),
    "self_ipi_reserved_bits_fault": ("K6.2", "K6.3", _scenario("14-self-ipi-reserved-bits.toml")),
    "x2apic_msr_upper_half_fault": ("K6.2", "K6.3", _scenario("15-x2apic-msr-upper-half.toml")),
    "inhibits_aliasing": ("K6.3", "K6.2", _inhibits(ALIASED)),
    "apic_id_modified_inhibit": ("K6.3", "K6.2", _inhibits(VmState((Vcpu(0), Vcpu(256))))),
    "x2apic_set_lapic": ("K6.6", "K6.11", _scenario("21-x2apic-id-readonly.toml")),
    "x2apic_disable_resets_id": ("K6.2", "K6.3", _sequence("13-stale-map-after-x2apic-disable.toml")),
}


def test_every_behaviour_field_has_a_probe() -> None:
    assert set(PROBES) == set(BEHAVIOUR_FIELDS)


@pytest.mark.parametrize("name", sorted(PROBES))
def test_every_field_is_read(name: str) -> None:
    """Two policies that differ only in this field give different outcomes."""
    base_key, donor_key, observe = PROBES[name]
    base, donor = row(base_key), row(donor_key)
    flipped = with_field(base, name, donor)
    assert differing_fields(base, flipped) == (name,)
    assert observe(base) != observe(flipped)


# --- releases: x.y.z, backports, distribution names ----------------------------------------------------

def test_releases_are_x_y_z() -> None:
    assert parse_release("6.3") == (6, 3, 0)
    assert parse_release("6.3.8") == (6, 3, 8)
    assert parse_release("v6.12.107+deb12-amd64") == (6, 12, 107)
    assert policy_for_release("6.3").key == "K6.3"
    assert policy_for_release("6.3.8").key == "K6.3+4364b287982b"  # the backport is recorded (race: no field)
    assert [b.commit.hash for b in policy_for_release("6.3.8").backports] == ["4364b287982b"]


def test_6_6_78_has_the_readonly_x2apic_id_backport() -> None:
    before, after = policy_for_release("6.6.77"), policy_for_release("6.6.78")
    assert before.x2apic_set_lapic is X2apicSetLapic.PLANTED_ID_DERIVED_LDR
    assert after.x2apic_set_lapic is X2apicSetLapic.READONLY
    observe = _scenario("21-x2apic-id-readonly.toml")
    assert observe(before) != observe(after) and observe(after) == observe(row("K6.11"))


def test_6_1_with_backports_and_debian_names() -> None:
    plain, debian = policy_for_release("6.1"), policy_for_release("6.1.170")
    assert not plain.icr_reserved_bits_fault and not plain.self_ipi_reserved_bits_fault
    assert debian.icr_reserved_bits_fault and debian.self_ipi_reserved_bits_fault
    assert differing_fields(plain, debian) == ("icr_reserved_bits_fault", "self_ipi_reserved_bits_fault")
    proc_version = ("Linux version 6.1.0-47-amd64 (debian-kernel@lists.debian.org) (gcc-12) "
                    "#1 SMP PREEMPT_DYNAMIC Debian 6.1.170-1 (2026-01-01)")
    assert parse_release(proc_version) == (6, 1, 170)
    assert policy_for_release("6.1.0-47-amd64") == debian
    with pytest.raises(InputError, match="Debian ABI"):
        parse_release("6.1.0-12-amd64")
    observe = _scenario("22-icr-reserved-bits.toml")
    assert observe(plain) != observe(debian)


def test_b14c876b994f_in_late_4_19_stable() -> None:
    assert not policy_for_release("4.19").logical_map_skips_sw_disabled
    assert policy_for_release("4.19.70").logical_map_skips_sw_disabled


def test_before_4_9_is_refused_in_one_line() -> None:
    with pytest.raises(InputError, match="not modelled"):
        policy_for_release("4.8")


# --- rules per release ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kernel", "result"), [("4.19", -1), ("4.19.70", -1), ("4.20", 0), ("5.2", 0)])
def test_fast_path_no_target(kernel: str, result: int) -> None:
    out = model_outcome(VmState.simple(2), msi(5), policy_for_release(kernel))
    assert out.receivers == () and out.result == result


def test_4_10_last_claimant_wins_and_sender_format_mda() -> None:
    assert model_outcome(ALIASED, msi(1), policy_for_release("4.10")).receivers == (2,)
    assert model_outcome(ALIASED, msi(1), policy_for_release("4.11")).receivers == (1,)
    observe = _scenario("02-mda-sender-format.toml")
    assert observe(policy_for_release("4.10")) != observe(policy_for_release("4.11"))


@pytest.mark.parametrize(("kernel", "smm", "kvm_smm", "accepted"), [
    ("6.1", False, False, True), ("6.1", True, True, True), ("6.1", False, True, True),
    ("6.12", False, True, True), ("6.12", True, True, True), ("6.12", False, False, False),
    ("6.16", False, True, False), ("6.16", True, True, True), ("6.16", True, False, False),
])
def test_smi(kernel: str, smm: bool, kvm_smm: bool, accepted: bool) -> None:
    vm = VmState((Vcpu(0),), smm=smm, kvm_smm=kvm_smm)
    out = model_outcome(vm, MsiInjection(0xFEE00000 | 0xFF << 12, 0, SMI << 8), policy_for_release(kernel))
    assert (out.receivers == (0,)) is accepted
    assert all(e.kind is EffectKind.SMI for e in out.effects)


def test_planted_x2apic_id_before_6_11() -> None:
    vm = load_scenario(HISTORY / "21-x2apic-id-readonly.toml").vm
    injection = load_scenario(HISTORY / "21-x2apic-id-readonly.toml").interrupts[0].injection
    assert model_outcome(vm, injection, policy_for_release("6.10")).receivers == (1,)
    assert model_outcome(vm, injection, policy_for_release("6.11")).receivers == ()


def test_page_round_trip_plants_vcpu_id_and_0xff() -> None:
    scenario = load_scenario(HISTORY / "12-round-trip-steals-phys-slot.toml")
    to_0, to_ff = (c.injection for c in scenario.interrupts)
    assert model_outcome(scenario.vm, to_0, policy_for_release("6.1")).receivers == (256,)
    assert model_outcome(scenario.vm, to_ff, policy_for_release("6.1")).receivers == (511,)
    for kernel in ("4.19", "6.3", "6.12"):
        assert model_outcome(scenario.vm, to_0, policy_for_release(kernel)).receivers == (0,)
        assert model_outcome(scenario.vm, to_ff, policy_for_release(kernel)).receivers == (255,)


@pytest.mark.parametrize(("kernel", "result"), [("6.1", 1), ("6.2", 1), ("6.3", 0), ("6.18", 0)])
def test_stale_map_after_host_forced_x2apic_to_xapic(kernel: str, result: int) -> None:
    assert _sequence("13-stale-map-after-x2apic-disable.toml")(policy_for_release(kernel))[-1] == result


def test_decode_rules_have_one_constructor() -> None:
    src = ROOT / "src" / "apicmap"
    users = [p for p in src.rglob("*.py") if "KvmDecodeRules(" in p.read_text()]
    assert users == [src / "decode" / "kvm.py"]
