"""Kernel modules: which files a guest needs and in which order to load them.

The order comes from a ``modules.dep`` (the format ``depmod`` writes, see depmod(8): ``path: dep dep ...``,
paths relative to the release's module directory) when there is one. Debian's ``linux-image-*``
packages do not ship ``modules.dep`` (``depmod`` runs at install time), so without it the same
relation is read from each module's ``.modinfo`` ELF section, whose ``depends=`` field lists the
modules it needs (written by ``modpost``, see the kernel's ``scripts/mod/modpost.c``).
``modules.builtin`` lists what is built into the image and needs no loading.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import struct
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from apicmap.errors import InputError

MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz", ".ko.bz2")


def module_name(path: str | Path) -> str:
    """The name the kernel knows a module file by: basename without suffix, '-' folded to '_'."""
    base = os.path.basename(str(path))
    for suffix in MODULE_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def is_module_file(path: str | Path) -> bool:
    return str(path).endswith(MODULE_SUFFIXES)


def read_module_bytes(path: Path) -> bytes:
    """The module's ELF bytes, decompressed (busybox ``insmod`` loads only plain ELF)."""
    name = path.name
    if name.endswith(".ko.xz"):
        return lzma.decompress(path.read_bytes())
    if name.endswith(".ko.gz"):
        return gzip.decompress(path.read_bytes())
    if name.endswith(".ko.bz2"):
        return bz2.decompress(path.read_bytes())
    if name.endswith(".ko.zst"):
        # Python 3.11 has no zstd codec; the zstd tool is in Debian's "zstd" package.
        if shutil.which("zstd") is None:
            raise InputError(str(path), "is zstd-compressed and the zstd tool is not installed", "apt-get install zstd")
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    return path.read_bytes()


def modinfo(elf: bytes) -> dict[str, str]:
    """The ``key=value`` strings of an ELF64 module's ``.modinfo`` section (first value per key)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise ValueError("not a little-endian ELF64 file")
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", elf, shoff + index * shentsize)
        return name, offset, size

    _, names_offset, names_size = section(shstrndx)
    names = elf[names_offset : names_offset + names_size]
    info: dict[str, str] = {}
    for index in range(shnum):
        name_at, offset, size = section(index)
        if names[name_at : names.index(b"\0", name_at)] != b".modinfo":
            continue
        for item in elf[offset : offset + size].split(b"\0"):
            key, sep, value = item.partition(b"=")
            if sep:
                info.setdefault(key.decode(errors="replace"), value.decode(errors="replace"))
    return info


def parse_modules_dep(text: str) -> dict[str, tuple[str, ...]]:
    """``modules.dep`` as {module name: names it depends on}."""
    deps: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        target, sep, rest = line.partition(":")
        if not sep:
            continue
        deps[module_name(target.strip())] = tuple(module_name(p) for p in rest.split())
    return deps


def parse_modules_builtin(text: str) -> frozenset[str]:
    return frozenset(module_name(line.strip()) for line in text.splitlines() if line.strip())


def load_order(roots: Iterable[str], depends: Mapping[str, Iterable[str]], builtin: frozenset[str] = frozenset()
               ) -> list[str]:
    """Modules to load for ``roots``, each after the modules it depends on; built-in ones are left out.

    Raises ``KeyError`` naming a module that is neither known nor built in.
    """
    order: list[str] = []
    state: dict[str, bool] = {}  # False: being visited, True: done

    def visit(name: str) -> None:
        if name in builtin or state.get(name):
            return
        if name in state:
            raise ValueError(f"dependency cycle through module {name}")
        if name not in depends:
            raise KeyError(name)
        state[name] = False
        for dep in depends[name]:
            visit(dep)
        state[name] = True
        order.append(name)

    for root in roots:
        visit(root)
    return order


@dataclass(frozen=True, slots=True)
class ModuleTree:
    """The modules of one kernel release: files by name, dependencies (possibly partial) and built-ins.

    ``depends`` is complete when it came from ``modules.dep``; otherwise it is filled lazily from
    ``.modinfo`` by ``resolve``.
    """

    root: Path
    files: dict[str, Path]
    builtin: frozenset[str] = frozenset()
    depends: dict[str, tuple[str, ...]] = field(default_factory=dict)
    has_modules_dep: bool = False

    @staticmethod
    def scan(root: Path) -> ModuleTree:
        """Index a module directory (``lib/modules/<release>`` or any tree of ``.ko`` files)."""
        if not root.is_dir():
            raise InputError(str(root), "is not a directory", "a modules directory such as /lib/modules/<release>")
        files: dict[str, Path] = {}
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                if is_module_file(name):
                    files.setdefault(module_name(name), Path(dirpath) / name)
        builtin_file = root / "modules.builtin"
        builtin = parse_modules_builtin(builtin_file.read_text()) if builtin_file.is_file() else frozenset()
        dep_file = root / "modules.dep"
        if dep_file.is_file():
            return ModuleTree(root, files, builtin, parse_modules_dep(dep_file.read_text()), True)
        return ModuleTree(root, files, builtin)

    def has(self, name: str) -> bool:
        return name in self.files

    def is_builtin(self, name: str) -> bool:
        return name in self.builtin

    def resolve(self, roots: Iterable[str]) -> list[str]:
        """Load order for ``roots`` (and what they need), reading ``.modinfo`` where ``modules.dep`` is absent."""
        wanted = list(roots)
        if not self.has_modules_dep:
            pending = list(wanted)
            while pending:
                name = pending.pop()
                if name in self.depends or name in self.builtin or name not in self.files:
                    continue
                info = modinfo(read_module_bytes(self.files[name]))
                needs = tuple(module_name(d) for d in info.get("depends", "").split(",") if d)
                self.depends[name] = needs
                pending.extend(needs)
        try:
            return load_order(wanted, self.depends, self.builtin)
        except KeyError as missing:
            raise InputError(str(self.root), f"has no module {missing.args[0]} and does not list it as built in",
                             "the modules directory of the same kernel build") from None
