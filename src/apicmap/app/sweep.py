"""``apicmap sweep FILE``: every message the scenario's VM can be sent, on several engines at once.

The messages: MSIs to all 256 xAPIC destinations (and, with ``use_32bit_ids``, the chosen x2APIC
ranges through ``address_hi``), both destination modes, every delivery mode, with and without
RH; IOAPIC entries to all 256 destinations, both modes, every delivery mode; IPIs from x2APIC
sources (the only ones the host can send): the shorthands from every x2APIC source, and every
addressed destination (all 256, the x2APIC ranges, the 32-bit broadcast) from the first and the
last x2APIC source (``ipi_sources="all"``: from every one). Each engine resolves the whole list
through ``deliver_many`` (the model by set algebra, the kvm engine in batches); the model is
compared with every other engine, and the differences are grouped by the KVM rule involved
(``fuzz.signature``), naming the known ones from the catalogue.
"""

from __future__ import annotations

import json as json_module
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

from apicmap.app.render import print_table
from apicmap.decode import KvmDecodeRules, Refused, decode_for_kvm
from apicmap.domain.engine import Engine, PreparedVm, deliver_each
from apicmap.domain.message import IcrInjection, Injection, IoapicInjection, MsiInjection
from apicmap.domain.outcome import Explanation, Outcome
from apicmap.domain.reasons import Code, because
from apicmap.domain.vm import VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.engines import make_engine
from apicmap.errors import InputError, NotExpressible
from apicmap.files.scenario import load_scenario
from apicmap.files.writer import injection_toml
from apicmap.fuzz.signature import signature
from apicmap.known.catalogue import CATALOGUE
from apicmap.model.bitset import path_of
from apicmap.model.engine import ModelEngine
from apicmap.model.policy import VARIANTS, policy_for_release

VECTOR = 0x40
IOAPIC_PIN = 16
ASSERT = 1 << 14


def parse_ranges(text: str | None) -> tuple[range, ...]:
    """``0x100-0x1ff,4095`` -> ranges of x2APIC destinations (inclusive bounds)."""
    if not text:
        return ()
    out: list[range] = []
    for part in text.split(","):
        part = part.strip()
        low, _, high = part.partition("-")
        try:
            first, last = int(low, 0), int(high or low, 0)
        except ValueError:
            raise InputError("--x2apic", f"cannot read {part!r}", "ranges like 0x100-0x1ff or 300") from None
        if not 0 <= first <= last <= 0xFFFFFFFF:
            raise InputError("--x2apic", f"{part!r} is not an ascending range of 32-bit IDs", "0..0xffffffff")
        if last - first > 1 << 16:
            raise InputError("--x2apic", f"{part!r} covers more than 65,536 IDs", "narrower ranges")
        out.append(range(first, last + 1))
    return tuple(out)


def sweep_injections(vm: VmState, x2apic_ranges: Sequence[range] = (), ipi_sources: str = "ends") -> list[Injection]:
    """The sweep's messages, in a fixed order (MSIs, IOAPIC, IPIs)."""
    wide = sorted({d for r in x2apic_ranges for d in r if d > 0xFF})
    out: list[Injection] = []
    msi_dests = list(range(256)) + (wide if vm.use_32bit_ids else [])
    for dest in msi_dests:
        for logical in (0, 1):
            for mode in range(8):
                for rh in (0, 1):
                    out.append(MsiInjection(0xFEE00000 | (dest & 0xFF) << 12 | rh << 3 | logical << 2,
                                            dest & 0xFFFFFF00, VECTOR | mode << 8))
    for dest in range(256):
        for logical in (0, 1):
            for mode in range(8):
                out.append(IoapicInjection(IOAPIC_PIN, VECTOR | mode << 8 | logical << 11 | dest << 56))
    sources = [v.vcpu_id for v in vm.vcpus if v.mode is ApicMode.X2APIC]
    addressed_from = sources if ipi_sources == "all" else sorted({sources[0], sources[-1]}) if sources else []
    for source in sources:
        for shorthand in (1, 2, 3):
            for dest in (0, 0xFF):  # the ICR destination field still decides KVM's 0xFF lowest rewrite
                for mode in range(8):
                    out.append(IcrInjection(source, dest << 32 | VECTOR | mode << 8 | ASSERT | shorthand << 18))
    for source in addressed_from:
        for dest in [*range(256), *wide, 0xFFFFFFFF]:
            for logical in (0, 1):
                for mode in range(8):
                    out.append(IcrInjection(source, dest << 32 | VECTOR | mode << 8 | logical << 11 | ASSERT))
    return out


@dataclass(slots=True)
class Group:
    engine: str
    rule: str
    signature: str
    known: str | None
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"engine": self.engine, "rule": self.rule, "signature": self.signature, "known": self.known,
                "count": self.count, "examples": self.examples}


@dataclass(slots=True)
class SweepReport:
    path: str
    vcpus: int
    injections: int
    engines: tuple[str, ...]
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    compared: dict[str, int] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)

    @property
    def unknown(self) -> int:
        return sum(g.count for g in self.groups if g.known is None)

    def to_json(self) -> dict[str, object]:
        return {"scenario": self.path, "vcpus": self.vcpus, "injections": self.injections,
                "engines": list(self.engines), "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "compared": self.compared, "skipped": self.skipped, "unavailable": self.unavailable,
                "differences": [g.to_json() for g in self.groups], "unknown_differences": self.unknown}


