"""Which rule a reason code stands for: the ``PeerPolicy`` field that produced it.

``compare`` and the cross-profile fuzzer name the rule behind a difference from the codes an
engine recorded (never from words). Codes of the KVM model map to its path, prefixed ``kvm:``.
"""

from __future__ import annotations

from apicmap.domain.outcome import Explanation
from apicmap.domain.reasons import Code, Reason

RULE_OF_CODE: dict[Code, str] = {
    Code.PEER_SELF_BY_CURRENT_ID: "self_target",
    Code.PEER_BROADCAST_MIXED_UNDEFINED: "broadcast_decider",
    Code.PEER_PHYSICAL_WIDE: "wide_dest_xapic",
    Code.PEER_LOGICAL_CLUSTER: "cluster_f",
    Code.PEER_LOGICAL_CLUSTER_UNSUPPORTED: "xapic_cluster",
    Code.PEER_LOGICAL_TOO_WIDE: "wide_dest_xapic",
    Code.PEER_LOGICAL_GLOBAL: "logical_scope",
    Code.PEER_LOGICAL_PAST_GAP: "logical_scan_stops_at_gap",
    Code.PEER_BAD_DFR: "bad_dfr",
    Code.PEER_ID_READONLY: "physical_aliasing",
    Code.PEER_ALIAS_ALL: "physical_aliasing",
    Code.PEER_ALIAS_FIRST: "physical_aliasing",
    Code.PEER_ALIAS_NOT_FIRST: "physical_aliasing",
    Code.PEER_ALIAS_SCAN_MISSED: "physical_aliasing",
    Code.PEER_ALIAS_UNDEFINED: "physical_aliasing",
    Code.PEER_LP_WON: "lowest_priority",
    Code.PEER_LP_LOST: "lowest_priority",
    Code.PEER_LP_TIE_UNDEFINED: "lowest_priority",
    Code.PEER_LP_UNDEFINED: "lowest_priority",
    Code.PEER_LP_SKIPPED_SW_DISABLED: "lowest_skips_sw_disabled",
    Code.PEER_LP_IPI_DROPPED: "lowest_ipi",
    Code.PEER_LP_IPI_UNDEFINED: "lowest_ipi",
    Code.PEER_PHYSICAL_LP_DROPPED: "physical_lowest",
    Code.PEER_PHYSICAL_LP_AS_FIXED: "physical_lowest",
    Code.PEER_RH_LOWEST: "rh_means_lowest",
    Code.PEER_RH_IGNORED: "rh_means_lowest",
    Code.PEER_SW_DISABLED_DROPPED: "sw_disabled_fixed",
    Code.PEER_SW_DISABLED_ACCEPTED: "sw_disabled_fixed",
    Code.PEER_SW_DISABLED_UNDEFINED: "sw_disabled_fixed",
    Code.PEER_ILLEGAL_VECTOR: "illegal_vector",
    Code.PEER_LEVEL_IPI: "level_ipi",
    Code.PEER_SMI: "smi",
    Code.PEER_NOTE_MSI_DECODE: "msi_decode",
    Code.PEER_NOTE_VMM_X2APIC_API: "vmm:x2apic_api",
    Code.PEER_NOTE_VMM_IOAPIC: "vmm:ioapic",
    Code.PEER_NOTE_VMM_MSI_ROUTE: "vmm:msi_route",
    # KVM model codes that carry a KVM rule of their own
    Code.HIDDEN_BY_MAP: "kvm:optimized map",
    Code.NOTE_VECTOR_HASHING: "kvm:lowest priority",
    Code.SLOT_HASHED: "kvm:lowest priority",
    Code.SLOT_ARB_PRIO: "kvm:lowest priority",
    Code.NOTE_BROADCAST_LOWEST_AS_FIXED: "kvm:lowest priority",
    Code.MATCH_PHYSICAL_HOTPLUG: "kvm:hotplug hack",
    Code.LP_CHOSEN: "kvm:lowest priority",
    Code.LP_NOT_CHOSEN: "kvm:lowest priority",
    Code.LP_NOT_CANDIDATE_SW_DISABLED: "kvm:lowest priority",
    Code.MATCH_BROADCAST: "kvm:broadcast",
    Code.BAIL_BROADCAST: "kvm:broadcast",
    Code.ACCEPT_SW_DISABLED: "kvm:software-disabled",
    Code.NONE_SW_DISABLED_DROP: "kvm:logical_mode SW_DISABLED",
    Code.MATCH_LOGICAL_BAD_DFR: "kvm:bad DFR",
}


def rules_in(reason: Reason) -> list[str]:
    """The rules behind one reason (nested reasons included), in order, without repeats."""
    out: list[str] = []
    for code in reason.codes():
        rule = RULE_OF_CODE.get(code)
        if rule is None and code in (Code.PEER_BROADCAST, Code.PEER_NOT_BROADCAST):
            logical = reason_arg(reason, code, "logical") == "True"
            rule = "logical_broadcast" if logical else "broadcast_decider"
        if rule is None and code in (Code.PEER_PHYSICAL, Code.PEER_LOGICAL_X2APIC):
            # Only an x2APIC ID other than n is a rule of its own; an xAPIC ID compare is architectural.
            rule = "x2apic_id" if reason_arg(reason, code, "rule") == "twice_vcpu_id" else None
        if rule is not None and rule not in out:
            out.append(rule)
    return out


def reason_arg(reason: Reason, code: Code, name: str) -> str | None:
    """The argument ``name`` of the first nested reason with ``code``."""
    if reason.code is code:
        value = reason.arg(name)
        return None if value is None else str(value)
    for _, value in reason.args:
        if isinstance(value, Reason):
            found = reason_arg(value, code, name)
            if found is not None:
                return found
    return None


def rules_for_vcpus(explanation: Explanation | None, vcpus: set[int]) -> list[str]:
    """The rules behind the decisions for ``vcpus``, and behind the notes (decoding, VMM transforms)."""
    if explanation is None:
        return []
    out: list[str] = []
    for reason in explanation.notes:
        if reason.code is Code.PEER_ID_READONLY:
            continue  # the per-vCPU reason carries it where it matters
        for rule in rules_in(reason):
            if rule not in out:
                out.append(rule)
    for vid, reason in explanation.reasons:
        if vid in vcpus:
            for rule in rules_in(reason):
                if rule not in out:
                    out.append(rule)
    if "kvm:lowest priority" in out and "kvm:optimized map" in out:
        out.remove("kvm:optimized map")  # the map holds the chosen target: that is the lowest-priority rule
    return out
