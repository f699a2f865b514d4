"""``apicmap conformance [PATHS]``: the corpus, examples, catalogue and reproducers on arch, model and kvm,
with a summary, JUnit XML and TAP."""

from __future__ import annotations

import argparse
from typing import Any

from apicmap.app.commands.check import DEFAULT_ENGINES
from apicmap.app.commands.common import (
    Parents,
    add_command,
    check_output,
    kernel_choice,
    kvm_target_for,
    print_json,
    write_output,
)
from apicmap.app.progress import progress
from apicmap.errors import InputError


def register(subparsers: Any, parents: Parents) -> None:
    parser = add_command(subparsers, "conformance", "corpus, examples, catalogue and reproducers on model and kvm",
                         [parents.json, parents.kernel, parents.engines, parents.on], handle,
                         "Run scenario files on arch, model and kvm and report per engine half; the model "
                         "follows this machine's release unless --kernel says otherwise.")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="files or directories (default: the bundled corpus, examples and catalogue)")
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML here")
    parser.add_argument("--tap", metavar="FILE", help="write TAP here")


def handle(args: argparse.Namespace) -> int:
    from apicmap.app.conformance import collect, default_paths, junit_xml, run_conformance, summarize, tap

    engines = tuple(args.engines)
    if "model" not in engines or not set(engines) <= set(DEFAULT_ENGINES):
        raise InputError("--engines", f"conformance cannot run {','.join(engines)}",
                         "model, with arch and/or kvm, e.g. model,kvm")
    check_output(args.junit, "--junit")
    check_output(args.tap, "--tap")
    paths = args.paths or default_paths()
    files = collect(paths)
    if not files:
        raise InputError("conformance", f"no scenario files in {' '.join(paths) or '(nothing)'}",
                         "scenario files or directories holding *.toml")
    with kvm_target_for(args) as target, progress("conformance", total=len(files), enabled=not args.json) as bar:
        asked = args.kernel or (target.release if target else None)
        kernel = kernel_choice(asked, None) if asked else None
        reports = run_conformance(paths, asked, engines, on_file=lambda p: bar.advance(status=p.name),
                                  kvm_target=target)
    summary = summarize(reports)
    failed = [r for r in reports if not r.ok]
    if args.junit:
        write_output(args.junit, junit_xml(reports))
    if args.tap:
        write_output(args.tap, tap(reports))
    if args.json:
        payload: dict[str, object] = {"passed": summary.passed, "failed": summary.failed,
                                      "skipped": summary.skipped, "failures": [r.__dict__ for r in failed]}
        if kernel is not None:
            payload["kernel"] = kernel
        if target is not None:
            payload["on"] = {"kernel": args.on, "release": target.release}
        print_json(payload)
    else:
        for r in failed:
            print(f"FAIL {r.suite} {r.name} [{r.engine}]: {r.detail}")
        where = f"; kvm: Linux {target.release}, booted" if target is not None else ""
        print(f"conformance: {summary.interrupts} interrupts in {summary.files} files ({', '.join(engines)}{where})")
        print(f"{summary.passed} passed, {summary.failed} failed, {summary.skipped} skipped")
    return 1 if failed else 0
