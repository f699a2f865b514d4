"""The one outcome type every engine returns (arch, model, kvm), so any two can be compared."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Verdict(enum.Enum):
    """Per-vCPU answer. The architecture engine uses all three; KVM engines never say UNDEFINED."""

    ACCEPTED = "accepted"
    NOT_ACCEPTED = "not accepted"
    UNDEFINED = "undefined"  # architecturally undefined or model-specific


class EffectKind(enum.Enum):
    """What acceptance left behind on a vCPU (kvm-routing.md §6.4)."""

    IRR = "irr"  # FIXED/LOWEST: IRR bit set (TMR bit = trigger)
    NMI = "nmi"  # NMI pending
    SMI = "smi"  # SMI pending
    INIT = "init"  # INIT latched
    SIPI = "sipi"  # SIPI latched (vector = start page)
    KICK = "kick"  # REMRD: KVM's PV unhalt kick


@dataclass(frozen=True, slots=True)
class Effect:
    vcpu_id: int
    kind: EffectKind
    vector: int | None = None
    level_triggered: bool = False  # the TMR bit, for IRR effects

    def describe(self) -> str:
        if self.kind is EffectKind.IRR:
            return f"IRR 0x{self.vector or 0:02x}{' TMR' if self.level_triggered else ''}"
        if self.kind is EffectKind.SIPI:
            return f"SIPI 0x{self.vector or 0:02x}"
        return str(self.kind.value).upper()


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why an engine decided what it did. Built only when asked for (``explain=True``)."""

    message: str  # the decoded message, one line
    path: str  # e.g. "fast path", "slow path: map disabled (physical ID 0x01 aliased)"
    map_state: str | None = None
    reasons: tuple[tuple[int, str], ...] = ()  # (vcpu_id, reason), creation order
    notes: tuple[str, ...] = ()

    def reason_for(self, vcpu_id: int) -> str | None:
        for vid, text in self.reasons:
            if vid == vcpu_id:
                return text
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "message": self.message,
            "path": self.path,
            "map": self.map_state,
            "reasons": {str(v): r for v, r in self.reasons},
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one injection.

    ``receivers``: sorted vcpu_ids that accepted (an IRR bit for FIXED/LOWEST, pending for
    NMI/SMI, latched for INIT/SIPI, kicked for REMRD).
    ``result``: what the injecting call returns where that is defined: the KVM_SIGNAL_MSI
    value for MSIs (a count, 0, or -1 for EPERM); ``None`` otherwise.
    ``rejected``: set when the injection was refused before delivery (EINVAL, #GP), with why.
    ``undefined``: vCPUs whose acceptance is architecturally undefined (arch engine only).
    """

    engine: str
    receivers: tuple[int, ...]
    effects: tuple[Effect, ...] = ()
    result: int | None = None
    rejected: str | None = None
    undefined: tuple[int, ...] = ()
    explanation: Explanation | None = field(default=None, compare=False)

    def verdict(self, vcpu_id: int) -> Verdict:
        if vcpu_id in self.receivers:
            return Verdict.ACCEPTED
        if vcpu_id in self.undefined:
            return Verdict.UNDEFINED
        return Verdict.NOT_ACCEPTED

    def same_as(self, other: Outcome) -> bool:
        """Equal receivers, return value, rejection and effects (engine name aside)."""
        return (
            self.receivers == other.receivers
            and self.result == other.result
            and (self.rejected is None) == (other.rejected is None)
            and set(self.effects) == set(other.effects)
        )

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "receivers": list(self.receivers),
            "return": self.result,
            "rejected": self.rejected,
            "effects": [
                {"vcpu_id": e.vcpu_id, "kind": e.kind.value, "vector": e.vector,
                 "level_triggered": e.level_triggered}
                for e in self.effects
            ],
        }
        if self.undefined:
            out["undefined"] = list(self.undefined)
        if self.explanation is not None:
            out["explanation"] = self.explanation.to_json()
        return out
