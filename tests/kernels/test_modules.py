from __future__ import annotations

import lzma
import struct
from pathlib import Path

import pytest

from apicmap import InputError
from apicmap.kernels.modules import (
    ModuleTree,
    load_order,
    modinfo,
    module_name,
    parse_modules_builtin,
    parse_modules_dep,
)

DEBIAN_LIKE_DEP = """\
kernel/arch/x86/kvm/kvm.ko: kernel/virt/lib/irqbypass.ko
kernel/arch/x86/kvm/kvm-amd.ko: kernel/arch/x86/kvm/kvm.ko kernel/drivers/crypto/ccp/ccp.ko kernel/virt/lib/irqbypass.ko
kernel/arch/x86/kvm/kvm-intel.ko: kernel/arch/x86/kvm/kvm.ko kernel/virt/lib/irqbypass.ko
kernel/virt/lib/irqbypass.ko:
kernel/drivers/crypto/ccp/ccp.ko:
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko
kernel/fs/netfs/netfs.ko:
"""


def test_module_names() -> None:
    assert module_name("kernel/arch/x86/kvm/kvm-amd.ko.xz") == "kvm_amd"
    assert module_name("9pnet_virtio.ko") == "9pnet_virtio"


def test_order_from_modules_dep_puts_dependencies_first() -> None:
    deps = parse_modules_dep(DEBIAN_LIKE_DEP)
    order = load_order(["9p", "kvm_amd"], deps)
    assert sorted(order) == ["9p", "9pnet", "ccp", "irqbypass", "kvm", "kvm_amd", "netfs"]
    for module, needs in deps.items():
        if module in order:
            assert all(order.index(n) < order.index(module) for n in needs), module


def test_builtin_modules_are_not_loaded() -> None:
    deps = parse_modules_dep(DEBIAN_LIKE_DEP)
    builtin = parse_modules_builtin("kernel/virt/lib/irqbypass.ko\nkernel/net/9p/9pnet.ko\n")
    assert load_order(["kvm_intel", "9pnet_virtio"], deps, builtin) == ["kvm", "kvm_intel", "9pnet_virtio"]


def test_unknown_module_and_cycle() -> None:
    with pytest.raises(KeyError):
        load_order(["vhost"], parse_modules_dep(DEBIAN_LIKE_DEP))
    with pytest.raises(ValueError, match="cycle"):
        load_order(["a"], {"a": ("b",), "b": ("a",)})


def fake_module(info: dict[str, str]) -> bytes:
    """A minimal little-endian ELF64 with a .modinfo section and a section name table."""
    modinfo_data = b"".join(f"{k}={v}".encode() + b"\0" for k, v in info.items())
    names = b"\0.modinfo\0.shstrtab\0"
    data_offset = 64
    names_offset = data_offset + len(modinfo_data)
    shoff = (names_offset + len(names) + 7) & ~7
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x28, shoff)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 2)
    body = bytes(header) + modinfo_data + names
    body += bytes(shoff - len(body))
    sections = bytes(64)
    sections += struct.pack("<IIQQQQIIQQ", 1, 1, 0, 0, data_offset, len(modinfo_data), 0, 0, 1, 0)
    sections += struct.pack("<IIQQQQIIQQ", 10, 3, 0, 0, names_offset, len(names), 0, 0, 1, 0)
    return body + sections


def test_modinfo_reads_depends() -> None:
    info = modinfo(fake_module({"license": "GPL", "depends": "kvm,ccp", "name": "kvm_amd"}))
    assert info == {"license": "GPL", "depends": "kvm,ccp", "name": "kvm_amd"}
    with pytest.raises(ValueError):
        modinfo(b"not an elf")


def test_tree_without_modules_dep_uses_modinfo(tmp_path: Path) -> None:
    kvm_dir = tmp_path / "kernel/arch/x86/kvm"
    kvm_dir.mkdir(parents=True)
    (kvm_dir / "kvm-amd.ko.xz").write_bytes(lzma.compress(fake_module({"depends": "kvm"})))
    (kvm_dir / "kvm.ko").write_bytes(fake_module({"depends": "irqbypass"}))
    (tmp_path / "irqbypass.ko").write_bytes(fake_module({"depends": ""}))
    tree = ModuleTree.scan(tmp_path)
    assert not tree.has_modules_dep
    assert tree.resolve(["kvm_amd"]) == ["irqbypass", "kvm", "kvm_amd"]
    (tmp_path / "modules.builtin").write_text("kernel/virt/lib/irqbypass.ko\n")
    assert ModuleTree.scan(tmp_path).resolve(["kvm_amd"]) == ["kvm", "kvm_amd"]


def test_tree_with_missing_dependency_names_it(tmp_path: Path) -> None:
    (tmp_path / "kvm.ko").write_bytes(fake_module({"depends": "irqbypass"}))
    (tmp_path / "modules.builtin").write_text("")
    with pytest.raises(InputError, match="no module irqbypass"):
        ModuleTree.scan(tmp_path).resolve(["kvm"])
