"""Reason codes turned into words: the only place explanations are worded.

Engines record ``Reason`` values (``apicmap.domain.reasons``). ``render`` turns one into a line
of text, ``explanation_json`` and ``outcome_json`` build the JSON the CLI prints. Nothing that
compares decisions reads these words, so they can be reworded freely.
"""

from __future__ import annotations

from collections.abc import Mapping

from apicmap.domain.outcome import Explanation, Outcome
from apicmap.domain.reasons import Code, Reason

_SDM = "SDM Vol. 3A"

TEMPLATES: dict[Code, str] = {
    Code.PATH_FAST_SELF: "fast path: shorthand self",
    Code.PATH_FAST_PHYSICAL: "fast path: physical",
    Code.PATH_FAST_LOGICAL: "fast path: logical {mode}",
    Code.PATH_SLOW: "slow path",
    Code.PATH_SLOW_AFTER_BAIL: "slow path ({why})",
    Code.PATH_REFUSED: "none",
    Code.PATH_ARCH: "architecture: every APIC checks the message",
    Code.PATH_OBSERVED: "kvm: observed on the real kernel",
    Code.BAIL_SHORTHAND: "shorthand {shorthand} always takes the slow path",
    Code.BAIL_MAP_NULL: "map NULL: {detail}",
    Code.BAIL_BROADCAST: "destination {dest:#x} is a broadcast for the fast path",
    Code.BAIL_LOGICAL_UNUSABLE: "logical map unusable ({mode}: {detail})",
    Code.SLOT_PHYSICAL: "phys_map[{dest:#x}]",
    Code.SLOT_FLAT: "flat map",
    Code.SLOT_CLUSTER: "cluster {cluster}",
    Code.SLOT_X2APIC_CLUSTER: "x2APIC cluster {cluster:#x} (phys_map {offset:#x}+)",
    Code.SLOT_X2APIC_CLUSTER_BEYOND: "x2APIC cluster {cluster:#x} (beyond max_apic_id)",
    Code.SLOT_LOGICAL: "logical",
    Code.SLOT_HASHED: "{where} bit {bit} (hashed)",
    Code.SLOT_ARB_PRIO: "{where} (lowest apic_arb_prio)",
    Code.SLOT_SELF: "self",
    Code.NONE_ABOVE_MAX_APIC_ID: "destination {dest:#x} > max_apic_id {max_apic_id:#x}",
    Code.NONE_SLOT_EMPTY: "phys_map[{dest:#x}] is empty",
    Code.NONE_SW_DISABLED_DROP: "logical_mode SW_DISABLED: logical interrupts are dropped",
    Code.NONE_UNDER_MASK: "no map entry under mask {mask:#x} of {where}",
    Code.NONE_MASK_ZERO: "mask 0 in {where}",
    Code.NONE_HASHED_EMPTY: "hash picked bit {bit} (vector {vector:#x} mod {count}): empty slot, dropped",
    Code.NOT_PRESENT: "not present (APIC hardware-disabled)",
    Code.NOT_TARGETED: "not targeted: {why}",
    Code.NOT_IN_SLOT: "not in {where}",
    Code.HIDDEN_BY_MAP: ("would match in the slow path ({match}), but the fast path delivers only to {where} "
                         "(vCPU {holders})"),
    Code.IN_SLOT: "in {where}: {accept}",
    Code.MATCHED: "{match}; {accept}",
    Code.LP_NOT_CANDIDATE_SW_DISABLED: "matched, but software-disabled: not a lowest-priority candidate",
    Code.LP_CHOSEN: "lowest-priority candidate; {how}: {accept}",
    Code.LP_NOT_CHOSEN: "lowest-priority candidate, not chosen ({how})",
    Code.LP_BY_HASH: "vector hashing picked candidate {index} of {count}",
    Code.LP_BY_ARB_PRIO: "lowest apic_arb_prio",
    Code.NOT_CONSIDERED: "not considered",
    Code.MATCH_SHORTHAND: "shorthand {shorthand}: {matched?matched|not matched}",
    Code.MATCH_BROADCAST: "broadcast (MDA {mda:#x} is all ones for a {mode} target)",
    Code.MATCH_PHYSICAL_X2APIC: "{matched?matched|not} physical ID {mda:#x} (x2APIC ID {x2apic_id:#x})",
    Code.MATCH_PHYSICAL_HOTPLUG: ("{matched?matched|not matched}: MDA {mda:#x} > 0xFF compared with vcpu_id "
                                  "{vcpu_id:#x} (hotplug hack)"),
    Code.MATCH_PHYSICAL_XAPIC: "{matched?matched|not} physical ID {mda:#04x} (xAPIC ID {xapic_id:#04x})",
    Code.MATCH_LOGICAL_X2APIC: "logical x2APIC cluster {cluster:#x} mask {mask:#06x}: {matched?matched|not matched}",
    Code.MATCH_LOGICAL_FLAT: "logical flat: LDR {logical_id:#04x} & MDA {mda:#x}: {matched?matched|not matched}",
    Code.MATCH_LOGICAL_CLUSTER: ("logical cluster {cluster} bits {bits:#x} vs MDA {mda:#x}: "
                                 "{matched?matched|not matched}"),
    Code.MATCH_LOGICAL_BAD_DFR: "DFR {dfr:#010x} is neither flat nor cluster: matches nothing",
    Code.MATCH_V4_9: ("v4.9 MDA {mda:#x} ({x2apic_format?x2APIC|xAPIC (dest << 24)} format from the "
                      "{from_sender?sender|target}): {matched?matched|not matched}"),
    Code.ACCEPT_IRR: "IRR {vector:#04x} set",
    Code.ACCEPT_LEVEL_DEASSERT: "{delivery} level de-assert: discarded (KVM-specific)",
    Code.ACCEPT_SW_DISABLED: "software-disabled: {delivery} refused",
    Code.ACCEPT_NMI: "NMI pending",
    Code.ACCEPT_SMI: "SMI pending",
    Code.ACCEPT_SMI_NO_SMM: "SMI refused: the VM does not support SMM (v6.16+)",
    Code.ACCEPT_SMI_KVM_WITHOUT_SMM: "SMI refused: KVM is built without SMM (kvm_inject_smi: -ENOTTY, v6.2+)",
    Code.ACCEPT_INIT: "INIT latched",
    Code.ACCEPT_INIT_DEASSERT: "INIT level de-assert: ignored",
    Code.ACCEPT_SIPI: "SIPI {vector:#04x} latched",
    Code.ACCEPT_KICK: "REMRD: PV kick (pv_unhalted)",
    Code.ACCEPT_EXTINT_IGNORED: "EXTINT: ignored by the local APIC",
    Code.NOTE_FAST_BAILED: "fast path bailed: {why}",
    Code.NOTE_NO_TARGET: "{why}",
    Code.NOTE_VECTOR_HASHING: "vector hashing: vector {vector:#x} mod {count} set bits -> bit {bit} of {where}",
    Code.NOTE_BROADCAST_LOWEST_AS_FIXED: "physical 0xFF with lowest priority: rewritten to FIXED",
    Code.NOTE_SLOW_NO_MATCH: "slow path matched no vCPU: KVM_SIGNAL_MSI fails with EPERM (-1)",
    Code.NOTE_INTERNAL_RESULT: "internal delivery result r = {r} (not visible to the sender)",
    Code.NOTE_REFUSED: "{detail}",
    Code.NOTE_DECODING: "{detail}",
    Code.ARCH_VERDICT: "{verdict}: {why}",
    Code.ARCH_HW_DISABLED: f"hardware-disabled APIC receives nothing ({_SDM} 11.4.3)",
    Code.ARCH_SHORTHAND: "shorthand {shorthand}: {matched?addressed|not addressed}",
    Code.ARCH_MIXED_MODES: ("mixed modes: {source_mode} sender, {target_mode} target; the SDM defines no "
                            "delivery rules for mixed xAPIC/x2APIC systems"),
    Code.ARCH_PHYSICAL_FF_UNICAST: ("8-bit all-ones destination to an x2APIC-mode APIC: broadcast or unicast to "
                                    f"ID 0xFF is implementation-specific ({_SDM} 11.12.9)"),
    Code.ARCH_BROADCAST: f"broadcast {{dest:#x}} ({_SDM} 11.6.2.1, 11.12.9)",
    Code.ARCH_PHYSICAL_X2APIC: "physical {dest:#x} vs x2APIC ID {x2apic_id:#x}: {matched?matched|not matched}",
    Code.ARCH_PHYSICAL_TOO_WIDE: f"physical {{dest:#x}} cannot name an 8-bit xAPIC ID ({_SDM} 11.6.2.1)",
    Code.ARCH_PHYSICAL_XAPIC: "physical {dest:#04x} vs xAPIC ID {xapic_id:#04x}: {matched?matched|not matched}",
    Code.ARCH_LOGICAL_X2APIC: (f"x2APIC logical: cluster {{cluster:#x}} mask {{mask:#06x}} vs MDA {{mda:#x}}: "
                               f"{{matched?matched|not matched}} ({_SDM} 11.12.10.2)"),
    Code.ARCH_LOGICAL_TOO_WIDE: f"logical MDA {{mda:#x}} is wider than an xAPIC LDR ({_SDM} 11.6.2.2)",
    Code.ARCH_DFR_UNDEFINED: f"DFR model {{model:#x}} is neither flat nor cluster ({_SDM} 11.6.2.2)",
    Code.ARCH_DFR_MIXED: f"APICs with logical IDs use different DFR models; the SDM requires one ({_SDM} 11.6.2.2)",
    Code.ARCH_LOGICAL_FLAT: (f"logical flat: LDR {{logical_id:#04x}} & MDA {{mda:#04x}}: "
                             f"{{matched?matched|not matched}} ({_SDM} 11.6.2.2)"),
    Code.ARCH_CLUSTER_F: (f"cluster 0xF with mask {{mask:#x}}: 'all clusters' or nothing is implementation-specific "
                          f"({_SDM} 11.6.2.2)"),
    Code.ARCH_LOGICAL_CLUSTER: (f"logical cluster {{cluster}} bits {{bits:#x}} vs MDA {{mda:#04x}}: "
                                f"{{matched?matched|not matched}} ({_SDM} 11.6.2.2)"),
    Code.ARCH_ILLEGAL_VECTOR: (f"illegal vector {{vector:#04x}}: receive-illegal-vector (ESR bit 6), IRR untouched "
                               f"({_SDM} 11.5.3)"),
    Code.ARCH_SW_DISABLED: f"software-disabled: {{delivery}} not accepted ({_SDM} 11.4.7.2)",
    Code.ARCH_LEVEL_DEASSERT_IPI: f"level de-assert IPI outside INIT: model-specific ({_SDM} 11.6.1)",
    Code.ARCH_IRR: "IRR {vector:#04x}",
    Code.ARCH_NMI: f"NMI (accepted even when software-disabled, {_SDM} 11.4.7.2)",
    Code.ARCH_SMI: f"SMI (accepted even when software-disabled, {_SDM} 11.4.7.2)",
    Code.ARCH_INIT_DEASSERT: f"INIT level de-assert: P6 only, unsupported on Pentium 4 and later ({_SDM} 11.6.1)",
    Code.ARCH_INIT: "INIT",
    Code.ARCH_SIPI_RESERVED: f"start-up is reserved in MSI and IOAPIC delivery modes ({_SDM} 11.11.2)",
    Code.ARCH_SIPI: "SIPI latched (acted on in wait-for-SIPI)",
    Code.ARCH_REMRD: "delivery mode 011 is reserved on Intel, 'remote read' on AMD (APM Vol. 2 16.5)",
    Code.ARCH_EXTINT: "ExtINT takes its vector from an external 8259, outside this model",
    Code.ARCH_EXTINT_ICR: f"ExtINT is reserved in the ICR ({_SDM} 11.6.1)",
    Code.ARCH_SEND_ILLEGAL_VECTOR: f"send illegal vector {{vector:#04x}}: the IPI is not sent ({_SDM} 11.5.3)",
    Code.ARCH_X2APIC_LOWEST_RESERVED: f"lowest priority is reserved in the x2APIC ICR ({_SDM} 11.12.9)",
    Code.ARCH_SHORTHAND_INVALID: f"{{delivery}} with this shorthand is an invalid ICR combination ({_SDM} 11.6.1)",
    Code.ARCH_LOWEST_BROADCAST: f"lowest priority with a physical broadcast must not be programmed ({_SDM} 11.6.2.4)",
    Code.ARCH_LP_LOST: "lost lowest-priority arbitration (TPR class {tpr_class} > {best})",
    Code.ARCH_LP_TIE: (f"lowest-priority tie at TPR class {{best}} among {{count}} APICs: the winner is "
                       f"model-specific ({_SDM} 11.6.2.4)"),
    Code.ARCH_LP_WON: "won lowest-priority arbitration",
    Code.ARCH_NO_FOCUS: f"focus-processor checking (P6) is not modelled; arbitration by TPR class ({_SDM} 11.6.2.4)",
    Code.OBSERVED: "{effects}",
    Code.OBSERVED_NOTHING: "no effect",
    Code.SIGNAL_MSI_RETURNED: "KVM_SIGNAL_MSI returned {r}",
    Code.PATH_OBSERVED_QEMU: "qemu {version} TCG: observed by the test guest",
    Code.NOTE_QEMU_OBSERVED: "QEMU {version}, TCG; every receiver is what the guest observed",
    Code.NOTE_KVM_SETTINGS_IGNORED: "KVM-only VM settings ignored under TCG: {settings}",
    Code.PATH_PROFILE: "{profile}: {summary}",
    Code.PEER_VERDICT: "{verdict}: {why}",
    Code.PEER_HW_DISABLED: "hardware-disabled: receives nothing",
    Code.PEER_SHORTHAND: "shorthand {shorthand}: {matched?addressed|not addressed}",
    Code.PEER_SELF_BY_CURRENT_ID: "the shorthand names the vCPU at the sender's current APIC ID {id:#x}",
    Code.PEER_BROADCAST: "{logical?logical|physical} broadcast {dest:#x} (decided by: {decider})",
    Code.PEER_NOT_BROADCAST: "all-ones {dest:#x} is not a {logical?logical |}broadcast for this APIC ({rule})",
    Code.PEER_BROADCAST_MIXED_UNDEFINED: "all-ones {dest:#x} between an xAPIC and an x2APIC APIC: undefined",
    Code.PEER_PHYSICAL: "physical {dest:#x} vs {x2apic?x2APIC|xAPIC} ID {id:#x}: {matched?matched|not matched}",
    Code.PEER_PHYSICAL_WIDE: "physical {dest:#x} vs xAPIC target ({rule}, ID {id:#x}): {matched?matched|not matched}",
    Code.PEER_LOGICAL_X2APIC: ("logical x2APIC cluster {cluster:#x} mask {mask:#06x} vs MDA {mda:#x}: "
                               "{matched?matched|not matched}"),
    Code.PEER_LOGICAL_FLAT: "logical flat: ID {logical_id:#04x} & MDA {mda:#04x}: {matched?matched|not matched}",
    Code.PEER_LOGICAL_CLUSTER: ("logical cluster {cluster} bits {bits:#x} vs MDA {mda:#04x}"
                                "{all_clusters? (cluster 0xF: all clusters)|}: {matched?matched|not matched}"),
    Code.PEER_LOGICAL_CLUSTER_UNSUPPORTED: "xAPIC cluster mode is not supported: no match",
    Code.PEER_LOGICAL_TOO_WIDE: "logical MDA {mda:#x} is wider than an xAPIC logical ID: no match",
    Code.PEER_LOGICAL_GLOBAL: "logical, decoded VM-wide as {format}: MDA {mda:#x}: {matched?matched|not matched}",
    Code.PEER_LOGICAL_PAST_GAP: "the logical scan stops at the first empty index {gap}: not reached",
    Code.PEER_BAD_DFR: "DFR {dfr:#010x} is neither flat nor cluster: {undefined?undefined|no match}",
    Code.PEER_ID_READONLY: ("the APIC ID is read-only: vCPU {vcpu} keeps ID {actual:#x} (the scenario's "
                            "{requested:#x} is impossible)"),
    Code.PEER_ALIAS_ALL: "aliased ID shared by {count} APICs: every match accepts",
    Code.PEER_ALIAS_FIRST: "first match",
    Code.PEER_ALIAS_NOT_FIRST: "aliased ID: only the first match (vCPU {winner}) accepts",
    Code.PEER_ALIAS_SCAN_MISSED: ("not found: the slot-then-scan lookup (gap at {gap}) picked "
                                  "{winner} (-1: nobody)"),
    Code.PEER_ALIAS_UNDEFINED: "aliased ID shared by {count} APICs: one, all or none receive (undefined)",
    Code.PEER_LP_WON: "lowest priority ({rule}): chosen (TPR {tpr:#x})",
    Code.PEER_LP_LOST: "lowest priority ({rule}): not chosen (TPR {tpr:#x}, lowest {best:#x})",
    Code.PEER_LP_TIE_UNDEFINED: ("lowest priority ({rule}): {count} APICs tie at {best:#x}; the winner depends on "
                                 "state the VM does not hold (undefined)"),
    Code.PEER_LP_UNDEFINED: "lowest priority: the peer's arbitration is not documented (undefined)",
    Code.PEER_LP_SKIPPED_SW_DISABLED: "software-disabled: not a lowest-priority candidate",
    Code.PEER_LP_IPI_DROPPED: "lowest-priority IPI from an x2APIC-mode sender: dropped",
    Code.PEER_LP_IPI_UNDEFINED: "lowest-priority IPI: not handled by the peer's ICR path (undefined)",
    Code.PEER_PHYSICAL_LP_DROPPED: "lowest priority with a physical destination: dropped",
    Code.PEER_PHYSICAL_LP_AS_FIXED: "lowest priority with a physical destination: delivered as fixed",
    Code.PEER_RH_IGNORED: "MSI redirection hint set: ignored (delivered by the delivery mode)",
    Code.PEER_RH_LOWEST: "MSI redirection hint set: delivered as lowest priority",
    Code.PEER_ACCEPT_IRR: "IRR {vector:#04x}{tmr? TMR|}",
    Code.PEER_SW_DISABLED_DROPPED: "software-disabled: {delivery} dropped",
    Code.PEER_SW_DISABLED_UNDEFINED: "software-disabled: what the peer does with {delivery} was not traced (undefined)",
    Code.PEER_SW_DISABLED_ACCEPTED: "software-disabled, but {delivery} is accepted",
    Code.PEER_ILLEGAL_VECTOR: "illegal vector {vector:#04x}: {rule}",
    Code.PEER_LEVEL_IPI: "level-triggered IPI ({assert_?assert|de-assert}): {rule}",
    Code.PEER_ACCEPT_NMI: "NMI pending",
    Code.PEER_ACCEPT_SMI: "SMI pending",
    Code.PEER_SMI: "SMI: {rule}",
    Code.PEER_ACCEPT_INIT: "INIT latched",
    Code.PEER_INIT_DEASSERT_IGNORED: "INIT level de-assert: ignored",
    Code.PEER_ACCEPT_SIPI: "SIPI {vector:#04x} latched",
    Code.PEER_MODE_UNDEFINED: "{delivery}{bus? through MSI/IOAPIC|}: not modelled for this peer (undefined)",
    Code.PEER_NOTE_MSI_DECODE: "MSI destination read as {rule}: {logical?logical|physical} {dest:#x}",
    Code.PEER_NOTE_VMM_X2APIC_API: ("{vmm}: X2APIC_API {enabled?enabled|not enabled} (largest APIC ID {top:#x}; "
                                    "the VMM enables it {rule})"),
    Code.PEER_NOTE_VMM_IOAPIC: ("{vmm}: IOAPIC pin {pin} sent to KVM as MSI address {address_hi:#x}:{address_lo:#010x} "
                                "data {data:#06x} ({ioapic})"),
    Code.PEER_NOTE_VMM_MSI_ROUTE: ("{vmm}: MSI address bits 11:5 moved to address_hi before KVM: "
                                   "{address_hi:#x}:{address_lo:#010x}"),
    Code.BOTH: "{first}; {then}",
}

