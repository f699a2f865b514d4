"""Decode an injection as the architecture does (SDM Vol. 3A 11.6.1 ICR, 11.11 MSI, 11.12.11 SELF IPI)."""

from __future__ import annotations

from dataclasses import dataclass

from apicmap.decode.common import Refused, destination, icr_message, remote_irr_reason, source_mode, split_icr
from apicmap.domain.message import (
    IcrInjection,
    Injection,
    IoapicInjection,
    Message,
    MsiInjection,
    Origin,
    SelfIpiInjection,
    ToSelf,
)
from apicmap.domain.vm import VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.icr import self_ipi_vector
from apicmap.encoding.ioapic import RedirectionEntry
from apicmap.encoding.kinds import DeliveryMode, Shorthand, Trigger
from apicmap.encoding.msi import MsiAddress, MsiData


@dataclass(frozen=True, slots=True)
class ArchDecoded:
    message: Message | Refused
    notes: tuple[str, ...] = ()


def decode_for_arch(injection: Injection, vm: VmState) -> ArchDecoded:
    match injection:
        case MsiInjection(address_lo=lo, address_hi=hi, data=raw_data):
            address = MsiAddress.from_value(lo)
            data = MsiData.from_value(raw_data)
            notes: list[str] = []
            if hi:
                # A 32-bit destination exists only after interrupt remapping
                # (docs/routing.md#architecture-msi-and-ioapic); read the
                # message as the remapping unit would deliver it.
                dest_id, width = address.dest | (hi & 0xFFFFFF00), 32
                notes.append("address_hi: 32-bit destination as delivered by interrupt remapping")
            elif address.ext_dest and not address.remappable:
                dest_id, width = address.dest | (address.ext_dest << 8), 15
                notes.append("address bits 11:5: 15-bit extended destination ID (paravirtual; "
                             "docs/routing.md#architecture-msi-and-ioapic)")
            else:
                dest_id, width = address.dest, 8
            if address.base != 0xFEE:
                notes.append(f"address bits 31:20 are 0x{address.base:03x}, not 0xFEE: not an MSI")
            return ArchDecoded(
                Message(
                    vector=data.vector,
                    delivery=data.delivery,
                    # A 15-bit destination has no all-ones broadcast form: classify it as 32-bit.
                    dest=destination(Shorthand.NONE, dest_id, address.dest_mode, 32 if width == 15 else width),
                    trigger=data.trigger,
                    level=data.level if data.trigger is Trigger.LEVEL else True,
                    redirection_hint=address.redirection_hint,
                    origin=Origin.MSI,
                ),
                tuple(notes),
            )
        case IcrInjection():
            mode = source_mode(injection, vm)
            if isinstance(mode, Refused):
                return ArchDecoded(mode)
            if mode is ApicMode.DISABLED:
                return ArchDecoded(Refused("source APIC is disabled: it cannot send IPIs "
                                           "(docs/routing.md#ia32_apic_base-and-the-four-states)"))
            icr, width = split_icr(injection, mode)
            if mode is ApicMode.X2APIC and icr.reserved:
                return ArchDecoded(Refused(f"WRMSR 0x830: #GP: reserved ICR bits 0x{icr.reserved:x} set "
                                           f"(docs/routing.md#shorthands-and-the-icr)"))
            return ArchDecoded(icr_message(icr, width, injection.source))
        case SelfIpiInjection():
            mode = source_mode(injection, vm)
            if isinstance(mode, Refused):
                return ArchDecoded(mode)
            if mode is not ApicMode.X2APIC:
                return ArchDecoded(Refused("WRMSR 0x83F: #GP: SELF_IPI exists only in x2APIC mode "
                                           "(docs/routing.md#self-ipi-register)"))
            vector, reserved = self_ipi_vector(injection.value)
            if reserved:
                return ArchDecoded(Refused(f"WRMSR 0x83F: #GP: reserved bits 0x{reserved:x} set "
                                           f"(docs/routing.md#self-ipi-register)"))
            return ArchDecoded(Message(vector=vector, delivery=DeliveryMode.FIXED, dest=ToSelf(),
                                       trigger=Trigger.EDGE, level=True, redirection_hint=False,
                                       origin=Origin.SELF_IPI, source=injection.source))
        case IoapicInjection(rte=raw_rte):
            rte = RedirectionEntry.from_value(raw_rte)
            if rte.masked:
                return ArchDecoded(Refused(f"IOAPIC pin {injection.pin} is masked: nothing is sent"))
            if rte.remote_irr and rte.trigger is Trigger.LEVEL:
                # 82093AA datasheet, I/O redirection table, bit 14 (Remote IRR): set while a
                # level-triggered interrupt awaits its EOI; the IOAPIC sends nothing meanwhile.
                return ArchDecoded(Refused(remote_irr_reason(injection.pin)))
            return ArchDecoded(Message(vector=rte.vector, delivery=rte.delivery,
                                       dest=destination(Shorthand.NONE, rte.dest, rte.dest_mode, 8),
                                       trigger=rte.trigger, level=True, redirection_hint=False,
                                       origin=Origin.IOAPIC))
    raise TypeError(f"not an injection: {injection!r}")


