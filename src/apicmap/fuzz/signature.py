"""Divergence signatures: which findings of a fuzzing campaign count as the same."""

from __future__ import annotations

from apicmap.decode import KvmDecodeRules, Refused, decode_for_kvm
from apicmap.domain.message import Injection, Message
from apicmap.domain.outcome import Outcome
from apicmap.domain.reasons import Code, Reason
from apicmap.domain.vm import VmState
from apicmap.encoding.kinds import DeliveryMode, DestMode
from apicmap.known.catalogue import physical_aliases
from apicmap.model.policy import VARIANTS


def rule_of(vm: VmState, message: Message | None, model: Outcome) -> str:
    """The KVM rule a divergence involves, from the reason codes of the model's path (never its words)."""
    if message is None:
        return "decoding"
    if message.dest.address[1] is DestMode.PHYSICAL and physical_aliases(vm) and message.shorthand.value == 0:
        return "physical ID aliasing (5b84b0291702)"
    if model.explanation is None:
        return "unknown path"
    path = model.explanation.path
    rule = path.code.value
    if path.code is Code.PATH_FAST_LOGICAL:
        rule += f":{path.arg('mode')}"
    elif path.code is Code.PATH_SLOW_AFTER_BAIL:
        why = path.arg("why")
        assert isinstance(why, Reason)
        rule += f":{why.code.value}"
    return rule


def signature(vm: VmState, injection: Injection, model: Outcome, other: Outcome) -> tuple[str, str]:
    """(signature, rule). Divergences with the same signature are the same finding."""
    message = decode_for_kvm(injection, vm, KvmDecodeRules.for_policy(VARIANTS[0], vm))
    decoded = None if isinstance(message, Refused) else message
    rule = rule_of(vm, decoded, model)
    extra_model = set(model.receivers) - set(other.receivers)
    extra_other = set(other.receivers) - set(model.receivers)
    if extra_model and extra_other:
        shape = "different receivers"
    elif extra_model:
        shape = "model has extra receivers"
    elif extra_other:
        shape = f"{other.engine} has extra receivers"
    elif (model.rejected is None) != (other.rejected is None):
        shape = "refused by one engine only"
    else:
        # Same receivers, different return value: one finding per pair of values, whatever the
        # path (e.g. the pre-5.3 fast path's -1 for no target, docs/routing.md#commits).
        return f"return value {model.result} vs {other.result}|{'none' if not model.receivers else 'some'}", \
            "return value"
    kind = type(injection).__name__.removesuffix("Injection").lower()
    if shape == "refused by one engine only":
        return f"{kind}|write validity|{shape}", "write validity (reserved bits)"
    if decoded is not None and decoded.delivery is DeliveryMode.SMI:
        return f"SMI acceptance|{shape}", "SMI acceptance (v6.2 SMM check)"
    if rule.startswith("physical ID aliasing"):
        return f"{rule}|{shape}", rule
    mode = decoded.delivery.label if decoded else "-"
    dest_mode = decoded.dest.address[1].name.lower() if decoded else "-"
    return f"{kind}|{mode}|{dest_mode}|{rule}|{shape}", rule
