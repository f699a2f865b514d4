"""Getting a kernel: ``fetch(spec)`` downloads and caches a Debian kernel, or describes a user's image.

Debian packages are fetched with ``apt-get download`` (the ordinary client, from the configured
archive) and unpacked with ``dpkg-deb -x``; only the image and the modules a guest loads are kept.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from apicmap.errors import InputError
from apicmap.kernels.cache import GuestKernel, KvmPackaging, find_cached, kernels_dir, load_cached
from apicmap.kernels.errors import KernelFetchError, KernelImageError
from apicmap.kernels.modules import ModuleTree, read_module_bytes
from apicmap.kernels.source import ALLOWED_FORMS, KernelSpec, SpecKind, read_bzimage_header

# What the guest's /init needs besides KVM: the PCI transport for virtio devices, the 9p
# filesystem over virtio to mount the host's root, and virtio-serial for the agent's channel.
INFRA_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "virtio_console")
VENDOR_MODULES = ("kvm_amd", "kvm_intel")

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def fetch(spec: KernelSpec, *, root: Path | None = None, progress: Progress = _quiet) -> GuestKernel:
    """The kernel ``spec`` names, ready to boot. Debian kernels are cached; fetching twice is a no-op."""
    if spec.kind is SpecKind.IMAGE_PATH:
        assert spec.image is not None
        return kernel_from_image(spec.image, spec.modules)
    if spec.package is not None:
        return _fetch_package(spec.package, root, progress)
    assert spec.series is not None
    try:
        return _fetch_package(resolve_debian_series(spec.series), root, progress)
    except KernelFetchError:
        # Offline, or apt's lists are gone: a cached kernel of the series still answers "debian:6.1".
        cached = _newest_cached_of_series(spec.series, root)
        if cached is None:
            raise
        progress(f"using the cached {cached.release}")
        return cached


def _fetch_package(package: str, root: Path | None, progress: Progress) -> GuestKernel:
    cached = find_cached(source=package, root=root)
    if cached is not None:
        return cached
    base = kernels_dir(root)
    base.mkdir(parents=True, exist_ok=True)
    with (base / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another apicmap may be fetching the same package
        cached = find_cached(source=package, root=root)
        if cached is not None:
            return cached
        return _download_and_unpack(package, base, progress)


def _newest_cached_of_series(series: str, root: Path | None) -> GuestKernel | None:
    base = kernels_dir(root)
    if not base.is_dir():
        return None
    candidates = [k for d in base.iterdir() if (k := load_cached(d)) is not None and _in_series(k.release, series)]
    return max(candidates, key=lambda k: _version_key(k.release), default=None)


def _in_series(release: str, series: str) -> bool:
    return re.match(re.escape(series) + r"\.\d", release) is not None


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text))


def resolve_debian_series(series: str) -> str:
    """The newest ``linux-image-SERIES.*-amd64-unsigned`` package apt knows (``apt-cache pkgnames``)."""
    if shutil.which("apt-cache") is None:
        raise KernelFetchError(f"debian:{series}: apt-cache is not installed (a Debian-based host is needed)")
    pattern = re.compile(r"linux-image-(" + re.escape(series) + r"\.\d+(?:-\d+|\+deb\d+))-amd64-unsigned")

    def known() -> list[str]:
        listed = subprocess.run(["apt-cache", "pkgnames", f"linux-image-{series}."], capture_output=True, text=True)
        return [n for n in listed.stdout.split() if pattern.fullmatch(n)]

    names = known()
    if not names and _refresh_package_lists():
        names = known()
    if not names:
        raise KernelFetchError(f"debian:{series}: apt knows no linux-image-{series}.*-amd64-unsigned package "
                               "(run apt-get update; allowed: " + ALLOWED_FORMS + ")")
    return max(names, key=_version_key)


def _refresh_package_lists() -> bool:
    """``apt-get update``, where this process may (root): a machine's lists can be months old, and
    Debian's archive keeps only the current kernel packages of a series. False where it may not."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    done = subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True,
                          env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    return done.returncode == 0


def _run(command: list[str], cwd: Path, what: str) -> None:
    if shutil.which(command[0]) is None:
        raise KernelFetchError(f"{what}: {command[0]} is not installed")
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        detail = " ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
        raise KernelFetchError(f"{what}: {' '.join(command[:2])} failed: {detail}")


