"""Per-release view, finding attribution, and the rediscovery of historical bugs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from apicmap.app.releases import HISTORICAL_BUGS, rediscover, rediscovery_summary
from apicmap.app.runner import Check, run_scenario
from apicmap.domain.outcome import Effect, EffectKind, Outcome
from apicmap.files.scenario import load_scenario
from apicmap.files.sequence import is_sequence_file
from apicmap.model.attribution import attribute_finding, model_outcome
from apicmap.model.policy import VARIANTS, policy_for_release

ROOT = Path(__file__).resolve().parents[2]
HISTORY = sorted((ROOT / "corpus" / "history").glob("*.toml"))


def apicmap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "apicmap", *args], capture_output=True, text=True, cwd=ROOT)


def test_run_all_kernels_json_ranges_and_commits() -> None:
    proc = apicmap("run", "corpus/history/09-aliased-xapic-ids.toml", "--all-kernels", "--json")
    assert proc.returncode == 0, proc.stderr
    ranges = json.loads(proc.stdout)["interrupts"][0]["ranges"]
    assert [r["releases"] for r in ranges] == ["4.9–4.10", "4.11–6.2", "6.3–mainline"]
    assert [r["receivers"] for r in ranges] == [[2], [1], [1, 2]]
    assert ranges[0]["changed_by"] is None
    assert [c["hash"] for c in ranges[1]["changed_by"]["commits"]] == ["5bd5db385b3e"]
    assert [c["hash"] for c in ranges[2]["changed_by"]["commits"]] == ["5b84b0291702"]
    assert ranges[2]["changed_by"]["fields"] == ["phys_map"]


def test_run_all_kernels_return_value_change_names_0624fca9512d() -> None:
    proc = apicmap("run", "corpus/history/05-fast-path-no-target.toml", "--all-kernels")
    assert proc.returncode == 0, proc.stderr
    assert "4.9–4.19" in proc.stdout and "4.20–mainline" in proc.stdout and "0624fca9512d" in proc.stdout


def test_explain_all_kernels_gives_reasons() -> None:
    proc = apicmap("explain", "corpus/history/06-sw-disabled-logical.toml", "--all-kernels")
    assert proc.returncode == 0, proc.stderr
    assert "b14c876b994f" in proc.stdout and "vCPU    1:" in proc.stdout and "path:" in proc.stdout


@pytest.mark.parametrize(("kernel", "result"), [("4.19", -1), ("4.20", 0)])
def test_cli_kernel_fast_path_no_target(kernel: str, result: int) -> None:
    proc = apicmap("run", "corpus/history/05-fast-path-no-target.toml", "--kernel", kernel, "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["interrupts"][0]["return"] == result and payload["interrupts"][0]["check"] == "pass"


# Sequence files (no expect_kernels of their own) are checked by the rediscovery test.
HISTORY_SCENARIOS = [p for p in HISTORY if not is_sequence_file(p)]


@pytest.mark.parametrize("path", HISTORY_SCENARIOS, ids=[p.stem for p in HISTORY_SCENARIOS])
def test_history_expectations_hold_on_every_range(path: Path) -> None:
    """``expect_kernels`` are checked against whatever release the model runs."""
    scenario = load_scenario(path)
    for policy in VARIANTS:
        kernel = f"{policy.first[0]}.{policy.first[1]}"
        for result in run_scenario(scenario, "model", kernel):
            assert result.check is Check.PASS, (kernel, result.check_detail)


def test_rediscovery() -> None:
    results = rediscover(ROOT / "corpus" / "history")
    observable = [b for b in HISTORICAL_BUGS if not b.observable]
    assert len(HISTORICAL_BUGS) == 25 and len(results) == len(observable) == 14
    missed = [(r.bug.number, r.detail) for r in results if not r.ok]
    assert missed == [(16, "no history file: the model has no register-read outcome")]
    assert rediscovery_summary(ROOT / "corpus" / "history") == \
        "13 of 14 historical changes rediscovered at the right release"


def test_finding_attribution_names_the_commit_between_releases() -> None:
    scenario = load_scenario(ROOT / "corpus" / "history" / "09-aliased-xapic-ids.toml")
    injection = scenario.interrupts[0].injection
    host = policy_for_release("6.18")
    kernel_outcome = model_outcome(scenario.vm, injection, host)  # stands in for the real kernel
    found = attribute_finding(scenario.vm, injection, policy_for_release("6.2"), host, kernel_outcome)
    assert found.explained and [c.hash for c in found.commits] == ["5b84b0291702"]
    # No policy field gives this outcome.
    odd = Outcome(engine="kvm", receivers=(0,), effects=(Effect(0, EffectKind.IRR, 0x40),), result=1)
    unexplained = attribute_finding(scenario.vm, injection, policy_for_release("6.3"), host, odd)
    assert not unexplained.explained and not unexplained.commits


def test_findings_never_print_identical_sides() -> None:
    from apicmap.domain.vm import VmState
    from apicmap.fuzz.campaign import Finding
    from tests.helpers import msi

    model = Outcome(engine="model", receivers=(0,), effects=(Effect(0, EffectKind.IRR, 0x40),))
    kernel = Outcome(engine="kvm", receivers=(0,), effects=(Effect(0, EffectKind.IRR, 0x40, True),))
    found = Finding(signature="sig", rule="rule", vm=VmState.simple(1), injection=msi(0), model=model, other=kernel,
                    found_after=0.0).to_json()
    assert found["model"] == found["other"] and found["model_return"] == found["other_return"]
    assert found["model_detail"] != found["other_detail"] and "TMR" in str(found["other_detail"])
    refused = Outcome(engine="kvm", receivers=(), rejected="WRMSR 0x830: #GP")
    shown = Finding(signature="sig", rule="rule", vm=VmState.simple(1), injection=msi(0),
                    model=Outcome(engine="model", receivers=()), other=refused, found_after=0.0).to_json()
    assert "refused" in str(shown["other_detail"])


def test_sequence_all_kernels_names_052c3b99cbc8() -> None:
    proc = apicmap("run", "corpus/history/13-stale-map-after-x2apic-disable.toml", "--all-kernels", "--json")
    assert proc.returncode == 0, proc.stderr
    ranges = json.loads(proc.stdout)["ranges"]
    assert [(r["releases"], r["returns"]) for r in ranges] == [("4.9–6.2", [1]), ("6.3–mainline", [0])]
    assert [c["hash"] for c in ranges[1]["changed_by"]["commits"]] == ["052c3b99cbc8"]


def test_history_stable_lists_match_the_backport_table() -> None:
    """An expectation's ``stable`` releases are the backports of the bug's commit, no more, no less."""
    import tomllib

    from apicmap.model.policy import BACKPORTS

    for path in HISTORY:
        document = tomllib.loads(path.read_text())
        commit = document["history"]["commit"]
        wanted = sorted(".".join(map(str, b.first)) for b in BACKPORTS
                        if commit and b.commit.hash == commit and b.first is not None)
        for interrupt in document.get("interrupt", []):
            for entry in interrupt.get("expect_kernels", []):
                if entry["from"] == document["history"]["fixed_in"]:
                    assert sorted(entry.get("stable", [])) == wanted, path.name


@pytest.mark.parametrize(("name", "kernel"), [
    ("14-self-ipi-reserved-bits.toml", "6.1.170"), ("15-x2apic-msr-upper-half.toml", "6.1.170"),
    ("22-icr-reserved-bits.toml", "6.1.170"), ("22-icr-reserved-bits.toml", "6.11.11"),
    ("21-x2apic-id-readonly.toml", "6.6.78"), ("21-x2apic-id-readonly.toml", "6.6.77"),
    ("06-sw-disabled-logical.toml", "4.19.70"), ("06-sw-disabled-logical.toml", "4.19.69"),
])
def test_history_expectations_hold_on_stable_releases(name: str, kernel: str) -> None:
    scenario = load_scenario(ROOT / "corpus" / "history" / name)
    for result in run_scenario(scenario, "model", kernel):
        assert result.check is Check.PASS, (kernel, result.check_detail)
