"""A real VM driven one VMM operation at a time, with nothing restored (for sequence fuzzing).

Only ``KVM_SIGNAL_MSI`` return values are compared, so observing never disturbs the map:
reading IRR back and restoring it would call ``KVM_SET_LAPIC``, a recalculation point.
"""

from __future__ import annotations

import os

from apicmap.domain.message import MsiInjection
from apicmap.encoding.apic_base import ApicMode
from apicmap.errors import NotExpressible
from apicmap.kvm import abi as s
from apicmap.kvm.engine import APIC_BASE_DEFAULT, APIC_BASE_EN, APIC_BASE_EXTD, _set_u32, set_msr
from apicmap.kvm.ioctl import check_extension, ioctl_int, ioctl_ptr, open_kvm, signal_msi, supported_cpuid_with_x2apic


class RealSequence:
    def __init__(self) -> None:
        self._kvm_fd = open_kvm()
        self._cpuid = supported_cpuid_with_x2apic(self._kvm_fd)
        self._max_id = check_extension(self._kvm_fd, s.KVM_CAP_MAX_VCPU_ID)
        self._vm_fd = ioctl_int(self._kvm_fd, s.KVM_CREATE_VM, 0)
        ioctl_int(self._vm_fd, s.KVM_CREATE_IRQCHIP)
        self._vcpus: dict[int, int] = {}
        self._format = False
        self.modes: dict[int, ApicMode] = {}

    def close(self) -> None:
        for fd in self._vcpus.values():
            os.close(fd)
        self._vcpus.clear()
        for fd in (self._vm_fd, self._kvm_fd):
            if fd >= 0:
                os.close(fd)
        self._vm_fd = self._kvm_fd = -1

    def create_vcpu(self, vcpu_id: int) -> None:
        if vcpu_id >= self._max_id:
            raise NotExpressible(f"vcpu_id {vcpu_id} >= {self._max_id}")
        fd = ioctl_int(self._vm_fd, s.KVM_CREATE_VCPU, vcpu_id)
        self._vcpus[vcpu_id] = fd
        self.modes[vcpu_id] = ApicMode.XAPIC
        ioctl_ptr(fd, s.KVM_SET_CPUID2, self._cpuid)

    def enable_cap(self, use_32bit_ids: bool, disable_broadcast_quirk: bool) -> None:
        flags = (s.X2APIC_API_USE_32BIT_IDS if use_32bit_ids else 0) | \
                (s.X2APIC_API_DISABLE_BROADCAST_QUIRK if disable_broadcast_quirk else 0)
        cap = s.KvmEnableCap(cap=s.KVM_CAP_X2APIC_API)
        cap.args[0] = flags
        ioctl_ptr(self._vm_fd, s.KVM_ENABLE_CAP, cap)
        self._format = self._format or use_32bit_ids

    def set_apic_base(self, vcpu_id: int, mode: ApicMode) -> None:
        base = APIC_BASE_DEFAULT | (APIC_BASE_EN if mode is not ApicMode.DISABLED else 0) | \
            (APIC_BASE_EXTD if mode is ApicMode.X2APIC else 0)
        if vcpu_id == 0:
            base |= 0x100  # vCPU 0 is the BSP by default; keep its BSP bit as KVM set it
        set_msr(self._vcpus[vcpu_id], s.MSR_IA32_APICBASE, base, "IA32_APIC_BASE")
        self.modes[vcpu_id] = mode

    def set_lapic(self, vcpu_id: int, mode: ApicMode, *, xapic_id: int, ldr: int, dfr: int, sw_enabled: bool) -> None:
        fd = self._vcpus[vcpu_id]
        lapic = s.KvmLapicState()
        ioctl_ptr(fd, s.KVM_GET_LAPIC, lapic)
        if mode is ApicMode.X2APIC:
            _set_u32(lapic.regs, s.APIC_ID, vcpu_id if self._format else (vcpu_id & 0xFF) << 24)
        else:
            _set_u32(lapic.regs, s.APIC_ID, xapic_id << 24)
            _set_u32(lapic.regs, s.APIC_LDR, ldr)
            _set_u32(lapic.regs, s.APIC_DFR, dfr)
        _set_u32(lapic.regs, s.APIC_SPIV, 0x1FF if sw_enabled else 0xFF)
        ioctl_ptr(fd, s.KVM_SET_LAPIC, lapic)

    def signal_msi(self, injection: MsiInjection) -> int | None:
        msi = s.KvmMsi(address_lo=injection.address_lo, address_hi=injection.address_hi, data=injection.data)
        return signal_msi(self._vm_fd, msi)
