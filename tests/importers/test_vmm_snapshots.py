"""cloud-hypervisor and crosvm snapshots: fixtures built from the VMMs' structures with real KVM pages."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from apicmap import ApicMode, Injection, InputError, MsiInjection, Vcpu, VmState
from apicmap.files.scenario import parse_scenario
from apicmap.importers import ImportOptions, X2ApicApiFlag, import_source, scenario_from_import
from apicmap.importers.cbor import CborError, dumps, loads

from .engines import answers, engines_here
from .vmm_fixtures import CH_VM, CROSVM_VM, dump, write_cloud_hypervisor, write_crosvm

DATA = Path(__file__).parent / "data"


def probes(vm: VmState) -> list[Injection]:
    """A physical MSI to each vCPU's destination ID, a logical flat MSI and a broadcast."""
    out: list[Injection] = []
    for v in vm.vcpus:
        dest = v.vcpu_id if v.mode is ApicMode.X2APIC else v.xapic_id
        out.append(MsiInjection(0xFEE00000 | (dest & 0xFF) << 12, dest & 0xFFFFFF00, 0x40))
    return [*out, MsiInjection(0xFEE0F004, 0, 0x41), MsiInjection(0xFEEFF000, 0, 0x42)]


def same_on_every_engine(imported: VmState, original: VmState) -> None:
    for name in engines_here():
        assert answers(name, imported, probes(original)) == answers(name, original, probes(original)), name


def test_cloud_hypervisor_fixture() -> None:
    result = import_source("cloud-hypervisor", DATA / "cloud-hypervisor-2s3c")
    assert result.vm == CH_VM  # vcpu_ids 0, 1, 2, 4, 5, 6 from the topology; no X2APIC_API
    assert "max_apic_id() = 6 <= 254" in result.vm_provenance["use_32bit_ids"].note
    assert result.vcpu_provenance[4]["vcpu_id"].note.startswith("cpu_id 3 → KVM vcpu_id 4")
    loc = result.vcpu_provenance[4]["mode"].location
    assert loc == "snapshots.cpu-manager.snapshots.3.snapshot_data.state → Kvm.sregs[272..279]"
    same_on_every_engine(result.vm, CH_VM)
    scenario = parse_scenario(tomllib.loads(scenario_from_import(result)), "ch.toml")
    assert scenario.vm == CH_VM


@pytest.mark.kvm
def test_cloud_hypervisor_above_254_enables_x2apic_api(tmp_path: Path) -> None:
    # max_vcpus 256 (> 254): cloud-hypervisor enables both X2APIC_API flags, so IDs are 32-bit.
    vm = VmState(tuple(Vcpu(i, ApicMode.X2APIC) for i in range(4)), use_32bit_ids=True,
                 disable_broadcast_quirk=True)
    write_cloud_hypervisor(tmp_path, dump(vm), max_vcpus=256, topology=None)
    result = import_source("cloud-hypervisor", tmp_path / "state.json")
    assert result.vm == vm
    same_on_every_engine(result.vm, vm)
    # Without config.json the flags are not known: an error names the option, and the option is used.
    (tmp_path / "config.json").unlink()
    with pytest.raises(InputError) as err:
        import_source("cloud-hypervisor", tmp_path)
    assert err.value.where == "option x2apic_api"
    flags = frozenset(X2ApicApiFlag)
    assert import_source("cloud-hypervisor", tmp_path, ImportOptions(x2apic_api=flags)).vm == vm


