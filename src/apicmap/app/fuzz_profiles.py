"""``apicmap fuzz --profiles a,b``: where two hypervisor profiles disagree, grouped by the rule."""

from __future__ import annotations

import json
import sys

from apicmap.errors import InputError
from apicmap.fuzz.profiles import fuzz_profiles


def run_fuzz_profiles(profiles: str, kernel: str | None, seconds: float, seed: int, out: str | None,
                      as_json: bool) -> int:
    """Fuzz the first profile against the second; exit 1 when they disagree somewhere."""
    names = [n.strip() for n in profiles.split(",") if n.strip()]
    if len(names) != 2:
        raise InputError("--profiles", f"fuzzing compares exactly two profiles, got {len(names)}",
                         "two names, e.g. kvm,qemu or qemu@7.2,qemu")
    campaign = fuzz_profiles(names[0], names[1], kernel=kernel, seconds=seconds, seed=seed, out=out)
    groups: dict[str, list[dict[str, object]]] = {}
    for finding in campaign.findings:
        entry = finding.to_json()
        entry["vcpus"] = list(finding.vm.vcpu_ids)
        entry["undefined"] = {names[0]: list(finding.model.undefined), names[1]: list(finding.other.undefined)}
        groups.setdefault(finding.rule, []).append(entry)
    if as_json:
        print(json.dumps({"profiles": names, "kernel": kernel or "newest", "seed": seed, "pairs": campaign.pairs,
                          "cases": campaign.cases, "skipped": campaign.skipped,
                          "elapsed": round(campaign.elapsed, 1), "by_rule": groups}, indent=2))
    else:
        print(f"{names[0]} vs {names[1]}: {campaign.pairs} (state, message) pairs in {campaign.elapsed:.1f}s, "
              f"{campaign.skipped} not expressible; {len(campaign.findings)} disagreement(s) in {len(groups)} rule(s)")
        for rule, entries in groups.items():
            print(f"  rule {rule}:")
            for e in entries:
                print(f"    {e['signature']}: {names[0]} {e['model']} vs {names[1]} {e['other']} "
                      f"(vCPUs {e['vcpus']})")
                if e.get("reproducer"):
                    print(f"      reproducer: {e['reproducer']}")
        sys.stdout.flush()
    return 1 if campaign.findings else 0
