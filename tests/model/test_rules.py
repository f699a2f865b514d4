"""One test per KVM routing rule of the model engine, each citing docs/routing.md."""

from __future__ import annotations

import pytest

from apicmap import ApicMode, SelfIpiInjection, Vcpu, VmState, make_engine
from apicmap.domain.outcome import EffectKind
from apicmap.model.apic_map import LogicalMode, build_map
from apicmap.model.policy import policy_for_release
from tests.helpers import EXTINT, INIT, LOWEST, NMI, SIPI, SMI, msi, x2icr

NEWEST = "6.18"


def deliver(vm: VmState, injection, kernel: str = NEWEST):  # type: ignore[no-untyped-def]
    return make_engine("model", kernel).prepare(vm).deliver(injection)


def aliased(**flags: bool) -> VmState:
    return VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1)), **flags)


# --- docs/routing.md#current-algorithm-v63-and-later / docs/routing.md#legacy-algorithm-v411-to-v62 /
# docs/routing.md#per-release-outcomes-for-sample-configurations A: physical aliasing, the patch's case
# ---------------------------------------

@pytest.mark.parametrize("kernel", ["6.3", "6.6", "6.11", "6.18"])
def test_alias_without_32bit_ids_disables_map_and_reaches_all(kernel: str) -> None:
    """docs/routing.md#current-algorithm-v63-and-later: without x2apic_format any physical alias makes the map NULL."""
    out = deliver(aliased(), msi(1), kernel)
    assert out.receivers == (1, 2) and out.result == 2
    amap = build_map(aliased(), policy_for_release(kernel))
    assert amap.is_null and "aliased" in (amap.null_reason or "")


@pytest.mark.parametrize("kernel", ["6.3", "6.18"])
def test_alias_with_32bit_ids_first_created_wins(kernel: str) -> None:
    """docs/routing.md#current-algorithm-v63-and-later / docs/routing.md#kvm-x2apic_api: with x2apic_format the first
    claimant keeps the slot (erratum)."""
    out = deliver(aliased(use_32bit_ids=True), msi(1), kernel)
    assert out.receivers == (1,) and out.result == 1


@pytest.mark.parametrize("flags", [{}, {"use_32bit_ids": True}])
@pytest.mark.parametrize("kernel", ["4.19", "5.10", "6.2"])
def test_alias_before_series_first_wins_either_way(kernel: str, flags: dict[str, bool]) -> None:
    """docs/routing.md#legacy-algorithm-v411-to-v62: pre-6.3 the earliest-created xAPIC claimant wins."""
    assert deliver(aliased(**flags), msi(1), kernel).receivers == (1,)


def test_first_wins_is_creation_order_not_vcpu_id() -> None:
    """docs/routing.md#legacy-algorithm-v411-to-v62 last bullet: 'lowest vCPU ID' in the errata is really creation
    order."""
    vm = VmState((Vcpu(0), Vcpu(2, xapic_id=1), Vcpu(1)), use_32bit_ids=True)
    assert deliver(vm, msi(1)).receivers == (2,)


def test_alias_inhibits() -> None:
    """docs/routing.md#current-algorithm-v63-and-later step 3: NULL map raises PHYSICAL_ID_ALIASED and
    LOGICAL_ID_ALIASED."""
    amap = build_map(aliased(), policy_for_release("6.18"))
    assert {"PHYSICAL_ID_ALIASED", "LOGICAL_ID_ALIASED", "APIC_ID_MODIFIED"} == amap.inhibits
    assert build_map(aliased(), policy_for_release("6.2")).inhibits == {"APIC_ID_MODIFIED"}
    assert build_map(aliased(), policy_for_release("5.10")).inhibits == frozenset()


def test_x2apic_vcpu_displaces_xapic_claimant_pre_series() -> None:
    """docs/routing.md#legacy-algorithm-v411-to-v62: an x2APIC vCPU with vcpu_id N displaces an xAPIC claimant of slot
    N."""
    vm = VmState((Vcpu(0, xapic_id=5), Vcpu(5, mode=ApicMode.X2APIC)))
    assert deliver(vm, msi(5), "6.2").receivers == (5,)
    assert deliver(vm, msi(5), "6.18").receivers == (0, 5)  # alias -> NULL -> slow path


