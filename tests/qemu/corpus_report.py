"""Run every corpus/ and examples/ scenario on the qemu engine and compare with arch.

``python -m tests.qemu.corpus_report`` (from the repository root, PYTHONPATH=src) prints the
Markdown table docs/profiles/qemu.md quotes; test_qemu_corpus.py runs the same comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from apicmap import ApicMode, DeliveryMode, Injection, MsiInjection, NotExpressible, Outcome, VmState, make_engine
from apicmap.files.scenario import load_scenario
from apicmap.qemu import QemuEngine

from .reading import decode, predicted_effects

ROOT = Path(__file__).resolve().parents[2]


def scenario_files() -> list[Path]:
    return sorted((ROOT / "corpus").glob("*.toml")) + sorted((ROOT / "examples").glob("*.toml"))


@dataclass(frozen=True, slots=True)
class Row:
    index: int
    name: str
    qemu: tuple[int, ...] | None  # None: not expressible
    arch: tuple[int, ...]
    arch_undefined: tuple[int, ...]
    not_expressible: str | None = None
    matches_reading: bool = True
    why: str | None = None  # the QEMU rule behind a disagreement with arch

    @property
    def agrees(self) -> bool:
        """QEMU takes every vCPU arch says accepts, and only those or ones arch leaves undefined."""
        if self.qemu is None:
            return True
        return set(self.arch) <= set(self.qemu) <= set(self.arch) | set(self.arch_undefined)


@dataclass(slots=True)
class FileResult:
    path: Path
    rows: list[Row] = field(default_factory=list)

    @property
    def expressible(self) -> int:
        return sum(r.qemu is not None for r in self.rows)


def why_differs(vm: VmState, injection: Injection) -> str:
    """Name the QEMU 7.2 rule that makes it differ from the architecture (docs/profiles/qemu.md)."""
    d = decode(injection)
    if isinstance(injection, MsiInjection) and injection.address_lo & 8:
        return "redirection hint ignored (apic_send_msi)"
    if d.delivery is DeliveryMode.LOWEST:
        return "lowest priority: first CPU index, no TPR (apic_bus_deliver)"
    if d.shorthand in (1, 3) and d.source is not None and vm.vcpu(d.source).xapic_id != d.source:
        return "shorthand uses the sender's current ID as an index (apic_deliver)"
    if any(v.mode is ApicMode.DISABLED or not v.sw_enabled for v in vm.vcpus):
        return "disabled APICs still accept (apic_bus_deliver)"
    if d.logical and d.dest == 0xFF:
        return "logical 0xFF in cluster model: cluster 15 only (apic_get_delivery_bitmask)"
    if not d.logical and d.shorthand == 0 and sum(v.xapic_id == d.dest for v in vm.vcpus) > 1:
        return "aliased xAPIC IDs: one receiver (apic_find_dest)"
    return "unexplained"


def run_file(engine: QemuEngine, path: Path) -> FileResult:
    scenario = load_scenario(path)
    arch = make_engine("arch").prepare(scenario.vm)
    injections = [case.injection for case in scenario.interrupts]
    results: list[Outcome | NotExpressible]
    try:
        results = engine.prepare(scenario.vm).try_deliver_many(injections)
    except NotExpressible as err:
        results = [err] * len(injections)
    out = FileResult(path)
    for case, result in zip(scenario.interrupts, results, strict=True):
        a = arch.deliver(case.injection)
        if isinstance(result, NotExpressible):
            out.rows.append(Row(case.index, case.name, None, a.receivers, a.undefined, str(result)))
            continue
        matches = set(result.effects) == predicted_effects(scenario.vm, case.injection)
        row = Row(case.index, case.name, result.receivers, a.receivers, a.undefined, None, matches)
        if not row.agrees:
            row = Row(row.index, row.name, row.qemu, row.arch, row.arch_undefined, None, matches,
                      why_differs(scenario.vm, case.injection))
        out.rows.append(row)
    return out


def markdown(results: list[FileResult]) -> str:
    lines = ["| file | interrupts | expressible | agree with arch | disagreements (qemu vs arch) |",
             "|---|---|---|---|---|"]
    for r in results:
        bad = [row for row in r.rows if not row.agrees]
        text = "; ".join(f"#{row.index} {list(row.qemu or ())} vs {list(row.arch)}" for row in bad)
        agree = sum(row.agrees for row in r.rows if row.qemu is not None)
        lines.append(f"| {r.path.parent.name}/{r.path.name} | {len(r.rows)} | {r.expressible} | {agree} | {text} |")
    total = sum(len(r.rows) for r in results)
    expressible = sum(r.expressible for r in results)
    agree = sum(row.agrees for r in results for row in r.rows if row.qemu is not None)
    lines.append(f"| **total** ({len(results)} files) | {total} | {expressible} | {agree} | |")
    return "\n".join(lines)


def receivers_listing(results: list[FileResult]) -> str:
    """Per file, each interrupt's receivers: qemu (and arch where it differs); NE = not expressible."""
    lines = []
    for r in results:
        items = []
        for row in r.rows:
            if row.qemu is None:
                items.append(f"#{row.index} NE")
            elif row.agrees:
                items.append(f"#{row.index} {list(row.qemu)}")
            else:
                items.append(f"#{row.index} **{list(row.qemu)} (arch {list(row.arch)})**")
        lines.append(f"- `{r.path.parent.name}/{r.path.name}`: " + ", ".join(items))
    return "\n".join(lines)


def main() -> None:
    engine = QemuEngine()
    results = [run_file(engine, p) for p in scenario_files()]
    print(f"QEMU {engine.version_text}")
    print()
    print(markdown(results))
    print()
    for r in results:
        for row in r.rows:
            if not row.agrees:
                print(f"- {r.path.parent.name}/{r.path.name} #{row.index} {row.name!r}: qemu {list(row.qemu or ())}, "
                      f"arch {list(row.arch)} (undefined {list(row.arch_undefined)}): {row.why}")
    reasons: dict[str, int] = {}
    for r in results:
        for row in r.rows:
            if row.not_expressible:
                reasons[row.not_expressible] = reasons.get(row.not_expressible, 0) + 1
    print()
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"- {n} x {reason}")
    print()
    print(receivers_listing(results))


if __name__ == "__main__":
    main()
