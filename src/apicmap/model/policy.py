"""KVM releases as policy data: one ``KernelPolicy`` row per routing-relevant range.

The model's code reads these fields; it never forks per version. Selecting a release
(``--kernel 5.10.3``) picks the row whose range contains it, then applies the stable backports
that the release carries (``BACKPORTS``), so ``6.6.78`` is not modelled as ``6.6.0``.

Every row is written out in full, keyword by keyword, and cites by hash and subject the commits
that make it differ from the row before (``Commit.fields`` names the fields each commit moves).

Not modelled, on purpose (no field): the map-recalculation race with a vCPU that is added or
enabled during ``kvm_recalculate_apic_map`` (6.3.0 writes past ``phys_map``; 4364b287982b "KVM:
x86: Bail from kvm_recalculate_phys_map() if x2APIC ID is out-of-bounds" leaves the map NULL in
6.4-6.5; 41e90a69a49b "KVM: x86: Retry APIC optimized map recalc if vCPU is added/enabled"
retries from 6.6). The model describes steady states; the race needs concurrent ioctls.
"""

from __future__ import annotations

import enum
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TypeVar

from apicmap.errors import InputError

Release = tuple[int, int, int]
_T = TypeVar("_T")


class PhysMapRule(enum.Enum):
    """How ``phys_map`` treats aliased physical IDs and vCPUs above 255."""

    # <= v4.10 (``recalculate_apic_map``): every present vCPU writes phys_map[kvm_apic_id],
    # the last claimant wins; an xAPIC-mode vCPU >= 256 is reachable only as vcpu_id & 0xff.
    LAST_WINS = "last-wins, no hotplug hack"
    # v4.11-v6.2 (5bd5db385b3e): hotplug hack always on, first xAPIC claimant wins,
    # x2APIC-mode (or id > 0xFF) vCPUs overwrite their vcpu_id slot.
    FIRST_WINS_HOTPLUG = "first-wins, hotplug hack always"
    # v6.3+ (5b84b0291702): the above only with x2apic_format; otherwise any alias
    # disables the whole map.
    ARCHITECTURAL_UNLESS_32BIT_IDS = "alias disables the map unless use_32bit_ids"


class MdaRule(enum.Enum):
    """How the slow path (``kvm_apic_mda``) forms the message destination address."""

    # <= v4.10: the MDA format follows the *source's* mode for IPIs (the target's otherwise);
    # xAPIC format is dest << 24 (u32), broadcast is a top byte of 0xFF.
    SOURCE_MODE_SHIFTED = "xAPIC MDA = dest << 24, format from the sender's mode"
    # v4.11+: the MDA is the destination ID, compared per target mode (hotplug hack included).
    DEST_ID = "MDA = destination ID"


class LogicalMapRule(enum.Enum):
    """How the logical map's mode is tracked (the multi-bit, alias and x2APIC placement rules
    are fields of their own: ``logical_map_multi_bit_disables``, ``logical_map_alias_disables``,
    ``x2apic_logical_in_phys_map``)."""

    # Pre-6.3: modes OR-ed into a bitmask; a mixed or empty bitmask makes lookups fail.
    LEGACY_BITMASK = "bitmask, last wins"
    # 6.3+ (35366901017c "KVM: x86: Explicitly track all possibilities for APIC map's logical
    # modes"): logical_mode enum; mixed modes disable the map; no sw-enabled APIC with an LDR ->
    # SW_DISABLED, which drops logical interrupts; sw-disabled APICs are never placed.
    STRICT = "logical_mode enum"


class SmiCheck(enum.Enum):
    """When ``__apic_accept_irq`` refuses an SMI."""

    ALWAYS_ACCEPTED = "always accepted"  # < 6.2: KVM_REQ_SMI unconditionally
    KVM_BUILT_WITH_SMM = "refused when KVM is built without SMM"  # 6.2-6.15: CONFIG_KVM_SMM
    VM_SUPPORTS_SMM = "refused when the VM does not support SMM"  # 6.16+: per-VM check


class IdModifiedInhibit(enum.Enum):
    """APICV_INHIBIT_REASON_APIC_ID_MODIFIED (APICv/AVIC only; no routing effect)."""

    NONE = "none"  # < 5.19
    STICKY_UNTRUNCATED = "set once xAPIC ID != vcpu_id, never cleared"  # 5.19-6.2
    RECOMPUTED_U8 = "recomputed per map build, xAPIC ID != (u8)vcpu_id"  # 6.3+


class X2apicSetLapic(enum.Enum):
    """What ``KVM_SET_LAPIC`` does with the APIC ID and LDR of an x2APIC-mode vCPU."""

    # ID planted (buffer ID >> 24 without x2apic_format), LDR taken from the buffer as is.
    PLANTED_ID_RAW_LDR = "ID planted, LDR raw"
    # ID planted, LDR forced to the one derived from the planted ID (``kvm_apic_state_fixup``).
    PLANTED_ID_DERIVED_LDR = "ID planted, LDR derived from it"
    # 6.11+ (4b7c3f6d04bd): the ID is vcpu_id whatever the buffer says, LDR derived from it.
    READONLY = "ID read-only (vcpu_id), LDR derived"


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """An upstream commit, and the policy fields it changes."""

    hash: str  # 12 hex digits, or "" where the audit could not identify the commit
    subject: str
    fields: tuple[str, ...]

    def cite(self) -> str:
        if not self.hash:
            return f"(commit not identified: {self.subject})"
        return f'{self.hash} "{self.subject}"'


