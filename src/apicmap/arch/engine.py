"""Engine ``arch``: acceptance per the SDM/APM, with set-level rules (lowest priority, legality)."""

from __future__ import annotations

from dataclasses import dataclass

from apicmap.arch.predicate import acceptance, address_match
from apicmap.decode import Refused, decode_for_arch, describe_message
from apicmap.domain.engine import Closing, PreparedBase
from apicmap.domain.message import Broadcast, Injection, Message, Origin, ToAll, ToSelf, is_lowest_priority
from apicmap.domain.outcome import Effect, Explanation, Outcome, Verdict
from apicmap.domain.reasons import Code, Reason, because
from apicmap.domain.vm import DfrModel, Vcpu, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DeliveryMode, DestMode


class ArchEngine(Closing):
    name = "arch"

    def prepare(self, vm: VmState) -> ArchVm:
        models = {v.dfr_model for v in vm.vcpus
                  if v.mode is ApicMode.XAPIC and v.logical_id and v.dfr_model is not DfrModel.OTHER}
        return ArchVm(vm, len(models) > 1)


def _message_rule(message: Message, source: Vcpu | None) -> tuple[str | None, Reason | None]:
    """(refusal, reason every addressed APIC is UNDEFINED) from message-level legality."""
    mode = message.delivery
    if message.origin in (Origin.IPI, Origin.SELF_IPI) and mode in (DeliveryMode.FIXED, DeliveryMode.LOWEST) \
            and message.vector < 16:
        return (f"send illegal vector 0x{message.vector:02x}: ESR bit 5 is set and the IPI is not sent "
                "(SDM Vol. 3A 11.5.3, \"Error Handling\")"), None
    if message.origin is Origin.IPI and source is not None and source.mode is ApicMode.X2APIC \
            and mode is DeliveryMode.LOWEST:
        return None, because(Code.ARCH_X2APIC_LOWEST_RESERVED)
    if isinstance(message.dest, (ToSelf, ToAll)) and mode is not DeliveryMode.FIXED and \
            message.origin is Origin.IPI:
        return None, because(Code.ARCH_SHORTHAND_INVALID, delivery=mode.label.upper())
    if is_lowest_priority(mode, message.redirection_hint) and isinstance(message.dest, Broadcast) \
            and message.dest.dest_mode is DestMode.PHYSICAL:
        return None, because(Code.ARCH_LOWEST_BROADCAST)
    return None, None


Verdicts = dict[int, tuple[Verdict, Effect | None, Reason]]


@dataclass(slots=True)
class ArchVm(PreparedBase):
    vm: VmState
    mixed_dfr: bool

    def deliver(self, injection: Injection, *, explain: bool = False) -> Outcome:
        decoded = decode_for_arch(injection, self.vm)
        message = decoded.message
        notes = [because(Code.NOTE_DECODING, detail=note) for note in decoded.notes]
        if isinstance(message, Refused):
            return self._refused(message.reason, because(Code.NOTE_REFUSED, detail=message.reason), notes, explain)
        source = self.vm.vcpu(message.source) if message.source is not None else None
        refusal, undefined_all = _message_rule(message, source)
        if refusal is not None:
            return self._refused(refusal, because(Code.NOTE_REFUSED, detail=refusal), notes, explain)
        verdicts: Verdicts = {}
        addressed: list[Vcpu] = []
        for v in self.vm.vcpus:
            verdict, why = address_match(v, message, source, self.mixed_dfr)
            if verdict is Verdict.NOT_ACCEPTED or verdict is Verdict.UNDEFINED:
                verdicts[v.vcpu_id] = (verdict, None, why)
                continue
            if undefined_all is not None:
                verdicts[v.vcpu_id] = (Verdict.UNDEFINED, None, because(Code.BOTH, first=why, then=undefined_all))
                continue
            accepted, effect, how = acceptance(v, message)
            verdicts[v.vcpu_id] = (accepted, effect, because(Code.BOTH, first=why, then=how))
            if accepted is Verdict.ACCEPTED:
                addressed.append(v)
        lowest = is_lowest_priority(message.delivery, message.redirection_hint, message.dest.address[1])
        if lowest and undefined_all is None and len(addressed) > 1:
            self._arbitrate(addressed, verdicts, notes)
        receivers = tuple(sorted(vid for vid, (v, _, _) in verdicts.items() if v is Verdict.ACCEPTED))
        undefined = tuple(sorted(vid for vid, (v, _, _) in verdicts.items() if v is Verdict.UNDEFINED))
        effects = tuple(e for vid, (v, e, _) in verdicts.items() if v is Verdict.ACCEPTED and e is not None)
        explanation = None
        if explain:
            explanation = Explanation(
                message=describe_message(message), path=because(Code.PATH_ARCH),
                reasons=tuple((v.vcpu_id, because(Code.ARCH_VERDICT, verdict=verdicts[v.vcpu_id][0].value,
                                                  why=verdicts[v.vcpu_id][2]))
                              for v in self.vm.vcpus),
                notes=tuple(notes))
        return Outcome(engine="arch", receivers=receivers, effects=effects, undefined=undefined,
                       explanation=explanation)

    @staticmethod
    def _arbitrate(addressed: list[Vcpu], verdicts: Verdicts, notes: list[Reason]) -> None:
        """Lowest priority: the APIC with the lowest task-priority class wins; ties are resolved
        by the chipset or the arbitration ID, which the architecture leaves open (SDM Vol. 3A
        11.6.2.4, "Lowest Priority Delivery Mode")."""
        best = min(v.tpr >> 4 for v in addressed)
        winners = [v for v in addressed if v.tpr >> 4 == best]
        notes.append(because(Code.ARCH_NO_FOCUS))
        for v in addressed:
            _, effect, why = verdicts[v.vcpu_id]
            if v not in winners:
                verdicts[v.vcpu_id] = (Verdict.NOT_ACCEPTED, None, because(
                    Code.BOTH, first=why, then=because(Code.ARCH_LP_LOST, tpr_class=v.tpr >> 4, best=best)))
            elif len(winners) > 1:
                verdicts[v.vcpu_id] = (Verdict.UNDEFINED, None, because(
                    Code.BOTH, first=why, then=because(Code.ARCH_LP_TIE, best=best, count=len(winners))))
            else:
                verdicts[v.vcpu_id] = (Verdict.ACCEPTED, effect, because(
                    Code.BOTH, first=why, then=because(Code.ARCH_LP_WON)))

    @staticmethod
    def _refused(text: str, reason: Reason, notes: list[Reason], explain: bool) -> Outcome:
        explanation = None
        if explain:
            explanation = Explanation(message="(not sent)", path=because(Code.PATH_REFUSED), notes=(*notes, reason))
        return Outcome(engine="arch", receivers=(), rejected=text, explanation=explanation)

