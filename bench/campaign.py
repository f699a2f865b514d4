"""Campaign throughput: pairs/s with 1, 2 and 4 local workers against this machine's kernel, and
the cost of the Dask path over plain processes.

    .venv/bin/python bench/campaign.py [--seconds 20] [--runs 3] [--json]

Each configuration runs a plan of one fuzz shard per worker (the model of this kernel's release
against its KVM, seconds per shard) from scratch, ``--runs`` times; the figure is the median of
(pairs compared by all shards) / (wall time of the whole campaign: spawning the shard processes or
starting the Dask cluster, fuzzing, merging the report), the time a user waits. A fresh output
directory per run, so nothing is resumed or replayed from an earlier run's database.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from apicmap.app.campaign.coordinator import run_campaign
from apicmap.app.campaign.executors import DaskExecutor, Executor, LocalExecutor
from apicmap.app.campaign.report import merge
from apicmap.files.plan import load_plan


def _plan(directory: Path, shards: int, seconds: int) -> Path:
    path = directory / "plan.toml"
    seeds = ", ".join(str(s) for s in range(1, shards + 1))
    path.write_text(f'[campaign]\nname = "bench"\nseeds = [{seeds}]\nseconds = {seconds}\n\n[[job]]\nkind = "fuzz"\n')
    return path


def _once(executor: Executor, shards: int, seconds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="apicmap-bench-") as temp:
        plan = load_plan(_plan(Path(temp), shards, seconds))
        started = time.monotonic()
        run = run_campaign(plan, Path(temp) / "out", executor)
        report = merge(run, Path(temp) / "out")
        wall = time.monotonic() - started
    pairs = sum(r.pairs for r in report.shard_runs)
    assert report.lost == 0, "a shard was lost"
    return {"pairs": pairs, "wall_s": wall, "pairs_per_s": pairs / wall}


def _summary(runs: list[dict[str, float]]) -> dict[str, object]:
    rates = [r["pairs_per_s"] for r in runs]
    return {"value": round(statistics.median(rates), 1), "min": round(min(rates), 1), "max": round(max(rates), 1),
            "wall_s": round(statistics.median(r["wall_s"] for r in runs), 2), "runs": len(runs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20, help="fuzzing time per shard")
    parser.add_argument("--runs", type=int, default=3, help="repetitions per configuration")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures: dict[str, dict[str, object]] = {}
    for workers in (1, 2, 4):
        figures[f"local processes, {workers} worker(s)"] = _summary(
            [_once(LocalExecutor(workers), workers, args.seconds) for _ in range(args.runs)])
        print(f"local {workers}: {figures[f'local processes, {workers} worker(s)']}", file=sys.stderr)
    dask_runs = []
    startup = []
    for _ in range(args.runs):
        started = time.monotonic()
        executor = DaskExecutor("local", 2)
        startup.append(time.monotonic() - started)
        one = _once(executor, 2, args.seconds)  # closes the cluster
        one["wall_s"] += startup[-1]
        one["pairs_per_s"] = one["pairs"] / one["wall_s"]
        dask_runs.append(one)
    figures["Dask LocalCluster, 2 workers"] = _summary(dask_runs)
    figures["Dask LocalCluster, 2 workers"]["cluster_start_s"] = round(statistics.median(startup), 2)
    local_two = float(figures["local processes, 2 worker(s)"]["value"])  # type: ignore[arg-type]
    dask_two = float(figures["Dask LocalCluster, 2 workers"]["value"])  # type: ignore[arg-type]
    result = {"seconds_per_shard": args.seconds, "cores": os.cpu_count(), "figures": figures,
              "dask_over_processes": round(dask_two / local_two, 3)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, figure in figures.items():
            print(f"{name:<34} {figure['value']:>9,.0f} pairs/s  (min {figure['min']:,.0f}, max {figure['max']:,.0f}, "
                  f"wall {figure['wall_s']} s)")
        print(f"Dask / processes at 2 workers: {result['dask_over_processes']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
