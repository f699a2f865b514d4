"""Scenario files: parsing, defaults, and one-line errors naming the place (docs/scenario.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from apicmap import ApicMode, InputError, IoapicInjection, MsiInjection
from apicmap.files.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))


def parse(text: str):  # type: ignore[no-untyped-def]
    import tomllib

    return parse_scenario(tomllib.loads(text), "t.toml")


def test_defaults_and_overrides() -> None:
    s = parse('[vm]\nvcpus = 3\n[[vcpu]]\nvcpu_id = 2\napic_id = 1\n[[vcpu]]\nvcpu_id = 300\nmode = "x2apic"\n')
    assert s.vm.vcpu_ids == (0, 1, 2, 300)
    assert s.vm.vcpu(2).xapic_id == 1 and s.vm.vcpu(300).mode is ApicMode.X2APIC
    assert s.vm.vcpu(0).sw_enabled and s.vm.vcpu(0).dfr == 0xFFFFFFFF


def test_msi_fields_encode_kvm_form() -> None:
    s = parse('[vm]\nvcpus = 1\n[[interrupt]]\ndest = 0x1234\nvector = 0x40\ndest_mode = "logical"\n')
    inj = s.interrupts[0].injection
    assert inj == MsiInjection(0xFEE34004, 0x1200, 0x4040)


def test_ext_dest_form_is_translated_by_the_vmm() -> None:
    s = parse('[vm]\nvcpus = 1\n[[interrupt]]\ndest = 0x1234\nvector = 0x40\nmsi_format = "ext-dest"\n')
    inj = s.interrupts[0].injection
    assert isinstance(inj, MsiInjection) and inj.address_hi == 0x1200 and inj.address_lo & 0xFE0 == 0


def test_raw_forms() -> None:
    s = parse('[vm]\nvcpus = 2\n[[interrupt]]\nmsi = { address = 0xFEE01000, data = 0x4040 }\n'
              '[[interrupt]]\nrte = 0x0100000000000040\npin = 3\n')
    assert s.interrupts[0].injection == MsiInjection(0xFEE01000, 0, 0x4040)
    assert s.interrupts[1].injection == IoapicInjection(3, 0x0100000000000040)


@pytest.mark.parametrize(("text", "where"), [
    ('[vm]\nvcpus = 0\n', "[vm] vcpus"),
    ('[vm]\nvcpus = 2\nx2apic_api = ["nope"]\n', "x2apic_api"),
    ('[vm]\nvcpus = 2\nkernel = "3.0"\n', "[vm] kernel"),
    ('[vm]\nvcpus = 2\n[[vcpu]]\nvcpu_id = 5000\n', "vcpu_id"),
    ('[vm]\nvcpus = 2\n[[vcpu]]\nmode = "x3apic"\n', "mode"),
    ('[vm]\nvcpus = 2\n[[vcpu]]\nmode = "x2apic"\nldr = 1\n', "ldr"),
    ('[vm]\nvcpus = 2\n[[interrupt]]\ndelivery = "fast"\nvector = 1\n', "#1 delivery"),
    ('[vm]\nvcpus = 2\n[[interrupt]]\nvector = 300\n', "#1 vector"),
    ('[vm]\nvcpus = 2\n[[interrupt]]\nvia = "ipi"\nvector = 1\n', "#1 source"),
    ('[vm]\nvcpus = 2\n[[interrupt]]\nvector = 1\nexpect = [7]\n', "#1 expect"),
    ('[vm]\nvcpus = 2\n[[interrupt]]\nvector = 1\ncolour = 1\n', "colour"),
])
def test_errors_name_the_place_and_allowed_values(text: str, where: str) -> None:
    with pytest.raises(InputError) as err:
        parse(text)
    message = str(err.value)
    assert where in message and "\n" not in message


def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[vm]\nvcpus = 2\n[[interrupt]]\ndelivery = "fast"\nvector = 1\n')
    proc = subprocess.run([sys.executable, "-m", "apicmap", "run", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "delivery" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "apicmap", "run", str(bad), "--engine", "x"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    broken = tmp_path / "broken.toml"
    broken.write_text("[vm\n")
    proc = subprocess.run([sys.executable, "-m", "apicmap", "map", str(broken)], capture_output=True, text=True)
    assert proc.returncode == 2 and "line 1" in proc.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
@pytest.mark.parametrize("engine", ["model", "arch"])
def test_every_example_expectation_holds(path: Path, engine: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "apicmap", "run", str(path), "--engine", engine, "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["ok"] and all(i["check"] in ("pass", "-") for i in payload["interrupts"])
    assert all("explanation" in i for i in payload["interrupts"])


def test_examples_validate_against_the_json_schema() -> None:
    import tomllib

    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "src/apicmap/files/schema/scenario.schema.json").read_text())
    for path in EXAMPLES:
        jsonschema.validate(tomllib.loads(path.read_text()), schema)


def test_patch_case_done_criteria() -> None:
    """Issue #2 'done when': {1, 2} without use_32bit_ids on 6.3+, {1} with it, {1} on 6.2."""
    from apicmap.app.runner import run_scenario

    def receivers(name: str, kernel: str | None = None) -> tuple[int, ...] | None:
        result = run_scenario(load_scenario(ROOT / "examples" / name), "model", kernel)[0]
        return None if result.outcome is None else result.outcome.receivers

    assert receivers("aliased-xapic-id.toml") == (1, 2)
    assert receivers("aliased-xapic-id.toml", "6.3") == (1, 2)
    assert receivers("aliased-xapic-id-32bit-ids.toml") == (1,)
    assert receivers("aliased-xapic-id.toml", "6.2") == (1,)
    assert receivers("aliased-xapic-id-32bit-ids.toml", "6.2") == (1,)


def test_history_scenarios_validate_against_the_json_schema() -> None:
    import tomllib

    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "src/apicmap/files/schema/scenario.schema.json").read_text())
    for path in sorted((ROOT / "corpus" / "history").glob("*.toml")):
        document = tomllib.loads(path.read_text())
        if "step" not in document:  # sequences are not scenarios
            jsonschema.validate(document, schema)


def test_new_vcpu_and_vm_keys() -> None:
    from apicmap.errors import InputError
    from apicmap.files.scenario import parse_scenario

    scenario = parse_scenario({"vm": {"vcpus": 2, "kvm_smm": False},
                               "vcpu": [{"vcpu_id": 1, "mode": "x2apic", "lapic_id": 0x05000000, "lapic_ldr": 0x20}]})
    assert not scenario.vm.kvm_smm and scenario.vm.vcpu(1).lapic_id == 0x05000000
    with pytest.raises(InputError, match="only for x2APIC"):
        parse_scenario({"vcpu": [{"vcpu_id": 0, "lapic_id": 1}]})
    with pytest.raises(InputError, match="EINVAL"):
        parse_scenario({"vm": {"x2apic_api": ["use_32bit_ids"]},
                        "vcpu": [{"vcpu_id": 0, "mode": "x2apic", "lapic_id": 7}]})
