"""Real kernels on demand: boot a chosen Linux release under QEMU and ask its own KVM.

    from apicmap.domain.message import MsiInjection

    from apicmap.domain.vm import Vcpu, VmState
    from apicmap.kernels import open_session

    with open_session("debian:6.1") as guest:
        prepared = guest.engine().prepare(VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1))))
        prepared.deliver(MsiInjection(0xFEE01000, 0, 0x40)).receivers   # (1,) on 6.1

See docs/real-kernels.md. Names are imported on first use (PEP 562): the guest agent
(``python -m apicmap.kernels.agent``) then loads only what it needs, which matters under an
emulated CPU where every import is slow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Imported eagerly: importing a submodule binds its name on the package, so the function ``fetch`` would
# otherwise be replaced by the module ``fetch`` whenever another module imports that submodule first.
from apicmap.kernels.fetch import fetch

if TYPE_CHECKING:
    from apicmap.kernels.cache import CachedKernel, GuestKernel, KvmPackaging, cache_root, list_cached
    from apicmap.kernels.errors import (
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
    from apicmap.kernels.launcher import Acceleration
    from apicmap.kernels.remote import GuestSession, RemoteKvmEngine, RemotePreparedVm, open_session
    from apicmap.kernels.source import KernelSpec, SpecKind, parse_spec

_WHERE = {
    "CachedKernel": "cache", "GuestKernel": "cache", "KvmPackaging": "cache", "cache_root": "cache",
    "list_cached": "cache",
    "GuestBootFailed": "errors", "GuestBootTimeout": "errors", "GuestChannelError": "errors", "GuestError": "errors",
    "GuestKvmMissing": "errors", "GuestPanic": "errors", "KernelFetchError": "errors", "KernelImageError": "errors",
    "QemuMissing": "errors", "RemoteError": "errors",
    "Acceleration": "launcher",
    "GuestSession": "remote", "RemoteKvmEngine": "remote", "RemotePreparedVm": "remote", "open_session": "remote",
    "KernelSpec": "source", "SpecKind": "source", "parse_spec": "source",
}

__all__ = [
    "Acceleration", "CachedKernel", "GuestBootFailed", "GuestBootTimeout", "GuestChannelError", "GuestError",
    "GuestKernel", "GuestKvmMissing", "GuestPanic", "GuestSession", "KernelFetchError", "KernelImageError",
    "KernelSpec", "KvmPackaging", "QemuMissing", "RemoteError", "RemoteKvmEngine", "RemotePreparedVm", "SpecKind",
    "cache_root", "fetch", "list_cached", "open_session", "parse_spec",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
