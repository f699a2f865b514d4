"""qemu-info-lapic (captured text) and the live QMP source (a real QEMU started here)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from apicmap import ApicMode, InputError
from apicmap.files.scenario import parse_scenario
from apicmap.importers import ImportFormat, ImportOptions, Topology, import_source, scenario_from_import
from apicmap.importers.qemu_info_lapic import parse_info_lapic

from .qemu_capture import qemu_available, running_qemu

DATA = Path(__file__).parent / "data"
XAPIC = ImportOptions(apic_mode=ApicMode.XAPIC, x2apic_api=frozenset())


def fixture_ids(name: str) -> tuple[int, ...]:
    cpus = json.loads((DATA / name / "cpus.json").read_text())["cpus"]
    return tuple(c["apic-id"] for c in sorted(cpus, key=lambda c: c["cpu-index"]))


def test_captured_text_with_apic_ids_from_qom() -> None:
    ids = fixture_ids("qemu-7.2-tcg-2s3c")
    result = import_source("qemu-info-lapic", DATA / "qemu-7.2-tcg-2s3c" / "info-lapic.txt",
                           replace(XAPIC, apic_ids=ids))
    assert result.vm.vcpu_ids == ids
    text = (DATA / "qemu-7.2-tcg-2s3c" / "info-lapic.txt").read_text()
    blocks = parse_info_lapic(text, "t")
    for block, vcpu in zip(blocks, result.vm.vcpus, strict=True):
        assert vcpu.sw_enabled == bool(block.svr & 0x100)
        assert vcpu.dfr >> 28 == block.dest_mode and vcpu.ldr >> 24 == block.log_dest
        assert vcpu.xapic_id == vcpu.vcpu_id and vcpu.mode is ApicMode.XAPIC
    prov = result.vcpu_provenance[ids[3]]
    assert prov["sw_enabled"].location == f"line {blocks[3].svr_line} SPIV"
    assert prov["vcpu_id"].location == "apic_ids"


def test_topology_option_reproduces_qemus_numbering() -> None:
    ids = fixture_ids("qemu-7.2-tcg-2s3c")
    result = import_source("qemu-info-lapic", DATA / "qemu-7.2-tcg-2s3c" / "info-lapic.txt",
                           replace(XAPIC, topology=Topology.parse("sockets=2,cores=3")))
    assert result.vm.vcpu_ids == ids  # 0, 1, 2, 4, 5, 6: the 3 cores take 2 bits
    assert [Topology(cores=4).apic_id(i) for i in range(4)] == list(fixture_ids("qemu-7.2-tcg-smp4"))


def test_missing_id_mode_and_flags_are_errors_naming_the_option() -> None:
    path = DATA / "qemu-7.2-tcg-smp4" / "info-lapic.txt"
    with pytest.raises(InputError) as err:
        import_source("qemu-info-lapic", path, ImportOptions(x2apic_api=frozenset()))
    assert err.value.where == "option apic_mode"
    with pytest.raises(InputError) as err:
        import_source("qemu-info-lapic", path, ImportOptions(apic_mode=ApicMode.XAPIC))
    assert err.value.where == "option x2apic_api"
    with pytest.raises(InputError) as err:
        import_source("qemu-info-lapic", path, XAPIC)
    assert err.value.where == "option apic_ids"


def test_truncated_and_foreign_text(tmp_path: Path) -> None:
    text = (DATA / "qemu-7.2-tcg-smp4" / "info-lapic.txt").read_text()
    cut = text[:text.index("APR", text.index("CPU 3"))]  # the last block lost its last line
    (tmp_path / "cut.txt").write_text(cut)
    with pytest.raises(InputError) as err:
        import_source("qemu-info-lapic", tmp_path / "cut.txt", replace(XAPIC, apic_ids=(0, 1, 2, 3)))
    assert "CPU 3 has no APR/TPR/DFR/LDR line" in str(err.value) and "line" in err.value.where
    (tmp_path / "foreign.txt").write_text("(qemu) info registers\nRAX=0000000000000000\n")
    with pytest.raises(InputError, match="no 'dumping local APIC state"):
        import_source("qemu-info-lapic", tmp_path / "foreign.txt", XAPIC)


@pytest.mark.skipif(not qemu_available(), reason="qemu-system-x86_64 is not installed")
@pytest.mark.parametrize("smp", ["4", "6,sockets=2,cores=3"])
def test_live_qmp_finds_every_vcpu_and_its_apic_id(smp: str) -> None:
    with running_qemu(smp) as sock:
        result = import_source("qemu-info-lapic", f"qmp:{sock}", XAPIC)
        again = import_source("qmp", f"qmp:{sock}", XAPIC)
    count = int(smp.split(",")[0])
    topology = Topology.parse(smp.partition(",")[2] or f"cores={count}")
    assert result.format is ImportFormat.QMP and again.vm == result.vm
    assert result.vm.vcpu_ids == tuple(topology.apic_id(i) for i in range(count))
    assert result.vm.vcpus[0].sw_enabled  # the BSP runs the firmware with its APIC enabled
    assert result.extra["QEMU"].startswith("7.")
    assert result.vcpu_provenance[result.vm.vcpu_ids[-1]]["vcpu_id"].location.startswith("qom-get /machine/")
    scenario = parse_scenario(tomllib.loads(scenario_from_import(result)), "live.toml")
    assert scenario.vm == result.vm


def test_live_qmp_without_qemu_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        import_source("qemu-info-lapic", f"qmp:{tmp_path}/nothing.sock", XAPIC)
    assert err.value.where == f"qmp:{tmp_path}/nothing.sock" and "cannot connect" in err.value.problem