@dataclass(frozen=True, slots=True, kw_only=True)
class Backport:
    """A commit carried by a stable series from ``first`` on."""

    commit: Commit
    series: tuple[int, int]
    # The first stable release known to carry it; None: the series got it, release not identified
    # (then it is not applied). ``exact`` False: ``first`` is a release seen to carry it, an
    # earlier one may too.
    first: Release | None
    exact: bool
    evidence: str


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelPolicy:
    key: str
    releases: str
    first: tuple[int, int]
    last: tuple[int, int] | None  # inclusive; None = mainline
    # The commits that make this row differ from the previous one.
    commits: tuple[Commit, ...]
    # Stable backports applied on top of the row (filled in by ``policy_for_release``).
    backports: tuple[Backport, ...]
    # --- behaviour: each field is read by the model ---
    phys_map: PhysMapRule  # apic_map.build_map; match (hotplug hack)
    mda: MdaRule  # resolve -> match
    logical_map: LogicalMapRule  # apic_map.build_map, resolve
    logical_map_multi_bit_disables: bool  # apic_map.build_map (with the STRICT logical map)
    logical_map_alias_disables: bool  # apic_map.build_map (with the STRICT logical map)
    x2apic_logical_in_phys_map: bool  # apic_map.build_map
    logical_map_skips_sw_disabled: bool  # apic_map.build_map
    fast_path_no_target_result: int  # resolve._finish_fast
    smi_check: SmiCheck  # accept
    icr_reserved_bits_fault: bool  # decode rules
    self_ipi_reserved_bits_fault: bool  # decode rules (SELF_IPI bits 31:8)
    x2apic_msr_upper_half_fault: bool  # decode rules (SELF_IPI bits 63:32)
    inhibits_aliasing: bool  # apic_map.build_map
    apic_id_modified_inhibit: IdModifiedInhibit  # apic_map.build_map, lifecycle (sticky)
    x2apic_set_lapic: X2apicSetLapic  # set_lapic.kvm_view, lifecycle.set_lapic
    x2apic_disable_resets_id: bool  # lifecycle.set_apic_base

    def contains(self, release: Release) -> bool:
        return self.first <= release[:2] and (self.last is None or release[:2] <= self.last)


BEHAVIOUR_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(KernelPolicy) if f.name not in ("key", "releases", "first", "last", "commits", "backports"))


def _r(first: tuple[int, int], last: tuple[int, int] | None) -> str:
    if last == first:
        return f"{first[0]}.{first[1]}"
    end = "mainline" if last is None else f"{last[0]}.{last[1]}"
    return f"{first[0]}.{first[1]}–{end}"


# --- the commits ---------------------------------------------------------------------------------

C_HOTPLUG = Commit(hash="5bd5db385b3e", subject="KVM: x86: allow hotplug of VCPU with APIC ID over 0xff",
                   fields=("phys_map",))
C_MDA = Commit(hash="", subject="the v4.11 rework after which kvm_apic_mda returns the destination ID and the fast "
                                "and slow paths behave the same", fields=("mda",))
C_NO_TARGET = Commit(hash="0624fca9512d",
                     subject="(subject line not retrieved) kvm_irq_delivery_to_apic_fast sets r = 0 once the map "
                             "handles the IRQ",
                     fields=("fast_path_no_target_result",))
C_LDR_DERIVED = Commit(hash="", subject="kvm_apic_state_fixup derives the x2APIC LDR from the ID on KVM_SET_LAPIC; "
                       "present in 4.19.0, absent in 4.11.0", fields=("x2apic_set_lapic",))
C_SW_DISABLED = Commit(hash="b14c876b994f",
                       subject="kvm: x86: skip populating logical dest map if apic is not sw enabled",
                       fields=("logical_map_skips_sw_disabled",))
C_ID_MODIFIED = Commit(hash="3743c2f02517",
                       subject="KVM: x86: inhibit APICv/AVIC on changes to APIC ID or APIC base",
                       fields=("apic_id_modified_inhibit",))
C_SMM_CONFIG = Commit(hash="", subject="the v6.2 series that makes SMM support a compile-time option "
                      "(CONFIG_KVM_SMM; kvm_inject_smi returns -ENOTTY without it)", fields=("smi_check",))
C_ALIASED_IDS = Commit(hash="5b84b0291702",
                       subject="KVM: x86: Honor architectural behavior for aliased 8-bit APIC IDs",
                       fields=("phys_map",))
