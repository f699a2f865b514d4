"""``apicmap compare FILE... [--profiles a,b|all]``: interrupts x hypervisor profiles, each difference
named by the rule that makes it."""

from __future__ import annotations

import argparse
from typing import Any

from apicmap.app.commands.common import Parents, add_command


def register(subparsers: Any, parents: Parents) -> None:
    parser = add_command(subparsers, "compare", "interrupts x hypervisor profiles, with the rule behind each "
                         "difference",
                         [parents.json, parents.kernel], handle,
                         "One table per scenario: each interrupt under each profile (KVM and other hypervisors: "
                         "docs/profiles/README.md), each column that differs from the first named by its rule.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="scenario files or directories")
    parser.add_argument("--profiles", default="all", metavar="LIST",
                        help="comma-separated profiles (NAME or NAME@VERSION), or all")


def handle(args: argparse.Namespace) -> int:
    from apicmap.app.compare import run_compare

    return run_compare(args.paths, profiles=[args.profiles], kernel=args.kernel, json=args.json)
