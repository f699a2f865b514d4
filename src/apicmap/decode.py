"""Layer 2: decode an injection (raw encoding) into a ``Message``.

The architecture and KVM decode the same bits differently, so there are two decoders:
- ``decode_for_kvm`` follows kvm-routing.md §5 (MSI) and §6 (ICR, SELF_IPI), per release;
- ``decode_for_arch`` follows the SDM (architecture-and-peers.md A6, A10, A11, A12).
A decoder returns ``Refused`` when the write itself fails (EINVAL, #GP) or nothing is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from .encoding.icr import Icr, self_ipi_vector
from .encoding.ioapic import RedirectionEntry
from .encoding.msi import MsiAddress, MsiData, kvm_msi_dest
from .errors import EncodingError
from .message import (
    Broadcast,
    DeliveryMode,
    Destination,
    DestMode,
    IcrInjection,
    Injection,
    IoapicInjection,
    Logical,
    Message,
    MsiInjection,
    Origin,
    Physical,
    SelfIpiInjection,
    Shorthand,
    ToAll,
    ToAllButSelf,
    ToSelf,
    Trigger,
)
from .state import ApicMode, VmState

XAPIC_BROADCAST = 0xFF
X2APIC_BROADCAST = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Refused:
    """The injection was refused before any delivery; ``reason`` says by whom and why."""

    reason: str


@dataclass(frozen=True, slots=True)
class KvmDecodeRules:
    """The release-dependent parts of KVM's decoding."""

    use_32bit_ids: bool
    icr_reserved_bits_fault: bool  # v6.12+, kvm-routing.md §6.2
    self_ipi_reserved_bits_fault: bool  # v6.3+, kvm-routing.md §6.2


def destination(shorthand: Shorthand, dest_id: int, dest_mode: DestMode, width: int) -> Destination:
    """The explicit destination: a shorthand, an all-ones broadcast in the encoding's width, or an ID."""
    if shorthand is Shorthand.SELF:
        return ToSelf()
    if shorthand is Shorthand.ALL:
        return ToAll()
    if shorthand is Shorthand.ALL_BUT_SELF:
        return ToAllButSelf()
    all_ones = (1 << width) - 1
    if dest_id == all_ones:
        return Broadcast(dest_id, dest_mode)
    if dest_mode is DestMode.LOGICAL:
        return Logical(dest_id)
    return Physical(dest_id)


def _icr_message(icr: Icr, width: int, source: int) -> Message:
    return Message(
        vector=icr.vector,
        delivery=icr.delivery,
        dest=destination(icr.shorthand, icr.dest, icr.dest_mode, width),
        dest_id=icr.dest,
        dest_mode=icr.dest_mode,
        trigger=icr.trigger,
        level=icr.level,
        redirection_hint=False,
        origin=Origin.IPI,
        source=source,
    )


def _source_mode(injection: IcrInjection | SelfIpiInjection, vm: VmState) -> ApicMode | Refused:
    if not vm.has_vcpu(injection.source):
        return Refused(f"source vCPU {injection.source} does not exist")
    return vm.vcpu(injection.source).mode


def _split_icr(injection: IcrInjection, mode: ApicMode) -> tuple[Icr, int]:
    """The ICR as the source's mode reads it, and the destination width in bits."""
    if mode is ApicMode.X2APIC:
        return Icr.from_x2apic(injection.icr), 32
    return Icr.from_xapic(injection.icr & 0xFFFFFFFF, injection.icr >> 32), 8


