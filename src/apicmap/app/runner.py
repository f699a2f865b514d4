"""Run a scenario on an engine and check its expectations; shared by the CLI, tests and fuzzing."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from apicmap.domain.engine import Engine, deliver_each
from apicmap.domain.outcome import Outcome
from apicmap.engines import make_engine
from apicmap.errors import NotExpressible
from apicmap.explain import outcome_json
from apicmap.files.scenario import InterruptCase, Scenario
from apicmap.model.policy import NEWEST, KernelPolicy, Release, host_release, parse_release, policy_for_release

ARCH_UNCHECKED = "not checked: no expect_arch (expect describes KVM, not the architecture)"


@dataclass(frozen=True, slots=True)
class KvmTarget:
    """The kvm engine a command runs on, and the kernel release it stands for: this machine's, or a
    kernel booted with ``--on`` (whose engine runs inside the guest)."""

    engine: Engine
    release: str
    report: Mapping[str, object] = field(default_factory=dict)  # the kernel's ``kvm.host.host_report()``


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
            out.update(outcome_json(self.outcome))
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


def expectation_applies(name: str, scenario: Scenario, kernel: str | None,
                        kvm_release: str | None = None) -> str | None:
    """Why expectations do not apply to this engine run, or None if they do.

    Expectations describe KVM as of ``[vm] kernel`` (newest if absent). The kvm engine runs
    this machine's kernel; when that falls in another variant, the expectation is not checked.
    """
    if name != "kvm":
        if name == "model" and kernel is not None and \
                policy_for_release(kernel).key != policy_for_release(scenario.kernel).key:
            return f"expectations are for KVM {scenario.kernel or 'newest'}, the model runs {kernel}"
        return None
    host = policy_for_release(kvm_release or host_release())
    wanted = scenario_policy(scenario, None)
    if host.key != wanted.key:
        where = "the booted kernel" if kvm_release else "this host"
        return f"expectations are for KVM {scenario.kernel} ({wanted.key}); {where} is {host.key}"
    return None


def run_release(engine_name: str, scenario: Scenario, kernel: str | None,
                kvm_release: str | None = None) -> Release | None:
    """The release an engine run stands for (``expect_kernels`` are checked against it)."""
    if engine_name == "kvm":
        return parse_release(kvm_release or host_release())
    if engine_name != "model":
        return None
    text = kernel if kernel is not None else scenario.kernel
    if text is None or text.strip().lower() in ("latest", "newest", "mainline"):
        return (NEWEST.first[0], NEWEST.first[1], 0) if NEWEST.last is not None else (99, 0, 0)
    return parse_release(text)


def run_scenario(scenario: Scenario, engine_name: str, kernel: str | None = None, *,
                 explain: bool = False, engine: Engine | None = None,
                 kvm: KvmTarget | None = None) -> list[CaseResult]:
    """Every interrupt of ``scenario`` on one engine, checked against its expectations. ``kvm``: the
    kvm engine to use (``--on``) and the release it stands for; else this machine's."""
    kvm_release = None
    if engine_name == "kvm" and kvm is not None:
        engine, kvm_release = kvm.engine, kvm.release
    engine = engine or build_engine(engine_name, scenario, kernel)
    skip_reason = expectation_applies(engine_name, scenario, kernel, kvm_release)
    release = run_release(engine_name, scenario, kernel, kvm_release)
    results: list[CaseResult] = []
    with engine.prepare(scenario.vm) as prepared:
        outcomes = deliver_each(prepared, [c.injection for c in scenario.interrupts], explain=explain)
        for case, outcome in zip(scenario.interrupts, outcomes, strict=True):
            if isinstance(outcome, NotExpressible):
                results.append(CaseResult(case, engine_name, None, str(outcome), Check.NOT_APPLICABLE,
                                          "not expressible on this engine"))
            elif case.expect_kernels and release is not None:
                results.append(_checked_at(case, engine_name, outcome, release))
            else:
                results.append(_checked(case, engine_name, outcome, skip_reason))
    return results


def _checked_at(case: InterruptCase, engine: str, outcome: Outcome, release: Release) -> CaseResult:
    """Check an ``expect_kernels`` case: the entry covering the release the engine stands for."""
    entry = case.expectation_at(release)
    if entry is None:
        return CaseResult(case, engine, outcome, None, Check.NOT_APPLICABLE,
                          "no expect_kernels entry covers {}.{}.{}".format(*release))
    problems: list[str] = []
    if entry.expect is not None and entry.expect != outcome.receivers:
        problems.append(f"expected receivers {list(entry.expect)}, got {list(outcome.receivers)}")
    if entry.expect_return is not None and outcome.result != entry.expect_return:
        problems.append(f"expected return {entry.expect_return}, got {outcome.result}")
    since = "{}.{}.{}".format(*entry.since)
    if problems:
        return CaseResult(case, engine, outcome, None, Check.FAIL, f"(from {since}) " + "; ".join(problems))
    return CaseResult(case, engine, outcome, None, Check.PASS, f"from {since}")


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