C_LOGICAL_MODES = Commit(hash="35366901017c",
                         subject="KVM: x86: Explicitly track all possibilities for APIC map's logical modes",
                         fields=("logical_map",))
C_LOGICAL_X2APIC = Commit(hash="76e527509d37",
                          subject="KVM: x86: Skip redundant x2APIC logical mode optimized cluster setup",
                          fields=("x2apic_logical_in_phys_map",))
C_LOGICAL_MULTI = Commit(hash="2bf934aadcac",
                         subject="KVM: x86: Disable APIC logical map if logical ID covers multiple MDAs",
                         fields=("logical_map_multi_bit_disables",))
C_LOGICAL_ALIASED = Commit(hash="2970052481b9",
                           subject="KVM: x86: Disable APIC logical map if vCPUs are aliased in logical mode",
                           fields=("logical_map_alias_disables",))
C_INHIBIT_ALIASED = Commit(hash="5063c41bebac",
                           subject="KVM: x86: Inhibit APICv/AVIC if the optimized physical map is disabled",
                           fields=("inhibits_aliasing",))
C_ID_MODIFIED_32BIT = Commit(hash="f651a0089548",
                             subject="KVM: x86: Don't inhibit APICv/AVIC if xAPIC ID mismatch is due to 32-bit ID",
                             fields=("apic_id_modified_inhibit",))
C_ID_MODIFIED_DISABLED = Commit(hash="a58a66afc464",
                                subject="KVM: x86: Don't inhibit APICv/AVIC on xAPIC ID \"change\" if APIC is disabled",
                                fields=("apic_id_modified_inhibit",))
C_SELF_IPI = Commit(hash="ba5838abb053", subject="KVM: x86: Inject #GP if WRMSR sets reserved bits in APIC Self-IPI",
                    fields=("self_ipi_reserved_bits_fault",))
C_X2APIC_UPPER_HALF = Commit(hash="ab52be1b310b",
                             subject="KVM: x86: Inject #GP on x2APIC WRMSR that sets reserved bits 63:32",
                             fields=("x2apic_msr_upper_half_fault",))
C_X2_TO_XAPIC = Commit(hash="052c3b99cbc8",
                       subject="KVM: x86: Reinitialize xAPIC ID when userspace forces x2APIC => xAPIC",
                       fields=("x2apic_disable_resets_id",))
C_RECALC_BAIL = Commit(hash="4364b287982b",
                       subject="KVM: x86: Bail from kvm_recalculate_phys_map() if x2APIC ID is out-of-bounds",
                       fields=())  # the race is not modelled (see the module docstring)
C_RECALC_RETRY = Commit(hash="41e90a69a49b",
                        subject="KVM: x86: Retry APIC optimized map recalc if vCPU is added/enabled", fields=())
C_READONLY = Commit(hash="4b7c3f6d04bd", subject="KVM: x86: Make x2APIC ID 100% readonly",
                    fields=("x2apic_set_lapic",))
C_ICR_RESERVED = Commit(hash="71bf395a276f", subject="KVM: x86: Enforce x2APIC's must-be-zero reserved ICR bits",
                        fields=("icr_reserved_bits_fault",))
C_SMM_PER_VM = Commit(hash="", subject="\"KVM: TDX: Handle SMI request as !CONFIG_KVM_SMM\": kvm_inject_smi "
                      "also checks has_emulated_msr(kvm, MSR_IA32_SMBASE); v6.16, 6.15 not seen", fields=("smi_check",))


# --- the rows ------------------------------------------------------------------------------------

