"""Raw VM operations on /dev/kvm, shared by the kvm engine and the sequence driver.

Nothing here restores or observes: it opens /dev/kvm, creates a VM with the in-kernel irqchip,
enables the X2APIC_API flags, creates vCPUs with an x2APIC-capable CPUID, writes the APIC base
MSR (built with ``encoding.apic_base.ApicBase``), reads and writes the LAPIC register page
through named accessors, and signals MSIs. Register offsets are those of the xAPIC page
(``struct kvm_lapic_state``, SDM Vol. 3A table 11-1).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os

from apicmap.encoding.apic_base import ApicBase, ApicMode
from apicmap.kvm import abi as s
from apicmap.kvm.ioctl import (
    KvmIoctlError,
    check_extension,
    ioctl_int,
    ioctl_ptr,
    ioctl_raw_int,
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
        self._runner: GuestRunner | None = None

    def guest_runner(self) -> GuestRunner:
        """The VM's code slot and runner, made on first use (a VM that never runs code has no memory)."""
        if self._runner is None:
            self._runner = GuestRunner(self)
        return self._runner

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
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        for fd in self.vcpus.values():
            os.close(fd)
        self.vcpus.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def lapic_address(page: LapicPage, offset: int) -> int:
    """The address of a register in the page (for ``ctypes.string_at`` reads on hot paths)."""
    return ctypes.addressof(page.state) + offset


# --- guest code: an xAPIC ICR write ------------------------------------------------------------------

XAPIC_DEFAULT_BASE = 0xFEE00000  # ApicBase.for_mode keeps the default base (SDM Vol. 3A 11.4.4)
XAPIC_ICR_LOW = 0x300  # SDM Vol. 3A 11.4.1 (the register page), 11.6.1 (ICR): writing the low word sends
XAPIC_ICR_HIGH = 0x310  # ICR2: destination in bits 31:24
GUEST_CODE_GPA = 0x1000  # where the code page sits in guest physical memory
GUEST_CODE_SIZE = 0x1000
DONE_PORT = 0xE9  # the OUT that ends the run: no in-kernel device claims it, so KVM_RUN exits with KVM_EXIT_IO

# 32-bit flat protected mode, paging off, so an address is the guest physical address.
# EAX = ICR low word, EDX = ICR2; interrupts stay off (EFLAGS.IF = 0), so a self IPI stays in IRR.
# The run ends with OUT rather than HLT: with the in-kernel LAPIC, KVM handles HLT itself
# (kvm_emulate_halt() makes the vCPU KVM_MP_STATE_HALTED and blocks) and never returns
# KVM_EXIT_HLT to user space.
XAPIC_ICR_WRITE_CODE = bytes([
    # mov [0xFEE00310], edx: 89 /r, ModRM 0x15 (mod 00, reg EDX, r/m 101 = disp32)
    0x89, 0x15, *(XAPIC_DEFAULT_BASE + XAPIC_ICR_HIGH).to_bytes(4, "little"),
    0xA3, *(XAPIC_DEFAULT_BASE + XAPIC_ICR_LOW).to_bytes(4, "little"),  # mov [0xFEE00300], eax (A3 moffs32): sends
    0xE6, DONE_PORT,  # out 0xE9, al: KVM_EXIT_IO
    0xF4,  # hlt (not reached)
])
PROBE_CODE = bytes([0xE6, DONE_PORT, 0xF4])  # out 0xE9, al; hlt: can this kernel run guest code at all?

_MAX_RUNS = 8  # KVM_RUN calls before giving up (a signal can end one with EINTR)


class GuestCodeFailed(Exception):
    """KVM_RUN did not end at the OUT: the kernel cannot run this guest code (the message says how)."""


def _flat(selector: int, type_: int) -> s.KvmSegment:
    return s.KvmSegment(base=0, limit=0xFFFFFFFF, selector=selector, type=type_, present=1, dpl=0, db=1, s=1, l=0,
                        g=1)