# --- docs/routing.md#per-release-outcomes-for-sample-configurations B/C/D: vCPUs above 255 and the hotplug hack
# ------------------------------------------------

def test_config_b_truncated_xapic_id_aliases() -> None:
    vm = VmState((Vcpu(0), Vcpu(256)))
    assert deliver(vm, msi(0), "6.2").receivers == (0,)
    assert deliver(vm, msi(0)).receivers == (0, 256)
    assert deliver(VmState(vm.vcpus, use_32bit_ids=True), msi(0)).receivers == (0,)


def test_config_c_slow_path_hotplug_hack_is_ungated() -> None:
    """docs/routing.md#kvm_apic_match_dest: the slow path compares MDA > 0xFF with vcpu_id in every release."""
    vm = VmState((Vcpu(0), Vcpu(1, mode=ApicMode.X2APIC), Vcpu(256)))
    assert deliver(vm, x2icr(1, 0x100)).receivers == (256,)  # map NULL (alias 0/256) -> slow


def test_config_d_no_hotplug_hack_in_map_without_32bit_ids() -> None:
    """docs/routing.md#per-release-outcomes-for-sample-configurations D: without aliasing the fast path has no hack on
    6.3+."""
    vm = VmState((Vcpu(1, mode=ApicMode.X2APIC), Vcpu(256)))
    assert deliver(vm, x2icr(1, 0x100)).receivers == ()
    assert deliver(vm, x2icr(1, 0x100), "6.2").receivers == (256,)
    assert deliver(VmState(vm.vcpus, use_32bit_ids=True), x2icr(1, 0x100)).receivers == (256,)


def test_dest_above_max_apic_id_returns_zero() -> None:
    """docs/routing.md#kvm-fast-path step 5: dest > max_apic_id -> no target, r = 0."""
    vm = VmState.simple(2, use_32bit_ids=True)
    out = deliver(vm, msi(0x1000))
    assert out.receivers == () and out.result == 0


def test_fast_path_no_target_result_by_release() -> None:
    """docs/routing.md#commits '(4.19→5.15)': the fast path returned -1 before r = 0 was set up front."""
    vm = VmState.simple(2)
    assert deliver(vm, msi(7)).result == 0
    assert deliver(vm, msi(7), "4.19").result == -1


# --- docs/routing.md#the-delivery-loop / docs/routing.md#kvm-msi-and-ioapic-decoding: slow path return value
# ---------------------------------------------------------------

def test_slow_path_no_match_is_eperm() -> None:
    """docs/routing.md#kvm-msi-and-ioapic-decoding: -1 (EPERM) when the slow path matches nobody."""
    out = deliver(aliased(), msi(9))
    assert out.receivers == () and out.result == -1


def test_32bit_ids_address_hi_low_byte_is_einval() -> None:
    """docs/routing.md#kvm-msi-and-ioapic-decoding: with USE_32BIT_IDS, address_hi[7:0] != 0 -> EINVAL."""
    out = deliver(aliased(use_32bit_ids=True), msi(1, hi=0x1))
    assert out.rejected and "EINVAL" in out.rejected and out.result is None
    assert deliver(aliased(), msi(1, hi=0x1)).receivers == (1, 2)  # ignored without the flag


# --- docs/routing.md#current-algorithm-v63-and-later logical map
# (docs/routing.md#per-release-outcomes-for-sample-configurations E–J)
# -------------------------------------------------------------------

def flat(*ldrs: int, sw: tuple[bool, ...] | None = None) -> VmState:
    sw = sw or (True,) * len(ldrs)
    return VmState(tuple(Vcpu(i, ldr=ldr << 24, sw_enabled=s) for i, (ldr, s) in enumerate(zip(ldrs, sw, strict=True))))


def test_config_e_multibit_ldr() -> None:
    vm = flat(0, 0x02, 0x06)
    assert deliver(vm, msi(0x02, logical=True), "6.2").receivers == (2,)  # last wins at bit 1
    assert deliver(vm, msi(0x02, logical=True)).receivers == (1, 2)
    assert build_map(vm, policy_for_release("6.18")).logical_mode is LogicalMode.MAP_DISABLED


