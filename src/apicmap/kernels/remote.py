"""A real older kernel's KVM as an engine: boot it once, then ask its agent.

``open_session(spec)`` fetches the kernel (``fetch.py``), writes an initramfs (``initramfs.py``),
boots it under QEMU (``launcher.py``) and waits for the agent's ``hello``. ``session.engine()``
is a ``RemoteKvmEngine`` with the interface of the local engines (``name = "kvm"``,
``prepare(vm)`` then ``deliver``/``close``) plus ``deliver_many``, which answers a batch of
injections in one round trip.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import select
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import apicmap
from apicmap.domain.engine import Closing, PreparedBase
from apicmap.domain.message import Injection
from apicmap.domain.outcome import Outcome
from apicmap.domain.vm import VmState
from apicmap.kernels.cache import GuestKernel, cache_root
from apicmap.kernels.errors import GuestBootTimeout, GuestChannelError, GuestError, GuestKvmMissing
from apicmap.kernels.fetch import fetch
from apicmap.kernels.initramfs import MARK_NO_KVM, AgentCommand, Channel, build_initramfs
from apicmap.kernels.launcher import (
    Acceleration,
    AccelerationChoice,
    GuestProcess,
    QemuConfig,
    choose_acceleration,
    find_qemu,
    kernel_command_line,
    qemu_command,
)
from apicmap.kernels.protocol import LineBuffer, encode_line
from apicmap.kernels.source import KernelSpec, parse_spec
from apicmap.kernels.wire import decode_error, decode_outcome, encode_injection, encode_vm

DEFAULT_BOOT_TIMEOUT = 300.0  # TCG boots in 15-30 s here; the first Python start over 9p adds some more
DEFAULT_REQUEST_TIMEOUT = 600.0
BATCH_SIZE = 2048  # injections per deliver request: bounds a line's size, not the rate
KEEP_LOGS = 20
_serial = itertools.count(1)  # log names stay unique for sessions started within one second


def project_source_path() -> str:
    """The directory that holds the ``apicmap`` package (the same path inside the guest's chroot)."""
    return str(Path(apicmap.__file__).resolve().parent.parent)


def default_log_dir() -> Path:
    return cache_root() / "logs"


def _prune_logs(directory: Path) -> None:
    logs = sorted(directory.glob("*.log"), key=lambda p: p.stat().st_mtime)
    for old in logs[:-KEEP_LOGS]:
        old.unlink(missing_ok=True)


class GuestSession:
    """One booted guest kernel and the channel to its agent. Close it (or use ``with``) to power it off.

    ``kernel_args`` are appended to the kernel command line (later parameters override earlier ones).
    """

    def __init__(self, kernel: GuestKernel, *, log_dir: Path | None = None, boot_timeout: float = DEFAULT_BOOT_TIMEOUT,
                 acceleration: Acceleration | None = None, memory_mb: int = 1024, cpus: int = 1,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT, kernel_args: str = "") -> None:
        self.kernel = kernel
        self.request_timeout = request_timeout
        self.choice: AccelerationChoice = choose_acceleration(acceleration)
        qemu = find_qemu()
        logs = log_dir if log_dir is not None else default_log_dir()
        logs.mkdir(parents=True, exist_ok=True)
        _prune_logs(logs)
        self.log_path = logs / f"{kernel.release}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{next(_serial)}.log"
        self._workdir = Path(tempfile.mkdtemp(prefix="apicmap-guest-"))  # short: a socket path has 108 bytes
        self._lock = threading.Lock()
        self._next_id = 0
        self._socket: socket.socket | None = None
        self._lines = LineBuffer()
        self._ready: list[bytes] = []
        self._process: GuestProcess | None = None
        self.closed = False
        try:
            channel = Channel.VIRTIO_SERIAL if kernel.virtio_console else Channel.SERIAL
            self.channel = channel
            agent = AgentCommand(python=sys.executable, pythonpath=project_source_path(), channel=channel)
            initrd = build_initramfs(self._workdir / "initrd", module_files=dict(kernel.module_files),
                                     load_order=kernel.modules_for(self.choice.guest_vendor), agent=agent)
            append = f"{kernel_command_line(channel)} {kernel_args}".strip()
            config = QemuConfig(image=kernel.image, initrd=initrd, append=append,
                                socket_path=self._workdir / "agent.sock", channel=channel,
                                acceleration=self.choice.acceleration, memory_mb=memory_mb, cpus=cpus)
            self._process = GuestProcess(qemu_command(qemu, config), self.log_path)
            self._connect(config.socket_path, boot_timeout)
            boot_deadline = self._process.started + boot_timeout
            self._wait_ready(boot_deadline, boot_timeout)
            self.ready_seconds = time.monotonic() - self._process.started
            self.hello: dict[str, Any] = self._request({"op": "hello"}, max(boot_deadline - time.monotonic(), 5.0),
                                                       booting=True)
            self.boot_seconds = time.monotonic() - self._process.started
            if not self.hello.get("kvm_available"):
                why = self.hello.get("why_not") or "unknown"
                failed = re.findall(r"insmod (\S+) failed", self._process.log_text())
                cause = (f"loading {', '.join(failed)} failed" if failed
                         else "KVM is neither built in nor among the modules given")
                raise GuestKvmMissing(f"{kernel.release}: the guest kernel has no usable /dev/kvm ({why}); {cause}",
                                      self.log_path)
        except BaseException:
            self._teardown(polite=False)
            raise

    # --- public ---------------------------------------------------------------------------------

    @property
    def release(self) -> str:
        """The guest's ``uname -r``."""
        return str(self.hello.get("release", self.kernel.release))

    @property
    def vendor(self) -> str | None:
        """The guest's KVM vendor module (kvm_amd, kvm_intel), None when KVM is built in without one loaded."""
        vendor = self.hello.get("vendor_module")
        return None if vendor is None else str(vendor)

    def engine(self) -> RemoteKvmEngine:
        return RemoteKvmEngine(self)

    def close(self) -> None:
        """Shut the agent down, power the guest off and remove the session's scratch files (the log stays)."""
        self._teardown(polite=True)

    def __del__(self) -> None:
        # A session dropped without close(): stop its QEMU now rather than at interpreter exit.
        if not getattr(self, "closed", True):
            self._teardown(polite=False)

    def __enter__(self) -> GuestSession:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._teardown(polite=kind is None)

    # --- channel --------------------------------------------------------------------------------

    def _connect(self, path: Path, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + min(timeout, 30.0)
        while True:
            if not self._process.alive():
                raise self._process.failure(self.kernel.release)
            if path.exists():
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(str(path))
                except OSError:
                    sock.close()
                else:
                    self._socket = sock
                    return
            if time.monotonic() > deadline:
                raise self._process.failure(f"{self.kernel.release}: QEMU did not open the agent socket {path}")
            time.sleep(0.05)

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        """Wait for the agent's ``ready`` line. Anything before it is skipped: on a serial channel the tty
        may echo bytes that arrived before the agent switched it to raw mode."""
        assert self._socket is not None and self._process is not None
        while True:
            while self._ready:
                try:
                    line = json.loads(self._ready.pop(0))
                except ValueError:
                    continue
                if isinstance(line, dict) and line.get("ready"):
                    return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestBootTimeout(f"{self.kernel.release}: the guest agent did not start within "
                                       f"{timeout:.0f} s of boot{self._no_kvm_hint()}", self.log_path)
            readable, _, _ = select.select([self._socket], [], [], min(0.5, remaining))
            if not readable:
                if not self._process.alive():
                    raise self._process.failure(self.kernel.release)
                continue
            data = self._socket.recv(1 << 20)
            if not data:
                raise self._lost("the channel closed before the agent started")
            self._ready.extend(self._lines.feed(data))

    def request(self, message: dict[str, Any], timeout: float | None = None) -> Any:
        """Send one request, return its result or raise the error it came back with."""
        return self._request(message, self.request_timeout if timeout is None else timeout)

    def _request(self, message: dict[str, Any], timeout: float, *, booting: bool = False) -> Any:
        with self._lock:
            if self.closed or self._socket is None or self._process is None:
                raise GuestChannelError(f"{self.kernel.release}: the guest session is closed", self.log_path)
            self._next_id += 1
            request_id = self._next_id
            try:
                self._socket.sendall(encode_line({"id": request_id, **message}))
            except OSError as err:
                raise self._lost(f"sending {message.get('op')}: {err}", booting=booting) from None
            reply = self._read_reply(request_id, timeout, booting, str(message.get("op")))
        if reply.get("ok"):
            return reply.get("result")
        error = reply.get("error")
        raise decode_error(error if isinstance(error, dict) else {"type": "?", "message": str(error)})

    def _read_reply(self, request_id: int, timeout: float, booting: bool, op: str) -> dict[str, Any]:
        assert self._socket is not None and self._process is not None
        deadline = time.monotonic() + timeout
        while True:
            while self._ready:
                line = self._ready.pop(0)
                try:
                    reply = json.loads(line)
                except ValueError:
                    raise GuestChannelError(f"{self.kernel.release}: the agent sent a line that is not JSON: "
                                            f"{line[:120]!r}", self.log_path) from None
                if isinstance(reply, dict) and reply.get("id") == request_id:
                    return reply
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if booting:
                    raise GuestBootTimeout(f"{self.kernel.release}: the guest agent did not answer within "
                                           f"{timeout:.0f} s of boot{self._no_kvm_hint()}", self.log_path)
                raise GuestChannelError(f"{self.kernel.release}: no answer to {op} within {timeout:.0f} s",
                                        self.log_path)
            readable, _, _ = select.select([self._socket], [], [], min(0.5, remaining))
            if not readable:
                if not self._process.alive():
                    raise self._process.failure(self.kernel.release, booting=booting)
                continue
            data = self._socket.recv(1 << 20)
            if not data:
                raise self._lost(f"the channel closed while waiting for {op}", booting=booting)
            self._ready.extend(self._lines.feed(data))

    def _no_kvm_hint(self) -> str:
        assert self._process is not None
        return " (its /init found no /dev/kvm)" if MARK_NO_KVM in self._process.log_text() else ""

    def _lost(self, what: str, *, booting: bool = True) -> GuestError:
        assert self._process is not None
        if self._process.wait(2.0) is not None:
            return self._process.failure(self.kernel.release, booting=booting)
        return GuestChannelError(f"{self.kernel.release}: {what}", self.log_path)

    def _teardown(self, *, polite: bool) -> None:
        if self.closed:
            return
        try:
            if polite and self._socket is not None and self._process is not None and self._process.alive():
                with contextlib.suppress(GuestError, OSError):
                    self._request({"op": "shutdown"}, 10.0)
        finally:
            self.closed = True
            if self._socket is not None:
                self._socket.close()
            if self._process is not None:
                if polite:
                    self._process.stop(grace=10.0)
                else:
                    self._process.kill()
            shutil.rmtree(self._workdir, ignore_errors=True)


def open_session(spec: KernelSpec | str, *, modules: str | Path | None = None, log_dir: Path | None = None,
                 boot_timeout: float = DEFAULT_BOOT_TIMEOUT, acceleration: Acceleration | None = None,
                 memory_mb: int = 1024, cpus: int = 1, cache: Path | None = None, kernel_args: str = "",
                 progress: Callable[[str], None] | None = None) -> GuestSession:
    """Fetch (or find in the cache) and boot ``spec``; returns once the guest's agent has said hello.

    ``cache`` overrides the cache root (``cache_root()``); console logs go to ``log_dir``, else ``<cache>/logs``.
    """
    parsed = parse_spec(spec, modules=modules) if isinstance(spec, str) else spec
    kernel = fetch(parsed, root=cache, progress=progress or (lambda _: None))
    if log_dir is None and cache is not None:
        log_dir = cache / "logs"
    return GuestSession(kernel, log_dir=log_dir, boot_timeout=boot_timeout, acceleration=acceleration,
                        memory_mb=memory_mb, cpus=cpus, kernel_args=kernel_args)


class RemotePreparedVm(PreparedBase):
    """A VM prepared by the guest's kvm engine, kept in the guest until ``close``."""

    def __init__(self, session: GuestSession, handle: int, vm: VmState) -> None:
        self._session = session
        self._handle = handle
        self.vm = vm
        self.closed = False

    def deliver(self, injection: Injection, *, explain: bool = False) -> Outcome:
        return self.deliver_many((injection,), explain=explain)[0]

    def deliver_many(self, injections: Sequence[Injection], *, explain: bool = False) -> list[Outcome]:
        """Every injection against the state as prepared, in order; one round trip per ``BATCH_SIZE``.

        Like a loop of ``deliver``: the first injection the guest's engine refuses (``NotExpressible``...)
        raises, and the outcomes of the batch are not returned.
        """
        outcomes: list[Outcome] = []
        for start in range(0, len(injections), BATCH_SIZE):
            batch = [encode_injection(i) for i in injections[start : start + BATCH_SIZE]]
            result = self._session.request({"op": "deliver", "handle": self._handle, "injections": batch,
                                            "explain": explain})
            outcomes.extend(decode_outcome(o) for o in result["outcomes"])
        return outcomes

    def close(self) -> None:
        if self.closed or self._session.closed:
            self.closed = True
            return
        self.closed = True
        self._session.request({"op": "close", "handle": self._handle})


class RemoteKvmEngine(Closing):
    """The guest kernel's KVM, with the local engines' interface (``apicmap.Engine``)."""

    name = "kvm"

    def __init__(self, session: GuestSession) -> None:
        self.session = session

    @property
    def release(self) -> str:
        return self.session.release

    @property
    def host_report(self) -> dict[str, object]:
        """The guest kernel's own ``apicmap.kvm.host.host_report()``."""
        report = self.session.hello.get("host_report")
        return dict(report) if isinstance(report, dict) else {}

    @property
    def upstream_release(self) -> str:
        """The guest kernel's upstream x.y.z as its /proc/version says (``uname -r`` of a Debian
        kernel, 6.1.0-56-amd64, does not say it)."""
        report = self.session.hello.get("host_report")
        found = report.get("upstream_release") if isinstance(report, dict) else None
        return str(found) if found else self.session.release

    def prepare(self, vm: VmState) -> RemotePreparedVm:
        result = self.session.request({"op": "prepare", "vm": encode_vm(vm)})
        return RemotePreparedVm(self.session, int(result["handle"]), vm)
