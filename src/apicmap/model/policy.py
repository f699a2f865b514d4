"""KVM kernel variants as policy data (kvm-routing.md §0.2, §8).

One ``KernelPolicy`` per routing-relevant range of releases. The model's code reads these
fields; it never forks per version. Selecting a release (``--kernel 5.10``) picks the variant
whose range contains it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from apicmap.errors import InputError


class PhysMapRule(enum.Enum):
    """How ``phys_map`` treats aliased physical IDs and vCPUs above 255."""

    # v4.10–v6.2 (5bd5db385b3e): hotplug hack always on, first xAPIC claimant wins,
    # x2APIC-mode (or id > 0xFF) vCPUs overwrite their vcpu_id slot. kvm-routing.md §2.5.
    FIRST_WINS_HOTPLUG = "first-wins, hotplug hack always"
    # v6.3+ (5b84b0291702): the above only with x2apic_format; otherwise any alias
    # disables the whole map. kvm-routing.md §2.3.
    ARCHITECTURAL_UNLESS_32BIT_IDS = "alias disables the map unless use_32bit_ids"


class LogicalMapRule(enum.Enum):
    """How the logical map is built (kvm-routing.md §2.3 vs §2.5)."""

    # Pre-6.3: modes OR-ed into a bitmask; last writer wins; multi-bit IDs by lowest bit.
    LEGACY_BITMASK = "bitmask, last wins"
    # 6.3+ (35366901017c, 2bf934aadcac, 2970052481b9): logical_mode enum; mixed modes,
    # multi-bit IDs and duplicate bits disable it; no sw-enabled LDR -> SW_DISABLED drops.
    STRICT = "logical_mode enum"


class RecalcRace(enum.Enum):
    """What happens when a vCPU appears during map recalculation (documented, not simulated)."""

    BOUNDS_CHECKED = "bounds-checked, skipped"
    OUT_OF_BOUNDS_WRITE = "out-of-bounds write (fixed by 4364b287982b)"
    MAP_NULL = "map disabled"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class KernelPolicy:
    key: str
    releases: str
    first: tuple[int, int]
    last: tuple[int, int] | None  # inclusive; None = mainline
    phys_map: PhysMapRule
    logical_map: LogicalMapRule
    # b14c876b994f (v5.3): software-disabled APICs are left out of the logical map.
    logical_map_skips_sw_disabled: bool
    # Fast path that handles an interrupt but finds no target: -1 (EPERM) before the change
    # that sets r = 0 up front, 0 after (kvm-routing.md §8.1 "(4.19→5.15)"; placed at 5.3,
    # the attribution is uncertain, §10).
    fast_path_no_target_result: int
    # v6.2+: SMI accepted only if the VM supports SMM (kvm-routing.md §6.4).
    smi_needs_smm: bool
    # 71bf395a276f (v6.12): reserved x2APIC ICR bits -> #GP, nothing sent (§6.2).
    icr_reserved_bits_fault: bool
    # ba5838abb053 (v6.3): SELF_IPI with bits above 7:0 -> #GP (§6.2).
    self_ipi_reserved_bits_fault: bool
    # 5063c41bebac / 3743c2f02517: which APICv inhibits the map computation raises (§2.3).
    inhibits_aliasing: bool
    inhibits_apic_id_modified: bool
    recalc_race_without_32bit_ids: RecalcRace
    recalc_race_with_32bit_ids: RecalcRace
    # 4b7c3f6d04bd (v6.11): KVM_SET_LAPIC ignores the userspace x2APIC ID (§1.9).
    x2apic_id_readonly: bool

    def contains(self, release: tuple[int, int]) -> bool:
        return self.first <= release and (self.last is None or release <= self.last)


def _v(first: tuple[int, int], last: tuple[int, int] | None) -> str:
    if last == first:
        return f"{first[0]}.{first[1]}"
    end = "mainline" if last is None else f"{last[0]}.{last[1]}"
    return f"{first[0]}.{first[1]}–{end}"


_LEGACY = dict(
    phys_map=PhysMapRule.FIRST_WINS_HOTPLUG,
    logical_map=LogicalMapRule.LEGACY_BITMASK,
    smi_needs_smm=False,
    icr_reserved_bits_fault=False,
    self_ipi_reserved_bits_fault=False,
    inhibits_aliasing=False,
    recalc_race_without_32bit_ids=RecalcRace.BOUNDS_CHECKED,
    recalc_race_with_32bit_ids=RecalcRace.BOUNDS_CHECKED,
    x2apic_id_readonly=False,
)

_SERIES = dict(
    phys_map=PhysMapRule.ARCHITECTURAL_UNLESS_32BIT_IDS,
    logical_map=LogicalMapRule.STRICT,
    logical_map_skips_sw_disabled=True,
    fast_path_no_target_result=0,
    smi_needs_smm=True,
    self_ipi_reserved_bits_fault=True,
    inhibits_aliasing=True,
    inhibits_apic_id_modified=True,
)


def _policy(key: str, first: tuple[int, int], last: tuple[int, int] | None, **fields: object) -> KernelPolicy:
    return KernelPolicy(key=key, releases=_v(first, last), first=first, last=last, **fields)  # type: ignore[arg-type]


VARIANTS: tuple[KernelPolicy, ...] = (
    _policy("K4.10", (4, 10), (5, 2), **_LEGACY, logical_map_skips_sw_disabled=False,
            fast_path_no_target_result=-1, inhibits_apic_id_modified=False),
    _policy("K5.3", (5, 3), (6, 1), **_LEGACY, logical_map_skips_sw_disabled=True,
            fast_path_no_target_result=0, inhibits_apic_id_modified=False),
    # 6.2 differs from 5.3–6.1 only in SMI acceptance (SMM check) and the 5.19 inhibit.
    _policy("K6.2", (6, 2), (6, 2), **{**_LEGACY, "smi_needs_smm": True},
            logical_map_skips_sw_disabled=True, fast_path_no_target_result=0,
            inhibits_apic_id_modified=True),
    _policy("K6.3", (6, 3), (6, 3), **_SERIES, icr_reserved_bits_fault=False,
            recalc_race_without_32bit_ids=RecalcRace.OUT_OF_BOUNDS_WRITE,
            recalc_race_with_32bit_ids=RecalcRace.BOUNDS_CHECKED, x2apic_id_readonly=False),
    _policy("K6.4", (6, 4), (6, 5), **_SERIES, icr_reserved_bits_fault=False,
            recalc_race_without_32bit_ids=RecalcRace.MAP_NULL,
            recalc_race_with_32bit_ids=RecalcRace.MAP_NULL, x2apic_id_readonly=False),
    _policy("K6.6", (6, 6), (6, 10), **_SERIES, icr_reserved_bits_fault=False,
            recalc_race_without_32bit_ids=RecalcRace.RETRY,
            recalc_race_with_32bit_ids=RecalcRace.RETRY, x2apic_id_readonly=False),
    _policy("K6.11", (6, 11), (6, 11), **_SERIES, icr_reserved_bits_fault=False,
            recalc_race_without_32bit_ids=RecalcRace.RETRY,
            recalc_race_with_32bit_ids=RecalcRace.RETRY, x2apic_id_readonly=True),
    _policy("K6.12", (6, 12), None, **_SERIES, icr_reserved_bits_fault=True,
            recalc_race_without_32bit_ids=RecalcRace.RETRY,
            recalc_race_with_32bit_ids=RecalcRace.RETRY, x2apic_id_readonly=True),
)

NEWEST = VARIANTS[-1]
_RELEASE = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?$")


def parse_release(text: str, where: str = "--kernel") -> tuple[int, int]:
    match = _RELEASE.match(text.strip())
    if not match:
        raise InputError(where, f"cannot read kernel release {text!r}", "a release like 6.2, 5.10 or 6.18.3")
    return int(match.group(1)), int(match.group(2))


def policy_for_release(text: str | None, where: str = "--kernel") -> KernelPolicy:
    """The variant for a release number; ``None`` or "latest" means the newest."""
    if text is None or text.strip().lower() in ("latest", "newest", "mainline"):
        return NEWEST
    release = parse_release(text, where)
    for policy in VARIANTS:
        if policy.contains(release):
            return policy
    raise InputError(where, f"KVM {release[0]}.{release[1]} is not modelled",
                     "releases 4.10 and newer (v4.9 and older predate the hotplug-hack rules)")
