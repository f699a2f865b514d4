"""Engine ``model``: KVM's routing as a given release implements it."""

from __future__ import annotations

from dataclasses import dataclass, field

from apicmap.decode import KvmDecodeRules, Refused, decode_for_kvm, describe_message
from apicmap.domain.engine import Closing, PreparedBase
from apicmap.domain.message import Injection, Message, MsiInjection
from apicmap.domain.outcome import Explanation, Outcome
from apicmap.domain.reasons import Code, because
from apicmap.domain.vm import VmState
from apicmap.model.apic_map import ApicMap, build_map
from apicmap.model.policy import KernelPolicy
from apicmap.model.resolve import Trace, deliver
from apicmap.model.set_lapic import kvm_view


class ModelEngine(Closing):
    def __init__(self, policy: KernelPolicy) -> None:
        self.policy = policy
        self.name = "model"

    def prepare(self, vm: VmState) -> ModelVm:
        # KVM_SET_LAPIC as this release applies it (planted x2APIC IDs/LDRs before 6.11).
        vm = kvm_view(vm, self.policy)
        return ModelVm(vm, self.policy, build_map(vm, self.policy))


@dataclass(slots=True)
class ModelVm(PreparedBase):
    vm: VmState
    policy: KernelPolicy
    amap: ApicMap
    # Decoding depends only on the injection and this (immutable) VM, so it is cached.
    _decoded: dict[Injection, Message | Refused] = field(default_factory=dict)
    # Likewise the outcome: resolving the same injection again is a table lookup.
    _outcomes: dict[Injection, Outcome] = field(default_factory=dict)

    @property
    def rules(self) -> KvmDecodeRules:
        return KvmDecodeRules.for_policy(self.policy, self.vm)

    def deliver(self, injection: Injection, *, explain: bool = False) -> Outcome:
        if not explain:
            known = self._outcomes.get(injection)
            if known is not None:
                return known
            if len(self._outcomes) > 65536:
                self._outcomes.clear()
            outcome = self._outcomes[injection] = self._resolve(injection, False)
            return outcome
        return self._resolve(injection, True)

    def _resolve(self, injection: Injection, explain: bool) -> Outcome:
        message = self._decoded.get(injection)
        if message is None:
            if len(self._decoded) > 65536:
                self._decoded.clear()
            message = self._decoded[injection] = decode_for_kvm(injection, self.vm, self.rules)
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

