"""``apicmap conformance``: the corpus, the examples, the catalogue and saved reproducers against the
kernel and the model, with a summary, JUnit XML and TAP (the kselftest / kvm-unit-tests convention)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from apicmap.app.check import check_scenario
from apicmap.app.runner import Check
from apicmap.errors import ApicmapError
from apicmap.files.scenario import load_scenario
from apicmap.files.sequence import is_sequence_file, run_sequence_check

DEFAULT_DIRS = ("corpus", "corpus/history", "examples", "catalogue")


@dataclass(frozen=True, slots=True)
class CaseReport:
    suite: str  # the file
    name: str
    ok: bool
    skipped: str | None
    detail: str


def collect(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            files += sorted(path.glob("*.toml"))
        elif path.is_file():
            files.append(path)
    return files


def run_conformance(paths: list[str]) -> list[CaseReport]:
    """Model and kernel on the same release: this host's. Expectations written for another KVM
    release are reported n/a by the runner rather than checked."""
    from apicmap.model.policy import host_release as read_host_release

    host_release = read_host_release()
    reports: list[CaseReport] = []
    for path in collect(paths):
        if is_sequence_file(path):
            reports += _sequence_reports(path)
            continue
        try:
            report = check_scenario(load_scenario(path), kernel=host_release)
        except ApicmapError as err:
            reports.append(CaseReport(str(path), "(load)", False, None, str(err)))
            continue
        for row in report.rows:
            name = f"#{row.arch.case.index} {row.arch.case.name}"
            skipped = report.kvm_skipped or (row.kvm.not_expressible if row.kvm is not None else None)
            problems = []
            if row.differs:
                assert row.model.outcome is not None and row.kvm is not None and row.kvm.outcome is not None
                problems.append(f"model {list(row.model.outcome.receivers)} r={row.model.outcome.result} != "
                                f"kvm {list(row.kvm.outcome.receivers)} r={row.kvm.outcome.result}")
            for label, result in (("model", row.model), ("kvm", row.kvm)):
                if result is not None and result.check is Check.FAIL:
                    problems.append(f"{label}: {result.check_detail}")
            reports.append(CaseReport(str(path), name, not problems, skipped if not problems else None,
                                      "; ".join(problems)))
    return reports


def _sequence_reports(path: Path) -> list[CaseReport]:
    """A sequence file: model (tracking KVM's recalculation points) vs kernel, per KVM_SIGNAL_MSI."""
    try:
        rows, _ = run_sequence_check(path)
    except ApicmapError as err:
        return [CaseReport(str(path), "(load)", False, None, str(err))]
    reports = []
    for row in rows:
        problems = []
        if row["kvm"] is not None and row["model"] != row["kvm"]:
            problems.append(f"model r={row['model']} != kvm r={row['kvm']}")
        if row["expect_return"] is not None and row["model"] != row["expect_return"]:
            problems.append(f"model r={row['model']}, expected {row['expect_return']}")
        skipped = "kvm unavailable" if row["kvm"] is None and not problems else None
        reports.append(CaseReport(str(path), f"step {row['step']}", not problems, skipped, "; ".join(problems)))
    return reports


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
            case = ET.SubElement(suite, "testcase", classname=suite_name, name=c.name)
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
        lines.append(f"{status} {i} {r.suite} {r.name}{directive}")
        if not r.ok:
            lines.append(f"  ---\n  message: {r.detail!r}\n  ...")
    return "\n".join(lines) + "\n"
