"""Every corpus/ and examples/ scenario on live QEMU: each expressible interrupt must match the
reading of QEMU 7.2's source, and each disagreement with arch must be one docs/profiles/qemu.md
explains."""

from __future__ import annotations

from pathlib import Path

import pytest

from apicmap.qemu import QemuEngine

from .corpus_report import run_file, scenario_files


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scenario_on_qemu(qemu_engine: QemuEngine, path: Path) -> None:
    if qemu_engine.version[:2] != (7, 2):
        pytest.skip(f"the reading is of QEMU 7.2; this is QEMU {qemu_engine.version_text}")
    result = run_file(qemu_engine, path)
    for row in result.rows:
        assert row.matches_reading, (row.index, row.name, row.qemu)
        assert row.agrees or row.why != "unexplained", (row.index, row.name, row.qemu, row.arch)
        if row.not_expressible is not None:
            assert "\n" not in row.not_expressible
