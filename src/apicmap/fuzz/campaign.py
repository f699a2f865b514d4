"""``apicmap fuzz``: a differential campaign of the model against the kernel or the architecture.

Hypothesis generates (VM state, injections) cases biased toward the corners. Every injection is
judged by both engines; a divergence whose signature is new (and, against ``arch``, not in the
catalogue of known differences) is raised so that Hypothesis shrinks the case to a minimal one,
which is kept as a scenario text (and written out as a file that ``apicmap check`` re-runs when
the campaign has an output directory).

A store (``fuzz/store.py``) makes campaigns resume: Hypothesis's example database and the
findings already reported, so that a later campaign does not report them as new. ``apicmap
fuzz`` keeps a ``FuzzStore`` in ``--out DIR`` or under the user's cache directory
(``default_store``); the shards of ``apicmap campaign`` share a ``SharedStore``.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.database import ExampleDatabase, InMemoryExampleDatabase

from apicmap.arch.engine import ArchEngine
from apicmap.cache import cache_root
from apicmap.domain.engine import Engine, deliver_each
from apicmap.domain.message import Injection
from apicmap.domain.outcome import Outcome
from apicmap.domain.vm import VmState
from apicmap.errors import NotExpressible
from apicmap.files.output import atomic_write_text
from apicmap.files.writer import scenario_toml
from apicmap.fuzz.signature import signature
from apicmap.fuzz.store import FindingStore, FuzzStore
from apicmap.fuzz.strategies import Profile, cases
from apicmap.known.catalogue import CATALOGUE
from apicmap.model.engine import ModelEngine
from apicmap.model.policy import VARIANTS, policy_for_release


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    signature: str
    rule: str
    vm: VmState
    injection: Injection
    model: Outcome
    other: Outcome
    found_after: float  # seconds into the campaign when first detected (shrinking comes after)
    detected_at: str = ""  # the same moment on the wall clock (UTC), comparable across shards and machines
    scenario: str = ""  # the shrunk case as a scenario file's text, kept with or without --out
    reproducer: str | None = None  # where the scenario was written, with --out
    # Against the kernel: the commits between the modelled release and the host's that explain it.
    explained_by: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"signature": self.signature, "rule": self.rule, "found_after_s": round(self.found_after, 3),
                "detected_at": self.detected_at,
                "model": list(self.model.receivers), "model_return": self.model.result,
                "other": list(self.other.receivers), "other_return": self.other.result,
                "model_detail": _detail(self.model, self.other), "other_detail": _detail(self.other, self.model),
                "explained_by": self.explained_by, "reproducer": self.reproducer, "scenario": self.scenario}


def default_store(against: str, kernel: str | None) -> FuzzStore:
    """Without ``--out``: ``<cache>/fuzz-db/<against>-<kernel>/`` and ``<against>-<kernel>.findings.json``."""
    name = f"{against}-{kernel or 'newest'}"
    root = cache_root() / "fuzz-db"
    return FuzzStore(root / name, root / f"{name}.findings.json")


def _returned(outcome: Outcome) -> str:
    """The return value as a reproducer's comment says it: ``-`` for an engine that has none (arch)."""
    return "-" if outcome.result is None else str(outcome.result)


def _detail(outcome: Outcome, versus: Outcome) -> str:
    """What of ``outcome`` differs from ``versus`` beyond receivers and return: rejection, effects."""
    parts = []
    if (outcome.rejected is None) != (versus.rejected is None):
        parts.append(f"refused: {outcome.rejected}" if outcome.rejected else "not refused")
    extra = sorted(set(outcome.effects) - set(versus.effects), key=lambda e: (e.vcpu_id, e.kind.value))
    if extra:
        parts.append("effects only here: " + ", ".join(f"{e.vcpu_id}:{e.describe()}" for e in extra))
    return "; ".join(parts)


