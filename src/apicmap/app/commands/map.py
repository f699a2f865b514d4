"""``apicmap map FILE``: KVM's optimized map for the scenario's VM, per variant; ``--svg`` draws it."""

from __future__ import annotations

import argparse
from typing import Any

from apicmap.app.commands.common import (
    Parents,
    add_command,
    check_output,
    kernel_choice,
    print_json,
    read_scenario,
    write_output,
)
from apicmap.app.render import cell, print_table
from apicmap.errors import InputError
from apicmap.model.policy import VARIANTS, policy_for_release


def register(subparsers: Any, parents: Parents) -> None:
    parser = add_command(subparsers, "map", "KVM's optimized map for the scenario's VM",
                         [parents.scenario, parents.json, parents.kernel], handle)
    parser.add_argument("--all-kernels", action="store_true", help="one row per modelled KVM variant")
    parser.add_argument("--svg", metavar="FILE", help="also draw the map (of one variant) as SVG here")


def handle(args: argparse.Namespace) -> int:
    from apicmap.model.apic_map import build_map
    from apicmap.model.set_lapic import kvm_view

    if args.svg and args.all_kernels:
        raise InputError("--svg", "draws the map of one variant, not --all-kernels", "--svg with --kernel V or alone")
    if args.kernel and args.all_kernels:
        raise InputError("--kernel", "does not apply with --all-kernels (every variant is shown)",
                         "--kernel or --all-kernels")
    check_output(args.svg, "--svg")
    scenario = read_scenario(args.file)
    kernel = None if args.all_kernels else kernel_choice(args.kernel, scenario)
    policies = list(VARIANTS) if args.all_kernels else [policy_for_release(str(kernel["asked"]) if kernel and
                                                                           kernel["asked"] else None)]
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
        if args.svg:
            from apicmap.app.svg import map_svg

            write_output(args.svg, map_svg(scenario, amap, policy))
    if args.json:
        payload: dict[str, object] = {"scenario": scenario.path}
        if kernel is not None:
            payload["kernel"] = kernel
        payload["maps"] = reports
        print_json(payload)
        return 0
    rows = [[cell(r["variant"]), cell(r["releases"]),
             cell(r["map"]) + (f" ({r['null_reason']})" if r["null_reason"] else ""),
             cell(r["logical_mode"]) + (f" ({r['logical_reason']})" if r["logical_reason"] else ""),
             cell(r["inhibits"]), cell(r["max_apic_id"]), cell(r["slots"])]
            for r in reports]
    print_table(f"KVM optimized APIC map: {scenario.path}",
                ["variant", "releases", "map", "logical mode", "inhibits", "max id", "slots (vCPU ids)"], rows)
    if args.svg:
        print(f"wrote {args.svg}")
    return 0
