"""Raw VM operations on /dev/kvm, shared by the kvm engine and the sequence driver.

Nothing here restores or observes: it opens /dev/kvm, creates a VM with the in-kernel irqchip,
enables the X2APIC_API flags, creates vCPUs with an x2APIC-capable CPUID, writes the APIC base
MSR (built with ``encoding.apic_base.ApicBase``), reads and writes the LAPIC register page
through named accessors, and signals MSIs. Register offsets are those of the xAPIC page
(``struct kvm_lapic_state``, SDM Vol. 3A table 11-1).
"""

from __future__ import annotations

import ctypes
import errno
import os

from apicmap.encoding.apic_base import ApicBase, ApicMode
from apicmap.kvm import abi as s
from apicmap.kvm.ioctl import (
    KvmIoctlError,
    check_extension,
    ioctl_int,
    ioctl_ptr,
    open_kvm,
    signal_msi,
    supported_cpuid_with_x2apic,
)

SVR_APIC_ENABLE = 1 << 8  # spurious-interrupt vector register, APIC software enable
SVR_SPURIOUS_VECTOR = 0xFF


def vector_bits(page: bytes, base: int) -> int:
    """A 256-bit IRR/ISR/TMR bitmap at ``base`` (eight 32-bit words, 16 bytes apart) as one integer."""
    return int.from_bytes(b"".join(page[base + 0x10 * i:base + 0x10 * i + 4] for i in range(8)), "little")


def vector_bit(page: bytes, base: int, vector: int) -> bool:
    """One vector's bit of the bitmap at ``base``."""
    return bool(page[base + 0x10 * (vector >> 5) + ((vector & 31) >> 3)] >> (vector & 7) & 1)


class LapicPage:
    """``struct kvm_lapic_state`` with register accessors."""

    __slots__ = ("state",)

    def __init__(self, state: s.KvmLapicState | None = None) -> None:
        self.state = s.KvmLapicState() if state is None else state

    def u32(self, offset: int) -> int:
        return int.from_bytes(bytes(self.state.regs[offset:offset + 4]), "little")

    def set_u32(self, offset: int, value: int) -> None:
        self.state.regs[offset:offset + 4] = list(value.to_bytes(4, "little"))

    def bytes(self) -> bytes:
        return bytes(self.state.regs)

    def write_xapic(self, *, xapic_id: int, ldr: int, dfr: int) -> None:
        """APIC ID (bits 31:24), LDR and DFR as the xAPIC page holds them."""
        self.set_u32(s.APIC_ID, xapic_id << 24)
        self.set_u32(s.APIC_LDR, ldr)
        self.set_u32(s.APIC_DFR, dfr)

    def write_x2apic_id(self, vcpu_id: int, x2apic_format: bool) -> None:
        """With x2apic_format the buffer holds the full ID, else the xAPIC-format byte (kvm_apic_state_fixup)."""
        self.set_u32(s.APIC_ID, vcpu_id if x2apic_format else (vcpu_id & 0xFF) << 24)

    def write_svr(self, sw_enabled: bool) -> None:
        self.set_u32(s.APIC_SPIV, SVR_SPURIOUS_VECTOR | (SVR_APIC_ENABLE if sw_enabled else 0))

    def write_tpr(self, tpr: int) -> None:
        self.set_u32(s.APIC_TASKPRI, tpr)

    def clear_vectors(self) -> None:
        """ISR, TMR and IRR all zero."""
        for base in (s.APIC_ISR, s.APIC_TMR, s.APIC_IRR):
            for i in range(8):
                self.set_u32(base + 0x10 * i, 0)


def get_lapic(fd: int, page: LapicPage) -> LapicPage:
    ioctl_ptr(fd, s.KVM_GET_LAPIC, page.state)
    return page


def set_lapic(fd: int, page: LapicPage) -> None:
    ioctl_ptr(fd, s.KVM_SET_LAPIC, page.state)


