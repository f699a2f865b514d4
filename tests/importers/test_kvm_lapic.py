"""kvm-lapic: real KVM_GET_LAPIC / KVM_GET_MSRS captures from this machine's kernel, imported back."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from apicmap import ApicMode, IcrInjection, Injection, InputError, IoapicInjection, MsiInjection, Vcpu, VmState
from apicmap.files.scenario import parse_scenario
from apicmap.importers import ImportOptions, X2ApicApiFlag, import_source, scenario_from_import
from apicmap.importers.kvm_dump import dump_prepared
from apicmap.importers.kvm_lapic import write_kvm_lapic_dir
from apicmap.importers.writer import ImportedCase

from .engines import answers, engine

MSI_BASE = 0xFEE00000  # MSI address: destination ID in bits 19:12, DM bit 2 (SDM 11.11.1)


def msi(dest: int, data: int, *, logical: bool = False) -> MsiInjection:
    return MsiInjection(MSI_BASE | (dest & 0xFF) << 12 | (4 if logical else 0), dest & 0xFFFFFF00, data)


def flags_of(vm: VmState) -> frozenset[X2ApicApiFlag]:
    return frozenset(f for f, on in ((X2ApicApiFlag.USE_32BIT_IDS, vm.use_32bit_ids),
                                     (X2ApicApiFlag.DISABLE_BROADCAST_QUIRK, vm.disable_broadcast_quirk)) if on)


def aliased_256(use_32bit_ids: bool) -> VmState:
    """256 vCPUs, created out of id order: aliased xAPIC IDs (vCPU 256 and vCPU 0 both have ID 0; vCPUs
    10, 11 and 32 share 0x20; 200 and 5 share 5), logical flat IDs, a sw-disabled, a hw-disabled and an
    x2APIC vCPU."""
    vcpus = [Vcpu(256), Vcpu(300, ApicMode.X2APIC)]
    for i in range(254):
        kwargs: dict[str, object] = {}
        if i in (10, 11):
            kwargs["xapic_id"] = 0x20
        if i == 200:
            kwargs["xapic_id"] = 5
        if i < 8:
            kwargs["ldr"] = (1 << i) << 24
        if i == 50:
            kwargs["sw_enabled"] = False
        if i == 60:
            kwargs["mode"] = ApicMode.DISABLED
        if i == 70:
            kwargs["tpr"] = 0x40
        vcpus.append(Vcpu(i, **kwargs))  # type: ignore[arg-type]
    return VmState(tuple(vcpus), use_32bit_ids=use_32bit_ids, disable_broadcast_quirk=use_32bit_ids)


def probes() -> list[Injection]:
    fixed = 0x40  # MSI data: vector 7:0, delivery mode 10:8 (SDM 11.11.2)
    out: list[Injection] = [msi(d, fixed) for d in (0, 5, 0x20, 0x2C, 50, 60, 70, 200, 253, 0xFF)]
    out += [msi(300, fixed + 1), msi(0x0F, fixed + 2, logical=True), msi(0x0F, 0x100 | 0x43, logical=True),
            msi(5, 0x400), msi(0xFF, 0x400)]
    # x2APIC ICR from vCPU 300: destination in bits 63:32 (SDM 11.12.9).
    out += [IcrInjection(300, 0x20 << 32 | 0x50), IcrInjection(300, 0xFFFFFFFF << 32 | 0x51)]
    # IOAPIC redirection entry: vector 7:0, destination 63:56 (82093AA datasheet, 3.2.4).
    out.append(IoapicInjection(16, 5 << 56 | 0x60))
    return out


def capture(vm: VmState, directory: Path, *, with_vm_toml: bool = True) -> None:
    dumped = dump_prepared(engine("kvm"), vm)
    assert [d.vcpu_id for d in dumped] == list(vm.vcpu_ids)
    write_kvm_lapic_dir(directory, [(d.vcpu_id, d.page, d.apic_base) for d in dumped],
                        x2apic_api=flags_of(vm) if with_vm_toml else None,
                        creation_order=vm.vcpu_ids if with_vm_toml else None)


@pytest.mark.kvm
@pytest.mark.parametrize("use_32bit_ids", [False, True], ids=["legacy-ids", "use_32bit_ids"])
def test_256_vcpus_aliased_ids_round_trip_on_every_engine(tmp_path: Path, use_32bit_ids: bool) -> None:
    vm = aliased_256(use_32bit_ids)
    capture(vm, tmp_path)
    result = import_source("kvm-lapic", tmp_path)
    assert result.vm == vm
    assert result.vm.vcpu_ids == vm.vcpu_ids  # creation order from vm.toml, not id order
    prov = result.vcpu_provenance[300]
    assert prov["xapic_id"].raw == (f"0x{300:08x}" if use_32bit_ids else f"0x{(300 << 24) & 0xFFFFFFFF:08x}")
    assert result.vcpu_provenance[11]["xapic_id"].raw == "0x20000000"
    assert result.vcpu_provenance[11]["xapic_id"].location == "offset 0x020"

    injections = probes()
    text = scenario_from_import(result, [ImportedCase(name=f"probe {i}", injection=inj)
                                         for i, inj in enumerate(injections)])
    assert f"vcpu{11}.lapic offset 0x020 = 0x20000000" in text
    scenario = parse_scenario(tomllib.loads(text), "imported.toml")
    assert scenario.vm == vm and scenario.vm.vcpu_ids == vm.vcpu_ids
    assert [c.injection for c in scenario.interrupts] == injections
    for name in ("model", "arch", "kvm"):
        assert answers(name, scenario.vm, injections) == answers(name, vm, injections), name


@pytest.mark.kvm
def test_x2apic_cluster_vm_round_trip(tmp_path: Path) -> None:
    vm = VmState(tuple(Vcpu(i, ApicMode.X2APIC) for i in (0, 1, 2, 17, 18, 33)), use_32bit_ids=True)
    capture(vm, tmp_path)
    result = import_source("kvm-lapic", tmp_path)
    assert result.vm == vm
    injections: list[Injection] = [msi(0x10003, 0x30, logical=True), msi(17, 0x31), msi(0xFFFFFFFF, 0x32),
                                   IcrInjection(0, (0x2 << 16 | 0x1) << 32 | 0x800 | 0x33)]
    for name in ("model", "arch", "kvm"):
        assert answers(name, result.vm, injections) == answers(name, vm, injections), name


@pytest.mark.kvm
def test_flags_are_required_when_the_directory_lacks_them(tmp_path: Path) -> None:
    vm = aliased_256(True)
    capture(vm, tmp_path, with_vm_toml=False)
    with pytest.raises(InputError) as err:
        import_source("kvm-lapic", tmp_path)
    assert err.value.where == "option x2apic_api"
    # A wrong setting is caught by the x2APIC ID register, which encodes the flag.
    with pytest.raises(InputError) as err:
        import_source("kvm-lapic", tmp_path, ImportOptions(x2apic_api=frozenset()))
    assert err.value.where.endswith("vcpu300.lapic offset 0x020")
    result = import_source("kvm-lapic", tmp_path, ImportOptions(
        x2apic_api=flags_of(vm), creation_order=vm.vcpu_ids, vector_hashing=True, smm=False))
    assert result.vm == vm
    assert result.vm_provenance["use_32bit_ids"].location == "x2apic_api"
    assert not [lack for lack in result.lacking if lack.item in ("vector_hashing", "smm", "creation_order")]


@pytest.mark.kvm
def test_bad_input_is_one_line_naming_the_place(tmp_path: Path) -> None:
    vm = VmState((Vcpu(0), Vcpu(1)))
    capture(vm, tmp_path)
    page = (tmp_path / "vcpu1.lapic").read_bytes()
    (tmp_path / "vcpu1.lapic").write_bytes(page[:1000])
    with pytest.raises(InputError) as err:
        import_source("kvm-lapic", tmp_path)
    assert err.value.where.endswith("vcpu1.lapic") and "1000 bytes" in str(err.value)
    assert "\n" not in str(err.value)
    (tmp_path / "vcpu1.lapic").write_bytes(page)
    (tmp_path / "vcpu1.apic_base").write_text("fee00900h\n")
    with pytest.raises(InputError) as err:
        import_source("kvm-lapic", tmp_path)
    assert err.value.where.endswith("vcpu1.apic_base") and "not a number" in str(err.value)
    (tmp_path / "vcpu1.apic_base").write_text(f"{0xFEE00000 | 1 << 10:#x}\n")  # EXTD without EN
    with pytest.raises(InputError, match="EXTD"):
        import_source("kvm-lapic", tmp_path)
    (tmp_path / "vcpu1.apic_base").unlink()
    with pytest.raises(InputError) as err:
        import_source("kvm-lapic", tmp_path)
    assert err.value.where.endswith("vcpu1.apic_base") and err.value.problem == "missing"


@pytest.mark.kvm
def test_vcpu_ids_beyond_kvm_and_unknown_vm_keys(tmp_path: Path) -> None:
    capture(VmState((Vcpu(0), Vcpu(1))), tmp_path)
    (tmp_path / "vm.toml").write_text("[vm]\nx2apic_api = []\nmax_vcpus = 3\n")
    with pytest.raises(InputError) as err:
        import_source("kvm-lapic", tmp_path)
    assert err.value.where.endswith("vm.toml [vm] max_vcpus") and err.value.problem == "unknown key"
    (tmp_path / "vm.toml").write_text("[vm]\nx2apic_api = []\n")
    (tmp_path / "vcpu1.lapic").rename(tmp_path / "vcpu5000.lapic")
    (tmp_path / "vcpu1.apic_base").rename(tmp_path / "vcpu5000.apic_base")
    with pytest.raises(InputError, match="vCPU id 5000"):
        import_source("kvm-lapic", tmp_path)
