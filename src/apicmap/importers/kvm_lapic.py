"""Format ``kvm-lapic``: a directory of raw ``KVM_GET_LAPIC`` pages and APIC base MSRs.

Layout, per vCPU ``ID`` (the ``KVM_CREATE_VCPU`` argument)::

    vcpu<ID>.lapic       exactly the 1,024 bytes of struct kvm_lapic_state
    vcpu<ID>.apic_base   IA32_APIC_BASE (MSR 0x1b) as text, e.g. 0xfee00d00
    vm.toml              optional: [vm] x2apic_api = [...], creation_order = [...],
                         vector_hashing = bool, smm = bool

Without ``creation_order`` the vCPUs are taken as created in ascending ID order (reported).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from apicmap.errors import InputError
from apicmap.importers.common import (
    NO_OPTIONS,
    ImportFormat,
    ImportOptions,
    ImportResult,
    Lack,
    Provenance,
    X2ApicApiFlag,
    derived,
    read,
)
from apicmap.importers.page import PAGE_SIZE, assemble, flags_from, mode_from_apic_base, vcpu_from_page

_LAPIC = re.compile(r"^vcpu(\d+)\.lapic$")
_BASE = re.compile(r"^vcpu(\d+)\.apic_base$")
VM_KEYS = ("x2apic_api", "creation_order", "vector_hashing", "smm")


def import_kvm_lapic(source: str | Path, options: ImportOptions = NO_OPTIONS) -> ImportResult:
    root = Path(source)
    if not root.is_dir():
        raise InputError(str(root), "not a directory", "a directory of vcpu<ID>.lapic and vcpu<ID>.apic_base files")
    names = sorted(p.name for p in root.iterdir())
    pages = {int(m.group(1)): m.group(0) for m in map(_LAPIC.match, names) if m}
    bases = {int(m.group(1)): m.group(0) for m in map(_BASE.match, names) if m}
    if not pages:
        raise InputError(str(root), "no vcpu<ID>.lapic files", "one vcpu<ID>.lapic and vcpu<ID>.apic_base per vCPU")
    for vid in sorted(set(pages) ^ set(bases)):
        missing = f"vcpu{vid}.apic_base" if vid in pages else f"vcpu{vid}.lapic"
        raise InputError(str(root / missing), "missing", f"both vcpu{vid}.lapic and vcpu{vid}.apic_base")
    vm_table, vm_where = _vm_toml(root)
    found_flags: tuple[frozenset[X2ApicApiFlag], Provenance] | None = None
    if "x2apic_api" in vm_table:
        flags = _flag_list(vm_table["x2apic_api"], f"{vm_where} [vm] x2apic_api")
        found_flags = (flags, read("vm.toml", "[vm] x2apic_api", ", ".join(sorted(f.value for f in flags)) or "[]"))
    flag_set, flag_prov = flags_from(options, found_flags, ImportFormat.KVM_LAPIC)
    use32 = X2ApicApiFlag.USE_32BIT_IDS in flag_set

    order = sorted(pages)
    order_prov = derived("", "no creation_order given: ascending vCPU id assumed")
    lacking: list[Lack] = []
    if "creation_order" in vm_table:
        order = _order(vm_table["creation_order"], f"{vm_where} [vm] creation_order", sorted(pages))
        order_prov = read("vm.toml", "[vm] creation_order", _ids(order))
    elif options.creation_order is None:
        lacking.append(Lack(item="creation_order", resolution="ascending vCPU id assumed; give [vm] creation_order "
                            "in vm.toml or the creation_order option"))

    vcpus = []
    for vid in order:
        page_path = root / pages[vid]
        base_path = root / bases[vid]
        page = _read_bytes(page_path)
        if len(page) != PAGE_SIZE:
            raise InputError(str(page_path), f"{len(page)} bytes, a truncated or foreign file",
                             f"exactly {PAGE_SIZE} bytes (struct kvm_lapic_state from KVM_GET_LAPIC)")
        base = _apic_base(base_path)
        mode = mode_from_apic_base(base, str(base_path))
        mode_prov = read(bases[vid], "", base, "IA32_APIC_BASE: EN bit 11, EXTD bit 10", width=8)

        def location(offset: int) -> str:
            return f"offset 0x{offset:03x}"

        vcpus.append(vcpu_from_page(page, vcpu_id=vid, mode=mode, mode_prov=mode_prov, use_32bit_ids=use32,
                                    source=str(page_path), location=location, label=pages[vid]))
        vcpus[-1][1]["vcpu_id"] = read(pages[vid], "file name", str(vid), "vcpu<ID>.lapic")
    return assemble(ImportFormat.KVM_LAPIC, str(root), vcpus, options=options, flags=(flag_set, flag_prov),
                    order_note=order_prov, lacking=lacking,
                    found=_vm_settings(vm_table, vm_where))


def _ids(ids: Sequence[int]) -> str:
    text = ", ".join(map(str, ids[:12]))
    return f"[{text}{', ...' if len(ids) > 12 else ''}] ({len(ids)} vCPUs)"


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise InputError(str(path), f"cannot read: {err.strerror}") from None


def _apic_base(path: Path) -> int:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(str(path), f"cannot read as text: {err}", "the APIC base MSR as text, e.g. 0xfee00d00") \
            from None
    try:
        value = int(text, 0)
    except ValueError:
        raise InputError(str(path), f"not a number: {text[:40]!r}", "the APIC base MSR as text, e.g. 0xfee00d00") \
            from None
    return value


def _vm_toml(root: Path) -> tuple[Mapping[str, Any], str]:
    path = root / "vm.toml"
    where = str(path)
    if not path.exists():
        return {}, where
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise InputError(where, f"not readable TOML: {err}", "[vm] with " + ", ".join(VM_KEYS)) from None
    for key in document:
        if key != "vm":
            raise InputError(f"{where} {key}", "unknown table", "[vm]")
    table = document.get("vm", {})
    if not isinstance(table, dict):
        raise InputError(f"{where} vm", "not a table", "[vm]")
    for key in table:
        if key not in VM_KEYS:
            raise InputError(f"{where} [vm] {key}", "unknown key", ", ".join(VM_KEYS))
    return table, where


def _flag_list(value: Any, where: str) -> frozenset[X2ApicApiFlag]:
    allowed = [f.value for f in X2ApicApiFlag]
    if not isinstance(value, list) or any(f not in allowed for f in value):
        raise InputError(where, f"bad value {value!r}", "a list of " + ", ".join(f'"{a}"' for a in allowed))
    return frozenset(X2ApicApiFlag(f) for f in value)


def _order(value: Any, where: str, ids: Sequence[int]) -> list[int]:
    if not isinstance(value, list) or sorted(v for v in value if isinstance(v, int)) != list(ids) \
            or len(value) != len(ids):
        raise InputError(where, f"bad value {value!r}", f"a permutation of the vCPU ids {list(ids)}")
    return list(value)


def _vm_settings(table: Mapping[str, Any], where: str) -> dict[str, tuple[bool, Provenance]]:
    """vm.toml's vector_hashing/smm, for settings the user gives no option for."""
    found: dict[str, tuple[bool, Provenance]] = {}
    for key in ("vector_hashing", "smm"):
        if key in table:
            if not isinstance(table[key], bool):
                raise InputError(f"{where} [vm] {key}", f"bad value {table[key]!r}", "true, false")
            found[key] = (table[key], read("vm.toml", f"[vm] {key}", str(table[key]).lower()))
    return found


def write_kvm_lapic_dir(directory: str | Path, pages: Iterable[tuple[int, bytes, int]], *,
                        x2apic_api: Iterable[X2ApicApiFlag] | None = None,
                        creation_order: Sequence[int] | None = None) -> None:
    """Write (vcpu_id, page, apic_base) triples in this format, with a vm.toml when flags or order are given."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    for vid, page, base in pages:
        if len(page) != PAGE_SIZE:
            raise ValueError(f"vCPU {vid}: page of {len(page)} bytes")
        (root / f"vcpu{vid}.lapic").write_bytes(page)
        (root / f"vcpu{vid}.apic_base").write_text(f"{base:#x}\n", encoding="ascii")
    lines = []
    if x2apic_api is not None:
        lines.append("x2apic_api = [" + ", ".join(f'"{f.value}"' for f in sorted(x2apic_api, key=lambda f: f.value))
                     + "]")
    if creation_order is not None:
        lines.append(f"creation_order = [{', '.join(map(str, creation_order))}]")
    if lines:
        (root / "vm.toml").write_text("[vm]\n" + "\n".join(lines) + "\n", encoding="utf-8")
