"""The qemu engine on real QEMU: each case is run live, and checked against a reading of
QEMU 7.2's hw/intc/apic.c (reading.py) and, where they differ, against the arch engine."""

from __future__ import annotations

import pytest

from apicmap import (
    ApicMode,
    Effect,
    EffectKind,
    IcrInjection,
    Injection,
    IoapicInjection,
    MsiInjection,
    NotExpressible,
    Outcome,
    SelfIpiInjection,
    Vcpu,
    VmState,
    make_engine,
)
from apicmap.domain.reasons import Code
from apicmap.qemu import QemuEngine

from .reading import predicted_effects

FLAT, CLUSTER = 0xFFFFFFFF, 0x0FFFFFFF


def msi(dest: int, data: int, *, logical: bool = False, rh: bool = False) -> MsiInjection:
    return MsiInjection(0xFEE00000 | dest << 12 | int(rh) << 3 | int(logical) << 2, 0, data)


def icr(source: int, low: int, dest: int = 0) -> IcrInjection:
    return IcrInjection(source, dest << 56 | low)


def rte(vector: int, dest: int, *, delivery: int = 0, logical: bool = False, level: bool = False,
        masked: bool = False) -> int:
    return dest << 56 | int(masked) << 16 | int(level) << 15 | int(logical) << 11 | delivery << 8 | vector


@pytest.fixture(autouse=True)
def _only_72(qemu_engine: QemuEngine) -> None:
    if qemu_engine.version[:2] != (7, 2):
        pytest.skip(f"reading.py reads QEMU 7.2; this is QEMU {qemu_engine.version_text}")


def run(engine: QemuEngine, vm: VmState, injections: list[Injection]) -> list[Outcome]:
    """One boot; every outcome must be exactly what the reading of QEMU's source predicts."""
    outcomes = engine.prepare(vm).deliver_many(injections, explain=True)
    for injection, outcome in zip(injections, outcomes, strict=True):
        assert set(outcome.effects) == predicted_effects(vm, injection), (injection, outcome.explanation)
        assert outcome.engine == "qemu" and outcome.result is None
        assert outcome.receivers == tuple(sorted({e.vcpu_id for e in outcome.effects}))
    return outcomes


def arch_receivers(vm: VmState, injection: Injection) -> tuple[int, ...]:
    return make_engine("arch").prepare(vm).deliver(injection).receivers


def _observed(outcome: Outcome, vcpu_id: int) -> str:
    """What the guest saw on one vCPU (the parameter of its OBSERVED reason)."""
    assert outcome.explanation is not None
    reason = outcome.explanation.reason_for(vcpu_id)
    assert reason is not None and reason.code is Code.OBSERVED
    return str(reason.arg("effects"))


def test_aliased_xapic_ids_reach_one(qemu_engine: QemuEngine) -> None:
    # vCPUs 1 and 2 share xAPIC ID 1. The architecture: both accept. QEMU 7.2's apic_find_dest
    # returns one index: local_apics[1] (vCPU 1) because its ID equals its index.
    vm = VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1)))
    injection = MsiInjection(0xFEE01000, 0, 0x40)
    fixed, nmi = run(qemu_engine, vm, [injection, MsiInjection(0xFEE01000, 0, 0x400)])
    assert fixed.receivers == (1,)
    assert fixed.effects == (Effect(1, EffectKind.IRR, 0x40, False),)
    assert nmi.effects == (Effect(1, EffectKind.NMI),)
    assert arch_receivers(vm, injection) == (1, 2)  # the disagreement docs/profiles/qemu.md explains
    assert fixed.explanation is not None and "handler for vector 0x40 ran" in _observed(fixed, 1)


def test_aliased_ids_first_index_wins_without_the_shortcut(qemu_engine: QemuEngine) -> None:
    # ID 5 is nobody's index: apic_find_dest scans local_apics[] from 0 and stops at the first.
    vm = VmState((Vcpu(0, xapic_id=5), Vcpu(1, xapic_id=5), Vcpu(2)))
    (out,) = run(qemu_engine, vm, [msi(5, 0x41)])
    assert out.receivers == (0,)


