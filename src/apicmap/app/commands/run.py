"""``apicmap run FILE... [--engine E] [--kernel V] [--json]``: judge every [[interrupt]] on one engine."""

from __future__ import annotations

import argparse
from typing import Any

from apicmap.app.commands.common import (
    Parents,
    add_command,
    kernel_choice,
    kvm_target_for,
    one_stdin,
    print_json,
    read_scenario,
)
from apicmap.app.render import print_table, vcpu_set
from apicmap.app.runner import CaseResult, Check, KvmTarget, run_scenario
from apicmap.domain.engine import ENGINE_NAMES
from apicmap.domain.outcome import Outcome
from apicmap.errors import InputError
from apicmap.files.scenario import Scenario


def register(subparsers: Any, parents: Parents) -> None:
    parser = add_command(subparsers, "run", "judge every [[interrupt]] of scenarios on one engine",
                         [parents.json, parents.kernel, parents.on], handle,
                         "Judge every [[interrupt]] of each scenario on one engine. With --json: one object "
                         "for one file, a list of objects (in file order) for several.")
    parser.add_argument("files", nargs="+", metavar="FILE", help="scenario files (TOML); - reads one from stdin")
    parser.add_argument("--engine", choices=ENGINE_NAMES, default="model", help="the engine that judges")
    parser.add_argument("--profile", metavar="NAME[@VERSION]",
                        help="another hypervisor's routing instead of KVM's (the model engine only; "
                             "docs/profiles/README.md): qemu, qemu@7.2, xen, bhyve, crosvm, openvmm, ...")
    parser.add_argument("--all-kernels", action="store_true",
                        help="the model on every release range, collapsed where equal, each change with its commits")


def outcome_cell(result: CaseResult) -> str:
    if result.outcome is None:
        return f"not expressible: {result.not_expressible}"
    out = result.outcome
    text = vcpu_set(out.receivers)
    if out.undefined:
        text += f" undefined {vcpu_set(out.undefined)}"
    if out.rejected:
        text += f" (refused: {out.rejected})"
    return text


def return_cell(outcome: Outcome | None) -> str:
    if outcome is None or outcome.result is None:
        return "-"
    return "-1 (EPERM)" if outcome.result == -1 else str(outcome.result)


def handle(args: argparse.Namespace) -> int:
    one_stdin(args.files)
    if args.all_kernels:
        if args.engine != "model" or args.kernel is not None or len(args.files) != 1:
            raise InputError("--all-kernels", "runs the model on every release range for one file",
                             "one FILE, without --engine (other than model) and --kernel")
        from apicmap.app.releases import run_all_kernels

        return run_all_kernels(args.files[0], explain=False, as_json=args.json)
    if args.kernel is not None and args.engine != "model":
        raise InputError("--kernel", f"does not apply to the {args.engine} engine", "--engine model")
    if args.profile is not None and (args.engine != "model" or args.all_kernels):
        raise InputError("--profile", "replaces the model's KVM rules by another hypervisor's",
                         "--profile with --engine model, without --all-kernels")
    if args.on and args.engine != "kvm":
        raise InputError("--on", f"runs the kvm engine inside a booted kernel, not {args.engine}", "--engine kvm")
    scenarios = [read_scenario(path) for path in args.files]  # every file is checked before any runs
    with kvm_target_for(args) as target:
        return _run(args, scenarios, target)


def _run(args: argparse.Namespace, scenarios: list[Scenario], target: KvmTarget | None) -> int:
    payloads: list[dict[str, object]] = []
    failed_any = False
    for i, scenario in enumerate(scenarios):
        if args.profile is not None:
            from apicmap.app.profile_run import run_with_profile

            results = run_with_profile(scenario, args.profile, args.kernel, explain=bool(args.json))
        else:
            results = run_scenario(scenario, args.engine, args.kernel, explain=bool(args.json), kvm=target)
        failed = any(r.check is Check.FAIL for r in results)
        failed_any |= failed
        kernel = kernel_choice(args.kernel, scenario, quiet=i > 0) if args.engine == "model" else None
        if args.json:
            payload: dict[str, object] = {"scenario": scenario.path, "engine": args.engine}
            if args.profile is not None:
                payload["profile"] = args.profile
            if kernel is not None:
                payload["kernel"] = kernel
            if target is not None:
                payload["on"] = {"kernel": args.on, "release": target.release}
            payload["interrupts"] = [r.to_json() for r in results]
            payload["ok"] = not failed
            payloads.append(payload)
            continue
        title = f"{scenario.path} on {args.engine}" + (f" (Linux {target.release}, booted)" if target else "")
        if args.profile is not None:
            title = f"{scenario.path} under profile {args.profile}"
        if kernel is not None:
            title += f" (KVM {kernel['releases']})"
        rows = [[f"{r.case.index}", r.case.name, outcome_cell(r), return_cell(r.outcome),
                 r.check.value + (f": {r.check_detail}" if r.check_detail else "")] for r in results]
        if i:
            print()
        print_table(title, ["#", "interrupt", "receivers", "return", "expect"], rows)
    if args.json:
        print_json(payloads[0] if len(payloads) == 1 else payloads)
    return 1 if failed_any else 0
