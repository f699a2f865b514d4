"""``apicmap compare``: each interrupt of a scenario under each hypervisor profile, side by side.

One table per scenario file, interrupts x profiles. A column whose answer differs from the
reference (the first profile: ``kvm`` when every profile is shown) is marked, and the rule that
makes it differ is named from the reason codes its engine recorded for the vCPUs concerned
(``apicmap.profiles.rules``), with the profile's value for that rule.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from apicmap.app.render import plain_table, vcpu_set
from apicmap.domain.engine import deliver_each
from apicmap.domain.outcome import Outcome
from apicmap.errors import NotExpressible
from apicmap.explain import outcome_json
from apicmap.files.scenario import Scenario, load_scenario
from apicmap.profiles import profile_engine
from apicmap.profiles.policy import KvmBasedPolicy, PeerPolicy, Policy, profile_for, profile_names
from apicmap.profiles.rules import rules_for_vcpus


@dataclass(frozen=True, slots=True)
class Cell:
    """One profile's answer to one interrupt (``outcome`` None: the profile cannot express the VM)."""

    profile: str
    outcome: Outcome | None
    not_expressible: str | None = None

    @property
    def key(self) -> tuple[object, ...]:
        if self.outcome is None:
            return ("n/a",)
        o = self.outcome
        return (o.receivers, o.undefined, o.rejected is None)

    def text(self) -> str:
        if self.outcome is None:
            return "n/a"
        o = self.outcome
        if o.rejected is not None:
            return "refused"
        parts = []
        if o.receivers or not o.undefined:
            parts.append(vcpu_set(o.receivers))
        if o.undefined:
            parts.append("undefined " + vcpu_set(o.undefined))
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Row:
    index: int
    name: str
    cells: tuple[Cell, ...]
    reference: tuple[object, ...]
    rules: dict[str, list[str]]  # profile -> rules that make its answer differ from the reference


def _value(policy: Policy, rule: str) -> str:
    """``rule=value`` with the profile's value, where the rule is one of its fields."""
    name = rule.split(":", 1)[1] if rule.startswith("vmm:") else rule
    if isinstance(policy, (PeerPolicy, KvmBasedPolicy)) and hasattr(policy, name) and not rule.startswith("kvm:"):
        value = getattr(policy, name)
        text = value.name.lower() if hasattr(value, "name") else str(value)
        return f"{rule}={text}"
    return rule


def _differing_vcpus(vcpus: Sequence[int], cell: Cell, reference: Cell | None) -> set[int]:
    if cell.outcome is None or reference is None or reference.outcome is None:
        return set(vcpus)
    return {v for v in vcpus if cell.outcome.verdict(v) is not reference.outcome.verdict(v)} or set(vcpus)


def compare_scenario(scenario: Scenario, profiles: Sequence[str], kernel: str | None) -> list[Row]:
    """Every interrupt of ``scenario`` under every profile, with the rule behind each difference."""
    policies = {name: profile_for(name, "--profiles") for name in profiles}
    columns: dict[str, list[Cell]] = {}
    for name, policy in policies.items():
        engine = profile_engine(policy, kernel if kernel is not None else scenario.kernel)
        try:
            prepared = engine.prepare(scenario.vm)
        except NotExpressible as err:
            columns[name] = [Cell(name, None, str(err)) for _ in scenario.interrupts]
            continue
        with prepared:
            outcomes = deliver_each(prepared, [case.injection for case in scenario.interrupts], explain=True)
            columns[name] = [Cell(name, None, str(o)) if isinstance(o, NotExpressible) else Cell(name, o)
                             for o in outcomes]
    vcpus = scenario.vm.vcpu_ids
    rows = []
    for i, case in enumerate(scenario.interrupts):
        cells = tuple(columns[name][i] for name in profiles)
        reference = cells[0] if cells else None
        majority = reference.key if reference is not None else ("n/a",)
        rules: dict[str, list[str]] = {}
        for cell in cells:
            if cell.key == majority:
                continue
            if cell.outcome is None:
                rules[cell.profile] = [f"not expressible: {cell.not_expressible}"]
                continue
            differing = _differing_vcpus(vcpus, cell, reference)
            found = [_value(policies[cell.profile], r) for r in rules_for_vcpus(cell.outcome.explanation, differing)]
            if not found and reference is not None and reference.outcome is not None:
                # The difference is the reference's own rule (a KVM quirk, say): name that one.
                found = [f"{reference.profile}'s {_value(policies[reference.profile], r)}"
                         for r in rules_for_vcpus(reference.outcome.explanation, differing)]
            rules[cell.profile] = found or ["(no rule recorded)"]
        rows.append(Row(case.index, case.name, cells, majority, rules))
    return rows