def test_logical_flat(qemu_engine: QemuEngine) -> None:
    vm = VmState((Vcpu(0, ldr=0x01 << 24), Vcpu(1, ldr=0x02 << 24), Vcpu(2, ldr=0x04 << 24), Vcpu(3, ldr=0x03 << 24)))
    outs = run(qemu_engine, vm, [msi(0x01, 0x50, logical=True), msi(0x06, 0x51, logical=True),
                                 msi(0x00, 0x52, logical=True)])
    assert [o.receivers for o in outs] == [(0, 3), (1, 2, 3), ()]


def test_logical_cluster(qemu_engine: QemuEngine) -> None:
    vm = VmState((Vcpu(0, dfr=CLUSTER, ldr=0x11 << 24), Vcpu(1, dfr=CLUSTER, ldr=0x12 << 24),
                  Vcpu(2, dfr=CLUSTER, ldr=0x21 << 24), Vcpu(3, dfr=CLUSTER, ldr=0xF1 << 24)))
    outs = run(qemu_engine, vm, [msi(0x13, 0x60, logical=True), msi(0x21, 0x61, logical=True),
                                 msi(0xFF, 0x62, logical=True), msi(0x11, 0x63, logical=True)])
    assert [o.receivers for o in outs] == [(0, 1), (2,), (3,), (0,)]
    # Logical 0xFF in the cluster model: the SDM's broadcast, but QEMU 7.2 matches cluster 15 only.
    assert arch_receivers(vm, msi(0xFF, 0x62, logical=True)) == (0, 1, 2, 3)


def test_broadcast_physical_ff(qemu_engine: QemuEngine) -> None:
    vm = VmState((Vcpu(0), Vcpu(1, sw_enabled=False), Vcpu(2, xapic_id=0x20)))
    fixed, nmi = run(qemu_engine, vm, [msi(0xFF, 0x70), msi(0xFF, 0x400)])
    assert fixed.receivers == (0, 1, 2) and nmi.receivers == (0, 1, 2)
    # vCPU 1 is software-disabled: QEMU still sets its IRR bit (apic_set_irq has no enable check);
    # the guest finds it pending, not dispatched.
    assert fixed.explanation is not None and "not dispatched" in _observed(fixed, 1)


def test_lowest_priority_takes_the_lowest_cpu_index(qemu_engine: QemuEngine) -> None:
    # apic_bus_deliver, APIC_DM_LOWPRI: "XXX: search for focus processor, arbitration": the first
    # set bit of the destination mask. TPR plays no part: vCPU 1 has the highest TPR and still wins.
    vm = VmState((Vcpu(0, ldr=0x01 << 24), Vcpu(1, ldr=0x02 << 24, tpr=0xF0), Vcpu(2, ldr=0x04 << 24),
                  Vcpu(3, ldr=0x08 << 24)))
    injections: list[Injection] = [msi(0x0E, 0x141, logical=True), msi(0x0C, 0x1A2, logical=True),
                                   msi(0x0E, 0x43, logical=True, rh=True), icr(3, 0x000C0144)]
    lowest, lowest2, rh, all_ex_self = run(qemu_engine, vm, injections)
    assert lowest.receivers == (1,)
    assert lowest2.receivers == (2,)
    assert rh.receivers == (1, 2, 3)  # apic_send_msi ignores the redirection hint: a plain fixed message
    assert all_ex_self.receivers == (0,)
    # The architecture: vCPUs 2 and 3 tie at TPR 0 (the winner is model-specific); vCPU 1 cannot win.
    arch = make_engine("arch").prepare(vm).deliver(injections[0])
    assert arch.receivers == () and arch.undefined == (2, 3)


def test_ipi_by_icr(qemu_engine: QemuEngine) -> None:
    vm = VmState(tuple(Vcpu(i) for i in range(3)))
    outs = run(qemu_engine, vm, [icr(0, 0x4080, dest=2), icr(2, 0x4081, dest=0), icr(1, 0x44082),
                                 icr(1, 0x84083), icr(1, 0xC4084), icr(0, 0xC4400)])
    assert [o.receivers for o in outs] == [(2,), (0,), (1,), (0, 1, 2), (0, 2), (1, 2)]
    assert outs[5].effects == (Effect(1, EffectKind.NMI), Effect(2, EffectKind.NMI))


