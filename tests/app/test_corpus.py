"""The conformance corpus (ported peer-suite scenarios, corpus/*.toml) on the model and on the kernel.

The expectations in the corpus are the peer suites' own (peer-suites.md); the model must meet
them, and where /dev/kvm is usable the real kernel must too, with the model matching the kernel
receiver for receiver and return value for return value.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from apicmap.app.runner import Check, run_scenario
from apicmap.files.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT / "corpus").glob("*.toml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))


def test_corpus_is_generated_and_current(tmp_path: Path) -> None:
    """corpus/generate.py reproduces the committed files exactly."""
    import runpy

    module = runpy.run_path(str(ROOT / "corpus" / "generate.py"))
    module["OUT"] = tmp_path
    module["main"].__globals__["OUT"] = tmp_path
    module["main"]()
    produced = sorted(p.name for p in tmp_path.glob("*.toml"))
    assert produced == [p.name for p in CORPUS]
    for name in produced:
        assert (tmp_path / name).read_text() == (ROOT / "corpus" / name).read_text(), name


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_on_model(path: Path) -> None:
    results = run_scenario(load_scenario(path), "model")
    failures = [f"#{r.case.index} {r.case.name}: {r.check_detail}" for r in results if r.check is Check.FAIL]
    assert not failures, failures


@pytest.mark.kvm
@pytest.mark.parametrize("path", CORPUS + EXAMPLES, ids=[p.stem for p in CORPUS + EXAMPLES])
def test_model_equals_kernel(path: Path, kvm_engine) -> None:  # type: ignore[no-untyped-def]
    """Same receivers, return values and effects on the model (this host's release) and on KVM."""
    import os

    scenario = load_scenario(path)
    model = run_scenario(scenario, "model", os.uname().release)
    kernel = run_scenario(scenario, "kvm", engine=kvm_engine)
    differences = []
    for m, k in zip(model, kernel, strict=True):
        if k.outcome is None:
            continue  # not expressible on the host; run_scenario said why
        assert m.outcome is not None
        if not m.outcome.same_as(k.outcome):
            differences.append(f"#{m.case.index} {m.case.name}: model {m.outcome.receivers} r={m.outcome.result} "
                               f"kvm {k.outcome.receivers} r={k.outcome.result}")
        if k.check is Check.FAIL:
            differences.append(f"#{k.case.index} {k.case.name}: kernel: {k.check_detail}")
    assert not differences, differences


CATALOGUE = sorted((ROOT / "catalogue").glob("*.toml"))


@pytest.mark.parametrize("path", CATALOGUE, ids=[p.stem for p in CATALOGUE])
def test_catalogue_entries_really_differ_from_the_architecture(path: Path) -> None:
    """Each catalogued difference holds: KVM's answer on the model, the SDM's on arch, and they differ."""
    from apicmap.decode import KvmDecodeRules, Refused, decode_for_kvm
    from apicmap.known.catalogue import CATALOGUE as ENTRIES
    from apicmap.model.policy import NEWEST

    scenario = load_scenario(path)
    model = run_scenario(scenario, "model")
    arch = run_scenario(scenario, "arch")
    for m, a in zip(model, arch, strict=True):
        assert m.check is Check.PASS and a.check is Check.PASS, (m.check_detail, a.check_detail)
        assert m.outcome is not None and a.outcome is not None
        assert m.outcome.receivers != a.outcome.receivers
        decoded = decode_for_kvm(m.case.injection, scenario.vm, KvmDecodeRules.for_policy(NEWEST, scenario.vm))
        message = None if isinstance(decoded, Refused) else decoded
        named = [e.name for e in ENTRIES if e.applies(scenario.vm, m.case.injection, message, m.outcome, a.outcome)]
        assert named, f"{path.name}: no catalogue entry explains it"
    assert any(e.scenario == f"catalogue/{path.name}" for e in ENTRIES) or path.stem.startswith("broadcast-quirk")


@pytest.mark.kvm
def test_conformance_command_writes_junit_and_tap(tmp_path: Path) -> None:
    import subprocess
    import sys
    import xml.etree.ElementTree as ET

    junit, tap = tmp_path / "c.xml", tmp_path / "c.tap"
    proc = subprocess.run([sys.executable, "-m", "apicmap", "conformance", "--junit", str(junit), "--tap", str(tap)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert " 0 failed" in proc.stdout
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and int(root[0].get("tests", "0")) > 0
    lines = tap.read_text().splitlines()
    assert lines[0] == "TAP version 13" and lines[1].startswith("1..")
    assert all(not line.startswith("not ok") for line in lines)
