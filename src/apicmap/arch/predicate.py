"""Layer 3 (architecture): the per-APIC acceptance predicate, three-valued.

Rules from the Intel SDM and AMD APM (docs/routing.md, the "Architecture" sections). Where
the architecture leaves a case undefined or model-specific, the answer is
``UNDEFINED`` with the reason, never a silently chosen value.
"""

from __future__ import annotations

from apicmap.domain.message import Broadcast, Logical, Message, Origin, Physical, ToAll, ToAllButSelf, ToSelf
from apicmap.domain.outcome import Effect, EffectKind, Verdict
from apicmap.domain.reasons import Code, Reason, because
from apicmap.domain.vm import DfrModel, Vcpu
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DeliveryMode, Trigger

ACCEPTED, NOT_ACCEPTED, UNDEFINED = Verdict.ACCEPTED, Verdict.NOT_ACCEPTED, Verdict.UNDEFINED


def address_match(target: Vcpu, message: Message, source: Vcpu | None,
                  mixed_dfr: bool) -> tuple[Verdict, Reason]:
    """Does ``target`` recognise itself in the destination of ``message``?"""
    if not target.present:
        return NOT_ACCEPTED, because(Code.ARCH_HW_DISABLED)
    match message.dest:
        case ToSelf():
            ok = source is not None and source.vcpu_id == target.vcpu_id
            return (ACCEPTED if ok else NOT_ACCEPTED), because(Code.ARCH_SHORTHAND, shorthand="self", matched=ok)
        case ToAll():
            return ACCEPTED, because(Code.ARCH_SHORTHAND, shorthand="all", matched=True)
        case ToAllButSelf():
            ok = source is None or source.vcpu_id != target.vcpu_id
            return (ACCEPTED if ok else NOT_ACCEPTED), because(Code.ARCH_SHORTHAND,
                                                               shorthand="all-but-self", matched=ok)
        case _:
            pass
    if source is not None and source.mode is not target.mode:
        return UNDEFINED, because(Code.ARCH_MIXED_MODES, source_mode=source.mode.value, target_mode=target.mode.value)
    x2 = target.mode is ApicMode.X2APIC
    match message.dest:
        case Broadcast(id=dest_id):
            if x2 and dest_id == 0xFF:
                return UNDEFINED, because(Code.ARCH_PHYSICAL_FF_UNICAST)
            if not x2 and dest_id != 0xFF:
                return UNDEFINED, because(Code.ARCH_PHYSICAL_TOO_WIDE, dest=dest_id, broadcast=True)
            return ACCEPTED, because(Code.ARCH_BROADCAST, dest=dest_id)
        case Physical(id=dest_id):
            if x2:
                ok = dest_id == target.x2apic_id
                return (ACCEPTED if ok else NOT_ACCEPTED), because(Code.ARCH_PHYSICAL_X2APIC,
                                                                   dest=dest_id, x2apic_id=target.x2apic_id, matched=ok)
            if dest_id > 0xFF:
                return NOT_ACCEPTED, because(Code.ARCH_PHYSICAL_TOO_WIDE, dest=dest_id, broadcast=False)
            ok = dest_id == target.xapic_id
            return (ACCEPTED if ok else NOT_ACCEPTED), because(Code.ARCH_PHYSICAL_XAPIC,
                                                               dest=dest_id, xapic_id=target.xapic_id, matched=ok)
        case Logical(mda=mda):
            return _logical_match(target, mda, mixed_dfr)
    raise AssertionError(message.dest)


def _logical_match(target: Vcpu, mda: int, mixed_dfr: bool) -> tuple[Verdict, Reason]:
    if target.mode is ApicMode.X2APIC:
        ldr = target.effective_ldr
        ok = (ldr >> 16) == (mda >> 16) and (ldr & mda & 0xFFFF) != 0
        return (ACCEPTED if ok else NOT_ACCEPTED), because(Code.ARCH_LOGICAL_X2APIC,
                                                           cluster=ldr >> 16, mask=ldr & 0xFFFF, mda=mda, matched=ok)
    if mda > 0xFF:
        return NOT_ACCEPTED, because(Code.ARCH_LOGICAL_TOO_WIDE, mda=mda)
    logical_id = target.logical_id
    model = target.dfr_model
    if model is DfrModel.OTHER:
        return UNDEFINED, because(Code.ARCH_DFR_UNDEFINED, model=target.dfr >> 28)
    if mixed_dfr and logical_id:
        return UNDEFINED, because(Code.ARCH_DFR_MIXED)
    if model is DfrModel.FLAT:
        ok = (logical_id & mda) != 0
        return (ACCEPTED if ok else NOT_ACCEPTED), because(Code.ARCH_LOGICAL_FLAT,
                                                           logical_id=logical_id, mda=mda, matched=ok)
    if (mda >> 4) == 0xF:
        return UNDEFINED, because(Code.ARCH_CLUSTER_F, mask=mda & 0xF)
    ok = (mda >> 4) == (logical_id >> 4) and (mda & logical_id & 0xF) != 0
    why = because(Code.ARCH_LOGICAL_CLUSTER, cluster=logical_id >> 4, bits=logical_id & 0xF, mda=mda, matched=ok)
    return (ACCEPTED if ok else NOT_ACCEPTED), why


def acceptance(target: Vcpu, message: Message) -> tuple[Verdict, Effect | None, Reason]:
    """What an addressed APIC does with the message, by delivery mode
    (docs/routing.md#architecture-delivery-modes-and-acceptance)."""
    mode = message.delivery
    vid = target.vcpu_id
    via_message_bus = message.origin in (Origin.MSI, Origin.IOAPIC)
    if mode in (DeliveryMode.FIXED, DeliveryMode.LOWEST):
        if message.vector < 16:
            return NOT_ACCEPTED, None, because(Code.ARCH_ILLEGAL_VECTOR, vector=message.vector)
        if not target.sw_enabled:
            return NOT_ACCEPTED, None, because(Code.ARCH_SW_DISABLED, delivery=mode.label.upper())
        if message.origin is Origin.IPI and message.trigger is Trigger.LEVEL and not message.level:
            return UNDEFINED, None, because(Code.ARCH_LEVEL_DEASSERT_IPI)
        return (ACCEPTED, Effect(vid, EffectKind.IRR, message.vector, message.trigger is Trigger.LEVEL),
                because(Code.ARCH_IRR, vector=message.vector))
    if mode is DeliveryMode.NMI:
        return ACCEPTED, Effect(vid, EffectKind.NMI), because(Code.ARCH_NMI)
    if mode is DeliveryMode.SMI:
        return ACCEPTED, Effect(vid, EffectKind.SMI), because(Code.ARCH_SMI)
    if mode is DeliveryMode.INIT:
        if message.trigger is Trigger.LEVEL and not message.level:
            return UNDEFINED, None, because(Code.ARCH_INIT_DEASSERT)
        return ACCEPTED, Effect(vid, EffectKind.INIT), because(Code.ARCH_INIT)
    if mode is DeliveryMode.SIPI:
        if via_message_bus:
            return UNDEFINED, None, because(Code.ARCH_SIPI_RESERVED)
        return ACCEPTED, Effect(vid, EffectKind.SIPI, message.vector), because(Code.ARCH_SIPI, vector=message.vector)
    if mode is DeliveryMode.REMRD:
        return UNDEFINED, None, because(Code.ARCH_REMRD)
    if via_message_bus:
        return UNDEFINED, None, because(Code.ARCH_EXTINT)
    return UNDEFINED, None, because(Code.ARCH_EXTINT_ICR)