def _download_and_unpack(package: str, base: Path, progress: Progress) -> GuestKernel:
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=base) as temp_name:
        temp = Path(temp_name)
        progress(f"downloading {package}")
        try:
            _run(["apt-get", "download", package], temp, package)
        except KernelFetchError:
            # Stale lists name a .deb the archive no longer has (404): refresh them once and retry.
            if not _refresh_package_lists():
                raise
            _run(["apt-get", "download", package], temp, package)
        debs = sorted(temp.glob("*.deb"))
        if not debs:
            raise KernelFetchError(f"{package}: apt-get download left no .deb file")
        progress(f"unpacking {debs[0].name}")
        unpacked = temp / "root"
        _run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], temp, package)
        images = sorted((unpacked / "boot").glob("vmlinuz-*"))
        if not images:
            raise KernelFetchError(f"{package}: the package has no boot/vmlinuz-* (not a kernel image package?)")
        release = images[0].name[len("vmlinuz-"):]
        module_root = next((p for p in (unpacked / "lib/modules" / release, unpacked / "usr/lib/modules" / release)
                            if p.is_dir()), None)
        staged = temp / "staged"
        (staged / "modules").mkdir(parents=True)
        shutil.copyfile(images[0], staged / "vmlinuz")
        if module_root is None:
            kernel = GuestKernel(release=release, image=staged / "vmlinuz", source=package, module_files={},
                                 load_orders={KvmPackaging.UNKNOWN.value: ()}, kvm=KvmPackaging.UNKNOWN,
                                 virtio_console=None)
        else:
            planned = plan_modules(ModuleTree.scan(module_root), release=release, image=images[0], source=package)
            files = {}
            for name, path in planned.module_files.items():
                target = staged / "modules" / f"{name}.ko"
                target.write_bytes(read_module_bytes(path))
                files[name] = target
            kernel = GuestKernel(release=release, image=staged / "vmlinuz", source=package, module_files=files,
                                 load_orders=planned.load_orders, kvm=planned.kvm,
                                 virtio_console=planned.virtio_console)
        target_dir = base / release
        if target_dir.exists():
            shutil.rmtree(target_dir)  # an interrupted fetch (no manifest), or another package of that release
        staged.rename(target_dir)
        final = GuestKernel(release=kernel.release, image=target_dir / "vmlinuz", source=kernel.source,
                            module_files={n: target_dir / "modules" / p.name for n, p in kernel.module_files.items()},
                            load_orders=kernel.load_orders, kvm=kernel.kvm, virtio_console=kernel.virtio_console)
        (target_dir / "manifest.json").write_text(json.dumps(final.to_manifest(target_dir), indent=1) + "\n")
        progress(f"cached {release} in {target_dir}")
        return final


def plan_modules(tree: ModuleTree, *, release: str, image: Path, source: str) -> GuestKernel:
    """Which modules a guest of this build loads, per vendor module, with their files (still in ``tree``)."""
    infra = [m for m in INFRA_MODULES if tree.has(m)]  # absent ones are built in (or missing: /init says so)
    orders: dict[str, tuple[str, ...]] = {}
    for vendor in VENDOR_MODULES:
        if tree.has(vendor):
            orders[vendor] = tuple(tree.resolve([*infra, vendor]))
    if orders:
        kvm = KvmPackaging.MODULES
    else:
        kvm = KvmPackaging.BUILT_IN if tree.is_builtin("kvm") else KvmPackaging.UNKNOWN
        orders[kvm.value] = tuple(tree.resolve(infra))
    needed = sorted({m for order in orders.values() for m in order})
    if tree.has("virtio_console") or tree.is_builtin("virtio_console"):
        console: bool | None = True
    else:
        console = False if tree.builtin else None
    return GuestKernel(release=release, image=image, source=source, module_files={m: tree.files[m] for m in needed},
                       load_orders=orders, kvm=kvm, virtio_console=console)


def kernel_from_image(image: Path, modules: Path | None) -> GuestKernel:
    """A user's own bzImage (and modules directory, if KVM or virtio are modules). Nothing is copied."""
    header = read_bzimage_header(image)
    release = header.release or image.name
    if modules is None:
        return GuestKernel(release=release, image=image, source=str(image), module_files={},
                           load_orders={KvmPackaging.UNKNOWN.value: ()}, kvm=KvmPackaging.UNKNOWN,
                           virtio_console=None)
    if not modules.is_dir():
        raise KernelImageError(f"{modules}: no such modules directory")
    try:
        return plan_modules(ModuleTree.scan(modules), release=release, image=image, source=str(image))
    except InputError as err:
        raise KernelImageError(str(err)) from None
