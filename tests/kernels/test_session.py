"""GuestSession's failure paths, with a stand-in for QEMU (no guest boots here)."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import pytest

from apicmap import VmState
from apicmap.kernels import GuestChannelError, GuestKernel, GuestKvmMissing, GuestSession, KvmPackaging, QemuMissing

from .test_source import _fake_bzimage


def _kernel(tmp_path: Path) -> GuestKernel:
    image = _fake_bzimage(tmp_path / "bzImage", b"6.1.0-test #1")
    return GuestKernel(release="6.1.0-test", image=image, source=str(image), module_files={},
                       load_orders={KvmPackaging.UNKNOWN.value: ()}, kvm=KvmPackaging.UNKNOWN, virtio_console=True)


def _fake_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    qemu = bin_dir / "qemu-system-x86_64"
    qemu.write_text(f"#!/bin/sh\necho $$ > {tmp_path / 'qemu.pid'}\n{body}\n")
    qemu.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "qemu.pid"


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_missing_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(QemuMissing, match="apt-get install qemu-system-x86"):
        GuestSession(_kernel(tmp_path), log_dir=tmp_path)


def test_qemu_exiting_at_once_names_its_error_and_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_qemu(tmp_path, monkeypatch, "echo 'qemu-system-x86_64: -kernel bzImage: Error loading kernel' >&2; exit 1")
    with pytest.raises(Exception) as caught:
        GuestSession(_kernel(tmp_path), log_dir=tmp_path / "logs")
    assert type(caught.value).__name__ == "GuestBootFailed"
    assert "Error loading kernel" in str(caught.value) and str(tmp_path / "logs") in str(caught.value)


def test_ctrl_c_during_boot_kills_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = _fake_qemu(tmp_path, monkeypatch, "exec sleep 300")
    scratch_before = set(Path(tempfile.gettempdir()).glob("apicmap-guest-*"))

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            GuestSession(_kernel(tmp_path), log_dir=tmp_path, boot_timeout=20)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    assert set(Path(tempfile.gettempdir()).glob("apicmap-guest-*")) <= scratch_before  # its scratch is gone


# A stand-in QEMU that plays the agent's side of the channel: says ready, answers hello with
# KVM_AVAILABLE, then, on the next request, "crashes" the way a dying agent looks on the console.
AGENT_STAND_IN = r"""
import json, os, socket, sys
path = next(a for a in sys.argv if a.startswith("socket,id=apicmap,")).split("path=")[1].split(",")[0]
server = socket.socket(socket.AF_UNIX); server.bind(path); server.listen(1)
conn, _ = server.accept(); conn.sendall(b'{"ready": true}\n'); stream = conn.makefile("rb")
request = json.loads(stream.readline())
hello = {"release": "6.1.0-test", "vendor_module": "kvm_amd", "kvm_available": os.environ["KVM_AVAILABLE"] == "1",
         "why_not": "cannot open /dev/kvm: No such file or directory", "api_version": 12, "host_report": {}}
conn.sendall(json.dumps({"id": request["id"], "ok": True, "result": hello}).encode() + b"\n")
stream.readline()
print("apicmap-init: agent exited with status 139", flush=True)
"""


def _stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kvm_available: bool) -> None:
    script = tmp_path / "agent_stand_in.py"
    script.write_text(AGENT_STAND_IN)
    monkeypatch.setenv("KVM_AVAILABLE", "1" if kvm_available else "0")
    _fake_qemu(tmp_path, monkeypatch, f'exec {sys.executable} {script} "$@"')


def test_guest_without_kvm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_in(tmp_path, monkeypatch, kvm_available=False)
    with pytest.raises(GuestKvmMissing) as caught:
        GuestSession(_kernel(tmp_path), log_dir=tmp_path / "logs", boot_timeout=20)
    assert "No such file" in str(caught.value) and str(tmp_path / "logs") in str(caught.value)


def test_agent_dying_mid_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_in(tmp_path, monkeypatch, kvm_available=True)
    with GuestSession(_kernel(tmp_path), log_dir=tmp_path / "logs", boot_timeout=20) as guest:
        assert guest.release == "6.1.0-test" and guest.vendor == "kvm_amd"
        with pytest.raises(GuestChannelError) as caught:
            guest.engine().prepare(VmState.simple(2))
    message = str(caught.value)
    assert "mid-session" in message and "status 139" in message and str(guest.log_path) in message
