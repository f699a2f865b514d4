"""Where KVM's fast path and slow path disagree, by name.

KVM intends the optimized map to be a cache of the slow per-vCPU match. It is not quite one.
``fast_slow_difference`` names the documented reason a given (VM, message) may differ, or
returns None when the two paths must agree. Tests assert each named case really differs
and that no unnamed difference exists.
"""

from __future__ import annotations

from apicmap.domain.message import X2APIC_BROADCAST, XAPIC_BROADCAST, Message
from apicmap.domain.vm import DFR_CLUSTER, DFR_FLAT, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DestMode, Shorthand
from apicmap.model.apic_map import ApicMap, LogicalMode
from apicmap.model.policy import KernelPolicy, PhysMapRule

# Names of the documented differences (docs/routing.md sections in brackets).
HOTPLUG_FIRST_WINS = ("hotplug hack / first-wins physical aliasing in the map "
                      "(docs/routing.md#current-algorithm-v63-and-later x2apic_format, "
                      "docs/routing.md#legacy-algorithm-v411-to-v62)")
NO_HACK_IN_MAP = ("6.3+ map without x2apic_format has no hotplug hack; the slow path has "
                  "(docs/routing.md#per-release-outcomes-for-sample-configurations "
                  "D)")
X2APIC_LOGICAL_VIA_PHYS_MAP = ("x2APIC logical lookups go through phys_map, reaching xAPIC vCPUs "
                               "(docs/routing.md#kvm-fast-path step "
                               "6)")
SW_DISABLED_LOGICAL_DROP = ("logical_mode SW_DISABLED drops logical interrupts (6.3+, "
                            "docs/routing.md#current-algorithm-v63-and-later)")
SW_DISABLED_NOT_IN_LOGICAL_MAP = ("sw-disabled APICs are left out of the logical map (v5.3+, "
                                  "docs/routing.md#disabled-and-degraded-maps)")
LOWEST_PRIORITY_ARBITRATION = ("lowest priority: the map hashes over mask bits (holes included), "
                               "the slow path over candidates (docs/routing.md#kvm-fast-path step 8)")
LEGACY_LAST_WINS = ("pre-6.3 logical map: last writer wins, multi-bit IDs by their lowest bit "
                    "(docs/routing.md#legacy-algorithm-v411-to-v62)")
UNKNOWN_DFR = ("a DFR that is neither flat nor cluster is CLUSTER to the map, nothing to the slow path "
               "(docs/routing.md#ldr-and-dfr)")
WIDE_MDA_TRUNCATED = ("the xAPIC logical map reads only MDA bits 7:0; the slow path compares the cluster "
                      "with all of MDA[31:4] (docs/routing.md#kvm-fast-path step 6, "
                      "docs/routing.md#kvm_apic_match_dest)")
BROADCAST_MISMATCH = ("the fast path's broadcast test differs from the slow path's per-target one "
                      "(docs/routing.md#kvm-fast-path step 4, "
                      "docs/routing.md#kvm_apic_match_dest)")
NO_TARGET_RESULT = ("no target: the fast path returns 0, the slow path -1 (EPERM) "
                    "(docs/routing.md#kvm-msi-and-ioapic-decoding)")
V4_9_MDA = ("v4.9/4.10: the slow path's MDA is dest << 24 (u32) in the sender's format and phys_map's last "
            "claimant wins; the map has neither")


def fast_slow_difference(vm: VmState, amap: ApicMap, policy: KernelPolicy, message: Message) -> list[str]:
    """Every documented reason the two paths may differ for this message (empty: must agree)."""
    reasons: list[str] = []
    if message.shorthand is not Shorthand.NONE or amap.phys is None:
        return reasons  # shorthands other than SELF and NULL maps always take the slow path
    present = [v for v in vm.vcpus if v.present]
    dest, dest_mode = message.dest.address
    if dest in (XAPIC_BROADCAST, X2APIC_BROADCAST):
        reasons.append(BROADCAST_MISMATCH)
    lowest = message.lowest_priority
    if policy.phys_map is PhysMapRule.LAST_WINS:
        source = vm.vcpu(message.source) if message.source is not None else None
        ids = [v.vcpu_id if v.mode is ApicMode.X2APIC else v.xapic_id for v in present]
        if dest > 0xFF or len(set(ids)) != len(ids) or any(v.mode is ApicMode.XAPIC and v.vcpu_id > 0xFF
                                                         for v in present) \
                or (source is not None and any(v.mode is not source.mode for v in present)):
            reasons.append(V4_9_MDA)
    if dest_mode is DestMode.PHYSICAL:
        hacked = vm.use_32bit_ids or policy.phys_map is PhysMapRule.FIRST_WINS_HOTPLUG
        ids = [v.vcpu_id if v.mode is ApicMode.X2APIC else v.xapic_id for v in present]
        aliased = len(set(ids)) != len(ids) or any(
            v.mode is ApicMode.XAPIC and v.vcpu_id > 0xFF and v.vcpu_id in ids for v in present)
        if hacked and (aliased or any(v.mode is ApicMode.XAPIC and v.vcpu_id > 0xFF for v in present)):
            reasons.append(HOTPLUG_FIRST_WINS)
        if not hacked and dest > 0xFF and any(v.mode is ApicMode.XAPIC and v.vcpu_id == dest for v in present):
            reasons.append(NO_HACK_IN_MAP)
        if lowest and any(not v.sw_enabled for v in present):
            reasons.append(NO_TARGET_RESULT)
        return reasons
    mode = amap.logical_mode
    if mode in (LogicalMode.MAP_DISABLED, LogicalMode.INVALID):
        return reasons
    if mode is LogicalMode.SW_DISABLED:
        reasons.append(SW_DISABLED_LOGICAL_DROP)
    if mode is LogicalMode.X2APIC and any(v.mode is not ApicMode.X2APIC for v in present):
        reasons.append(X2APIC_LOGICAL_VIA_PHYS_MAP)
    if mode in (LogicalMode.XAPIC_FLAT, LogicalMode.XAPIC_CLUSTER):
        # In an xAPIC logical mode every x2APIC vCPU present is sw-disabled (else the mode
        # would be X2APIC or disabled); sw-disabled APICs still match in the slow path.
        if policy.logical_map_skips_sw_disabled and any(not v.sw_enabled for v in present):
            reasons.append(SW_DISABLED_NOT_IN_LOGICAL_MAP)
        if any(v.mode is ApicMode.XAPIC and v.ldr and v.dfr not in (DFR_FLAT, DFR_CLUSTER) for v in present):
            reasons.append(UNKNOWN_DFR)
        if mode is LogicalMode.XAPIC_CLUSTER and dest > 0xFF:
            reasons.append(WIDE_MDA_TRUNCATED)
        ldrs = [(v.ldr >> 24) & 0xFF for v in present if v.mode is ApicMode.XAPIC and v.ldr >> 24]
        flat = mode is LogicalMode.XAPIC_FLAT
        pairs = [(a, b) for i, a in enumerate(ldrs) for b in ldrs[i + 1:]]
        overlapping = any(a & b if flat else (a >> 4 == b >> 4 and a & b & 0xF) for a, b in pairs)
        members = [lid if flat else lid & 0xF for lid in ldrs]
        multibit = any(m & (m - 1) for m in members)
        if overlapping or multibit:
            reasons.append(LEGACY_LAST_WINS)
    if lowest:
        reasons.append(LOWEST_PRIORITY_ARBITRATION)
    return reasons