K4_9 = KernelPolicy(
    # v4.9 and v4.10 share the routing code (4.10.17 is identical to 4.9.0 in recalculate_apic_map,
    # kvm_apic_mda and kvm_apic_match_physical_addr).
    key="K4.9", releases=_r((4, 9), (4, 10)), first=(4, 9), last=(4, 10), commits=(), backports=(),
    phys_map=PhysMapRule.LAST_WINS,
    mda=MdaRule.SOURCE_MODE_SHIFTED,
    logical_map=LogicalMapRule.LEGACY_BITMASK,
    logical_map_multi_bit_disables=False,
    logical_map_alias_disables=False,
    x2apic_logical_in_phys_map=True,
    logical_map_skips_sw_disabled=False,
    fast_path_no_target_result=-1,
    smi_check=SmiCheck.ALWAYS_ACCEPTED,
    icr_reserved_bits_fault=False,
    self_ipi_reserved_bits_fault=False,
    x2apic_msr_upper_half_fault=False,
    inhibits_aliasing=False,
    apic_id_modified_inhibit=IdModifiedInhibit.NONE,
    x2apic_set_lapic=X2apicSetLapic.PLANTED_ID_RAW_LDR,
    x2apic_disable_resets_id=False,
)
K4_11 = KernelPolicy(
    # 5bd5db385b3e "KVM: x86: allow hotplug of VCPU with APIC ID over 0xff" and the MDA rework.
    # 4.11.0 still takes an x2APIC LDR raw from KVM_SET_LAPIC; 4.19.0 derives it (commit between
    # 4.12 and 4.19 not identified): the whole row keeps the raw LDR, so 4.19 is one row late there.
    key="K4.11", releases=_r((4, 11), (4, 19)), first=(4, 11), last=(4, 19), commits=(C_HOTPLUG, C_MDA),
    backports=(),
    phys_map=PhysMapRule.FIRST_WINS_HOTPLUG,
    mda=MdaRule.DEST_ID,
    logical_map=LogicalMapRule.LEGACY_BITMASK,
    logical_map_multi_bit_disables=False,
    logical_map_alias_disables=False,
    x2apic_logical_in_phys_map=True,
    logical_map_skips_sw_disabled=False,
    fast_path_no_target_result=-1,
    smi_check=SmiCheck.ALWAYS_ACCEPTED,
    icr_reserved_bits_fault=False,
    self_ipi_reserved_bits_fault=False,
    x2apic_msr_upper_half_fault=False,
    inhibits_aliasing=False,
    apic_id_modified_inhibit=IdModifiedInhibit.NONE,
    x2apic_set_lapic=X2apicSetLapic.PLANTED_ID_RAW_LDR,
    x2apic_disable_resets_id=False,
)
K4_20 = KernelPolicy(
    # 0624fca9512d: kvm_irq_delivery_to_apic_fast sets *r = 0 once the map handles the IRQ.
    key="K4.20", releases=_r((4, 20), (5, 2)), first=(4, 20), last=(5, 2), commits=(C_NO_TARGET, C_LDR_DERIVED),
    backports=(),
    phys_map=PhysMapRule.FIRST_WINS_HOTPLUG,
    mda=MdaRule.DEST_ID,
    logical_map=LogicalMapRule.LEGACY_BITMASK,
    logical_map_multi_bit_disables=False,
    logical_map_alias_disables=False,
    x2apic_logical_in_phys_map=True,
    logical_map_skips_sw_disabled=False,
    fast_path_no_target_result=0,
    smi_check=SmiCheck.ALWAYS_ACCEPTED,
    icr_reserved_bits_fault=False,
    self_ipi_reserved_bits_fault=False,
    x2apic_msr_upper_half_fault=False,
    inhibits_aliasing=False,
    apic_id_modified_inhibit=IdModifiedInhibit.NONE,
    x2apic_set_lapic=X2apicSetLapic.PLANTED_ID_DERIVED_LDR,
    x2apic_disable_resets_id=False,
)
K5_3 = KernelPolicy(
    # b14c876b994f "kvm: x86: skip populating logical dest map if apic is not sw enabled".
    key="K5.3", releases=_r((5, 3), (5, 18)), first=(5, 3), last=(5, 18), commits=(C_SW_DISABLED,), backports=(),
    phys_map=PhysMapRule.FIRST_WINS_HOTPLUG,
    mda=MdaRule.DEST_ID,
    logical_map=LogicalMapRule.LEGACY_BITMASK,
    logical_map_multi_bit_disables=False,
    logical_map_alias_disables=False,
    x2apic_logical_in_phys_map=True,
    logical_map_skips_sw_disabled=True,
    fast_path_no_target_result=0,
    smi_check=SmiCheck.ALWAYS_ACCEPTED,
    icr_reserved_bits_fault=False,
    self_ipi_reserved_bits_fault=False,
    x2apic_msr_upper_half_fault=False,
    inhibits_aliasing=False,
    apic_id_modified_inhibit=IdModifiedInhibit.NONE,
    x2apic_set_lapic=X2apicSetLapic.PLANTED_ID_DERIVED_LDR,
    x2apic_disable_resets_id=False,
)
K5_19 = KernelPolicy(
    # 3743c2f02517 "KVM: x86: inhibit APICv/AVIC on changes to APIC ID or APIC base".
    key="K5.19", releases=_r((5, 19), (6, 1)), first=(5, 19), last=(6, 1), commits=(C_ID_MODIFIED,), backports=(),
    phys_map=PhysMapRule.FIRST_WINS_HOTPLUG,
    mda=MdaRule.DEST_ID,
    logical_map=LogicalMapRule.LEGACY_BITMASK,
    logical_map_multi_bit_disables=False,
    logical_map_alias_disables=False,
    x2apic_logical_in_phys_map=True,
    logical_map_skips_sw_disabled=True,
    fast_path_no_target_result=0,
    smi_check=SmiCheck.ALWAYS_ACCEPTED,
    icr_reserved_bits_fault=False,
    self_ipi_reserved_bits_fault=False,
    x2apic_msr_upper_half_fault=False,
    inhibits_aliasing=False,
    apic_id_modified_inhibit=IdModifiedInhibit.STICKY_UNTRUNCATED,
    x2apic_set_lapic=X2apicSetLapic.PLANTED_ID_DERIVED_LDR,
    x2apic_disable_resets_id=False,
)
K6_2 = KernelPolicy(
    # CONFIG_KVM_SMM: kvm_inject_smi returns -ENOTTY only when KVM is built without SMM.
    key="K6.2", releases=_r((6, 2), (6, 2)), first=(6, 2), last=(6, 2), commits=(C_SMM_CONFIG,), backports=(),
    phys_map=PhysMapRule.FIRST_WINS_HOTPLUG,
    mda=MdaRule.DEST_ID,
    logical_map=LogicalMapRule.LEGACY_BITMASK,
    logical_map_multi_bit_disables=False,
    logical_map_alias_disables=False,
    x2apic_logical_in_phys_map=True,
    logical_map_skips_sw_disabled=True,
    fast_path_no_target_result=0,
    smi_check=SmiCheck.KVM_BUILT_WITH_SMM,
    icr_reserved_bits_fault=False,
    self_ipi_reserved_bits_fault=False,
    x2apic_msr_upper_half_fault=False,
    inhibits_aliasing=False,
    apic_id_modified_inhibit=IdModifiedInhibit.STICKY_UNTRUNCATED,
    x2apic_set_lapic=X2apicSetLapic.PLANTED_ID_DERIVED_LDR,
    x2apic_disable_resets_id=False,
)
K6_3 = KernelPolicy(
    # The 6.3 APIC series (see ``commits``).
    key="K6.3", releases=_r((6, 3), (6, 3)), first=(6, 3), last=(6, 3),
    commits=(C_ALIASED_IDS, C_LOGICAL_MODES, C_LOGICAL_X2APIC, C_LOGICAL_MULTI, C_LOGICAL_ALIASED, C_INHIBIT_ALIASED,
             C_ID_MODIFIED_32BIT, C_ID_MODIFIED_DISABLED, C_SELF_IPI, C_X2APIC_UPPER_HALF, C_X2_TO_XAPIC),
    backports=(),
    phys_map=PhysMapRule.ARCHITECTURAL_UNLESS_32BIT_IDS,
    mda=MdaRule.DEST_ID,
    logical_map=LogicalMapRule.STRICT,
    logical_map_multi_bit_disables=True,
    logical_map_alias_disables=True,
    x2apic_logical_in_phys_map=False,
    logical_map_skips_sw_disabled=True,
    fast_path_no_target_result=0,
    smi_check=SmiCheck.KVM_BUILT_WITH_SMM,
    icr_reserved_bits_fault=False,
    self_ipi_reserved_bits_fault=True,
    x2apic_msr_upper_half_fault=True,
    inhibits_aliasing=True,
    apic_id_modified_inhibit=IdModifiedInhibit.RECOMPUTED_U8,
    x2apic_set_lapic=X2apicSetLapic.PLANTED_ID_DERIVED_LDR,
    x2apic_disable_resets_id=True,
)
K6_4 = KernelPolicy(
    # 4364b287982b (map NULL on the recalculation race): not modelled, no field differs from 6.3.
    key="K6.4", releases=_r((6, 4), (6, 5)), first=(6, 4), last=(6, 5), commits=(C_RECALC_BAIL,), backports=(),
    phys_map=PhysMapRule.ARCHITECTURAL_UNLESS_32BIT_IDS,
    mda=MdaRule.DEST_ID,
    logical_map=LogicalMapRule.STRICT,
    logical_map_multi_bit_disables=True,
    logical_map_alias_disables=True,
    x2apic_logical_in_phys_map=False,
    logical_map_skips_sw_disabled=True,
    fast_path_no_target_result=0,
    smi_check=SmiCheck.KVM_BUILT_WITH_SMM,
    icr_reserved_bits_fault=False,
    self_ipi_reserved_bits_fault=True,
    x2apic_msr_upper_half_fault=True,
    inhibits_aliasing=True,
    apic_id_modified_inhibit=IdModifiedInhibit.RECOMPUTED_U8,
    x2apic_set_lapic=X2apicSetLapic.PLANTED_ID_DERIVED_LDR,
    x2apic_disable_resets_id=True,
)
K6_6 = KernelPolicy(
    # 41e90a69a49b (retry on the recalculation race): not modelled, no field differs from 6.4.
    key="K6.6", releases=_r((6, 6), (6, 10)), first=(6, 6), last=(6, 10), commits=(C_RECALC_RETRY,), backports=(),
    phys_map=PhysMapRule.ARCHITECTURAL_UNLESS_32BIT_IDS,
    mda=MdaRule.DEST_ID,
    logical_map=LogicalMapRule.STRICT,
    logical_map_multi_bit_disables=True,
    logical_map_alias_disables=True,
    x2apic_logical_in_phys_map=False,
    logical_map_skips_sw_disabled=True,
    fast_path_no_target_result=0,
    smi_check=SmiCheck.KVM_BUILT_WITH_SMM,
    icr_reserved_bits_fault=False,
    self_ipi_reserved_bits_fault=True,
    x2apic_msr_upper_half_fault=True,
    inhibits_aliasing=True,
    apic_id_modified_inhibit=IdModifiedInhibit.RECOMPUTED_U8,
    x2apic_set_lapic=X2apicSetLapic.PLANTED_ID_DERIVED_LDR,
    x2apic_disable_resets_id=True,
)
K6_11 = KernelPolicy(
    # 4b7c3f6d04bd "KVM: x86: Make x2APIC ID 100% readonly".
    key="K6.11", releases=_r((6, 11), (6, 11)), first=(6, 11), last=(6, 11), commits=(C_READONLY,), backports=(),
    phys_map=PhysMapRule.ARCHITECTURAL_UNLESS_32BIT_IDS,
    mda=MdaRule.DEST_ID,
    logical_map=LogicalMapRule.STRICT,
    logical_map_multi_bit_disables=True,
    logical_map_alias_disables=True,
    x2apic_logical_in_phys_map=False,
    logical_map_skips_sw_disabled=True,
    fast_path_no_target_result=0,
    smi_check=SmiCheck.KVM_BUILT_WITH_SMM,
    icr_reserved_bits_fault=False,
    self_ipi_reserved_bits_fault=True,
    x2apic_msr_upper_half_fault=True,
    inhibits_aliasing=True,
    apic_id_modified_inhibit=IdModifiedInhibit.RECOMPUTED_U8,
    x2apic_set_lapic=X2apicSetLapic.READONLY,
    x2apic_disable_resets_id=True,
)
K6_12 = KernelPolicy(
    # 71bf395a276f "KVM: x86: Enforce x2APIC's must-be-zero reserved ICR bits".
    key="K6.12", releases=_r((6, 12), (6, 15)), first=(6, 12), last=(6, 15), commits=(C_ICR_RESERVED,),
    backports=(),
    phys_map=PhysMapRule.ARCHITECTURAL_UNLESS_32BIT_IDS,
    mda=MdaRule.DEST_ID,
    logical_map=LogicalMapRule.STRICT,
    logical_map_multi_bit_disables=True,
    logical_map_alias_disables=True,
    x2apic_logical_in_phys_map=False,
    logical_map_skips_sw_disabled=True,
    fast_path_no_target_result=0,
    smi_check=SmiCheck.KVM_BUILT_WITH_SMM,
    icr_reserved_bits_fault=True,
    self_ipi_reserved_bits_fault=True,
    x2apic_msr_upper_half_fault=True,
    inhibits_aliasing=True,
    apic_id_modified_inhibit=IdModifiedInhibit.RECOMPUTED_U8,
    x2apic_set_lapic=X2apicSetLapic.READONLY,
    x2apic_disable_resets_id=True,
)
K6_16 = KernelPolicy(
    # The TDX series: kvm_inject_smi also refuses when the VM has no SMM (absent in 6.14.0,
    # present in 6.16.1; 6.15 not seen, taken as 6.16).
    key="K6.16", releases=_r((6, 16), None), first=(6, 16), last=None, commits=(C_SMM_PER_VM,), backports=(),
    phys_map=PhysMapRule.ARCHITECTURAL_UNLESS_32BIT_IDS,
    mda=MdaRule.DEST_ID,
    logical_map=LogicalMapRule.STRICT,
    logical_map_multi_bit_disables=True,
    logical_map_alias_disables=True,
    x2apic_logical_in_phys_map=False,
    logical_map_skips_sw_disabled=True,
    fast_path_no_target_result=0,
    smi_check=SmiCheck.VM_SUPPORTS_SMM,
    icr_reserved_bits_fault=True,
    self_ipi_reserved_bits_fault=True,
    x2apic_msr_upper_half_fault=True,
    inhibits_aliasing=True,
    apic_id_modified_inhibit=IdModifiedInhibit.RECOMPUTED_U8,
    x2apic_set_lapic=X2apicSetLapic.READONLY,
    x2apic_disable_resets_id=True,
)

