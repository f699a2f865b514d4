"""The one outcome type every engine returns (arch, model, kvm), so any two can be compared."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import overload

from apicmap.domain.reasons import Reason


class Verdict(enum.Enum):
    """Per-vCPU answer. The architecture engine uses all three; KVM engines never say UNDEFINED."""

    ACCEPTED = "accepted"
    NOT_ACCEPTED = "not accepted"
    UNDEFINED = "undefined"  # architecturally undefined or model-specific


class EffectKind(enum.Enum):
    """What acceptance left behind on a vCPU (docs/routing.md#acceptance-per-delivery-mode)."""

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


_BIT_FLAGS = bytes.maketrans(b"01", b"\x00\x01")


def set_bits(mask: int) -> list[int]:
    """Positions of the set bits of ``mask``, ascending."""
    if mask.bit_count() <= 4:
        out = []
        while mask:
            low = mask & -mask
            out.append(low.bit_length() - 1)
            mask ^= low
        return out
    return list(compress(range(mask.bit_length()), bin(mask)[:1:-1].encode().translate(_BIT_FLAGS)))


def pick_bits(items: Sequence[int], mask: int) -> tuple[int, ...]:
    """``items[i]`` for each set bit ``i`` of ``mask``, in bit order (C-level for dense masks)."""
    if mask.bit_count() <= 4:
        return tuple(items[i] for i in set_bits(mask))
    return tuple(compress(items, bin(mask)[:1:-1].encode().translate(_BIT_FLAGS)))


class Effects(Sequence[Effect]):
    """The effects of one delivery that share a kind, vector and trigger, built only when read.

    ``targets`` holds vcpu_ids in delivery order. A model resolution by set algebra knows who
    accepted and how without a per-vCPU object; the ``Effect`` objects appear on first access.
    Compares (and hashes) like the tuple of those effects.
    """

    __slots__ = ("_items", "_spec")
    _items: tuple[Effect, ...]
    _spec: tuple[tuple[int, ...], EffectKind, int | None, bool]

    def __init__(self, targets: tuple[int, ...], kind: EffectKind, vector: int | None, level: bool) -> None:
        self._spec = (targets, kind, vector, level)

    def _all(self) -> tuple[Effect, ...]:
        try:
            return self._items
        except AttributeError:  # not built yet (construction writes only ``_spec``, for speed)
            targets, kind, vector, level = self._spec
            self._items = tuple(Effect(v, kind, vector, level) for v in targets)
            return self._items

    def __len__(self) -> int:
        return len(self._spec[0])

    @overload
    def __getitem__(self, index: int) -> Effect: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Effect, ...]: ...

    def __getitem__(self, index: int | slice) -> Effect | tuple[Effect, ...]:
        return self._all()[index]

    def __iter__(self) -> Iterator[Effect]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Effects):
            mine, theirs = self._spec, other._spec
            if mine[1:] == theirs[1:]:
                return mine[0] == theirs[0]
            return not mine[0] and not theirs[0]
        if isinstance(other, (tuple, list)):
            return self._all() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._all())

    def __repr__(self) -> str:
        return repr(self._all())


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
    effects: Sequence[Effect] = ()  # a tuple, or ``Effects`` (built when read)
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


_NEW = object.__new__
_SET_ENGINE = Outcome.__dict__["engine"].__set__
_SET_RECEIVERS = Outcome.__dict__["receivers"].__set__
_SET_EFFECTS = Outcome.__dict__["effects"].__set__
_SET_RESULT = Outcome.__dict__["result"].__set__
_SET_REJECTED = Outcome.__dict__["rejected"].__set__
_SET_UNDEFINED = Outcome.__dict__["undefined"].__set__
_SET_EXPLANATION = Outcome.__dict__["explanation"].__set__


_SET_SPEC = Effects.__dict__["_spec"].__set__
# For hot paths that build outcomes inline: (new, setters in field order: engine, receivers,
# effects, result, rejected, undefined, explanation, then Effects._spec).
FAST_BUILD = (_NEW, _SET_ENGINE, _SET_RECEIVERS, _SET_EFFECTS, _SET_RESULT, _SET_REJECTED, _SET_UNDEFINED,
              _SET_EXPLANATION, _SET_SPEC)


def lazy_effects(targets: tuple[int, ...], kind: EffectKind, vector: int | None, level: bool) -> Effects:
    """``Effects(targets, kind, vector, level)``, built with one slot write."""
    effects: Effects = _NEW(Effects)
    _SET_SPEC(effects, (targets, kind, vector, level))
    return effects


def quick_outcome(engine: str, receivers: tuple[int, ...], effects: Sequence[Effect], result: int | None) -> Outcome:
    """``Outcome(engine=..., receivers=..., effects=..., result=...)`` without the frozen ``__init__``'s
    per-field ``object.__setattr__`` (a third of the cost of a fast-path resolution)."""
    outcome: Outcome = _NEW(Outcome)
    _SET_ENGINE(outcome, engine)
    _SET_RECEIVERS(outcome, receivers)
    _SET_EFFECTS(outcome, effects)
    _SET_RESULT(outcome, result)
    _SET_REJECTED(outcome, None)
    _SET_UNDEFINED(outcome, ())
    _SET_EXPLANATION(outcome, None)
    return outcome
