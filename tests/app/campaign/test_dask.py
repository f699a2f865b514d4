"""Campaigns on Dask distributed (a ``LocalCluster`` of worker processes) and on Redis: the same
plan gives the same report as on local processes, a booted kernel is booted by the worker that runs
its shard, a killed worker costs one retry and no finding."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from apicmap.app.campaign.executors import DaskExecutor, LocalExecutor
from apicmap.app.campaign.report import CampaignReport
from apicmap.fuzz.store import SharedStore
from apicmap.model.policy import host_release, parse_release
from tests.app.campaign.helpers import in_background, run, running_with_a_finding, shards, wait_for, write_plan
from tests.helpers import fetch_kernel_or_skip, redis_server_or_skip

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def dask_cluster() -> Iterator[DaskExecutor]:
    executor = DaskExecutor("local", 2)
    try:
        yield executor
    finally:
        executor.close()


def _findings(report: CampaignReport) -> dict[str, set[str]]:
    return {t.target: {f.signature for f in t.findings} for t in report.targets}


@pytest.mark.kvm
def test_one_plan_gives_the_same_report_on_processes_and_on_dask(tmp_path: Path, dask_cluster: DaskExecutor) -> None:
    # Deterministic jobs, so the two reports can be equal finding for finding.
    plan = write_plan(tmp_path, f"""
[campaign]
name = "same"

[[job]]
kind = "sweep"
scenario = "{ROOT / 'examples/aliased-xapic-id.toml'}"
model = "6.2"

[[job]]
kind = "conformance"
paths = ["{ROOT / 'examples'}"]
""")
    _, local = run(plan, tmp_path / "local", LocalExecutor(2))
    _, dask = run(plan, tmp_path / "dask", dask_cluster)
    assert dask.executor.startswith("Dask LocalCluster")
    assert _findings(local) == _findings(dask)
    sweep_target = next(t for t in local.targets if t.target.startswith("sweep"))
    assert any(s.startswith("kvm|physical ID aliasing") for s in _findings(local)[sweep_target.target])
    assert [(r.shard, r.status, r.pairs) for r in local.shard_runs] == \
        [(r.shard, r.status, r.pairs) for r in dask.shard_runs]
    assert all(r.status == "finished" for r in dask.shard_runs)
    assert {w.split(":")[1] for r in dask.shard_runs for w in r.workers} - {str(os.getpid())}


@pytest.mark.kvm
@pytest.mark.guest
def test_dask_workers_run_the_host_kernel_and_boot_another(tmp_path: Path, dask_cluster: DaskExecutor) -> None:
    fetch_kernel_or_skip("debian:6.1")  # cached before the clock of the plan starts
    plan = write_plan(tmp_path, """
[campaign]
name = "kernels"
kernels = ["host", "debian:6.1"]
seeds = [7]
seconds = 8
boot_timeout = 240

[[job]]
kind = "fuzz"
""")
    _, report = run(plan, tmp_path / "out", dask_cluster)
    host, booted = report.targets
    assert [r.status for r in report.shard_runs] == ["finished", "finished"]
    assert host.releases == (host_release(),) and host.pairs > 0
    (release,) = booted.releases
    assert parse_release(release)[:2] == (6, 1) and booted.pairs > 0
    assert booted.models == (release,)  # the model follows the booted kernel's own release


def test_a_killed_dask_worker_costs_one_retry_and_no_finding(tmp_path: Path, dask_cluster: DaskExecutor) -> None:
    plan = write_plan(tmp_path, """
[campaign]
name = "killed"
seeds = [5]
seconds = 10
retries = 1

[[job]]
kind = "fuzz"
profiles = "kvm,qemu"
""")
    out = tmp_path / "out"
    (shard,) = shards(plan)
    url = str(out / "examples")
    thread, box = in_background(lambda: run(plan, out, dask_cluster))
    pid = wait_for(lambda: running_with_a_finding(url, shard), 90, "the shard's first finding")
    assert isinstance(pid, int) and pid != os.getpid()
    before = {str(r["signature"]) for r in SharedStore(url, shard.namespace).findings()}
    os.kill(pid, signal.SIGKILL)  # the worker process; its nanny starts a new one
    thread.join(180)
    _, report = box[0]  # type: ignore[misc]
    (shard_run,) = report.shard_runs
    assert shard_run.status == "finished" and shard_run.attempts == 2
    assert len(shard_run.lost_attempts) == 1 and shard_run.lost_attempts[0].startswith("KilledWorker")
    assert before <= {f.signature for t in report.targets for f in t.findings}


def test_the_shared_database_on_redis(tmp_path: Path) -> None:
    import redis

    server, url = redis_server_or_skip(tmp_path)
    try:
        plan = write_plan(tmp_path, f"""
[campaign]
name = "redis"
seeds = [1, 2]
seconds = 4
database = "{url}"

[[job]]
kind = "fuzz"
profiles = "kvm,qemu"
""")
        done, report = run(plan, tmp_path / "out", LocalExecutor(2))
        assert report.database == url and not (tmp_path / "out" / "examples").exists()
        assert all(r.status == "finished" and r.attempts == 1 for r in report.shard_runs)
        (target,) = report.targets
        records = SharedStore(url, done.shards[0].namespace).findings()
        assert target.findings and {f.signature for f in target.findings} == {str(r["signature"]) for r in records}
        keys = redis.Redis.from_url(url).keys(b"hypothesis-example:apicmap:redis:0:*examples:*")
        assert keys, "no example reached Redis"
    finally:
        server.terminate()
        server.wait(10)
