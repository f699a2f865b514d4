"""The one outcome type every engine returns (arch, model, kvm), so any two can be compared."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from apicmap.domain.reasons import Reason


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation:
    """Why an engine decided what it did. Built only when asked for (``explain=True``).

    ``path`` and ``reasons`` are reason codes; ``apicmap.explain`` turns them into words.
    ``message`` describes the decoded message and ``map_state`` the model's optimized map.
    """

    message: str
    path: Reason
    map_state: str | None = None
    reasons: tuple[tuple[int, Reason], ...] = ()  # (vcpu_id, reason), creation order
    notes: tuple[Reason, ...] = ()

    def reason_for(self, vcpu_id: int) -> Reason | None:
        for vid, reason in self.reasons:
            if vid == vcpu_id:
                return reason
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
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
        return out
