"""Per-release views: one scenario judged by every modelled KVM release range, and the commits
that explain each change (``apicmap.model.attribution``); the rediscovery of historical bugs.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from apicmap.domain.message import Injection
from apicmap.domain.outcome import Outcome
from apicmap.domain.vm import VmState
from apicmap.files.scenario import InterruptCase, Scenario, load_scenario
from apicmap.files.sequence import Step, apply, is_sequence_file, load_sequence
from apicmap.model.attribution import Attribution, attribute, model_outcome, outcome_key
from apicmap.model.lifecycle import ModelLifecycle
from apicmap.model.policy import VARIANTS, KernelPolicy, Release, policy_for_release

HISTORY_DIR = "corpus/history"


@dataclass(frozen=True, slots=True, kw_only=True)
class RangeOutcome:
    policies: tuple[KernelPolicy, ...]  # adjacent rows with equal outcomes
    outcome: Outcome
    changed_by: Attribution | None  # vs the previous range; None for the first

    @property
    def releases(self) -> str:
        first, last = self.policies[0], self.policies[-1]
        start = first.releases.split("–")[0]
        end = last.releases.split("–")[-1]
        return start if start == end else f"{start}–{end}"

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"releases": self.releases, "variants": [p.key for p in self.policies]}
        out.update(self.outcome.to_json())
        out["changed_by"] = None if self.changed_by is None else self.changed_by.to_json()
        return out


def ranges_for(vm: VmState, injection: Injection, *, explain: bool = False) -> list[RangeOutcome]:
    def evaluate(policy: KernelPolicy) -> Hashable:
        return outcome_key(model_outcome(vm, injection, policy))

    groups: list[RangeOutcome] = []
    for policy in VARIANTS:
        outcome = model_outcome(vm, injection, policy, explain=explain)
        if groups and outcome_key(groups[-1].outcome) == outcome_key(outcome):
            last = groups[-1]
            groups[-1] = RangeOutcome(policies=(*last.policies, policy), outcome=last.outcome,
                                      changed_by=last.changed_by)
            continue
        changed = None if not groups else attribute(groups[-1].policies[-1], policy, evaluate)
        groups.append(RangeOutcome(policies=(policy,), outcome=outcome, changed_by=changed))
    return groups


def release_view(scenario: Scenario, *, explain: bool = False) -> list[tuple[InterruptCase, list[RangeOutcome]]]:
    return [(case, ranges_for(scenario.vm, case.injection, explain=explain)) for case in scenario.interrupts]


def _cell(outcome: Outcome) -> str:
    if outcome.rejected:
        return f"refused: {outcome.rejected}"
    receivers = "{" + ", ".join(map(str, outcome.receivers)) + "}"
    result = "-" if outcome.result is None else ("-1 (EPERM)" if outcome.result == -1 else str(outcome.result))
    effects = ", ".join(f"{e.vcpu_id}:{e.describe()}" for e in outcome.effects)
    return f"{receivers}  return {result}" + (f"  [{effects}]" if effects else "")


def print_release_view(scenario: Scenario, *, explain: bool = False, as_json: bool = False) -> int:
    view = release_view(scenario, explain=explain)
    if as_json:
        print(json.dumps({"scenario": scenario.path, "interrupts": [
            {"index": case.index, "name": case.name, "ranges": [r.to_json() for r in ranges]}
            for case, ranges in view]}, indent=2))
        return 0
    print(f"{scenario.path}: every modelled KVM release range")
    for case, ranges in view:
        print(f"\n== interrupt {case.index}: {case.name}")
        for r in ranges:
            print(f"  {r.releases:<14} {_cell(r.outcome)}")
            if r.changed_by is not None:
                print(f"  {'':<14}   changed by {r.changed_by.describe()}")
            explanation = r.outcome.explanation
            if explain and explanation is not None:
                print(f"  {'':<14}   path: {explanation.path}")
                if explanation.map_state:
                    print(f"  {'':<14}   map:  {explanation.map_state}")
                for note in explanation.notes:
                    print(f"  {'':<14}   note: {note}")
                for vid, reason in explanation.reasons:
                    print(f"  {'':<14}   vCPU {vid:>4}: {reason}")
    return 0


def run_all_kernels(path: str, *, explain: bool, as_json: bool) -> int:
    """``apicmap run|explain FILE --all-kernels`` (a scenario, or a sequence file's MSI returns)."""
    if is_sequence_file(path):
        return print_sequence_view(path, as_json=as_json)
    return print_release_view(load_scenario(path), explain=explain, as_json=as_json)


def print_sequence_view(path: str, *, as_json: bool = False) -> int:
    """Per release range, the KVM_SIGNAL_MSI returns of a sequence, with the commits that change them."""
    steps, _ = load_sequence(path)
    returns = {p.key: tuple(sequence_returns(steps, p)) for p in VARIANTS}
    groups: list[tuple[list[KernelPolicy], Attribution | None]] = []
    for policy in VARIANTS:
        if groups and returns[groups[-1][0][-1].key] == returns[policy.key]:
            groups[-1][0].append(policy)
            continue
        changed = None if not groups else attribute(groups[-1][0][-1], policy,
                                                    lambda p: tuple(sequence_returns(steps, p)))
        groups.append(([policy], changed))

    def span(policies: list[KernelPolicy]) -> str:
        start, end = policies[0].releases.split("–")[0], policies[-1].releases.split("–")[-1]
        return start if start == end else f"{start}–{end}"

    if as_json:
        print(json.dumps({"sequence": path, "ranges": [
            {"releases": span(ps), "variants": [p.key for p in ps], "returns": list(returns[ps[0].key]),
             "changed_by": None if a is None else a.to_json()} for ps, a in groups]}, indent=2))
        return 0
    print(f"{path}: KVM_SIGNAL_MSI returns on every modelled KVM release range")
    for policies, changed in groups:
        print(f"  {span(policies):<14} {list(returns[policies[0].key])}")
        if changed is not None:
            print(f"  {'':<14}   changed by {changed.describe()}")
    return 0


# --- historical bugs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoricalBug:
    number: int
    commit: str
    title: str
    fixed_in: str
    observable: str  # "" when the host observes it; else why not (guest code, vendor hardware, race...)


# The audit's list of KVM APIC-routing bugs (fix commit, title, release of the fix).
HISTORICAL_BUGS: tuple[HistoricalBug, ...] = (
    HistoricalBug(number=1, commit="5bd5db385b3e", title="KVM: x86: allow hotplug of VCPU with APIC ID over 0xff",
                  fixed_in="4.11", observable=""),
    HistoricalBug(number=2, commit="", title="fast and slow path unified: MDA no longer from the source's mode",
                  fixed_in="4.11", observable=""),
    HistoricalBug(number=3, commit="bdf7ffc89922", title="KVM: LAPIC: Fix pv ipis out-of-bounds access",
                  fixed_in="4.19", observable="needs the guest's KVM_HC_SEND_IPI hypercall"),
    HistoricalBug(number=4, commit="", title="KVM: LAPIC: Fix pv ipis use-before-initialization",
                  fixed_in="4.20", observable="needs the guest's KVM_HC_SEND_IPI hypercall"),
    HistoricalBug(number=5, commit="0624fca9512d",
                  title="fast path returns 0, not -1, when the map handles the IRQ but finds no target",
                  fixed_in="4.20", observable=""),
    HistoricalBug(number=6, commit="b14c876b994f",
                  title="kvm: x86: skip populating logical dest map if apic is not sw enabled",
                  fixed_in="5.3", observable=""),
    HistoricalBug(number=7, commit="00b5f37189d2",
                  title="KVM: x86: Avoid theoretical NULL pointer dereference in kvm_irq_delivery_to_apic_fast()",
                  fixed_in="5.18", observable="a host crash (NULL dereference), not a routing outcome"),
    HistoricalBug(number=8, commit="a58a66afc464",
                  title="Don't inhibit APICv/AVIC on xAPIC ID \"change\" if APIC is disabled",
                  fixed_in="6.3", observable="APICv/AVIC performance only (no routing outcome; no APICv here)"),
    HistoricalBug(number=9, commit="5b84b0291702",
                  title="KVM: x86: Honor architectural behavior for aliased 8-bit APIC IDs", fixed_in="6.3",
                  observable=""),
    HistoricalBug(number=10, commit="2970052481b9",
                  title="Disable APIC logical map if vCPUs are aliased in logical mode", fixed_in="6.3",
                  observable=""),
    HistoricalBug(number=11, commit="2bf934aadcac",
                  title="Disable APIC logical map if logical ID covers multiple MDAs", fixed_in="6.3",
                  observable=""),
    HistoricalBug(number=12, commit="76e527509d37",
                  title="Skip redundant x2APIC logical mode optimized cluster setup", fixed_in="6.3",
                  observable=""),
    HistoricalBug(number=13, commit="052c3b99cbc8",
                  title="KVM: x86: Reinitialize xAPIC ID when userspace forces x2APIC => xAPIC", fixed_in="6.3",
                  observable=""),
    HistoricalBug(number=14, commit="ba5838abb053",
                  title="Inject #GP if WRMSR sets reserved bits in APIC Self-IPI", fixed_in="6.3", observable=""),
    HistoricalBug(number=15, commit="ab52be1b310b",
                  title="Inject #GP on x2APIC WRMSR that sets reserved bits 63:32", fixed_in="6.3", observable=""),
    HistoricalBug(number=16, commit="b223649576fc", title="Mark x2APIC DFR reg as non-existent for x2APIC",
                  fixed_in="6.3", observable=""),
    HistoricalBug(number=17, commit="9a364857ab4f",
                  title="KVM: SVM: Inhibit AVIC if vCPUs are aliased in logical mode", fixed_in="6.3",
                  observable="guest IPIs on AMD AVIC hardware"),
    HistoricalBug(number=18, commit="5aede752a839",
                  title="KVM: SVM: Process ICR on AVIC IPI delivery failure due to invalid target", fixed_in="6.3",
                  observable="guest IPIs on AMD AVIC hardware"),
    HistoricalBug(number=19, commit="4364b287982b",
                  title="KVM: x86: Bail from kvm_recalculate_phys_map() if x2APIC ID is out-of-bounds",
                  fixed_in="6.4", observable="a race between concurrent ioctls"),
    HistoricalBug(number=20, commit="41e90a69a49b",
                  title="KVM: x86: Retry APIC optimized map recalc if vCPU is added/enabled", fixed_in="6.6",
                  observable="a race between concurrent ioctls"),
    HistoricalBug(number=21, commit="4b7c3f6d04bd", title="KVM: x86: Make x2APIC ID 100% readonly", fixed_in="6.11",
                  observable=""),
    HistoricalBug(number=22, commit="71bf395a276f",
                  title="KVM: x86: Enforce x2APIC's must-be-zero reserved ICR bits", fixed_in="6.12", observable=""),
    HistoricalBug(number=23, commit="73b42dc69be8",
                  title="KVM: x86: Re-split x2APIC ICR into ICR+ICR2 for AMD (x2AVIC)", fixed_in="6.12",
                  observable="AMD x2AVIC hardware only"),
    HistoricalBug(number=24, commit="", title="KVM: x86: Reject Hyper-V's SEND_IPI hypercalls if local APIC "
                  "isn't in-kernel", fixed_in="6.14", observable="needs a guest Hyper-V hypercall"),
    HistoricalBug(number=25, commit="c87bd4dd43a6",
                  title="KVM: x86: use array_index_nospec with indices that come from guest", fixed_in="6.17",
                  observable="a speculative-execution gadget, not an outcome"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rediscovery:
    bug: HistoricalBug
    files: tuple[str, ...]  # empty: no history file (not modelled)
    ok: bool
    detail: str


def _history_table(path: Path) -> dict[str, object]:
    table = tomllib.loads(path.read_text(encoding="utf-8")).get("history", {})
    return table if isinstance(table, dict) else {}


def _previous(policy: KernelPolicy) -> KernelPolicy:
    keys = [p.key for p in VARIANTS]
    return VARIANTS[max(keys.index(policy.key) - 1, 0)]


def _first_release(policy: KernelPolicy) -> Release:
    return policy.first[0], policy.first[1], 0


def _check_rows(evaluate_row: Callable[[KernelPolicy], list[str]]) -> tuple[bool, str]:
    """Every row meets its expectations (``evaluate_row`` returns the problems of one row)."""
    problems: list[str] = []
    for policy in VARIANTS:
        problems += [f"{policy.releases}: {p}" for p in evaluate_row(policy)]
    return not problems, "; ".join(problems) or "each range as expected"


def _names_commit(bug: HistoricalBug, attribution: Attribution) -> bool:
    """The change at the fix release is attributed to the bug's commit."""
    if bug.commit:
        return any(bug.commit in c.hash for c in attribution.commits)
    return any(not c.hash and c.subject for c in attribution.commits)


def _scenario_rows(scenario: Scenario, bug: HistoricalBug) -> tuple[bool, str]:
    fixed = policy_for_release(bug.fixed_in)
    before = _previous(fixed)
    attributed: list[Attribution] = []
    for case in scenario.interrupts:
        if not case.expect_kernels:
            continue
        if outcome_key(model_outcome(scenario.vm, case.injection, before)) != \
                outcome_key(model_outcome(scenario.vm, case.injection, fixed)):
            def evaluate(policy: KernelPolicy, case: InterruptCase = case) -> Hashable:
                return outcome_key(model_outcome(scenario.vm, case.injection, policy))

            attributed.append(attribute(before, fixed, evaluate))
    if not attributed:
        return False, f"no outcome changes between {before.releases} and {fixed.releases}"
    if not any(_names_commit(bug, a) for a in attributed):
        return False, f"the change at {fixed.releases} is attributed to {attributed[0].describe()}"

    def row(policy: KernelPolicy) -> list[str]:
        out: list[str] = []
        for case in scenario.interrupts:
            entry = case.expectation_at(_first_release(policy))
            if entry is None:
                continue
            outcome = model_outcome(scenario.vm, case.injection, policy)
            if entry.expect is not None and entry.expect != outcome.receivers:
                out.append(f"#{case.index} receivers {list(outcome.receivers)}, expected {list(entry.expect)}")
            if entry.expect_return is not None and entry.expect_return != outcome.result:
                out.append(f"#{case.index} return {outcome.result}, expected {entry.expect_return}")
        return out

    return _check_rows(row)


def sequence_returns(steps: Sequence[Step], policy: KernelPolicy) -> list[int | None]:
    model = ModelLifecycle(policy)
    return [r for step in steps for r in [apply(step, model)] if step.op == "signal_msi"]


def _sequence_rows(path: Path, bug: HistoricalBug) -> tuple[bool, str]:
    steps, _ = load_sequence(path)
    fixed = policy_for_release(bug.fixed_in)
    before = _previous(fixed)

    def evaluate(policy: KernelPolicy) -> Hashable:
        return tuple(sequence_returns(steps, policy))

    if evaluate(before) == evaluate(fixed):
        return False, f"no return value changes between {before.releases} and {fixed.releases}"
    attribution = attribute(before, fixed, evaluate)
    if not _names_commit(bug, attribution):
        return False, f"the change at {fixed.releases} is attributed to {attribution.describe()}"
    signals = [s for s in steps if s.op == "signal_msi"]

    def row(policy: KernelPolicy) -> list[str]:
        got = sequence_returns(steps, policy)
        out = []
        for i, (step, value) in enumerate(zip(signals, got, strict=True), 1):
            wanted = step.expected_at(_first_release(policy))
            if wanted is not None and wanted != value:
                out.append(f"signal #{i} returned {value}, expected {wanted}")
        return out

    return _check_rows(row)


def rediscover(root: str | Path = HISTORY_DIR) -> list[Rediscovery]:
    """Run every history file through every release range: each bug's change must appear at
    exactly the release of its fix, with the expected outcome on every range."""
    files: dict[int, list[Path]] = {}
    for path in sorted(Path(root).glob("*.toml")):
        number = _history_table(path).get("bug")
        if isinstance(number, int):
            files.setdefault(number, []).append(path)
    results: list[Rediscovery] = []
    for bug in HISTORICAL_BUGS:
        if bug.observable:
            continue
        paths = files.get(bug.number, [])
        if not paths:
            results.append(Rediscovery(bug=bug, files=(), ok=False,
                                       detail="no history file: the model has no register-read outcome"
                                       if bug.number == 16 else "no history file"))
            continue
        verdicts = [_sequence_rows(p, bug) if is_sequence_file(p) else _scenario_rows(load_scenario(p), bug)
                    for p in paths]
        results.append(Rediscovery(bug=bug, files=tuple(str(p) for p in paths), ok=all(ok for ok, _ in verdicts),
                                   detail="; ".join(f"{p.name}: {d}" for p, (_, d) in zip(paths, verdicts,
                                                                                            strict=True))))
    return results


def rediscovery_summary(root: str | Path = HISTORY_DIR) -> str:
    """"N of M historical changes rediscovered at the right release" (M: the host-observable ones)."""
    results = rediscover(root)
    found = sum(r.ok for r in results)
    return f"{found} of {len(results)} historical changes rediscovered at the right release"
