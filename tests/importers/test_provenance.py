"""Every importer names a source for every vCPU value and every VM setting."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from apicmap import ApicMode, Vcpu
from apicmap.importers import Basis, ImportOptions, ImportResult, LinuxApicDriver, Topology, import_source

DATA = Path(__file__).parent / "data"
VCPU_FIELDS = {f.name for f in dataclasses.fields(Vcpu)}
VM_KEYS = {"use_32bit_ids", "disable_broadcast_quirk", "vector_hashing", "smm", "creation_order"}


def imports() -> list[tuple[str, ImportResult]]:
    out = [
        ("cloud-hypervisor", import_source("cloud-hypervisor", DATA / "cloud-hypervisor-2s3c")),
        ("crosvm", import_source("crosvm", DATA / "crosvm-4vcpu")),
        ("linux-guest flat", import_source("linux-guest", DATA / "linux-guest-6.1", ImportOptions(
            x2apic_api=frozenset(), linux_apic_driver=LinuxApicDriver.FLAT))),
        ("linux-guest physical flat", import_source("linux-guest", DATA / "linux-guest-6.1-smp12",
                                                    ImportOptions(x2apic_api=frozenset()))),
        ("linux-guest as x2apic", import_source("linux-guest", DATA / "linux-guest-6.1-smp12", ImportOptions(
            x2apic_api=frozenset(), linux_apic_driver=LinuxApicDriver.PHYSICAL_X2APIC))),
    ]
    for mode in (ApicMode.XAPIC, ApicMode.X2APIC):
        out.append((f"qemu {mode.value}", import_source(
            "qemu-info-lapic", DATA / "qemu-7.2-tcg-2s3c" / "info-lapic.txt",
            ImportOptions(apic_mode=mode, x2apic_api=frozenset(), topology=Topology(sockets=2, cores=3)))))
    return out


@pytest.mark.parametrize(("name", "result"), imports(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_value_has_a_named_source(name: str, result: ImportResult) -> None:
    assert set(result.vm_provenance) == VM_KEYS, name
    for vcpu in result.vm.vcpus:
        prov = result.vcpu_provenance[vcpu.vcpu_id]
        assert set(prov) == VCPU_FIELDS, (name, vcpu.vcpu_id, VCPU_FIELDS - set(prov))
        for field, p in prov.items():
            assert p.describe(), (name, field)
            if p.basis is Basis.READ:
                assert p.source and p.location, (name, field, p)
    defaults = {k for k, p in result.vm_provenance.items() if p.basis is Basis.DEFAULT}
    assert defaults <= {lack.item for lack in result.lacking}, name  # a default is always reported
