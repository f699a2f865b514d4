"""Engine ``qemu``: QEMU's own (TCG) interrupt routing, observed live by a freestanding guest.

Needs ``qemu-system-x86_64`` and ``gcc`` (the guest in ``guest/`` is built on first use).
"""

from apicmap.cache import cache_root
from apicmap.qemu import build
from apicmap.qemu.build import GuestBuildError, guest_elf
from apicmap.qemu.engine import QemuEngine, QemuVm
from apicmap.qemu.run import QemuRunError, QemuUnavailable, find_qemu

__all__ = ["GuestBuildError", "QemuEngine", "QemuRunError", "QemuUnavailable", "QemuVm", "build", "cache_root",
           "find_qemu", "guest_elf"]
