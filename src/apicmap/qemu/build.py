"""Build the freestanding test guest (``guest/``) with the system gcc, once per source version.

The ELF is cached in ``$APICMAP_CACHE``, else ``$XDG_CACHE_HOME/apicmap``, else
``~/.cache/apicmap``, under a name that hashes the sources, the flags and the compiler's
version, so a changed source (or compiler) builds a new guest and an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from apicmap.cache import cache_root
from apicmap.errors import ApicmapError

GUEST_SOURCES = ("guest.h", "boot.S", "guest.c", "link.ld")
# 32-bit: QEMU's -kernel multiboot loader takes only 32-bit ELF images (hw/i386/multiboot.c).
CFLAGS = (
    "-m32", "-ffreestanding", "-nostdlib", "-fno-pic", "-no-pie", "-fno-stack-protector",
    "-mgeneral-regs-only", "-O2", "-Wall", "-Wextra", "-Werror", "-static",
    "-Wl,-z,max-page-size=0x1000", "-Wl,--build-id=none", "-Wl,--no-warn-rwx-segments",
)


class GuestBuildError(ApicmapError):
    """gcc is missing or could not build the guest."""


def find_gcc() -> str | None:
    return os.environ.get("APICMAP_GCC") or shutil.which("gcc")


def _compiler_version(gcc: str) -> str:
    try:
        done = subprocess.run([gcc, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as err:
        raise GuestBuildError(f"qemu engine: cannot run {gcc}: {err.strerror}") from None
    return done.stdout.splitlines()[0] if done.stdout else ""


def _sources() -> dict[str, bytes]:
    root = resources.files("apicmap.qemu") / "guest"
    return {name: (root / name).read_bytes() for name in GUEST_SOURCES}


def guest_elf() -> Path:
    """The path of the built guest, building it first if this source version has no build yet."""
    gcc = find_gcc()
    if gcc is None:
        raise GuestBuildError("qemu engine: gcc not found (install gcc, or set APICMAP_GCC)")
    sources = _sources()
    digest = hashlib.sha256()
    for name in GUEST_SOURCES:
        digest.update(name.encode() + b"\0" + sources[name] + b"\0")
    digest.update(" ".join(CFLAGS).encode() + b"\0" + _compiler_version(gcc).encode())
    target = cache_root() / f"guest-{digest.hexdigest()[:16]}.elf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="apicmap-guest-") as tmp:
        for name, data in sources.items():
            (Path(tmp) / name).write_bytes(data)
        out = Path(tmp) / "guest.elf"
        command = [gcc, *CFLAGS, "-T", "link.ld", "-o", str(out), "boot.S", "guest.c"]
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = target.with_suffix(".build.log")
            log.write_text(" ".join(command) + "\n" + done.stdout + done.stderr, encoding="utf-8")
            raise GuestBuildError(f"qemu engine: gcc could not build the guest (exit {done.returncode}); log: {log}")
        staged = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(out, staged)
        os.replace(staged, target)  # atomic: concurrent builders never see half a file
    return target
