"""Format ``cloud-hypervisor``: a ``vm.snapshot`` directory (``state.json``, optionally ``config.json``).

Layout, as cloud-hypervisor writes it (read in its source):

- ``state.json`` is the VM's ``Snapshot`` (vm-migration/src/lib.rs ``struct Snapshot``:
  ``snapshots`` by component id, ``snapshot_data.state``), written by ``Vm::send`` in
  vmm/src/vm.rs. The CPU manager's child is ``"cpu-manager"`` (vmm/src/lib.rs
  ``CPU_MANAGER_SNAPSHOT_ID``); its children are keyed by cpu_id (vmm/src/cpu.rs,
  ``Snapshottable for Vcpu``).
- Each vCPU's ``snapshot_data.state`` is a JSON *string*: ``serde_json::to_string`` of
  ``CpuState::Kvm(VcpuKvmState)`` (hypervisor/src/lib.rs ``enum CpuState``;
  hypervisor/src/kvm/x86_64/mod.rs ``struct VcpuKvmState``): ``sregs`` is kvm-bindings'
  ``kvm_sregs``, which kvm-bindings serializes as its raw bytes (src/serialize.rs
  ``serde_impls!``; a JSON list of 312 numbers, ``apic_base`` the u64 at byte 272), and
  ``lapic_state.regs`` is the 1 KiB page as 1,024 ``c_char`` values
  (hypervisor/src/arch/x86/mod.rs ``struct LapicState``), signed on x86.
- ``config.json`` (``VmConfig``; vmm/src/vm_config.rs ``struct CpusConfig``: ``max_vcpus``,
  ``topology``) decides two things the state lacks: the KVM vcpu_id is
  ``get_x2apic_id(cpu_id, topology)`` (arch/src/x86_64/mod.rs; vmm/src/cpu.rs ``create_vcpu``),
  and X2APIC_API (both flags, hypervisor/src/kvm/mod.rs ``enable_x2apic_api``) is enabled when
  the largest APIC ID exceeds 254 (vmm/src/vm.rs, ``MAX_SUPPORTED_CPUS_LEGACY``).
"""

from __future__ import annotations

import ctypes
import json
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
from apicmap.kvm.abi import KvmSregs

CPU_MANAGER = "cpu-manager"
MAX_SUPPORTED_CPUS_LEGACY = 254  # arch/src/x86_64/mod.rs
KVM_SREGS_APIC_BASE = KvmSregs.apic_base.offset  # 272: after 8 segments, 2 tables and 6 registers


def x2apic_id(cpu_id: int, topology: tuple[int, int, int, int] | None) -> int:
    """cloud-hypervisor's ``get_x2apic_id``: (threads, cores, dies, packages) → thread | core | die | socket."""
    if topology is None:
        return cpu_id
    threads, cores, dies, _ = topology
    tw, cw, dw = ((n - 1).bit_length() for n in (threads, cores, dies))
    thread = cpu_id % threads
    core = cpu_id // threads % cores
    die = cpu_id // (threads * cores) % dies
    socket = cpu_id // (threads * cores * dies)
    return thread | core << tw | die << (tw + cw) | socket << (tw + cw + dw)


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(str(path), f"cannot read: {err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path} line {err.lineno} column {err.colno}", f"not JSON: {err.msg}",
                         "cloud-hypervisor's state.json (a serde_json Snapshot)") from None


def _get(node: Any, key: str, where: str, allowed: str) -> Any:
    if not isinstance(node, dict) or key not in node:
        raise InputError(f"{where}.{key}", "missing", allowed)
    return node[key]


