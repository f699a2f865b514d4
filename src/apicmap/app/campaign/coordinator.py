"""Running a plan: shards out to an executor, results into the journal, lost shards retried.

The campaign's directory (``--out``) holds:

- ``campaign.json``: the plan's digest and the epoch (bumped by ``--fresh``), so a directory
  never mixes two plans' shards;
- ``shards.jsonl``: one line per finished shard, appended and flushed as each ends. A campaign
  killed at any point and started again skips these shards;
- ``examples/``: the shared Hypothesis database, unless the plan or ``--database`` names another
  (a directory on shared storage, or Redis);
- ``reproducers/``, ``report.json`` and, with ``--junit``, the JUnit XML: written at the end.

Findings live in the shared database the moment a shard has shrunk them, so the report reads
them from there as well as from the journal: a shard killed after a finding loses nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from apicmap.app.campaign.executors import Executor
from apicmap.app.campaign.shards import Shard, ShardResult, expand
from apicmap.errors import InputError
from apicmap.files.output import atomic_write_text
from apicmap.files.plan import Plan
from apicmap.fuzz.store import check_backend

JOURNAL = "shards.jsonl"
STATE = "campaign.json"


@dataclass(frozen=True, slots=True)
class CampaignDir:
    path: Path

    def open(self, plan: Plan, *, fresh: bool) -> int:
        """The epoch to run in: the directory's own when it holds this plan, a new one with ``fresh``."""
        state_file = self.path / STATE
        state: dict[str, object] = {}
        if state_file.is_file():
            try:
                loaded = json.loads(state_file.read_text(encoding="utf-8"))
                state = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                state = {}
        epoch = state.get("epoch", 0)
        epoch = epoch if isinstance(epoch, int) else 0
        if state and not fresh and state.get("digest") != plan.digest:
            raise InputError("--out", f"{self.path} holds a campaign of another plan ({state.get('name')})",
                             "another directory, or --fresh to start this plan over in it")
        if fresh or not state:
            epoch = epoch + 1 if state else 0
            (self.path / JOURNAL).unlink(missing_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(state_file, json.dumps({"name": plan.name, "digest": plan.digest, "epoch": epoch,
                                                  "plan": plan.to_json()}, indent=2) + "\n")
        return epoch

    def finished(self) -> dict[str, ShardResult]:
        """The journal's shards; a torn last line (the campaign was killed mid-write) is ignored."""
        results: dict[str, ShardResult] = {}
        try:
            lines = (self.path / JOURNAL).read_text(encoding="utf-8").splitlines()
        except OSError:
            return results
        for line in lines:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and "shard" in data:
                result = ShardResult.from_json(data)
                results[result.shard] = result
        return results

    def append(self, result: ShardResult) -> None:
        with open(self.path / JOURNAL, "a", encoding="utf-8") as journal:
            journal.write(json.dumps(result.to_json(), sort_keys=True) + "\n")
            journal.flush()
            os.fsync(journal.fileno())


@dataclass(slots=True)
class Run:
    """What the coordinator saw: the shards, their results, and every attempt's loss."""

    plan: Plan
    epoch: int
    database: str
    executor: str
    shards: list[Shard]
    results: dict[str, ShardResult]
    resumed: set[str]  # shards finished by an earlier run of the campaign
    losses: dict[str, list[str]] = field(default_factory=dict)  # shard -> why each lost attempt was lost
    lost: set[str] = field(default_factory=set)  # shards given up after their last retry
    elapsed: float = 0.0


def run_campaign(plan: Plan, out: Path, executor: Executor, *, database: str | None = None, fresh: bool = False,
                 progress: Callable[[str], None] = lambda _: None) -> Run:
    directory = CampaignDir(out)
    epoch = directory.open(plan, fresh=fresh)
    url = database or plan.database or str(out / "examples")
    check_backend(url, "--database" if database else "database")
    shards = expand(plan, epoch)
    finished = directory.finished()
    run = Run(plan, epoch, url, executor.description, shards, dict(finished), set(finished))
    pending = deque(s for s in shards if s.id not in finished)
    if finished:
        progress(f"resuming: {len(finished)} of {len(shards)} shards finished earlier")
    attempts: dict[str, int] = {}
    running: dict[object, Shard] = {}
    started = time.monotonic()
    try:
        while pending or running:
            while pending and executor.room(len(running)):
                shard = pending.popleft()
                attempts[shard.id] = attempts.get(shard.id, 0) + 1
                running[executor.start(shard, url, attempts[shard.id])] = shard
            for handle, outcome in executor.wait(list(running), timeout=1.0):
                shard = running.pop(handle)
                if isinstance(outcome, ShardResult):
                    directory.append(outcome)
                    run.results[shard.id] = outcome
                    progress(f"[{len(run.results)}/{len(shards)}] {shard.id}: {outcome.pairs} pairs, "
                             f"{len(outcome.findings)} finding(s), {outcome.seconds:.1f}s")
                    continue
                run.losses.setdefault(shard.id, []).append(outcome)
                if attempts[shard.id] <= plan.retries:
                    progress(f"{shard.id}: lost ({outcome}); retry {attempts[shard.id]} of {plan.retries}")
                    pending.append(shard)
                else:
                    run.lost.add(shard.id)
                    progress(f"{shard.id}: lost ({outcome}); given up after {attempts[shard.id]} attempt(s)")
    finally:
        executor.close()
        run.elapsed = time.monotonic() - started
    return run