def test_config_f_multibit_ldr_upper_bit() -> None:
    vm = flat(0, 0x02, 0x06)
    assert deliver(vm, msi(0x04, logical=True), "6.2").receivers == ()
    assert deliver(vm, msi(0x04, logical=True)).receivers == (2,)


def test_config_g_duplicate_logical_bit() -> None:
    vm = flat(0x01, 0x01)
    assert deliver(vm, msi(0x01, logical=True), "6.2").receivers == (1,)
    assert deliver(vm, msi(0x01, logical=True)).receivers == (0, 1)


def test_config_h_all_sw_disabled_logical_nmi() -> None:
    """docs/routing.md#current-algorithm-v63-and-later: SW_DISABLED logical mode drops logical interrupts (6.3+)."""
    vm = flat(0x01, 0x02, sw=(False, False))
    assert deliver(vm, msi(0x01, logical=True, mode=NMI)).receivers == ()
    assert deliver(vm, msi(0x01, logical=True, mode=NMI), "4.19").receivers == (0,)  # in the map
    assert deliver(vm, msi(0x01, logical=True, mode=NMI), "5.10").receivers == (0,)  # slow path


def test_config_i_sw_disabled_left_out_since_5_3() -> None:
    vm = flat(0x01, 0x02, sw=(False, True))
    assert deliver(vm, msi(0x01, logical=True, mode=NMI), "4.19").receivers == (0,)
    assert deliver(vm, msi(0x01, logical=True, mode=NMI), "5.10").receivers == ()
    assert deliver(vm, msi(0x01, logical=True, mode=NMI)).receivers == ()


def test_config_j_mixed_flat_and_cluster() -> None:
    """docs/routing.md#per-release-outcomes-for-sample-configurations J and docs/routing.md#kvm_apic_match_dest: a flat
    APIC matches a cluster MDA whose bits overlap."""
    vm = VmState((Vcpu(0, ldr=0x01 << 24), Vcpu(1, ldr=0x11 << 24, dfr=0x0FFFFFFF)))
    for kernel in ("4.19", "6.2", "6.18"):
        assert deliver(vm, msi(0x11, logical=True), kernel).receivers == (0, 1)


def test_unknown_dfr_is_cluster_in_map_but_matches_nothing_in_slow_path() -> None:
    """docs/routing.md#ldr-and-dfr: other DFR values are CLUSTER to the map, nothing to the slow path."""
    vm = VmState((Vcpu(0, ldr=0x11 << 24, dfr=0x5FFFFFFF), Vcpu(1, ldr=0x12 << 24, dfr=0x0FFFFFFF)))
    assert build_map(vm, policy_for_release("6.18")).logical_mode is LogicalMode.XAPIC_CLUSTER
    assert deliver(vm, msi(0x11, logical=True)).receivers == (0,)  # fast path via the map
    vm_alias = VmState((*vm.vcpus, Vcpu(2, xapic_id=0)))
    assert deliver(vm_alias, msi(0x11, logical=True)).receivers == ()  # map NULL -> slow path


def test_ldr_zero_does_not_set_logical_mode() -> None:
    """docs/routing.md#current-algorithm-v63-and-later / KUT-11: an APIC with LDR 0 does not disturb the
    logical mode."""
    vm = VmState((Vcpu(0), Vcpu(1, ldr=0x21 << 24, dfr=0x0FFFFFFF)))
    assert build_map(vm, policy_for_release("6.18")).logical_mode is LogicalMode.XAPIC_CLUSTER


def test_x2apic_logical_reaches_xapic_vcpu_through_phys_map() -> None:
    """docs/routing.md#kvm-fast-path step 6: x2APIC logical lookups reuse phys_map, which holds xAPIC vCPUs."""
    vm = VmState((Vcpu(0, mode=ApicMode.X2APIC), Vcpu(1)))  # vCPU 1: xAPIC, LDR 0
    out = deliver(vm, msi(0x00000002, logical=True))
    assert out.receivers == (1,)


