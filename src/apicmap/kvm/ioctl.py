"""The /dev/kvm binding: file descriptors and typed ioctls, every errno mapped to ``KvmIoctlError``."""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
from typing import Any

from apicmap.errors import ApicmapError, KvmUnavailable
from apicmap.kvm import abi as s

_libc = ctypes.CDLL(None, use_errno=True)
_ioctl = _libc.ioctl
_ioctl.restype = ctypes.c_int
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_ioctl_int = ctypes.CDLL(None, use_errno=True).ioctl
_ioctl_int.restype = ctypes.c_int
_ioctl_int.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong]


class KvmIoctlError(ApicmapError):
    def __init__(self, ioctl: str, errno: int, detail: str = "") -> None:
        self.ioctl = ioctl
        self.errno = errno
        name = errno_mod.errorcode.get(errno, str(errno))
        super().__init__(f"{ioctl} failed: {name} ({os.strerror(errno)}){': ' + detail if detail else ''}")


def _name(request: int) -> str:
    return s.IOCTL_NAMES.get(request, f"ioctl {request:#x}")


def ioctl_ptr(fd: int, request: int, arg: Any) -> int:
    """ioctl with a pointer argument; returns the non-negative result or raises."""
    result: int = _ioctl(fd, request, ctypes.byref(arg) if arg is not None else None)
    if result < 0:
        raise KvmIoctlError(_name(request), ctypes.get_errno())
    return result


def ioctl_raw(fd: int, request: int, arg: Any) -> tuple[int, int]:
    """ioctl returning (result, errno) without raising, for hot paths that expect some errors."""
    result: int = _ioctl(fd, request, ctypes.byref(arg))
    return (result, ctypes.get_errno() if result < 0 else 0)


def ioctl_int(fd: int, request: int, value: int = 0) -> int:
    result: int = _ioctl_int(fd, request, value)
    if result < 0:
        raise KvmIoctlError(_name(request), ctypes.get_errno())
    return result


def open_kvm(path: str = "/dev/kvm") -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KvmUnavailable(f"{path} does not exist (no KVM on this machine)") from None
    except PermissionError:
        raise KvmUnavailable(f"{path}: permission denied (run as root or join the kvm group)") from None
    except OSError as err:
        raise KvmUnavailable(f"{path}: {err.strerror}") from None
    try:
        version = ioctl_int(fd, s.KVM_GET_API_VERSION)
    except KvmIoctlError as err:
        os.close(fd)
        raise KvmUnavailable(f"{path}: {err}") from None
    if version != s.KVM_API_VERSION:
        os.close(fd)
        raise KvmUnavailable(f"{path}: KVM API version {version}, expected {s.KVM_API_VERSION}")
    return fd


def check_extension(fd: int, cap: int) -> int:
    return ioctl_int(fd, s.KVM_CHECK_EXTENSION, cap)


def supported_cpuid_with_x2apic(kvm_fd: int) -> s.KvmCpuid2:
    """KVM_GET_SUPPORTED_CPUID with CPUID.1:ECX[21] (x2APIC) set: without it EXTD is a reserved
    APIC base bit, even for host writes (docs/routing.md#mode-from-the-apic-base, docs/routing.md#the-projects-host)."""
    cpuid = s.KvmCpuid2()
    cpuid.nent = s.MAX_CPUID_ENTRIES
    ioctl_ptr(kvm_fd, s.KVM_GET_SUPPORTED_CPUID, cpuid)
    for i in range(cpuid.nent):
        if cpuid.entries[i].function == 1:
            cpuid.entries[i].ecx |= 1 << 21
    return cpuid


def signal_msi(vm_fd: int, msi: s.KvmMsi) -> int | None:
    """KVM_SIGNAL_MSI's value: the count, 0, -1 for EPERM (the slow path matched nobody,
    docs/routing.md#kvm-msi-and-ioapic-decoding), or None for EINVAL."""
    result, err = ioctl_raw(vm_fd, s.KVM_SIGNAL_MSI, msi)
    if result >= 0:
        return result
    if err == errno_mod.EPERM:
        return -1
    if err == errno_mod.EINVAL:
        return None
    raise KvmIoctlError("KVM_SIGNAL_MSI", err)
