"""The architecture engine: one test per SDM/APM rule (docs/routing.md, the "Architecture" sections)."""

from __future__ import annotations

from apicmap import ApicMode, IcrInjection, SelfIpiInjection, Vcpu, Verdict, VmState, make_engine
from tests.helpers import EXTINT, INIT, LOWEST, NMI, REMRD, SIPI, msi, x2icr


def arch(vm: VmState, injection):  # type: ignore[no-untyped-def]
    return make_engine("arch").prepare(vm).deliver(injection, explain=True)


def test_aliased_physical_ids_all_accept() -> None:
    """A4: no arbitration for physical unicast; every matching APIC accepts (KUT-14)."""
    vm = VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1)), use_32bit_ids=True)
    assert arch(vm, msi(1)).receivers == (1, 2)


def test_sw_disabled_refuses_fixed_accepts_nmi() -> None:
    """A3: a software-disabled APIC accepts INIT/NMI/SMI/SIPI, not fixed or lowest priority."""
    vm = VmState((Vcpu(0, sw_enabled=False),))
    assert arch(vm, msi(0)).verdict(0) is Verdict.NOT_ACCEPTED
    assert arch(vm, msi(0, mode=NMI)).receivers == (0,)


def test_hw_disabled_receives_nothing() -> None:
    vm = VmState((Vcpu(0, mode=ApicMode.DISABLED), Vcpu(1)))
    assert arch(vm, msi(0xFF, mode=NMI)).receivers == (1,)


def test_illegal_vector_receive_and_send() -> None:
    """A9: vectors 0-15 set receive-illegal-vector on MSIs; an IPI with one is not sent."""
    vm = VmState((Vcpu(0, mode=ApicMode.X2APIC), Vcpu(1, mode=ApicMode.X2APIC)))
    out = arch(vm, msi(1, 5))
    assert out.receivers == () and out.verdict(1) is Verdict.NOT_ACCEPTED
    assert arch(vm, x2icr(0, 1, 5)).rejected


def test_x2apic_0xff_is_unicast_to_255() -> None:
    """A4: in x2APIC mode 0xFF is an ordinary unicast to ID 255."""
    vm = VmState((Vcpu(0, mode=ApicMode.X2APIC), Vcpu(255, mode=ApicMode.X2APIC)))
    assert arch(vm, x2icr(0, 0xFF)).receivers == (255,)
    assert arch(vm, x2icr(0, 0xFFFFFFFF)).receivers == (0, 255)


def test_8bit_broadcast_to_x2apic_target_is_undefined() -> None:
    """A12/B9: whether an 8-bit 0xFF MSI is a broadcast for x2APIC APICs is implementation policy."""
    vm = VmState((Vcpu(0, mode=ApicMode.X2APIC),))
    assert arch(vm, msi(0xFF)).verdict(0) is Verdict.UNDEFINED


def test_mixed_mode_ipi_is_undefined() -> None:
    """A14: the SDM gives no rules for mixed xAPIC/x2APIC systems."""
    vm = VmState((Vcpu(0, mode=ApicMode.X2APIC), Vcpu(1)))
    out = arch(vm, x2icr(0, 1))
    assert out.undefined == (1,) and out.explanation is not None


def test_lowest_priority_from_x2apic_icr_is_undefined() -> None:
    """A8: delivery mode 001 is reserved in the x2APIC ICR."""
    vm = VmState((Vcpu(0, mode=ApicMode.X2APIC), Vcpu(1, mode=ApicMode.X2APIC)))
    assert arch(vm, x2icr(0, 1, mode=LOWEST)).undefined == (1,)


def test_lowest_priority_by_tpr_and_ties() -> None:
    """A8: the lowest task-priority class wins; a tie is model-specific."""
    ldr = [0x01, 0x02, 0x04]
    vm = VmState(tuple(Vcpu(i, ldr=ldr[i] << 24, tpr=t) for i, t in enumerate((0x20, 0x10, 0x30))))
    out = arch(vm, msi(0x07, mode=LOWEST, logical=True))
    assert out.receivers == (1,)
    tie = VmState(tuple(Vcpu(i, ldr=ldr[i] << 24) for i in range(3)))
    assert arch(tie, msi(0x07, mode=LOWEST, logical=True)).undefined == (0, 1, 2)


