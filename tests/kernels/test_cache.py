from __future__ import annotations

import json
from pathlib import Path

import pytest

from apicmap.kernels import KernelFetchError, KernelImageError, KvmPackaging, cache_root, fetch, list_cached, parse_spec
from apicmap.kernels.cache import GuestKernel, find_cached, load_cached

from .test_modules import fake_module
from .test_source import _fake_bzimage


def test_cache_root_precedence() -> None:
    assert cache_root({"APICMAP_CACHE": "/c", "XDG_CACHE_HOME": "/x", "HOME": "/h"}) == Path("/c")
    assert cache_root({"XDG_CACHE_HOME": "/x", "HOME": "/h"}) == Path("/x/apicmap")
    assert cache_root({"HOME": "/h"}) == Path("/h/.cache/apicmap")


def _cache_entry(root: Path, release: str, *, complete: bool = True) -> Path:
    directory = root / "kernels" / release
    (directory / "modules").mkdir(parents=True)
    (directory / "vmlinuz").write_bytes(b"k" * 1000)
    (directory / "modules" / "kvm.ko").write_bytes(b"m" * 24)
    kernel = GuestKernel(release=release, image=directory / "vmlinuz", source=f"linux-image-{release}-unsigned",
                         module_files={"kvm": directory / "modules/kvm.ko"}, load_orders={"kvm_amd": ("kvm",)},
                         kvm=KvmPackaging.MODULES, virtio_console=True)
    if complete:
        (directory / "manifest.json").write_text(json.dumps(kernel.to_manifest(directory)))
    return directory


def test_list_cached_and_manifest_round_trip(tmp_path: Path) -> None:
    directory = _cache_entry(tmp_path, "6.1.0-47-amd64")
    _cache_entry(tmp_path, "6.12.107+deb12-amd64", complete=False)  # an interrupted fetch: not listed
    rows = list_cached(tmp_path)
    assert [(r.release, r.vendor, r.size_bytes) for r in rows] == [("6.1.0-47-amd64", "kvm_amd", 1024 + _manifest(
        directory))]
    loaded = load_cached(directory)
    assert loaded is not None and loaded.modules_for("kvm_amd") == ("kvm",) and loaded.modules_for("kvm_intel") == ()
    assert find_cached(source="linux-image-6.1.0-47-amd64-unsigned", root=tmp_path) == loaded
    assert find_cached(source="linux-image-other", root=tmp_path) is None


def _manifest(directory: Path) -> int:
    return (directory / "manifest.json").stat().st_size


def test_debian_fetch_is_a_no_op_when_cached(tmp_path: Path) -> None:
    directory = _cache_entry(tmp_path, "6.1.0-47-amd64")
    before = {p: p.stat().st_mtime_ns for p in directory.rglob("*")}
    kernel = fetch(parse_spec("debian:6.1.0-47"), root=tmp_path)  # linux-image-6.1.0-47-amd64-unsigned
    assert kernel == load_cached(directory)
    assert sorted(p.name for p in (tmp_path / "kernels").iterdir()) == ["6.1.0-47-amd64"]  # nothing downloaded
    assert {p: p.stat().st_mtime_ns for p in directory.rglob("*")} == before


def test_image_path_with_module_tree(tmp_path: Path) -> None:
    image = _fake_bzimage(tmp_path / "bzImage", b"6.9.0-custom #1")
    modules = tmp_path / "lib/modules/6.9.0-custom"
    (modules / "kernel").mkdir(parents=True)
    (modules / "kernel/kvm.ko").write_bytes(fake_module({"depends": ""}))
    (modules / "kernel/kvm-intel.ko").write_bytes(fake_module({"depends": "kvm"}))
    (modules / "modules.builtin").write_text("kernel/drivers/virtio/virtio_pci.ko\nkernel/fs/9p/9p.ko\n"
                                             "kernel/net/9p/9pnet_virtio.ko\n")
    kernel = fetch(parse_spec(str(image), modules=modules))
    assert kernel.release == "6.9.0-custom" and kernel.image == image and kernel.kvm is KvmPackaging.MODULES
    assert kernel.load_orders == {"kvm_intel": ("kvm", "kvm_intel")} and kernel.virtio_console is False
    built_in = fetch(parse_spec(str(image)))
    assert built_in.kvm is KvmPackaging.UNKNOWN and built_in.module_files == {} and built_in.virtio_console is None
    with pytest.raises(KernelImageError, match="no such modules directory"):
        fetch(parse_spec(str(image), modules=tmp_path / "nope"))


def test_debian_series_falls_back_to_the_newest_cached_without_apt(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _cache_entry(tmp_path, "6.1.0-47-amd64")
    _cache_entry(tmp_path, "6.1.0-9-amd64")
    _cache_entry(tmp_path, "6.12.107+deb12-amd64")
    monkeypatch.setenv("PATH", str(tmp_path / "no-apt"))
    assert fetch(parse_spec("debian:6.1"), root=tmp_path).release == "6.1.0-47-amd64"
    assert fetch(parse_spec("debian:6.12"), root=tmp_path).release == "6.12.107+deb12-amd64"
    with pytest.raises(KernelFetchError, match="apt-cache is not installed"):
        fetch(parse_spec("debian:5.10"), root=tmp_path)


def test_modules_for_falls_back_to_built_in_or_unknown() -> None:
    kernel = GuestKernel(release="r", image=Path("/k"), source="s", module_files={},
                         load_orders={KvmPackaging.UNKNOWN.value: ("9p",)}, kvm=KvmPackaging.UNKNOWN,
                         virtio_console=None)
    assert kernel.modules_for("kvm_amd") == ("9p",) and kernel.vendors == ("unknown",)


def test_kvm_built_in(tmp_path: Path) -> None:
    image = _fake_bzimage(tmp_path / "bzImage", b"6.6.0-kvm-y #1")
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "9p.ko").write_bytes(fake_module({"depends": ""}))
    (modules / "modules.builtin").write_text("kernel/arch/x86/kvm/kvm.ko\nkernel/arch/x86/kvm/kvm-amd.ko\n"
                                            "kernel/drivers/char/virtio_console.ko\n")
    kernel = fetch(parse_spec(str(image), modules=modules))
    assert kernel.kvm is KvmPackaging.BUILT_IN and kernel.vendors == ("built-in",)
    assert kernel.modules_for("kvm_amd") == ("9p",) and kernel.virtio_console is True
