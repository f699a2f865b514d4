"""Pieces for the ``apicmap`` command line: ``apicmap kernels fetch|list`` and ``--on KERNEL``.

The integrator adds them to the main parser::

    add_kernels_command(sub)                 # sub = parser.add_subparsers(dest="command")
    _HANDLERS["kernels"] = run_kernels_command
    add_on_option(run_parser)                # and on explain/check/...
    with kvm_engine_for(args) as engine:     # the guest's KVM with --on, this host's without
        ...

Errors are ``ApicmapError``s: the main loop prints them on one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from apicmap.domain.engine import Engine
from apicmap.engines import make_engine
from apicmap.kernels.cache import list_cached
from apicmap.kernels.fetch import fetch
from apicmap.kernels.remote import DEFAULT_BOOT_TIMEOUT, open_session
from apicmap.kernels.source import ALLOWED_FORMS, parse_spec


def add_kernels_command(subparsers: Any) -> argparse.ArgumentParser:
    """``apicmap kernels fetch SPEC... [--modules DIR]`` and ``apicmap kernels list [--json]``."""
    kernels = subparsers.add_parser("kernels", help="real kernels to run the kvm engine on (--on KERNEL)")
    actions = kernels.add_subparsers(dest="kernels_command", required=True, metavar="ACTION",
                                     help="fetch: download and cache; list: what is cached")
    fetch_parser = actions.add_parser("fetch", help="download and cache kernels (a no-op when cached)")
    fetch_parser.add_argument("specs", nargs="+", metavar="KERNEL", help=ALLOWED_FORMS)
    fetch_parser.add_argument("--modules", help="modules directory for a kernel image path")
    list_parser = actions.add_parser("list", help="cached kernels: release, vendor module, size")
    list_parser.add_argument("--json", action="store_true")
    return kernels  # type: ignore[no-any-return]


def run_kernels_command(args: argparse.Namespace) -> int:
    if args.kernels_command == "fetch":
        for text in args.specs:
            kernel = fetch(parse_spec(text, modules=args.modules, where="kernels fetch"),
                           progress=lambda line: print(line, file=sys.stderr))
            vendors = ", ".join(kernel.vendors)
            print(f"{kernel.release}\t{vendors}\t{kernel.image}")
        return 0
    rows = list_cached()
    if args.json:
        print(json.dumps([{"release": r.release, "vendor": r.vendor, "size_bytes": r.size_bytes, "source": r.source,
                           "path": str(r.path)} for r in rows], indent=2))
        return 0
    if not rows:
        print("no cached kernels (apicmap kernels fetch debian:6.1)")
    for row in rows:
        print(f"{row.release:<28} {row.vendor:<20} {row.size_bytes / 1e6:7.1f} MB  {row.source}")
    return 0


def add_on_option(parser: argparse.ArgumentParser) -> None:
    """``--on KERNEL`` (and ``--on-modules DIR``, ``--boot-timeout S``) for commands that run the kvm engine."""
    parser.add_argument("--on", metavar="KERNEL", help=f"run the kvm engine inside a booted kernel: {ALLOWED_FORMS}")
    parser.add_argument("--on-modules", metavar="DIR", help="modules directory for --on with an image path")
    parser.add_argument("--boot-timeout", type=float, default=DEFAULT_BOOT_TIMEOUT, metavar="S",
                        help="seconds the booted kernel may take to answer")


@contextmanager
def kvm_engine_for(args: argparse.Namespace) -> Iterator[Engine]:
    """The kvm engine a command should use: inside ``--on KERNEL`` (one boot for the whole command), else local."""
    if not getattr(args, "on", None):
        yield make_engine("kvm")
        return
    log_dir = Path(args.log_dir) if getattr(args, "log_dir", None) else None
    with booted_engine(args.on, modules=getattr(args, "on_modules", None), log_dir=log_dir,
                       boot_timeout=getattr(args, "boot_timeout", DEFAULT_BOOT_TIMEOUT)) as engine:
        yield engine


@contextmanager
def booted_engine(kernel: str, *, modules: str | None = None, log_dir: Path | None = None,
                  boot_timeout: float = DEFAULT_BOOT_TIMEOUT, where: str = "--on") -> Iterator[Engine]:
    """The kvm engine inside ``kernel`` (any ``--on`` form), booted for the duration of the block."""
    spec = parse_spec(kernel, modules=modules, where=where)
    with open_session(spec, log_dir=log_dir, boot_timeout=boot_timeout,
                      progress=lambda line: print(line, file=sys.stderr)) as guest:
        yield guest.engine()
