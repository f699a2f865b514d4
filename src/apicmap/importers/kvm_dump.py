"""Dump the vCPUs of a VM the ``kvm`` engine prepared: the real ``KVM_GET_LAPIC`` page and
``KVM_GET_MSRS(IA32_APIC_BASE)`` per vCPU, as the kernel reports them.

This is how the tests obtain real captures of the ``kvm-lapic`` format (and the pages inside the
cloud-hypervisor and crosvm fixtures) on this machine. It reads the prepared VM's vCPU file
descriptors from ``apicmap.kvm.engine.KvmVm`` (its private ``_real`` handle list, which holds
them in creation order); it writes nothing to the VM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apicmap.domain.vm import VmState
from apicmap.errors import ApicmapError
from apicmap.kvm import abi as s
from apicmap.kvm.ioctl import ioctl_ptr


@dataclass(frozen=True, slots=True, kw_only=True)
class DumpedVcpu:
    vcpu_id: int
    page: bytes  # struct kvm_lapic_state, 1,024 bytes
    apic_base: int  # IA32_APIC_BASE as KVM_GET_MSRS returns it
    sregs: dict[str, Any]  # KVM_GET_SREGS, field by field (kvm_sregs names)
    sregs_raw: bytes  # the same struct kvm_sregs, as bytes
    mp_state: int


def _sregs_dict(sregs: s.KvmSregs) -> dict[str, Any]:
    def value(v: Any) -> Any:
        if hasattr(v, "_fields_"):
            return {f[0]: value(getattr(v, f[0])) for f in v._fields_}
        if hasattr(v, "__len__") and not isinstance(v, (bytes, str)):
            return [int(x) for x in v]
        return int(v)

    return {f[0]: value(getattr(sregs, f[0])) for f in s.KvmSregs._fields_}


def dump_prepared(engine: Any, vm: VmState) -> list[DumpedVcpu]:
    """Prepare ``vm`` on ``engine`` (a ``KvmEngine``) and read every vCPU back, in creation order."""
    prepared = engine.prepare(vm)
    real = getattr(prepared, "_real", None)
    if real is None:
        raise ApicmapError("dump_prepared needs a VM prepared by the kvm engine")
    out = []
    for handle in real.vcpus:
        lapic = s.KvmLapicState()
        ioctl_ptr(handle.fd, s.KVM_GET_LAPIC, lapic)
        msrs = s.KvmMsrs1(nmsrs=1)
        msrs.entries[0].index = s.MSR_IA32_APICBASE
        if ioctl_ptr(handle.fd, s.KVM_GET_MSRS, msrs) != 1:
            raise ApicmapError(f"KVM_GET_MSRS did not return IA32_APIC_BASE for vCPU {handle.vcpu_id}")
        sregs = s.KvmSregs()
        ioctl_ptr(handle.fd, s.KVM_GET_SREGS, sregs)
        mp = s.KvmMpState()
        ioctl_ptr(handle.fd, s.KVM_GET_MP_STATE, mp)
        out.append(DumpedVcpu(vcpu_id=handle.vcpu_id, page=bytes(lapic.regs), apic_base=int(msrs.entries[0].data),
                              sregs=_sregs_dict(sregs), sregs_raw=bytes(sregs),
                              mp_state=int(mp.mp_state)))
    return out
