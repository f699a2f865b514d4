"""``apicmap import FORMAT SOURCE [-o scenario.toml]``: argparse wiring, usable from apicmap's CLI.

To wire it into ``apicmap.cli``: ``add_import_arguments(sub.add_parser("import", help=HELP))``
and ``_HANDLERS["import"] = run_import``. ``main`` runs it alone (``python -m apicmap.importers``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from apicmap.encoding.apic_base import ApicMode
from apicmap.errors import ApicmapError, InputError
from apicmap.importers import FORMAT_NAMES, import_source
from apicmap.importers.common import ImportFormat, ImportOptions, LinuxApicDriver, Topology, X2ApicApiFlag
from apicmap.importers.writer import ImportedCase, scenario_from_import

HELP = "import a real VM's interrupt state (KVM pages, VMM snapshots, QEMU, a Linux guest) as a scenario"


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=FORMAT_NAMES, metavar="FORMAT", help=", ".join(FORMAT_NAMES))
    parser.add_argument("source", metavar="SOURCE", help="a file or directory, or qmp:/path/to/socket")
    parser.add_argument("-o", "--output", type=Path, help="write the scenario here (default: stdout)")
    parser.add_argument("--x2apic-api", metavar="FLAGS",
                        help="KVM_CAP_X2APIC_API flags the VMM enabled: none, or use_32bit_ids,disable_broadcast_quirk")
    parser.add_argument("--vector-hashing", action=argparse.BooleanOptionalAction, default=None,
                        help="the host's kvm.vector_hashing (default: KVM's default, reported)")
    parser.add_argument("--smm", action=argparse.BooleanOptionalAction, default=None,
                        help="the VM supports SMM (default: false, reported)")
    parser.add_argument("--apic-mode", choices=[m.value for m in ApicMode],
                        help="every vCPU's APIC mode, where the source lacks the APIC base")
    parser.add_argument("--apic-ids", metavar="IDS", help="QEMU: APIC IDs by cpu_index, e.g. 0,1,2,4")
    parser.add_argument("--topology", metavar="T", help="QEMU: sockets=N,dies=N,cores=N,threads=N")
    parser.add_argument("--linux-apic-driver", choices=[d.value for d in LinuxApicDriver],
                        help="linux-guest: the APIC driver, where dmesg names none")
    parser.add_argument("--creation-order", metavar="IDS", help="vCPU ids in KVM_CREATE_VCPU order")
    parser.add_argument("--irqs", action="store_true",
                        help="linux-guest: add each routed IRQ as an [[interrupt]] expecting the guest's CPU")
    parser.add_argument("--vector", type=lambda t: int(t, 0), default=0x30,
                        help="linux-guest --irqs: the vector to use (not in /proc; default 0x30)")
    parser.add_argument("--kernel", help="[vm] kernel for the written scenario")


def _ints(text: str, where: str) -> tuple[int, ...]:
    try:
        return tuple(int(t, 0) for t in text.split(",") if t.strip())
    except ValueError:
        raise InputError(where, f"bad list {text!r}", "comma-separated integers") from None


def options_from_args(args: argparse.Namespace) -> ImportOptions:
    flags: frozenset[X2ApicApiFlag] | None = None
    if args.x2apic_api is not None:
        names = [] if args.x2apic_api.strip() in ("none", "") else [n.strip() for n in args.x2apic_api.split(",")]
        try:
            flags = frozenset(X2ApicApiFlag(n) for n in names)
        except ValueError:
            raise InputError("--x2apic-api", f"bad value {args.x2apic_api!r}",
                             "none, or any of " + ", ".join(f.value for f in X2ApicApiFlag)) from None
    return ImportOptions(
        x2apic_api=flags, vector_hashing=args.vector_hashing, smm=args.smm,
        apic_mode=ApicMode(args.apic_mode) if args.apic_mode else None,
        apic_ids=_ints(args.apic_ids, "--apic-ids") if args.apic_ids else None,
        topology=Topology.parse(args.topology) if args.topology else None,
        linux_apic_driver=LinuxApicDriver(args.linux_apic_driver) if args.linux_apic_driver else None,
        creation_order=_ints(args.creation_order, "--creation-order") if args.creation_order else None)


def run_import(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    result = import_source(args.format, args.source, options)
    cases: list[ImportedCase] = []
    if args.irqs:
        if result.format is not ImportFormat.LINUX_GUEST:
            raise InputError("--irqs", f"only for linux-guest, not {result.format.value}")
        from apicmap.importers.linux_guest import guest_irqs, load_linux_guest

        cases = [g.case() for g in guest_irqs(load_linux_guest(args.source), options=options, vector=args.vector)]
    text = scenario_from_import(result, cases, kernel=args.kernel)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    sys.stderr.write(f"apicmap: imported {len(result.vm.vcpus)} vCPUs from {result.format.value} {result.source}"
                     + (f", {len(cases)} IRQs" if cases else "") + "\n")
    for lack in result.lacking:
        sys.stderr.write(f"apicmap: not in the source: {lack.item}: {lack.resolution}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="apicmap import", description=HELP)
    add_import_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_import(args)
    except ApicmapError as err:
        sys.stderr.write(f"apicmap: error: {err}\n")
        return 2
