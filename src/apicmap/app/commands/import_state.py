"""``apicmap import FORMAT SOURCE [-o FILE]``: a real VM's interrupt state as a scenario."""

from __future__ import annotations

import argparse
from typing import Any

from apicmap.app.commands.common import HelpFormatter, Parents
from apicmap.importers.cli import HELP, add_import_arguments, run_import


def register(subparsers: Any, parents: Parents) -> None:
    parser = subparsers.add_parser("import", help=HELP, description=HELP, formatter_class=HelpFormatter)
    add_import_arguments(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return run_import(args)