# --- docs/routing.md#kvm-fast-path step 4 / docs/routing.md#kvm_apic_match_dest: broadcasts
# ----------------------------------------------------------------------

def x2vm(n: int, **flags: bool) -> VmState:
    return VmState(tuple(Vcpu(i, mode=ApicMode.X2APIC) for i in range(n)), **flags)


def test_msi_0xff_is_broadcast_to_x2apic_with_quirk() -> None:
    out = deliver(x2vm(3), msi(0xFF))
    assert out.receivers == (0, 1, 2) and out.result == 3


def test_msi_0xff_with_quirk_disabled_is_unicast() -> None:
    assert deliver(x2vm(3, disable_broadcast_quirk=True), msi(0xFF)).receivers == ()


def test_x2apic_ipi_to_0xff_is_not_broadcast() -> None:
    assert deliver(x2vm(3), x2icr(0, 0xFF)).receivers == ()
    assert deliver(x2vm(3), x2icr(0, 0xFFFFFFFF)).receivers == (0, 1, 2)


def test_msi_0xffffffff_is_not_broadcast_with_quirk() -> None:
    """docs/routing.md#kvm-fast-path step 4: an MSI with dest 0xFFFFFFFF is no broadcast (probe: 0)."""
    out = deliver(x2vm(3, use_32bit_ids=True), msi(0xFFFFFFFF))
    assert out.receivers == () and out.result == 0


def test_xapic_0xff_reaches_ldr_zero_apics() -> None:
    """peer-suites KUT-10: 0xFF is a broadcast in xAPIC mode in either destination mode."""
    vm = flat(0, 0x02)
    assert deliver(vm, msi(0xFF, logical=True)).receivers == (0, 1)


def test_hw_disabled_gets_nothing_even_broadcast() -> None:
    """docs/routing.md#hardware-enable-and-software-enable: a hardware-disabled APIC is invisible to routing."""
    vm = VmState((Vcpu(0), Vcpu(1, mode=ApicMode.DISABLED)))
    assert deliver(vm, msi(0xFF)).receivers == (0,)


# --- docs/routing.md#kvm-fast-path step 8 / docs/routing.md#the-delivery-loop: lowest priority
# ------------------------------------------------------------------

def test_vector_hashing_counts_holes() -> None:
    vm = flat(0x01, 0x02, 0x04, 0x08)
    assert deliver(vm, msi(0x1F, 0x44, logical=True, mode=LOWEST)).receivers == (3,)
    out = deliver(vm, msi(0x1F, 0x40, logical=True, mode=LOWEST))
    assert out.receivers == () and out.result == 0


def test_non_hashing_picks_least_arb_prio_first_on_ties() -> None:
    vm = VmState(tuple(Vcpu(i, ldr=(1 << i) << 24, arb_prio=p) for i, p in enumerate((3, 1, 1, 5))),
                 vector_hashing=False)
    assert deliver(vm, msi(0x0F, logical=True, mode=LOWEST)).receivers == (1,)


def test_slow_path_hashing_over_candidates_in_creation_order() -> None:
    """docs/routing.md#the-delivery-loop step 4: the (vector mod k)-th sw-enabled candidate."""
    vm = VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1)))  # map NULL
    vm = VmState(tuple(Vcpu(v.vcpu_id, xapic_id=v.xapic_id, ldr=0x01 << 24) for v in vm.vcpus))
    assert deliver(vm, msi(0x01, 0x41, logical=True, mode=LOWEST)).receivers == (2,)  # 0x41 mod 3


def test_redirection_hint_makes_fixed_lowest_priority() -> None:
    vm = flat(0x01, 0x02)
    assert deliver(vm, msi(0x03, 0x41, logical=True, rh=True)).receivers == (1,)
    assert deliver(vm, msi(0x03, 0x41, logical=True)).receivers == (0, 1)


def test_physical_broadcast_lowest_becomes_fixed_but_rh_stays() -> None:
    """docs/routing.md#the-delivery-loop step 2."""
    vm = VmState.simple(3)
    assert deliver(vm, msi(0xFF, 0x41, mode=LOWEST)).receivers == (0, 1, 2)
    assert deliver(vm, msi(0xFF, 0x41, rh=True)).receivers == (2,)  # still one target: 0x41 mod 3


