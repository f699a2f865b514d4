"""Campaigns resume: the example database and the findings index survive a killed campaign."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apicmap.cache import cache_root
from apicmap.fuzz.campaign import Campaign, default_store
from apicmap.fuzz.store import FuzzStore

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "APICMAP_CACHE": str(tmp_path / "cache")}


@pytest.mark.kvm
def test_killed_campaign_resumes_without_repeating_findings(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "apicmap", "fuzz", "--against", "kvm", "--kernel", "6.2", "--out", str(out)]
    first = subprocess.Popen([*command, "--time", "120"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=_env(tmp_path), cwd=tmp_path)
    store = FuzzStore.in_dir(out)
    try:
        deadline = time.monotonic() + 90
        while not store.saved() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)  # mid-run: generating or shrinking the next case
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    saved = store.saved()
    assert saved, "the first campaign found nothing before it was killed"
    assert any(p.is_file() for p in store.database.rglob("*")), "the example database is empty"
    second = subprocess.run([*command, "--time", "6", "--json"], capture_output=True, text=True,
                            env=_env(tmp_path), cwd=tmp_path)
    summary = json.loads(second.stdout)
    assert summary["saved_before"] >= len(saved)
    assert not {d["signature"] for d in summary["divergences"]} & set(saved)
    assert any(p.is_file() for p in store.database.rglob("*"))
    assert set(saved) <= set(store.saved())


def test_findings_keep_their_scenario_without_out_and_come_in_time_order() -> None:
    campaign = Campaign("arch", "4.19", seconds=8.0, seed=1)
    findings = campaign.run()
    assert findings, "the arch campaign found nothing to check"
    times = [f.found_after for f in findings]
    assert times == sorted(times)
    assert all("[[interrupt]]" in f.scenario and f.reproducer is None for f in findings)


def test_store_remembers_and_default_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APICMAP_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    store = default_store("kvm", "6.2")
    assert store.database == tmp_path / "fuzz-db" / "kvm-6.2"
    monkeypatch.delenv("APICMAP_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "apicmap"


def test_second_campaign_does_not_report_saved_findings(tmp_path: Path) -> None:
    store = FuzzStore.in_dir(tmp_path)
    first = Campaign("arch", "4.19", seconds=6.0, seed=3, store=store).run()
    assert first and store.index.is_file()
    second = Campaign("arch", "4.19", seconds=3.0, seed=3, store=store)
    again = second.run()
    assert set(second.saved) >= {f.signature for f in first}
    assert not {f.signature for f in again} & {f.signature for f in first}
