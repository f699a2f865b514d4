"""Layer 3 (architecture): the per-APIC acceptance predicate, three-valued.

Rules from the Intel SDM and AMD APM as summarised in architecture-and-peers.md (cited as
A-sections). Where the architecture leaves a case undefined or model-specific, the answer is
``UNDEFINED`` with the reason, never a silently chosen value.
"""

from __future__ import annotations

from apicmap.domain.message import Broadcast, Logical, Message, Origin, Physical, ToAll, ToAllButSelf, ToSelf
from apicmap.domain.outcome import Effect, EffectKind, Verdict
from apicmap.domain.vm import DfrModel, Vcpu
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DeliveryMode, Trigger

ACCEPTED, NOT_ACCEPTED, UNDEFINED = Verdict.ACCEPTED, Verdict.NOT_ACCEPTED, Verdict.UNDEFINED


def address_match(target: Vcpu, message: Message, source: Vcpu | None,
                  mixed_dfr: bool) -> tuple[Verdict, str]:
    """Does ``target`` recognise itself in the destination of ``message``?"""
    if not target.present:
        return NOT_ACCEPTED, "hardware-disabled APIC receives nothing (A3)"
    match message.dest:
        case ToSelf():
            ok = source is not None and source.vcpu_id == target.vcpu_id
            return (ACCEPTED, "shorthand self") if ok else (NOT_ACCEPTED, "shorthand self: not the sender")
        case ToAll():
            return ACCEPTED, "shorthand all-including-self"
        case ToAllButSelf():
            ok = source is None or source.vcpu_id != target.vcpu_id
            return (ACCEPTED, "shorthand all-but-self") if ok else (NOT_ACCEPTED, "all-but-self: the sender")
        case _:
            pass
    if source is not None and source.mode is not target.mode:
        return UNDEFINED, (f"mixed modes: {source.mode.value} sender, {target.mode.value} target; "
                           "the SDM defines no delivery rules for mixed systems (A14)")
    x2 = target.mode is ApicMode.X2APIC
    match message.dest:
        case Broadcast(id=dest_id):
            if x2 and dest_id == 0xFF:
                return UNDEFINED, ("8-bit all-ones destination to an x2APIC-mode APIC: broadcast or "
                                   "unicast to ID 0xFF is implementation-specific (A4, A12, B9)")
            if not x2 and dest_id != 0xFF:
                return UNDEFINED, "32-bit destination to an xAPIC-mode APIC (A14)"
            return ACCEPTED, f"broadcast 0x{dest_id:x} (A4/A5)"
        case Physical(id=dest_id):
            if x2:
                ok = dest_id == target.x2apic_id
                return (ACCEPTED if ok else NOT_ACCEPTED), f"physical 0x{dest_id:x} vs x2APIC ID 0x{target.x2apic_id:x}"
            if dest_id > 0xFF:
                return NOT_ACCEPTED, f"physical 0x{dest_id:x} cannot name an 8-bit xAPIC ID (A4)"
            ok = dest_id == target.xapic_id
            return (ACCEPTED if ok else NOT_ACCEPTED), f"physical 0x{dest_id:02x} vs xAPIC ID 0x{target.xapic_id:02x}"
        case Logical(mda=mda):
            return _logical_match(target, mda, mixed_dfr)
    raise AssertionError(message.dest)


def _logical_match(target: Vcpu, mda: int, mixed_dfr: bool) -> tuple[Verdict, str]:
    if target.mode is ApicMode.X2APIC:
        ldr = target.effective_ldr
        ok = (ldr >> 16) == (mda >> 16) and (ldr & mda & 0xFFFF) != 0
        return (ACCEPTED if ok else NOT_ACCEPTED), (
            f"x2APIC logical: cluster 0x{ldr >> 16:x} mask 0x{ldr & 0xFFFF:04x} vs MDA 0x{mda:x} (A5)")
    if mda > 0xFF:
        return NOT_ACCEPTED, f"logical MDA 0x{mda:x} is wider than an xAPIC LDR (A5)"
    logical_id = target.logical_id
    model = target.dfr_model
    if model is DfrModel.OTHER:
        return UNDEFINED, f"DFR model 0x{target.dfr >> 28:x} is neither flat nor cluster (A5)"
    if mixed_dfr and logical_id:
        return UNDEFINED, "APICs with logical IDs use different DFR models; the SDM requires one (A5)"
    if model is DfrModel.FLAT:
        ok = (logical_id & mda) != 0
        return (ACCEPTED if ok else NOT_ACCEPTED), f"logical flat: LDR 0x{logical_id:02x} & MDA 0x{mda:02x} (A5)"
    if (mda >> 4) == 0xF:
        return UNDEFINED, (f"cluster 0xF with mask 0x{mda & 0xF:x}: 'all clusters' or nothing is "
                           "implementation-specific (A5)")
    ok = (mda >> 4) == (logical_id >> 4) and (mda & logical_id & 0xF) != 0
    return (ACCEPTED if ok else NOT_ACCEPTED), (
        f"logical cluster {logical_id >> 4} bits 0x{logical_id & 0xF:x} vs MDA 0x{mda:02x} (A5)")


def acceptance(target: Vcpu, message: Message) -> tuple[Verdict, Effect | None, str]:
    """What an addressed APIC does with the message, by delivery mode (A3, A7, A9)."""
    mode = message.delivery
    vid = target.vcpu_id
    via_message_bus = message.origin in (Origin.MSI, Origin.IOAPIC)
    if mode in (DeliveryMode.FIXED, DeliveryMode.LOWEST):
        if message.vector < 16:
            return NOT_ACCEPTED, None, "illegal vector 0-15: receive-illegal-vector (ESR bit 6), IRR untouched (A9)"
        if not target.sw_enabled:
            return NOT_ACCEPTED, None, f"software-disabled: {mode.label.upper()} not accepted (A3)"
        if message.origin is Origin.IPI and message.trigger is Trigger.LEVEL and not message.level:
            return UNDEFINED, None, "level de-assert IPI outside INIT: model-specific (A6)"
        return (ACCEPTED, Effect(vid, EffectKind.IRR, message.vector, message.trigger is Trigger.LEVEL),
                f"IRR 0x{message.vector:02x}")
    if mode is DeliveryMode.NMI:
        return ACCEPTED, Effect(vid, EffectKind.NMI), "NMI (accepted even when software-disabled, A3)"
    if mode is DeliveryMode.SMI:
        return ACCEPTED, Effect(vid, EffectKind.SMI), "SMI (accepted even when software-disabled, A3)"
    if mode is DeliveryMode.INIT:
        if message.trigger is Trigger.LEVEL and not message.level:
            return UNDEFINED, None, "INIT level de-assert: P6-only, unsupported on P4/Xeon and later (A7)"
        return ACCEPTED, Effect(vid, EffectKind.INIT), "INIT"
    if mode is DeliveryMode.SIPI:
        if via_message_bus:
            return UNDEFINED, None, "start-up is reserved in MSI/IOAPIC delivery modes (A7, A11)"
        return ACCEPTED, Effect(vid, EffectKind.SIPI, message.vector), "SIPI latched (acted on in wait-for-SIPI)"
    if mode is DeliveryMode.REMRD:
        return UNDEFINED, None, "delivery mode 011 is reserved on Intel, 'remote read' on AMD (A7, A13)"
    if via_message_bus:
        return UNDEFINED, None, "ExtINT takes its vector from an external 8259, outside this model (A7)"
    return UNDEFINED, None, "ExtINT is reserved in the ICR (A7)"