def set_msr(fd: int, index: int, value: int, what: str) -> bool:
    """KVM_SET_MSRS of one MSR; a refused APIC base write raises, other refusals return False."""
    msrs = s.KvmMsrs1(nmsrs=1)
    msrs.entries[0].index = index
    msrs.entries[0].data = value
    written = ioctl_ptr(fd, s.KVM_SET_MSRS, msrs)
    if written != 1 and index == s.MSR_IA32_APICBASE:
        raise KvmIoctlError("KVM_SET_MSRS", errno.EINVAL, f"{what} = {value:#x} was refused")
    return written == 1


def set_apic_base(fd: int, mode: ApicMode, *, bsp: bool = False) -> None:
    """Write IA32_APIC_BASE for ``mode`` at the default base address."""
    set_msr(fd, s.MSR_IA32_APICBASE, ApicBase.for_mode(mode, bsp).to_value(), "IA32_APIC_BASE")


def x2apic_api_flags(use_32bit_ids: bool, disable_broadcast_quirk: bool) -> int:
    return (s.X2APIC_API_USE_32BIT_IDS if use_32bit_ids else 0) | \
        (s.X2APIC_API_DISABLE_BROADCAST_QUIRK if disable_broadcast_quirk else 0)


class KvmSystem:
    """/dev/kvm and what the host allows."""

    def __init__(self) -> None:
        self.fd = open_kvm()
        self.max_vcpus = check_extension(self.fd, s.KVM_CAP_MAX_VCPUS)
        self.max_vcpu_id = check_extension(self.fd, s.KVM_CAP_MAX_VCPU_ID)
        self.x2apic_api = check_extension(self.fd, s.KVM_CAP_X2APIC_API)
        self.smm = bool(check_extension(self.fd, s.KVM_CAP_X86_SMM))
        self.cpuid = supported_cpuid_with_x2apic(self.fd)

    def create_vm(self) -> RawVm:
        return RawVm(ioctl_int(self.fd, s.KVM_CREATE_VM, 0), self)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class RawVm:
    """One VM: its fd and its vCPU fds by vcpu_id (in creation order)."""

    def __init__(self, vm_fd: int, system: KvmSystem) -> None:
        self.fd = vm_fd
        self.system = system
        self.vcpus: dict[int, int] = {}
        self._msi = s.KvmMsi()

    def set_boot_cpu_id(self, vcpu_id: int) -> None:
        ioctl_int(self.fd, s.KVM_SET_BOOT_CPU_ID, vcpu_id)

    def create_irqchip(self) -> None:
        ioctl_int(self.fd, s.KVM_CREATE_IRQCHIP)

    def enable_x2apic_api(self, flags: int) -> None:
        cap = s.KvmEnableCap(cap=s.KVM_CAP_X2APIC_API)
        cap.args[0] = flags
        ioctl_ptr(self.fd, s.KVM_ENABLE_CAP, cap)

    def create_vcpu(self, vcpu_id: int) -> int:
        """KVM_CREATE_VCPU, then KVM_SET_CPUID2 with CPUID.1:ECX.x2APIC set; returns the fd."""
        fd = ioctl_int(self.fd, s.KVM_CREATE_VCPU, vcpu_id)
        self.vcpus[vcpu_id] = fd
        ioctl_ptr(fd, s.KVM_SET_CPUID2, self.system.cpuid)
        return fd

    def signal_msi(self, address_lo: int, address_hi: int, data: int) -> int | None:
        """KVM_SIGNAL_MSI's value: the count, 0, -1 (EPERM), or None (EINVAL)."""
        msi = self._msi
        msi.address_lo, msi.address_hi, msi.data = address_lo, address_hi, data
        return signal_msi(self.fd, msi)

    def close(self) -> None:
        for fd in self.vcpus.values():
            os.close(fd)
        self.vcpus.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def lapic_address(page: LapicPage, offset: int) -> int:
    """The address of a register in the page (for ``ctypes.string_at`` reads on hot paths)."""
    return ctypes.addressof(page.state) + offset
