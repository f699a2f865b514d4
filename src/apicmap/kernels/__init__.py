"""Real kernels on demand: boot a chosen Linux release under QEMU and ask its own KVM.

    from apicmap import MsiInjection, Vcpu, VmState
    from apicmap.kernels import open_session

    with open_session("debian:6.1") as guest:
        prepared = guest.engine().prepare(VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1))))
        prepared.deliver(MsiInjection(0xFEE01000, 0, 0x40)).receivers   # (1,) on 6.1

See docs/real-kernels.md.
"""

from .cache import CachedKernel, GuestKernel, KvmPackaging, cache_root, list_cached
from .errors import (
    GuestBootFailed,
    GuestBootTimeout,
    GuestChannelError,
    GuestError,
    GuestKvmMissing,
    GuestPanic,
    KernelFetchError,
    KernelImageError,
    QemuMissing,
    RemoteError,
)
from .fetch import fetch
from .launcher import Acceleration
from .remote import GuestSession, RemoteKvmEngine, RemotePreparedVm, open_session
from .source import KernelSpec, SpecKind, parse_spec

__all__ = [
    "Acceleration", "CachedKernel", "GuestBootFailed", "GuestBootTimeout", "GuestChannelError", "GuestError",
    "GuestKernel", "GuestKvmMissing", "GuestPanic", "GuestSession", "KernelFetchError", "KernelImageError",
    "KernelSpec", "KvmPackaging", "QemuMissing", "RemoteError", "RemoteKvmEngine", "RemotePreparedVm", "SpecKind",
    "cache_root", "fetch", "list_cached", "open_session", "parse_spec",
]
