"""What ``KVM_SET_LAPIC`` leaves in an x2APIC-mode vCPU's ID and LDR, per release.

``kvm_apic_state_fixup`` (called by ``kvm_apic_get_state`` / ``kvm_apic_set_state``):
- without ``x2apic_format`` (no USE_32BIT_IDS) KVM_GET_LAPIC returns the x2APIC ID shifted left
  by 24 (u32, so vCPU 511 reads 0xFF000000) and, before 6.11, KVM_SET_LAPIC takes the buffer ID
  shifted right by 24: a get/set round trip plants ``vcpu_id & 0xff``;
- with ``x2apic_format`` the buffer ID must equal vcpu_id (EINVAL otherwise);
- the LDR is taken raw (4.11.0) or derived from the planted ID (4.19.0 on);
- 4b7c3f6d04bd "KVM: x86: Make x2APIC ID 100% readonly" (6.11): the buffer ID is ignored, the
  ID is vcpu_id and the LDR is derived from it.
Physical routing never reads the planted ID (``kvm_x2apic_id`` is vcpu_id from 4.11 on; 4.9's
``kvm_apic_id`` also returns vcpu_id in x2APIC mode); the planted LDR is what moves routing.
"""

from __future__ import annotations

from dataclasses import replace

from apicmap.domain.vm import Vcpu, VmState, x2apic_ldr
from apicmap.encoding.apic_base import ApicMode
from apicmap.model.policy import KernelPolicy, X2apicSetLapic


def get_lapic_id(vcpu_id: int, use_32bit_ids: bool) -> int:
    """The APIC ID register KVM_GET_LAPIC returns for an x2APIC-mode vCPU holding ``vcpu_id``."""
    return vcpu_id if use_32bit_ids else (vcpu_id << 24) & 0xFFFFFFFF


def planted_x2apic_id(vcpu: Vcpu, policy: KernelPolicy, use_32bit_ids: bool) -> int:
    """The x2APIC ID register after KVM_SET_LAPIC of ``vcpu.lapic_id`` (or a round trip)."""
    if policy.x2apic_set_lapic is X2apicSetLapic.READONLY or use_32bit_ids:
        return vcpu.vcpu_id
    written = get_lapic_id(vcpu.vcpu_id, use_32bit_ids) if vcpu.lapic_id is None else vcpu.lapic_id
    return written >> 24


def x2apic_ldr_after_set(vcpu: Vcpu, policy: KernelPolicy, use_32bit_ids: bool) -> int:
    """The LDR after KVM_SET_LAPIC on an x2APIC-mode vCPU."""
    planted = planted_x2apic_id(vcpu, policy, use_32bit_ids)
    if policy.x2apic_set_lapic is X2apicSetLapic.PLANTED_ID_RAW_LDR:
        # The buffer's LDR is kept; a round trip returns what KVM holds (derived at x2APIC enable).
        return x2apic_ldr(vcpu.vcpu_id) if vcpu.lapic_ldr is None else vcpu.lapic_ldr
    return x2apic_ldr(planted)


def kvm_view(vm: VmState, policy: KernelPolicy) -> VmState:
    """``vm`` with each x2APIC-mode vCPU's LDR as ``policy``'s KVM_SET_LAPIC leaves it."""
    changed: list[Vcpu] | None = None
    for i, v in enumerate(vm.vcpus):
        if v.mode is not ApicMode.X2APIC:
            continue
        ldr = x2apic_ldr_after_set(v, policy, vm.use_32bit_ids)
        reg = -1 if ldr == x2apic_ldr(v.vcpu_id) else ldr
        if reg != v.x2apic_ldr_reg:
            if changed is None:
                changed = list(vm.vcpus)
            changed[i] = replace(v, x2apic_ldr_reg=reg)
    return vm if changed is None else replace(vm, vcpus=tuple(changed))
