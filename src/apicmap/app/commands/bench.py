"""``apicmap bench``: speed of the model, the kvm engine and the fuzzer, against their targets."""

from __future__ import annotations

import argparse
from typing import Any

from apicmap.app.commands.common import Parents, add_command, print_json
from apicmap.app.progress import progress
from apicmap.app.render import cell, print_table


def register(subparsers: Any, parents: Parents) -> None:
    parser = add_command(subparsers, "bench", "speed of the model, the kvm engine and the fuzzer, against targets",
                         [parents.json], handle)
    parser.add_argument("--quick", action="store_true", help="a shorter run (under 30 s)")


def handle(args: argparse.Namespace) -> int:
    from apicmap.app.bench import STAGES, run_bench

    with progress("bench", total=len(STAGES), enabled=not args.json) as bar:
        report = run_bench(args.quick, on_stage=lambda name: bar.advance(status=name))
    if args.json:
        print_json(report)
        return 0
    figures: dict[str, dict[str, object]] = report["figures"]  # type: ignore[assignment]
    rows = []
    for name, f in figures.items():
        value = f["value"]
        shown = "-" if value is None else (f"{value:,.0f}" if isinstance(value, float) and value >= 100
                                           else f"{value:.3g}")
        met = {True: "met", False: "MISSED", None: ""}[f["met"]]  # type: ignore[index]
        rows.append([name, f"{shown} {f['unit']}".strip(), cell(f["target"] or None), met, cell(f["note"] or None)])
    print_table(f"apicmap bench ({'quick, ' if args.quick else ''}{report['seconds']} s)",
                ["figure", "value", "target", "", "note"], rows)
    return 0
