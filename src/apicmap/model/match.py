"""Layer 3 (KVM): the per-APIC predicate of the slow path, ``kvm_apic_match_dest`` (kvm-routing.md §4.2).

Like Xen's ``vlapic_match_dest`` it takes both the target and the source. Software enable is
not part of matching: sw-disabled APICs match, then refuse FIXED/LOWEST at acceptance.
"""

from __future__ import annotations

from apicmap.domain.vm import DFR_CLUSTER, DFR_FLAT, Vcpu
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DestMode, Shorthand

XAPIC_BROADCAST = 0xFF
X2APIC_BROADCAST = 0xFFFFFFFF


def message_destination_address(target: Vcpu, source: Vcpu | None, dest_id: int,
                                broadcast_quirk: bool) -> int:
    """``kvm_apic_mda``: the in-kernel IOAPIC/MSI broadcast quirk turns 0xFF into the x2APIC
    broadcast for x2APIC-mode targets when there is no source (§4.2)."""
    if broadcast_quirk and source is None and dest_id == XAPIC_BROADCAST and target.mode is ApicMode.X2APIC:
        return X2APIC_BROADCAST
    return dest_id


def is_broadcast_for(target: Vcpu, mda: int) -> bool:
    return mda == (X2APIC_BROADCAST if target.mode is ApicMode.X2APIC else XAPIC_BROADCAST)


def match_physical(target: Vcpu, mda: int) -> bool:
    if is_broadcast_for(target, mda):
        return True
    # Hotplug hack, in every release >= 4.10 and never gated by x2apic_format: an MDA that
    # cannot be an xAPIC ID is compared with the vcpu_id (x2APIC ID) even in xAPIC mode.
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
    # KVM compares the whole 32-bit DFR register: any other value matches nothing (§1.5).
    if target.dfr == DFR_FLAT:
        return (logical_id & mda) != 0
    if target.dfr == DFR_CLUSTER:
        return (logical_id >> 4) == (mda >> 4) and (logical_id & mda & 0xF) != 0
    return False


def match_dest(target: Vcpu, source: Vcpu | None, shorthand: Shorthand, dest_id: int,
               dest_mode: DestMode, broadcast_quirk: bool) -> bool:
    if shorthand is Shorthand.NONE:
        mda = message_destination_address(target, source, dest_id, broadcast_quirk)
        if dest_mode is DestMode.PHYSICAL:
            return match_physical(target, mda)
        return match_logical(target, mda)
    if shorthand is Shorthand.SELF:
        return source is not None and target.vcpu_id == source.vcpu_id
    if shorthand is Shorthand.ALL:
        return True
    return source is None or target.vcpu_id != source.vcpu_id


def explain_match(target: Vcpu, source: Vcpu | None, shorthand: Shorthand, dest_id: int,
                  dest_mode: DestMode, broadcast_quirk: bool) -> str:
    """Why ``match_dest`` says what it says, in words (built only for explanations)."""
    if shorthand is not Shorthand.NONE:
        matched = match_dest(target, source, shorthand, dest_id, dest_mode, broadcast_quirk)
        return f"shorthand {shorthand.label}: {'matched' if matched else 'not matched'}"
    mda = message_destination_address(target, source, dest_id, broadcast_quirk)
    prefix = f"MDA 0x{dest_id:x}->0x{mda:x} (broadcast quirk); " if mda != dest_id else ""
    if is_broadcast_for(target, mda):
        return prefix + f"broadcast (MDA 0x{mda:x} is all ones for a {target.mode.value} target)"
    if dest_mode is DestMode.PHYSICAL:
        if target.mode is ApicMode.X2APIC:
            ok = mda == target.vcpu_id
            return prefix + f"{'matched' if ok else 'not'} physical ID 0x{mda:x} (x2APIC ID 0x{target.vcpu_id:x})"
        if mda > 0xFF:
            ok = mda == target.vcpu_id
            return prefix + (f"{'matched' if ok else 'not matched'}: MDA 0x{mda:x} > 0xFF compared with "
                             f"vcpu_id 0x{target.vcpu_id:x} (hotplug hack)")
        ok = mda == target.xapic_id
        return prefix + f"{'matched' if ok else 'not'} physical ID 0x{mda:02x} (xAPIC ID 0x{target.xapic_id:02x})"
    ok = match_logical(target, mda)
    verdict = "matched" if ok else "not matched"
    if target.mode is ApicMode.X2APIC:
        ldr = target.effective_ldr
        return prefix + f"logical x2APIC cluster 0x{ldr >> 16:x} mask 0x{ldr & 0xFFFF:04x}: {verdict}"
    logical_id = (target.ldr >> 24) & 0xFF
    if target.dfr == DFR_FLAT:
        return prefix + f"logical flat: LDR 0x{logical_id:02x} & MDA 0x{mda:x}: {verdict}"
    if target.dfr == DFR_CLUSTER:
        return prefix + (f"logical cluster {logical_id >> 4} bits 0x{logical_id & 0xF:x} vs MDA 0x{mda:x}: "
                         f"{verdict}")
    return prefix + f"DFR 0x{target.dfr:08x} is neither flat nor cluster: matches nothing"
