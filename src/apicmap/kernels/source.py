"""Which kernel to run: a ``KernelSpec`` parsed from what a user types.

Forms:
- ``debian:6.1``, ``debian:6.12`` (any ``debian:MAJOR.MINOR``): the newest Debian
  ``linux-image-MAJOR.MINOR.*-amd64-unsigned`` package apt knows;
- ``debian:6.1.0-47``, ``debian:6.12.107+deb12``: that Debian ABI (``linux-image-ABI-amd64-unsigned``);
- a Debian package name, ``linux-image-...``;
- a path to a bzImage/vmlinuz, with an optional modules directory (none: KVM must be built in).
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from apicmap.errors import InputError
from apicmap.kernels.errors import KernelImageError

ALLOWED_FORMS = ("debian:6.1, debian:6.12 (debian:MAJOR.MINOR or debian:ABI such as debian:6.1.0-47), "
                 "a Debian package name linux-image-*, or a path to a bzImage/vmlinuz")

_SERIES = re.compile(r"\d+\.\d+")
_ABI = re.compile(r"\d+\.\d+\.\d+(?:-\d+|\+deb\d+)")
_PACKAGE = re.compile(r"linux-image-[a-z0-9][a-z0-9.+~-]*")


class SpecKind(enum.Enum):
    DEBIAN_SERIES = "debian series"  # debian:6.1
    DEBIAN_PACKAGE = "debian package"  # linux-image-6.1.0-47-amd64-unsigned (or debian:ABI)
    IMAGE_PATH = "image path"  # /boot/vmlinuz-..., arch/x86/boot/bzImage


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelSpec:
    text: str
    kind: SpecKind
    series: str | None = None
    package: str | None = None
    image: Path | None = None
    modules: Path | None = None

    def describe(self) -> str:
        if self.kind is SpecKind.IMAGE_PATH:
            return f"{self.image}" + (f" with modules from {self.modules}" if self.modules else " (KVM built in)")
        return self.text


def debian_package_for_abi(abi: str) -> str:
    return f"linux-image-{abi}-amd64-unsigned"


def parse_spec(text: str, *, modules: str | Path | None = None, where: str = "--on") -> KernelSpec:
    """Parse a kernel spec. ``modules`` (a directory) goes only with an image path."""
    stripped = text.strip()
    if not stripped:
        raise InputError(where, "empty kernel spec", ALLOWED_FORMS)
    modules_path = Path(modules).expanduser() if modules is not None else None
    if stripped.startswith("debian:"):
        rest = stripped[len("debian:"):]
        _no_modules(modules_path, where, stripped)
        if _SERIES.fullmatch(rest):
            return KernelSpec(text=stripped, kind=SpecKind.DEBIAN_SERIES, series=rest)
        if _ABI.fullmatch(rest):
            return KernelSpec(text=stripped, kind=SpecKind.DEBIAN_PACKAGE, series=_series_of(rest),
                              package=debian_package_for_abi(rest))
        raise InputError(where, f"unknown Debian kernel {rest!r}", ALLOWED_FORMS)
    if _PACKAGE.fullmatch(stripped):
        _no_modules(modules_path, where, stripped)
        return KernelSpec(text=stripped, kind=SpecKind.DEBIAN_PACKAGE, package=stripped)
    if "/" in stripped or stripped.startswith((".", "~")) or Path(stripped).exists():
        return KernelSpec(text=stripped, kind=SpecKind.IMAGE_PATH, image=Path(stripped).expanduser(),
                          modules=modules_path)
    raise InputError(where, f"{stripped!r} is not a kernel spec", ALLOWED_FORMS)


def _series_of(abi: str) -> str:
    major, minor, _ = abi.split(".", 2)
    return f"{major}.{minor}"


def _no_modules(modules: Path | None, where: str, text: str) -> None:
    if modules is not None:
        raise InputError(where, f"a modules directory goes only with an image path, not with {text}",
                         "a path to a bzImage/vmlinuz")


@dataclass(frozen=True, slots=True)
class BzImageHeader:
    """What the x86 boot protocol header says (Documentation/arch/x86/boot.rst, "The real-mode kernel header")."""

    protocol: int
    version_string: str

    @property
    def release(self) -> str:
        """The ``uname -r`` part of the version string (its first word)."""
        return self.version_string.split()[0] if self.version_string else ""


def read_bzimage_header(path: Path) -> BzImageHeader:
    """Check that ``path`` is an x86 bzImage and read its header; ``KernelImageError`` otherwise."""
    try:
        with path.open("rb") as image:
            head = image.read(0x1000)
            if len(head) < 0x210 or head[0x1FE:0x200] != b"\x55\xaa" or head[0x202:0x206] != b"HdrS":
                raise KernelImageError(f"{path}: not an x86 bzImage (no 0xAA55 boot flag and 'HdrS' header)")
            (protocol,) = struct.unpack_from("<H", head, 0x206)
            (version_offset,) = struct.unpack_from("<H", head, 0x20E)
            image.seek(version_offset + 0x200)
            raw = image.read(256).split(b"\0", 1)[0]
    except FileNotFoundError:
        raise KernelImageError(f"{path}: no such kernel image") from None
    except IsADirectoryError:
        raise KernelImageError(f"{path}: is a directory, not a kernel image") from None
    except PermissionError:
        raise KernelImageError(f"{path}: not readable") from None
    if protocol < 0x0206:
        raise KernelImageError(f"{path}: boot protocol {protocol >> 8}.{protocol & 0xFF} is too old (2.06 needed)")
    return BzImageHeader(protocol, raw.decode(errors="replace") if version_offset else "")