def test_physical_lowest_priority_has_no_arbitration() -> None:
    vm = VmState((Vcpu(0), Vcpu(1, sw_enabled=False)))
    out = deliver(vm, msi(1, mode=LOWEST))
    assert out.receivers == () and out.result == 0  # the single target refuses


# --- docs/routing.md#acceptance-per-delivery-mode: acceptance per delivery mode
# -------------------------------------------------------------------

def test_sw_disabled_refuses_fixed_accepts_nmi_init_sipi() -> None:
    vm = VmState((Vcpu(0, sw_enabled=False),))
    assert deliver(vm, msi(0)).result == 0
    for mode, kind in ((NMI, EffectKind.NMI), (INIT, EffectKind.INIT)):
        out = deliver(vm, msi(0, mode=mode))
        assert out.receivers == (0,) and out.effects[0].kind is kind


def test_fixed_level_deassert_is_discarded() -> None:
    vm = x2vm(2)
    assert deliver(vm, x2icr(0, 1, level=False, level_trigger=True)).receivers == ()
    assert deliver(vm, x2icr(0, 1, level=False)).receivers == (1,)  # edge ignores level


def test_init_level_deassert_ignored() -> None:
    assert deliver(x2vm(2), x2icr(0, 1, mode=INIT, level=False, level_trigger=True)).receivers == ()


def test_smi_by_release() -> None:
    vm = VmState.simple(1)
    assert deliver(vm, msi(0, 0, mode=SMI)).receivers == ()  # v6.2+: no SMM -> refused
    assert deliver(VmState(vm.vcpus, smm=True), msi(0, 0, mode=SMI)).receivers == (0,)
    assert deliver(vm, msi(0, 0, mode=SMI), "6.1").receivers == (0,)


def test_extint_ignored_sipi_latched() -> None:
    vm = VmState.simple(1)
    assert deliver(vm, msi(0, mode=EXTINT)).receivers == ()
    out = deliver(vm, msi(0, 0x9A, mode=SIPI))
    assert out.effects[0].kind is EffectKind.SIPI and out.effects[0].vector == 0x9A


def test_level_triggered_sets_tmr() -> None:
    out = deliver(VmState.simple(1), msi(0, 0x77, level_trigger=True))
    assert out.effects[0].level_triggered


def test_vectors_below_16_are_accepted() -> None:
    """docs/routing.md#illegal-vectors-in-kvm: KVM performs no illegal-vector check."""
    assert deliver(VmState.simple(1), msi(0, 5)).receivers == (0,)


# --- docs/routing.md#x2apic-icr-and-self_ipi: ICR and SELF_IPI writes
# ---------------------------------------------------------------------------

def test_icr_reserved_bits_fault_from_6_12() -> None:
    vm = x2vm(2)
    bad = x2icr(0, 1)
    bad = type(bad)(bad.source, bad.icr | 1 << 13)
    assert deliver(vm, bad).rejected
    assert deliver(vm, bad, "6.11").receivers == (1,)


def test_self_ipi_reserved_bits_fault_from_6_3() -> None:
    vm = x2vm(2)
    assert deliver(vm, SelfIpiInjection(1, 0x131)).rejected
    assert deliver(vm, SelfIpiInjection(1, 0x131), "6.2").receivers == (1,)
    assert deliver(vm, SelfIpiInjection(1, 0x31)).receivers == (1,)


def test_shorthands() -> None:
    vm = x2vm(3)
    assert deliver(vm, x2icr(1, 0, shorthand=1)).receivers == (1,)
    assert deliver(vm, x2icr(1, 0, shorthand=2)).receivers == (0, 1, 2)
    assert deliver(vm, x2icr(1, 0, shorthand=3)).receivers == (0, 2)


def test_xapic_source_ipi_is_modelled() -> None:
    """An xAPIC-mode source writes ICR2 then ICR (MMIO); the model follows the same delivery."""
    from apicmap import IcrInjection

    vm = VmState.simple(3)
    assert deliver(vm, IcrInjection(0, (2 << 56) | 0x4041)).receivers == (2,)
