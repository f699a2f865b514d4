"""``apicmap check FILE``: arch, model and kvm side by side; exit 1 when the model and the kernel differ
(or an expectation fails). Sequence files ([[step]]) are re-run on the models and the kernel."""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

from apicmap.app.commands.common import (
    STDIN,
    Parents,
    add_command,
    kernel_choice,
    kvm_target_for,
    print_json,
    read_document,
    read_scenario,
    read_stdin,
)
from apicmap.app.render import cell, print_table
from apicmap.errors import InputError

DEFAULT_ENGINES = ("arch", "model", "kvm")


def register(subparsers: Any, parents: Parents) -> None:
    add_command(subparsers, "check", "arch, model and kvm side by side; exit 1 on model != kvm",
                [parents.scenario, parents.json, parents.kernel, parents.engines, parents.on], handle,
                "Run a scenario on arch, model and kvm side by side (exit 1 when the model and the kernel "
                "differ or an expectation fails), or re-run a sequence file ([[step]] entries) on the model "
                "that tracks KVM's map recalculation points, the naive model and the kernel.")


def handle(args: argparse.Namespace) -> int:
    from apicmap.app.check import check_scenario, print_check

    engines = tuple(args.engines)
    if "model" not in engines or not set(engines) <= set(DEFAULT_ENGINES):
        raise InputError("--engines", f"check cannot run {','.join(engines)}",
                         "model, with arch and/or kvm, e.g. model,kvm")
    document, where = read_document(args.file)
    if "step" in document:
        if args.kernel is not None or engines != DEFAULT_ENGINES:
            raise InputError("--kernel" if args.kernel is not None else "--engines",
                             "does not apply to a sequence file (it names its kernel; all engines run)",
                             "check SEQUENCE.toml [--json]")
        return _sequence(args, where)
    scenario = read_scenario(args.file)
    with kvm_target_for(args) as target:
        kernel = kernel_choice(args.kernel or (target.release if target else None), scenario)
        report = check_scenario(scenario, args.kernel, engines, kvm_target=target)
    if args.json:
        print_json({**report.to_json(), "kernel": kernel,
                    "on": None if target is None else {"kernel": args.on, "release": target.release}})
    else:
        print_check(report)
    return 0 if report.ok else 1


def _sequence(args: argparse.Namespace, where: str) -> int:
    from apicmap.files.sequence import run_sequence_check

    if args.file == STDIN:
        with tempfile.NamedTemporaryFile("w", suffix=".toml") as copy:
            copy.write(read_stdin())
            copy.flush()
            rows, ok = run_sequence_check(copy.name)
    else:
        rows, ok = run_sequence_check(args.file)
    if args.json:
        print_json({"sequence": where, "ok": ok, "signals": rows})
    else:
        print_table(f"check sequence {where} (model tracks KVM's map recalculation points)",
                    ["step", "model", "naive model", "kvm", "expect_return"],
                    [[cell(r[k]) for k in ("step", "model", "naive model", "kvm", "expect_return")] for r in rows])
        print("result: " + ("ok" if ok else "DIFFERENCES or failed expectations"))
    return 0 if ok else 1
