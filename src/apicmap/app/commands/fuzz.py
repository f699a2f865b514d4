"""``apicmap fuzz``: differential fuzzing of the model against the kernel or the architecture, or
(``--stateful``) of VMM operation sequences against the kernel."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from apicmap.app.commands.common import (
    Parents,
    add_command,
    kernel_choice,
    kvm_target_for,
    positive_float,
    print_json,
)
from apicmap.app.progress import ticking
from apicmap.errors import InputError


def register(subparsers: Any, parents: Parents) -> None:
    parser = add_command(subparsers, "fuzz",
                         "differential fuzzing of the model against the kernel or the architecture",
                         [parents.json, parents.kernel, parents.on], handle)
    parser.add_argument("--against", choices=("kvm", "arch"), default="kvm", help="what the model is compared with")
    parser.add_argument("--time", type=positive_float, default=60.0, metavar="SECONDS", help="how long to fuzz")
    parser.add_argument("--seed", type=int, metavar="N",
                        help="draw the same inputs for the same N; default: fresh inputs every run")
    parser.add_argument("--jobs", type=int, default=1, metavar="J", help="parallel campaigns, 1..64 (use the cores)")
    parser.add_argument("--out", metavar="DIR",
                        help="directory for reproducers and the example database (default: the cache directory)")
    parser.add_argument("--stateful", action="store_true",
                        help="fuzz VMM operation sequences (kvm only): rediscover map-lifecycle behaviours")
    parser.add_argument("--tracking", action="store_true",
                        help="with --stateful: compare with the model that tracks recalculation points")
    parser.add_argument("--profiles", metavar="A,B",
                        help="fuzz one hypervisor profile against another (model vs model, e.g. kvm,qemu); "
                             "findings grouped by the profile rule that differs")


def handle(args: argparse.Namespace) -> int:
    if args.tracking and not args.stateful:
        raise InputError("--tracking", "applies only to sequence fuzzing", "--stateful --tracking")
    if args.stateful and args.against != "kvm":
        raise InputError("--stateful", "sequences are compared with the kernel", "--against kvm")
    if args.stateful and args.jobs != 1:
        raise InputError("--jobs", "sequence fuzzing runs one campaign (one VM at a time)", "--jobs 1 with --stateful")
    if args.on and (args.against != "kvm" or args.stateful or args.jobs != 1 or args.profiles is not None):
        raise InputError("--on", "runs one campaign against the kvm engine inside a booted kernel",
                         "--against kvm with one job, without --stateful and --profiles")
    if not 1 <= args.jobs <= 64:
        raise InputError("--jobs", f"bad value {args.jobs}", "1..64")
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        raise InputError("fuzz", "needs the hypothesis package, which is not installed",
                         "pip install 'apicmap[fuzz]'") from None
    if args.out:
        from apicmap.files.output import check_output_dir

        check_output_dir(args.out, "--out")
    kernel_choice(args.kernel, None)
    if args.profiles is not None:
        if args.stateful or args.jobs != 1 or "--against" in sys.argv[1:]:
            raise InputError("--profiles", "compares two profiles in one campaign, not the model with an engine",
                             "--profiles A,B without --against, --stateful and --jobs")
        from apicmap.app.fuzz_profiles import run_fuzz_profiles

        return run_fuzz_profiles(args.profiles, args.kernel, args.time, args.seed if args.seed is not None else 0,
                                 args.out, args.json)
    if args.on:
        if args.against != "kvm" or args.stateful or args.jobs != 1 or args.profiles is not None:
            raise InputError("--on", "fuzzes the model against a booted kernel's KVM in one campaign",
                             "--against kvm, without --stateful, --jobs and --profiles")
        return _on(args)
    if args.against == "kvm":
        from apicmap.kvm.host import kvm_available

        ok, why = kvm_available()
        if not ok:
            from apicmap.errors import KvmUnavailable

            raise KvmUnavailable(f"fuzz --against kvm: {why}")
    if args.stateful:
        return _stateful(args)
    from apicmap.app.fuzz import run_fuzz

    return run_fuzz(args.against, args.kernel, args.time, args.seed, args.jobs, args.out, args.json)


def _stateful(args: argparse.Namespace) -> int:
    from pathlib import Path

    from apicmap.fuzz.stateful import StatefulCampaign

    campaign = StatefulCampaign(args.kernel, args.tracking, args.time, args.seed or 0,
                                Path(args.out) if args.out else None)
    status = lambda: f"{campaign.sequences} sequences, {len(campaign.found)} behaviours"  # noqa: E731
    with ticking("fuzz sequences", args.time, status, enabled=not args.json):
        found = campaign.run()
    behaviours: list[dict[str, object]] = [
        {"behaviour": kind, "found_after_s": round(t, 2), "steps": len(steps), "reproducer": path}
        for kind, (t, steps, path) in found.items()]
    summary = {"sequences": campaign.sequences, "model": "tracking" if args.tracking else "naive",
               "behaviours": behaviours}
    if args.json:
        print_json(summary)
    else:
        print(f"{campaign.sequences} operation sequences against the kernel ({summary['model']} model); "
              f"{len(found)} sequence-only behaviour(s)")
        for b in behaviours:
            print(f"  [{b['found_after_s']}s] {b['behaviour']} ({b['steps']} steps)"
                  + (f": {b['reproducer']}" if b["reproducer"] else ""))
    return 1 if found else 0


def _on(args: argparse.Namespace) -> int:
    """One campaign against the KVM of a booted kernel; the model follows its release."""
    from apicmap.app.fuzz import run_fuzz
    from apicmap.fuzz.strategies import Profile

    with kvm_target_for(args) as target:
        assert target is not None
        profile = Profile.for_host(target.report)
        return run_fuzz("kvm", args.kernel or target.release, args.time, args.seed, 1, args.out, args.json,
                        kvm_engine=target.engine, kvm_profile=profile)
