"""The one declarative loader: key tables, one error path, the generated JSON Schemas."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from apicmap import ApicMode, InputError
from apicmap.files.keys import SCHEMA_DIR, scenario_schema, schema_text, sequence_schema
from apicmap.files.scenario import load_scenario, parse_scenario
from apicmap.files.sequence import load_sequence, parse_sequence

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*ROOT.glob("examples/*.toml"), *ROOT.glob("corpus/*.toml"), *ROOT.glob("catalogue/*.toml")])


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_scenario(tomllib.loads(text), "t.toml")


def error(text: str) -> str:
    with pytest.raises(InputError) as err:
        parse(text)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_checked_in_schemas_are_the_generated_ones() -> None:
    assert (SCHEMA_DIR / "scenario.schema.json").read_text() == schema_text(scenario_schema())
    assert (SCHEMA_DIR / "sequence.schema.json").read_text() == schema_text(sequence_schema())


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_every_example_corpus_and_catalogue_file_validates(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(tomllib.loads(path.read_text()), scenario_schema())
    load_scenario(path)


@pytest.mark.parametrize(("text", "needle"), [
    ('[vm]\nvcpus = 1\n[[interrupt]]\nmsi = { address = 0xFEE00000, data = 0x40 }\ndest = 5\n', "dest"),
    ('[vm]\nvcpus = 1\n[[interrupt]]\nmsi = { address = 0xFEE00000 }\n', "msi data: missing"),
    ('[vm]\nvcpus = 1\n[[interrupt]]\nmsi = { address = "oops", data = 1 }\n', "msi address"),
    ('[vm]\nmode = "x2apic"\nvcpus = 1\n[[interrupt]]\nvia = "ipi"\nsource = 0\nvector = 1\nexpect_return = 1\n',
     "expect_return"),
    ('[vm]\nmode = "x2apic"\nvcpus = 1\n[[interrupt]]\nvia = "self-ipi"\nsource = 0\nvector = 1\ndest = 1\n',
     "dest"),
    ('[vm]\nvcpus = 1\n[[interrupt]]\nrte = 0x40\nvector = 0x41\n', "vector"),
    ('[vm]\nvcpus = 1\n[[interrupt]]\nmsi = { address = 0xFEE00000, data = 1 }\nrte = 1\n', "rte"),
])
def test_load_time_errors_name_the_key(text: str, needle: str) -> None:
    assert needle in error(text)


def test_allowed_values_are_named() -> None:
    assert 'does not apply to via = "ipi"' not in error(
        '[vm]\nvcpus = 1\n[[interrupt]]\nmsi = { address = 0xFEE00000, data = 0x40 }\ndest = 5\n')
    message = error('[vm]\nmode = "x2apic"\nvcpus = 1\n[[interrupt]]\nvia = "ipi"\nsource = 0\nvector = 1\n'
                    'expect_return = 1\n')
    assert 'via = "msi"' in message


def test_values_are_echoed_as_toml_and_cut() -> None:
    assert "bad value true" in error('[vm]\nvcpus = 1\n[[vcpu]]\nvcpu_id = true\n')
    long = error('[vm]\nvcpus = 1\n[[interrupt]]\nvector = 1\ndelivery = "' + "x" * 100_000 + '"\n')
    assert len(long) < 400 and "..." in long


def test_vcpu_limit_is_decimal() -> None:
    assert "1..1024" in error("[vm]\nvcpus = 5000\n")


def test_vm_wide_mode() -> None:
    s = parse('[vm]\nvcpus = 8\nmode = "x2apic"\n[[vcpu]]\nvcpu_id = 3\nmode = "xapic"\n')
    assert [v.mode for v in s.vm.vcpus].count(ApicMode.X2APIC) == 7 and s.vm.vcpu(3).mode is ApicMode.XAPIC
    assert "ldr" in error('[vm]\nvcpus = 2\nmode = "x2apic"\n[[vcpu]]\nvcpu_id = 1\nldr = 1\n')


def test_positional_and_explicit_vcpu_ids_do_not_mix() -> None:
    assert parse("[[vcpu]]\n[[vcpu]]\napic_id = 7\n").vm.vcpu(1).xapic_id == 7
    message = error("[[vcpu]]\nvcpu_id = 1\n[[vcpu]]\napic_id = 7\n")
    assert "[[vcpu]] #2 vcpu_id" in message and "every" in message


def test_sequence_files_use_the_same_loader(tmp_path: Path) -> None:
    steps, kernel = parse_sequence(tomllib.loads('[[step]]\nop = "create_vcpu"\nvcpu_id = 1\n[[step]]\n'
                                                 'op = "signal_msi"\nmsi = { address = 0xFEE00000, data = 0x40 }\n'))
    assert kernel is None and steps[0].vcpu_id == 1 and steps[1].msi is not None
    bad = tmp_path / "seq.toml"
    bad.write_text('[[step]]\nop = "signal_msi"\nmsi = { address = "oops" }\n')
    with pytest.raises(InputError, match="msi address"):
        load_sequence(bad)
    bad.write_text('[[step]]\nop = "create_vcpu"\ncolour = 1\n')
    with pytest.raises(InputError, match="colour: unknown key"):
        load_sequence(bad)
    bad.write_text('[[step]]\nop = "create_vcpu"\nmsi = { address = 0xFEE00000, data = 0x40 }\n')
    with pytest.raises(InputError, match='does not apply to op = "create_vcpu"'):
        load_sequence(bad)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00binary\x80", "[vm]\nvcpus = 1\n# \xe9\n".encode("latin-1")])
def test_binary_or_non_utf8_file_is_one_line_exit_2(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bin.toml"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a text file"):
        load_scenario(path)
    proc = subprocess.run([sys.executable, "-m", "apicmap", "run", str(path)], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_sequence_schema_is_json_serialisable() -> None:
    assert json.loads(schema_text(sequence_schema()))["properties"]["step"]["type"] == "array"