def import_cloud_hypervisor(source: str | Path, options: ImportOptions = NO_OPTIONS) -> ImportResult:
    path = Path(source)
    state_path = path / "state.json" if path.is_dir() else path
    config_path = state_path.with_name("config.json")
    root = _load_json(state_path)
    src = str(state_path)
    label = state_path.name
    cpus = _get(_get(_get(root, "snapshots", src, "a Snapshot with snapshots"), CPU_MANAGER, f"{src} snapshots",
                     f'a "{CPU_MANAGER}" component'), "snapshots", f"{src} snapshots.{CPU_MANAGER}",
                "one child snapshot per vCPU")
    if not isinstance(cpus, dict) or not cpus:
        raise InputError(f"{src} snapshots.{CPU_MANAGER}.snapshots", "no vCPU snapshots", "children keyed by cpu_id")
    try:
        cpu_ids = sorted(int(k) for k in cpus)
    except ValueError:
        raise InputError(f"{src} snapshots.{CPU_MANAGER}.snapshots", f"keys {sorted(cpus)}",
                         "cpu_id numbers") from None

    topology, max_apic_id, config_prov = _config(config_path, cpu_ids)
    found_flags: tuple[frozenset[X2ApicApiFlag], Provenance] | None = None
    if max_apic_id is not None:
        on = max_apic_id > MAX_SUPPORTED_CPUS_LEGACY
        found_flags = (frozenset(X2ApicApiFlag) if on else frozenset(),
                       derived(config_path.name, f"max_apic_id() = {max_apic_id} {'>' if on else '<='} 254: "
                               f"cloud-hypervisor {'enables' if on else 'does not enable'} X2APIC_API "
                               "(vmm/src/vm.rs)", config_prov))
    flag_set, flag_prov = flags_from(options, found_flags, ImportFormat.CLOUD_HYPERVISOR)
    use32 = X2ApicApiFlag.USE_32BIT_IDS in flag_set

    vcpus = []
    for cpu_id in cpu_ids:
        key = f"snapshots.{CPU_MANAGER}.snapshots.{cpu_id}.snapshot_data.state"
        data = _get(cpus[str(cpu_id)], "snapshot_data", f"{src} snapshots.{CPU_MANAGER}.snapshots.{cpu_id}",
                    "the vCPU's snapshot_data")
        state_text = _get(data, "state", f"{src} {key[:-6]}", "the vCPU state as a JSON string")
        if not isinstance(state_text, str):
            raise InputError(f"{src} {key}", "not a string", "serde_json text of CpuState")
        try:
            state = json.loads(state_text)
        except json.JSONDecodeError as err:
            raise InputError(f"{src} {key} column {err.colno}", f"not JSON: {err.msg}", "CpuState as JSON") from None
        if not isinstance(state, dict) or "Kvm" not in state:
            raise InputError(f"{src} {key}", f"variant {sorted(state) if isinstance(state, dict) else state!r}",
                             "CpuState::Kvm (the only x86 variant apicmap reads)")
        kvm = state["Kvm"]
        base, base_where = _apic_base(_get(kvm, "sregs", f"{src} {key} → Kvm", "kvm_sregs"), f"{key} → Kvm.sregs",
                                      src)
        regs = _get(_get(kvm, "lapic_state", f"{src} {key} → Kvm", "LapicState"), "regs",
                    f"{src} {key} → Kvm.lapic_state", f"{PAGE_SIZE} bytes")
        regs_where = f"{src} {key} → Kvm.lapic_state.regs"
        if not isinstance(regs, list) or len(regs) != PAGE_SIZE:
            raise InputError(regs_where, f"{len(regs) if isinstance(regs, list) else type(regs).__name__} entries",
                             f"a list of exactly {PAGE_SIZE} bytes (c_char, -128..255)")
        for i, b in enumerate(regs):
            if isinstance(b, bool) or not isinstance(b, int) or not -128 <= b <= 255:
                raise InputError(f"{regs_where}[{i}]", f"bad value {b!r}", "-128..255 (c_char)")
        page = bytes(b & 0xFF for b in regs)  # c_char is signed on x86: mask back to the byte
        vid = x2apic_id(cpu_id, topology)
        mode = mode_from_apic_base(base, f"{src} {base_where}")

        def location(offset: int, _key: str = key) -> str:
            return f"{_key} → Kvm.lapic_state.regs[0x{offset:03x}..0x{offset + 3:03x}]"

        vcpu, prov = vcpu_from_page(page, vcpu_id=vid, mode=mode, use_32bit_ids=use32, source=src, label=label,
                                    mode_prov=read(label, base_where, base, "IA32_APIC_BASE: EN bit 11, EXTD bit 10"),
                                    location=location)
        prov["vcpu_id"] = (derived(label, f"cpu_id {cpu_id} → KVM vcpu_id {vid} (get_x2apic_id, "
                                           f"topology {topology or 'none'})", f"snapshots.{CPU_MANAGER}.snapshots",
                                           str(cpu_id)))
        vcpus.append((vcpu, prov))
    lacking = [] if max_apic_id is not None else [
        Lack(item="config.json", resolution="absent: vcpu_id = cpu_id assumed (no topology); "
             "X2APIC_API flags from the x2apic_api option")]
    return assemble(ImportFormat.CLOUD_HYPERVISOR, src, vcpus, options=options, flags=(flag_set, flag_prov),
                    order_note=derived(label, "ascending cpu_id: CpuManager::create_vcpus creates them in that order "
                                       "(vmm/src/cpu.rs)"), lacking=lacking)


