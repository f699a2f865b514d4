"""Run a scenario on an engine and check its expectations; shared by the CLI, tests and fuzzing."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from apicmap.domain.engine import Engine
from apicmap.domain.outcome import Outcome
from apicmap.engines import make_engine
from apicmap.errors import NotExpressible
from apicmap.files.scenario import InterruptCase, Scenario
from apicmap.model.policy import KernelPolicy, policy_for_release

ARCH_UNCHECKED = "not checked: no expect_arch (expect describes KVM, not the architecture)"


class Check(enum.Enum):
    PASS = "pass"
    FAIL = "FAIL"
    NONE = "-"  # no expectation given
    NOT_APPLICABLE = "n/a"  # e.g. an expectation written for another kernel release


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: InterruptCase
    engine: str
    outcome: Outcome | None  # None when the engine cannot express the case
    not_expressible: str | None
    check: Check
    check_detail: str = ""

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"index": self.case.index, "name": self.case.name}
        if self.outcome is not None:
            out.update(self.outcome.to_json())
        else:
            out.update({"receivers": None, "return": None, "not_expressible": self.not_expressible})
        out["expect"] = list(e) if (e := self.case.expected_for(self.engine)) is not None else None
        out["expect_return"] = self.case.expect_return
        out["check"] = self.check.value
        if self.check_detail:
            out["check_detail"] = self.check_detail
        return out


def scenario_policy(scenario: Scenario, kernel: str | None) -> KernelPolicy:
    """``--kernel`` wins over ``[vm] kernel``; neither means the newest release."""
    return policy_for_release(kernel if kernel is not None else scenario.kernel)


def build_engine(name: str, scenario: Scenario, kernel: str | None) -> Engine:
    if name == "model":
        return make_engine("model", kernel if kernel is not None else scenario.kernel)
    return make_engine(name)


def expectation_applies(name: str, scenario: Scenario, kernel: str | None) -> str | None:
    """Why expectations do not apply to this engine run, or None if they do.

    Expectations describe KVM as of ``[vm] kernel`` (newest if absent). The kvm engine runs
    this machine's kernel; when that falls in another variant, the expectation is not checked.
    """
    if name != "kvm":
        if name == "model" and kernel is not None and \
                policy_for_release(kernel) is not policy_for_release(scenario.kernel):
            return f"expectations are for KVM {scenario.kernel or 'newest'}, the model runs {kernel}"
        return None
    import os

    host = policy_for_release(os.uname().release)
    wanted = scenario_policy(scenario, None)
    if host is not wanted:
        return f"expectations are for KVM {scenario.kernel} ({wanted.key}); this host is {host.key}"
    return None


def run_scenario(scenario: Scenario, engine_name: str, kernel: str | None = None, *,
                 explain: bool = False, engine: Engine | None = None) -> list[CaseResult]:
    engine = engine or build_engine(engine_name, scenario, kernel)
    skip_reason = expectation_applies(engine_name, scenario, kernel)
    prepared = engine.prepare(scenario.vm)
    results: list[CaseResult] = []
    try:
        for case in scenario.interrupts:
            try:
                outcome = prepared.deliver(case.injection, explain=explain)
            except NotExpressible as err:
                results.append(CaseResult(case, engine_name, None, str(err), Check.NOT_APPLICABLE,
                                          "not expressible on this engine"))
                continue
            results.append(_checked(case, engine_name, outcome, skip_reason))
    finally:
        prepared.close()
    return results


def _checked(case: InterruptCase, engine: str, outcome: Outcome, skip_reason: str | None) -> CaseResult:
    expected = case.expected_for(engine)
    if engine == "arch" and expected is None and case.expect is not None:
        return CaseResult(case, engine, outcome, None, Check.NONE, ARCH_UNCHECKED)
    if expected is None and (case.expect_return is None or engine == "arch"):  # arch has no return value
        return CaseResult(case, engine, outcome, None, Check.NONE)
    if skip_reason is not None:
        return CaseResult(case, engine, outcome, None, Check.NOT_APPLICABLE, skip_reason)
    problems: list[str] = []
    if expected is not None and tuple(expected) != outcome.receivers:
        problems.append(f"expected receivers {list(expected)}, got {list(outcome.receivers)}")
    if case.expect_return is not None and engine != "arch" and outcome.result != case.expect_return:
        got = "no return value" if outcome.result is None else str(outcome.result)
        problems.append(f"expected return {case.expect_return}, got {got}")
    if problems:
        return CaseResult(case, engine, outcome, None, Check.FAIL, "; ".join(problems))
    return CaseResult(case, engine, outcome, None, Check.PASS)
