"""Boot a Linux guest under QEMU (TCG) and capture its interrupt-routing view from /proc.

Used by the slow live test and, run as a script, to (re)write the fixture in
``tests/importers/data/linux-guest-6.1/``::

    python tests/importers/guest_capture.py --kernel vmlinuz --out tests/importers/data/linux-guest-6.1

The initramfs is built here (a newc cpio of busybox-static and an ``/init`` script) so that no
root file system is needed: ``/init`` prints each file between marker lines on the serial
console, then powers off.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BUSYBOX = "/bin/busybox"
MARK = "@@APICMAP@@"

INIT_SCRIPT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
dmesg -n 1
emit() {{ echo "{MARK} BEGIN $1"; cat "$2"; echo "{MARK} END $1"; }}
emit cpuinfo /proc/cpuinfo
dmesg > /tmp/dmesg
emit dmesg /tmp/dmesg
emit interrupts /proc/interrupts
for d in /proc/irq/*/; do
  n=$(basename "$d")
  [ -r "$d/effective_affinity_list" ] && emit "irq/$n/effective_affinity_list" "$d/effective_affinity_list"
  [ -r "$d/smp_affinity_list" ] && emit "irq/$n/smp_affinity_list" "$d/smp_affinity_list"
done
echo "{MARK} DONE"
poweroff -f
"""


def _newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A newc-format cpio archive (the format the kernel's initramfs unpacker reads)."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        encoded = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
        out += b"070701" + b"".join(f"{f:08X}".encode() for f in fields) + encoded
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def build_initramfs(path: Path, busybox: str = BUSYBOX) -> None:
    entries = [(d, 0o040755, b"") for d in ("bin", "proc", "sys", "tmp", "dev")]
    entries.append(("bin/busybox", 0o100755, Path(busybox).read_bytes()))
    entries.append(("init", 0o100755, INIT_SCRIPT.encode()))
    path.write_bytes(gzip.compress(_newc(entries)))


def boot_and_capture(kernel: Path, *, smp: int = 4, timeout: float = 540.0) -> tuple[dict[str, str], str]:
    """Boot ``kernel`` with the capture initramfs; return ({name: text}, the command line used)."""
    with tempfile.TemporaryDirectory() as tmp:
        initrd = Path(tmp) / "initrd.gz"
        build_initramfs(initrd)
        cmd = ["qemu-system-x86_64", "-accel", "tcg,thread=single", "-cpu", "max", "-smp", str(smp),
               "-m", "1024", "-kernel", str(kernel), "-initrd", str(initrd), "-append",
               "console=ttyS0 panic=-1", "-nographic", "-no-reboot"]
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    text = done.stdout.decode("utf-8", "replace").replace("\r\n", "\n")
    if f"{MARK} DONE" not in text:
        raise RuntimeError(f"the guest did not finish its capture (exit {done.returncode}): {text[-2000:]}")
    files: dict[str, str] = {}
    for m in re.finditer(rf"^{MARK} BEGIN (\S+)\n(.*?)^{MARK} END \1$", text, re.M | re.S):
        files[m.group(1)] = m.group(2)
    display = " ".join(a if a not in (str(kernel),) else "vmlinuz" for a in cmd)
    return files, display.replace(str(initrd), "initrd.gz")


def write_capture(files: dict[str, str], out: Path) -> None:
    """The guest's files in the layout the ``linux-guest`` importer reads (a /proc-like tree)."""
    for name, text in files.items():
        target = out / ("proc/" + name if name != "dmesg" else "dmesg")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def find_kernel() -> Path | None:
    """A Debian kernel image: $APICMAP_GUEST_KERNEL, or one from the installed package set."""
    env = os.environ.get("APICMAP_GUEST_KERNEL")
    if env and Path(env).is_file():
        return Path(env)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smp", type=int, default=4)
    args = parser.parse_args(argv)
    files, cmd = boot_and_capture(args.kernel, smp=args.smp)
    if args.out.exists():
        shutil.rmtree(args.out / "proc", ignore_errors=True)
    write_capture(files, args.out)
    print(cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
