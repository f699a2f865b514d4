"""Booting a guest kernel under QEMU, and making sure it never outlives its command.

Acceleration: where the host CPU has VMX or SVM and a /dev/kvm with nesting enabled, QEMU runs
with ``-accel kvm -cpu host`` and the guest loads the matching vendor module. Otherwise QEMU's
TCG emulates the CPU: ``-cpu max`` includes AMD SVM with nested paging (QEMU's target/i386
``svm_helper.c``), so the guest's ``kvm_amd`` works. TCG runs single-threaded: multi-threaded
TCG crashed 6.12 at boot with an int3 oops in ``__schedule`` (text patching racing translated code).

Lifetime: QEMU gets ``PR_SET_PDEATHSIG`` = SIGKILL (prctl(2)) in its ``preexec_fn``, so it dies
with the process that started it even on a crash; ``stop()`` runs from ``finally`` and ``atexit``.
It runs in its own session so a terminal's Ctrl-C reaches apicmap (which then stops it) rather
than killing QEMU under it. PDEATHSIG fires when the *thread* that forked exits: start
guests from a thread that lives as long as they do (the main thread, normally).
"""

from __future__ import annotations

import atexit
import ctypes
import enum
import functools
import os
import re
import shutil
import signal
import subprocess
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from apicmap.kernels.errors import GuestBootFailed, GuestChannelError, GuestPanic, QemuMissing
from apicmap.kernels.initramfs import HOST_SHARE_TAG, MARK, MARK_MOUNT_FAILED, Channel

QEMU_BINARY = "qemu-system-x86_64"
PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h
VIRTIO_PORT_NAME = "apicmap"


class Acceleration(enum.Enum):
    TCG = "tcg"
    KVM = "kvm"


@dataclass(frozen=True, slots=True)
class AccelerationChoice:
    acceleration: Acceleration
    guest_vendor: str  # the vendor module the guest loads: kvm_amd or kvm_intel
    reason: str


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def _nested_enabled(module: str) -> bool:
    try:
        return Path(f"/sys/module/{module}/parameters/nested").read_text().strip() in ("Y", "1")
    except OSError:
        return False


def choose_acceleration(requested: Acceleration | None = None) -> AccelerationChoice:
    """KVM with nesting where the host has VMX/SVM, /dev/kvm and nested=1; TCG otherwise (or when asked)."""
    flags = _cpu_flags()
    vendor = "kvm_intel" if "vmx" in flags else "kvm_amd" if "svm" in flags else None
    if requested is Acceleration.TCG or (requested is None and vendor is None):
        why = "asked for" if requested is Acceleration.TCG else "the host CPU has neither VMX nor SVM"
        return AccelerationChoice(Acceleration.TCG, "kvm_amd", f"TCG ({why}); -cpu max emulates SVM")
    if vendor is None:
        raise GuestBootFailed("KVM acceleration asked for, but the host CPU has neither VMX nor SVM")
    usable = os.access("/dev/kvm", os.R_OK | os.W_OK) and _nested_enabled(vendor)
    if not usable:
        if requested is Acceleration.KVM:
            raise GuestBootFailed(f"KVM acceleration asked for, but /dev/kvm is not usable or {vendor} has nested=0")
        return AccelerationChoice(Acceleration.TCG, "kvm_amd", f"TCG ({vendor} without nesting); -cpu max emulates SVM")
    return AccelerationChoice(Acceleration.KVM, vendor, f"KVM with nested {vendor}")


@dataclass(frozen=True, slots=True, kw_only=True)
class QemuConfig:
    image: Path
    initrd: Path
    append: str
    socket_path: Path
    channel: Channel
    acceleration: Acceleration
    memory_mb: int = 1024
    cpus: int = 1
    share_root: str = "/"


def find_qemu() -> str:
    found = shutil.which(QEMU_BINARY)
    if found is None:
        raise QemuMissing(f"{QEMU_BINARY} is not installed (Debian: apt-get install qemu-system-x86)")
    return found


