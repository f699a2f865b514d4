"""``conformance``: per-engine halves, the kernel half alone skipped without /dev/kvm, bad files reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from apicmap.app import conformance
from apicmap.app.conformance import run_conformance, summarize

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_kvm(monkeypatch: pytest.MonkeyPatch) -> None:
    import apicmap.kvm.host

    monkeypatch.setattr(apicmap.kvm.host, "kvm_available", lambda path="/dev/kvm": (False, "no /dev/kvm (test)"))


def test_without_kvm_only_the_kernel_half_is_skipped(no_kvm: None) -> None:
    reports = run_conformance([str(ROOT / "examples" / "aliased-xapic-id.toml")])
    by_engine = {e: [r for r in reports if r.engine == e] for e in ("arch", "model", "kvm")}
    assert by_engine["model"] and all(r.ok and r.skipped is None for r in by_engine["model"])
    assert by_engine["kvm"] and all(r.ok and r.skipped == "no /dev/kvm (test)" for r in by_engine["kvm"])
    summary = summarize(reports)
    assert summary.passed >= len(by_engine["model"]) and summary.skipped == len(by_engine["kvm"])
    assert summary.interrupts == len(by_engine["model"])


def test_without_kvm_a_failed_model_expectation_fails(no_kvm: None, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[vm]\nvcpus = 2\n[[interrupt]]\ndest = 1\nvector = 0x40\nexpect = [0]\n")
    reports = run_conformance([str(wrong)])
    model = [r for r in reports if r.engine == "model"]
    assert len(model) == 1 and not model[0].ok and "expected receivers [0]" in model[0].detail


def test_failed_arch_expectation_fails(no_kvm: None, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-arch.toml"
    wrong.write_text("[vm]\nvcpus = 2\n[[interrupt]]\ndest = 1\nvector = 0x40\nexpect = [1]\nexpect_arch = [0]\n")
    from apicmap.app.check import check_scenario
    from apicmap.files.scenario import load_scenario

    assert not check_scenario(load_scenario(wrong)).ok
    assert [r.ok for r in run_conformance([str(wrong)]) if r.engine == "arch"] == [False]


def test_a_binary_file_is_its_own_failure_and_the_run_goes_on(no_kvm: None, tmp_path: Path) -> None:
    (tmp_path / "a-binary.toml").write_bytes(b"\x00\xff\xfe garbage \x80")
    (tmp_path / "b-good.toml").write_text("[vm]\nvcpus = 1\n[[interrupt]]\nvector = 0x40\nexpect = [0]\n")
    reports = run_conformance([str(tmp_path)])
    load = [r for r in reports if r.engine == "load"]
    assert len(load) == 1 and "a-binary.toml" in load[0].suite and "not a text file" in load[0].detail
    assert any(r.suite.endswith("b-good.toml") and r.ok for r in reports)


def test_default_paths_work_from_anywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    paths = conformance.default_paths()
    assert paths and conformance.collect(paths)


def test_bundled_data_is_the_top_level_files() -> None:
    from apicmap.data import BUNDLED, DATA_DIR

    for name in BUNDLED:
        bundled = {p.name: p.read_bytes() for p in (DATA_DIR / name).iterdir() if p.is_file()}
        top = {p.name: p.read_bytes() for p in (ROOT / name).iterdir() if p.is_file()}
        assert bundled == top, name


def test_reports_are_written_whole(no_kvm: None, tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    from apicmap.app.conformance import write_reports

    reports = run_conformance([str(ROOT / "examples" / "logical-flat.toml")])
    write_reports(reports, str(tmp_path / "c.xml"), str(tmp_path / "c.tap"))
    assert ET.parse(tmp_path / "c.xml").getroot().tag == "testsuites"
    assert (tmp_path / "c.tap").read_text().startswith("TAP version 13")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tap", "c.xml"]