def test_shorthands_index_local_apics_by_the_current_id(qemu_engine: QemuEngine) -> None:
    # apic_deliver: apic_set_bit(deliver_bitmask, s->id) with s->id the rewritten APIC ID, used as
    # an index into local_apics[] (indexed by initial ID). vCPU 2 now has ID 1: its "self" IPI
    # reaches vCPU 1, and its "all excluding self" leaves out vCPU 1 and includes itself.
    vm = VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1)))
    to_self, all_but_self = run(qemu_engine, vm, [icr(2, 0x44090), icr(2, 0xC4091)])
    assert to_self.receivers == (1,)
    assert all_but_self.receivers == (0, 2)
    assert arch_receivers(vm, icr(2, 0x44090)) == (2,)


def test_ioapic_entries(qemu_engine: QemuEngine) -> None:
    vm = VmState((Vcpu(0, ldr=0x01 << 24), Vcpu(1, ldr=0x02 << 24), Vcpu(2, ldr=0x04 << 24)))
    outs = run(qemu_engine, vm, [
        IoapicInjection(14, rte(0x76, 1)),
        IoapicInjection(14, rte(0x85, 0x05, logical=True, level=True)),
        IoapicInjection(11, rte(0x86, 2, level=True)),
        IoapicInjection(10, rte(0x87, 2, masked=True)),
        IoapicInjection(3, rte(0, 0x06, delivery=4, logical=True)),
        IoapicInjection(2, rte(0x88, 0)),
    ])
    assert [o.receivers for o in outs] == [(1,), (0, 2), (2,), (), (1, 2), (0,)]
    assert outs[1].effects == (Effect(0, EffectKind.IRR, 0x85, True), Effect(2, EffectKind.IRR, 0x85, True))
    assert outs[4].effects == (Effect(1, EffectKind.NMI), Effect(2, EffectKind.NMI))


def test_level_entry_nobody_accepts_does_not_block_the_next(qemu_engine: QemuEngine) -> None:
    # A level entry nobody takes keeps Remote IRR set; the guest clears it between interrupts by
    # re-masking the entry as edge (ioapic_fix_edge_remote_irr), so the second pulse is delivered.
    vm = VmState((Vcpu(0), Vcpu(1)))
    outs = run(qemu_engine, vm, [IoapicInjection(5, rte(0x90, 7, level=True)),
                                 IoapicInjection(5, rte(0x90, 1, level=True))])
    assert [o.receivers for o in outs] == [(), (1,)]


def test_disabled_apics_still_accept(qemu_engine: QemuEngine) -> None:
    # QEMU 7.2 routes without looking at IA32_APIC_BASE.EN or SVR bit 8 (apic_get_delivery_bitmask,
    # apic_bus_deliver): a hardware-disabled APIC gets the IRR bit and the NMI.
    vm = VmState((Vcpu(0), Vcpu(1, mode=ApicMode.DISABLED), Vcpu(2, sw_enabled=False)))
    outs = run(qemu_engine, vm, [msi(1, 0xA0), msi(1, 0x400), msi(2, 0xA1), msi(2, 0x400)])
    assert [o.receivers for o in outs] == [(1,), (1,), (2,), (2,)]
    assert arch_receivers(vm, msi(1, 0xA0)) == ()


@pytest.mark.parametrize(("vm", "injection", "reason"), [
    (VmState((Vcpu(0, mode=ApicMode.X2APIC), Vcpu(1))), msi(1, 0x40), "x2APIC"),
    (VmState((Vcpu(0), Vcpu(2))), msi(1, 0x40), "0..n-1"),
    (VmState((Vcpu(1), Vcpu(0))), msi(1, 0x40), "0..n-1"),
    (VmState.simple(256), msi(1, 0x40), "at most 255"),
])
def test_vm_not_expressible(qemu_engine: QemuEngine, vm: VmState, injection: Injection, reason: str) -> None:
    with pytest.raises(NotExpressible, match=reason):
        qemu_engine.prepare(vm)