def _apic_base(sregs: Any, where: str, src: str) -> tuple[int, str]:
    """IA32_APIC_BASE from the serialized kvm_sregs: raw bytes (kvm-bindings' serde), or a map."""
    if isinstance(sregs, list):
        if len(sregs) < KVM_SREGS_APIC_BASE + 8 or \
                any(isinstance(b, bool) or not isinstance(b, int) or not 0 <= b <= 255 for b in sregs):
            raise InputError(f"{src} {where}", f"{len(sregs)} entries",
                             f"the {ctypes.sizeof(KvmSregs)} bytes of struct kvm_sregs (0..255 each)")
        at = f"{where}[{KVM_SREGS_APIC_BASE}..{KVM_SREGS_APIC_BASE + 7}]"
        return int.from_bytes(bytes(sregs[KVM_SREGS_APIC_BASE:KVM_SREGS_APIC_BASE + 8]), "little"), at
    base = sregs.get("apic_base") if isinstance(sregs, dict) else None
    if isinstance(base, bool) or not isinstance(base, int):
        raise InputError(f"{src} {where}", f"no APIC base in {type(sregs).__name__}",
                         "kvm_sregs as bytes (kvm-bindings) or a map with apic_base")
    return base, f"{where}.apic_base"


def _config(path: Path, cpu_ids: list[int]) -> tuple[tuple[int, int, int, int] | None, int | None, str]:
    """(topology, largest APIC ID, the key read) from config.json, or (None, None, '') without it."""
    if not path.exists():
        return None, None, ""
    config = _load_json(path)
    cpus = _get(config, "cpus", str(path), "VmConfig.cpus")
    max_vcpus = _get(cpus, "max_vcpus", f"{path} cpus", "CpusConfig.max_vcpus")
    if isinstance(max_vcpus, bool) or not isinstance(max_vcpus, int) or max_vcpus < len(cpu_ids):
        raise InputError(f"{path} cpus.max_vcpus", f"bad value {max_vcpus!r}", f">= {len(cpu_ids)} (the vCPUs saved)")
    topo = cpus.get("topology")
    if topo is None:
        # VmConfig::max_apic_id (vmm/src/vm_config.rs) returns max_vcpus itself without a topology.
        return None, max_vcpus, f"cpus.max_vcpus = {max_vcpus}"
    names = ("threads_per_core", "cores_per_die", "dies_per_package", "packages")
    values = []
    for name in names:
        v = _get(topo, name, f"{path} cpus.topology", "CpuTopology fields " + ", ".join(names))
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"{path} cpus.topology.{name}", f"bad value {v!r}", "an integer >= 1")
        values.append(v)
    t = (values[0], values[1], values[2], values[3])
    return t, x2apic_id(t[0] * t[1] * t[2] * t[3] - 1, t), "cpus.topology = " + ", ".join(
        f"{n}={v}" for n, v in zip(names, values, strict=True))
