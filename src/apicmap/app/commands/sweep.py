"""``apicmap sweep FILE``: every message to the scenario's VM on several engines; differences by rule."""

from __future__ import annotations

import argparse
from typing import Any

from apicmap.app.commands.common import Parents, add_command


def register(subparsers: Any, parents: Parents) -> None:
    parser = add_command(subparsers, "sweep", "every message to the scenario's VM on several engines, by rule",
                         [parents.scenario, parents.json, parents.kernel], handle,
                         "All 256 xAPIC destinations (and chosen x2APIC ranges), both destination modes, every "
                         "delivery mode and shorthand, from every source, on each engine; the differences "
                         "grouped by the rule involved, known ones named from the catalogue. Exit 1 on an "
                         "unknown difference.")
    parser.add_argument("--engines", default="model,arch", metavar="LIST",
                        help="comma-separated engines, the model first: model, arch, kvm")
    parser.add_argument("--x2apic", metavar="RANGES", help="x2APIC destinations too, e.g. 0x100-0x1ff,4095")
    parser.add_argument("--ipi-sources", choices=("ends", "all"), default="ends",
                        help="addressed IPIs from the first and last x2APIC source, or from every one")


def handle(args: argparse.Namespace) -> int:
    from apicmap.app.sweep import run_sweep

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    return run_sweep(args.file, engines=engines, kernel=args.kernel, x2apic_ranges=args.x2apic,
                     ipi_sources=args.ipi_sources, json=args.json)
