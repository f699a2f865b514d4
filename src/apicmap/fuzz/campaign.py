"""``apicmap fuzz``: a differential campaign of the model against the kernel or the architecture.

Hypothesis generates (VM state, injections) cases biased toward the corners. Every injection is
judged by both engines; a divergence whose signature is new (and, against ``arch``, not in the
catalogue of known differences) is raised so that Hypothesis shrinks the case to a minimal one,
which is written out as a scenario file that ``apicmap check`` re-runs.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase, InMemoryExampleDatabase

from apicmap.arch.engine import ArchEngine
from apicmap.domain.engine import Engine
from apicmap.domain.message import Injection
from apicmap.domain.outcome import Outcome
from apicmap.domain.vm import VmState
from apicmap.errors import NotExpressible
from apicmap.files.writer import scenario_toml
from apicmap.fuzz.signature import signature
from apicmap.fuzz.strategies import Profile, cases
from apicmap.known.catalogue import CATALOGUE
from apicmap.model.engine import ModelEngine
from apicmap.model.policy import policy_for_release


@dataclass(frozen=True, slots=True)
class Finding:
    signature: str
    rule: str
    vm: VmState
    injection: Injection
    model: Outcome
    other: Outcome
    found_after: float  # seconds into the campaign when first detected (shrinking comes after)
    reproducer: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"signature": self.signature, "rule": self.rule, "found_after_s": round(self.found_after, 3),
                "model": list(self.model.receivers), "model_return": self.model.result,
                "other": list(self.other.receivers), "other_return": self.other.result,
                "reproducer": self.reproducer}


@dataclass(slots=True)
class Campaign:
    against: str
    kernel: str | None = None
    seconds: float = 60.0
    seed: int = 0
    out: Path | None = None
    progress: Callable[[Campaign], None] | None = None
    max_findings: int | None = None  # stop early (used by time-to-find measurements)
    findings: list[Finding] = field(default_factory=list)
    pairs: int = 0
    cases: int = 0
    skipped: int = 0
    started: float = 0.0
    _known: set[str] = field(default_factory=set)
    _first_seen: dict[str, float] = field(default_factory=dict)  # detection time, before shrinking

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def run(self) -> list[Finding]:
        model_engine, other, profile = self._engines()
        database: ExampleDatabase = (DirectoryBasedExampleDatabase(str(self.out / ".hypothesis"))
                                     if self.out else InMemoryExampleDatabase())
        if self.out:
            self.out.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        chunk = self.seed
        try:
            while self.elapsed < self.seconds and not self._enough():
                self._chunk(model_engine, other, profile, database, chunk)
                chunk += 1
        finally:
            other.close()
            model_engine.close()
        return self.findings

    def _engines(self) -> tuple[Engine, Engine, Profile]:
        """(the engine on the left, the one it is judged against, what the strategies may generate)."""
        return (ModelEngine(policy_for_release(self.kernel)), *self._other_engine())

    def _enough(self) -> bool:
        return self.max_findings is not None and len(self.findings) >= self.max_findings

    def _other_engine(self) -> tuple[Engine, Profile]:
        if self.against == "kvm":
            from apicmap.kvm.engine import KvmEngine

            engine = KvmEngine(cache_size=16)
            hashing = engine.vector_hashing if engine.vector_hashing is not None else True
            return engine, Profile(vector_hashing=hashing, smm=engine.smm)
        return ArchEngine(), Profile(x2apic_sources_only=False, allow_remrd=True)

    def _chunk(self, model_engine: Engine, other: Engine, profile: Profile, database: ExampleDatabase,
               chunk_seed: int) -> None:
        campaign = self

        @seed(chunk_seed)
        @settings(max_examples=200, deadline=None, database=database, suppress_health_check=list(HealthCheck),
                  phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink], report_multiple_bugs=False)
        @given(cases(profile))
        def probe(case: tuple[VmState, list[Injection]]) -> None:
            campaign._probe(model_engine, other, *case)

        try:
            probe()
        except _Divergence as found:
            self._record(found)
        except BaseExceptionGroup as group:  # Hypothesis may report several distinct failures
            matched, rest = group.split(_Divergence)
            if rest is not None:
                raise rest from None
            for leaf in _leaves(matched):
                self._record(leaf)

    def _probe(self, model_engine: Engine, other: Engine, vm: VmState, injections: list[Injection]) -> None:
        if self.elapsed > self.seconds or self._enough():
            return
        self.cases += 1
        try:
            model_vm = model_engine.prepare(vm)
            other_vm = other.prepare(vm)
        except NotExpressible:
            self.skipped += 1
            return
        for injection in injections:
            try:
                theirs = other_vm.deliver(injection)
                ours = model_vm.deliver(injection)
            except NotExpressible:
                self.skipped += 1
                continue
            self.pairs += 1
            if self.progress is not None and self.pairs % 256 == 0:
                self.progress(self)
            if self._agree(ours, theirs):
                continue
            ours = model_vm.deliver(injection, explain=True)
            sig, rule = self._signature(vm, injection, ours, theirs)
            if sig in self._known or self._catalogued(vm, injection, ours, theirs):
                continue
            self._first_seen.setdefault(sig, self.elapsed)
            raise _Divergence(Finding(sig, rule, vm, injection, ours, theirs, self.elapsed))

    def _signature(self, vm: VmState, injection: Injection, ours: Outcome, theirs: Outcome) -> tuple[str, str]:
        return signature(vm, injection, ours, theirs)

    def _agree(self, ours: Outcome, theirs: Outcome) -> bool:
        if self.against == "kvm":
            return ours.same_as(theirs)
        return ours.receivers == theirs.receivers

    def _catalogued(self, vm: VmState, injection: Injection, ours: Outcome, theirs: Outcome) -> bool:
        if self.against != "arch":
            return False  # against the kernel every difference is news
        from apicmap.decode import KvmDecodeRules, Refused, decode_for_kvm

        decoded = decode_for_kvm(injection, vm, KvmDecodeRules(vm.use_32bit_ids, False, False))
        message = None if isinstance(decoded, Refused) else decoded
        return any(entry.applies(vm, injection, message, ours, theirs) for entry in CATALOGUE)

    def _record(self, found: _Divergence) -> None:
        finding = found.finding
        if finding.signature in self._known:
            return
        self._known.add(finding.signature)
        path = self._write(finding) if self.out else None
        detected = self._first_seen.get(finding.signature, finding.found_after)
        self.findings.append(Finding(finding.signature, finding.rule, finding.vm, finding.injection, finding.model,
                                     finding.other, detected, path))
        if self.progress is not None:
            self.progress(self)

    def _write(self, finding: Finding) -> str:
        assert self.out is not None
        digest = hashlib.sha1(finding.signature.encode()).hexdigest()[:8]
        slug = re.sub(r"[^a-z0-9]+", "-", finding.rule.lower()).strip("-")[:40]
        path = self.out / f"{slug}-{digest}.toml"
        other = finding.other.engine
        kernel = self.kernel
        expect = finding.other.receivers if other == "kvm" else finding.model.receivers
        expect_arch = finding.other.receivers if other == "arch" else None
        header = [f"apicmap fuzz reproducer: model (KVM {kernel or 'newest'}) vs {other}",
                  f"signature: {finding.signature}",
                  f"model: {list(finding.model.receivers)} return {finding.model.result}; "
                  f"{other}: {list(finding.other.receivers)} return {finding.other.result}",
                  "re-run: apicmap check THIS_FILE"]
        path.write_text(scenario_toml(finding.vm, [("divergence", finding.injection, expect, expect_arch)],
                                      kernel=kernel, header=header))
        return str(path)


def _leaves(group: BaseExceptionGroup[_Divergence] | None) -> list[_Divergence]:
    if group is None:
        return []
    out: list[_Divergence] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out += _leaves(exc)
        elif isinstance(exc, _Divergence):
            out.append(exc)
    return out


class _Divergence(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.signature)
        self.finding = finding
