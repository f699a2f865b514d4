"""The v4.9/v4.10 slow-path predicate (``kvm_apic_mda`` and the match helpers before v4.11).

The MDA format follows the *source's* mode for an IPI (the target's for an MSI/IOAPIC
message): in xAPIC format it is ``dest << 24`` (u32), and an xAPIC target takes as broadcast any
MDA whose top byte is 0xFF. So an x2APIC-mode sender reaches an xAPIC-mode target with
``dest == xapic_id << 24``, and its 0xFFFFFFFF broadcast reaches xAPIC targets too. There is no
hotplug hack. v4.11 (the rework that came with 5bd5db385b3e "KVM: x86: allow hotplug of VCPU with
APIC ID over 0xff") made ``kvm_apic_mda`` return the destination ID.
"""

from __future__ import annotations

from apicmap.domain.message import X2APIC_BROADCAST, XAPIC_BROADCAST, Broadcast, Destination, Logical, Physical
from apicmap.domain.reasons import Code, Reason, because
from apicmap.domain.vm import DFR_CLUSTER, DFR_FLAT, Vcpu
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DestMode
from apicmap.model.match import match_dest, why_match


def mda_v4_9(target: Vcpu, source: Vcpu | None, dest_id: int, broadcast_quirk: bool) -> int:
    x2apic_mda = (source if source is not None else target).mode is ApicMode.X2APIC
    if broadcast_quirk and source is None and dest_id == XAPIC_BROADCAST and x2apic_mda:
        return X2APIC_BROADCAST
    return dest_id if x2apic_mda else (dest_id << 24) & 0xFFFFFFFF


def _broadcast(target: Vcpu, mda: int) -> bool:
    if target.mode is ApicMode.X2APIC:
        return mda == X2APIC_BROADCAST
    return (mda >> 24) == XAPIC_BROADCAST


def match_dest_v4_9(target: Vcpu, source: Vcpu | None, dest: Destination, broadcast_quirk: bool) -> bool:
    if not isinstance(dest, (Physical, Logical, Broadcast)):
        return match_dest(target, source, dest, broadcast_quirk)  # shorthands: unchanged since
    dest_id, dest_mode = dest.address
    mda = mda_v4_9(target, source, dest_id, broadcast_quirk)
    if _broadcast(target, mda):
        return True
    x2 = target.mode is ApicMode.X2APIC
    if dest_mode is DestMode.PHYSICAL:
        return mda == (target.vcpu_id if x2 else target.xapic_id << 24)
    if x2:
        ldr = target.effective_ldr
        return (ldr >> 16) == (mda >> 16) and (ldr & mda & 0xFFFF) != 0
    logical_id = (target.ldr >> 24) & 0xFF
    mda8 = (mda >> 24) & 0xFF
    if target.dfr == DFR_FLAT:
        return (logical_id & mda8) != 0
    if target.dfr == DFR_CLUSTER:
        return (logical_id >> 4) == (mda8 >> 4) and (logical_id & mda8 & 0xF) != 0
    return False


def why_match_v4_9(target: Vcpu, source: Vcpu | None, dest: Destination, broadcast_quirk: bool) -> Reason:
    if not isinstance(dest, (Physical, Logical, Broadcast)):
        return why_match(target, source, dest, broadcast_quirk)
    matched = match_dest_v4_9(target, source, dest, broadcast_quirk)
    mda = mda_v4_9(target, source, dest.address[0], broadcast_quirk)
    x2apic_format = (source if source is not None else target).mode is ApicMode.X2APIC
    return because(Code.MATCH_V4_9, mda=mda, x2apic_format=x2apic_format, from_sender=source is not None,
                   matched=matched)