@dataclass(slots=True)
class Campaign:
    against: str
    kernel: str | None = None
    seconds: float = 60.0
    seed: int | None = None  # None: fresh inputs every campaign; N: the same inputs for the same N
    out: Path | None = None  # reproducer files; with no store given, the store is kept here too
    progress: Callable[[Campaign], None] | None = None
    max_findings: int | None = None  # stop early (used by time-to-find measurements)
    store: FindingStore | None = None  # None and no out: an in-memory database, no index
    # Against "kvm": the engine of a booted kernel (``--on``) and what it supports; None: this machine's.
    kvm_engine: Engine | None = None
    kvm_profile: Profile | None = None
    findings: list[Finding] = field(default_factory=list)  # new ones, in the order they were detected
    saved: dict[str, dict[str, object]] = field(default_factory=dict)  # reported by earlier campaigns
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
        if self.store is None and self.out is not None:
            self.store = FuzzStore.in_dir(self.out)
        database: ExampleDatabase = InMemoryExampleDatabase()
        if self.out:
            self.out.mkdir(parents=True, exist_ok=True)
        if self.store is not None:
            database = self.store.examples()
            self.saved = self.store.saved()
            self._known.update(self.saved)
        self.started = time.monotonic()
        chunk = 0
        try:
            while self.elapsed < self.seconds and not self._enough():
                if chunk and self.store is not None:
                    # What other campaigns sharing the store reported meanwhile is not raised (nor
                    # shrunk) again. Only between chunks: a signature that turned known in the middle
                    # of Hypothesis's shrinking would make the failure look flaky.
                    self._known.update(self.store.saved())
                self._chunk(model_engine, other, profile, database, chunk)
                chunk += 1
        finally:
            if other is not self.kvm_engine:  # an engine given to the campaign belongs to its caller
                other.close()
            model_engine.close()
        return self.findings

    def _engines(self) -> tuple[Engine, Engine, Profile]:
        """(the engine on the left, the one it is judged against, what the strategies may generate)."""
        return (ModelEngine(policy_for_release(self.kernel)), *self._other_engine())

    def _enough(self) -> bool:
        return self.max_findings is not None and len(self.findings) >= self.max_findings

    def _other_engine(self) -> tuple[Engine, Profile]:
        if self.against == "kvm" and self.kvm_engine is not None:
            return self.kvm_engine, self.kvm_profile or Profile()
        if self.against == "kvm":
            from apicmap.kvm.engine import KvmEngine

            engine = KvmEngine(cache_size=16)
            hashing = engine.vector_hashing if engine.vector_hashing is not None else True
            return engine, Profile(vector_hashing=hashing, smm=engine.smm)
        return ArchEngine(), Profile(x2apic_sources_only=False, allow_remrd=True)

    def _chunk(self, model_engine: Engine, other: Engine, profile: Profile, database: ExampleDatabase,
               chunk: int) -> None:
        campaign = self
        # The saved corpus is replayed once, by the first chunk; later chunks only generate.
        phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink] if chunk == 0 else \
            [Phase.generate, Phase.shrink]
        chosen = settings(max_examples=200, deadline=None, database=database, phases=phases,
                          suppress_health_check=list(HealthCheck), report_multiple_bugs=False)

        @given(cases(profile))
        def probe(case: tuple[VmState, list[Injection]]) -> None:
            campaign._probe(model_engine, other, *case)

        if self.seed is not None:
            # @seed alone would also set database=None; @settings applied after it puts the
            # database back (a settings decorator replaces the test's settings as a whole).
            probe = seed(self.seed + chunk)(probe)
        probe = chosen(probe)

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
        # Both engines in batches (the kvm engine sends independent MSIs together); where one
        # injection is not expressible, the other engine's side goes one by one.
        batch = deliver_each(other_vm, injections)
        mine = model_vm.deliver_many(injections)
        for injection, ours, theirs in zip(injections, mine, batch, strict=True):
            if isinstance(theirs, NotExpressible):
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
            raise _Divergence(Finding(signature=sig, rule=rule, vm=vm, injection=injection, model=ours,
                                      other=theirs, found_after=self.elapsed))

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

        decoded = decode_for_kvm(injection, vm, KvmDecodeRules.for_policy(VARIANTS[0], vm))
        message = None if isinstance(decoded, Refused) else decoded
        return any(entry.applies(vm, injection, message, ours, theirs) for entry in CATALOGUE)

    def _record(self, found: _Divergence) -> None:
        finding = found.finding
        if finding.signature in self._known:
            return
        self._known.add(finding.signature)
        detected = self._first_seen.get(finding.signature, finding.found_after)
        explained = self._explain_by_commits(finding) if self.against == "kvm" else None
        wall = datetime.now(UTC) - timedelta(seconds=self.elapsed - detected)
        finding = replace(finding, found_after=detected, explained_by=explained,
                          detected_at=wall.isoformat(timespec="milliseconds"))
        text = self._scenario(finding)
        path = None
        if self.out:
            path = self.out / reproducer_name(finding.signature, finding.rule)
            atomic_write_text(path, text)
        kept = replace(finding, scenario=text, reproducer=None if path is None else str(path))
        self.findings.append(kept)
        self.findings.sort(key=lambda f: f.found_after)  # detection order (shrinking finishes later)
        if self.store is not None:
            self.store.remember([kept])
        if self.progress is not None:
            self.progress(self)

    def _explain_by_commits(self, finding: Finding) -> str:
        """The commits between the modelled release and this host's that account for the finding."""
        from apicmap.model.attribution import attribute_finding
        from apicmap.model.policy import host_release

        model = policy_for_release(self.kernel)
        host = policy_for_release(host_release())
        if model.key == host.key:
            return "unexplained (the model follows this host's release)"
        found = attribute_finding(finding.vm, finding.injection, model, host, finding.other)
        if not found.explained:
            return "unexplained" + (f" (fields that move it: {', '.join(found.fields)})" if found.fields else "")
        return found.describe()

    def _scenario(self, finding: Finding) -> str:
        other = finding.other.engine
        kernel = self.kernel
        expect = finding.other.receivers if other == "kvm" else finding.model.receivers
        expect_arch = finding.other.receivers if other == "arch" else None
        header = [f"apicmap fuzz reproducer: model (KVM {kernel or 'newest'}) vs {other}",
                  f"signature: {finding.signature}",
                  f"model: {list(finding.model.receivers)} return {_returned(finding.model)}; "
                  f"{other}: {list(finding.other.receivers)} return {_returned(finding.other)}",
                  *([f"model: {_detail(finding.model, finding.other) or '-'}; "
                     f"{other}: {_detail(finding.other, finding.model) or '-'}"]
                    if _detail(finding.model, finding.other) or _detail(finding.other, finding.model) else []),
                  *([f"explained by: {finding.explained_by}"] if finding.explained_by else []),
                  "re-run: apicmap check THIS_FILE"]
        return scenario_toml(finding.vm, [("divergence", finding.injection, expect, expect_arch)],
                             kernel=kernel, header=header)


def reproducer_name(signature: str, rule: str) -> str:
    """A finding's reproducer file name: its rule, readable, and its signature's digest, unique."""
    digest = hashlib.sha1(signature.encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", rule.lower()).strip("-")[:40]
    return f"{slug}-{digest}.toml"


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