_QUIRK_PREFIX = "MDA {quirked_from:#x}->{mda:#x} (broadcast quirk); "


def render(reason: Reason, templates: Mapping[Code, str] | None = None) -> str:
    """One line of words for ``reason`` (nested reasons rendered in place)."""
    table = TEMPLATES if templates is None else templates
    args = {name: render(value, table) if isinstance(value, Reason) else value for name, value in reason.args}
    text = _fill(table[reason.code], args)
    if args.get("quirked_from") is not None:
        text = _fill(_QUIRK_PREFIX, args) + text
    return text


def _fill(template: str, args: Mapping[str, object]) -> str:
    """``str.format`` plus ``{flag?yes|no}`` for booleans."""
    out: list[str] = []
    rest = template
    while "{" in rest:
        head, _, tail = rest.partition("{")
        field, _, rest = tail.partition("}")
        out.append(head)
        if "?" in field:
            name, _, choices = field.partition("?")
            yes, _, no = choices.partition("|")
            out.append(yes if args[name] else no)
        else:
            out.append(("{" + field + "}").format(**args))
    out.append(rest)
    return "".join(out)


def explanation_json(explanation: Explanation) -> dict[str, object]:
    return {
        "message": explanation.message,
        "path": render(explanation.path),
        "path_code": explanation.path.code.value,
        "map": explanation.map_state,
        "reasons": {str(v): render(r) for v, r in explanation.reasons},
        "reason_codes": {str(v): r.code.value for v, r in explanation.reasons},
        "notes": [render(n) for n in explanation.notes],
    }


def outcome_json(outcome: Outcome) -> dict[str, object]:
    out = outcome.to_json()
    if outcome.explanation is not None:
        out["explanation"] = explanation_json(outcome.explanation)
    return out