class GuestRunner:
    """One memory slot of code at GUEST_CODE_GPA and a way to run it on one vCPU of a VM.

    Around each run the vCPU's regs, sregs and mp_state are saved and written back. KVM_SET_SREGS
    also writes CR8, which KVM turns into the TPR (kvm_set_cr8), and the ICR write leaves ICR/ICR2
    in the register page: the caller restores the register page (KVM_SET_LAPIC) as it does after
    any IPI.
    """

    def __init__(self, vm: RawVm) -> None:
        self.vm = vm
        self.memory = mmap.mmap(-1, GUEST_CODE_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                                prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self._buffer = (ctypes.c_char * GUEST_CODE_SIZE).from_buffer(self.memory)
        region = s.KvmUserspaceMemoryRegion(slot=0, flags=0, guest_phys_addr=GUEST_CODE_GPA,
                                            memory_size=GUEST_CODE_SIZE,
                                            userspace_addr=ctypes.addressof(self._buffer))
        ioctl_ptr(vm.fd, s.KVM_SET_USER_MEMORY_REGION, region)
        self._run_size = ioctl_int(vm.system.fd, s.KVM_GET_VCPU_MMAP_SIZE)
        self._runs: dict[int, mmap.mmap] = {}

    def _kvm_run(self, fd: int) -> mmap.mmap:
        run = self._runs.get(fd)
        if run is None:
            run = self._runs[fd] = mmap.mmap(fd, self._run_size, flags=mmap.MAP_SHARED,
                                             prot=mmap.PROT_READ | mmap.PROT_WRITE)
        return run

    def run(self, fd: int, code: bytes, *, eax: int = 0, edx: int = 0, lapic: s.KvmLapicState | None = None) -> None:
        """Run ``code`` from GUEST_CODE_GPA on the vCPU ``fd`` until its OUT to DONE_PORT; raise
        GuestCodeFailed on any other exit. The vCPU's regs, sregs and mp_state are restored. With
        ``lapic``, that register page is written (KVM_SET_LAPIC) just before the run, after
        KVM_SET_SREGS has set the TPR from CR8."""
        self.memory[:len(code)] = code
        regs, sregs, mp = s.KvmRegs(), s.KvmSregs(), s.KvmMpState()
        ioctl_ptr(fd, s.KVM_GET_REGS, regs)
        ioctl_ptr(fd, s.KVM_GET_SREGS, sregs)
        ioctl_ptr(fd, s.KVM_GET_MP_STATE, mp)
        try:
            flat = s.KvmSregs.from_buffer_copy(sregs)  # keeps apic_base, CR8, EFER = 0, TR and LDTR
            flat.cs = _flat(0x08, 0xB)  # execute/read code, accessed; D = 1 (32-bit)
            flat.ds = flat.es = flat.ss = flat.fs = flat.gs = _flat(0x10, 0x3)  # read/write data, accessed
            flat.cr0 = (sregs.cr0 | 1) & ~(1 << 31)  # PE on, PG off
            flat.cr4 = 0
            flat.efer = 0
            ioctl_ptr(fd, s.KVM_SET_SREGS, flat)
            ioctl_ptr(fd, s.KVM_SET_REGS, s.KvmRegs(rip=GUEST_CODE_GPA, rflags=0x2, rax=eax & 0xFFFFFFFF,
                                                     rdx=edx & 0xFFFFFFFF))
            # A non-BSP vCPU starts KVM_MP_STATE_UNINITIALIZED, where KVM_RUN only waits for a SIPI.
            ioctl_ptr(fd, s.KVM_SET_MP_STATE, s.KvmMpState(mp_state=s.MP_STATE_RUNNABLE))
            if lapic is not None:
                ioctl_ptr(fd, s.KVM_SET_LAPIC, lapic)
            self._run_to_port(fd)
        finally:
            ioctl_ptr(fd, s.KVM_SET_REGS, regs)
            ioctl_ptr(fd, s.KVM_SET_SREGS, sregs)
            ioctl_ptr(fd, s.KVM_SET_MP_STATE, mp)
            after = s.KvmMpState()
            ioctl_ptr(fd, s.KVM_GET_MP_STATE, after)
            if after.mp_state != mp.mp_state:
                raise KvmIoctlError("KVM_SET_MP_STATE", errno.EINVAL,
                                    f"mp_state {after.mp_state} after restoring {mp.mp_state}")

    def _run_to_port(self, fd: int) -> None:
        run = self._kvm_run(fd)
        for _ in range(_MAX_RUNS):
            result, err = ioctl_raw_int(fd, s.KVM_RUN)
            if result < 0:
                if err in (errno.EINTR, errno.EAGAIN):
                    continue
                raise GuestCodeFailed(f"KVM_RUN failed: {errno.errorcode.get(err, err)} ({os.strerror(err)})")
            reason = int.from_bytes(run[s.KVM_RUN_EXIT_REASON:s.KVM_RUN_EXIT_REASON + 4], "little")
            if reason == s.KVM_EXIT_IO:
                port = int.from_bytes(run[s.KVM_RUN_IO_PORT:s.KVM_RUN_IO_PORT + 2], "little")
                if run[s.KVM_RUN_IO_DIRECTION] == s.KVM_EXIT_IO_OUT and port == DONE_PORT:
                    return
                raise GuestCodeFailed(f"KVM_RUN exited with KVM_EXIT_IO on port {port:#x}, not {DONE_PORT:#x}")
            raise GuestCodeFailed(f"KVM_RUN exited with {s.EXIT_REASON_NAMES.get(reason, str(reason))}")
        raise GuestCodeFailed(f"KVM_RUN did not reach the end of the code in {_MAX_RUNS} runs")

    def close(self) -> None:
        for run in self._runs.values():
            run.close()
        self._runs.clear()
        del self._buffer
        with contextlib.suppress(BufferError):
            self.memory.close()
