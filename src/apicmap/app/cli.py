"""The ``apicmap`` command: assembles one module per command (``apicmap.app.commands``).

A new command is a module under ``app/commands/`` with ``register(subparsers, parents)`` (which
calls ``add_command(..., handler)``) and one line in ``COMMANDS`` below; a new shared option is one
parent parser in ``app/commands/common.py`` (``Parents``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from apicmap.app.commands import (
    bench,
    campaign,
    check,
    compare,
    conformance,
    decode,
    explain,
    fuzz,
    host,
    import_state,
    kernels,
    run,
    sweep,
)
from apicmap.app.commands import map as map_command
from apicmap.app.commands.common import HelpFormatter, Parser, build_parents
from apicmap.errors import ApicmapError
from apicmap.version import __version__

COMMANDS = (run, explain, map_command, decode, check, compare, sweep, fuzz, conformance, campaign, bench, host,
            kernels, import_state)


def build_parser() -> Parser:
    parser = Parser(prog="apicmap", description="Which vCPUs accept this interrupt, and why.",
                    formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"apicmap {__version__}",
                        help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    parents = build_parents()
    for command in COMMANDS:
        command.register(subparsers, parents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ApicmapError as err:
        sys.stderr.write(f"apicmap: error: {err}\n")
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("apicmap: interrupted\n")
        return 130
