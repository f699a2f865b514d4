"""The conformance corpus (ported peer-suite scenarios, corpus/*.toml) on the model and on the kernel.

The expectations in the corpus are the peer suites' own (peer-suites.md); the model must meet
them, and where /dev/kvm is usable the real kernel must too, with the model matching the kernel
receiver for receiver and return value for return value.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from apicmap.runner import Check, run_scenario
from apicmap.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
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