VARIANTS: tuple[KernelPolicy, ...] = (K4_9, K4_11, K4_20, K5_3, K5_19, K6_2, K6_3, K6_4, K6_6, K6_11, K6_12, K6_16)
NEWEST = VARIANTS[-1]
OLDEST_RELEASE: Release = (4, 9, 0)

# Stable backports: the commit, the series, the first stable release known to carry it.
BACKPORTS: tuple[Backport, ...] = (
    Backport(commit=C_SW_DISABLED, series=(4, 14), first=(4, 14, 142), exact=True,
             evidence="\"[PATCH 4.14 24/57]\" (2019-09-04); listed in the Linux 4.14.142 announcement (2019-09-06)"),
    Backport(commit=C_SW_DISABLED, series=(4, 19), first=(4, 19, 70), exact=True,
             evidence="\"[PATCH 4.19 46/93]\" (2019-09-04); listed in the Linux 4.19.70 announcement (2019-09-06)"),
    Backport(commit=C_SW_DISABLED, series=(5, 2), first=(5, 2, 12), exact=True,
             evidence="\"[PATCH 5.2 067/143]\" (2019-09-04); listed in the Linux 5.2.12 announcement (2019-09-06)"),
    Backport(commit=C_RECALC_BAIL, series=(6, 3), first=(6, 3, 8), exact=False,
             evidence="\"[PATCH 6.3 274/286]\"; the 6.3.8 tree has it (first 6.3.y release not pinned)"),
    Backport(commit=C_READONLY, series=(6, 6), first=(6, 6, 78), exact=True,
             evidence="\"[PATCH 6.6.y 1/2]\" (Feb 2025), with 73b42dc69be8; in 6.6.78"),
    Backport(commit=C_READONLY, series=(6, 10), first=(6, 10, 13), exact=False,
             evidence="listed in the Linux 6.10.13 announcement (2024-10-04); earlier 6.10.y not checked"),
    Backport(commit=C_ICR_RESERVED, series=(6, 10), first=(6, 10, 13), exact=False,
             evidence="listed in the Linux 6.10.13 announcement (2024-10-04); earlier 6.10.y not checked"),
    Backport(commit=C_ICR_RESERVED, series=(6, 11), first=(6, 11, 11), exact=False,
             evidence="the 6.11.11 tree has it; probably 6.11.2 (the batch of 6.10.13), not verified"),
    Backport(commit=C_ICR_RESERVED, series=(6, 1), first=(6, 1, 113), exact=False,
             evidence="pushed to the linux-6.1.y stable-rc queue on 2024-10-08, so taken as 6.1.113; "
                      "measured on Debian's 6.1.170"),
    Backport(commit=C_SELF_IPI, series=(6, 1), first=(6, 1, 170), exact=False,
             evidence="measured on Debian's 6.1.170; the first 6.1.y release was not identified"),
    # Measured on Debian's 6.1.192 booted under QEMU (tests/kernels): a SELF_IPI write with bit 32
    # set fails; it did not on 6.1.170, so the backport landed in 6.1.171..6.1.192.
    Backport(commit=C_X2APIC_UPPER_HALF, series=(6, 1), first=(6, 1, 176), exact=False,
             evidence="measured on Debian's 6.1.176 (ABI 6.1.0-50) and 6.1.192; absent from 6.1.170; the first "
                      "6.1.y release (171..176) was not identified"),
    # Not in 6.1.y (up to 6.1.192 at least): 4b7c3f6d04bd "KVM: x86: Make x2APIC ID 100% readonly".
    # On Debian's 6.1.192 kvm_apic_state_fixup still plants the ID: KVM_SET_LAPIC of an x2APIC vCPU
    # without USE_32BIT_IDS stores buffer ID >> 24 (0x05000001 -> 5, read back raw after a host
    # x2APIC -> xAPIC switch), forces the LDR to the one derived from it (a buffer LDR 0x40 became
    # 0x20) whatever the vcpu_id (vCPU 300 planted with 7 took phys_map[7]), and writing the page
    # back keeps it. The 6.1-stable "FAILED" mail for 73b42dc69be8 (2024-10-01) lists 4b7c3f6d04bd
    # among the dependencies 6.1.y lacks. (An earlier row here placed it at 6.1.192: the guest
    # channel then dropped the scenario's lapic_id/lapic_ldr, so the guest wrote round trips.)
)

