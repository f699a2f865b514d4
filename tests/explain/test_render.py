"""Explanations are reason codes; words come only from ``apicmap.explain``'s templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from apicmap import explain
from apicmap.arch.engine import ArchEngine
from apicmap.decode import KvmDecodeRules, Refused, decode_for_kvm
from apicmap.domain.outcome import Outcome
from apicmap.domain.reasons import Code, Reason
from apicmap.files.scenario import Scenario, load_scenario
from apicmap.fuzz.signature import signature
from apicmap.known.catalogue import CATALOGUE
from apicmap.model.engine import ModelEngine
from apicmap.model.policy import VARIANTS

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*ROOT.glob("corpus/*.toml"), *ROOT.glob("examples/*.toml"), *ROOT.glob("catalogue/*.toml")])


def _outcomes(scenario: Scenario) -> list[tuple[Outcome, Outcome]]:
    """(model at the oldest release, arch) for every interrupt, with explanations."""
    model = ModelEngine(VARIANTS[0]).prepare(scenario.vm)
    arch = ArchEngine().prepare(scenario.vm)
    return [(model.deliver(c.injection, explain=True), arch.deliver(c.injection, explain=True))
            for c in scenario.interrupts]


def _all_reasons(outcome: Outcome) -> list[Reason]:
    assert outcome.explanation is not None
    e = outcome.explanation
    return [e.path, *e.notes, *(r for _, r in e.reasons)]


def test_every_code_has_a_template() -> None:
    assert set(explain.TEMPLATES) == set(Code)


@pytest.mark.parametrize("path", FILES[::7], ids=lambda p: p.name)
def test_every_reason_the_engines_give_renders(path: Path) -> None:
    for model, arch in _outcomes(load_scenario(path)):
        for reason in _all_reasons(model) + _all_reasons(arch):
            text = explain.render(reason)
            assert text and "{" not in text, (reason, text)


def _signatures(scenarios: list[Scenario]) -> list[object]:
    found: list[object] = []
    for scenario in scenarios:
        for case, (model, arch) in zip(scenario.interrupts, _outcomes(scenario), strict=True):
            decoded = decode_for_kvm(case.injection, scenario.vm, KvmDecodeRules.for_policy(VARIANTS[0], scenario.vm))
            message = None if isinstance(decoded, Refused) else decoded
            known = [k.name for k in CATALOGUE if k.applies(scenario.vm, case.injection, message, model, arch)]
            found.append((signature(scenario.vm, case.injection, model, arch), known))
    return found


def test_rewording_every_template_changes_no_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    scenarios = [load_scenario(p) for p in FILES if "catalogue" in p.parts or "examples" in p.parts]
    before = _signatures(scenarios)
    reworded = {code: f"<<{code.name.lower()}>> " for code in Code}
    monkeypatch.setattr(explain, "TEMPLATES", reworded)
    assert explain.render(Reason(Code.PATH_SLOW)) == "<<path_slow>> "  # the rewording is in force
    assert _signatures(scenarios) == before