def qemu_command(qemu: str, config: QemuConfig) -> list[str]:
    """The QEMU command line. Options: QEMU's "invocation" documentation (docs/system/invocation.rst)."""
    if config.acceleration is Acceleration.KVM:
        accel = ["-accel", "kvm", "-cpu", "host"]
    else:
        accel = ["-accel", "tcg,thread=single", "-cpu", "max"]
    command = [
        qemu, *accel, "-m", str(config.memory_mb), "-smp", str(config.cpus),
        "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none", "-no-reboot",
        "-kernel", str(config.image), "-initrd", str(config.initrd), "-append", config.append,
        "-serial", "stdio",  # ttyS0: the console, into the log file
        # The host's root, read-only; "remap" keeps inode numbers unique across host mounts.
        "-virtfs", f"local,path={config.share_root},mount_tag={HOST_SHARE_TAG},security_model=none,readonly=on,"
                   "multidevs=remap",
        "-chardev", f"socket,id=apicmap,path={config.socket_path},server=on,wait=off",
    ]
    if config.channel is Channel.VIRTIO_SERIAL:
        command += ["-device", "virtio-serial-pci",
                    "-device", f"virtserialport,chardev=apicmap,name={VIRTIO_PORT_NAME}"]
    else:
        command += ["-serial", "chardev:apicmap"]  # ttyS1
    return command


def kernel_command_line(channel: Channel) -> str:
    # panic=-1 reboots at once on a panic and -no-reboot turns that into QEMU exiting.
    return f"console=ttyS0 quiet panic=-1 rdinit=/init apicmap.channel={channel.value}"


def _die_with_parent(parent: int) -> None:
    """Runs in the child between fork and exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect (the race prctl(2) describes)
        os._exit(1)


_running: weakref.WeakSet[GuestProcess] = weakref.WeakSet()


def _stop_all() -> None:
    for guest in list(_running):
        guest.kill()


atexit.register(_stop_all)


class GuestProcess:
    """One QEMU process, its console log and its teardown."""

    def __init__(self, command: list[str], log_path: Path) -> None:
        self.command = command
        self.log_path = log_path
        self.started = time.monotonic()
        log = log_path.open("wb")
        try:
            log.write(("# " + " ".join(command) + "\n").encode())
            log.flush()
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             preexec_fn=functools.partial(_die_with_parent, os.getpid()),
                                             start_new_session=True)
        finally:
            log.close()
        _running.add(self)

    @property
    def pid(self) -> int:
        return self._process.pid

    def exit_code(self) -> int | None:
        return self._process.poll()

    def alive(self) -> bool:
        return self._process.poll() is None

    def wait(self, timeout: float) -> int | None:
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        _running.discard(self)

    def stop(self, grace: float = 10.0) -> None:
        """Wait up to ``grace`` seconds for a clean poweroff, then SIGTERM, then SIGKILL."""
        if self.wait(grace) is None:
            self._process.terminate()
            if self.wait(5.0) is None:
                self._process.kill()
                self._process.wait()
        _running.discard(self)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def failure(self, what: str, *, booting: bool = True) -> GuestBootFailed | GuestPanic | GuestChannelError:
        """The error that says why the guest is gone (or never answered), from its console log.

        A panic is a ``GuestPanic`` at any time; otherwise ``GuestBootFailed`` while booting and
        ``GuestChannelError`` once the agent had answered (it died, or QEMU did, mid-session).
        """
        text = self.log_text()
        panic = re.search(r"Kernel panic - not syncing:[^\n]*", text)
        if panic:
            return GuestPanic(f"{what}: the guest kernel panicked: {panic.group(0).strip()}", self.log_path)
        if MARK_MOUNT_FAILED in text:
            return GuestBootFailed(f"{what}: the guest could not mount the host's files over 9p "
                                   "(no 9p/virtio support in the kernel or its modules?)", self.log_path)
        qemu_error = re.search(rf"^{re.escape(QEMU_BINARY)}: [^\n]*", text, re.MULTILINE)
        if qemu_error:
            return GuestBootFailed(f"{what}: {qemu_error.group(0).strip()}", self.log_path)
        marks = [line.strip() for line in text.splitlines() if line.startswith(MARK)]
        code = self.exit_code()
        state = f"QEMU exited with status {code}" if code is not None else "QEMU is still running"
        last = f"; last /init message: {marks[-1]}" if marks else ""
        if booting:
            return GuestBootFailed(f"{what}: {state} before the agent answered{last}", self.log_path)
        return GuestChannelError(f"{what}: the guest went away mid-session ({state}){last}", self.log_path)
