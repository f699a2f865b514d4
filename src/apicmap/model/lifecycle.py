"""KVM's map lifecycle over a sequence of VMM operations (docs/routing.md#when-the-map-is-rebuilt).

The optimized map is recomputed only at recalculation points, and only when dirty:
- ``KVM_CREATE_VCPU``: the reset recalculates the map *before* the new vCPU is published, so
  the map misses the last-created vCPU until the next dirtying event (docs/routing.md#when-the-map-is-rebuilt);
- ``KVM_ENABLE_CAP(X2APIC_API)`` dirties nothing: the map keeps the old flag semantics
(docs/routing.md#when-the-map-is-rebuilt);
- an APIC base write that changes the value, and every ``KVM_SET_LAPIC``, dirty and recalculate;
  except, up to 6.2, a host-forced x2APIC -> xAPIC switch (EXTD cleared, EN kept): before
  052c3b99cbc8 "KVM: x86: Reinitialize xAPIC ID when userspace forces x2APIC => xAPIC",
  ``kvm_lapic_set_base`` handled only the x2APIC-enable edge, so the ID register keeps the x2APIC
  ID (the xAPIC ID reads ``id >> 24``) and nothing dirties the map: it keeps the vCPU in its
  x2APIC slots until the next dirtying event.
The slow path always reads live registers. ``track_recalculation=False`` gives a naive model
whose map is always fresh; the stateful fuzzer uses it to rediscover both behaviours.
"""

from __future__ import annotations

from dataclasses import replace

from apicmap.decode import KvmDecodeRules, Refused, decode_for_kvm
from apicmap.domain.message import MsiInjection
from apicmap.domain.vm import Vcpu, VmState, x2apic_ldr
from apicmap.encoding.apic_base import ApicMode
from apicmap.model.apic_map import ApicMap, build_map
from apicmap.model.policy import IdModifiedInhibit, KernelPolicy
from apicmap.model.resolve import deliver
from apicmap.model.set_lapic import get_lapic_id, x2apic_ldr_after_set


class ModelLifecycle:
    def __init__(self, policy: KernelPolicy, *, track_recalculation: bool = True,
                 stale_after_create: bool | None = None, stale_after_enable_cap: bool | None = None) -> None:
        self.policy = policy
        # Each of KVM's two non-recalculating operations can be modelled or not (for classifying).
        self.stale_after_create = track_recalculation if stale_after_create is None else stale_after_create
        self.stale_after_enable_cap = track_recalculation if stale_after_enable_cap is None else stale_after_enable_cap
        self.vm = VmState(())
        self._map: ApicMap = build_map(self.vm, policy)
        self.inhibits: frozenset[str] = frozenset()  # APICv inhibits raised so far

    def _recalculate(self, vm: VmState | None = None) -> None:
        self._map = build_map(self.vm if vm is None else vm, self.policy)
        if self.policy.apic_id_modified_inhibit is IdModifiedInhibit.STICKY_UNTRUNCATED:
            self.inhibits |= self._map.inhibits  # 3743c2f02517: set, never cleared (5.19-6.2)
        else:
            self.inhibits = self._map.inhibits

    @property
    def map(self) -> ApicMap:
        return self._map

    def _set(self, vcpu: Vcpu) -> None:
        self.vm = self.vm.with_vcpu(vcpu)

    def create_vcpu(self, vcpu_id: int) -> None:
        # RESET: xAPIC mode, ID = vcpu_id & 0xFF, sw-disabled (SVR 0xFF), LDR 0, DFR flat
        # (docs/routing.md#reset-and-init-in-kvm).
        before = self.vm
        self.vm = replace(self.vm, vcpus=(*self.vm.vcpus, Vcpu(vcpu_id, ApicMode.XAPIC, False)))
        # The reset's recalculation sees only the vCPUs published before this one.
        self._recalculate(before if self.stale_after_create else None)

    def enable_cap(self, use_32bit_ids: bool, disable_broadcast_quirk: bool) -> None:
        # Flags are sticky: they can be set, never cleared (docs/routing.md#kvm-x2apic_api).
        self.vm = replace(self.vm, use_32bit_ids=self.vm.use_32bit_ids or use_32bit_ids,
                          disable_broadcast_quirk=self.vm.disable_broadcast_quirk or disable_broadcast_quirk)
        if not self.stale_after_enable_cap:
            self._recalculate()

    def set_apic_base(self, vcpu_id: int, mode: ApicMode) -> None:
        v = self.vm.vcpu(vcpu_id)
        if v.mode is mode:
            return  # an unchanged value is a no-op (docs/routing.md#mode-from-the-apic-base)
        if mode is ApicMode.XAPIC and v.mode is ApicMode.DISABLED:
            # EN 0->1 resets the xAPIC ID (docs/routing.md#mode-transitions-in-kvm)
            v = replace(v, mode=mode, xapic_id=vcpu_id & 0xFF)
        elif mode is ApicMode.X2APIC:
            v = replace(v, mode=mode, ldr=x2apic_ldr(vcpu_id), x2apic_ldr_reg=-1)
        elif mode is ApicMode.XAPIC and v.mode is ApicMode.X2APIC:
            # Host-forced x2APIC -> xAPIC: the LDR keeps its x2APIC value either way.
            if self.policy.x2apic_disable_resets_id:
                v = replace(v, mode=mode, xapic_id=vcpu_id & 0xFF, ldr=v.effective_ldr, x2apic_ldr_reg=-1)
            else:
                # <= 6.2: ID register unchanged (xAPIC ID = x2APIC ID >> 24), map not dirtied: stale.
                v = replace(v, mode=mode, xapic_id=(vcpu_id >> 24) & 0xFF, ldr=v.effective_ldr, x2apic_ldr_reg=-1)
                self._set(v)
                return
        else:
            v = replace(v, mode=mode)
        self._set(v)
        self._recalculate()

    def set_lapic(self, vcpu_id: int, *, xapic_id: int, ldr: int, dfr: int, sw_enabled: bool) -> None:
        v = self.vm.vcpu(vcpu_id)
        if v.mode is ApicMode.X2APIC:
            # The buffer carries the ID as KVM_GET_LAPIC returned it (a round trip); what the
            # release keeps of it, and the LDR, follow ``policy.x2apic_set_lapic``.
            written = replace(v, lapic_id=get_lapic_id(vcpu_id, self.vm.use_32bit_ids), lapic_ldr=v.effective_ldr)
            ldr = x2apic_ldr_after_set(written, self.policy, self.vm.use_32bit_ids)
            v = replace(v, sw_enabled=sw_enabled, x2apic_ldr_reg=-1 if ldr == x2apic_ldr(vcpu_id) else ldr)
        else:
            v = replace(v, sw_enabled=sw_enabled, xapic_id=xapic_id, ldr=ldr, dfr=dfr)
        self._set(v)
        self._recalculate()  # KVM_SET_LAPIC always dirties the map

    def signal_msi(self, injection: MsiInjection) -> int | None:
        """The KVM_SIGNAL_MSI value (count, 0, -1), or None for EINVAL."""
        rules = KvmDecodeRules.for_policy(self.policy, self.vm)
        message = decode_for_kvm(injection, self.vm, rules)
        if isinstance(message, Refused):
            return None
        r, _ = deliver(self.vm, self._map, self.policy, message)
        return r

