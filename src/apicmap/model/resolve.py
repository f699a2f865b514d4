"""Layer 4 (KVM): set resolution, fast path then slow path
(docs/routing.md#kvm-fast-path, docs/routing.md#kvm-slow-path).

``deliver`` returns KVM's ``r`` (the KVM_SIGNAL_MSI value: a count, 0, or -1) and the effects.
When a ``Trace`` is passed it also records the path and a reason per vCPU, as reason codes;
without one nothing is recorded, so plain resolution stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from apicmap.domain.message import (
    X2APIC_BROADCAST,
    XAPIC_BROADCAST,
    Broadcast,
    Destination,
    Logical,
    Message,
    Physical,
    ToAll,
    ToAllButSelf,
    ToSelf,
)
from apicmap.domain.outcome import Effect
from apicmap.domain.reasons import Code, Reason, because
from apicmap.domain.vm import Vcpu, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DeliveryMode, DestMode
from apicmap.model.accept import accept
from apicmap.model.apic_map import ApicMap, LogicalMode
from apicmap.model.match import match_dest, why_match
from apicmap.model.match_v4_9 import match_dest_v4_9, why_match_v4_9
from apicmap.model.policy import KernelPolicy, LogicalMapRule, MdaRule


@dataclass(slots=True)
class Trace:
    path: Reason = field(default_factory=lambda: because(Code.PATH_SLOW))
    reasons: dict[int, Reason] = field(default_factory=dict)
    notes: list[Reason] = field(default_factory=list)


def deliver(vm: VmState, amap: ApicMap, policy: KernelPolicy, message: Message,
            trace: Trace | None = None) -> tuple[int, list[Effect]]:
    source = vm.vcpu(message.source) if message.source is not None else None
    handled = _fast_path(vm, amap, policy, message, source, trace)
    if handled is not None:
        return handled
    return _slow_path(vm, policy, message, source, trace)


def _accept_all(vm: VmState, policy: KernelPolicy, message: Message, indexes: list[int],
                trace: Trace | None, where: Reason) -> tuple[int, list[Effect]]:
    effects: list[Effect] = []
    for index in indexes:
        target = vm.vcpus[index]
        effect, why = accept(target, message, vm, policy)
        if effect is not None:
            effects.append(effect)
        if trace is not None:
            trace.reasons[target.vcpu_id] = because(Code.IN_SLOT, where=where, accept=why)
    return len(effects), effects


def _fast_path(vm: VmState, amap: ApicMap, policy: KernelPolicy, message: Message,
               source: Vcpu | None, trace: Trace | None) -> tuple[int, list[Effect]] | None:
    """``kvm_irq_delivery_to_apic_fast``: ``None`` where KVM falls back to the slow path."""
    match message.dest:
        case ToSelf() if source is not None:
            if trace is not None:
                trace.path = because(Code.PATH_FAST_SELF)
            return _accept_all(vm, policy, message, [vm.creation_index(source.vcpu_id)], trace,
                               because(Code.SLOT_SELF))
        case ToSelf() | ToAll() | ToAllButSelf():
            return _bail(trace, because(Code.BAIL_SHORTHAND, shorthand=message.shorthand.label))
        case Physical() | Logical() | Broadcast():
            dest, dest_mode = message.dest.address
    if amap.phys is None:
        return _bail(trace, because(Code.BAIL_MAP_NULL, detail=amap.null_reason))
    if _is_broadcast_dest(vm, amap, dest, source):
        return _bail(trace, because(Code.BAIL_BROADCAST, dest=dest))
    phys = amap.phys

    if dest_mode is DestMode.PHYSICAL:
        if trace is not None:
            trace.path = because(Code.PATH_FAST_PHYSICAL)
        where = because(Code.SLOT_PHYSICAL, dest=dest)
        if dest > amap.max_apic_id:
            return _finish_fast(vm, policy, message, [], trace, where,
                                because(Code.NONE_ABOVE_MAX_APIC_ID, dest=dest, max_apic_id=amap.max_apic_id))
        slot = phys[dest]
        # No arbitration for a physical lowest-priority message: the one target gets it.
        return _finish_fast(vm, policy, message, [] if slot is None else [slot], trace, where,
                            because(Code.NONE_SLOT_EMPTY, dest=dest))

    # Logical destination.
    mode = amap.logical_mode
    if mode in (LogicalMode.MAP_DISABLED, LogicalMode.INVALID):
        return _bail(trace, because(Code.BAIL_LOGICAL_UNUSABLE, mode=mode.value, detail=amap.logical_reason))
    if trace is not None:
        trace.path = because(Code.PATH_FAST_LOGICAL, mode=mode.value)
    if mode is LogicalMode.SW_DISABLED:
        # Only reachable in 6.3+; pre-6.3 an empty bitmask is INVALID and bails above.
        assert policy.logical_map is LogicalMapRule.STRICT
        return _finish_fast(vm, policy, message, [], trace, because(Code.SLOT_LOGICAL),
                            because(Code.NONE_SW_DISABLED_DROP))
    row, mask, where = _logical_row(amap, mode, dest)
    if not message.lowest_priority:
        targets = [s for bit, s in enumerate(row) if mask >> bit & 1 and s is not None]
        return _finish_fast(vm, policy, message, targets, trace, where,
                            because(Code.NONE_UNDER_MASK, mask=mask, where=where))
    if vm.vector_hashing:
        if mask == 0:
            return _finish_fast(vm, policy, message, [], trace, where, because(Code.NONE_MASK_ZERO, where=where))
        # Vector hashing counts the set bits of the mask, empty slots included (kvm_vector_to_index).
        bits = [b for b in range(len(row)) if mask >> b & 1]
        bit = bits[message.vector % len(bits)]
        slot = row[bit]
        if slot is None:
            return _finish_fast(vm, policy, message, [], trace, where,
                                because(Code.NONE_HASHED_EMPTY, bit=bit, vector=message.vector, count=len(bits)))
        if trace is not None:
            trace.notes.append(because(Code.NOTE_VECTOR_HASHING, vector=message.vector, count=len(bits), bit=bit,
                                       where=where))
        return _finish_fast(vm, policy, message, [slot], trace, because(Code.SLOT_HASHED, where=where, bit=bit),
                            because(Code.NONE_SLOT_EMPTY, dest=dest))
    candidates = [s for bit, s in enumerate(row) if mask >> bit & 1 and s is not None]
    if not candidates:
        return _finish_fast(vm, policy, message, [], trace, where, because(Code.NONE_UNDER_MASK, mask=mask,
                                                                          where=where))
    chosen = min(candidates, key=lambda s: vm.vcpus[s].arb_prio)  # min() keeps the first on ties
    return _finish_fast(vm, policy, message, [chosen], trace, because(Code.SLOT_ARB_PRIO, where=where),
                        because(Code.NONE_UNDER_MASK, mask=mask, where=where))


def _logical_row(amap: ApicMap, mode: LogicalMode, dest: int) -> tuple[list[int | None], int, Reason]:
    assert amap.phys is not None
    if mode is LogicalMode.X2APIC:
        # x2APIC logical lookups reuse phys_map: cluster c covers IDs 16c..16c+15.
        offset = (dest >> 16) * 16
        if offset > amap.max_apic_id:
            return [], 0, because(Code.SLOT_X2APIC_CLUSTER_BEYOND, cluster=dest >> 16)
        width = min(16, amap.max_apic_id - offset + 1)
        row = amap.phys[offset:offset + width]
        return row, dest & 0xFFFF & ((1 << width) - 1), because(Code.SLOT_X2APIC_CLUSTER, cluster=dest >> 16,
                                                                offset=offset)
    if mode is LogicalMode.XAPIC_FLAT:
        return amap.clusters[0][:8], dest & 0xFF, because(Code.SLOT_FLAT)
    cluster = (dest >> 4) & 0xF
    return amap.clusters[cluster][:4], dest & 0xF, because(Code.SLOT_CLUSTER, cluster=cluster)


def _finish_fast(vm: VmState, policy: KernelPolicy, message: Message, targets: list[int],
                 trace: Trace | None, where: Reason, why_none: Reason) -> tuple[int, list[Effect]]:
    if not targets:
        if trace is not None:
            trace.notes.append(because(Code.NOTE_NO_TARGET, why=why_none))
            for v in vm.vcpus:
                trace.reasons[v.vcpu_id] = (because(Code.NOT_PRESENT) if not v.present
                                            else because(Code.NOT_TARGETED, why=why_none))
        return policy.fast_path_no_target_result, []
    if trace is not None:
        source = vm.vcpu(message.source) if message.source is not None else None
        quirk = not vm.disable_broadcast_quirk
        holders = ", ".join(str(vm.vcpus[t].vcpu_id) for t in targets)
        for v in vm.vcpus:
            if not v.present:
                trace.reasons[v.vcpu_id] = because(Code.NOT_PRESENT)
            elif _matcher(policy)(v, source, message.dest, quirk):
                trace.reasons[v.vcpu_id] = because(Code.HIDDEN_BY_MAP,
                                                   match=_explainer(policy)(v, source, message.dest, quirk),
                                                   where=where, holders=holders)
            else:
                trace.reasons[v.vcpu_id] = because(Code.NOT_IN_SLOT, where=where)
    return _accept_all(vm, policy, message, targets, trace, where)


def _bail(trace: Trace | None, why: Reason) -> tuple[int, list[Effect]] | None:
    """Record why the fast path gives up; ``None`` tells the caller to take the slow path."""
    if trace is not None:
        trace.notes.append(because(Code.NOTE_FAST_BAILED, why=why))
        trace.path = because(Code.PATH_SLOW_AFTER_BAIL, why=why)
    return None


def _is_broadcast_dest(vm: VmState, amap: ApicMap, dest: int, source: Vcpu | None) -> bool:
    """``kvm_apic_is_broadcast_dest``."""
    if vm.disable_broadcast_quirk:
        return (dest == XAPIC_BROADCAST and amap.logical_mode is not LogicalMode.X2APIC) or dest == X2APIC_BROADCAST
    x2_source = source is not None and source.mode is ApicMode.X2APIC
    return dest == (X2APIC_BROADCAST if x2_source else XAPIC_BROADCAST)


def _slow_path(vm: VmState, policy: KernelPolicy, message: Message, source: Vcpu | None,
               trace: Trace | None) -> tuple[int, list[Effect]]:
    """``kvm_irq_delivery_to_apic``: ``kvm_apic_match_dest`` over every vCPU."""
    lowest = message.lowest_priority
    if message.dest.address == (XAPIC_BROADCAST, DestMode.PHYSICAL) and lowest:
        # "phys broadcast and lowest prio": delivered as FIXED, but the redirection hint stays set.
        # KVM tests the raw destination field, which a shorthand carries too.
        message = replace(message, delivery=DeliveryMode.FIXED)
        lowest = message.redirection_hint
        if trace is not None:
            trace.notes.append(because(Code.NOTE_BROADCAST_LOWEST_AS_FIXED))
    quirk = not vm.disable_broadcast_quirk
    match_dest, why_match = _matcher(policy), _explainer(policy)
    r = -1
    effects: list[Effect] = []
    candidates: list[Vcpu] = []
    for v in vm.vcpus:
        if not v.present:
            if trace is not None:
                trace.reasons[v.vcpu_id] = because(Code.NOT_PRESENT)
            continue
        if not match_dest(v, source, message.dest, quirk):
            if trace is not None:
                trace.reasons[v.vcpu_id] = why_match(v, source, message.dest, quirk)
            continue
        if not lowest:
            effect, why = accept(v, message, vm, policy)
            r = max(r, 0) + (effect is not None)
            if effect is not None:
                effects.append(effect)
            if trace is not None:
                trace.reasons[v.vcpu_id] = because(Code.MATCHED, match=why_match(v, source, message.dest, quirk),
                                                   accept=why)
        elif v.sw_enabled:
            candidates.append(v)
        elif trace is not None:
            trace.reasons[v.vcpu_id] = because(Code.LP_NOT_CANDIDATE_SW_DISABLED)
    if lowest and candidates:
        if vm.vector_hashing:
            chosen = candidates[message.vector % len(candidates)]
            how = because(Code.LP_BY_HASH, index=message.vector % len(candidates), count=len(candidates))
        else:
            chosen = min(candidates, key=lambda v: v.arb_prio)
            how = because(Code.LP_BY_ARB_PRIO)
        effect, why = accept(chosen, message, vm, policy)
        r = 1 if effect is not None else 0
        if effect is not None:
            effects.append(effect)
        if trace is not None:
            for v in candidates:
                trace.reasons[v.vcpu_id] = (because(Code.LP_CHOSEN, how=how, accept=why) if v is chosen
                                            else because(Code.LP_NOT_CHOSEN, how=how))
    if trace is not None and r == -1:
        trace.notes.append(because(Code.NOTE_SLOW_NO_MATCH))
    return r, effects


def _matcher(policy: KernelPolicy) -> Callable[[Vcpu, Vcpu | None, Destination, bool], bool]:
    """``kvm_apic_match_dest`` as the release has it (the MDA rule changed in v4.11)."""
    return match_dest_v4_9 if policy.mda is MdaRule.SOURCE_MODE_SHIFTED else match_dest


def _explainer(policy: KernelPolicy) -> Callable[[Vcpu, Vcpu | None, Destination, bool], Reason]:
    return why_match_v4_9 if policy.mda is MdaRule.SOURCE_MODE_SHIFTED else why_match


def deliver_fast_only(vm: VmState, amap: ApicMap, policy: KernelPolicy, message: Message
                      ) -> tuple[int, list[Effect]] | None:
    """The fast path alone; ``None`` where KVM would fall back to the slow path."""
    source = vm.vcpu(message.source) if message.source is not None else None
    return _fast_path(vm, amap, policy, message, source, None)


def deliver_slow_only(vm: VmState, policy: KernelPolicy, message: Message) -> tuple[int, list[Effect]]:
    """The slow path alone (``kvm_apic_match_dest`` over every vCPU)."""
    source = vm.vcpu(message.source) if message.source is not None else None
    return _slow_path(vm, policy, message, source, None)
