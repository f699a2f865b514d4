"""The guest agent: ``python -m apicmap.kernels.agent --channel virtio|serial``.

Runs inside the guest (started by the initramfs' /init, in a chroot of the host's root) and
answers protocol requests (``protocol.py``) with the guest kernel's real KVM through the local
``kvm`` engine. It stays up for the whole session: one boot answers a whole command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apicmap.domain.engine import Engine, PreparedVm
from apicmap.engines import make_engine
from apicmap.errors import ApicmapError
from apicmap.kernels.protocol import LineBuffer, encode_line
from apicmap.kernels.wire import decode_injection, decode_vm, encode_error, encode_outcome

VIRTIO_PORT_NAME = "apicmap"
SERIAL_DEVICE = "/dev/ttyS1"


class Agent:
    """Dispatches requests. Holds the kvm engine (made on first use) and the prepared VMs by handle."""

    def __init__(self, engine_factory: Callable[[], Engine] = lambda: make_engine("kvm")) -> None:
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._prepared: dict[int, PreparedVm] = {}
        self._next_handle = 1
        self.done = False

    def _kvm(self) -> Engine:
        if self._engine is None:
            self._engine = self._engine_factory()
        return self._engine

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        request_id = request.get("id")
        try:
            result = self._dispatch(request)
        except Exception as err:  # every failure goes back to the host, typed
            if not isinstance(err, ApicmapError):  # not an answer the kvm engine means to give: keep the trace
                traceback.print_exc(file=sys.stderr)
            return {"id": request_id, "ok": False, "error": encode_error(err)}
        return {"id": request_id, "ok": True, "result": result}

    def _dispatch(self, request: dict[str, Any]) -> Any:
        op = request.get("op")
        if op == "hello":
            return hello()
        if op == "prepare":
            prepared = self._kvm().prepare(decode_vm(request["vm"]))
            handle = self._next_handle
            self._next_handle += 1
            self._prepared[handle] = prepared
            return {"handle": handle}
        if op == "deliver":
            prepared = self._lookup(request["handle"])
            explain = bool(request.get("explain", False))
            return {"outcomes": [encode_outcome(prepared.deliver(decode_injection(i), explain=explain))
                                 for i in request["injections"]]}
        if op == "close":
            self._prepared.pop(int(request["handle"]), None)
            return {}
        if op == "shutdown":
            self.close_all()
            self.done = True
            return {}
        raise ValueError(f"unknown op {op!r}")

    def _lookup(self, handle: object) -> PreparedVm:
        if not isinstance(handle, int) or handle not in self._prepared:
            raise KeyError(f"no prepared VM {handle!r} (closed, or from another session)")
        return self._prepared[handle]

    def close_all(self) -> None:
        for prepared in self._prepared.values():
            prepared.close()
        self._prepared.clear()


def hello() -> dict[str, Any]:
    """Who this guest is: ``uname -r``, vendor module, KVM API version and the kvm engine's host report."""
    from apicmap.kvm.host import host_report, kvm_available, vendor_module

    usable, why = kvm_available()
    report = host_report()
    return {"release": os.uname().release, "vendor_module": vendor_module(), "kvm_available": usable,
            "why_not": why or None, "api_version": report.get("api_version"), "host_report": report,
            "python": sys.version.split()[0]}


def serve(read_fd: int, write_fd: int, agent: Agent | None = None, *, eof_is_end: bool = True) -> None:
    """Answer requests from ``read_fd`` on ``write_fd`` until ``shutdown`` (or end of input).

    A virtio-serial port reads as end-of-file while no host is connected (``port_fops_read`` in
    drivers/char/virtio_console.c), so the guest waits instead (``eof_is_end=False``).
    """
    agent = agent or Agent()
    lines = LineBuffer()
    _announce(write_fd)
    try:
        while not agent.done:
            data = os.read(read_fd, 1 << 16)
            if not data:
                if eof_is_end:
                    return
                time.sleep(0.05)
                continue
            for line in lines.feed(data):
                try:
                    request = json.loads(line)
                except ValueError as err:
                    reply = {"id": None, "ok": False, "error": encode_error(err)}
                else:
                    reply = agent.handle(request if isinstance(request, dict) else {"op": None})
                _write_all(write_fd, encode_line(reply))
    finally:
        agent.close_all()


def _announce(fd: int, patience: float = 30.0) -> None:
    """Say ``ready``. A virtio-serial write fails while no host is connected, so retry for a while."""
    deadline = time.monotonic() + patience
    while True:
        try:
            _write_all(fd, encode_line({"ready": True, "pid": os.getpid()}))
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def find_virtio_port(name: str = VIRTIO_PORT_NAME, timeout: float = 20.0) -> Path:
    """The /dev node of the virtio-serial port named ``name``: the port's name (QEMU's ``virtserialport,name=``)
    is in /sys/class/virtio-ports/<port>/name (``show_port_name`` in drivers/char/virtio_console.c)."""
    deadline = time.monotonic() + timeout
    while True:
        for entry in sorted(Path("/sys/class/virtio-ports").glob("*")):
            try:
                if (entry / "name").read_text().strip() == name:
                    device = Path("/dev") / entry.name
                    if device.exists():
                        return device
            except OSError:
                continue
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"no virtio-serial port named {name!r} in /sys/class/virtio-ports")
        time.sleep(0.1)


def open_channel(kind: str) -> int:
    if kind == "virtio":
        return os.open(find_virtio_port(), os.O_RDWR)
    fd = os.open(SERIAL_DEVICE, os.O_RDWR | os.O_NOCTTY)
    import termios
    import tty

    tty.setraw(fd)  # no echo, no line discipline: the bytes are the protocol
    termios.tcflush(fd, termios.TCIOFLUSH)  # whatever arrived (and was echoed) before raw mode
    return fd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apicmap.kernels.agent")
    parser.add_argument("--channel", choices=("virtio", "serial"), default="virtio")
    args = parser.parse_args(argv)
    fd = open_channel(args.channel)
    print(f"apicmap agent: serving on {args.channel}", file=sys.stderr, flush=True)
    serve(fd, fd, eof_is_end=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
