"""Fuzzing one hypervisor profile against another (``apicmap fuzz --profiles a,b``).

The campaign machinery is ``Campaign``'s (strategies, chunks, Hypothesis shrinking, the example
database, reproducers); only the two engines, what counts as agreement and the signature
differ. A divergence is grouped by the rule behind it: the ``PeerPolicy`` field (or the KVM or
VMM rule) named by the reason codes the two engines recorded for the vCPUs that differ,
preferring fields on which the two rows actually differ.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from apicmap.domain.engine import Engine
from apicmap.domain.message import Injection
from apicmap.domain.outcome import Outcome
from apicmap.domain.vm import VmState
from apicmap.files.writer import scenario_toml
from apicmap.fuzz.campaign import Campaign, Finding
from apicmap.fuzz.strategies import Profile
from apicmap.profiles import profile_engine
from apicmap.profiles.policy import KVM_RULE_FIELDS, RULE_FIELDS, Policy, profile_for
from apicmap.profiles.rules import rules_for_vcpus


def differing_fields(a: Policy, b: Policy) -> list[str]:
    """The rule fields on which two rows differ (KVM-based rows: their VMM fields, prefixed ``vmm:``)."""
    if type(a) is not type(b):
        return []
    fields = RULE_FIELDS if hasattr(a, "physical_aliasing") else KVM_RULE_FIELDS
    prefix = "" if fields is RULE_FIELDS else "vmm:"
    return [prefix + f for f in fields if getattr(a, f) != getattr(b, f)]


def same_answer(a: Outcome, b: Outcome) -> bool:
    return a.receivers == b.receivers and a.undefined == b.undefined and (a.rejected is None) == (b.rejected is None)


@dataclass(slots=True)
class ProfileCampaign(Campaign):
    """``against`` is ``"LEFT,RIGHT"``: two profile names (``NAME[@VERSION]``)."""

    _pair: tuple[Engine, Engine] | None = None

    @property
    def names(self) -> tuple[str, str]:
        left, _, right = self.against.partition(",")
        return left.strip(), right.strip()

    def _engines(self) -> tuple[Engine, Engine, Profile]:
        left, right = self.names
        self._pair = (profile_engine(left, self.kernel), profile_engine(right, self.kernel))
        return (*self._pair, Profile(x2apic_sources_only=False, allow_remrd=True))

    def _agree(self, ours: Outcome, theirs: Outcome) -> bool:
        return same_answer(ours, theirs)

    def _catalogued(self, vm: VmState, injection: Injection, ours: Outcome, theirs: Outcome) -> bool:
        return False

    def _signature(self, vm: VmState, injection: Injection, ours: Outcome, theirs: Outcome) -> tuple[str, str]:
        assert self._pair is not None
        with self._pair[1].prepare(vm) as prepared:
            theirs = prepared.deliver(injection, explain=True)
        vcpus = {v for v in vm.vcpu_ids if ours.verdict(v) is not theirs.verdict(v)} or set(vm.vcpu_ids)
        found = rules_for_vcpus(ours.explanation, vcpus)
        found += [r for r in rules_for_vcpus(theirs.explanation, vcpus) if r not in found]
        left, right = (profile_for(n) for n in self.names)
        differ = differing_fields(left, right)
        chosen = [r for r in found if r in differ] or found or ["unattributed"]
        rule = chosen[0]
        mine = set(ours.receivers) - set(theirs.receivers)
        other = set(theirs.receivers) - set(ours.receivers)
        if (ours.rejected is None) != (theirs.rejected is None):
            shape = "refused by one"
        elif ours.undefined != theirs.undefined:
            shape = "undefined on one side"
        elif mine and other:
            shape = "different receivers"
        else:
            shape = f"{'left' if mine else 'right'} has extra receivers"
        return f"{rule}|{shape}", rule

    def _write(self, finding: Finding) -> str:
        assert self.out is not None
        digest = hashlib.sha1(finding.signature.encode()).hexdigest()[:8]
        slug = re.sub(r"[^a-z0-9]+", "-", finding.rule.lower()).strip("-")[:40]
        path = self.out / f"{slug}-{digest}.toml"
        left, right = self.names
        header = [f"apicmap fuzz reproducer: profile {left} vs profile {right}",
                  f"signature: {finding.signature}",
                  f"{left}: {list(finding.model.receivers)} undefined {list(finding.model.undefined)}; "
                  f"{right}: {list(finding.other.receivers)} undefined {list(finding.other.undefined)}",
                  f"re-run: apicmap compare THIS_FILE --profiles {left},{right}"]
        path.write_text(scenario_toml(finding.vm, [("divergence", finding.injection, None, None)],
                                      kernel=self.kernel, header=header))
        return str(path)


def fuzz_profiles(left: str, right: str, *, kernel: str | None = None, seconds: float = 60.0, seed: int = 0,
                  out: str | None = None, max_findings: int | None = None) -> ProfileCampaign:
    """Run one campaign of ``left`` against ``right``; the findings are on the returned campaign."""
    from pathlib import Path

    profile_for(left, "--profiles")
    profile_for(right, "--profiles")
    campaign = ProfileCampaign(f"{left},{right}", kernel, seconds, seed, Path(out) if out else None,
                               max_findings=max_findings)
    campaign.run()
    return campaign