# Debian ABI names do not carry the upstream version; the ones seen on this project's machines.
DEBIAN_ABI: dict[str, Release] = {"6.1.0-47": (6, 1, 170), "6.1.0-50": (6, 1, 176), "6.1.0-56": (6, 1, 192),
                                   "6.1.0-57": (6, 1, 192)}

_RELEASE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+~_].*)?$")
_DEBIAN_ABI_NAME = re.compile(r"^(\d+\.\d+\.0-\d+)-[a-z0-9-]+$")
_DEBIAN_IN_VERSION = re.compile(r"\bDebian (\d+)\.(\d+)\.(\d+)")
_ALLOWED = "a release like 6.2 (= 6.2.0), 6.6.78, 6.12.107+deb12-amd64, or a /proc/version line"


def parse_release(text: str, where: str = "--kernel") -> Release:
    """x.y.z (x.y means x.y.0). A /proc/version line of a Debian kernel gives its upstream
    version ("Debian 6.1.170-1"); a bare Debian ABI name (6.1.0-47-amd64) only if known."""
    stripped = text.strip()
    # The kernel's own version is the last "Debian x.y.z" of the line: the compiler's comes first
    # ("(gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, ...) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-1").
    debian = _DEBIAN_IN_VERSION.findall(stripped)
    if debian:
        major, minor, patch = debian[-1]
        return int(major), int(minor), int(patch)
    if stripped.startswith("Linux version "):
        stripped = stripped.split()[2]
    abi = _DEBIAN_ABI_NAME.match(stripped)
    if abi:
        known = DEBIAN_ABI.get(abi.group(1))
        if known is None:
            raise InputError(where, f"{text!r} is a Debian ABI name, which does not say the upstream version",
                             "the upstream x.y.z from /proc/version (\"Debian x.y.z-N\"), e.g. --kernel 6.1.170")
        return known
    match = _RELEASE.match(stripped)
    if not match:
        raise InputError(where, f"cannot read kernel release {text!r}", _ALLOWED)
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def host_release() -> str:
    """This machine's release as precisely as it says: the Debian upstream version from
    /proc/version when there is one, otherwise ``uname -r``."""
    try:
        with open("/proc/version", encoding="utf-8") as f:
            line = f.read()
        if _DEBIAN_IN_VERSION.search(line):
            return line.strip()
    except OSError:
        pass
    return os.uname().release


