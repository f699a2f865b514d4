"""Layer 4 (KVM): set resolution, fast path then slow path (kvm-routing.md §3, §4).

``deliver`` returns KVM's ``r`` (the KVM_SIGNAL_MSI value: a count, 0, or -1) and the effects.
When a ``Trace`` is passed it also records the path and a reason per vCPU; without one no
strings are built, so plain resolution stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from apicmap.domain.message import Message
from apicmap.domain.outcome import Effect
from apicmap.domain.vm import Vcpu, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DeliveryMode, DestMode, Shorthand
from apicmap.model.accept import accept
from apicmap.model.apic_map import ApicMap, LogicalMode
from apicmap.model.match import X2APIC_BROADCAST, XAPIC_BROADCAST, explain_match, match_dest
from apicmap.model.match_v4_9 import explain_match_v4_9, match_dest_v4_9
from apicmap.model.policy import KernelPolicy, LogicalMapRule, MdaRule


@dataclass(slots=True)
class Trace:
    path: str = ""
    reasons: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def is_lowest_priority(message: Message) -> bool:
    """``kvm_lowest_prio_delivery``: LOWEST, or any MSI with the redirection hint (§3)."""
    return message.delivery is DeliveryMode.LOWEST or message.redirection_hint


def deliver(vm: VmState, amap: ApicMap, policy: KernelPolicy, message: Message,
            trace: Trace | None = None) -> tuple[int, list[Effect]]:
    source = vm.vcpu(message.source) if message.source is not None else None
    handled = _fast_path(vm, amap, policy, message, source, trace)
    if handled is not None:
        return handled
    return _slow_path(vm, policy, message, source, trace)


def _accept_all(vm: VmState, policy: KernelPolicy, message: Message, indexes: list[int],
                trace: Trace | None, how: str) -> tuple[int, list[Effect]]:
    effects: list[Effect] = []
    for index in indexes:
        target = vm.vcpus[index]
        effect, why = accept(target, message, vm, policy)
        if effect is not None:
            effects.append(effect)
        if trace is not None:
            trace.reasons[target.vcpu_id] = f"{how}: {why}"
    return len(effects), effects


def _fast_path(vm: VmState, amap: ApicMap, policy: KernelPolicy, message: Message,
               source: Vcpu | None, trace: Trace | None) -> tuple[int, list[Effect]] | None:
    shorthand = message.shorthand
    if shorthand is Shorthand.SELF and source is not None:
        if trace is not None:
            trace.path = "fast path: shorthand self"
        return _accept_all(vm, policy, message, [vm.creation_index(source.vcpu_id)], trace, "self")
    if shorthand is not Shorthand.NONE:
        _bail(trace, f"shorthand {shorthand.label} always takes the slow path")
        return None
    if amap.phys is None:
        _bail(trace, f"map NULL: {amap.null_reason}")
        return None
    dest = message.dest_id
    if _is_broadcast_dest(vm, amap, dest, source):
        _bail(trace, f"destination 0x{dest:x} is a broadcast for the fast path")
        return None
    phys = amap.phys
    lowest = is_lowest_priority(message)

    if message.dest_mode is DestMode.PHYSICAL:
        if trace is not None:
            trace.path = "fast path: physical"
        if dest > amap.max_apic_id:
            targets: list[int] = []
            why_none = f"destination 0x{dest:x} > max_apic_id 0x{amap.max_apic_id:x}"
        else:
            slot = phys[dest]
            targets = [] if slot is None else [slot]
            why_none = f"phys_map[0x{dest:x}] is empty"
        # No arbitration for a physical lowest-priority message: the one target gets it (§3.5).
        return _finish_fast(vm, policy, message, targets, trace, f"phys_map[0x{dest:x}]", why_none)

    # Logical destination.
    mode = amap.logical_mode
    strict = policy.logical_map is LogicalMapRule.STRICT
    if mode in (LogicalMode.MAP_DISABLED, LogicalMode.INVALID):
        _bail(trace, f"logical map unusable ({mode.value}: {amap.logical_reason})")
        return None
    if trace is not None:
        trace.path = f"fast path: logical {mode.value}"
    if mode is LogicalMode.SW_DISABLED:
        # Only reachable in 6.3+; pre-6.3 an empty bitmask is INVALID and bails above.
        assert strict
        return _finish_fast(vm, policy, message, [], trace, "logical",
                            "logical_mode SW_DISABLED: logical interrupts are dropped")
    row, mask, where = _logical_row(amap, mode, dest)
    if not lowest:
        targets = [s for bit, s in enumerate(row) if mask >> bit & 1 and s is not None]
        return _finish_fast(vm, policy, message, targets, trace, where,
                            f"no map entry under mask 0x{mask:x} of {where}")
    if vm.vector_hashing:
        if mask == 0:
            return _finish_fast(vm, policy, message, [], trace, where, f"mask 0 in {where}")
        bits = [b for b in range(len(row)) if mask >> b & 1]
        bit = bits[message.vector % len(bits)]
        slot = row[bit]
        if slot is None:
            return _finish_fast(vm, policy, message, [], trace, where,
                                f"hash picked bit {bit} (vector 0x{message.vector:x} mod {len(bits)}): "
                                "empty slot, dropped")
        if trace is not None:
            trace.notes.append(f"vector hashing: vector 0x{message.vector:x} mod {len(bits)} set bits "
                               f"-> bit {bit} of {where}")
        return _finish_fast(vm, policy, message, [slot], trace, f"{where} bit {bit} (hashed)", "")
    candidates = [s for bit, s in enumerate(row) if mask >> bit & 1 and s is not None]
    if not candidates:
        return _finish_fast(vm, policy, message, [], trace, where, f"no map entry under mask 0x{mask:x}")
    chosen = min(candidates, key=lambda s: vm.vcpus[s].arb_prio)  # min() keeps the first on ties
    return _finish_fast(vm, policy, message, [chosen], trace, f"{where} (lowest apic_arb_prio)", "")


def _logical_row(amap: ApicMap, mode: LogicalMode, dest: int) -> tuple[list[int | None], int, str]:
    assert amap.phys is not None
    if mode is LogicalMode.X2APIC:
        offset = (dest >> 16) * 16
        if offset > amap.max_apic_id:
            return [], 0, f"x2APIC cluster 0x{dest >> 16:x} (beyond max_apic_id)"
        width = min(16, amap.max_apic_id - offset + 1)
        row = amap.phys[offset:offset + width]
        return row, dest & 0xFFFF & ((1 << width) - 1), f"x2APIC cluster 0x{dest >> 16:x} (phys_map 0x{offset:x}+)"
    if mode is LogicalMode.XAPIC_FLAT:
        return amap.clusters[0][:8], dest & 0xFF, "flat map"
    cluster = (dest >> 4) & 0xF
    return amap.clusters[cluster][:4], dest & 0xF, f"cluster {cluster}"


def _finish_fast(vm: VmState, policy: KernelPolicy, message: Message, targets: list[int],
                 trace: Trace | None, where: str, why_none: str) -> tuple[int, list[Effect]]:
    if not targets:
        if trace is not None:
            trace.notes.append(why_none)
            for v in vm.vcpus:
                trace.reasons[v.vcpu_id] = "not present" if not v.present else f"not targeted: {why_none}"
        return policy.fast_path_no_target_result, []
    if trace is not None:
        source = vm.vcpu(message.source) if message.source is not None else None
        quirk = not vm.disable_broadcast_quirk
        for v in vm.vcpus:
            if not v.present:
                trace.reasons[v.vcpu_id] = "not present"
            elif _matcher(policy)(v, source, Shorthand.NONE, message.dest_id, message.dest_mode, quirk):
                holder = ", ".join(f"vCPU {vm.vcpus[t].vcpu_id}" for t in targets)
                why = _explainer(policy)(v, source, Shorthand.NONE, message.dest_id, message.dest_mode, quirk)
                trace.reasons[v.vcpu_id] = (f"would match in the slow path ({why}), "
                                            f"but the fast path delivers only to {where} ({holder})")
            else:
                trace.reasons[v.vcpu_id] = f"not in {where}"
    return _accept_all(vm, policy, message, targets, trace, f"in {where}")


def _bail(trace: Trace | None, why: str) -> None:
    """Record why the fast path gives up; the caller then returns None (slow path)."""
    if trace is not None:
        trace.notes.append(f"fast path bailed: {why}")
        trace.path = f"slow path ({why})"
    return None


def _is_broadcast_dest(vm: VmState, amap: ApicMap, dest: int, source: Vcpu | None) -> bool:
    """``kvm_apic_is_broadcast_dest`` (§3 step 4)."""
    if vm.disable_broadcast_quirk:
        return (dest == XAPIC_BROADCAST and amap.logical_mode is not LogicalMode.X2APIC) or dest == X2APIC_BROADCAST
    x2_source = source is not None and source.mode is ApicMode.X2APIC
    return dest == (X2APIC_BROADCAST if x2_source else XAPIC_BROADCAST)


def _slow_path(vm: VmState, policy: KernelPolicy, message: Message, source: Vcpu | None,
               trace: Trace | None) -> tuple[int, list[Effect]]:
    if trace is not None and not trace.path:
        trace.path = "slow path"
    lowest = is_lowest_priority(message)
    if message.dest_mode is DestMode.PHYSICAL and message.dest_id == XAPIC_BROADCAST and lowest:
        # "phys broadcast and lowest prio": delivered as FIXED, but RH stays set (§4.1 step 2).
        message = _with_delivery(message, DeliveryMode.FIXED)
        lowest = message.redirection_hint
        if trace is not None:
            trace.notes.append("physical 0xFF with lowest priority: rewritten to FIXED")
    quirk = not vm.disable_broadcast_quirk
    match_dest, explain_match = _matcher(policy), _explainer(policy)
    shorthand = message.shorthand
    r = -1
    effects: list[Effect] = []
    candidates: list[Vcpu] = []
    for v in vm.vcpus:
        if not v.present:
            if trace is not None:
                trace.reasons[v.vcpu_id] = "not present (APIC hardware-disabled)"
            continue
        if not match_dest(v, source, shorthand, message.dest_id, message.dest_mode, quirk):
            if trace is not None:
                trace.reasons[v.vcpu_id] = explain_match(v, source, shorthand, message.dest_id,
                                                         message.dest_mode, quirk)
            continue
        if not lowest:
            effect, why = accept(v, message, vm, policy)
            r = max(r, 0) + (effect is not None)
            if effect is not None:
                effects.append(effect)
            if trace is not None:
                trace.reasons[v.vcpu_id] = (explain_match(v, source, shorthand, message.dest_id,
                                                          message.dest_mode, quirk) + f"; {why}")
        elif v.sw_enabled:
            candidates.append(v)
        elif trace is not None:
            trace.reasons[v.vcpu_id] = "matched, but software-disabled: not a lowest-priority candidate"
    if lowest and candidates:
        if vm.vector_hashing:
            chosen = candidates[message.vector % len(candidates)]
            how = f"vector hashing picked candidate {message.vector % len(candidates)} of {len(candidates)}"
        else:
            chosen = min(candidates, key=lambda v: v.arb_prio)
            how = "lowest apic_arb_prio"
        effect, why = accept(chosen, message, vm, policy)
        r = 1 if effect is not None else 0
        if effect is not None:
            effects.append(effect)
        if trace is not None:
            for v in candidates:
                trace.reasons[v.vcpu_id] = (f"lowest-priority candidate; {how}: {why}" if v is chosen
                                            else f"lowest-priority candidate, not chosen ({how})")
    if trace is not None and r == -1:
        trace.notes.append("slow path matched no vCPU: KVM_SIGNAL_MSI fails with EPERM (-1)")
    return r, effects


def _matcher(policy: KernelPolicy) -> Callable[[Vcpu, Vcpu | None, Shorthand, int, DestMode, bool], bool]:
    """``kvm_apic_match_dest`` as the release has it (the MDA rule changed in v4.11)."""
    return match_dest_v4_9 if policy.mda is MdaRule.SOURCE_MODE_SHIFTED else match_dest


def _explainer(policy: KernelPolicy) -> Callable[[Vcpu, Vcpu | None, Shorthand, int, DestMode, bool], str]:
    return explain_match_v4_9 if policy.mda is MdaRule.SOURCE_MODE_SHIFTED else explain_match


def _with_delivery(message: Message, delivery: DeliveryMode) -> Message:
    from dataclasses import replace

    return replace(message, delivery=delivery)


def deliver_fast_only(vm: VmState, amap: ApicMap, policy: KernelPolicy, message: Message
                      ) -> tuple[int, list[Effect]] | None:
    """The fast path alone; ``None`` where KVM would fall back to the slow path."""
    source = vm.vcpu(message.source) if message.source is not None else None
    return _fast_path(vm, amap, policy, message, source, None)


def deliver_slow_only(vm: VmState, policy: KernelPolicy, message: Message) -> tuple[int, list[Effect]]:
    """The slow path alone (``kvm_apic_match_dest`` over every vCPU)."""
    source = vm.vcpu(message.source) if message.source is not None else None
    return _slow_path(vm, policy, message, source, None)
