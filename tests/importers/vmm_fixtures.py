"""Build cloud-hypervisor and crosvm snapshot fixtures from pages the real kvm engine dumps.

Neither VMM runs here, so the files are assembled from the structures their sources define
(see each fixture's README), filled with ``KVM_GET_LAPIC`` / ``KVM_GET_MSRS`` / ``KVM_GET_SREGS``
/ ``KVM_GET_MP_STATE`` values of a VM this machine's kernel configured. Run as a script to
rewrite the fixtures::

    python tests/importers/vmm_fixtures.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from apicmap import ApicMode, Vcpu, VmState
from apicmap.importers.cbor import dumps
from apicmap.importers.cloud_hypervisor import x2apic_id
from apicmap.importers.kvm_dump import DumpedVcpu

DATA = Path(__file__).parent / "data"

# cloud-hypervisor, --cpus boot=6,topology=1:3:1:2 (threads:cores:dies:packages): KVM vcpu_ids are
# get_x2apic_id(cpu_id) = 0, 1, 2, 4, 5, 6. A Linux guest in x2APIC mode, no X2APIC_API (max id 6).
CH_TOPOLOGY = (1, 3, 1, 2)
CH_VM = VmState(tuple(Vcpu(x2apic_id(i, CH_TOPOLOGY), ApicMode.X2APIC) for i in range(6)))

# crosvm, 4 vCPUs, in-kernel irqchip, a Linux guest with the flat driver; vCPU 3 offline (SVR off).
CROSVM_VM = VmState(tuple(Vcpu(i, ldr=(1 << i) << 24, sw_enabled=i != 3) for i in range(4)))

_MP_STATES = {0: "Runnable", 1: "Uninitialized", 2: "InitReceived", 3: "Halted", 4: "SipiReceived"}


def dump(vm: VmState) -> list[DumpedVcpu]:
    from apicmap.importers.kvm_dump import dump_prepared

    from .engines import engine

    return dump_prepared(engine("kvm"), vm)


def cloud_hypervisor_state(dumped: list[DumpedVcpu]) -> dict[str, Any]:
    """vm-migration ``Snapshot`` of the VM with the CPU manager's vCPU children (vmm/src/cpu.rs)."""
    children = {}
    for cpu_id, d in enumerate(dumped):
        state = {"Kvm": {
            # kvm-bindings serializes kvm_sregs and kvm_mp_state as their raw bytes (src/serialize.rs).
            "sregs": list(d.sregs_raw),
            "lapic_state": {"regs": [b - 256 if b > 127 else b for b in d.page]},  # c_char: signed
            "mp_state": list(d.mp_state.to_bytes(4, "little")),
        }}
        children[str(cpu_id)] = {"snapshots": {}, "snapshot_data": {"state": json.dumps(state)}}
    return {"snapshots": {"cpu-manager": {"snapshots": children, "snapshot_data": None}},
            "snapshot_data": {"state": json.dumps({"clock": None, "common_cpuid": []})}}


def cloud_hypervisor_config(count: int, max_vcpus: int, topology: tuple[int, int, int, int] | None) -> dict[str, Any]:
    cpus: dict[str, Any] = {"boot_vcpus": count, "max_vcpus": max_vcpus, "kvm_hyperv": False, "max_phys_bits": 46}
    if topology:
        cpus["topology"] = dict(zip(("threads_per_core", "cores_per_die", "dies_per_package", "packages"),
                                    topology, strict=True))
    return {"cpus": cpus}


def crosvm_irqchip(dumped: list[DumpedVcpu], *, split: bool) -> dict[str, Any]:
    """devices/src/irqchip/x86_64.rs ``IrqChipSnapshot``; the IOAPIC, PIC and PIT states are left empty."""
    lapics = [{"regs": [int.from_bytes(d.page[16 * i:16 * i + 4], "little") for i in range(64)]} for d in dumped]
    specific: dict[str, Any] = {"routes": []}
    if not split:  # KvmKernelIrqChipSnapshot (devices/src/irqchip/kvm/x86_64.rs)
        specific["apic_base"] = [d.apic_base for d in dumped]
        specific["interrupt_bitmap"] = [d.sregs["interrupt_bitmap"] for d in dumped]
    return {"ioapic_state": {}, "lapic_state": lapics, "pic_state_1": {}, "pic_state_2": {}, "pit_state": {},
            "chip_specific_state": specific, "mp_state": [_MP_STATES.get(d.mp_state, "Runnable") for d in dumped]}


def write_crosvm(directory: Path, dumped: list[DumpedVcpu], *, split: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "irqchip").write_bytes(dumps(crosvm_irqchip(dumped, split=split)))
    if split:  # the APIC base then lives only in each vCPU's VcpuSnapshot.msrs (hypervisor/src/x86_64.rs)
        (directory / "vcpu").mkdir(exist_ok=True)
        for d in dumped:
            snap = {"vcpu_id": d.vcpu_id, "msrs": {0x1B: d.apic_base}, "tsc_offset": 0}
            (directory / "vcpu" / f"vcpu{d.vcpu_id}").write_bytes(dumps(snap))


def write_cloud_hypervisor(directory: Path, dumped: list[DumpedVcpu], *, max_vcpus: int,
                           topology: tuple[int, int, int, int] | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "state.json").write_text(json.dumps(cloud_hypervisor_state(dumped)), encoding="utf-8")
    (directory / "config.json").write_text(json.dumps(cloud_hypervisor_config(len(dumped), max_vcpus, topology),
                                                      indent=1) + "\n", encoding="utf-8")


def main() -> int:
    write_cloud_hypervisor(DATA / "cloud-hypervisor-2s3c", dump(CH_VM), max_vcpus=6, topology=CH_TOPOLOGY)
    write_crosvm(DATA / "crosvm-4vcpu", dump(CROSVM_VM), split=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
