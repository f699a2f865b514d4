"""Decode an injection as a peer's interrupt controller does (its ``msi_decode`` rule for MSIs).

For peers an ``MsiInjection`` is the message the device writes: ``address_hi`` is the upper half
of the 64-bit MSI address, ``address_lo`` the lower one. ICRs and SELF_IPI are decoded without
reserved-bit faults (which peers do not agree on and which the profiles do not record); IOAPIC
redirection entries carry the 8-bit destination of bits 63:56.
"""

from __future__ import annotations

from apicmap.decode.common import Refused, destination, icr_message, source_mode, split_icr
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
from apicmap.domain.reasons import Code, Reason, because
from apicmap.domain.vm import VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.ioapic import RedirectionEntry
from apicmap.encoding.kinds import DeliveryMode, DestMode, Shorthand, Trigger
from apicmap.encoding.msi import MsiAddress, MsiData
from apicmap.profiles.policy import MsiDecode, PeerPolicy


def decode_for_peer(injection: Injection, vm: VmState, policy: PeerPolicy) -> tuple[Message | Refused, Reason | None]:
    """The message, and a note on how the MSI destination was read (None for other injections)."""
    match injection:
        case MsiInjection(address_lo=lo, address_hi=hi, data=raw_data):
            address = MsiAddress.from_value(lo & 0xFFFFFFFF)
            data = MsiData.from_value(raw_data & 0xFFFFFFFF)
            dest, width, dest_mode = address.dest, 8, address.dest_mode
            rule = policy.msi_decode
            if rule is MsiDecode.ADDRESS_HI and hi:
                # apic_send_msi: dest |= address >> 32 (the remapping unit's format).
                dest, width = dest | hi, 32
            elif rule is MsiDecode.EXT_DEST_11_5 and address.ext_dest:
                dest, width = dest | address.ext_dest << 8, 32  # 15 bits: no all-ones form
            elif rule is MsiDecode.BITS_8_LOGICAL_NEEDS_RH and not address.redirection_hint:
                dest_mode = DestMode.PHYSICAL  # "if RH is 0, the DM bit is ignored"
            # A note only where the peer's reading differs from the plain 8-bit one.
            note = None
            if dest != address.dest or dest_mode is not address.dest_mode:
                note = because(Code.PEER_NOTE_MSI_DECODE, rule=rule.value, dest=dest,
                               logical=dest_mode is DestMode.LOGICAL)
            message = Message(vector=data.vector, delivery=data.delivery,
                              dest=destination(Shorthand.NONE, dest, dest_mode, width), trigger=data.trigger,
                              level=data.level if data.trigger is Trigger.LEVEL else True,
                              redirection_hint=address.redirection_hint, origin=Origin.MSI)
            return message, note
        case IcrInjection():
            mode = source_mode(injection, vm)
            if isinstance(mode, Refused):
                return mode, None
            if mode is ApicMode.DISABLED:
                return Refused("source APIC is hardware-disabled: it sends nothing"), None
            icr, width = split_icr(injection, mode)
            return icr_message(icr, width, injection.source), None
        case SelfIpiInjection():
            mode = source_mode(injection, vm)
            if isinstance(mode, Refused):
                return mode, None
            if mode is not ApicMode.X2APIC:
                return Refused("WRMSR 0x83F: SELF_IPI exists only in x2APIC mode"), None
            return Message(vector=injection.value & 0xFF, delivery=DeliveryMode.FIXED, dest=ToSelf(),
                           trigger=Trigger.EDGE, level=True, redirection_hint=False, origin=Origin.SELF_IPI,
                           source=injection.source), None
        case IoapicInjection(rte=raw_rte):
            rte = RedirectionEntry.from_value(raw_rte)
            if rte.masked:
                return Refused(f"IOAPIC pin {injection.pin} is masked: nothing is sent"), None
            return Message(vector=rte.vector, delivery=rte.delivery,
                           dest=destination(Shorthand.NONE, rte.dest, rte.dest_mode, 8), trigger=rte.trigger,
                           level=True, redirection_hint=False, origin=Origin.IOAPIC), None
    raise TypeError(f"not an injection: {injection!r}")
