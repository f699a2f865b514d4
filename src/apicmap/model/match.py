"""Layer 3 (KVM): the per-APIC predicate of the slow path, ``kvm_apic_match_dest`` (docs/routing.md#kvm-slow-path).

Like Xen's ``vlapic_match_dest`` it takes both the target and the source. Software enable is
not part of matching: sw-disabled APICs match, then refuse FIXED/LOWEST at acceptance.
"""

from __future__ import annotations

from apicmap.domain.message import (
    X2APIC_BROADCAST,
    XAPIC_BROADCAST,
    Broadcast,
    Destination,
    Logical,
    Physical,
    ToAll,
    ToAllButSelf,
    ToSelf,
)
from apicmap.domain.reasons import Code, Reason, because
from apicmap.domain.vm import DFR_CLUSTER, DFR_FLAT, Vcpu
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DestMode


def message_destination_address(target: Vcpu, source: Vcpu | None, dest_id: int,
                                broadcast_quirk: bool) -> int:
    """``kvm_apic_mda``: the in-kernel IOAPIC/MSI broadcast quirk turns 0xFF into the x2APIC
    broadcast for x2APIC-mode targets when there is no source (docs/routing.md#kvm-slow-path)."""
    if broadcast_quirk and source is None and dest_id == XAPIC_BROADCAST and target.mode is ApicMode.X2APIC:
        return X2APIC_BROADCAST
    return dest_id


def is_broadcast_for(target: Vcpu, mda: int) -> bool:
    return mda == (X2APIC_BROADCAST if target.mode is ApicMode.X2APIC else XAPIC_BROADCAST)


def match_physical(target: Vcpu, mda: int) -> bool:
    if is_broadcast_for(target, mda):
        return True
    # Hotplug hack, in every release >= 4.11 and never gated by x2apic_format: an MDA that
    # cannot be an xAPIC ID is compared with the vcpu_id (x2APIC ID) even in xAPIC mode
    # (5bd5db385b3e "KVM: x86: allow hotplug of VCPU with APIC ID over 0xff").
    if target.mode is ApicMode.X2APIC or mda > 0xFF:
        return mda == target.vcpu_id
    return mda == target.xapic_id


def match_logical(target: Vcpu, mda: int) -> bool:
    if is_broadcast_for(target, mda):
        return True
    if target.mode is ApicMode.X2APIC:
        ldr = target.effective_ldr
        return (ldr >> 16) == (mda >> 16) and (ldr & mda & 0xFFFF) != 0
    logical_id = (target.ldr >> 24) & 0xFF
    # KVM compares the whole 32-bit DFR register: any other value matches nothing
    # (kvm_apic_match_logical_addr; docs/routing.md#kvm-apic-state).
    if target.dfr == DFR_FLAT:
        return (logical_id & mda) != 0
    if target.dfr == DFR_CLUSTER:
        return (logical_id >> 4) == (mda >> 4) and (logical_id & mda & 0xF) != 0
    return False


def match_dest(target: Vcpu, source: Vcpu | None, dest: Destination, broadcast_quirk: bool) -> bool:
    """``kvm_apic_match_dest``: does ``target`` recognise itself in ``dest``?"""
    match dest:
        case ToSelf():
            return source is not None and target.vcpu_id == source.vcpu_id
        case ToAll():
            return True
        case ToAllButSelf():
            return source is None or target.vcpu_id != source.vcpu_id
        case Physical() | Logical() | Broadcast():
            dest_id, dest_mode = dest.address
            mda = message_destination_address(target, source, dest_id, broadcast_quirk)
            if dest_mode is DestMode.PHYSICAL:
                return match_physical(target, mda)
            return match_logical(target, mda)


def why_match(target: Vcpu, source: Vcpu | None, dest: Destination, broadcast_quirk: bool) -> Reason:
    """Why ``match_dest`` says what it says, as a reason code (built only for explanations)."""
    matched = match_dest(target, source, dest, broadcast_quirk)
    if not isinstance(dest, (Physical, Logical, Broadcast)):
        return because(Code.MATCH_SHORTHAND, shorthand=_SHORTHAND_NAMES[type(dest)], matched=matched)
    dest_id, dest_mode = dest.address
    mda = message_destination_address(target, source, dest_id, broadcast_quirk)
    quirked = dest_id if mda != dest_id else None
    if is_broadcast_for(target, mda):
        return because(Code.MATCH_BROADCAST, mda=mda, mode=target.mode.value, quirked_from=quirked)
    if dest_mode is DestMode.PHYSICAL:
        if target.mode is ApicMode.X2APIC:
            return because(Code.MATCH_PHYSICAL_X2APIC, mda=mda, x2apic_id=target.vcpu_id, matched=matched,
                           quirked_from=quirked)
        if mda > 0xFF:
            return because(Code.MATCH_PHYSICAL_HOTPLUG, mda=mda, vcpu_id=target.vcpu_id, matched=matched,
                           quirked_from=quirked)
        return because(Code.MATCH_PHYSICAL_XAPIC, mda=mda, xapic_id=target.xapic_id, matched=matched,
                       quirked_from=quirked)
    if target.mode is ApicMode.X2APIC:
        ldr = target.effective_ldr
        return because(Code.MATCH_LOGICAL_X2APIC, cluster=ldr >> 16, mask=ldr & 0xFFFF, mda=mda, matched=matched,
                       quirked_from=quirked)
    logical_id = (target.ldr >> 24) & 0xFF
    if target.dfr == DFR_FLAT:
        return because(Code.MATCH_LOGICAL_FLAT, logical_id=logical_id, mda=mda, matched=matched,
                       quirked_from=quirked)
    if target.dfr == DFR_CLUSTER:
        return because(Code.MATCH_LOGICAL_CLUSTER, cluster=logical_id >> 4, bits=logical_id & 0xF, mda=mda,
                       matched=matched, quirked_from=quirked)
    return because(Code.MATCH_LOGICAL_BAD_DFR, dfr=target.dfr, quirked_from=quirked)


_SHORTHAND_NAMES = {ToSelf: "self", ToAll: "all", ToAllButSelf: "all-but-self"}
