"""Divergence signatures and the catalogue of known, explained differences (issue #4 item 4)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..decode import KvmDecodeRules, Refused, decode_for_kvm
from ..message import DeliveryMode, DestMode, Injection, Message
from ..outcome import Outcome
from ..state import ApicMode, VmState

_NUMBERS = re.compile(r"0x[0-9a-f]+|\b\d+\b")


def _physical_aliases(vm: VmState) -> bool:
    ids = [v.vcpu_id if v.mode is ApicMode.X2APIC else v.xapic_id for v in vm.vcpus if v.present]
    return len(ids) != len(set(ids))


def rule_of(vm: VmState, message: Message | None, model: Outcome) -> str:
    """The KVM rule a divergence involves, from the model's own explanation of its path."""
    if message is None:
        return "decoding"
    path = model.explanation.path if model.explanation else ""
    if message.dest_mode is DestMode.PHYSICAL and _physical_aliases(vm) and message.shorthand.value == 0:
        return "physical ID aliasing (5b84b0291702)"
    return _NUMBERS.sub("N", path).split(" (")[0] or "unknown path"


def signature(vm: VmState, injection: Injection, model: Outcome, other: Outcome) -> tuple[str, str]:
    """(signature, rule). Divergences with the same signature are the same finding."""
    message = decode_for_kvm(injection, vm, KvmDecodeRules(vm.use_32bit_ids, False, False))
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
        # path (e.g. the pre-5.3 fast path's -1 for no target, kvm-routing.md §8.1).
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
    dest_mode = decoded.dest_mode.name.lower() if decoded else "-"
    return f"{kind}|{mode}|{dest_mode}|{rule}|{shape}", rule


@dataclass(frozen=True, slots=True)
class KnownDifference:
    """A named, explained arch != KVM difference with a minimal scenario in catalogue/."""

    name: str
    explanation: str
    scenario: str  # path relative to the repository
    applies: Callable[[VmState, Message, Outcome, Outcome], bool]


def _lowest(m: Message) -> bool:
    return m.delivery is DeliveryMode.LOWEST or m.redirection_hint


def _only_undefined(vm: VmState, m: Message, model: Outcome, arch: Outcome) -> bool:
    differing = set(model.receivers) ^ set(arch.receivers)
    return bool(differing) and differing <= set(arch.undefined)


CATALOGUE: tuple[KnownDifference, ...] = (
    KnownDifference("use_32bit_ids-aliasing-erratum",
                    "With USE_32BIT_IDS KVM keeps first-wins for aliased physical IDs; the architecture "
                    "delivers to every match (kvm-routing.md §7, errata 'x2APIC').",
                    "catalogue/use-32bit-ids-aliasing.toml",
                    lambda vm, m, model, arch: m.dest_mode is DestMode.PHYSICAL and _physical_aliases(vm)),
    KnownDifference("broadcast-quirk",
                    "KVM turns an 8-bit 0xFF MSI into the x2APIC broadcast for x2APIC-mode targets "
                    "(kvm-routing.md §4.2); the architecture leaves it to the implementation.",
                    "catalogue/broadcast-quirk.toml",
                    lambda vm, m, model, arch: m.dest_id == 0xFF and m.source is None),
    KnownDifference("architecturally-undefined",
                    "The architecture leaves the case undefined or model-specific; KVM picks a behaviour.",
                    "catalogue/undefined-mixed-mode.toml", _only_undefined),
    KnownDifference("vector-hashing-ignores-tpr",
                    "KVM's lowest priority hashes the vector over the destination set and never reads TPR "
                    "(kvm-routing.md §3 step 8).",
                    "catalogue/vector-hashing-ignores-tpr.toml",
                    lambda vm, m, model, arch: _lowest(m)),
    KnownDifference("illegal-vectors-accepted",
                    "KVM accepts vectors 0-15 with no ESR error (kvm-routing.md §6.3).",
                    "catalogue/illegal-vectors.toml",
                    lambda vm, m, model, arch: m.vector < 16),
    KnownDifference("x2apic-logical-through-phys-map",
                    "x2APIC logical lookups reuse phys_map and reach xAPIC-mode vCPUs (kvm-routing.md §3 step 6).",
                    "catalogue/x2apic-logical-phys-map.toml",
                    lambda vm, m, model, arch: m.dest_mode is DestMode.LOGICAL
                    and len({v.mode for v in vm.vcpus if v.present}) > 1),
)
