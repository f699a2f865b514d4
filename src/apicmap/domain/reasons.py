"""Why an engine decided what it did, as data: a reason code plus its parameters.

Engines record ``Reason`` values; words are made from them only at the edge
(``apicmap.explain``). Anything that compares or groups decisions (fuzzing signatures, the
catalogue of known differences) reads the codes, so rewording an explanation never changes
which findings count as the same.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Code(enum.Enum):
    """Every reason an engine can give. The value is the stable identifier used in JSON."""

    # --- resolution paths (KVM model) ---
    PATH_FAST_SELF = "path.fast.self"
    PATH_FAST_PHYSICAL = "path.fast.physical"
    PATH_FAST_LOGICAL = "path.fast.logical"
    PATH_SLOW = "path.slow"
    PATH_SLOW_AFTER_BAIL = "path.slow.after-bail"
    PATH_REFUSED = "path.refused"
    PATH_ARCH = "path.arch"
    PATH_OBSERVED = "path.observed"
    # why the fast path gives up
    BAIL_SHORTHAND = "bail.shorthand"
    BAIL_MAP_NULL = "bail.map-null"
    BAIL_BROADCAST = "bail.broadcast"
    BAIL_LOGICAL_UNUSABLE = "bail.logical-unusable"
    # where the fast path looked
    SLOT_PHYSICAL = "slot.physical"
    SLOT_FLAT = "slot.flat"
    SLOT_CLUSTER = "slot.cluster"
    SLOT_X2APIC_CLUSTER = "slot.x2apic-cluster"
    SLOT_X2APIC_CLUSTER_BEYOND = "slot.x2apic-cluster-beyond"
    SLOT_LOGICAL = "slot.logical"
    SLOT_HASHED = "slot.hashed"
    SLOT_ARB_PRIO = "slot.arb-prio"
    SLOT_SELF = "slot.self"
    # why the fast path found nobody
    NONE_ABOVE_MAX_APIC_ID = "none.above-max-apic-id"
    NONE_SLOT_EMPTY = "none.slot-empty"
    NONE_SW_DISABLED_DROP = "none.sw-disabled-drop"
    NONE_UNDER_MASK = "none.under-mask"
    NONE_MASK_ZERO = "none.mask-zero"
    NONE_HASHED_EMPTY = "none.hashed-empty"
    # --- per-vCPU, KVM model ---
    NOT_PRESENT = "vcpu.not-present"
    NOT_TARGETED = "vcpu.not-targeted"
    NOT_IN_SLOT = "vcpu.not-in-slot"
    HIDDEN_BY_MAP = "vcpu.hidden-by-map"
    IN_SLOT = "vcpu.in-slot"
    MATCHED = "vcpu.matched"
    LP_NOT_CANDIDATE_SW_DISABLED = "vcpu.lp-not-candidate"
    LP_CHOSEN = "vcpu.lp-chosen"
    LP_NOT_CHOSEN = "vcpu.lp-not-chosen"
    LP_BY_HASH = "lp.hash"
    LP_BY_ARB_PRIO = "lp.arb-prio"
    NOT_CONSIDERED = "vcpu.not-considered"
    # kvm_apic_match_dest
    MATCH_SHORTHAND = "match.shorthand"
    MATCH_BROADCAST = "match.broadcast"
    MATCH_PHYSICAL_X2APIC = "match.physical.x2apic"
    MATCH_PHYSICAL_HOTPLUG = "match.physical.hotplug"
    MATCH_PHYSICAL_XAPIC = "match.physical.xapic"
    MATCH_LOGICAL_X2APIC = "match.logical.x2apic"
    MATCH_LOGICAL_FLAT = "match.logical.flat"
    MATCH_LOGICAL_CLUSTER = "match.logical.cluster"
    MATCH_LOGICAL_BAD_DFR = "match.logical.bad-dfr"
    MATCH_V4_9 = "match.v4.9"
    # __apic_accept_irq
    ACCEPT_IRR = "accept.irr"
    ACCEPT_LEVEL_DEASSERT = "accept.level-deassert"
    ACCEPT_SW_DISABLED = "accept.sw-disabled"
    ACCEPT_NMI = "accept.nmi"
    ACCEPT_SMI = "accept.smi"
    ACCEPT_SMI_NO_SMM = "accept.smi-no-smm"
    ACCEPT_SMI_KVM_WITHOUT_SMM = "accept.smi-kvm-without-smm"
    ACCEPT_INIT = "accept.init"
    ACCEPT_INIT_DEASSERT = "accept.init-deassert"
    ACCEPT_SIPI = "accept.sipi"
    ACCEPT_KICK = "accept.kick"
    ACCEPT_EXTINT_IGNORED = "accept.extint-ignored"
    # notes, KVM model
    NOTE_FAST_BAILED = "note.fast-bailed"
    NOTE_NO_TARGET = "note.no-target"
    NOTE_VECTOR_HASHING = "note.vector-hashing"
    NOTE_BROADCAST_LOWEST_AS_FIXED = "note.broadcast-lowest-as-fixed"
    NOTE_SLOW_NO_MATCH = "note.slow-no-match"
    NOTE_INTERNAL_RESULT = "note.internal-result"
    NOTE_REFUSED = "note.refused"
    NOTE_DECODING = "note.decoding"
    # --- per-vCPU, architecture ---
    ARCH_VERDICT = "arch.verdict"
    ARCH_HW_DISABLED = "arch.hw-disabled"
    ARCH_SHORTHAND = "arch.shorthand"
    ARCH_MIXED_MODES = "arch.mixed-modes"
    ARCH_PHYSICAL_FF_UNICAST = "arch.physical-ff-unicast"
    ARCH_BROADCAST = "arch.broadcast"
    ARCH_PHYSICAL_X2APIC = "arch.physical.x2apic"
    ARCH_PHYSICAL_TOO_WIDE = "arch.physical.too-wide"
    ARCH_PHYSICAL_XAPIC = "arch.physical.xapic"
    ARCH_LOGICAL_X2APIC = "arch.logical.x2apic"
    ARCH_LOGICAL_TOO_WIDE = "arch.logical.too-wide"
    ARCH_DFR_UNDEFINED = "arch.dfr-undefined"
    ARCH_DFR_MIXED = "arch.dfr-mixed"
    ARCH_LOGICAL_FLAT = "arch.logical.flat"
    ARCH_CLUSTER_F = "arch.logical.cluster-f"
    ARCH_LOGICAL_CLUSTER = "arch.logical.cluster"
    ARCH_ILLEGAL_VECTOR = "arch.illegal-vector"
    ARCH_SW_DISABLED = "arch.sw-disabled"
    ARCH_LEVEL_DEASSERT_IPI = "arch.level-deassert-ipi"
    ARCH_IRR = "arch.irr"
    ARCH_NMI = "arch.nmi"
    ARCH_SMI = "arch.smi"
    ARCH_INIT_DEASSERT = "arch.init-deassert"
    ARCH_INIT = "arch.init"
    ARCH_SIPI_RESERVED = "arch.sipi-reserved"
    ARCH_SIPI = "arch.sipi"
    ARCH_REMRD = "arch.remrd"
    ARCH_EXTINT = "arch.extint"
    ARCH_EXTINT_ICR = "arch.extint-icr"
    ARCH_SEND_ILLEGAL_VECTOR = "arch.send-illegal-vector"
    ARCH_X2APIC_LOWEST_RESERVED = "arch.x2apic-lowest-reserved"
    ARCH_SHORTHAND_INVALID = "arch.shorthand-invalid"
    ARCH_LOWEST_BROADCAST = "arch.lowest-broadcast"
    ARCH_LP_LOST = "arch.lp-lost"
    ARCH_LP_TIE = "arch.lp-tie"
    ARCH_LP_WON = "arch.lp-won"
    ARCH_NO_FOCUS = "arch.no-focus"
    # --- the real kernel ---
    OBSERVED = "kvm.observed"
    OBSERVED_NOTHING = "kvm.observed-nothing"
    SIGNAL_MSI_RETURNED = "kvm.signal-msi-returned"
    # --- real QEMU (TCG) ---
    PATH_OBSERVED_QEMU = "path.observed-qemu"
    NOTE_QEMU_OBSERVED = "qemu.observed"
    NOTE_KVM_SETTINGS_IGNORED = "qemu.kvm-settings-ignored"
    # --- per-vCPU, peer profiles (apicmap.profiles) ---
    PATH_PROFILE = "path.profile"
    PEER_VERDICT = "peer.verdict"
    PEER_HW_DISABLED = "peer.hw-disabled"
    PEER_SHORTHAND = "peer.shorthand"
    PEER_SELF_BY_CURRENT_ID = "peer.self-by-current-id"
    PEER_BROADCAST = "peer.broadcast"
    PEER_BROADCAST_MIXED_UNDEFINED = "peer.broadcast-mixed-undefined"
    PEER_NOT_BROADCAST = "peer.not-broadcast"
    PEER_PHYSICAL = "peer.physical"
    PEER_PHYSICAL_WIDE = "peer.physical-wide"
    PEER_LOGICAL_X2APIC = "peer.logical.x2apic"
    PEER_LOGICAL_FLAT = "peer.logical.flat"
    PEER_LOGICAL_CLUSTER = "peer.logical.cluster"
    PEER_LOGICAL_CLUSTER_UNSUPPORTED = "peer.logical.cluster-unsupported"
    PEER_LOGICAL_TOO_WIDE = "peer.logical.too-wide"
    PEER_LOGICAL_GLOBAL = "peer.logical.global"
    PEER_LOGICAL_PAST_GAP = "peer.logical.past-gap"
    PEER_BAD_DFR = "peer.bad-dfr"
    PEER_ID_READONLY = "peer.id-readonly"
    PEER_ALIAS_ALL = "peer.alias.all"
    PEER_ALIAS_FIRST = "peer.alias.first"
    PEER_ALIAS_NOT_FIRST = "peer.alias.not-first"
    PEER_ALIAS_SCAN_MISSED = "peer.alias.scan-missed"
    PEER_ALIAS_UNDEFINED = "peer.alias.undefined"
    PEER_LP_WON = "peer.lp.won"
    PEER_LP_LOST = "peer.lp.lost"
    PEER_LP_TIE_UNDEFINED = "peer.lp.tie-undefined"
    PEER_LP_UNDEFINED = "peer.lp.undefined"
    PEER_LP_SKIPPED_SW_DISABLED = "peer.lp.skipped-sw-disabled"
    PEER_LP_IPI_DROPPED = "peer.lp.ipi-dropped"
    PEER_LP_IPI_UNDEFINED = "peer.lp.ipi-undefined"
    PEER_PHYSICAL_LP_DROPPED = "peer.lp.physical-dropped"
    PEER_PHYSICAL_LP_AS_FIXED = "peer.lp.physical-as-fixed"
    PEER_RH_LOWEST = "peer.rh-lowest"
    PEER_RH_IGNORED = "peer.rh-ignored"
    PEER_ACCEPT_IRR = "peer.accept.irr"
    PEER_SW_DISABLED_DROPPED = "peer.accept.sw-disabled-dropped"
    PEER_SW_DISABLED_ACCEPTED = "peer.accept.sw-disabled-accepted"
    PEER_SW_DISABLED_UNDEFINED = "peer.accept.sw-disabled-undefined"
    PEER_ILLEGAL_VECTOR = "peer.accept.illegal-vector"
    PEER_LEVEL_IPI = "peer.accept.level-ipi"
    PEER_ACCEPT_NMI = "peer.accept.nmi"
    PEER_ACCEPT_SMI = "peer.accept.smi"
    PEER_SMI = "peer.accept.smi-rule"
    PEER_ACCEPT_INIT = "peer.accept.init"
    PEER_INIT_DEASSERT_IGNORED = "peer.accept.init-deassert"
    PEER_ACCEPT_SIPI = "peer.accept.sipi"
    PEER_MODE_UNDEFINED = "peer.accept.mode-undefined"
    PEER_NOTE_MSI_DECODE = "peer.note.msi-decode"
    PEER_NOTE_VMM_X2APIC_API = "peer.note.vmm-x2apic-api"
    PEER_NOTE_VMM_IOAPIC = "peer.note.vmm-ioapic"
    PEER_NOTE_VMM_MSI_ROUTE = "peer.note.vmm-msi-route"
    # --- generic composition ---
    BOTH = "both"


@dataclass(frozen=True, slots=True)
class Reason:
    """A reason code with named parameters (ints, strings, flags, or nested reasons)."""

    code: Code
    args: tuple[tuple[str, int | str | bool | Reason | None], ...] = ()

    def arg(self, name: str) -> int | str | bool | Reason | None:
        for key, value in self.args:
            if key == name:
                return value
        raise KeyError(f"{self.code.value} has no argument {name!r}")

    def codes(self) -> tuple[Code, ...]:
        """This code and those of nested reasons, depth first: the shape of the decision."""
        nested = tuple(c for _, v in self.args if isinstance(v, Reason) for c in v.codes())
        return (self.code, *nested)


def because(code: Code, **args: int | str | bool | Reason | None) -> Reason:
    """``because(Code.NOT_IN_SLOT, where=...)``: a reason with keyword parameters."""
    return Reason(code, tuple(args.items()))
