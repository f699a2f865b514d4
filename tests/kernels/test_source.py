from __future__ import annotations

import struct
from pathlib import Path

import pytest

from apicmap import InputError
from apicmap.kernels import KernelImageError, SpecKind, parse_spec
from apicmap.kernels.source import read_bzimage_header


@pytest.mark.parametrize(("text", "series"),
                         [("debian:6.1", "6.1"), ("debian:6.12", "6.12"), (" debian:5.10 ", "5.10")])
def test_debian_series(text: str, series: str) -> None:
    spec = parse_spec(text)
    assert spec.kind is SpecKind.DEBIAN_SERIES and spec.series == series and spec.package is None


@pytest.mark.parametrize(("text", "package"), [
    ("debian:6.1.0-47", "linux-image-6.1.0-47-amd64-unsigned"),
    ("debian:6.12.107+deb12", "linux-image-6.12.107+deb12-amd64-unsigned"),
    ("linux-image-6.1.0-47-amd64-unsigned", "linux-image-6.1.0-47-amd64-unsigned"),
    ("linux-image-6.12.107+deb12-cloud-amd64", "linux-image-6.12.107+deb12-cloud-amd64"),
])
def test_debian_packages(text: str, package: str) -> None:
    spec = parse_spec(text)
    assert spec.kind is SpecKind.DEBIAN_PACKAGE and spec.package == package


def test_image_path_with_modules(tmp_path: Path) -> None:
    spec = parse_spec(str(tmp_path / "bzImage"), modules=tmp_path / "lib")
    assert spec.kind is SpecKind.IMAGE_PATH and spec.image == tmp_path / "bzImage" and spec.modules == tmp_path / "lib"
    assert parse_spec("./arch/x86/boot/bzImage").image == Path("arch/x86/boot/bzImage")


@pytest.mark.parametrize("text", ["", "debian:", "debian:six", "debian:6", "ubuntu:22.04", "vmlinuz", "linux-image-"])
def test_bad_specs_are_one_line_input_errors(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_spec(text, where="--on")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("--on:")
    assert "debian:6.1" in message and "linux-image-" in message and "bzImage" in message


def test_modules_only_with_an_image() -> None:
    with pytest.raises(InputError, match="modules directory"):
        parse_spec("debian:6.1", modules="/lib/modules")


def _fake_bzimage(path: Path, version: bytes, protocol: int = 0x020F) -> Path:
    image = bytearray(0x2000)
    image[0x1FE:0x200] = b"\x55\xaa"
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x206, protocol)
    struct.pack_into("<H", image, 0x20E, 0x1000 - 0x200)
    image[0x1000 : 0x1000 + len(version) + 1] = version + b"\0"
    path.write_bytes(bytes(image))
    return path


def test_bzimage_header_release(tmp_path: Path) -> None:
    header = read_bzimage_header(_fake_bzimage(tmp_path / "bz", b"6.1.0-47-amd64 (debian-kernel@lists) #1 SMP"))
    assert header.release == "6.1.0-47-amd64" and header.protocol == 0x020F


def test_bzimage_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x7fELF" + bytes(4096))
    with pytest.raises(KernelImageError, match="not an x86 bzImage"):
        read_bzimage_header(garbage)
    with pytest.raises(KernelImageError, match="no such kernel image"):
        read_bzimage_header(tmp_path / "absent")
    with pytest.raises(KernelImageError, match="too old"):
        read_bzimage_header(_fake_bzimage(tmp_path / "old", b"2.6.0", protocol=0x0205))


def test_package_exports_resolve() -> None:
    import apicmap.kernels as kernels

    assert sorted(kernels.__all__) == sorted([*kernels._WHERE, "fetch"])
    import apicmap.kernels.fetch  # noqa: F401  (binds the submodule's name on the package, unless it was eager)

    assert callable(kernels.fetch)
    for name in kernels.__all__:
        assert getattr(kernels, name) is not None
    with pytest.raises(AttributeError):
        _ = kernels.not_a_name
