"""Engine ``profile``: a peer hypervisor's routing, read from a ``PeerPolicy`` row.

Like the ``arch`` engine: decode, match each APIC (a three-valued predicate), resolve the set
(aliasing, lowest-priority arbitration), then accept by delivery mode. Every step reads a policy
field; where the field says the peer's behaviour is undefined or unknown the verdict is
``UNDEFINED``, never a chosen value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from apicmap.decode import Refused, describe_message
from apicmap.domain.engine import Closing, PreparedBase
from apicmap.domain.message import (
    X2APIC_BROADCAST,
    XAPIC_BROADCAST,
    Broadcast,
    Injection,
    Logical,
    Message,
    Origin,
    Physical,
    ToAll,
    ToAllButSelf,
    ToSelf,
)
from apicmap.domain.outcome import Effect, EffectKind, Explanation, Outcome, Verdict
from apicmap.domain.reasons import Code, Reason, because
from apicmap.domain.vm import DfrModel, Vcpu, VmState, x2apic_ldr
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DeliveryMode, DestMode, Trigger
from apicmap.errors import NotExpressible
from apicmap.profiles.decode import decode_for_peer
from apicmap.profiles.policy import (
    Aliasing,
    BadDfr,
    BroadcastDecider,
    ClusterF,
    IllegalVector,
    LevelIpi,
    LogicalBroadcast,
    LogicalScope,
    LowestIpi,
    LowestPriority,
    PeerPolicy,
    PhysicalLowest,
    SelfTarget,
    Smi,
    SwDisabledFixed,
    WideDest,
    X2apicId,
    XapicCluster,
)

ACCEPTED, NOT_ACCEPTED, UNDEFINED = Verdict.ACCEPTED, Verdict.NOT_ACCEPTED, Verdict.UNDEFINED


class _Kind(enum.Enum):
    """How an APIC was addressed: only ID matches are subject to the aliasing rule."""

    ID = "id"
    OTHER = "other"


class GlobalFormat(enum.Enum):
    """OpenVMM's VM-wide logical format (``LogicalScope.GLOBAL``)."""

    X2APIC = "x2APIC cluster"
    CLUSTER = "xAPIC cluster"
    FLAT = "xAPIC flat"


class ProfileEngine(Closing):
    """The engine interface over one ``PeerPolicy``."""

    def __init__(self, policy: PeerPolicy) -> None:
        self.policy = policy
        self.name = policy.key

    def prepare(self, vm: VmState) -> ProfileVm:
        policy = self.policy
        if not policy.x2apic_supported:
            x2 = [v.vcpu_id for v in vm.vcpus if v.mode is ApicMode.X2APIC]
            if x2:
                raise NotExpressible(f"{policy.key} has no x2APIC: vCPU {x2[0]} cannot be in x2APIC mode")
        readonly: dict[int, int] = {}
        if policy.physical_aliasing is Aliasing.IMPOSSIBLE:
            # The ID register is read-only and equals the vCPU index: a guest's write is ignored.
            for v in vm.vcpus:
                if v.mode is not ApicMode.X2APIC and v.xapic_id != v.vcpu_id & 0xFF:
                    readonly[v.vcpu_id] = v.xapic_id
                    vm = vm.with_vcpu(replace(v, xapic_id=v.vcpu_id & 0xFF))
        return ProfileVm(vm, policy, readonly, _global_format(vm), _scan_reach(vm))


def _global_format(vm: VmState) -> GlobalFormat:
    present = [v for v in vm.vcpus if v.present]
    if any(v.mode is ApicMode.X2APIC for v in present):
        return GlobalFormat.X2APIC
    if any(v.dfr_model is DfrModel.CLUSTER for v in present):
        return GlobalFormat.CLUSTER
    return GlobalFormat.FLAT


def _scan_reach(vm: VmState) -> int:
    """The first vCPU index (ID) with no APIC: a scan of ``local_apics[]`` that stops there."""
    gap = 0
    while vm.has_vcpu(gap):
        gap += 1
    return gap


Verdicts = dict[int, tuple[Verdict, Effect | None, Reason]]


