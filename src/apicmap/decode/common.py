"""What both decoders share: refusals, the one destination form, and ICR splitting."""

from __future__ import annotations

from dataclasses import dataclass

from apicmap.domain.message import (
    Broadcast,
    Destination,
    IcrInjection,
    Logical,
    Message,
    Origin,
    Physical,
    SelfIpiInjection,
    ToAll,
    ToAllButSelf,
    ToSelf,
)
from apicmap.domain.vm import VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.icr import Icr
from apicmap.encoding.kinds import DestMode, Shorthand, Trigger


@dataclass(frozen=True, slots=True)
class Refused:
    """The injection was refused before any delivery; ``reason`` says by whom and why."""

    reason: str


def remote_irr_reason(pin: int) -> str:
    """Why a level-triggered redirection entry with Remote IRR (bit 14) set sends nothing."""
    return (f"IOAPIC pin {pin} is level-triggered with Remote IRR set: it waits for the EOI, "
            "nothing is sent")


def destination(shorthand: Shorthand, dest_id: int, dest_mode: DestMode, width: int) -> Destination:
    """The explicit destination: a shorthand, an all-ones broadcast in the encoding's width, or an ID."""
    if shorthand is Shorthand.SELF:
        return ToSelf(dest_id, dest_mode)
    if shorthand is Shorthand.ALL:
        return ToAll(dest_id, dest_mode)
    if shorthand is Shorthand.ALL_BUT_SELF:
        return ToAllButSelf(dest_id, dest_mode)
    all_ones = (1 << width) - 1
    if dest_id == all_ones:
        return Broadcast(dest_id, dest_mode)
    if dest_mode is DestMode.LOGICAL:
        return Logical(dest_id)
    return Physical(dest_id)


def icr_message(icr: Icr, width: int, source: int) -> Message:
    return Message(
        vector=icr.vector,
        delivery=icr.delivery,
        dest=destination(icr.shorthand, icr.dest, icr.dest_mode, width),
        trigger=icr.trigger,
        level=icr.level,
        redirection_hint=False,
        origin=Origin.IPI,
        source=source,
    )


def source_mode(injection: IcrInjection | SelfIpiInjection, vm: VmState) -> ApicMode | Refused:
    if not vm.has_vcpu(injection.source):
        return Refused(f"source vCPU {injection.source} does not exist")
    return vm.vcpu(injection.source).mode


def split_icr(injection: IcrInjection, mode: ApicMode) -> tuple[Icr, int]:
    """The ICR as the source's mode reads it, and the destination width in bits."""
    if mode is ApicMode.X2APIC:
        return Icr.from_x2apic(injection.icr), 32
    return Icr.from_xapic(injection.icr & 0xFFFFFFFF, injection.icr >> 32), 8


def describe_message(message: Message) -> str:
    """One line, for explanations."""
    match message.dest:
        case Physical(id=i):
            where = f"physical 0x{i:x}"
        case Logical(mda=m):
            where = f"logical 0x{m:x}"
        case Broadcast(id=i, dest_mode=dm):
            where = f"{'logical' if dm is DestMode.LOGICAL else 'physical'} 0x{i:x} (all ones)"
        case ToSelf():
            where = "shorthand self"
        case ToAll():
            where = "shorthand all"
        case ToAllButSelf():
            where = "shorthand all-but-self"
    parts = [f"{message.origin.value}", message.delivery.label, f"vector 0x{message.vector:02x}", where,
             message.trigger.name.lower()]
    if message.trigger is Trigger.LEVEL:
        parts.append("assert" if message.level else "de-assert")
    if message.redirection_hint:
        parts.append("RH")
    if message.source is not None:
        parts.append(f"from vCPU {message.source}")
    return ", ".join(parts)
