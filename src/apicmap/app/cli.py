"""The ``apicmap`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import NoReturn

from apicmap.app.render import print_table, vcpu_set
from apicmap.app.runner import CaseResult, Check, run_scenario, scenario_policy
from apicmap.domain.engine import ENGINE_NAMES
from apicmap.domain.outcome import Outcome
from apicmap.errors import ApicmapError, InputError
from apicmap.explain import render
from apicmap.files.scenario import Scenario, load_scenario
from apicmap.model.policy import VARIANTS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, exit 2, no usage dump (DEVELOPERS.md: bad input).
        sys.stderr.write(f"apicmap: error: {self.prog}: {message}\n")
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="apicmap", description="Which vCPUs accept this interrupt, and why.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    kernels = ", ".join(f"{p.releases}" for p in VARIANTS)

    run = sub.add_parser("run", help="judge every [[interrupt]] of a scenario on one engine")
    run.add_argument("file")
    run.add_argument("--engine", choices=ENGINE_NAMES, default="model")
    run.add_argument("--kernel", help=f"KVM release the model follows (variants: {kernels}); default newest")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument("--all-kernels", action="store_true",
                     help="every modelled KVM release range, collapsed where equal, changes with their commits")

    explain = sub.add_parser("explain", help="each interrupt x each engine, with receivers and reasons")
    explain.add_argument("file")
    explain.add_argument("--kernel")
    explain.add_argument("--engines", default="arch,model,kvm",
                         help="comma-separated engines (kvm is skipped with a note if unavailable)")
    explain.add_argument("--json", action="store_true")
    explain.add_argument("--all-kernels", action="store_true", help="the model on every release range, with reasons")

    amap = sub.add_parser("map", help="KVM's optimized map for the scenario's VM")
    amap.add_argument("file")
    amap.add_argument("--kernel")
    amap.add_argument("--all-kernels", action="store_true", help="one row per modelled KVM variant")
    amap.add_argument("--json", action="store_true")

    decode = sub.add_parser("decode", help="decode a register value field by field")
    decode.add_argument("kind", help="msi | icr | rte | apicbase | selfipi")
    decode.add_argument("values", nargs="+", help="values (hex with 0x, or decimal)")
    decode.add_argument("--json", action="store_true")

    check = sub.add_parser("check", help="arch, model and kvm side by side; exit 1 on model != kvm")
    check.add_argument("file")
    check.add_argument("--json", action="store_true")

    fuzz = sub.add_parser("fuzz", help="differential fuzzing of the model against the kernel or the architecture")
    fuzz.add_argument("--against", choices=("kvm", "arch"), default="kvm")
    fuzz.add_argument("--kernel", help="KVM release the model follows (default newest)")
    fuzz.add_argument("--time", type=float, default=60.0, help="seconds (default 60)")
    fuzz.add_argument("--seed", type=int, default=0)
    fuzz.add_argument("--jobs", type=int, default=1, help="parallel campaigns (use the machine's cores)")
    fuzz.add_argument("--out", help="directory for reproducers and the example database")
    fuzz.add_argument("--json", action="store_true")
    fuzz.add_argument("--stateful", action="store_true",
                      help="fuzz VMM operation sequences (kvm only): rediscover map-lifecycle behaviours")
    fuzz.add_argument("--tracking", action="store_true",
                      help="with --stateful: compare with the model that tracks recalculation points")

    conf = sub.add_parser("conformance", help="corpus, examples, catalogue and reproducers on model and kvm")
    conf.add_argument("paths", nargs="*", help="files or directories (default: corpus examples catalogue)")
    conf.add_argument("--junit", help="write JUnit XML here")
    conf.add_argument("--tap", help="write TAP here")
    conf.add_argument("--json", action="store_true")

    bench = sub.add_parser("bench", help="speed of the model, the kvm engine and the fuzzer, against targets")
    bench.add_argument("--quick", action="store_true", help="a shorter run (under 30 s)")
    bench.add_argument("--json", action="store_true")

    host = sub.add_parser("host", help="this machine's KVM: release, module, capabilities, limits")
    host.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        handler = _HANDLERS[args.command]
        return handler(args)
    except ApicmapError as err:
        sys.stderr.write(f"apicmap: error: {err}\n")
        return 2
    except BrokenPipeError:
        return 0


# --- run ----------------------------------------------------------------------------------------


def _outcome_cell(result: CaseResult) -> str:
    if result.outcome is None:
        return f"not expressible: {result.not_expressible}"
    out = result.outcome
    text = vcpu_set(out.receivers)
    if out.undefined:
        text += f" undefined {vcpu_set(out.undefined)}"
    if out.rejected:
        text += f" (refused: {out.rejected})"
    return text


def _return_cell(outcome: Outcome | None) -> str:
    if outcome is None or outcome.result is None:
        return "-"
    return "-1 (EPERM)" if outcome.result == -1 else str(outcome.result)


def _cmd_run(args: argparse.Namespace) -> int:
    if args.all_kernels:
        from apicmap.app.releases import run_all_kernels

        return run_all_kernels(args.file, explain=False, as_json=args.json)
    scenario = load_scenario(args.file)
    explain = bool(args.json)
    results = run_scenario(scenario, args.engine, args.kernel, explain=explain)
    failed = any(r.check is Check.FAIL for r in results)
    if args.json:
        payload: dict[str, object] = {"scenario": scenario.path, "engine": args.engine}
        if args.engine == "model":
            policy = scenario_policy(scenario, args.kernel)
            payload["kernel"] = {"variant": policy.key, "releases": policy.releases}
        payload["interrupts"] = [r.to_json() for r in results]
        payload["ok"] = not failed
        print(json.dumps(payload, indent=2))
    else:
        title = f"{scenario.path} on {args.engine}"
        if args.engine == "model":
            policy = scenario_policy(scenario, args.kernel)
            title += f" (KVM {policy.releases})"
        rows = [[f"{r.case.index}", r.case.name, _outcome_cell(r), _return_cell(r.outcome),
                 r.check.value + (f": {r.check_detail}" if r.check_detail else "")] for r in results]
        print_table(title, ["#", "interrupt", "receivers", "return", "expect"], rows)
    return 1 if failed else 0


# --- explain --------------------------------------------------------------------------------------


def _engines_for_explain(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if n not in ENGINE_NAMES:
            raise InputError("--engines", f"unknown engine {n!r}", ", ".join(ENGINE_NAMES))
    return names


def _explain_runs(scenario: Scenario, engines: list[str], kernel: str | None
                  ) -> tuple[dict[str, list[CaseResult]], dict[str, str]]:
    runs: dict[str, list[CaseResult]] = {}
    skipped: dict[str, str] = {}
    for name in engines:
        if name == "kvm":
            from apicmap.kvm.host import kvm_available

            ok, why = kvm_available()
            if not ok:
                skipped[name] = why
                continue
        runs[name] = run_scenario(scenario, name, kernel, explain=True)
    return runs, skipped


def _cmd_explain(args: argparse.Namespace) -> int:
    if args.all_kernels:
        from apicmap.app.releases import run_all_kernels

        return run_all_kernels(args.file, explain=True, as_json=args.json)
    scenario = load_scenario(args.file)
    runs, skipped = _explain_runs(scenario, _engines_for_explain(args.engines), args.kernel)
    if args.json:
        print(json.dumps({"scenario": scenario.path, "skipped": skipped,
                          "engines": {n: [r.to_json() for r in rs] for n, rs in runs.items()}}, indent=2))
        return 0
    for name, why in skipped.items():
        print(f"({name} engine skipped: {why})")
    for i, case in enumerate(scenario.interrupts):
        print(f"\n== interrupt {case.index}: {case.name}")
        for name, results in runs.items():
            result = results[i]
            print(f"  [{name}] receivers {_outcome_cell(result)}  return {_return_cell(result.outcome)}")
            explanation = result.outcome.explanation if result.outcome else None
            if explanation is None:
                continue
            print(f"    message: {explanation.message}")
            print(f"    path:    {render(explanation.path)}")
            if explanation.map_state:
                print(f"    map:     {explanation.map_state}")
            for note in explanation.notes:
                print(f"    note:    {render(note)}")
            for vid, reason in explanation.reasons:
                print(f"    vCPU {vid:>4}: {render(reason)}")
    return 0


# --- map ----------------------------------------------------------------------------------------


def _cmd_map(args: argparse.Namespace) -> int:
    from apicmap.model.apic_map import build_map
    from apicmap.model.set_lapic import kvm_view

    scenario = load_scenario(args.file)
    policies = list(VARIANTS) if args.all_kernels else [scenario_policy(scenario, args.kernel)]
    reports = []
    for policy in policies:
        amap = build_map(kvm_view(scenario.vm, policy), policy)
        reports.append({
            "variant": policy.key, "releases": policy.releases,
            "map": "NULL" if amap.is_null else "present",
            "null_reason": amap.null_reason,
            "max_apic_id": amap.max_apic_id,
            "logical_mode": amap.logical_mode.value,
            "logical_reason": amap.logical_reason,
            "inhibits": sorted(amap.inhibits),
            "phys_map": {} if amap.phys is None else {
                f"0x{i:x}": scenario.vm.vcpus[s].vcpu_id for i, s in enumerate(amap.phys) if s is not None},
            "summary": amap.describe(scenario.vm),
            "slots": amap.slots(scenario.vm),
        })
    if args.json:
        print(json.dumps({"scenario": scenario.path, "maps": reports}, indent=2))
        return 0
    rows = [[str(r["variant"]), str(r["releases"]),
             str(r["map"]) + (f" ({r['null_reason']})" if r["null_reason"] else ""),
             str(r["logical_mode"]) + (f" ({r['logical_reason']})" if r["logical_reason"] else ""),
             ", ".join(r["inhibits"]) or "-", str(r["max_apic_id"]), str(r["slots"])]  # type: ignore[arg-type]
            for r in reports]
    print_table(f"KVM optimized APIC map: {scenario.path}",
                ["variant", "releases", "map", "logical mode", "inhibits", "max id", "slots (vCPU ids)"], rows)
    return 0


# --- decode -------------------------------------------------------------------------------------


def _cmd_decode(args: argparse.Namespace) -> int:
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
        print(json.dumps([{"field": f, "bits": b, "value": v, "meaning": m} for f, b, v, m in rows], indent=2))
        return 0
    print_table(f"decode {args.kind} {' '.join(args.values)}", ["field", "bits", "value", "meaning"],
                [[f, b, f"0x{v:x}", m] for f, b, v, m in rows])
    return 0


# --- check and host (kvm) ----------------------------------------------------------------------


def _cmd_check(args: argparse.Namespace) -> int:
    from apicmap.app.check import check_scenario, print_check
    from apicmap.files.sequence import is_sequence_file, run_sequence_check

    if is_sequence_file(args.file):
        rows, ok = run_sequence_check(args.file)
        if args.json:
            print(json.dumps({"sequence": args.file, "ok": ok, "signals": rows}, indent=2))
        else:
            print_table(f"check sequence {args.file} (model tracks KVM's map recalculation points)",
                        ["step", "model", "naive model", "kvm", "expect_return"],
                        [[str(r[k]) for k in ("step", "model", "naive model", "kvm", "expect_return")] for r in rows])
            print("result: " + ("ok" if ok else "DIFFERENCES or failed expectations"))
        return 0 if ok else 1
    scenario = load_scenario(args.file)
    report = check_scenario(scenario)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_check(report)
    return 0 if report.ok else 1


def _cmd_fuzz(args: argparse.Namespace) -> int:
    from apicmap.model.policy import policy_for_release

    try:
        import hypothesis  # noqa: F401
    except ImportError:
        raise InputError("fuzz", "needs the hypothesis package, which is not installed",
                         "pip install 'apicmap[fuzz]'") from None
    from apicmap.app.fuzz import run_fuzz

    policy_for_release(args.kernel)  # validate before starting
    if args.time <= 0:
        raise InputError("--time", f"bad value {args.time}", "a positive number of seconds")
    if not 1 <= args.jobs <= 64:
        raise InputError("--jobs", f"bad value {args.jobs}", "1..64")
    if args.against == "kvm":
        from apicmap.kvm.host import kvm_available

        ok, why = kvm_available()
        if not ok:
            from apicmap.errors import KvmUnavailable

            raise KvmUnavailable(f"fuzz --against kvm: {why}")
    if args.stateful:
        return _stateful_fuzz(args)
    return run_fuzz(args.against, args.kernel, args.time, args.seed, args.jobs, args.out, args.json)


def _stateful_fuzz(args: argparse.Namespace) -> int:
    from pathlib import Path

    from apicmap.fuzz.stateful import StatefulCampaign

    if args.against != "kvm":
        raise InputError("--stateful", "sequences are compared with the kernel", "--against kvm")
    campaign = StatefulCampaign(args.kernel, args.tracking, args.time, args.seed, Path(args.out) if args.out else None)
    found = campaign.run()
    behaviours: list[dict[str, object]] = [
        {"behaviour": kind, "found_after_s": round(t, 2), "steps": len(steps), "reproducer": path}
        for kind, (t, steps, path) in found.items()]
    summary = {"sequences": campaign.sequences, "model": "tracking" if args.tracking else "naive",
               "behaviours": behaviours}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{campaign.sequences} operation sequences against the kernel ({summary['model']} model); "
              f"{len(found)} sequence-only behaviour(s)")
        for b in behaviours:
            print(f"  [{b['found_after_s']}s] {b['behaviour']} ({b['steps']} steps)"
                  + (f": {b['reproducer']}" if b["reproducer"] else ""))
    return 1 if found else 0


def _cmd_conformance(args: argparse.Namespace) -> int:
    from pathlib import Path

    from apicmap.app.conformance import DEFAULT_DIRS, collect, junit_xml, run_conformance, tap

    paths = args.paths or [d for d in DEFAULT_DIRS if Path(d).is_dir()]
    if not collect(paths):
        raise InputError("conformance", f"no scenario files in {' '.join(paths) or '(nothing)'}",
                         "scenario files or directories holding *.toml")
    reports = run_conformance(paths)
    failed = [r for r in reports if not r.ok]
    skipped = [r for r in reports if r.ok and r.skipped]
    if args.junit:
        Path(args.junit).write_text(junit_xml(reports))
    if args.tap:
        Path(args.tap).write_text(tap(reports))
    if args.json:
        print(json.dumps({"passed": len(reports) - len(failed) - len(skipped), "failed": len(failed),
                          "skipped": len(skipped), "failures": [r.__dict__ for r in failed]}, indent=2))
    else:
        for r in failed:
            print(f"FAIL {r.suite} {r.name}: {r.detail}")
        files = len({r.suite for r in reports})
        print(f"conformance: {len(reports)} interrupts in {files} files")
        print(f"{len(reports) - len(failed) - len(skipped)} passed, {len(failed)} failed, {len(skipped)} skipped")
    return 1 if failed else 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from apicmap.app.bench import run_bench

    report = run_bench(args.quick)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    figures: dict[str, dict[str, object]] = report["figures"]  # type: ignore[assignment]
    rows = []
    for name, f in figures.items():
        value = f["value"]
        shown = "-" if value is None else (f"{value:,.0f}" if isinstance(value, float) and value >= 100
                                           else f"{value:.3g}")
        met = {True: "met", False: "MISSED", None: ""}[f["met"]]  # type: ignore[index]
        rows.append([name, f"{shown} {f['unit']}", str(f["target"]), met, str(f["note"])])
    print_table(f"apicmap bench ({'quick, ' if args.quick else ''}{report['seconds']} s)",
                ["figure", "value", "target", "", "note"], rows)
    return 0


def _cmd_host(args: argparse.Namespace) -> int:
    from apicmap.kvm.host import host_report

    report = host_report()
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_table("KVM on this machine", ["property", "value"], [[k, str(v)] for k, v in report.items()])
    return 0


_HANDLERS = {
    "run": _cmd_run,
    "explain": _cmd_explain,
    "map": _cmd_map,
    "decode": _cmd_decode,
    "check": _cmd_check,
    "host": _cmd_host,
    "fuzz": _cmd_fuzz,
    "bench": _cmd_bench,
    "conformance": _cmd_conformance,
}
