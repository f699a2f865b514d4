"""Engine ``model``: KVM's routing as a given release implements it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from apicmap.decode import KvmDecodeRules, Refused, decode_for_kvm, describe_message
from apicmap.domain.engine import Closing, PreparedBase
from apicmap.domain.message import Injection, MsiInjection
from apicmap.domain.outcome import Explanation, Outcome, quick_outcome
from apicmap.domain.reasons import Code, because
from apicmap.domain.vm import VmState
from apicmap.model.apic_map import ApicMap, build_map
from apicmap.model.bitset import VmIndex, resolve_message, resolve_msi, supports, unicast_msi
from apicmap.model.policy import KernelPolicy
from apicmap.model.resolve import Trace, deliver
from apicmap.model.set_lapic import kvm_view


class ModelEngine(Closing):
    """``memo=True`` adds a per-VM table from injection to outcome (a repeated message is a
    dictionary lookup); off by default, so every answer is computed."""

    def __init__(self, policy: KernelPolicy, *, memo: bool = False) -> None:
        self.policy = policy
        self.name = "model"
        self.memo = memo

    def prepare(self, vm: VmState) -> ModelVm:
        # KVM_SET_LAPIC as this release applies it (planted x2APIC IDs/LDRs before 6.11).
        vm = kvm_view(vm, self.policy)
        amap = build_map(vm, self.policy)
        return ModelVm(vm, self.policy, amap, VmIndex(vm, amap, self.policy), memo=self.memo,
                       fast=supports(self.policy))


@dataclass(slots=True)
class ModelVm(PreparedBase):
    """A prepared VM. ``deliver`` resolves by set algebra (``model/bitset.py``); with
    ``explain=True`` it takes the per-vCPU reference path (``model/resolve.py``) with a ``Trace``."""

    vm: VmState
    policy: KernelPolicy
    amap: ApicMap
    index: VmIndex
    memo: bool = False
    fast: bool = True  # False: this release's rules take the per-vCPU reference (``bitset.supports``)
    # The optional memo table (``ModelEngine(memo=True)``): injection -> outcome.
    _outcomes: dict[Injection, Outcome] = field(default_factory=dict)

    @property
    def rules(self) -> KvmDecodeRules:
        return KvmDecodeRules.for_policy(self.policy, self.vm)

    def deliver(self, injection: Injection, *, explain: bool = False) -> Outcome:
        if not self.fast:
            return self._resolve(injection, explain)
        if type(injection) is MsiInjection and not explain and not self.memo:
            quick = unicast_msi(self.index, injection.address_lo, injection.address_hi, injection.data)
            if quick is not None:
                return quick
        if explain:
            return self._resolve(injection, True)
        if self.memo:
            known = self._outcomes.get(injection)
            if known is not None:
                return known
            if len(self._outcomes) > 65536:
                self._outcomes.clear()
            outcome = self._outcomes[injection] = self._compute(injection)
            return outcome
        return self._compute(injection)

    def deliver_many(self, injections: Sequence[Injection], *, explain: bool = False) -> list[Outcome]:
        """Each injection as ``deliver`` would; MSIs go straight from their fields to the bitsets."""
        if explain or self.memo or not self.fast:
            return [self.deliver(i, explain=explain) for i in injections]
        ix = self.index
        out: list[Outcome] = []
        append = out.append
        for injection in injections:
            if type(injection) is MsiInjection:
                quick = unicast_msi(ix, injection.address_lo, injection.address_hi, injection.data)
                if quick is not None:
                    append(quick)
                    continue
                resolved = resolve_msi(ix, injection.address_lo, injection.address_hi, injection.data)
                if resolved is not None:
                    append(quick_outcome("model", resolved[1], resolved[2], resolved[0]))
                    continue
            append(self._compute(injection))
        return out

    def _compute(self, injection: Injection) -> Outcome:
        """The outcome by set algebra, without explanation (equal to ``_resolve(injection, False)``)."""
        if type(injection) is MsiInjection:
            quick = unicast_msi(self.index, injection.address_lo, injection.address_hi, injection.data)
            if quick is not None:
                return quick
            resolved = resolve_msi(self.index, injection.address_lo, injection.address_hi, injection.data)
            if resolved is not None:
                return quick_outcome("model", resolved[1], resolved[2], resolved[0])
        message = decode_for_kvm(injection, self.vm, self.rules)
        if isinstance(message, Refused):
            return Outcome(engine="model", receivers=(), rejected=message.reason)
        r, receivers, effects = resolve_message(self.index, message)
        return quick_outcome("model", receivers, effects, r if isinstance(injection, MsiInjection) else None)

    def _resolve(self, injection: Injection, explain: bool) -> Outcome:
        """The reference: decode, then ``resolve.deliver`` vCPU by vCPU (with a ``Trace`` if asked)."""
        message = decode_for_kvm(injection, self.vm, self.rules)
        if isinstance(message, Refused):
            explanation = None
            if explain:
                explanation = Explanation(message="(refused before delivery)", path=because(Code.PATH_REFUSED),
                                          map_state=self.amap.describe(self.vm),
                                          notes=(because(Code.NOTE_REFUSED, detail=message.reason),))
            return Outcome(engine="model", receivers=(), rejected=message.reason, explanation=explanation)
        trace = Trace() if explain else None
        r, effects = deliver(self.vm, self.amap, self.policy, message, trace)
        receivers = tuple(sorted({e.vcpu_id for e in effects}))
        result = r if isinstance(injection, MsiInjection) else None
        explanation = None
        if trace is not None:
            notes = list(trace.notes)
            if result is None:
                notes.append(because(Code.NOTE_INTERNAL_RESULT, r=r))
            explanation = Explanation(
                message=describe_message(message),
                path=trace.path,
                map_state=self.amap.describe(self.vm),
                reasons=tuple((v.vcpu_id, trace.reasons.get(v.vcpu_id, because(Code.NOT_CONSIDERED)))
                              for v in self.vm.vcpus),
                notes=tuple(notes),
            )
        return Outcome(engine="model", receivers=receivers, effects=tuple(effects), result=result,
                       explanation=explanation)

