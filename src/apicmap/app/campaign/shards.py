"""A plan's shards, and running one shard (on whichever worker the executor chose).

A shard is one job on one kernel with one seed: the unit that is scheduled, retried and journaled.
Jobs that use a KVM run once per kernel (fuzz: per kernel and seed); fuzzing against the
architecture or between two profiles needs no kernel and runs once per seed. A shard whose kernel
is not ``host`` boots it on the worker that runs it, for the shard's whole run (one boot).

``run_shard`` is what a worker executes. It records its attempt in the shared store before any
work (so the campaign counts restarts whoever restarted it), and every finding goes to the
shared store the moment it is shrunk, so a worker that dies afterwards loses no finding.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from apicmap.app.runner import KvmTarget
from apicmap.files.plan import HOST, Job, JobKind, Plan
from apicmap.fuzz.store import SharedStore


@dataclass(frozen=True, slots=True, kw_only=True)
class Shard:
    id: str  # unique in the plan; stable across runs (the journal is keyed by it)
    job: Job
    kernel: str | None  # HOST, a kernel to boot, or None (the job needs no kernel)
    seed: int | None  # fuzz only
    seconds: int
    boot_timeout: int
    namespace: str  # the shared store's namespace: one corpus and one set of findings per target

    @property
    def target(self) -> str:
        """What the shard tests, as the report groups findings: the job on its kernel."""
        return self.job.label + (f" on {self.kernel}" if self.kernel else "")


def expand(plan: Plan, epoch: int) -> list[Shard]:
    """Every shard of the plan, in a stable order: job by job, kernel by kernel, seed by seed."""
    shards = []
    for job in plan.jobs:
        kernels: tuple[str | None, ...] = plan.kernels if job.needs_kernel else (None,)
        seeds: tuple[int | None, ...] = plan.seeds if job.kind is JobKind.FUZZ else (None,)
        for kernel in kernels:
            name = _kernel_name(kernel)
            namespace = f"{plan.name}:{epoch}:job{job.index}:{name or '-'}"
            for seed in seeds:
                parts = [f"job{job.index}", job.kind.value, *([name] if name else []),
                         *([f"seed{seed}"] if seed is not None else [])]
                shards.append(Shard(id="/".join(parts), job=job, kernel=kernel, seed=seed, seconds=plan.seconds,
                                    boot_timeout=plan.boot_timeout, namespace=namespace))
    return shards


def _kernel_name(kernel: str | None) -> str | None:
    """A kernel as shard ids name it: an image path by its file name and a digest of the whole path."""
    if kernel is None or not kernel.startswith("/"):
        return kernel
    return f"{Path(kernel).name}@{hashlib.sha1(kernel.encode()).hexdigest()[:6]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Found:
    """A finding as the shared store keeps it (``fuzz.store.Reportable``)."""

    signature: str
    record: dict[str, object]

    def to_json(self) -> dict[str, object]:
        return {"signature": self.signature, **self.record}


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardResult:
    shard: str
    release: str | None  # the upstream release of the kernel whose KVM answered (None: no kernel)
    model: str | None  # the release the model followed
    seconds: float
    pairs: int  # (state, message) pairs compared (fuzz, sweep) or interrupts checked (conformance)
    findings: tuple[dict[str, object], ...]

    def to_json(self) -> dict[str, object]:
        return {"shard": self.shard, "release": self.release, "model": self.model,
                "seconds": round(self.seconds, 3), "pairs": self.pairs, "findings": list(self.findings)}

    @staticmethod
    def from_json(data: dict[str, object]) -> ShardResult:
        findings = data.get("findings")
        seconds = data.get("seconds")
        pairs = data.get("pairs")
        return ShardResult(shard=str(data["shard"]), release=_optional(data.get("release")),
                           model=_optional(data.get("model")),
                           seconds=float(seconds) if isinstance(seconds, int | float) else 0.0,
                           pairs=int(pairs) if isinstance(pairs, int) else 0,
                           findings=tuple(f for f in findings if isinstance(f, dict))
                           if isinstance(findings, list) else ())


def _optional(value: object) -> str | None:
    return None if value is None else str(value)


def run_shard(shard: Shard, database: str) -> ShardResult:
    """Run one shard here; raises when it cannot finish (the executor retries it)."""
    store = SharedStore(database, shard.namespace, shard.id)
    store.record_attempt(shard.id)
    started = time.monotonic()
    with _kvm(shard) as target:
        release = _release(shard, target)
        model = shard.job.model or release
        if shard.job.kind is JobKind.FUZZ:
            pairs, found = _fuzz(shard, store, model, target)
        elif shard.job.kind is JobKind.CONFORMANCE:
            pairs, found = _conformance(shard, model, target)
        else:
            pairs, found = _sweep(shard, model, target)
    if shard.job.kind is not JobKind.FUZZ:  # a fuzz campaign saves each finding as it is shrunk
        store.remember(found)
    return ShardResult(shard=shard.id, release=release, model=model, seconds=time.monotonic() - started, pairs=pairs,
                       findings=tuple({**f.to_json(), "shard": shard.id} for f in found))


@contextmanager
def _kvm(shard: Shard) -> Iterator[KvmTarget | None]:
    """The booted kernel's kvm engine for the shard (None: this machine's, or no kernel needed)."""
    if shard.kernel is None or shard.kernel == HOST:
        yield None
        return
    from apicmap.app.commands.common import booted_target

    with booted_target(shard.kernel, boot_timeout=shard.boot_timeout, where=f"shard {shard.id}") as target:
        yield target


def _release(shard: Shard, target: KvmTarget | None) -> str | None:
    if target is not None:
        return target.release
    if shard.kernel == HOST:
        from apicmap.model.policy import host_release

        return host_release()
    return None


def _fuzz(shard: Shard, store: SharedStore, model: str | None, target: KvmTarget | None) -> tuple[int, list[Found]]:
    from apicmap.fuzz.campaign import Campaign
    from apicmap.fuzz.profiles import ProfileCampaign
    from apicmap.fuzz.strategies import Profile

    job = shard.job
    campaign: Campaign
    if job.profiles is not None:
        campaign = ProfileCampaign(",".join(job.profiles), model, shard.seconds, shard.seed, store=store)
    elif target is not None:
        campaign = Campaign("kvm", model, shard.seconds, shard.seed, store=store, kvm_engine=target.engine,
                            kvm_profile=Profile.for_host(target.report))
    else:
        campaign = Campaign(job.against, model, shard.seconds, shard.seed, store=store)
    findings = campaign.run()
    return campaign.pairs, [Found(signature=f.signature, record=f.to_json()) for f in findings]


def _conformance(shard: Shard, model: str | None, target: KvmTarget | None) -> tuple[int, list[Found]]:
    from apicmap.app.conformance import default_paths, run_conformance, summarize

    reports = run_conformance(list(shard.job.paths) or default_paths(), kernel=model, kvm_target=target)
    found = [Found(signature=f"{r.engine}|{Path(r.suite).name}|{r.name}",
                   record={"rule": f"conformance ({r.engine})", "file": r.suite, "case": r.name, "detail": r.detail})
             for r in reports if not r.ok]
    return summarize(reports).interrupts, found


def _sweep(shard: Shard, model: str | None, target: KvmTarget | None) -> tuple[int, list[Found]]:
    from apicmap.app.sweep import sweep

    assert shard.job.scenario is not None
    report = sweep(shard.job.scenario, engines=("model", "kvm"), kernel=model,
                   kvm_engine=None if target is None else target.engine)
    if "kvm" in report.unavailable:
        raise RuntimeError(f"the kvm engine is unavailable: {report.unavailable['kvm']}")
    found = [Found(signature=f"{g.engine}|{g.signature}",
                   record={"rule": g.rule, "count": g.count, "examples": list(g.examples)})
             for g in report.groups if g.known is None]
    return sum(report.compared.values()), found
