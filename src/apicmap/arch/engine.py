"""Engine ``arch``: acceptance per the SDM/APM, with set-level rules (lowest priority, legality)."""

from __future__ import annotations

from dataclasses import dataclass

from apicmap.arch.predicate import acceptance, address_match
from apicmap.decode import Refused, decode_for_arch, describe_message
from apicmap.domain.message import Broadcast, Injection, Message, Origin, ToAll, ToSelf, is_lowest_priority
from apicmap.domain.outcome import Effect, Explanation, Outcome, Verdict
from apicmap.domain.vm import DfrModel, Vcpu, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DeliveryMode, DestMode


class ArchEngine:
    name = "arch"

    def prepare(self, vm: VmState) -> ArchVm:
        models = {v.dfr_model for v in vm.vcpus
                  if v.mode is ApicMode.XAPIC and v.logical_id and v.dfr_model is not DfrModel.OTHER}
        return ArchVm(vm, len(models) > 1)


def _message_rule(message: Message, source: Vcpu | None) -> tuple[str | None, str | None]:
    """(refusal, reason every addressed APIC is UNDEFINED) from message-level legality."""
    mode = message.delivery
    if message.origin in (Origin.IPI, Origin.SELF_IPI) and mode in (DeliveryMode.FIXED, DeliveryMode.LOWEST) \
            and message.vector < 16:
        return "send illegal vector: ESR bit 5 set, the IPI is not sent (A9)", None
    if message.origin is Origin.IPI and source is not None and source.mode is ApicMode.X2APIC \
            and mode is DeliveryMode.LOWEST:
        return None, "lowest priority is reserved in the x2APIC ICR (A8)"
    if isinstance(message.dest, (ToSelf, ToAll)) and mode is not DeliveryMode.FIXED and \
            message.origin is Origin.IPI:
        return None, f"{mode.label.upper()} with this shorthand is invalid in SDM Table 10-3 (A6)"
    lowest = is_lowest_priority(mode, message.redirection_hint)
    if lowest and isinstance(message.dest, Broadcast) and message.dest_mode is DestMode.PHYSICAL:
        return None, "lowest priority with a physical broadcast must not be programmed (A4, A8)"
    return None, None


@dataclass(slots=True)
class ArchVm:
    vm: VmState
    mixed_dfr: bool

    def deliver(self, injection: Injection, *, explain: bool = False) -> Outcome:
        decoded = decode_for_arch(injection, self.vm)
        message = decoded.message
        if isinstance(message, Refused):
            return self._refused(message.reason, decoded.notes, explain)
        source = self.vm.vcpu(message.source) if message.source is not None else None
        refusal, undefined_all = _message_rule(message, source)
        if refusal is not None:
            return self._refused(refusal, decoded.notes, explain)
        verdicts: dict[int, tuple[Verdict, Effect | None, str]] = {}
        addressed: list[Vcpu] = []
        for v in self.vm.vcpus:
            verdict, why = address_match(v, message, source, self.mixed_dfr)
            if verdict is Verdict.NOT_ACCEPTED:
                verdicts[v.vcpu_id] = (verdict, None, why)
                continue
            if undefined_all is not None:
                verdicts[v.vcpu_id] = (Verdict.UNDEFINED, None, f"{why}; {undefined_all}")
                continue
            if verdict is Verdict.UNDEFINED:
                verdicts[v.vcpu_id] = (verdict, None, why)
                continue
            accepted, effect, how = acceptance(v, message)
            verdicts[v.vcpu_id] = (accepted, effect, f"{why}; {how}")
            if accepted is Verdict.ACCEPTED:
                addressed.append(v)
        notes = list(decoded.notes)
        lowest = is_lowest_priority(message.delivery, message.redirection_hint, message.dest_mode)
        if lowest and undefined_all is None and len(addressed) > 1:
            self._arbitrate(addressed, verdicts, notes)
        receivers = tuple(sorted(vid for vid, (v, _, _) in verdicts.items() if v is Verdict.ACCEPTED))
        undefined = tuple(sorted(vid for vid, (v, _, _) in verdicts.items() if v is Verdict.UNDEFINED))
        effects = tuple(e for vid, (v, e, _) in verdicts.items() if v is Verdict.ACCEPTED and e is not None)
        explanation = None
        if explain:
            explanation = Explanation(
                message=describe_message(message), path="architecture: every APIC checks the message",
                reasons=tuple((v.vcpu_id, f"{verdicts[v.vcpu_id][0].value}: {verdicts[v.vcpu_id][2]}")
                              for v in self.vm.vcpus),
                notes=tuple(notes))
        return Outcome("arch", receivers, effects, None, None, undefined, explanation)

    @staticmethod
    def _arbitrate(addressed: list[Vcpu], verdicts: dict[int, tuple[Verdict, Effect | None, str]],
                   notes: list[str]) -> None:
        """Lowest priority: the APIC with the lowest task-priority class wins; ties are
        resolved by the chipset or the arbitration ID, which the architecture leaves open (A8)."""
        best = min(v.tpr >> 4 for v in addressed)
        winners = [v for v in addressed if v.tpr >> 4 == best]
        notes.append("focus-processor checking (P6) is not modelled; arbitration by TPR class (A8)")
        for v in addressed:
            _, effect, why = verdicts[v.vcpu_id]
            if v not in winners:
                verdicts[v.vcpu_id] = (Verdict.NOT_ACCEPTED, None, f"{why}; lost lowest-priority arbitration "
                                       f"(TPR class {v.tpr >> 4} > {best})")
            elif len(winners) > 1:
                verdicts[v.vcpu_id] = (Verdict.UNDEFINED, None, f"{why}; lowest-priority tie at TPR class "
                                       f"{best} among {len(winners)} APICs: the winner is model-specific (A8)")
            else:
                verdicts[v.vcpu_id] = (Verdict.ACCEPTED, effect, f"{why}; won lowest-priority arbitration")

    def _refused(self, reason: str, notes: tuple[str, ...], explain: bool) -> Outcome:
        explanation = None
        if explain:
            explanation = Explanation(message="(not sent)", path="none", notes=(*notes, reason))
        return Outcome("arch", (), (), None, reason, (), explanation)

    def close(self) -> None:
        return None
