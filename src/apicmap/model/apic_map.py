"""KVM's optimized APIC map (docs/routing.md#kvm-the-optimized-map), built in one O(n) walk of the vCPUs.

Slots hold creation indexes (positions in ``VmState.vcpus``), not vCPU objects, so the map
is a plain value. ``phys is None`` is KVM's NULL map: every delivery takes the slow path.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from apicmap.domain.vm import DFR_FLAT, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.model.policy import IdModifiedInhibit, KernelPolicy, LogicalMapRule, PhysMapRule


class LogicalMode(enum.Enum):
    """v6.3+ ``logical_mode`` (docs/routing.md#current-algorithm-v63-and-later). Pre-6.3 bitmask states map onto these
    too."""

    SW_DISABLED = "SW_DISABLED"  # no sw-enabled APIC with LDR != 0 (6.3+: logical drops)
    XAPIC_CLUSTER = "XAPIC_CLUSTER"
    XAPIC_FLAT = "XAPIC_FLAT"
    X2APIC = "X2APIC"
    MAP_DISABLED = "MAP_DISABLED"  # 6.3+: logical deliveries take the slow path
    INVALID = "INVALID"  # pre-6.3: bitmask empty or mixed, lookups fail -> slow path


# Pre-6.3 mode bits (docs/routing.md#legacy-algorithm-v411-to-v62 step 4).
_LEGACY_BITS = {LogicalMode.XAPIC_CLUSTER: 4, LogicalMode.XAPIC_FLAT: 8, LogicalMode.X2APIC: 16}
_LEGACY_BY_BITS = {bits: mode for mode, bits in _LEGACY_BITS.items()}

INHIBIT_PHYSICAL_ID_ALIASED = "PHYSICAL_ID_ALIASED"
INHIBIT_LOGICAL_ID_ALIASED = "LOGICAL_ID_ALIASED"
INHIBIT_APIC_ID_MODIFIED = "APIC_ID_MODIFIED"


@dataclass(slots=True)
class ApicMap:
    max_apic_id: int
    phys: list[int | None] | None  # None: the map pointer is NULL
    logical_mode: LogicalMode
    # xapic_flat_map[8] and xapic_cluster_map[16][4] share storage in KVM; here: 16 rows.
    clusters: list[list[int | None]] = field(default_factory=list)
    null_reason: str | None = None
    logical_reason: str | None = None  # why logical_mode is what it is
    inhibits: frozenset[str] = frozenset()
    legacy_mode_bits: int = 0

    @property
    def is_null(self) -> bool:
        return self.phys is None

    def flat_row(self) -> list[int | None]:
        return self.clusters[0]

    def slots(self, vm: VmState) -> str:
        """phys_map and logical slots, compactly (vCPU ids; '-' for an empty slot)."""
        def name(idx: int | None) -> str:
            return "-" if idx is None else str(vm.vcpus[idx].vcpu_id)

        if self.phys is None:
            return "-"
        used = [f"{i:#x}:{name(s)}" for i, s in enumerate(self.phys) if s is not None]
        text = f"phys {{{' '.join(used[:16])}{' …' if len(used) > 16 else ''}}}"
        if self.logical_mode is LogicalMode.XAPIC_FLAT:
            text += f" flat [{' '.join(name(s) for s in self.clusters[0][:8])}]"
        elif self.logical_mode is LogicalMode.XAPIC_CLUSTER:
            rows = [f"{c}:[{' '.join(name(s) for s in row[:4])}]"
                    for c, row in enumerate(self.clusters) if any(s is not None for s in row[:4])]
            text += f" clusters {' '.join(rows)}"
        return text

    def describe(self, vm: VmState) -> str:
        if self.phys is None:
            return f"map NULL ({self.null_reason}); every delivery takes the slow path"
        text = f"max_apic_id {self.max_apic_id:#x}; logical_mode {self.logical_mode.value}"
        if self.logical_reason:
            text += f" ({self.logical_reason})"
        return f"{text}; {self.slots(vm)}"


def build_map(vm: VmState, policy: KernelPolicy) -> ApicMap:
    """Recompute the optimized map as ``kvm_recalculate_apic_map`` would, for ``policy``.

    ``vm`` holds the registers as KVM has them (for a scenario: ``set_lapic.kvm_view``)."""
    vcpus = vm.vcpus
    last_wins = policy.phys_map is PhysMapRule.LAST_WINS
    max_id = 255
    for v in vcpus:
        # <= 4.10: max of kvm_apic_id, the 8-bit xAPIC ID in xAPIC mode; 4.11+: kvm_x2apic_id.
        if v.mode is not ApicMode.DISABLED and v.vcpu_id > max_id and not (last_wins and v.mode is ApicMode.XAPIC):
            max_id = v.vcpu_id
    phys: list[int | None] = [None] * (max_id + 1)
    clusters: list[list[int | None]] = [[None] * 8 for _ in range(16)]
    strict = policy.logical_map is LogicalMapRule.STRICT
    gated_hack = policy.phys_map is PhysMapRule.ARCHITECTURAL_UNLESS_32BIT_IDS
    hotplug_hack = vm.use_32bit_ids or not gated_hack
    mode = LogicalMode.SW_DISABLED
    legacy_bits = 0
    logical_reason: str | None = None
    id_modified = False
    if policy.apic_id_modified_inhibit is IdModifiedInhibit.STICKY_UNTRUNCATED:
        # 3743c2f02517 (5.19-6.2), kvm_lapic_xapic_id_updated: set by KVM_SET_LAPIC of any
        # xAPIC-mode (or disabled) APIC whose ID is not vcpu_id, untruncated, and never cleared.
        id_modified = any(v.mode is not ApicMode.X2APIC and v.xapic_id != v.vcpu_id for v in vcpus)

    for index, v in enumerate(vcpus):
        if v.mode is ApicMode.DISABLED:
            continue  # not present: in neither map (docs/routing.md#hardware-enable-and-software-enable)
        x2 = v.mode is ApicMode.X2APIC
        # --- physical part ---
        if (policy.apic_id_modified_inhibit is IdModifiedInhibit.RECOMPUTED_U8
                and not x2 and v.xapic_id != (v.vcpu_id & 0xFF)):
            id_modified = True  # feeds only APICV_INHIBIT_REASON_APIC_ID_MODIFIED
        if last_wins:
            # <= 4.10 recalculate_apic_map: phys_map[kvm_apic_id] = apic, the last one wins.
            phys[v.vcpu_id if x2 else v.xapic_id] = index
        elif hotplug_hack:
            # docs/routing.md#legacy-algorithm-v411-to-v62 steps 1-2 / docs/routing.md#current-algorithm-v63-and-later
            # with x2apic_format: hotplug hack, first xAPIC claimant wins.
            if x2 or v.vcpu_id > 0xFF:
                phys[v.vcpu_id] = index
            if not x2 and phys[v.xapic_id] is None:
                phys[v.xapic_id] = index
        else:
            # docs/routing.md#current-algorithm-v63-and-later without x2apic_format: architectural; any alias discards
            # the whole map.
            pid = v.vcpu_id if x2 else v.xapic_id
            holder = phys[pid]
            if holder is not None:
                other = vcpus[holder].vcpu_id
                return _null_map(max_id, policy,
                                 f"physical ID 0x{pid:x} aliased by vCPU {other} and vCPU {v.vcpu_id}",
                                 id_modified)
            phys[pid] = index
        # --- logical part ---
        if strict and mode is LogicalMode.MAP_DISABLED:
            continue
        if not v.sw_enabled and (strict or policy.logical_map_skips_sw_disabled):
            continue
        ldr = v.effective_ldr
        if x2:
            this_mode = LogicalMode.X2APIC
        elif ldr:
            this_mode = LogicalMode.XAPIC_FLAT if v.dfr == DFR_FLAT else LogicalMode.XAPIC_CLUSTER
        else:
            # LDR == 0: no logical presence at all (6ea567ca003a; docs/routing.md#legacy-algorithm-v411-to-v62 step 4)
            continue
        if strict:
            if mode is LogicalMode.SW_DISABLED:
                mode = this_mode
            elif mode is not this_mode:
                mode = LogicalMode.MAP_DISABLED
                logical_reason = f"vCPU {v.vcpu_id} is {this_mode.value}, others are not"
                continue
            if x2:
                # x2APIC logical lookups reuse phys_map (kvm_apic_map_get_logical_dest)
                if policy.x2apic_logical_in_phys_map:
                    _place_x2apic_logical(phys, max_id, ldr, index)
                continue
            row, mask = _logical_slot(mode, (ldr >> 24) & 0xFF)
            if mask == 0:
                continue
            if mask & (mask - 1):
                if policy.logical_map_multi_bit_disables:  # 2bf934aadcac
                    mode = LogicalMode.MAP_DISABLED
                    logical_reason = f"vCPU {v.vcpu_id} logical ID 0x{ldr >> 24:02x} has several bits"
                    continue
                mask &= -mask  # placed by its lowest bit
            bit = mask.bit_length() - 1
            holder = clusters[row][bit]
            if holder is not None and policy.logical_map_alias_disables:  # 2970052481b9
                mode = LogicalMode.MAP_DISABLED
                logical_reason = (f"vCPU {vcpus[holder].vcpu_id} and vCPU {v.vcpu_id} share logical "
                                  f"{_slot_name(this_mode, row, bit)}")
                continue
            clusters[row][bit] = index
        else:
            # docs/routing.md#legacy-algorithm-v411-to-v62 steps 4-6: OR the mode bit in; place only while the bitmask
            # is one mode.
            legacy_bits |= _LEGACY_BITS[this_mode]
            current = _LEGACY_BY_BITS.get(legacy_bits)
            if current is None:
                continue
            if x2:
                if policy.x2apic_logical_in_phys_map:
                    _place_x2apic_logical(phys, max_id, ldr, index)
                continue
            row, mask = _logical_slot(current, (ldr >> 24) & 0xFF)
            if mask:
                clusters[row][(mask & -mask).bit_length() - 1] = index  # lowest bit, last wins

    if not strict:
        mode = _LEGACY_BY_BITS.get(legacy_bits, LogicalMode.INVALID)
        if mode is LogicalMode.INVALID:
            logical_reason = "no logical mode" if legacy_bits == 0 else "mixed logical modes"
    elif mode is LogicalMode.SW_DISABLED:
        logical_reason = "no software-enabled APIC has a nonzero LDR"
    inhibits: set[str] = set()
    if policy.inhibits_aliasing and mode is LogicalMode.MAP_DISABLED:
        inhibits.add(INHIBIT_LOGICAL_ID_ALIASED)
    if id_modified:
        inhibits.add(INHIBIT_APIC_ID_MODIFIED)
    return ApicMap(max_id, phys, mode, clusters, None, logical_reason, frozenset(inhibits), legacy_bits)


def _place_x2apic_logical(phys: list[int | None], max_id: int, ldr: int, index: int) -> None:
    """Up to 6.2 the x2APIC logical part of the map is phys_map itself: the LDR's cluster and
    lowest member bit index it. A derived LDR writes the vCPU's own slot again; a planted one
    (KVM_SET_LAPIC before 6.11) another vCPU's slot. 76e527509d37 "KVM: x86: Skip redundant
    x2APIC logical mode optimized cluster setup" (6.3) stopped the write."""
    offset = (ldr >> 16) * 16
    if offset > max_id:
        return
    width = min(max_id - offset + 1, 16)
    mask = ldr & 0xFFFF & ((1 << width) - 1)
    if mask:
        phys[offset + (mask & -mask).bit_length() - 1] = index


def _null_map(max_id: int, policy: KernelPolicy, reason: str, id_modified: bool) -> ApicMap:
    inhibits = {INHIBIT_PHYSICAL_ID_ALIASED, INHIBIT_LOGICAL_ID_ALIASED} if policy.inhibits_aliasing else set()
    if id_modified:
        inhibits.add(INHIBIT_APIC_ID_MODIFIED)
    return ApicMap(max_id, None, LogicalMode.MAP_DISABLED, [], reason, None, frozenset(inhibits))


def _logical_slot(mode: LogicalMode, logical_id: int) -> tuple[int, int]:
    """(cluster row, member mask) of an 8-bit xAPIC logical ID in ``mode``
    (docs/routing.md#current-algorithm-v63-and-later)."""
    if mode is LogicalMode.XAPIC_FLAT:
        return 0, logical_id & 0xFF
    return (logical_id >> 4) & 0xF, logical_id & 0xF


def _slot_name(mode: LogicalMode, row: int, bit: int) -> str:
    if mode is LogicalMode.XAPIC_FLAT:
        return f"flat bit {bit}"
    return f"cluster {row} bit {bit}"
