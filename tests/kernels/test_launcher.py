from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from apicmap.kernels import GuestBootFailed
from apicmap.kernels.initramfs import HOST_SHARE_TAG, Channel
from apicmap.kernels.launcher import (
    Acceleration,
    GuestProcess,
    QemuConfig,
    choose_acceleration,
    kernel_command_line,
    qemu_command,
)


def _config(channel: Channel, acceleration: Acceleration) -> QemuConfig:
    return QemuConfig(image=Path("/k/vmlinuz"), initrd=Path("/k/initrd"), append=kernel_command_line(channel),
                      socket_path=Path("/tmp/s.sock"), channel=channel, acceleration=acceleration)


def _option(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == flag]


def test_tcg_command_is_single_threaded_with_cpu_max() -> None:
    command = qemu_command("qemu", _config(Channel.VIRTIO_SERIAL, Acceleration.TCG))
    assert _option(command, "-accel") == ["tcg,thread=single"] and _option(command, "-cpu") == ["max"]
    assert "-no-reboot" in command and _option(command, "-kernel") == ["/k/vmlinuz"]
    assert "panic=-1" in _option(command, "-append")[0]
    assert any(f"mount_tag={HOST_SHARE_TAG}" in v and "readonly=on" in v for v in _option(command, "-virtfs"))
    assert "virtserialport,chardev=apicmap,name=apicmap" in _option(command, "-device")
    assert _option(command, "-serial") == ["stdio"]


def test_kvm_command_and_serial_channel() -> None:
    command = qemu_command("qemu", _config(Channel.SERIAL, Acceleration.KVM))
    assert _option(command, "-accel") == ["kvm"] and _option(command, "-cpu") == ["host"]
    assert _option(command, "-serial") == ["stdio", "chardev:apicmap"]
    assert not any("virtserialport" in d for d in _option(command, "-device"))


def test_tcg_on_request_uses_kvm_amd() -> None:
    choice = choose_acceleration(Acceleration.TCG)
    assert choice.acceleration is Acceleration.TCG and choice.guest_vendor == "kvm_amd"


def test_guest_process_dies_with_a_crashed_parent(tmp_path: Path) -> None:
    """The parent starts a long sleep as its 'QEMU' and then dies without cleanup (os._exit)."""
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from apicmap.kernels.launcher import GuestProcess
        guest = GuestProcess(["sleep", "300"], Path({str(tmp_path / 'log')!r}))
        print(guest.pid, flush=True)
        os._exit(1)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=30)
    child = int(done.stdout.split()[0])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _running(child):
        time.sleep(0.05)
    assert not _running(child)
    assert (tmp_path / "log").read_text().startswith("# sleep 300")


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_stop_and_failure_report(tmp_path: Path) -> None:
    log = tmp_path / "log"
    guest = GuestProcess(["sh", "-c", "echo 'Kernel panic - not syncing: VFS: Unable to mount root fs'; exit 0"], log)
    assert guest.wait(10) == 0
    failure = guest.failure("6.1.0-47-amd64")
    assert type(failure).__name__ == "GuestPanic" and str(log) in str(failure) and "VFS" in str(failure)
    sleeper = GuestProcess(["sleep", "300"], tmp_path / "log2")
    sleeper.stop(grace=0.1)
    assert sleeper.exit_code() is not None


@pytest.mark.parametrize(("output", "expected"), [
    ("apicmap-init: cannot mount the host share\n", "could not mount"),
    ("qemu-system-x86_64: -kernel x: error loading\n", "error loading"),
])
def test_failures_are_told_apart(tmp_path: Path, output: str, expected: str) -> None:
    guest = GuestProcess(["printf", output], tmp_path / "log")
    guest.wait(10)
    failure = guest.failure("k")
    assert type(failure).__name__ == "GuestBootFailed" and expected in str(failure) and "console log" in str(failure)


@pytest.mark.parametrize(("flags", "nested", "requested", "expected"), [
    ({"vmx"}, True, None, (Acceleration.KVM, "kvm_intel")),
    ({"svm"}, True, None, (Acceleration.KVM, "kvm_amd")),
    ({"vmx"}, False, None, (Acceleration.TCG, "kvm_amd")),  # no nesting: emulate SVM instead
    ({"vmx"}, True, Acceleration.TCG, (Acceleration.TCG, "kvm_amd")),
    (set(), False, None, (Acceleration.TCG, "kvm_amd")),  # this machine: kvm_pvm, neither VMX nor SVM
])
def test_choose_acceleration(monkeypatch: pytest.MonkeyPatch, flags: set[str], nested: bool,
                             requested: Acceleration | None, expected: tuple[Acceleration, str]) -> None:
    import apicmap.kernels.launcher as launcher

    monkeypatch.setattr(launcher, "_cpu_flags", lambda: flags)
    monkeypatch.setattr(launcher, "_nested_enabled", lambda module: nested)
    monkeypatch.setattr(os, "access", lambda path, mode: True)
    choice = choose_acceleration(requested)
    assert (choice.acceleration, choice.guest_vendor) == expected


def test_kvm_requested_without_vmx_or_svm(monkeypatch: pytest.MonkeyPatch) -> None:
    import apicmap.kernels.launcher as launcher

    monkeypatch.setattr(launcher, "_cpu_flags", lambda: {"sse2"})
    with pytest.raises(GuestBootFailed, match="neither VMX nor SVM"):
        choose_acceleration(Acceleration.KVM)
