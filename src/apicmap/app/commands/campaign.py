"""``apicmap campaign PLAN.toml``: a plan's shards on local processes or a Dask cluster, one report."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from apicmap.app.commands.common import Parents, add_command, check_output, print_json, write_output
from apicmap.errors import InputError


def register(subparsers: Any, parents: Parents) -> None:
    parser = add_command(subparsers, "campaign", "run a plan of kernels, jobs and seeds as shards, locally or on Dask",
                         [parents.json], handle,
                         "Expand the plan into shards (a job on one kernel with one seed), run them as local "
                         "processes or on a Dask cluster with a shared Hypothesis database, retry lost shards, "
                         "and merge the findings into one report. Started again, a campaign resumes. Exit 1 on "
                         "a finding or a lost shard. The plan's keys: docs/campaigns.md.")
    parser.add_argument("plan", help="the plan file (TOML)")
    parser.add_argument("--out", metavar="DIR",
                        help="the campaign's directory: journal, examples, reproducers, report "
                             "(default: <cache>/campaigns/NAME)")
    parser.add_argument("--workers", type=int, metavar="N", default=os.cpu_count() or 1,
                        help="shards at once on this machine (local processes, or --scheduler local), 1..256")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on Dask: tcp://HOST:PORT of a running scheduler, or local for a LocalCluster "
                             "of --workers processes; default: local processes without Dask")
    parser.add_argument("--database", metavar="URL",
                        help="the shared example database, overriding the plan's: a directory or redis://HOST:PORT/DB")
    parser.add_argument("--fresh", action="store_true", help="start the plan over instead of resuming it")
    parser.add_argument("--junit", metavar="FILE", help="also write the report as JUnit XML")


def handle(args: argparse.Namespace) -> int:
    from apicmap.app.campaign.coordinator import run_campaign
    from apicmap.app.campaign.executors import DaskExecutor, Executor, LocalExecutor
    from apicmap.app.campaign.report import junit_xml, merge, text
    from apicmap.cache import cache_root
    from apicmap.files.output import check_output_dir
    from apicmap.files.plan import load_plan

    if not 1 <= args.workers <= 256:
        raise InputError("--workers", f"bad value {args.workers}", "1..256")
    plan = load_plan(args.plan)
    out = Path(args.out) if args.out else cache_root() / "campaigns" / plan.name
    check_output_dir(out, "--out")
    check_output(args.junit, "--junit")
    if args.scheduler is not None and args.scheduler != "local" and "://" not in args.scheduler:
        raise InputError("--scheduler", f"bad address {args.scheduler!r}", "tcp://HOST:PORT, or local")
    executor: Executor = (DaskExecutor(args.scheduler, args.workers) if args.scheduler
                          else LocalExecutor(args.workers))
    run = run_campaign(plan, out, executor, database=args.database, fresh=args.fresh, progress=_say)
    report = merge(run, out)
    if args.junit:
        write_output(args.junit, junit_xml(report))
    if args.json:
        print_json(report.to_json())
    else:
        print("\n".join(text(report)))
    return 1 if report.findings or report.lost else 0


def _say(line: str) -> None:
    print(f"apicmap: {line}", file=sys.stderr, flush=True)
