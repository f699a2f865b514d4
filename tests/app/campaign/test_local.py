"""Campaigns on local processes: the merged report is the union of the shards' findings, a killed
shard is retried, a killed campaign resumes without losing a finding, a failing kernel loses only
its own shard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from apicmap.app.campaign.coordinator import JOURNAL, CampaignDir
from apicmap.app.campaign.executors import LocalExecutor
from apicmap.app.campaign.report import junit_xml
from apicmap.files.scenario import load_scenario
from apicmap.fuzz.store import SharedStore
from tests.app.campaign.helpers import (
    in_background,
    run,
    running_with_a_finding,
    shards,
    signatures,
    wait_for,
    write_plan,
)
from tests.helpers import fetch_kernel_or_skip

ROOT = Path(__file__).resolve().parents[3]

PROFILES = """
[campaign]
name = "profiles"
seeds = [{seeds}]
seconds = {seconds}
retries = {retries}

[[job]]
kind = "fuzz"
profiles = "kvm,qemu"
"""


@pytest.mark.kvm
def test_the_report_is_the_union_of_the_shards_findings(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, """
[campaign]
name = "union"
seeds = [1, 2]
seconds = 6

[[job]]
kind = "fuzz"
model = "6.2"

[[job]]
kind = "fuzz"
profiles = "kvm,qemu"
""")
    out = tmp_path / "out"
    done, report = run(plan, out)
    assert [r.status for r in report.shard_runs] == ["finished"] * 4
    assert all(r.attempts == 1 and not r.lost_attempts for r in report.shard_runs)
    journal = CampaignDir(out).finished()
    assert set(journal) == {s.id for s in done.shards}
    for target in report.targets:
        mine = [s for s in done.shards if s.target == target.target]
        from_shards = {str(f["signature"]) for s in mine for f in journal[s.id].findings}
        from_store = {str(r["signature"]) for r in SharedStore(done.database, mine[0].namespace).findings()}
        assert signatures(report, target.target) == from_shards | from_store
        for finding in target.findings:
            records = [f for s in mine for f in journal[s.id].findings if f["signature"] == finding.signature]
            earliest = min(records, key=lambda f: str(f["detected_at"]))
            assert (finding.first_shard, finding.first_seen) == (earliest["shard"], earliest["detected_at"])
            assert finding.reproducer is not None
            load_scenario(finding.reproducer)  # apicmap check re-runs it
    host, profiles = report.targets
    assert host.findings and profiles.findings, "model 6.2 vs this kernel, and kvm vs qemu, always differ"
    assert host.releases and host.models == ("6.2",)
    suites = ET.fromstring(junit_xml(report).split("\n", 1)[1])
    assert len(suites) == 2
    assert sum(int(s.get("failures", "0")) for s in suites) == report.findings
    assert sum(int(s.get("errors", "0")) for s in suites) == 0
    assert json.loads((out / "report.json").read_text()) == report.to_json()


def test_a_killed_shard_process_is_retried_and_loses_no_finding(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, PROFILES.format(seeds="5", seconds=10, retries=1))
    out = tmp_path / "out"
    shard = shards(plan)[0]
    url = str(out / "examples")
    thread, box = in_background(lambda: run(plan, out, LocalExecutor(1)))
    pid = wait_for(lambda: running_with_a_finding(url, shard), 60, "the shard's first finding")
    before = {str(r["signature"]) for r in SharedStore(url, shard.namespace).findings()}
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    thread.join(120)
    _, report = box[0]  # type: ignore[misc]
    (shard_run,) = report.shard_runs
    assert shard_run.status == "finished" and shard_run.attempts == 2
    assert shard_run.lost_attempts == ("the shard's process died (killed by signal 9)",)
    assert report.to_json()["shards"] == {"total": 1, "finished": 1, "resumed": 0, "lost": 0, "retried": 1}
    assert before <= signatures(report, shard.target)


def _cli(plan: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "apicmap", "campaign", str(plan), "--out", str(out), *extra]


def test_a_killed_campaign_resumes_and_loses_no_finding(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, PROFILES.format(seeds="1, 2, 3", seconds=5, retries=0))
    out = tmp_path / "out"
    first, second, third = shards(plan)
    url = str(out / "examples")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    campaign = subprocess.Popen(_cli(tmp_path / "plan.toml", out, "--workers", "1"), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        shard_pid = wait_for(lambda: (out / JOURNAL).is_file() and running_with_a_finding(url, second), 90,
                             "the first shard to finish and the second to find something")
    finally:
        campaign.kill()  # the coordinator only: its shard process must not outlive it
        campaign.wait()
    assert isinstance(shard_pid, int)
    wait_for(lambda: not Path(f"/proc/{shard_pid}").exists() or "Z" in _state(shard_pid), 10,
             "the orphaned shard process to end")
    before = {str(r["signature"]) for r in SharedStore(url, second.namespace).findings()}
    assert CampaignDir(out).finished().keys() == {first.id}
    resumed = subprocess.run([*_cli(tmp_path / "plan.toml", out, "--workers", "1"), "--json"], env=env,
                             capture_output=True, text=True, timeout=120)
    report = json.loads(resumed.stdout)
    assert resumed.returncode == 1  # findings
    assert report["shards"] == {"total": 3, "finished": 3, "resumed": 1, "lost": 0, "retried": 0}
    attempts = {r["shard"]: r["attempts"] for r in report["shard_runs"]}
    assert attempts == {first.id: 1, second.id: 2, third.id: 1}
    (target,) = report["targets"]
    assert before <= {f["signature"] for f in target["findings"]}
    again = subprocess.run([*_cli(tmp_path / "plan.toml", out), "--json"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert json.loads(again.stdout)["shards"]["resumed"] == 3
    changed = tmp_path / "plan.toml"
    changed.write_text(changed.read_text().replace("seconds = 5", "seconds = 4"))
    refused = subprocess.run(_cli(changed, out), env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "holds a campaign of another plan" in refused.stderr


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "gone"


@pytest.mark.kvm
@pytest.mark.guest
def test_a_kernel_that_cannot_boot_loses_only_its_shard(tmp_path: Path) -> None:
    # Debian's image without its modules: it boots, but cannot mount the host's files (9p is a
    # module), as a developer's build without 9p or KVM would fail.
    kernel = fetch_kernel_or_skip("debian:6.1")
    image = tmp_path / "vmlinuz"
    image.write_bytes(kernel.image.read_bytes())  # type: ignore[attr-defined]
    plan = write_plan(tmp_path, f"""
[campaign]
name = "broken"
kernels = ["host", "{image}"]
retries = 1
boot_timeout = 120

[[job]]
kind = "sweep"
scenario = "{ROOT / 'examples/aliased-xapic-id.toml'}"
""")
    _, report = run(plan, tmp_path / "out")
    host, broken = report.shard_runs
    assert host.status == "finished" and host.pairs > 0 and host.attempts == 1
    assert broken.status == "lost" and broken.attempts == 2 and len(broken.lost_attempts) == 2
    assert all("GuestBootFailed" in why and "9p" in why for why in broken.lost_attempts)
    suites = ET.fromstring(junit_xml(report).split("\n", 1)[1])
    assert [int(s.get("errors", "0")) for s in suites] == [0, 1]
