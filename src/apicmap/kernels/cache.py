"""The kernel cache: ``$APICMAP_CACHE``, else ``$XDG_CACHE_HOME/apicmap``, else ``~/.cache/apicmap``.

Each fetched kernel lives in ``kernels/<release>/``: ``vmlinuz``, ``modules/<name>.ko`` (only the
modules a guest loads, decompressed) and ``manifest.json`` (written last, so a directory without
it is an interrupted fetch and is fetched again).
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from apicmap.cache import cache_root as cache_root  # re-exported: the kernels' root

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def kernels_dir(root: Path | None = None) -> Path:
    return (root if root is not None else cache_root()) / "kernels"


class KvmPackaging(enum.Enum):
    MODULES = "modules"  # kvm.ko and vendor modules to load
    BUILT_IN = "built-in"  # CONFIG_KVM=y (the vendor part too)
    UNKNOWN = "unknown"  # an image without a modules directory: the guest finds out


@dataclass(frozen=True, slots=True, kw_only=True)
class GuestKernel:
    """Everything a guest boot needs from one kernel build.

    ``load_orders`` maps each vendor module the build has (``kvm_amd``, ``kvm_intel``) to the
    complete list of modules to load, in order, for a guest using it; with KVM built in, the
    key is ``built-in``. ``virtio_console`` says whether the build has the virtio-serial driver
    (None: unknown, an image without modules directory).
    """

    release: str
    image: Path
    source: str
    module_files: Mapping[str, Path]
    load_orders: Mapping[str, tuple[str, ...]]
    kvm: KvmPackaging
    virtio_console: bool | None

    @property
    def vendors(self) -> tuple[str, ...]:
        return tuple(self.load_orders)

    def modules_for(self, vendor: str) -> tuple[str, ...]:
        """Load order for a guest whose CPU wants ``vendor`` (kvm_amd or kvm_intel)."""
        if vendor in self.load_orders:
            return self.load_orders[vendor]
        for packaging in (KvmPackaging.BUILT_IN, KvmPackaging.UNKNOWN):  # KVM built in, or not there at all
            if packaging.value in self.load_orders:
                return self.load_orders[packaging.value]
        return ()

    def to_manifest(self, directory: Path) -> dict[str, object]:
        return {
            "version": MANIFEST_VERSION,
            "release": self.release,
            "source": self.source,
            "image": os.path.relpath(self.image, directory),
            "modules": {name: os.path.relpath(path, directory) for name, path in self.module_files.items()},
            "load_orders": {vendor: list(order) for vendor, order in self.load_orders.items()},
            "kvm": self.kvm.value,
            "virtio_console": self.virtio_console,
        }

    @staticmethod
    def from_manifest(directory: Path, data: Mapping[str, object]) -> GuestKernel:
        modules = data["modules"]
        orders = data["load_orders"]
        assert isinstance(modules, dict) and isinstance(orders, dict)
        console = data.get("virtio_console")
        return GuestKernel(
            release=str(data["release"]),
            image=directory / str(data["image"]),
            source=str(data["source"]),
            module_files={str(k): directory / str(v) for k, v in modules.items()},
            load_orders={str(k): tuple(str(m) for m in v) for k, v in orders.items()},
            kvm=KvmPackaging(str(data["kvm"])),
            virtio_console=console if isinstance(console, bool) else None,
        )


@dataclass(frozen=True, slots=True)
class CachedKernel:
    """One row of ``apicmap kernels list``."""

    release: str
    vendor: str  # "kvm_amd, kvm_intel", "built-in", ...
    size_bytes: int
    source: str
    path: Path


def load_cached(directory: Path) -> GuestKernel | None:
    """The kernel cached in ``directory``, or None when it is absent or incomplete."""
    try:
        data = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        return None
    kernel = GuestKernel.from_manifest(directory, data)
    if not kernel.image.is_file() or not all(p.is_file() for p in kernel.module_files.values()):
        return None
    return kernel


def find_cached(*, release: str | None = None, source: str | None = None, root: Path | None = None
                ) -> GuestKernel | None:
    for kernel in _cached_kernels(root):
        if (release is None or kernel.release == release) and (source is None or kernel.source == source):
            return kernel
    return None


def _cached_kernels(root: Path | None) -> list[GuestKernel]:
    base = kernels_dir(root)
    if not base.is_dir():
        return []
    found = [load_cached(d) for d in sorted(base.iterdir()) if d.is_dir()]
    return [k for k in found if k is not None]


def _size(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())


def list_cached(root: Path | None = None) -> list[CachedKernel]:
    """The cached kernels, by release: release, vendor modules (or built-in), size on disk, source."""
    rows = []
    for kernel in _cached_kernels(root):
        directory = kernel.image.parent
        vendor = ", ".join(kernel.vendors) if kernel.vendors else kernel.kvm.value
        rows.append(CachedKernel(kernel.release, vendor, _size(directory), kernel.source, directory))
    return rows
