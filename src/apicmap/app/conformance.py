"""``apicmap conformance``: the corpus, the examples, the catalogue and saved reproducers against the
kernel and the model, with a summary, JUnit XML and TAP (the kselftest / kvm-unit-tests convention)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from apicmap.app.check import check_scenario
from apicmap.app.runner import CaseResult, Check, KvmTarget
from apicmap.domain.outcome import Outcome
from apicmap.errors import ApicmapError
from apicmap.files.output import atomic_write_text
from apicmap.files.scenario import load_scenario
from apicmap.files.sequence import is_sequence_file, run_sequence_check

DEFAULT_DIRS = ("corpus", "examples", "catalogue")


def default_paths() -> list[str]:
    """What ``apicmap conformance`` runs without paths: the corpus, examples and catalogue bundled with
    the package (``apicmap/data/``), from any working directory."""
    from apicmap.data import bundled_dirs

    return [str(path) for path in bundled_dirs()]


@dataclass(frozen=True, slots=True)
class CaseReport:
    """One engine's half of one interrupt (``engine``: "arch", "model" or "kvm"; "load" for a file
    that could not be loaded). ``skipped`` only when ``ok``: why that half did not run."""

    suite: str  # the file
    name: str
    ok: bool
    skipped: str | None
    detail: str
    engine: str = "model"


@dataclass(frozen=True, slots=True)
class Summary:
    files: int
    interrupts: int
    passed: int
    failed: int
    skipped: int


def summarize(reports: list[CaseReport]) -> Summary:
    """Counts for the closing line: interrupts are counted once, pass/fail/skip per engine half."""
    failed = sum(not r.ok for r in reports)
    skipped = sum(r.ok and r.skipped is not None for r in reports)
    interrupts = len({(r.suite, r.name) for r in reports if r.engine != "load"})
    return Summary(len({r.suite for r in reports}), interrupts, len(reports) - failed - skipped, failed, skipped)


def collect(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            files += sorted(path.rglob("*.toml"))
        elif path.is_file():
            files.append(path)
    return files


def run_conformance(paths: list[str], kernel: str | None = None, engines: Sequence[str] = ("arch", "model", "kvm"),
                    on_file: Callable[[Path], None] | None = None, *,
                    kvm_target: KvmTarget | None = None) -> list[CaseReport]:
    """Model and kernel on the same release: this host's (or ``kernel``). Expectations written for another
    KVM release are reported n/a by the runner rather than checked. Each interrupt gives one report
    per engine in ``engines``: where the kernel is unusable, only its half is skipped; the arch and model
    halves pass or fail on their own. A file that cannot be loaded is that file's failure; the run goes on.
    ``on_file`` is called after each file (progress)."""
    from apicmap.model.policy import host_release as read_host_release

    host_release = kernel or (kvm_target.release if kvm_target is not None else read_host_release())
    reports: list[CaseReport] = []
    for path in collect(paths):
        if is_sequence_file(path):
            if kvm_target is None:  # sequences need the sequence driver, which runs on this host only
                reports += _sequence_reports(path)
            continue
        try:
            report = check_scenario(load_scenario(path), kernel=host_release, engines=engines,
                                    kvm_target=kvm_target)
        except ApicmapError as err:
            reports.append(CaseReport(str(path), "(load)", False, None, str(err), "load"))
            continue
        finally:
            if on_file is not None:
                on_file(path)
        for row in report.rows:
            name = f"#{row.arch.case.index} {row.arch.case.name}"
            if row.arch_checked:
                reports.append(_half(str(path), name, "arch", row.arch, []))
            reports.append(_half(str(path), name, "model", row.model, []))
            if row.kvm is None and "kvm" in engines:
                reports.append(CaseReport(str(path), name, True, report.kvm_skipped or "kvm engine not run", "",
                                          "kvm"))
                continue
            if row.kvm is None:
                continue
            differs = []
            if row.differs:
                assert row.model.outcome is not None and row.kvm.outcome is not None
                differs.append(f"model {_said(row.model.outcome)} != kvm {_said(row.kvm.outcome)}")
            reports.append(_half(str(path), name, "kvm", row.kvm, differs))
    return reports


def _sequence_reports(path: Path) -> list[CaseReport]:
    """A sequence file: model (tracking KVM's recalculation points) vs kernel, per KVM_SIGNAL_MSI."""
    try:
        rows, _ = run_sequence_check(path)
    except ApicmapError as err:
        return [CaseReport(str(path), "(load)", False, None, str(err), "load")]
    reports = []
    for row in rows:
        name = f"step {row['step']}"
        problems = []
        if row["expect_return"] is not None and row["model"] != row["expect_return"]:
            problems.append(f"model r={row['model']}, expected {row['expect_return']}")
        reports.append(CaseReport(str(path), name, not problems, None, "; ".join(problems), "model"))
        if row["kvm"] is None:
            reports.append(CaseReport(str(path), name, True, "kvm unavailable", "", "kvm"))
        else:
            ok = row["model"] == row["kvm"]
            reports.append(CaseReport(str(path), name, ok, None,
                                      "" if ok else f"model r={row['model']} != kvm r={row['kvm']}", "kvm"))
    return reports


def _said(outcome: Outcome) -> str:
    text = f"{list(outcome.receivers)}"
    if outcome.result is not None:
        text += f" returns {outcome.result}"
    if outcome.rejected is not None:
        text += " (refused)"
    return text


def _half(suite: str, name: str, engine: str, result: CaseResult, problems: list[str]) -> CaseReport:
    if result.check is Check.FAIL:
        problems = [*problems, f"{engine}: {result.check_detail}"]
    if problems:
        return CaseReport(suite, name, False, None, "; ".join(problems), engine)
    skipped = result.not_expressible if result.outcome is None else None
    return CaseReport(suite, name, True, skipped, "", engine)


def junit_xml(reports: list[CaseReport]) -> str:
    suites = ET.Element("testsuites", name="apicmap conformance")
    by_suite: dict[str, list[CaseReport]] = {}
    for r in reports:
        by_suite.setdefault(r.suite, []).append(r)
    for suite_name, cases in by_suite.items():
        suite = ET.SubElement(suites, "testsuite", name=suite_name, tests=str(len(cases)),
                              failures=str(sum(not c.ok for c in cases)),
                              skipped=str(sum(c.ok and c.skipped is not None for c in cases)))
        for c in cases:
            case = ET.SubElement(suite, "testcase", classname=suite_name, name=f"{c.name} [{c.engine}]")
            if not c.ok:
                ET.SubElement(case, "failure", message=c.detail)
            elif c.skipped is not None:
                ET.SubElement(case, "skipped", message=c.skipped)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def tap(reports: list[CaseReport]) -> str:
    lines = ["TAP version 13", f"1..{len(reports)}"]
    for i, r in enumerate(reports, 1):
        status = "ok" if r.ok else "not ok"
        directive = f" # SKIP {r.skipped}" if r.ok and r.skipped else ""
        lines.append(f"{status} {i} {r.suite} {r.name} [{r.engine}]{directive}")
        if not r.ok:
            lines.append(f"  ---\n  message: {json.dumps(r.detail)}\n  ...")
    return "\n".join(lines) + "\n"


def write_reports(reports: list[CaseReport], junit: str | None, tap_path: str | None) -> None:
    """Write the JUnit XML and TAP files atomically (check the paths first with
    ``files.output.check_output_path``, before running anything)."""
    if junit:
        atomic_write_text(junit, junit_xml(reports))
    if tap_path:
        atomic_write_text(tap_path, tap(reports))
