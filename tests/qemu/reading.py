"""A reading of QEMU 7.2's TCG interrupt routing, used only to check the live runs.

Each function mirrors one function of QEMU 7.2's ``hw/intc/apic.c`` (or ``ioapic.c``), as read
in the v7.2.0 sources (Debian's 1:7.2+dfsg adds no routing change). The live engine never uses
this: the tests compare what the guest observed with what this reading predicts.

QEMU's ``local_apics[]`` is indexed by the *initial* APIC ID, fixed at realize time
(``apic_realize``: ``local_apics[s->id] = s``), which is the CPU index here (vcpu id). The guest
then rewrites ``s->id`` through the ID register (``apic_mem_write`` case 0x02).
"""

from __future__ import annotations

from dataclasses import dataclass

from apicmap import (
    ApicMode,
    DeliveryMode,
    Effect,
    EffectKind,
    IcrInjection,
    Injection,
    IoapicInjection,
    MsiInjection,
    VmState,
)

MAX_APICS = 255


@dataclass(frozen=True, slots=True)
class Decoded:
    dest: int
    logical: bool
    delivery: DeliveryMode
    vector: int
    level_triggered: bool
    shorthand: int
    source: int | None
    masked: bool = False


def decode(injection: Injection) -> Decoded:
    match injection:
        case MsiInjection(address_lo=lo, data=data):
            # apic_send_msi: dest = address bits 19:12, dest mode bit 2; "XXX: Ignore redirection hint."
            return Decoded((lo >> 12) & 0xFF, bool(lo & 4), DeliveryMode((data >> 8) & 7), data & 0xFF,
                           bool(data & (1 << 15)), 0, None)
        case IcrInjection(source=source, icr=icr):
            # apic_mem_write case 0x30 -> apic_deliver(dest = ICR2[31:24], ...); shorthand ICR[19:18]
            low = icr & 0xFFFFFFFF
            return Decoded((icr >> 56) & 0xFF, bool(low & (1 << 11)), DeliveryMode((low >> 8) & 7), low & 0xFF,
                           bool(low & (1 << 15)), (low >> 18) & 3, source)
        case IoapicInjection(rte=rte):
            # ioapic_entry_parse -> an MSI with dest = RTE[63:56]
            return Decoded((rte >> 56) & 0xFF, bool(rte & (1 << 11)), DeliveryMode((rte >> 8) & 7), rte & 0xFF,
                           bool(rte & (1 << 15)), 0, None, bool(rte & (1 << 16)))
    raise TypeError(injection)


def apic_find_dest(vm: VmState, dest: int) -> int:
    """One index, never several: the local_apics[dest] shortcut, else the first ID match."""
    ids = [v.xapic_id for v in vm.vcpus]
    if dest < len(ids) and ids[dest] == dest:
        return dest
    for i in range(MAX_APICS):
        if i >= len(ids):
            break  # local_apics[i] == NULL ends the search
        if ids[i] == dest:
            return i
    return -1


def apic_get_delivery_bitmask(vm: VmState, dest: int, logical: bool) -> set[int]:
    if not logical:
        if dest == 0xFF:
            return set(range(MAX_APICS + 1))  # memset 0xff: every index
        idx = apic_find_dest(vm, dest)
        return {idx} if idx >= 0 else set()
    found = set()
    for i, v in enumerate(vm.vcpus):
        log_dest, model = (v.ldr >> 24) & 0xFF, (v.dfr >> 28) & 0xF
        if model == 0xF and dest & log_dest:
            found.add(i)  # flat
        elif model == 0x0 and (dest & 0xF0) == (log_dest & 0xF0) and dest & log_dest & 0x0F:
            found.add(i)  # cluster: 0xF0 is not special in 7.2
    return found


def deliver_bitmask(vm: VmState, d: Decoded) -> set[int]:
    """apic_deliver's shorthand switch; note ``apic_set_bit(deliver_bitmask, s->id)``: the
    sender's *current* APIC ID is used as a local_apics index."""
    if d.shorthand == 0:
        return apic_get_delivery_bitmask(vm, d.dest, d.logical)
    assert d.source is not None
    sender_id = vm.vcpu(d.source).xapic_id
    if d.shorthand == 1:
        return {sender_id}
    everyone = set(range(MAX_APICS + 1))
    return everyone if d.shorthand == 2 else everyone - {sender_id}


def predicted_effects(vm: VmState, injection: Injection) -> set[Effect]:
    """apic_bus_deliver: LOWPRI takes the first set bit (no TPR, no arbitration); FIXED and
    EXTINT set the IRR of every APIC in the mask, NMI interrupts every one; none checks
    whether the APIC is enabled. Absent local_apics[] slots are skipped (foreach_apic)."""
    d = decode(injection)
    if d.masked:
        return set()
    present = set(range(len(vm.vcpus)))
    mask = deliver_bitmask(vm, d)
    # LOWPRI: local_apics[first set bit], which may be an empty slot (then nobody).
    first = {min(mask)} if mask else set()
    targets = (first if d.delivery is DeliveryMode.LOWEST else mask) & present
    if d.delivery is DeliveryMode.NMI:
        return {Effect(vm.vcpus[i].vcpu_id, EffectKind.NMI) for i in targets}
    return {Effect(vm.vcpus[i].vcpu_id, EffectKind.IRR, d.vector, d.level_triggered) for i in targets}


def any_disabled(vm: VmState) -> bool:
    return any(v.mode is ApicMode.DISABLED or not v.sw_enabled for v in vm.vcpus)