def test_logical_flat_and_cluster() -> None:
    """A5: flat = MDA & LDR; cluster = same cluster nibble and overlapping member bits."""
    vm = VmState((Vcpu(0, ldr=0x03 << 24), Vcpu(1, ldr=0x04 << 24)))
    assert arch(vm, msi(0x06, logical=True)).receivers == (0, 1)
    cl = VmState((Vcpu(0, ldr=0x11 << 24, dfr=0x0FFFFFFF), Vcpu(1, ldr=0x21 << 24, dfr=0x0FFFFFFF)))
    assert arch(cl, msi(0x21, logical=True)).receivers == (1,)


def test_cluster_f_is_undefined() -> None:
    """A5: whether cluster 0xF means 'all clusters' is implementation-specific."""
    cl = VmState((Vcpu(0, ldr=0x11 << 24, dfr=0x0FFFFFFF),))
    assert arch(cl, msi(0xF1, logical=True)).undefined == (0,)
    assert arch(cl, msi(0xFF, logical=True)).receivers == (0,)  # all ones: broadcast


def test_undefined_dfr_and_mixed_dfr() -> None:
    """A5: DFR models other than flat/cluster are undefined; all APICs must use one model."""
    vm = VmState((Vcpu(0, ldr=0x01 << 24, dfr=0x5FFFFFFF),))
    assert arch(vm, msi(0x01, logical=True)).undefined == (0,)
    mixed = VmState((Vcpu(0, ldr=0x01 << 24), Vcpu(1, ldr=0x11 << 24, dfr=0x0FFFFFFF)))
    assert arch(mixed, msi(0x11, logical=True)).undefined == (0, 1)


def test_x2apic_logical_cluster() -> None:
    """A5: x2APIC logical: MDA[31:16] == LDR[31:16] and MDA[15:0] & LDR[15:0]."""
    vm = VmState(tuple(Vcpu(i, mode=ApicMode.X2APIC) for i in (0, 2, 3, 17)))
    assert arch(vm, msi(0x0D, logical=True)).receivers == (0, 2, 3)  # KUT-32
    assert arch(vm, x2icr(0, 0x00010002, logical=True)).receivers == (17,)


def test_shorthands_and_their_legality() -> None:
    """A6: SELF and ALL-including-self are Fixed-only (Table 10-3, [M])."""
    vm = VmState(tuple(Vcpu(i, mode=ApicMode.X2APIC) for i in range(3)))
    assert arch(vm, x2icr(1, 0, shorthand=3)).receivers == (0, 2)
    assert arch(vm, x2icr(1, 0, shorthand=2)).receivers == (0, 1, 2)
    assert arch(vm, x2icr(1, 0, mode=NMI, shorthand=1)).undefined == (1,)
    assert arch(vm, SelfIpiInjection(2, 0x31)).receivers == (2,)
    assert arch(vm, SelfIpiInjection(2, 0x131)).rejected


def test_reserved_and_model_specific_delivery_modes() -> None:
    """A7: remote read is reserved on Intel; SIPI is reserved in MSIs; ExtINT needs an 8259."""
    vm = VmState.simple(2)
    assert arch(vm, msi(0, mode=REMRD)).undefined == (0,)
    assert arch(vm, msi(0, mode=SIPI)).undefined == (0,)
    assert arch(vm, msi(0, mode=EXTINT)).undefined == (0,)


def test_init_deassert_is_model_specific() -> None:
    vm = VmState.simple(2)
    ipi = IcrInjection(0, (1 << 56) | INIT << 8 | 1 << 15)  # level-triggered, level 0
    assert arch(vm, ipi).undefined == (1,)


def test_explanation_has_a_reason_per_vcpu() -> None:
    vm = VmState.simple(3)
    exp = arch(vm, msi(1)).explanation
    assert exp is not None and len(exp.reasons) == 3
    accepted, refused = exp.reason_for(1), exp.reason_for(0)
    assert accepted is not None and accepted.arg("verdict") == "accepted"
    assert refused is not None and refused.arg("verdict") == "not accepted"
