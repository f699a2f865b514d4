"""``apicmap check``: arch, model and kvm side by side; model != kvm is a failure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from apicmap.app.render import print_table, vcpu_set, wrap
from apicmap.app.runner import CaseResult, Check, KvmTarget, run_scenario
from apicmap.domain.outcome import Outcome
from apicmap.explain import render
from apicmap.files.scenario import Scenario


@dataclass(frozen=True, slots=True)
class CheckRow:
    arch: CaseResult
    model: CaseResult
    kvm: CaseResult | None
    arch_checked: bool = True  # False: --engines left arch out (its column is not shown or counted)

    @property
    def differs(self) -> bool:
        if self.kvm is None or self.kvm.outcome is None or self.model.outcome is None:
            return False
        return not self.model.outcome.same_as(self.kvm.outcome)

    @property
    def failed_expect(self) -> bool:
        """An expectation failed on any engine, ``arch`` included (as ``run --engine arch`` exits 1)."""
        arch = self.arch if self.arch_checked else None
        return any(r is not None and r.check is Check.FAIL for r in (arch, self.model, self.kvm))


@dataclass(frozen=True, slots=True)
class CheckReport:
    scenario: Scenario
    rows: tuple[CheckRow, ...]
    kvm_skipped: str | None

    @property
    def ok(self) -> bool:
        return not any(r.differs or r.failed_expect for r in self.rows)

    def to_json(self) -> dict[str, object]:
        return {
            "scenario": self.scenario.path,
            "kvm_skipped": self.kvm_skipped,
            "ok": self.ok,
            "interrupts": [
                {"index": r.arch.case.index, "name": r.arch.case.name, "differs": r.differs,
                 "arch": r.arch.to_json() if r.arch_checked else None, "model": r.model.to_json(),
                 "kvm": None if r.kvm is None else r.kvm.to_json()}
                for r in self.rows
            ],
        }


def check_scenario(scenario: Scenario, kernel: str | None = None,
                   engines: Sequence[str] = ("arch", "model", "kvm"), *,
                   kvm_target: KvmTarget | None = None) -> CheckReport:
    """Run all three engines (``engines`` may leave arch or kvm out). The model follows the kernel
    release the kvm engine runs (this machine's, or ``kvm_target``'s booted kernel), so that the
    comparison is like for like."""

    from apicmap.kvm.host import kvm_available
    from apicmap.model.policy import host_release

    if "kvm" not in engines:
        available, why = False, "not asked for (--engines)"
    elif kvm_target is not None:
        available, why = True, ""
    else:
        available, why = kvm_available()
    kvm_release = kvm_target.release if kvm_target is not None else host_release()
    # The model follows --kernel, else the release the scenario pins (a fuzz reproducer for 6.2
    # re-runs as a divergence), else the kernel's release.
    model_kernel = kernel or scenario.kernel or (kvm_release if available else None)
    arch = run_scenario(scenario, "arch", explain=True)
    model = run_scenario(scenario, "model", model_kernel, explain=True)
    kvm: list[CaseResult] | None = (run_scenario(scenario, "kvm", explain=True, kvm=kvm_target)
                                    if available else None)
    rows = tuple(CheckRow(a, m, None if kvm is None else kvm[i], "arch" in engines)
                 for i, (a, m) in enumerate(zip(arch, model, strict=True)))
    return CheckReport(scenario, rows, None if available else why)


def _cell(result: CaseResult | None) -> str:
    if result is None:
        return "(skipped)"
    if result.outcome is None:
        return f"n/a: {result.not_expressible}"
    out: Outcome = result.outcome
    text = vcpu_set(out.receivers)
    if out.undefined:
        text += f" ?{vcpu_set(out.undefined)}"
    if out.result is not None:
        text += f" r={out.result}"
    if out.rejected:
        text += " refused"
    if result.check is Check.FAIL:
        text += " EXPECT-FAIL"
    elif result.engine == "arch" and result.case.expect is not None and result.case.expect_arch is None:
        text += " (no expect_arch: unchecked)"
    return text


LEGEND = ("{a, 3-5}: the vCPUs that accepted; ?{...}: vCPUs whose acceptance the architecture leaves "
          "undefined; r=N: the KVM_SIGNAL_MSI return value (a count, 0, or -1 for EPERM); refused: the "
          "injection was rejected before delivery (EINVAL, #GP); EXPECT-FAIL: the engine's answer is not "
          "the file's expect/expect_return; (skipped): the engine did not run")


def print_check(report: CheckReport) -> None:
    if report.kvm_skipped:
        print(f"(kvm engine skipped: {report.kvm_skipped})")
    arch = bool(report.rows) and report.rows[0].arch_checked
    rows = [[str(r.arch.case.index), r.arch.case.name, *([_cell(r.arch)] if arch else []), _cell(r.model),
             _cell(r.kvm), "DIFFERS" if r.differs else ("expect failed" if r.failed_expect else "ok")]
            for r in report.rows]
    print_table(f"check {report.scenario.path}",
                ["#", "interrupt", *(["arch"] if arch else []), "model", "kvm", "verdict"], rows)
    print(wrap("legend: " + LEGEND, 110, "        "))
    for r in report.rows:
        if not (r.differs or r.failed_expect):
            continue
        print(f"\n-- interrupt {r.arch.case.index} ({r.arch.case.name}):")
        for label, res in (("arch", r.arch if r.arch_checked else None), ("model", r.model), ("kvm", r.kvm)):
            if res is None or res.outcome is None:
                continue
            if res.check is Check.FAIL:
                print(f"   {label}: {res.check_detail}")
            exp = res.outcome.explanation
            if exp is not None:
                print(f"   {label}: {render(exp.path)}")
                for note in exp.notes:
                    print(f"     note: {render(note)}")
                for vid, reason in exp.reasons:
                    print(f"     vCPU {vid}: {render(reason)}")
    print("\nresult: " + ("ok" if report.ok else "DIFFERENCES or failed expectations"))
