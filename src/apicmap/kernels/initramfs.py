"""The guest's initramfs, written in pure Python as a "newc" cpio archive.

Format: Documentation/driver-api/early-userspace/buffer-format.rst in the kernel tree (the
"070701" header of thirteen 8-digit hex fields, name and data each padded to 4 bytes, ended by
``TRAILER!!!``). The archive holds busybox (Debian's ``busybox-static``), the modules a guest
loads and ``/init``, a busybox shell script that loads them, mounts the host's root read-only over
9p and runs the guest agent in a chroot with the host's own Python.
"""

from __future__ import annotations

import enum
import io
import shlex
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from apicmap.kernels.errors import GuestError
from apicmap.kernels.modules import read_module_bytes

NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

# Lines /init prints on the console, which the launcher reads to tell failures apart.
MARK = "apicmap-init:"
MARK_NO_KVM = f"{MARK} no /dev/kvm"
MARK_MOUNT_FAILED = f"{MARK} cannot mount the host share"
MARK_AGENT_START = f"{MARK} starting agent"
MARK_AGENT_EXIT = f"{MARK} agent exited"
HOST_SHARE_TAG = "apicmap_host"
# cache=loose lets the guest keep what it read of the host's files (Documentation/filesystems/9p.rst): the
# share is read-only and the host's Python does not change during a session, and without it every stat
# of every import is a round trip to QEMU.
SHARE_OPTIONS = "trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose"


class Channel(enum.Enum):
    """How the agent talks to the host: a virtio-serial port, or the guest's second 16550 UART."""

    VIRTIO_SERIAL = "virtio"
    SERIAL = "serial"


@dataclass(frozen=True, slots=True)
class CpioEntry:
    name: str
    mode: int  # st_mode: type and permission bits
    data: bytes = b""
    rdev_major: int = 0
    rdev_minor: int = 0


def directory(name: str) -> CpioEntry:
    return CpioEntry(name, stat.S_IFDIR | 0o755)


def regular(name: str, data: bytes, executable: bool = False) -> CpioEntry:
    return CpioEntry(name, stat.S_IFREG | (0o755 if executable else 0o644), data)


def symlink(name: str, target: str) -> CpioEntry:
    return CpioEntry(name, stat.S_IFLNK | 0o777, target.encode())


def char_device(name: str, major: int, minor: int) -> CpioEntry:
    return CpioEntry(name, stat.S_IFCHR | 0o600, b"", major, minor)


def _pad(out: BinaryIO, length: int) -> None:
    out.write(b"\0" * (-length % 4))


def write_newc(out: BinaryIO, entries: Iterable[CpioEntry], *, mtime: int = 0) -> None:
    """Write ``entries`` then the trailer. Directories must come before what they hold."""
    for inode, entry in enumerate([*entries, CpioEntry(TRAILER, 0)], start=1):
        name = entry.name.lstrip("/").encode() + b"\0"
        is_trailer = entry.name == TRAILER
        fields = (
            0 if is_trailer else inode, entry.mode, 0, 0,
            2 if stat.S_ISDIR(entry.mode) else 1,
            mtime, len(entry.data), 0, 0, entry.rdev_major, entry.rdev_minor, len(name), 0,
        )
        header = NEWC_MAGIC + b"".join(f"{value:08x}".encode() for value in fields)
        out.write(header)
        out.write(name)
        _pad(out, len(header) + len(name))
        out.write(entry.data)
        _pad(out, len(entry.data))


def read_newc(data: bytes) -> list[CpioEntry]:
    """Parse a newc archive (for tests and for checking what was written)."""
    entries: list[CpioEntry] = []
    offset = 0
    while True:
        if data[offset : offset + 6] != NEWC_MAGIC:
            raise ValueError(f"bad cpio magic at offset {offset}")
        fields = [int(data[offset + 6 + 8 * i : offset + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmajor, rminor, namesize = fields[1], fields[6], fields[9], fields[10], fields[11]
        offset += 110
        name = data[offset : offset + namesize - 1].decode()
        offset += namesize
        offset += -offset % 4
        body = data[offset : offset + size]
        offset += size
        offset += -offset % 4
        if name == TRAILER:
            return entries
        entries.append(CpioEntry(name, mode, body, rmajor, rminor))


def find_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file() and _is_static(path):
            return path
    found = shutil.which("busybox")
    if found and _is_static(Path(found)):
        return Path(found)
    raise GuestError("no statically linked busybox found (Debian: apt-get install busybox-static)")


def _is_static(path: Path) -> bool:
    """An ELF without a PT_INTERP program header runs without a dynamic loader (the initramfs has none)."""
    import struct

    with path.open("rb") as elf:
        head = elf.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        elf.seek(phoff)
        table = elf.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))  # 3 = PT_INTERP


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentCommand:
    """How /init starts the agent inside the chroot: the host's interpreter and the project's source path."""

    python: str
    pythonpath: str
    channel: Channel

    def argv(self) -> list[str]:
        # -S: no site-packages processing; the agent needs only the standard library and apicmap, and every
        # file a .pth or site hook touches is a 9p round trip under an emulated CPU.
        return [self.python, "-S", "-m", "apicmap.kernels.agent", "--channel", self.channel.value]


def init_script(modules: Iterable[str], agent: AgentCommand) -> str:
    """The busybox shell script run as /init (the kernel runs /init of an initramfs, see
    Documentation/filesystems/ramfs-rootfs-initramfs.rst)."""
    load = "\n".join(f"insmod /modules/{name}.ko || echo '{MARK} insmod {name} failed'" for name in modules)
    env = f"PYTHONPATH={shlex.quote(agent.pythonpath)} HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1"
    run = " ".join(shlex.quote(a) for a in agent.argv())
    return f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
{load}
fail() {{ echo "$1"; poweroff -f; sleep 5; }}
mount -t 9p -o {SHARE_OPTIONS} {HOST_SHARE_TAG} /host || fail '{MARK_MOUNT_FAILED}'
mount -t devtmpfs devtmpfs /host/dev || fail '{MARK} cannot mount /dev in the host share'
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t tmpfs tmpfs /host/tmp
[ -c /dev/kvm ] || echo '{MARK_NO_KVM}'
echo "{MARK_AGENT_START} at uptime $(cut -d' ' -f1 /proc/uptime) s"
chroot /host /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin {env} {run}
echo "{MARK_AGENT_EXIT} with status $?"
poweroff -f
sleep 5
"""


def build_initramfs(out_path: Path, *, module_files: dict[str, Path], load_order: Iterable[str],
                    agent: AgentCommand, busybox: Path | None = None) -> Path:
    """Write the guest's initramfs to ``out_path``."""
    order = list(load_order)
    entries = [directory(d) for d in ("bin", "dev", "proc", "sys", "host", "tmp", "modules")]
    # The kernel opens /dev/console before /init runs; without it /init has no stdout.
    entries.append(char_device("dev/console", 5, 1))
    entries.append(regular("bin/busybox", (busybox or find_busybox()).read_bytes(), executable=True))
    entries.append(symlink("bin/sh", "busybox"))
    for name in order:
        entries.append(regular(f"modules/{name}.ko", read_module_bytes(module_files[name])))
    entries.append(regular("init", init_script(order, agent).encode(), executable=True))
    buffer = io.BytesIO()
    write_newc(buffer, entries)
    out_path.write_bytes(buffer.getvalue())
    return out_path
