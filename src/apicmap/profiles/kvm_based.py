"""VMMs whose local APIC is KVM's: the KVM model, after the VMM's own transforms.

The VMM decides the KVM_CAP_X2APIC_API flags (a transform of the VM), may keep the IOAPIC in
userspace and send each pin as an MSI (a transform of the injection), and may rewrite device
MSIs before KVM sees them (the extended-destination swizzle). The routing itself is the model's
(``apicmap.model.engine.ModelEngine`` at the chosen KVM release); nothing of KVM is re-implemented.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from apicmap.domain.engine import Closing, PreparedBase
from apicmap.domain.message import Injection, IoapicInjection, MsiInjection
from apicmap.domain.outcome import Explanation, Outcome
from apicmap.domain.reasons import Code, Reason, because
from apicmap.domain.vm import VmState
from apicmap.encoding.ioapic import RedirectionEntry
from apicmap.encoding.msi import ext_dest_to_kvm
from apicmap.errors import NotExpressible
from apicmap.model.engine import ModelEngine, ModelVm
from apicmap.model.policy import policy_for_release
from apicmap.profiles.policy import IoapicModel, KvmBasedPolicy, MsiRoute, X2apicApi


def vmm_vm(vm: VmState, policy: KvmBasedPolicy) -> tuple[VmState, tuple[Reason, ...]]:
    """The VM as KVM sees it once the VMM has chosen its X2APIC_API flags."""
    rule = policy.x2apic_api
    if rule is X2apicApi.AS_WRITTEN:
        return vm, ()
    top = max((v.x2apic_id for v in vm.vcpus), default=0)
    if rule is X2apicApi.NEVER:
        on = False
    elif rule is X2apicApi.ABOVE_254:
        on = top > 254
    else:  # FROM_255
        on = top >= 255
    if vm.use_32bit_ids == on and vm.disable_broadcast_quirk == on:
        return vm, ()
    when = {X2apicApi.NEVER: "never", X2apicApi.ABOVE_254: "above 254", X2apicApi.FROM_255: "from 255"}[rule]
    note = because(Code.PEER_NOTE_VMM_X2APIC_API, vmm=policy.name, enabled=on, top=top, rule=when)
    return replace(vm, use_32bit_ids=on, disable_broadcast_quirk=on), (note,)


def vmm_injection(injection: Injection, policy: KvmBasedPolicy) -> tuple[Injection, Reason | None]:
    """The injection KVM receives from this VMM."""
    if isinstance(injection, IoapicInjection) and policy.ioapic is not IoapicModel.KVM:
        rte = RedirectionEntry.from_value(injection.rte)
        if rte.masked:
            return injection, None  # nothing is sent; the model reports the masked pin
        data = rte.vector | int(rte.delivery) << 8 | int(rte.trigger) << 15
        if policy.ioapic is IoapicModel.USERSPACE_8BIT_RH:
            # RTE bits 63:56 only; RH (address bit 3) always set; remote IRR copied to data bit 14.
            lo = 0xFEE00000 | rte.dest << 12 | 1 << 3 | int(rte.dest_mode) << 2
            data |= int(rte.remote_irr) << 14
            hi = 0
        else:
            # RTE bits 63:48 become address bits 19:4, so the extended destination bits 55:49
            # land in address bits 11:5; then the route is swizzled as for device MSIs.
            lo = 0xFEE00000 | ((injection.rte >> 48) & 0xFFFF) << 4 | int(rte.dest_mode) << 2
            lo, hi = ext_dest_to_kvm(lo, 0)
            data |= 1 << 14
        msi = MsiInjection(lo, hi, data)
        return msi, because(Code.PEER_NOTE_VMM_IOAPIC, vmm=policy.name, pin=injection.pin, address_hi=hi,
                            address_lo=lo, data=data, ioapic=policy.ioapic.value)
    if isinstance(injection, MsiInjection) and policy.msi_route is MsiRoute.SWIZZLE_EXT_DEST:
        lo, hi = ext_dest_to_kvm(injection.address_lo, injection.address_hi)
        if (lo, hi) != (injection.address_lo, injection.address_hi):
            return MsiInjection(lo, hi, injection.data), because(
                Code.PEER_NOTE_VMM_MSI_ROUTE, vmm=policy.name, address_hi=hi, address_lo=lo)
    return injection, None


class KvmBasedEngine(Closing):
    def __init__(self, policy: KvmBasedPolicy, kernel: str | None = None) -> None:
        self.policy = policy
        self.inner = ModelEngine(policy_for_release(policy.kernel or kernel))
        self.name = policy.key

    def prepare(self, vm: VmState) -> KvmBasedVm:
        limit = self.policy.max_vcpus
        if limit is not None and len(vm.vcpus) > limit:
            raise NotExpressible(f"{self.policy.name} supports at most {limit} vCPUs; the VM has {len(vm.vcpus)}")
        seen, notes = vmm_vm(vm, self.policy)
        return KvmBasedVm(self.inner.prepare(seen), self.policy, notes)


@dataclass(slots=True)
class KvmBasedVm(PreparedBase):
    inner: ModelVm
    policy: KvmBasedPolicy
    notes: tuple[Reason, ...]

    def deliver(self, injection: Injection, *, explain: bool = False) -> Outcome:
        seen, note = vmm_injection(injection, self.policy)
        outcome = self.inner.deliver(seen, explain=explain)
        result = outcome.result if isinstance(injection, MsiInjection) else None
        explanation = outcome.explanation
        if explanation is not None:
            extra = (*self.notes, *((note,) if note is not None else ()))
            explanation = Explanation(message=explanation.message, path=explanation.path,
                                      map_state=explanation.map_state, reasons=explanation.reasons,
                                      notes=(*extra, *explanation.notes))
        return replace(outcome, engine=self.policy.key, result=result, explanation=explanation)
