"""Running a plan in-process, and reading what a campaign left in its directory and shared store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from apicmap.app.campaign.coordinator import Run, run_campaign
from apicmap.app.campaign.executors import Executor, LocalExecutor
from apicmap.app.campaign.report import CampaignReport, merge
from apicmap.app.campaign.shards import Shard, expand
from apicmap.files.plan import Plan, load_plan
from apicmap.fuzz.store import SharedStore


def write_plan(directory: Path, text: str) -> Plan:
    path = directory / "plan.toml"
    path.write_text(text)
    return load_plan(path)


def run(plan: Plan, out: Path, executor: Executor | None = None, **kwargs: object) -> tuple[Run, CampaignReport]:
    done = run_campaign(plan, out, executor or LocalExecutor(2), **kwargs)  # type: ignore[arg-type]
    return done, merge(done, out)


def shards(plan: Plan, epoch: int = 0) -> list[Shard]:
    return expand(plan, epoch)


def in_background(work: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run ``work`` in a thread; its result (or exception) lands in the returned list."""
    box: list[object] = []

    def target() -> None:
        try:
            box.append(work())
        except BaseException as err:  # handed to the test thread
            box.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def wait_for(condition: Callable[[], object], seconds: float, what: str) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")


def running_with_a_finding(url: str, shard: Shard) -> int | None:
    """The pid that runs ``shard`` once the shard has saved a finding to the store (None before)."""
    store = SharedStore(url, shard.namespace)
    attempts = store.attempts(shard.id)
    mine = [r for r in store.findings() if r.get("shard") == shard.id]
    if not attempts or not mine:
        return None
    pid = attempts[-1].get("pid")
    return pid if isinstance(pid, int) else None


def signatures(report: CampaignReport, target: str) -> set[str]:
    return {f.signature for t in report.targets if t.target == target for f in t.findings}