def row_for(release: Release, where: str = "--kernel") -> KernelPolicy:
    for policy in VARIANTS:
        if policy.contains(release):
            return policy
    raise InputError(where, f"KVM {release[0]}.{release[1]} is not modelled",
                     "releases 4.9 and newer (older ones were not read)")


def backports_for(release: Release) -> tuple[Backport, ...]:
    return tuple(b for b in BACKPORTS
                 if b.series == release[:2] and b.first is not None and release >= b.first)


def blend(base: KernelPolicy, donors: Mapping[str, KernelPolicy], *, key: str,
          backports: tuple[Backport, ...]) -> KernelPolicy:
    """``base`` with each behaviour field named in ``donors`` taken from its donor policy."""

    def take(name: str, current: _T) -> _T:
        value: _T = getattr(donors[name], name) if name in donors else current
        return value

    return KernelPolicy(
        key=key, releases=base.releases, first=base.first, last=base.last, commits=base.commits,
        backports=backports,
        phys_map=take("phys_map", base.phys_map),
        mda=take("mda", base.mda),
        logical_map=take("logical_map", base.logical_map),
        logical_map_multi_bit_disables=take("logical_map_multi_bit_disables", base.logical_map_multi_bit_disables),
        logical_map_alias_disables=take("logical_map_alias_disables", base.logical_map_alias_disables),
        x2apic_logical_in_phys_map=take("x2apic_logical_in_phys_map", base.x2apic_logical_in_phys_map),
        logical_map_skips_sw_disabled=take("logical_map_skips_sw_disabled", base.logical_map_skips_sw_disabled),
        fast_path_no_target_result=take("fast_path_no_target_result", base.fast_path_no_target_result),
        smi_check=take("smi_check", base.smi_check),
        icr_reserved_bits_fault=take("icr_reserved_bits_fault", base.icr_reserved_bits_fault),
        self_ipi_reserved_bits_fault=take("self_ipi_reserved_bits_fault", base.self_ipi_reserved_bits_fault),
        x2apic_msr_upper_half_fault=take("x2apic_msr_upper_half_fault", base.x2apic_msr_upper_half_fault),
        inhibits_aliasing=take("inhibits_aliasing", base.inhibits_aliasing),
        apic_id_modified_inhibit=take("apic_id_modified_inhibit", base.apic_id_modified_inhibit),
        x2apic_set_lapic=take("x2apic_set_lapic", base.x2apic_set_lapic),
        x2apic_disable_resets_id=take("x2apic_disable_resets_id", base.x2apic_disable_resets_id),
    )


