"""Errors of the real-kernel feature. Each is one line; those about a guest name its console log.

The CLI prints ``str(err)`` and exits with status 2 for every ``ApicmapError``.
"""

from __future__ import annotations

from pathlib import Path

from apicmap.errors import ApicmapError


class GuestError(ApicmapError):
    """Base of the errors a guest kernel run can end with. ``log_path`` is its console log, if one exists."""

    def __init__(self, problem: str, log_path: Path | None = None) -> None:
        self.problem = problem
        self.log_path = log_path
        text = problem if log_path is None else f"{problem} (console log: {log_path})"
        super().__init__(text)


class QemuMissing(GuestError):
    """qemu-system-x86_64 is not installed (Debian: ``apt-get install qemu-system-x86``)."""


class KernelImageError(GuestError):
    """The kernel image is missing or is not an x86 bzImage."""


class KernelFetchError(GuestError):
    """``apt-get download`` or unpacking the package failed."""


class GuestKvmMissing(GuestError):
    """The guest kernel booted, but it has no usable /dev/kvm (KVM not built in, modules missing or failing)."""


class GuestBootTimeout(GuestError):
    """The guest agent did not answer within the boot timeout."""


class GuestPanic(GuestError):
    """The guest kernel panicked."""


class GuestBootFailed(GuestError):
    """QEMU exited, or the guest's /init gave up, before the agent answered."""


class GuestChannelError(GuestError):
    """The channel to the agent broke or carried something that is not the protocol."""


class RemoteError(ApicmapError):
    """The agent raised an exception of a type the host does not reconstruct; the message keeps its type name."""
