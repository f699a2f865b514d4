"""KVM's map lifecycle over a sequence of VMM operations (kvm-routing.md §2.2).

The optimized map is recomputed only at recalculation points, and only when dirty:
- ``KVM_CREATE_VCPU``: the reset recalculates the map *before* the new vCPU is published, so
  the map misses the last-created vCPU until the next dirtying event (§2.2(a));
- ``KVM_ENABLE_CAP(X2APIC_API)`` dirties nothing: the map keeps the old flag semantics (§2.2(b));
- an APIC base write that changes the value, and every ``KVM_SET_LAPIC``, dirty and recalculate.
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
from apicmap.model.policy import KernelPolicy, PhysMapRule
from apicmap.model.resolve import deliver


class ModelLifecycle:
    def __init__(self, policy: KernelPolicy, *, track_recalculation: bool = True,
                 stale_after_create: bool | None = None, stale_after_enable_cap: bool | None = None) -> None:
        self.policy = policy
        # Each of KVM's two non-recalculating operations can be modelled or not (for classifying).
        self.stale_after_create = track_recalculation if stale_after_create is None else stale_after_create
        self.stale_after_enable_cap = track_recalculation if stale_after_enable_cap is None else stale_after_enable_cap
        self.vm = VmState(())
        self._map: ApicMap = build_map(self.vm, policy)

    def _recalculate(self, vm: VmState | None = None) -> None:
        self._map = build_map(self.vm if vm is None else vm, self.policy)

    def _set(self, vcpu: Vcpu) -> None:
        self.vm = self.vm.with_vcpu(vcpu)

    def create_vcpu(self, vcpu_id: int) -> None:
        # RESET: xAPIC mode, ID = vcpu_id & 0xFF, sw-disabled (SVR 0xFF), LDR 0, DFR flat (§1.6).
        before = self.vm
        self.vm = replace(self.vm, vcpus=(*self.vm.vcpus, Vcpu(vcpu_id, ApicMode.XAPIC, False)))
        # The reset's recalculation sees only the vCPUs published before this one.
        self._recalculate(before if self.stale_after_create else None)

    def enable_cap(self, use_32bit_ids: bool, disable_broadcast_quirk: bool) -> None:
        # Flags are sticky: they can be set, never cleared (§7).
        self.vm = replace(self.vm, use_32bit_ids=self.vm.use_32bit_ids or use_32bit_ids,
                          disable_broadcast_quirk=self.vm.disable_broadcast_quirk or disable_broadcast_quirk)
        if not self.stale_after_enable_cap:
            self._recalculate()

    def set_apic_base(self, vcpu_id: int, mode: ApicMode) -> None:
        v = self.vm.vcpu(vcpu_id)
        if v.mode is mode:
            return  # an unchanged value is a no-op (§1.2)
        if mode is ApicMode.XAPIC and v.mode is ApicMode.DISABLED:
            v = replace(v, mode=mode, xapic_id=vcpu_id & 0xFF)  # EN 0->1 resets the xAPIC ID (§1.7)
        elif mode is ApicMode.X2APIC:
            v = replace(v, mode=mode, ldr=x2apic_ldr(vcpu_id))
        elif mode is ApicMode.XAPIC and v.mode is ApicMode.X2APIC:
            # Host-forced x2APIC -> xAPIC: ID := vcpu_id & 0xFF on 6.3+; the LDR keeps its
            # x2APIC-derived value (§1.7).
            reset_id = self.policy.phys_map is PhysMapRule.ARCHITECTURAL_UNLESS_32BIT_IDS
            v = replace(v, mode=mode, xapic_id=(vcpu_id & 0xFF) if reset_id else 0)
        else:
            v = replace(v, mode=mode)
        self._set(v)
        self._recalculate()

    def set_lapic(self, vcpu_id: int, *, xapic_id: int, ldr: int, dfr: int, sw_enabled: bool) -> None:
        v = self.vm.vcpu(vcpu_id)
        if v.mode is ApicMode.X2APIC:
            v = replace(v, sw_enabled=sw_enabled)  # ID and LDR are derived from vcpu_id (§1.9)
        else:
            v = replace(v, sw_enabled=sw_enabled, xapic_id=xapic_id, ldr=ldr, dfr=dfr)
        self._set(v)
        self._recalculate()  # KVM_SET_LAPIC always dirties the map

    def signal_msi(self, injection: MsiInjection) -> int | None:
        """The KVM_SIGNAL_MSI value (count, 0, -1), or None for EINVAL."""
        rules = KvmDecodeRules(self.vm.use_32bit_ids, self.policy.icr_reserved_bits_fault,
                               self.policy.self_ipi_reserved_bits_fault)
        message = decode_for_kvm(injection, self.vm, rules)
        if isinstance(message, Refused):
            return None
        r, _ = deliver(self.vm, self._map, self.policy, message)
        return r