def test_cloud_hypervisor_bad_input(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"snapshots": {"cpu-manager": ')
    with pytest.raises(InputError) as err:
        import_source("cloud-hypervisor", tmp_path)
    assert "not JSON" in err.value.problem and "line 1 column" in err.value.where
    state = json.loads((DATA / "cloud-hypervisor-2s3c" / "state.json").read_text())
    vcpu = state["snapshots"]["cpu-manager"]["snapshots"]["2"]["snapshot_data"]
    inner = json.loads(vcpu["state"])
    inner["Kvm"]["lapic_state"]["regs"] = inner["Kvm"]["lapic_state"]["regs"][:1000]
    vcpu["state"] = json.dumps(inner)
    (tmp_path / "state.json").write_text(json.dumps(state))
    with pytest.raises(InputError) as err:
        import_source("cloud-hypervisor", tmp_path, ImportOptions(x2apic_api=frozenset()))
    assert err.value.where.endswith("snapshots.2.snapshot_data.state → Kvm.lapic_state.regs")
    assert "1000 entries" in err.value.problem
    inner["Kvm"]["lapic_state"]["regs"] = json.loads(
        state["snapshots"]["cpu-manager"]["snapshots"]["1"]["snapshot_data"]["state"])["Kvm"]["lapic_state"]["regs"]
    inner["Kvm"]["sregs"] = inner["Kvm"]["sregs"][:200]
    vcpu["state"] = json.dumps(inner)
    (tmp_path / "state.json").write_text(json.dumps(state))
    with pytest.raises(InputError) as err:
        import_source("cloud-hypervisor", tmp_path, ImportOptions(x2apic_api=frozenset()))
    assert err.value.where.endswith("snapshots.2.snapshot_data.state → Kvm.sregs") and "200 entries" in str(err.value)


def test_crosvm_fixture_kernel_irqchip() -> None:
    result = import_source("crosvm", DATA / "crosvm-4vcpu")
    assert result.vm == CROSVM_VM
    assert result.vcpu_provenance[2]["ldr"].location == "lapic_state[2].regs[13]"
    assert result.vcpu_provenance[2]["mode"].location == "chip_specific_state.apic_base[2]"
    same_on_every_engine(result.vm, CROSVM_VM)


@pytest.mark.kvm
def test_crosvm_split_irqchip_reads_the_vcpu_fragments(tmp_path: Path) -> None:
    vm = VmState((Vcpu(0, ApicMode.X2APIC), Vcpu(1, ApicMode.X2APIC), Vcpu(2, mode=ApicMode.DISABLED)))
    dumped = dump(vm)
    write_crosvm(tmp_path / "snap", dumped, split=True)
    result = import_source("crosvm", tmp_path / "snap")
    assert result.vm == vm
    assert result.vcpu_provenance[1]["mode"].location == "msrs[0x1b]"
    # Without the vCPU fragments, the mode must be given.
    for f in (tmp_path / "snap" / "vcpu").iterdir():
        f.unlink()
    with pytest.raises(InputError) as err:
        import_source("crosvm", tmp_path / "snap" / "irqchip")
    assert err.value.where == "option apic_mode"
    forced = import_source("crosvm", tmp_path / "snap", ImportOptions(apic_mode=ApicMode.X2APIC))
    assert forced.vm.vcpu(2).mode is ApicMode.X2APIC  # the user's statement wins, and is reported
    assert forced.vcpu_provenance[2]["mode"].location == "apic_mode"


def test_crosvm_bad_input(tmp_path: Path) -> None:
    data = (DATA / "crosvm-4vcpu" / "irqchip").read_bytes()
    (tmp_path / "irqchip").write_bytes(data[:-100])
    with pytest.raises(InputError) as err:
        import_source("crosvm", tmp_path)
    assert "not CBOR: truncated" in err.value.problem and " byte " in err.value.where
    chip = loads(data)
    chip["lapic_state"][1]["regs"] = chip["lapic_state"][1]["regs"][:60]
    (tmp_path / "irqchip").write_bytes(dumps(chip))
    with pytest.raises(InputError) as err:
        import_source("crosvm", tmp_path)
    assert err.value.where.endswith("lapic_state[1].regs") and "60 registers" in err.value.problem
    (tmp_path / "enc_metadata").write_bytes(b"")
    with pytest.raises(InputError, match="encrypted"):
        import_source("crosvm", tmp_path)


def test_cbor_round_trip_and_errors() -> None:
    value = {"a": [0, 23, 24, 255, 256, 65536, 2**32, 2**64 - 1, -1, -500], "b": {27: b"\x00\x01", "t": True},
             "n": None, "f": 1.5, "s": "é"}
    assert loads(dumps(value)) == value
    assert loads(bytes.fromhex("9f0102ff")) == [1, 2]  # indefinite-length array
    assert loads(bytes.fromhex("c11a514b67b0")) == 1363896240  # a tagged epoch time
    with pytest.raises(CborError):
        loads(bytes.fromhex("0102"))  # trailing bytes
    with pytest.raises(CborError):
        loads(bytes.fromhex("1c"))  # reserved additional information


def test_an_option_overriding_the_source_is_recorded() -> None:
    result = import_source("crosvm", DATA / "crosvm-4vcpu",
                           ImportOptions(x2apic_api=frozenset({X2ApicApiFlag.DISABLE_BROADCAST_QUIRK})))
    prov = result.vm_provenance["disable_broadcast_quirk"]
    assert result.vm.disable_broadcast_quirk and "the source says none" in prov.note
