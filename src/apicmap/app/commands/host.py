"""``apicmap host``: this machine's KVM: release, vendor module, APICv/AVIC, capabilities, limits."""

from __future__ import annotations

import argparse
from typing import Any

from apicmap.app.commands.common import Parents, add_command, kvm_target_for, print_json
from apicmap.app.render import cell, print_table


def register(subparsers: Any, parents: Parents) -> None:
    add_command(subparsers, "host", "this machine's KVM: release, module, APICv/AVIC, capabilities, limits",
                [parents.json, parents.on], handle)


def _apicv(state: dict[str, object]) -> str:
    if state["enabled"] is None:
        return str(state["note"])
    word = "enabled" if state["enabled"] else "disabled"
    return f"{word} ({state['parameter']}={state['value']})"


def handle(args: argparse.Namespace) -> int:
    from apicmap.kvm.host import host_report

    report: dict[str, object]
    if args.on:
        # The guest agent answers with the booted kernel's own report (the same function, run there).
        with kvm_target_for(args) as target:
            assert target is not None
            report = dict(target.report)
    else:
        report = dict(host_report())
    if args.json:
        print_json(report)
        return 0
    rows = []
    for key, value in report.items():
        if key == "apicv":
            rows.append(["apicv / avic", _apicv(value)])  # type: ignore[arg-type]
        elif key == "x2apic_api":
            flags = report.get("x2apic_api_flags") or []
            rows.append([key, f"{value}: {', '.join(flags)}" if flags else cell(value)])  # type: ignore[arg-type]
        elif key != "x2apic_api_flags":
            rows.append([key, cell(value)])
    print_table(f"KVM of the booted {args.on}" if args.on else "KVM on this machine", ["property", "value"], rows)
    return 0