def with_field(base: KernelPolicy, name: str, donor: KernelPolicy) -> KernelPolicy:
    """``base`` with one behaviour field taken from ``donor`` (for attributing a difference)."""
    return blend(base, {name: donor}, key=f"{base.key}[{name} of {donor.key}]", backports=base.backports)


def with_backports(row: KernelPolicy, backports: tuple[Backport, ...]) -> KernelPolicy:
    """The row with each backport's fields set to their value in the row that merged it upstream."""
    if not backports:
        return row
    donors: dict[str, KernelPolicy] = {}
    for b in backports:
        landed = next(p for p in VARIANTS if b.commit in p.commits)
        for name in b.commit.fields:
            donors[name] = landed
    key = row.key + "".join(f"+{b.commit.hash.split(' ')[0]}" for b in backports)
    return blend(row, donors, key=key, backports=backports)


@functools.lru_cache(maxsize=256)
def _resolve(release: Release, where: str) -> KernelPolicy:
    row = row_for(release, where)
    return with_backports(row, backports_for(release))


def policy_for_release(text: str | None, where: str = "--kernel") -> KernelPolicy:
    """The policy for a release: its row plus the stable backports it carries.
    ``None`` or "latest" means the newest row."""
    if text is None or text.strip().lower() in ("latest", "newest", "mainline"):
        return NEWEST
    return _resolve(parse_release(text, where), where)


def commits_between(older: KernelPolicy, newer: KernelPolicy) -> tuple[Commit, ...]:
    """The commits (row boundaries and backports) that separate two policies, oldest first."""
    lo, hi = sorted((older, newer), key=lambda p: p.first)
    rows = [p for p in VARIANTS if lo.first < p.first <= hi.first]
    found: list[Commit] = [c for p in rows for c in p.commits]
    found += [b.commit for b in (*lo.backports, *hi.backports)]
    unique: list[Commit] = []
    for c in found:
        if c not in unique:
            unique.append(c)
    return tuple(unique)


def differing_fields(a: KernelPolicy, b: KernelPolicy) -> tuple[str, ...]:
    return tuple(name for name in BEHAVIOUR_FIELDS if getattr(a, name) != getattr(b, name))