def _paths(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for text in paths:
        path = Path(text)
        out += sorted(path.glob("*.toml")) if path.is_dir() else [path]
    return out


def _json(scenario: Scenario, rows: list[Row], profiles: Sequence[str]) -> dict[str, object]:
    interrupts = []
    for row in rows:
        per: dict[str, object] = {}
        for cell in row.cells:
            entry: dict[str, object] = (outcome_json(cell.outcome) if cell.outcome is not None
                                        else {"not_expressible": cell.not_expressible})
            entry["differs"] = cell.profile in row.rules
            entry["rules"] = row.rules.get(cell.profile, [])
            per[cell.profile] = entry
        interrupts.append({"index": row.index, "name": row.name, "profiles": per})
    return {"scenario": scenario.path, "profiles": list(profiles), "interrupts": interrupts}


# Short tags in the table for the aliasing answers, which otherwise look alike ({1} for "first" and
# for "impossible"); every other rule is named under the table.
_TAGS = {
    "physical_aliasing=first": "first match",
    "physical_aliasing=first_slot_then_scan": "first match",
    "physical_aliasing=impossible": "aliasing impossible",
}


def _cell_text(cell: Cell, row: Row) -> str:
    if cell.profile not in row.rules:
        return cell.text()
    tags = [_TAGS[r] for r in row.rules[cell.profile] if r in _TAGS]
    return cell.text() + "*" + (f" ({tags[0]})" if tags else "")


def render_rows(scenario: Scenario, rows: list[Row], profiles: Sequence[str], kernel: str | None) -> str:
    title = (f"{scenario.path}: interrupts x profiles (KVM-based profiles follow KVM "
             f"{kernel or scenario.kernel or 'newest'}); * differs from {profiles[0]}")
    table = [[str(row.index), row.name,
              *[_cell_text(cell, row) for cell in row.cells]] for row in rows]
    lines = [plain_table(title, ["#", "interrupt", *profiles], table)]
    differing = [(row, profile, rules) for row in rows for profile, rules in row.rules.items()]
    if differing:
        lines.append("why the marked answers differ:")
        for row, profile, rules in differing:
            cell = next(c for c in row.cells if c.profile == profile)
            lines.append(f"  #{row.index} {profile} {cell.text()}: {'; '.join(rules)}")
    return "\n".join(lines)


def run_compare(paths: Sequence[str], *, profiles: Sequence[str] | None, kernel: str | None, json: bool) -> int:
    """Print the comparison of every scenario in ``paths`` (files or directories). Returns 0;
    bad input raises ``InputError`` (the CLI prints it and exits 2)."""
    names = profile_names(None) if profiles is None else [n for p in profiles for n in profile_names(p)]
    results = []
    for path in _paths(paths):
        scenario = load_scenario(path)
        rows = compare_scenario(scenario, names, kernel)
        if json:
            results.append(_json(scenario, rows, names))
        else:
            print(render_rows(scenario, rows, names, kernel))
            print()
    if json:
        print(jsonlib.dumps(results[0] if len(results) == 1 else results, indent=2))
    return 0


__all__ = ["Cell", "Row", "compare_scenario", "render_rows", "run_compare"]
