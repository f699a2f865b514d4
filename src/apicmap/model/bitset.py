"""The model at kernel speed: KVM's delivery by set algebra over creation indexes.

``resolve.py`` is the reference: it walks the vCPUs one by one, as ``kvm_irq_delivery_to_apic``
does. This module answers the same question from index structures built once per prepared VM,
as Python ints used as bitsets over creation indexes (bit ``i`` is ``VmState.vcpus[i]``):

- masks by mode (present, xAPIC, x2APIC) and by software enable;
- by xAPIC ID, by vcpu_id (the x2APIC ID and the hotplug hack's comparison), by x2APIC logical
  cluster and member bit, by xAPIC flat logical bit, by xAPIC cluster and member bit (each for
  the exact DFR value ``kvm_apic_match_logical_addr`` compares);
- KVM's ``phys_map`` and logical cluster slots, read from the ``ApicMap`` the reference builds.

The rules are the reference's, in the same order (docs/routing.md#kvm-fast-path,
docs/routing.md#kvm-slow-path): the fast path with its bail conditions, then the slow path with
``kvm_apic_match_dest`` as a union of masks, the broadcast quirk (``kvm_apic_mda``), lowest
priority by vector hashing or ``apic_arb_prio``, the physical-0xFF lowest-priority rewrite, the
fast path's no-target result and ``KVM_SIGNAL_MSI``'s count. Acceptance is not re-implemented:
each (delivery mode, trigger, level) is put to ``accept.accept`` once per class of target, and
the answer applies to every vCPU of the class. ``tests/model/test_bitset.py`` holds both paths
equal on generated VMs and messages for every release in ``policy.VARIANTS``.

Results carry receivers as sorted vcpu_ids and effects as ``Effects`` (built when read).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from apicmap.domain.message import (
    X2APIC_BROADCAST,
    XAPIC_BROADCAST,
    Message,
    Origin,
    Physical,
    ToAll,
    ToAllButSelf,
    ToSelf,
)
from apicmap.domain.outcome import (
    FAST_BUILD,
    EffectKind,
    Effects,
    Outcome,
    pick_bits,
    quick_outcome,
    set_bits,
)
from apicmap.domain.reasons import Code, Reason, because
from apicmap.domain.vm import DFR_CLUSTER, DFR_FLAT, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DeliveryMode, DestMode, Trigger
from apicmap.model.accept import accept
from apicmap.model.apic_map import ApicMap, LogicalMode
from apicmap.model.policy import KernelPolicy, MdaRule

# Shorthand codes (ICR bits 19:18).
NO_SHORTHAND, SELF, ALL, ALL_BUT_SELF = 0, 1, 2, 3

_FIXED = DeliveryMode.FIXED
_LOWEST = DeliveryMode.LOWEST
_PROBE_VECTOR = 0x5A


@dataclass(frozen=True, slots=True)
class _Acceptance:
    """What ``accept`` does for one (delivery, trigger, level), per class of target."""

    # Per class (see ``VmIndex.classes``): the kind of the effect, or None when refused.
    kinds: tuple[EffectKind | None, ...]
    vector_from_message: bool  # Effect.vector is the message's vector (else None)
    level_triggered: bool


def supports(policy: KernelPolicy) -> bool:
    """Whether the set algebra here implements this release's rules. v4.9/v4.10 match in the
    sender's MDA format (``MdaRule.SOURCE_MODE_SHIFTED``), which only the per-vCPU reference
    (``model/match_v4_9.py``) models; those releases take the reference path."""
    return policy.mda is not MdaRule.SOURCE_MODE_SHIFTED


class VmIndex:
    """Bitset index structures of one prepared VM (immutable once built)."""

    __slots__ = (
        "_acceptance",
        "_msi_rules",
        "_sets",
        "amap",
        "arb",
        "arb_uniform",
        "by_id",
        "by_xapic_id",
        "class_members",
        "class_of",
        "classes",
        "cluster_bits",
        "flat_bits",
        "ids",
        "ids_sorted",
        "logical_mode",
        "max_apic_id",
        "no_target",
        "one_ids",
        "phys",
        "policy",
        "present",
        "quirk",
        "rows",
        "sw",
        "use32",
        "vm",
        "x2",
        "x2_clusters",
        "x2_source",
        "xapic",
    )

    def __init__(self, vm: VmState, amap: ApicMap, policy: KernelPolicy) -> None:
        self.vm = vm
        self.amap = amap
        self.policy = policy
        vcpus = vm.vcpus
        self.ids = ids = tuple(v.vcpu_id for v in vcpus)
        self.ids_sorted = all(a < b for a, b in itertools.pairwise(ids))
        by_id: dict[int, int] = {}
        by_xapic_id = [0] * 256
        x2_clusters: dict[int, list[int]] = {}
        flat_bits = [0] * 8
        cluster_bits = [[0] * 4 for _ in range(16)]
        # Classes of targets for acceptance: 2 * (x2APIC mode) + (software enabled); -1: not present.
        class_of = [-1] * len(vcpus)
        for i, v in enumerate(vcpus):
            bit = 1 << i
            if not v.present:
                continue
            by_id[v.vcpu_id] = bit
            is_x2 = v.mode is ApicMode.X2APIC
            class_of[i] = is_x2 * 2 + v.sw_enabled
            if is_x2:
                # kvm_apic_match_logical_addr, x2APIC: cluster LDR[31:16], member bit in LDR[15:0].
                ldr = v.effective_ldr
                row = x2_clusters.setdefault(ldr >> 16, [0] * 16)
                for b in set_bits(ldr & 0xFFFF):
                    row[b] |= bit
                continue
            by_xapic_id[v.xapic_id] |= bit
            logical_id = (v.ldr >> 24) & 0xFF
            if v.dfr == DFR_FLAT:
                for b in set_bits(logical_id):
                    flat_bits[b] |= bit
            elif v.dfr == DFR_CLUSTER:
                for b in set_bits(logical_id & 0xF):
                    cluster_bits[logical_id >> 4][b] |= bit
        class_members = [_mask([c == k for c in class_of]) for k in range(4)]
        present = class_members[0] | class_members[1] | class_members[2] | class_members[3]
        sw = class_members[1] | class_members[3]
        x2 = class_members[2] | class_members[3]
        xapic = class_members[0] | class_members[1]
        self.present, self.sw, self.x2, self.xapic = present, sw, x2, xapic
        self.by_id = by_id
        self.by_xapic_id = by_xapic_id
        self.x2_clusters = x2_clusters
        self.flat_bits = flat_bits
        self.cluster_bits = cluster_bits
        self.arb = tuple(v.arb_prio for v in vcpus)
        self.arb_uniform = len(set(self.arb)) <= 1
        self.class_members = tuple(class_members)
        self.classes = tuple(bool(m) for m in class_members)
        self._acceptance: dict[tuple[int, bool, bool], _Acceptance] = {}
        # The broadcast sets, with their receivers ready (sorted vcpu_ids).
        self._sets: dict[int, tuple[int, ...]] = {}
        for mask in (present, sw, x2, xapic, x2 & sw, xapic & sw):
            self._sets[mask] = self._ids_of(mask)
        self.phys = amap.phys
        self.max_apic_id = amap.max_apic_id
        self.logical_mode = amap.logical_mode
        self.rows = amap.clusters
        self.x2_source = tuple(v.mode is ApicMode.X2APIC for v in vcpus)
        self.quirk = not vm.disable_broadcast_quirk
        self.one_ids = tuple((vid,) for vid in ids)
        self.class_of = tuple(class_of)
        self.use32 = vm.use_32bit_ids
        self.no_target = policy.fast_path_no_target_result
        self._msi_rules: dict[int, tuple[tuple[EffectKind | None, int, bool], ...]] = {}

    # --- helpers ---------------------------------------------------------------------------------

    def _ids_of(self, mask: int) -> tuple[int, ...]:
        ids = pick_bits(self.ids, mask)
        return ids if self.ids_sorted else tuple(sorted(ids))

    def receivers(self, mask: int) -> tuple[int, ...]:
        known = self._sets.get(mask)
        return known if known is not None else self._ids_of(mask)

    def acceptance(self, delivery: int, level_trigger: bool, level: bool) -> _Acceptance:
        key = (delivery, level_trigger, level)
        found = self._acceptance.get(key)
        if found is None:
            found = self._acceptance[key] = self._probe(*key)
        return found

    def _probe(self, delivery: int, level_trigger: bool, level: bool) -> _Acceptance:
        """Ask ``accept.accept`` itself, once per class of target present in this VM."""
        message = Message(vector=_PROBE_VECTOR, delivery=DeliveryMode(delivery), dest=Physical(0),
                          trigger=Trigger.LEVEL if level_trigger else Trigger.EDGE, level=level,
                          redirection_hint=False, origin=Origin.MSI)
        kinds: list[EffectKind | None] = []
        vector_from_message, level_triggered = False, False
        for members in self.class_members:
            if not members:
                kinds.append(None)
                continue
            target = self.vm.vcpus[(members & -members).bit_length() - 1]
            effect, _ = accept(target, message, self.vm, self.policy)
            kinds.append(None if effect is None else effect.kind)
            if effect is not None:
                vector_from_message = effect.vector == _PROBE_VECTOR
                level_triggered = effect.level_triggered
                if effect.vector not in (None, _PROBE_VECTOR):
                    raise AssertionError(f"accept() gives vector {effect.vector}: not the message's, not None")
        return _Acceptance(tuple(kinds), vector_from_message, level_triggered)

    def msi_rule(self, key: int) -> tuple[tuple[EffectKind | None, int, bool], ...]:
        """Per class: (effect kind or None, 0xFF if Effect.vector is the message's else 0, TMR) of an
        MSI whose data bits 15 and 10:8 are ``key`` (MSIs always assert: level 1)."""
        found = self._msi_rules.get(key)
        if found is None:
            acc = self.acceptance((key >> 8) & 7, bool(key & 0x8000), True)
            found = self._msi_rules[key] = tuple((k, 0xFF if acc.vector_from_message else 0, acc.level_triggered)
                                                 for k in acc.kinds)
        return found

    def accepting(self, acc: _Acceptance, mask: int) -> tuple[int, EffectKind | None]:
        """(the part of ``mask`` that accepts, the effect kind)."""
        out = 0
        kind: EffectKind | None = None
        for members, k in zip(self.class_members, acc.kinds, strict=True):
            if k is not None and members & mask:
                out |= members & mask
                if kind is not None and kind is not k:
                    raise AssertionError("accept() gives different effect kinds per target class")
                kind = k
        return out, kind

    def accepted_list(self, acc: _Acceptance, targets: list[int]) -> tuple[list[int], EffectKind | None]:
        """The accepting targets of an ordered list (duplicates kept, as ``_accept_all`` counts them)."""
        out: list[int] = []
        kind: EffectKind | None = None
        members = self.class_members
        for t in targets:
            bit = 1 << t
            for m, k in zip(members, acc.kinds, strict=True):
                if m & bit:
                    if k is not None:
                        out.append(t)
                        kind = k
                    break
        return out, kind

    # --- kvm_apic_match_dest as masks ------------------------------------------------------------

    def match_physical(self, dest: int, x2_mda: int) -> int:
        """Present vCPUs whose ``kvm_apic_match_physical_addr`` holds; ``x2_mda`` is the MDA that
        ``kvm_apic_mda`` gives x2APIC-mode targets (the broadcast quirk)."""
        x2_part = self.x2 if x2_mda == X2APIC_BROADCAST else self.by_id.get(x2_mda, 0) & self.x2
        if dest == XAPIC_BROADCAST:
            return x2_part | self.xapic
        if dest > 0xFF:  # the hotplug hack: compared with the vcpu_id
            return x2_part | (self.by_id.get(dest, 0) & self.xapic)
        return x2_part | self.by_xapic_id[dest]

    def match_logical(self, dest: int, x2_mda: int) -> int:
        if x2_mda == X2APIC_BROADCAST:
            x2_part = self.x2
        else:
            x2_part = 0
            row = self.x2_clusters.get(x2_mda >> 16)
            if row is not None:
                for b in set_bits(x2_mda & 0xFFFF):
                    x2_part |= row[b]
        if dest == XAPIC_BROADCAST:
            return x2_part | self.xapic
        flat = self.flat_bits
        for b in set_bits(dest & 0xFF):
            x2_part |= flat[b]
        if dest >> 4 <= 0xF:
            row4 = self.cluster_bits[dest >> 4]
            for b in set_bits(dest & 0xF):
                x2_part |= row4[b]
        return x2_part


def _mask(flags: list[bool]) -> int:
    """Bit i set where ``flags[i]``, parsed from one digit string (OR-ing n growing ints is quadratic)."""
    return int("".join("1" if f else "0" for f in reversed(flags)) or "0", 2)


# A resolution: (r, receivers as sorted vcpu_ids, effects).
Resolved = tuple[int, tuple[int, ...], Effects]
_NO_EFFECTS = Effects((), EffectKind.IRR, None, False)


def resolve(ix: VmIndex, vector: int, delivery: int, level_trigger: bool, level: bool, rh: bool, dest: int,
            logical: bool, shorthand: int, src: int) -> Resolved:
    """One message, given by its fields; ``src`` is the source's creation index or -1.

    ``dest``/``logical`` are the destination field and mode, kept with a shorthand too (the
    physical-0xFF lowest-priority rewrite reads them)."""
    lowest = delivery == _LOWEST or rh
    # --- fast path: kvm_irq_delivery_to_apic_fast --------------------------------------------------
    fast = _fast(ix, vector, delivery, level_trigger, level, lowest, dest, logical, shorthand, src)
    if fast is not None:
        return fast
    # --- slow path: kvm_irq_delivery_to_apic -------------------------------------------------------
    if lowest and dest == XAPIC_BROADCAST and not logical:
        delivery = _FIXED  # "phys broadcast and lowest prio": delivered as FIXED, RH kept
        lowest = rh
    if shorthand == NO_SHORTHAND:
        x2_mda = X2APIC_BROADCAST if ix.quirk and src < 0 and dest == XAPIC_BROADCAST else dest
        matched = ix.match_logical(dest, x2_mda) if logical else ix.match_physical(dest, x2_mda)
    elif shorthand == SELF:
        matched = (1 << src) & ix.present if src >= 0 else 0
    elif shorthand == ALL:
        matched = ix.present
    else:
        matched = ix.present & ~(1 << src) if src >= 0 else ix.present
    acc = ix.acceptance(delivery, level_trigger, level)
    if not lowest:
        if not matched:
            return -1, (), _NO_EFFECTS
        accepted, kind = ix.accepting(acc, matched)
        if not accepted or kind is None:
            return 0, (), _NO_EFFECTS
        receivers = ix.receivers(accepted)
        order = receivers if ix.ids_sorted else pick_bits(ix.ids, accepted)
        return len(order), receivers, Effects(order, kind, vector if acc.vector_from_message else None,
                                              acc.level_triggered)
    candidates = matched & ix.sw
    if not candidates:
        return -1, (), _NO_EFFECTS
    if ix.vm.vector_hashing:
        count = candidates.bit_count()
        k = vector % count
        chosen = (candidates & -candidates).bit_length() - 1 if k == 0 else set_bits(candidates)[k]
    else:
        chosen = _min_arb(ix, set_bits(candidates))
    return _one(ix, acc, chosen, vector)


def _one(ix: VmIndex, acc: _Acceptance, index: int, vector: int) -> Resolved:
    bit = 1 << index
    for members, kind in zip(ix.class_members, acc.kinds, strict=True):
        if members & bit:
            if kind is None:
                return 0, (), _NO_EFFECTS
            ids = (ix.ids[index],)
            return 1, ids, Effects(ids, kind, vector if acc.vector_from_message else None, acc.level_triggered)
    raise AssertionError("a target outside every class")


def _min_arb(ix: VmIndex, indexes: list[int]) -> int:
    if ix.arb_uniform:
        return indexes[0]
    arb = ix.arb
    return min(indexes, key=lambda i: arb[i])  # min() keeps the first on ties, as KVM's walk does


def _fast(ix: VmIndex, vector: int, delivery: int, level_trigger: bool, level: bool, lowest: bool, dest: int,
          logical: bool, shorthand: int, src: int) -> Resolved | None:
    """``kvm_irq_delivery_to_apic_fast``; None where KVM falls back to the slow path."""
    if shorthand:
        if shorthand == SELF and src >= 0:
            return _targets(ix, vector, delivery, level_trigger, level, [src])
        return None
    phys = ix.phys
    if phys is None:
        return None
    # kvm_apic_is_broadcast_dest
    if not ix.quirk:
        if (dest == XAPIC_BROADCAST and ix.logical_mode is not LogicalMode.X2APIC) or dest == X2APIC_BROADCAST:
            return None
    elif dest == (X2APIC_BROADCAST if src >= 0 and ix.x2_source[src] else XAPIC_BROADCAST):
        return None
    if not logical:
        if dest > ix.max_apic_id:
            return ix.policy.fast_path_no_target_result, (), _NO_EFFECTS
        slot = phys[dest]
        if slot is None:
            return ix.policy.fast_path_no_target_result, (), _NO_EFFECTS
        return _targets(ix, vector, delivery, level_trigger, level, [slot])
    mode = ix.logical_mode
    if mode is LogicalMode.MAP_DISABLED or mode is LogicalMode.INVALID:
        return None
    if mode is LogicalMode.SW_DISABLED:
        return ix.policy.fast_path_no_target_result, (), _NO_EFFECTS
    if mode is LogicalMode.X2APIC:
        offset = (dest >> 16) * 16
        if offset > ix.max_apic_id:
            row: list[int | None] = []
            mask = 0
        else:
            width = min(16, ix.max_apic_id - offset + 1)
            row = phys[offset:offset + width]
            mask = dest & 0xFFFF & ((1 << width) - 1)
    elif mode is LogicalMode.XAPIC_FLAT:
        row, mask = ix.rows[0][:8], dest & 0xFF
    else:
        row, mask = ix.rows[(dest >> 4) & 0xF][:4], dest & 0xF
    if not lowest:
        targets = [s for b in set_bits(mask) if (s := row[b]) is not None]
        return _targets(ix, vector, delivery, level_trigger, level, targets)
    if ix.vm.vector_hashing:
        if mask == 0:
            return ix.policy.fast_path_no_target_result, (), _NO_EFFECTS
        bits = set_bits(mask)  # kvm_vector_to_index counts empty slots too
        slot = row[bits[vector % len(bits)]]
        if slot is None:
            return ix.policy.fast_path_no_target_result, (), _NO_EFFECTS
        return _targets(ix, vector, delivery, level_trigger, level, [slot])
    candidates = [s for b in set_bits(mask) if (s := row[b]) is not None]
    if not candidates:
        return ix.policy.fast_path_no_target_result, (), _NO_EFFECTS
    return _targets(ix, vector, delivery, level_trigger, level, [_min_arb(ix, candidates)])


def _targets(ix: VmIndex, vector: int, delivery: int, level_trigger: bool, level: bool,
             targets: list[int]) -> Resolved:
    """``_finish_fast``/``_accept_all`` over the fast path's targets, in slot order."""
    if not targets:
        return ix.policy.fast_path_no_target_result, (), _NO_EFFECTS
    acc = ix.acceptance(delivery, level_trigger, level)
    if len(targets) == 1:
        return _one(ix, acc, targets[0], vector)
    accepted, kind = ix.accepted_list(acc, targets)
    if not accepted or kind is None:
        return 0, (), _NO_EFFECTS
    ids = ix.ids
    order = tuple(ids[t] for t in accepted)
    return len(order), tuple(sorted(set(order))), Effects(order, kind, vector if acc.vector_from_message else None,
                                                          acc.level_triggered)


def resolve_message(ix: VmIndex, message: Message) -> Resolved:
    """``resolve.deliver`` for a decoded ``Message``, by set algebra."""
    dest = message.dest
    match dest:
        case ToSelf():
            shorthand = SELF
        case ToAll():
            shorthand = ALL
        case ToAllButSelf():
            shorthand = ALL_BUT_SELF
        case _:
            shorthand = NO_SHORTHAND
    dest_id, dest_mode = dest.address
    src = -1 if message.source is None else ix.vm.creation_index(message.source)
    return resolve(ix, message.vector, int(message.delivery), message.trigger is Trigger.LEVEL, message.level,
                   message.redirection_hint, dest_id, dest_mode is DestMode.LOGICAL, shorthand, src)


def resolve_msi(ix: VmIndex, address_lo: int, address_hi: int, data: int) -> Resolved | None:
    """A ``KVM_SIGNAL_MSI`` straight from ``struct kvm_msi`` (``kvm_set_msi_irq``, as
    ``decode_for_kvm`` reads it); None where KVM refuses it (EINVAL: the caller decodes it again
    for the reason)."""
    dest = (address_lo >> 12) & 0xFF
    if ix.vm.use_32bit_ids:
        if address_hi & 0xFF:
            return None
        dest |= address_hi & 0xFFFFFF00
    return resolve(ix, data & 0xFF, (data >> 8) & 7, bool(data & 0x8000), True, bool(address_lo & 8), dest,
                   bool(address_lo & 4), NO_SHORTHAND, -1)


def unicast_msi(ix: VmIndex, address_lo: int, address_hi: int, data: int) -> Outcome | None:
    """The commonest case in one step: a physical MSI that the fast path resolves through
    ``phys_map`` (no broadcast, no map NULL); None for anything else (``resolve_msi`` then)."""
    phys = ix.phys
    if address_lo & 4 or phys is None:
        return None
    dest = (address_lo >> 12) & 0xFF
    if ix.use32:
        if address_hi & 0xFF:
            return None
        dest |= address_hi & 0xFFFFFF00
    if dest in (XAPIC_BROADCAST, X2APIC_BROADCAST):
        return None
    # A physical message has no arbitration in the fast path: RH and LOWEST change nothing here.
    slot = phys[dest] if dest <= ix.max_apic_id else None
    if slot is None:
        return quick_outcome("model", (), _NO_EFFECTS, ix.no_target)
    rules = ix._msi_rules.get(data & 0x8700) or ix.msi_rule(data & 0x8700)
    kind, vector_mask, level_triggered = rules[ix.class_of[slot]]
    if kind is None:
        return quick_outcome("model", (), _NO_EFFECTS, 0)
    ids = ix.one_ids[slot]
    # quick_outcome(..., lazy_effects(...)) written out: this is the hot path of every unicast.
    effects = _NEW(Effects)
    _SET_SPEC(effects, (ids, kind, (data & vector_mask) if vector_mask else None, level_triggered))
    outcome: Outcome = _NEW(Outcome)
    _SET_ENGINE(outcome, "model")
    _SET_RECEIVERS(outcome, ids)
    _SET_EFFECTS(outcome, effects)
    _SET_RESULT(outcome, 1)
    _SET_REJECTED(outcome, None)
    _SET_UNDEFINED(outcome, ())
    _SET_EXPLANATION(outcome, None)
    return outcome


_NEW, _SET_ENGINE, _SET_RECEIVERS, _SET_EFFECTS, _SET_RESULT, _SET_REJECTED, _SET_UNDEFINED, _SET_EXPLANATION, \
    _SET_SPEC = FAST_BUILD


def path_of(ix: VmIndex, message: Message) -> Reason:
    """The path ``resolve.deliver`` records in its ``Trace`` (fast path, or slow path and why),
    without the per-vCPU reasons: what ``fuzz.signature.rule_of`` reads."""
    match message.dest:
        case ToSelf() if message.source is not None:
            return because(Code.PATH_FAST_SELF)
        case ToSelf() | ToAll() | ToAllButSelf():
            return _bailed(because(Code.BAIL_SHORTHAND, shorthand=message.shorthand.label))
        case _:
            dest, dest_mode = message.dest.address
    amap = ix.amap
    if amap.phys is None:
        return _bailed(because(Code.BAIL_MAP_NULL, detail=amap.null_reason))
    src = -1 if message.source is None else ix.vm.creation_index(message.source)
    if not ix.quirk:
        broadcast = (dest == XAPIC_BROADCAST and amap.logical_mode is not LogicalMode.X2APIC) or \
            dest == X2APIC_BROADCAST
    else:
        broadcast = dest == (X2APIC_BROADCAST if src >= 0 and ix.x2_source[src] else XAPIC_BROADCAST)
    if broadcast:
        return _bailed(because(Code.BAIL_BROADCAST, dest=dest))
    if dest_mode is DestMode.PHYSICAL:
        return because(Code.PATH_FAST_PHYSICAL)
    mode = amap.logical_mode
    if mode in (LogicalMode.MAP_DISABLED, LogicalMode.INVALID):
        return _bailed(because(Code.BAIL_LOGICAL_UNUSABLE, mode=mode.value, detail=amap.logical_reason))
    return because(Code.PATH_FAST_LOGICAL, mode=mode.value)


def _bailed(why: Reason) -> Reason:
    return because(Code.PATH_SLOW_AFTER_BAIL, why=why)
