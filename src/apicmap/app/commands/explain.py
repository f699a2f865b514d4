"""``apicmap explain FILE``: each interrupt on each engine, with the receivers and a reason per vCPU;
``--svg`` draws who received one interrupt and why the others did not."""

from __future__ import annotations

import argparse
from typing import Any

from apicmap.app.commands.common import (
    Parents,
    add_command,
    check_output,
    kernel_choice,
    kvm_target_for,
    print_json,
    read_scenario,
    write_output,
)
from apicmap.app.commands.run import outcome_cell, return_cell
from apicmap.app.render import parse_vcpu_list, vcpu_set, wrap
from apicmap.app.runner import CaseResult, KvmTarget, run_scenario
from apicmap.errors import InputError
from apicmap.explain import render
from apicmap.files.scenario import Scenario

WIDTH = 110


def register(subparsers: Any, parents: Parents) -> None:
    parser = add_command(subparsers, "explain", "each interrupt x each engine, with receivers and reasons",
                         [parents.scenario, parents.json, parents.kernel, parents.engines, parents.on], handle)
    parser.add_argument("--interrupt", metavar="N", type=int,
                        help="only the [[interrupt]] numbered N (1 is the first); with --svg, default 1")
    parser.add_argument("--vcpu", metavar="IDS", help="only the reasons of these vCPUs, e.g. 3 or 1,3-5")
    parser.add_argument("--only", choices=("receivers",), help="only the reasons of the vCPUs that accepted")
    parser.add_argument("--all-kernels", action="store_true",
                        help="the model on every release range, collapsed where equal, with reasons and the commits "
                             "behind each change")
    parser.add_argument("--svg", metavar="FILE",
                        help="also draw the model's answer for one interrupt (see --interrupt) as SVG here")


def _runs(scenario: Scenario, engines: tuple[str, ...], kernel: str | None, target: KvmTarget | None = None
          ) -> tuple[dict[str, list[CaseResult]], dict[str, str]]:
    runs: dict[str, list[CaseResult]] = {}
    skipped: dict[str, str] = {}
    for name in engines:
        if name == "kvm" and target is None:
            from apicmap.kvm.host import kvm_available

            ok, why = kvm_available()
            if not ok:
                skipped[name] = why
                continue
        runs[name] = run_scenario(scenario, name, kernel, explain=True, kvm=target)
    return runs, skipped


def merge_runs(reasons: list[tuple[int, str]]) -> list[tuple[str, str]]:
    """Consecutive vCPUs (ids one apart, in the order given) with the same reason share one line:
    ``("16-1023", "not in x2APIC cluster 0x1")``."""
    merged: list[tuple[int, int, str]] = []
    for vid, text in reasons:
        if merged and merged[-1][2] == text and merged[-1][1] + 1 == vid:
            merged[-1] = (merged[-1][0], vid, text)
        else:
            merged.append((vid, vid, text))
    return [(str(first) if first == last else f"{first}-{last}", text) for first, last, text in merged]


def handle(args: argparse.Namespace) -> int:
    if args.all_kernels:
        if args.svg or args.vcpu or args.only or args.kernel:
            raise InputError("--all-kernels", "shows every release range; --svg, --vcpu, --only and --kernel do not "
                             "apply with it", "--all-kernels alone, or those options without it")
        from apicmap.app.releases import run_all_kernels

        return run_all_kernels(args.file, explain=True, as_json=args.json)
    check_output(args.svg, "--svg")
    scenario = read_scenario(args.file)
    count = len(scenario.interrupts)
    if args.interrupt is not None and not 1 <= args.interrupt <= count:
        raise InputError("--interrupt", f"no interrupt {args.interrupt} in {scenario.path}", f"1..{count}")
    if args.svg and count == 0:
        raise InputError("--svg", f"{scenario.path} has no [[interrupt]] to draw", "a scenario with interrupts")
    wanted = parse_vcpu_list(args.vcpu, "--vcpu") if args.vcpu else None
    if wanted is not None:
        ids = {v.vcpu_id for v in scenario.vm.vcpus}
        if not wanted & ids:
            raise InputError("--vcpu", f"no such vCPU in {scenario.path}", f"the scenario's vCPUs, {vcpu_set(ids)}")
    engines = args.engines
    if args.svg and "model" not in engines:
        engines = (*engines, "model")
    with kvm_target_for(args) as target:
        model_kernel = args.kernel or (target.release if target else None)
        kernel = kernel_choice(model_kernel, scenario)
        runs, skipped = _runs(scenario, engines, model_kernel, target)
    indexes = [args.interrupt - 1] if args.interrupt is not None else list(range(count))
    if args.svg:
        from apicmap.app.svg import explain_svg
        from apicmap.model.apic_map import build_map
        from apicmap.model.policy import policy_for_release
        from apicmap.model.set_lapic import kvm_view

        i = indexes[0]
        policy = policy_for_release(str(kernel["asked"]) if kernel["asked"] else None)
        write_output(args.svg, explain_svg(scenario, build_map(kvm_view(scenario.vm, policy), policy), policy,
                                           runs["model"][i]))
    shown_runs = {n: rs for n, rs in runs.items() if n in args.engines}

    def keep(vid: int, result: CaseResult) -> bool:
        if wanted is not None and vid not in wanted:
            return False
        return not (args.only == "receivers" and (result.outcome is None or vid not in result.outcome.receivers))

    if args.json:
        engines_json: dict[str, list[dict[str, object]]] = {}
        for name, results in shown_runs.items():
            items = []
            for i in indexes:
                item = results[i].to_json()
                explanation = item.get("explanation")
                if isinstance(explanation, dict) and (wanted is not None or args.only):
                    for key in ("reasons", "reason_codes"):
                        explanation[key] = {v: r for v, r in explanation[key].items() if keep(int(v), results[i])}
                items.append(item)
            engines_json[name] = items
        print_json({"scenario": scenario.path, "kernel": kernel, "skipped": skipped, "engines": engines_json})
        return 0
    for name, why in skipped.items():
        print(f"({name} engine skipped: {why})")
    for i in indexes:
        case = scenario.interrupts[i]
        print(f"\n== interrupt {case.index}: {case.name}")
        for name, results in shown_runs.items():
            result = results[i]
            print(f"  [{name}] receivers {outcome_cell(result)}  return {return_cell(result.outcome)}")
            explanation = result.outcome.explanation if result.outcome else None
            if explanation is None:
                continue
            print(f"    message: {explanation.message}")
            print(f"    path:    {render(explanation.path)}")
            if explanation.map_state:
                print(f"    map:     {wrap(explanation.map_state, WIDTH, ' ' * 13)}")
            for note in explanation.notes:
                print(f"    note:    {wrap(render(note), WIDTH, ' ' * 13)}")
            shown = [(vid, render(reason)) for vid, reason in explanation.reasons if keep(vid, result)]
            hidden = len(explanation.reasons) - len(shown)
            for label, text in merge_runs(shown):
                print(f"    vCPU {label:>4}: {wrap(text, WIDTH, ' ' * 15)}")
            if hidden:
                print(f"    ({hidden} other vCPU{'s' if hidden != 1 else ''} not shown: --vcpu, --only)")
    if args.svg:
        print(f"\nwrote {args.svg}")
    return 0