def _deliver_all(prepared: PreparedVm, injections: Sequence[Injection], chunk: int = 512) -> list[Outcome | None]:
    """``deliver_many`` in chunks; where one injection is not expressible, that chunk goes one by one."""
    out: list[Outcome | None] = []
    for start in range(0, len(injections), chunk):
        out += [None if isinstance(o, NotExpressible) else o
                for o in deliver_each(prepared, injections[start:start + chunk])]
    return out


def _agree(engine: str, ours: Outcome, theirs: Outcome) -> bool:
    if engine == "arch":
        return ours.receivers == theirs.receivers
    return ours.same_as(theirs)


def sweep(path: str, *, engines: Sequence[str] = ("model", "arch"), kernel: str | None = None,
          x2apic_ranges: Sequence[range] = (), ipi_sources: str = "ends",
          kvm_engine: Engine | None = None) -> SweepReport:
    """``kvm_engine``: the kvm engine to sweep (a booted kernel's; it stays open), else this machine's."""
    scenario = load_scenario(path)
    vm = scenario.vm
    names = tuple(dict.fromkeys(["model", *engines]))
    for name in names:
        if name not in ("model", "arch", "kvm"):
            raise InputError("--engines", f"unknown engine {name!r}", "model, arch, kvm")
    injections = sweep_injections(vm, x2apic_ranges, ipi_sources)
    report = SweepReport(path, len(vm.vcpus), len(injections), names)
    results: dict[str, list[Outcome | None]] = {}
    model_kernel = kernel or scenario.kernel
    for name in names:
        borrowed = kvm_engine if name == "kvm" else None
        try:
            engine: Engine = borrowed or make_engine(name, model_kernel if name == "model" else None)
        except Exception as err:  # the kvm engine without /dev/kvm
            if name == "model":
                raise
            report.unavailable[name] = str(err)
            continue
        with nullcontext(engine) if borrowed else engine:
            started = time.perf_counter()
            try:
                prepared = engine.prepare(vm)
            except NotExpressible as err:
                report.unavailable[name] = str(err)
                continue
            with prepared:
                results[name] = _deliver_all(prepared, injections)
            report.seconds[name] = time.perf_counter() - started
        report.skipped[name] = sum(o is None for o in results[name])
    model_vm = ModelEngine(policy_for_release(model_kernel)).prepare(vm)
    rules = KvmDecodeRules.for_policy(VARIANTS[0], vm)  # the oldest rules: nothing refused at decoding
    groups: dict[tuple[str, str], Group] = {}
    ours_all = results["model"]
    for name in names[1:]:
        if name not in results:
            continue
        compared = 0
        for injection, ours, theirs in zip(injections, ours_all, results[name], strict=True):
            if ours is None or theirs is None:
                continue
            compared += 1
            if _agree(name, ours, theirs):
                continue
            decoded = decode_for_kvm(injection, vm, model_vm.rules)
            # The path the model took is all a signature reads: no per-vCPU explanation needed.
            taken = because(Code.PATH_REFUSED) if isinstance(decoded, Refused) else path_of(model_vm.index, decoded)
            explained = replace(ours, explanation=Explanation(message="", path=taken))
            sig, rule = signature(vm, injection, explained, theirs)
            group = groups.get((name, sig))
            if group is None:
                known = None
                if name == "arch":
                    decoded = decode_for_kvm(injection, vm, rules)  # as the catalogue reads it
                    message = None if isinstance(decoded, Refused) else decoded
                    known = next((e.name for e in CATALOGUE if e.applies(vm, injection, message, explained, theirs)),
                                 None)
                group = groups[(name, sig)] = Group(name, rule, sig, known)
            group.count += 1
            if len(group.examples) < 3:
                group.examples.append(f"{'; '.join(injection_toml(injection))}: model {list(ours.receivers)} "
                                      f"r={ours.result}, {name} {list(theirs.receivers)} r={theirs.result}")
        report.compared[name] = compared
    report.groups = sorted(groups.values(), key=lambda g: (g.engine, g.known is not None, g.rule, -g.count))
    return report


def run_sweep(path: str, *, engines: Sequence[str] = ("model", "arch"), kernel: str | None = None,
              x2apic_ranges: Sequence[range] | str | None = None, ipi_sources: str = "ends",
              json: bool = False) -> int:
    """The command: 0 when every difference is a known one, 1 otherwise (any model != kvm
    difference counts), 2 for bad input (raised as ``InputError``)."""
    ranges = parse_ranges(x2apic_ranges) if isinstance(x2apic_ranges, str) or x2apic_ranges is None \
        else tuple(x2apic_ranges)
    if ipi_sources not in ("ends", "all"):
        raise InputError("--ipi-sources", f"{ipi_sources!r}", "ends, all")
    report = sweep(path, engines=engines, kernel=kernel, x2apic_ranges=ranges, ipi_sources=ipi_sources)
    if json:
        print(json_module.dumps(report.to_json(), indent=2))
    else:
        timing = ", ".join(f"{k} {v:.2f} s" for k, v in report.seconds.items())
        print(f"sweep {report.path}: {report.vcpus} vCPUs, {report.injections} messages; {timing}")
        for name, why in report.unavailable.items():
            print(f"({name} engine unavailable: {why})")
        for name, count in report.skipped.items():
            if count:
                print(f"({name}: {count} messages not expressible, skipped)")
        rows = [[g.engine, g.signature, str(g.count), g.known or "NEW"] for g in report.groups]
        print_table("differences from the model, by rule", ["engine", "rule | shape", "count", "known"], rows)
        for g in report.groups:
            if g.known is None:
                print(f"\n-- {g.engine}: {g.signature}")
                for example in g.examples:
                    print(f"   {example}")
        print(f"\nresult: {report.unknown} messages differ in ways not in the catalogue")
    return 1 if report.unknown else 0
