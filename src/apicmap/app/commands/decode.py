"""``apicmap decode KIND VALUE...``: a register value field by field."""

from __future__ import annotations

import argparse
from typing import Any

from apicmap.app.commands.common import Parents, add_command, print_json
from apicmap.app.render import print_table
from apicmap.errors import InputError


def register(subparsers: Any, parents: Parents) -> None:
    parser = add_command(subparsers, "decode", "decode a register value field by field", [parents.json], handle)
    parser.add_argument("kind", help="msi | icr | rte | apicbase | selfipi")
    parser.add_argument("values", nargs="+", help="values (hex with 0x, or decimal)")


def handle(args: argparse.Namespace) -> int:
    from apicmap.app.decode_command import describe

    values = []
    for text in args.values:
        try:
            values.append(int(text, 0))
        except ValueError:
            raise InputError(f"decode {args.kind}", f"cannot read value {text!r}",
                             "integers, e.g. 0xFEE01000 or 4096") from None
    rows = describe(args.kind, values)
    if args.json:
        print_json([{"field": f, "bits": b, "value": v, "meaning": m} for f, b, v, m in rows])
        return 0
    print_table(f"decode {args.kind} {' '.join(args.values)}", ["field", "bits", "value", "meaning"],
                [[f, b, f"0x{v:x}", m] for f, b, v, m in rows])
    return 0
