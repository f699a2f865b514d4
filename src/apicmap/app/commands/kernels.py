"""``apicmap kernels fetch|list``: real kernels to run the kvm engine on (``--on KERNEL``)."""

from __future__ import annotations

import argparse
from typing import Any

from apicmap.app.commands.common import Parents
from apicmap.kernels.cli import add_kernels_command, run_kernels_command


def register(subparsers: Any, parents: Parents) -> None:
    add_kernels_command(subparsers).set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return run_kernels_command(args)