@pytest.mark.parametrize(("injection", "reason"), [
    (msi(1, 0x200), "SMI"), (msi(1, 0x500), "INIT"), (msi(1, 0x608), "SIPI"), (msi(1, 0x340), "REMRD"),
    (icr(0, 0x4500, dest=1), "INIT"), (icr(0, 0x8500, dest=1), "INIT"),
    (IoapicInjection(4, rte(0x40, 1, delivery=7)), "8259"),
    (SelfIpiInjection(0, 0x40), "x2APIC"),
    (MsiInjection(0xFEE01000, 0x100, 0x40), "address_hi"),
    (MsiInjection(0xFEE000A0, 0, 0x40), "register"),
    (MsiInjection(0xFED01000, 0, 0x40), "outside"),
    (msi(1, 0x05), "below 16"),
    (IoapicInjection(16, rte(0x40, 1)), "pin 16"),
    (IoapicInjection(0, rte(0x40, 1)), "pin 2"),
    (icr(5, 0x4040, dest=1), "does not exist"),
])
def test_interrupt_not_expressible(qemu_engine: QemuEngine, injection: Injection, reason: str) -> None:
    vm = VmState((Vcpu(0), Vcpu(1)))
    prepared = qemu_engine.prepare(vm)
    with pytest.raises(NotExpressible, match=reason) as err:
        prepared.deliver(injection)
    assert "\n" not in str(err.value)


def test_batch_keeps_expressible_ones(qemu_engine: QemuEngine) -> None:
    vm = VmState((Vcpu(0), Vcpu(1)))
    results = qemu_engine.prepare(vm).try_deliver_many([msi(1, 0x40), msi(1, 0x500), msi(0, 0x41)])
    assert isinstance(results[1], NotExpressible)
    assert [r.receivers for r in (results[0], results[2]) if isinstance(r, Outcome)] == [(1,), (0,)]
    with pytest.raises(NotExpressible, match="INIT"):
        qemu_engine.prepare(vm).deliver_many([msi(1, 0x40), msi(1, 0x500)])


def test_what_qemu_does_where_the_architecture_is_silent(qemu_engine: QemuEngine) -> None:
    vm = VmState((Vcpu(0, ldr=0x01 << 24), Vcpu(1, ldr=0x02 << 24), Vcpu(2), Vcpu(3, dfr=CLUSTER, ldr=0x11 << 24),
                  Vcpu(4, dfr=0x5FFFFFFF, ldr=0xFF << 24)))
    injections: list[Injection] = [
        MsiInjection(0xFEE010A0, 0, 0x40),  # address bits 11:5 (an extended destination ID) set
        msi(1, 0x741),  # ExtINT
        icr(0, 0x8742, dest=1),  # fixed, level-triggered, level bit 0 (de-assert)
        icr(0, 0xC743, dest=1),  # fixed, level-triggered, assert
        msi(0xFF, 0x44, logical=True),  # logical 0xFF with flat, LDR-0 and cluster APICs
        msi(0x11, 0x47, logical=True),  # one MDA, two DFR models
    ]
    ext, extint, deassert, level, logical_ff, mixed = run(qemu_engine, vm, injections)
    assert ext.receivers == (1,)  # apic_send_msi reads address bits 19:12 only
    assert extint.effects == (Effect(1, EffectKind.IRR, 0x41, False),)  # apic_bus_deliver: EXTINT -> apic_set_irq
    # apic_deliver looks at the level bit for INIT only
    assert deassert.effects == (Effect(1, EffectKind.IRR, 0x42, True),)
    assert level.effects == (Effect(1, EffectKind.IRR, 0x43, True),)
    # flat: MDA & LDR; cluster: cluster 15 only; LDR 0, or a DFR model other than 0xF/0x0: nothing
    assert logical_ff.receivers == (0, 1)
    assert mixed.receivers == (0, 3)  # each APIC matched under its own DFR
    arch = make_engine("arch").prepare(vm)
    assert set(arch.deliver(injections[4]).receivers) >= {0, 1, 2, 3}
    assert 1 in arch.deliver(injections[1]).undefined