def decode_for_kvm(injection: Injection, vm: VmState, rules: KvmDecodeRules) -> Message | Refused:
    match injection:
        case MsiInjection(address_lo=lo, address_hi=hi, data=raw_data):
            try:
                dest_id = kvm_msi_dest(lo, hi, rules.use_32bit_ids)
            except EncodingError:
                return Refused(
                    "KVM_SIGNAL_MSI: EINVAL: with USE_32BIT_IDS address_hi bits 7:0 must be 0 "
                    "(kvm-routing.md §5)"
                )
            address = MsiAddress.from_value(lo)
            data = MsiData.from_value(raw_data)
            width = 32 if rules.use_32bit_ids and hi else 8
            return Message(
                vector=data.vector,
                delivery=data.delivery,
                dest=destination(Shorthand.NONE, dest_id, address.dest_mode, width),
                dest_id=dest_id,
                dest_mode=address.dest_mode,
                trigger=data.trigger,
                level=True,  # KVM forces level = 1 for MSIs; data bit 14 is ignored (§5)
                redirection_hint=address.redirection_hint,
                origin=Origin.MSI,
            )
        case IcrInjection():
            mode = _source_mode(injection, vm)
            if isinstance(mode, Refused):
                return mode
            if mode is ApicMode.DISABLED:
                return Refused("source APIC is hardware-disabled: neither its ICR MSR nor MMIO is decoded (§1.8)")
            icr, width = _split_icr(injection, mode)
            if mode is ApicMode.X2APIC and rules.icr_reserved_bits_fault and icr.reserved:
                return Refused(
                    f"WRMSR 0x830: #GP: reserved ICR bits 0x{icr.reserved:x} set (v6.12+, kvm-routing.md §6.2)"
                )
            return _icr_message(icr, width, injection.source)
        case SelfIpiInjection():
            mode = _source_mode(injection, vm)
            if isinstance(mode, Refused):
                return mode
            if mode is not ApicMode.X2APIC:
                return Refused("WRMSR 0x83F: #GP: SELF_IPI exists only in x2APIC mode (§1.8)")
            vector, reserved = self_ipi_vector(injection.value)
            if reserved and rules.self_ipi_reserved_bits_fault:
                return Refused(f"WRMSR 0x83F: #GP: bits 0x{reserved:x} above the vector set (v6.3+, §6.2)")
            # KVM sends SELF | vector: FIXED, edge, and no ASSERT bit (§6.2).
            return Message(vector, DeliveryMode.FIXED, ToSelf(), 0, DestMode.PHYSICAL,
                           Trigger.EDGE, False, False, Origin.SELF_IPI, injection.source)
        case IoapicInjection(rte=raw_rte):
            rte = RedirectionEntry.from_value(raw_rte)
            if rte.masked:
                return Refused(f"IOAPIC pin {injection.pin} is masked: nothing is sent")
            # The in-kernel IOAPIC uses only the 8-bit RTE destination, level 1, no RH (§5).
            return Message(rte.vector, rte.delivery,
                           destination(Shorthand.NONE, rte.dest, rte.dest_mode, 8), rte.dest,
                           rte.dest_mode, rte.trigger, True, False, Origin.IOAPIC)
    raise TypeError(f"not an injection: {injection!r}")


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
                # A 32-bit destination exists only after interrupt remapping (A11); read the
                # message as the remapping unit would deliver it.
                dest_id, width = address.dest | (hi & 0xFFFFFF00), 32
                notes.append("address_hi: 32-bit destination as delivered by interrupt remapping")
            elif address.ext_dest and not address.remappable:
                dest_id, width = address.dest | (address.ext_dest << 8), 15
                notes.append("address bits 11:5: 15-bit extended destination ID (paravirtual, A11)")
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
                    dest_id=dest_id,
                    dest_mode=address.dest_mode,
                    trigger=data.trigger,
                    level=data.level if data.trigger is Trigger.LEVEL else True,
                    redirection_hint=address.redirection_hint,
                    origin=Origin.MSI,
                ),
                tuple(notes),
            )
        case IcrInjection():
            mode = _source_mode(injection, vm)
            if isinstance(mode, Refused):
                return ArchDecoded(mode)
            if mode is ApicMode.DISABLED:
                return ArchDecoded(Refused("source APIC is disabled: it cannot send IPIs (A2)"))
            icr, width = _split_icr(injection, mode)
            if mode is ApicMode.X2APIC and icr.reserved:
                return ArchDecoded(Refused(f"WRMSR 0x830: #GP: reserved ICR bits 0x{icr.reserved:x} set (A6)"))
            return ArchDecoded(_icr_message(icr, width, injection.source))
        case SelfIpiInjection():
            mode = _source_mode(injection, vm)
            if isinstance(mode, Refused):
                return ArchDecoded(mode)
            if mode is not ApicMode.X2APIC:
                return ArchDecoded(Refused("WRMSR 0x83F: #GP: SELF_IPI exists only in x2APIC mode (A10)"))
            vector, reserved = self_ipi_vector(injection.value)
            if reserved:
                return ArchDecoded(Refused(f"WRMSR 0x83F: #GP: reserved bits 0x{reserved:x} set (A10)"))
            return ArchDecoded(Message(vector, DeliveryMode.FIXED, ToSelf(), 0, DestMode.PHYSICAL,
                                       Trigger.EDGE, True, False, Origin.SELF_IPI, injection.source))
        case IoapicInjection(rte=raw_rte):
            rte = RedirectionEntry.from_value(raw_rte)
            if rte.masked:
                return ArchDecoded(Refused(f"IOAPIC pin {injection.pin} is masked: nothing is sent"))
            return ArchDecoded(Message(rte.vector, rte.delivery,
                                       destination(Shorthand.NONE, rte.dest, rte.dest_mode, 8), rte.dest,
                                       rte.dest_mode, rte.trigger, True, False, Origin.IOAPIC))
    raise TypeError(f"not an injection: {injection!r}")


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
