from __future__ import annotations

import io
import shutil
import stat
import subprocess
from pathlib import Path

from apicmap.kernels.initramfs import (
    MARK_AGENT_START,
    AgentCommand,
    Channel,
    CpioEntry,
    build_initramfs,
    char_device,
    directory,
    find_busybox,
    init_script,
    read_newc,
    regular,
    symlink,
    write_newc,
)
from tests.helpers import skip_unless_ci

ENTRIES = [
    directory("bin"),
    regular("bin/tool", b"#!/bin/sh\necho hi\n", executable=True),
    regular("odd", b"x" * 5),  # data not a multiple of 4
    symlink("bin/sh", "busybox"),
    directory("dev"),
    char_device("dev/console", 5, 1),
    regular("empty", b""),
]


def _archive(entries: list[CpioEntry]) -> bytes:
    buffer = io.BytesIO()
    write_newc(buffer, entries)
    return buffer.getvalue()


def test_round_trip_in_python() -> None:
    assert read_newc(_archive(ENTRIES)) == ENTRIES


def test_gnu_cpio_reads_it(tmp_path: Path) -> None:
    if shutil.which("cpio") is None:
        skip_unless_ci("GNU cpio is not installed (Debian package cpio)")
    archive = _archive(ENTRIES)
    listing = subprocess.run(["cpio", "-itv", "--quiet"], input=archive, capture_output=True, check=True).stdout
    lines = listing.decode().splitlines()
    assert [line.split()[-1] if "->" not in line else line.split()[-3] for line in lines] == [e.name for e in ENTRIES]
    assert lines[5].startswith("crw-------") and "5," in lines[5]
    out = tmp_path / "out"
    out.mkdir()
    # Extracting device nodes needs root; leave them out.
    subprocess.run(["cpio", "-id", "--quiet", "--no-absolute-filenames", "bin/*", "odd", "empty"], input=archive,
                   cwd=out, check=True, capture_output=True)
    assert (out / "bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (out / "bin/tool").stat().st_mode & 0o777 == 0o755
    assert (out / "odd").read_bytes() == b"xxxxx" and (out / "empty").read_bytes() == b""
    assert (out / "bin/sh").is_symlink() and str((out / "bin/sh").readlink()) == "busybox"


def test_init_script_loads_modules_in_order_and_runs_the_agent() -> None:
    agent = AgentCommand(python="/opt/py dir/python", pythonpath="/src", channel=Channel.SERIAL)
    script = init_script(["irqbypass", "kvm", "kvm_amd"], agent)
    assert script.startswith("#!/bin/busybox sh\n")
    inserted = [line.split()[1] for line in script.splitlines() if line.startswith("insmod ")]
    assert inserted == ["/modules/irqbypass.ko", "/modules/kvm.ko", "/modules/kvm_amd.ko"]
    chroot = next(line for line in script.splitlines() if line.startswith("chroot /host"))
    assert "'/opt/py dir/python' -S -m apicmap.kernels.agent --channel serial" in chroot
    assert "PYTHONPATH=/src" in chroot
    assert script.index(MARK_AGENT_START) < script.index("chroot /host")
    # busybox sh must accept it
    subprocess.run(["sh", "-n"], input=script.encode(), check=True)


def test_build_initramfs(tmp_path: Path) -> None:
    module = tmp_path / "kvm.ko"
    module.write_bytes(b"\x7fELF-module")
    agent = AgentCommand(python="/usr/bin/python3", pythonpath="/src", channel=Channel.VIRTIO_SERIAL)
    path = build_initramfs(tmp_path / "initrd", module_files={"kvm": module}, load_order=["kvm"], agent=agent)
    entries = {e.name: e for e in read_newc(path.read_bytes())}
    assert entries["modules/kvm.ko"].data == b"\x7fELF-module"
    assert entries["bin/busybox"].data == find_busybox().read_bytes()
    assert stat.S_ISCHR(entries["dev/console"].mode) and entries["dev/console"].rdev_major == 5
    assert entries["init"].mode & 0o111 and b"--channel virtio" in entries["init"].data
    assert all(stat.S_ISDIR(entries[d].mode) for d in ("proc", "sys", "dev", "host", "tmp"))