@dataclass(slots=True)
class ProfileVm(PreparedBase):
    vm: VmState
    policy: PeerPolicy
    readonly: dict[int, int]  # vcpu_id -> the xAPIC ID the scenario asked for, ignored by the peer
    global_format: GlobalFormat
    scan_reach: int
    _outcomes: dict[Injection, Outcome] = field(default_factory=dict)

    def x2apic_id(self, v: Vcpu) -> int:
        return 2 * v.vcpu_id if self.policy.x2apic_id is X2apicId.TWICE_VCPU_ID else v.vcpu_id

    # --- delivery -----------------------------------------------------------------------------

    def deliver(self, injection: Injection, *, explain: bool = False) -> Outcome:
        if not explain:
            known = self._outcomes.get(injection)
            if known is None:
                if len(self._outcomes) > 65536:
                    self._outcomes.clear()
                known = self._outcomes[injection] = self._resolve(injection, False)
            return known
        return self._resolve(injection, True)

    def _resolve(self, injection: Injection, explain: bool) -> Outcome:
        decoded, decode_note = decode_for_peer(injection, self.vm, self.policy)
        notes: list[Reason] = [because(Code.PEER_ID_READONLY, vcpu=vid, requested=asked, actual=vid & 0xFF)
                               for vid, asked in self.readonly.items()]
        if decode_note is not None:
            notes.append(decode_note)
        if isinstance(decoded, Refused):
            explanation = None
            if explain:
                explanation = Explanation(message="(not sent)", path=because(Code.PATH_REFUSED),
                                          notes=(*notes, because(Code.NOTE_REFUSED, detail=decoded.reason)))
            return Outcome(engine=self.policy.key, receivers=(), rejected=decoded.reason, explanation=explanation)
        message = decoded
        source = self.vm.vcpu(message.source) if message.source is not None else None
        verdicts, kinds = self._address_all(message, source)
        self._apply_aliasing(message, verdicts, kinds)
        lowest, set_rule = self._lowest_rules(message, source, notes)
        addressed = [v for v in self.vm.vcpus if verdicts[v.vcpu_id][0] is ACCEPTED]
        if set_rule is not None:
            verdict = UNDEFINED if set_rule.code in (Code.PEER_LP_IPI_UNDEFINED, Code.PEER_LP_UNDEFINED) \
                else NOT_ACCEPTED
            for v in addressed:
                why = verdicts[v.vcpu_id][2]
                verdicts[v.vcpu_id] = (verdict, None, because(Code.BOTH, first=why, then=set_rule))
            addressed = []
        elif lowest and addressed:
            addressed = self._arbitrate(addressed, verdicts)
        for v in addressed:
            verdict, effect, how = self._accept(v, message)
            verdicts[v.vcpu_id] = (verdict, effect, because(Code.BOTH, first=verdicts[v.vcpu_id][2], then=how))
        receivers = tuple(sorted(vid for vid, (vd, _, _) in verdicts.items() if vd is ACCEPTED))
        undefined = tuple(sorted(vid for vid, (vd, _, _) in verdicts.items() if vd is UNDEFINED))
        effects = tuple(e for vid, (vd, e, _) in verdicts.items() if vd is ACCEPTED and e is not None)
        explanation = None
        if explain:
            reasons = []
            for v in self.vm.vcpus:
                verdict, _, why = verdicts[v.vcpu_id]
                if v.vcpu_id in self.readonly:
                    why = because(Code.BOTH, first=notes[list(self.readonly).index(v.vcpu_id)], then=why)
                reasons.append((v.vcpu_id, because(Code.PEER_VERDICT, verdict=verdict.value, why=why)))
            explanation = Explanation(message=describe_message(message),
                                      path=because(Code.PATH_PROFILE, profile=self.policy.key,
                                                   summary=self.policy.summary),
                                      reasons=tuple(reasons), notes=tuple(notes))
        return Outcome(engine=self.policy.key, receivers=receivers, effects=effects, undefined=undefined,
                       explanation=explanation)

    # --- matching -----------------------------------------------------------------------------

    def _address_all(self, message: Message, source: Vcpu | None) -> tuple[Verdicts, dict[int, _Kind]]:
        out: Verdicts = {}
        kinds: dict[int, _Kind] = {}
        for v in self.vm.vcpus:
            verdict, why, kind = self._address(v, message, source)
            out[v.vcpu_id] = (verdict, None, why)
            kinds[v.vcpu_id] = kind
        return out, kinds

    def _self_vcpu(self, source: Vcpu | None) -> tuple[Vcpu | None, Reason | None]:
        if source is None or self.policy.self_target is SelfTarget.SENDER:
            return source, None
        # QEMU: the self and all-but-self bitmask is indexed by the sender's current APIC ID,
        # while the APIC array is indexed by the initial ID.
        current = self.x2apic_id(source) if source.mode is ApicMode.X2APIC else source.xapic_id
        target = self.vm.vcpu(current) if self.vm.has_vcpu(current) else None
        if target is source:
            return source, None
        return target, because(Code.PEER_SELF_BY_CURRENT_ID, id=current)

    def _address(self, v: Vcpu, message: Message, source: Vcpu | None) -> tuple[Verdict, Reason, _Kind]:
        other = _Kind.OTHER
        if not v.present:
            return NOT_ACCEPTED, because(Code.PEER_HW_DISABLED), other
        match message.dest:
            case ToSelf() | ToAllButSelf():
                me, why_me = self._self_vcpu(source)
                hit = v is me if isinstance(message.dest, ToSelf) else v is not me
                label = "self" if isinstance(message.dest, ToSelf) else "all-but-self"
                why = because(Code.PEER_SHORTHAND, shorthand=label, matched=hit)
                if why_me is not None:
                    why = because(Code.BOTH, first=why_me, then=why)
                return (ACCEPTED if hit else NOT_ACCEPTED), why, other
            case ToAll():
                return ACCEPTED, because(Code.PEER_SHORTHAND, shorthand="all", matched=True), other
            case Physical() | Logical() | Broadcast():
                dest, dest_mode = message.dest.address
        broadcast = self._broadcast(v, message, source, dest, dest_mode)
        if broadcast is not None:
            return broadcast[0], broadcast[1], other
        if dest_mode is DestMode.PHYSICAL:
            verdict, why = self._physical(v, dest)
            kind = _Kind.ID
        else:
            verdict, why = self._logical(v, dest)
            kind = other
        if dest in (XAPIC_BROADCAST, X2APIC_BROADCAST):
            # All ones, yet not a broadcast for this APIC under the peer's rules: say whose rule.
            rule = (self.policy.broadcast_decider.name if dest_mode is DestMode.PHYSICAL
                    else self.policy.logical_broadcast.name)
            why = because(Code.BOTH, first=because(Code.PEER_NOT_BROADCAST, dest=dest, rule=rule.lower(),
                                                    logical=dest_mode is DestMode.LOGICAL), then=why)
        return verdict, why, kind

    def _broadcast(self, v: Vcpu, message: Message, source: Vcpu | None, dest: int,
                   dest_mode: DestMode) -> tuple[Verdict, Reason] | None:
        """``None`` when ``dest`` is not a broadcast for ``v`` under this peer's rules."""
        policy = self.policy
        decider = policy.broadcast_decider
        x2 = v.mode is ApicMode.X2APIC
        own = X2APIC_BROADCAST if x2 else XAPIC_BROADCAST
        if decider is BroadcastDecider.UNDEFINED_IF_MIXED and source is not None and source.mode is not v.mode \
                and dest in (XAPIC_BROADCAST, X2APIC_BROADCAST):
            return UNDEFINED, because(Code.PEER_BROADCAST_MIXED_UNDEFINED, dest=dest)
        if decider in (BroadcastDecider.RECEIVER, BroadcastDecider.UNDEFINED_IF_MIXED):
            hit = dest == own
        elif decider is BroadcastDecider.SENDER:
            hit = isinstance(message.dest, Broadcast)
        elif decider is BroadcastDecider.SENDER_IPI_VM_MSI:
            if message.origin in (Origin.IPI, Origin.SELF_IPI):
                hit = isinstance(message.dest, Broadcast)
            else:
                hit = dest == (X2APIC_BROADCAST if policy.x2apic_supported else XAPIC_BROADCAST)
        elif decider is BroadcastDecider.LOW_BYTE:
            hit = dest & 0xFF == 0xFF if dest_mode is DestMode.PHYSICAL else dest == own
        else:  # HYBRID
            if dest_mode is DestMode.PHYSICAL:
                hit = dest == X2APIC_BROADCAST or (dest == XAPIC_BROADCAST and not x2)
            else:
                hit = dest == X2APIC_BROADCAST
        if not hit:
            return None
        why = because(Code.PEER_BROADCAST, dest=dest, decider=decider.name.lower(),
                      logical=dest_mode is DestMode.LOGICAL)
        if dest_mode is DestMode.PHYSICAL:
            return ACCEPTED, why
        rule = policy.logical_broadcast
        if rule is LogicalBroadcast.ALL_ONES or (rule is LogicalBroadcast.X2APIC_ONLY and x2):
            return ACCEPTED, why
        return None  # matched literally below

    def _physical(self, v: Vcpu, dest: int) -> tuple[Verdict, Reason]:
        if v.mode is ApicMode.X2APIC:
            ident = self.x2apic_id(v)
            ok = dest == ident
            return (ACCEPTED if ok else NOT_ACCEPTED), because(Code.PEER_PHYSICAL, dest=dest, id=ident, x2apic=True,
                                                               rule=self.policy.x2apic_id.name.lower(),
                                                               matched=ok)
        if dest <= 0xFF:
            ok = dest == v.xapic_id
            return (ACCEPTED if ok else NOT_ACCEPTED), because(Code.PEER_PHYSICAL, dest=dest, id=v.xapic_id,
                                                               x2apic=False, rule=None, matched=ok)
        rule = self.policy.wide_dest_xapic
        if rule is WideDest.COMPARE_FULL_ID:
            ident = self.x2apic_id(v)
        elif rule is WideDest.TRUNCATE:
            ident = v.xapic_id
            dest &= 0xFF
        else:
            ident = -1
        ok = dest == ident
        return (ACCEPTED if ok else NOT_ACCEPTED), because(Code.PEER_PHYSICAL_WIDE, dest=dest, id=ident,
                                                           rule=rule.name.lower(), matched=ok)

    def _logical(self, v: Vcpu, mda: int) -> tuple[Verdict, Reason]:
        policy = self.policy
        if policy.logical_scan_stops_at_gap and v.vcpu_id >= self.scan_reach:
            return NOT_ACCEPTED, because(Code.PEER_LOGICAL_PAST_GAP, gap=self.scan_reach)
        if policy.logical_scope is LogicalScope.GLOBAL:
            return self._logical_global(v, mda)
        if v.mode is ApicMode.X2APIC:
            ldr = x2apic_ldr(self.x2apic_id(v))
            ok = (ldr >> 16) == (mda >> 16) and (ldr & mda & 0xFFFF) != 0
            return (ACCEPTED if ok else NOT_ACCEPTED), because(Code.PEER_LOGICAL_X2APIC, cluster=ldr >> 16,
                                                               mask=ldr & 0xFFFF, mda=mda,
                                                               rule=self.policy.x2apic_id.name.lower(), matched=ok)
        if mda > 0xFF:
            if policy.wide_dest_xapic is not WideDest.TRUNCATE:
                return NOT_ACCEPTED, because(Code.PEER_LOGICAL_TOO_WIDE, mda=mda)
            mda &= 0xFF
        model = v.dfr_model
        if model is DfrModel.OTHER:
            undefined = policy.bad_dfr is BadDfr.UNDEFINED
            return (UNDEFINED if undefined else NOT_ACCEPTED), because(Code.PEER_BAD_DFR, dfr=v.dfr,
                                                                       undefined=undefined)
        if model is DfrModel.FLAT:
            return self._flat(v, mda)
        return self._cluster(v, mda)

    def _flat(self, v: Vcpu, mda: int) -> tuple[Verdict, Reason]:
        ok = (v.logical_id & mda) != 0
        return (ACCEPTED if ok else NOT_ACCEPTED), because(Code.PEER_LOGICAL_FLAT, logical_id=v.logical_id, mda=mda,
                                                           matched=ok)

    def _cluster(self, v: Vcpu, mda: int) -> tuple[Verdict, Reason]:
        if self.policy.xapic_cluster is XapicCluster.UNSUPPORTED:
            return NOT_ACCEPTED, because(Code.PEER_LOGICAL_CLUSTER_UNSUPPORTED)
        all_clusters = self.policy.cluster_f is ClusterF.ALL_CLUSTERS and (mda >> 4) == 0xF
        ok = ((mda >> 4) == (v.logical_id >> 4) or all_clusters) and (mda & v.logical_id & 0xF) != 0
        return (ACCEPTED if ok else NOT_ACCEPTED), because(Code.PEER_LOGICAL_CLUSTER, cluster=v.logical_id >> 4,
                                                           bits=v.logical_id & 0xF, mda=mda,
                                                           all_clusters=all_clusters, matched=ok)

    def _logical_global(self, v: Vcpu, mda: int) -> tuple[Verdict, Reason]:
        fmt = self.global_format
        if fmt is GlobalFormat.X2APIC:
            # The MDA names IDs cluster << 4 | bit, looked up in the ID table whatever each APIC's mode.
            ident = self.x2apic_id(v)
            ok = (ident >> 4) == (mda >> 16) and (mda & 0xFFFF) >> (ident & 0xF) & 1 == 1
        elif v.mode is ApicMode.X2APIC:
            ok = False  # unreachable: any x2APIC-mode APIC selects the x2APIC format
        elif fmt is GlobalFormat.CLUSTER:
            ok = (mda >> 4 & 0xF) == (v.logical_id >> 4) and (mda & v.logical_id & 0xF) != 0 and mda <= 0xFF
        else:
            ok = (v.logical_id & mda & 0xFF) != 0
        return (ACCEPTED if ok else NOT_ACCEPTED), because(Code.PEER_LOGICAL_GLOBAL, format=fmt.value, mda=mda,
                                                           matched=ok)

    # --- set resolution -----------------------------------------------------------------------

    def _apply_aliasing(self, message: Message, verdicts: Verdicts, kinds: dict[int, _Kind]) -> None:
        rule = self.policy.physical_aliasing
        if rule is Aliasing.IMPOSSIBLE:
            return
        matched = [v for v in self.vm.vcpus
                   if kinds[v.vcpu_id] is _Kind.ID and verdicts[v.vcpu_id][0] is ACCEPTED]
        if rule is Aliasing.ALL:
            if len(matched) > 1:
                for v in matched:
                    verdicts[v.vcpu_id] = (ACCEPTED, None, because(
                        Code.BOTH, first=verdicts[v.vcpu_id][2],
                        then=because(Code.PEER_ALIAS_ALL, count=len(matched))))
            return
        if rule is Aliasing.FIRST_SLOT_THEN_SCAN:
            dest, _ = message.dest.address
            keep = self._slot_then_scan(matched, dest)
            for v in matched:
                if v is not keep:
                    verdicts[v.vcpu_id] = (NOT_ACCEPTED, None, because(
                        Code.BOTH, first=verdicts[v.vcpu_id][2],
                        then=because(Code.PEER_ALIAS_SCAN_MISSED, winner=-1 if keep is None else keep.vcpu_id,
                                     gap=self.scan_reach)))
            return
        if len(matched) < 2:
            return
        if rule is Aliasing.FIRST:
            for v in matched[1:]:
                verdicts[v.vcpu_id] = (NOT_ACCEPTED, None, because(
                    Code.BOTH, first=verdicts[v.vcpu_id][2],
                    then=because(Code.PEER_ALIAS_NOT_FIRST, winner=matched[0].vcpu_id)))
            return
        for v in matched:  # UNDEFINED
            verdicts[v.vcpu_id] = (UNDEFINED, None, because(Code.BOTH, first=verdicts[v.vcpu_id][2],
                                                            then=because(Code.PEER_ALIAS_UNDEFINED,
                                                                         count=len(matched))))

    def _slot_then_scan(self, matched: list[Vcpu], dest: int) -> Vcpu | None:
        """QEMU before 9.0 (``apic_find_dest``): the APIC at index ``dest`` if its ID matches,
        else the first match scanning indexes from 0 up to the first empty slot."""
        if not matched:
            return None
        slot = self.vm.vcpu(dest) if self.vm.has_vcpu(dest) else None
        if slot is not None and slot in matched:
            return slot
        for v in sorted(matched, key=lambda m: m.vcpu_id):
            if v.vcpu_id < self.scan_reach:
                return v
        return None

    def _lowest_rules(self, message: Message, source: Vcpu | None,
                      notes: list[Reason]) -> tuple[bool, Reason | None]:
        """(lowest priority applies, a rule that decides the whole set instead)."""
        policy = self.policy
        lowest = message.delivery is DeliveryMode.LOWEST
        if not lowest and message.redirection_hint and message.origin is Origin.MSI:
            if policy.rh_means_lowest:
                lowest = True
                notes.append(because(Code.PEER_RH_LOWEST))
            else:
                notes.append(because(Code.PEER_RH_IGNORED))
        if not lowest:
            return False, None
        if message.origin is Origin.IPI:
            if policy.lowest_ipi is LowestIpi.UNDEFINED:
                return True, because(Code.PEER_LP_IPI_UNDEFINED)
            if policy.lowest_ipi is LowestIpi.DROP_FROM_X2APIC and source is not None \
                    and source.mode is ApicMode.X2APIC:
                return True, because(Code.PEER_LP_IPI_DROPPED)
        if message.dest.address[1] is DestMode.PHYSICAL and not isinstance(message.dest, (ToSelf, ToAll,
                                                                                          ToAllButSelf)):
            if policy.physical_lowest is PhysicalLowest.DROP:
                return True, because(Code.PEER_PHYSICAL_LP_DROPPED)
            if policy.physical_lowest is PhysicalLowest.AS_FIXED:
                notes.append(because(Code.PEER_PHYSICAL_LP_AS_FIXED))
                return False, None
        if policy.lowest_priority is LowestPriority.UNDEFINED:
            return True, because(Code.PEER_LP_UNDEFINED)
        return True, None

    def _arbitrate(self, addressed: list[Vcpu], verdicts: Verdicts) -> list[Vcpu]:
        """Pick the lowest-priority winner(s); losers and ties are written into ``verdicts``."""
        policy = self.policy
        rule = policy.lowest_priority
        candidates = addressed
        if policy.lowest_skips_sw_disabled:
            candidates = [v for v in addressed if v.sw_enabled]
            for v in addressed:
                if not v.sw_enabled:
                    verdicts[v.vcpu_id] = (NOT_ACCEPTED, None, because(
                        Code.BOTH, first=verdicts[v.vcpu_id][2], then=because(Code.PEER_LP_SKIPPED_SW_DISABLED)))
        if not candidates:
            return []
        # PPR = TPR and APR = TPR: a scenario's vCPUs have nothing in service or pending.
        best = min(v.tpr for v in candidates)
        tied = [v for v in candidates if v.tpr == best]
        winners: list[Vcpu]
        if rule is LowestPriority.FIRST_LOWEST_ID:
            winners = [min(candidates, key=lambda v: v.vcpu_id)]
        elif rule in (LowestPriority.MIN_PPR_TIES_LAST, LowestPriority.MIN_TPR_TIES_HIGHEST):
            winners = [max(tied, key=lambda v: v.vcpu_id)]
        elif rule is LowestPriority.FOCUS_THEN_APR:
            winners = [min(tied, key=lambda v: v.vcpu_id)]
        else:  # ROUND_ROBIN_MIN_PPR: a tie goes to whoever follows the previous winner
            winners = tied
        how = rule.name.lower()
        for v in candidates:
            first = verdicts[v.vcpu_id][2]
            if v not in winners:
                verdicts[v.vcpu_id] = (NOT_ACCEPTED, None, because(
                    Code.BOTH, first=first, then=because(Code.PEER_LP_LOST, rule=how, tpr=v.tpr, best=best)))
            elif len(winners) > 1:
                verdicts[v.vcpu_id] = (UNDEFINED, None, because(
                    Code.BOTH, first=first, then=because(Code.PEER_LP_TIE_UNDEFINED, rule=how, best=best,
                                                         count=len(winners))))
            else:
                verdicts[v.vcpu_id] = (ACCEPTED, None, because(
                    Code.BOTH, first=first, then=because(Code.PEER_LP_WON, rule=how, tpr=v.tpr)))
        return winners if len(winners) == 1 else []

    # --- acceptance ---------------------------------------------------------------------------

    def _accept(self, v: Vcpu, message: Message) -> tuple[Verdict, Effect | None, Reason]:
        policy = self.policy
        mode = message.delivery
        vid = v.vcpu_id
        bus = message.origin in (Origin.MSI, Origin.IOAPIC)
        if mode in (DeliveryMode.FIXED, DeliveryMode.LOWEST):
            if message.vector < 16:
                rule = policy.illegal_vector
                why = because(Code.PEER_ILLEGAL_VECTOR, vector=message.vector, rule=rule.name.lower())
                if rule is IllegalVector.DROPPED:
                    return NOT_ACCEPTED, None, why
                if rule is IllegalVector.UNDEFINED:
                    return UNDEFINED, None, why
            sw_note: Reason | None = None
            if not v.sw_enabled:
                if policy.sw_disabled_fixed is SwDisabledFixed.DROPPED:
                    return NOT_ACCEPTED, None, because(Code.PEER_SW_DISABLED_DROPPED, delivery=mode.label)
                if policy.sw_disabled_fixed is SwDisabledFixed.UNDEFINED:
                    return UNDEFINED, None, because(Code.PEER_SW_DISABLED_UNDEFINED, delivery=mode.label)
                sw_note = because(Code.PEER_SW_DISABLED_ACCEPTED, delivery=mode.label)
            level = message.trigger is Trigger.LEVEL
            if message.origin is Origin.IPI and level:
                rule_l = policy.level_ipi
                why_l = because(Code.PEER_LEVEL_IPI, rule=rule_l.name.lower(), assert_=message.level)
                if rule_l is LevelIpi.UNDEFINED:
                    return UNDEFINED, None, why_l
                if rule_l is LevelIpi.ASSERT_ONLY and not message.level:
                    return NOT_ACCEPTED, None, why_l
            why = because(Code.PEER_ACCEPT_IRR, vector=message.vector, tmr=level)
            if sw_note is not None:
                why = because(Code.BOTH, first=sw_note, then=why)
            return ACCEPTED, Effect(vid, EffectKind.IRR, message.vector, level), why
        if mode is DeliveryMode.NMI:
            return ACCEPTED, Effect(vid, EffectKind.NMI), because(Code.PEER_ACCEPT_NMI)
        if mode is DeliveryMode.SMI:
            if policy.smi is Smi.ACCEPTED:
                return ACCEPTED, Effect(vid, EffectKind.SMI), because(Code.PEER_ACCEPT_SMI)
            return (UNDEFINED if policy.smi is Smi.UNDEFINED else NOT_ACCEPTED), None, because(
                Code.PEER_SMI, rule=policy.smi.name.lower())
        if mode is DeliveryMode.INIT:
            if message.trigger is Trigger.LEVEL and not message.level:
                return NOT_ACCEPTED, None, because(Code.PEER_INIT_DEASSERT_IGNORED)
            return ACCEPTED, Effect(vid, EffectKind.INIT), because(Code.PEER_ACCEPT_INIT)
        if mode is DeliveryMode.SIPI and not bus:
            return ACCEPTED, Effect(vid, EffectKind.SIPI, message.vector), because(Code.PEER_ACCEPT_SIPI,
                                                                                   vector=message.vector)
        return UNDEFINED, None, because(Code.PEER_MODE_UNDEFINED, delivery=mode.label, bus=bus)
