"""The campaign's one report: findings merged across shards, per target, in JSON, JUnit and text.

A finding is the same finding when its signature is (``fuzz/signature.py``; conformance: the
file, case and engine; sweep: the difference's signature) within one target (a job on one
kernel, or a profile pair). Its first sighting is the earliest detection time any shard recorded;
every shard that found it is listed. The findings are the union of the shards' results and the
shared store's records, so the findings of a shard that died after saving them are kept.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from apicmap.app.campaign.coordinator import Run
from apicmap.app.campaign.shards import Shard
from apicmap.files.output import atomic_write_text
from apicmap.files.plan import shard_slug
from apicmap.fuzz.campaign import reproducer_name
from apicmap.fuzz.store import SharedStore


@dataclass(frozen=True, slots=True, kw_only=True)
class MergedFinding:
    signature: str
    rule: str
    first_seen: str  # UTC time of the earliest detection
    first_shard: str
    shards: tuple[str, ...]  # every shard that found it, first finder first
    record: dict[str, object]  # the first record (scenario text, receivers, detail)
    reproducer: str | None

    def to_json(self) -> dict[str, object]:
        detail = {k: v for k, v in self.record.items()
                  if k not in ("signature", "rule", "shard", "detected_at", "reproducer", "scenario")}
        return {"signature": self.signature, "rule": self.rule, "first_seen": self.first_seen,
                "first_shard": self.first_shard, "shards": list(self.shards), "reproducer": self.reproducer,
                **detail}


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetReport:
    target: str
    kernel: str | None
    releases: tuple[str, ...]  # the kernel's upstream release(s) as its shards read them
    models: tuple[str, ...]  # the release(s) the model followed
    shards: int
    pairs: int
    findings: tuple[MergedFinding, ...]  # oldest first

    def to_json(self) -> dict[str, object]:
        return {"target": self.target, "kernel": self.kernel, "releases": list(self.releases),
                "models": list(self.models), "shards": self.shards, "pairs": self.pairs,
                "findings": [f.to_json() for f in self.findings]}


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardRun:
    shard: str
    target: str
    status: str  # finished, lost, not run
    resumed: bool  # finished by an earlier run of the campaign
    attempts: int  # starts the shard recorded in the shared store, over all runs
    lost_attempts: tuple[str, ...]  # why each attempt of this run was lost
    workers: tuple[str, ...]  # host:pid of each start
    release: str | None
    pairs: int
    seconds: float
    findings: tuple[str, ...]  # signatures

    @property
    def retried(self) -> bool:
        """Started again in this run after a lost attempt."""
        return len(self.lost_attempts) > (1 if self.status == "lost" else 0)

    def to_json(self) -> dict[str, object]:
        return {"shard": self.shard, "target": self.target, "status": self.status, "resumed": self.resumed,
                "attempts": self.attempts, "lost_attempts": list(self.lost_attempts),
                "workers": list(self.workers), "release": self.release, "pairs": self.pairs,
                "seconds": round(self.seconds, 3), "findings": list(self.findings)}


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignReport:
    campaign: str
    plan_digest: str
    epoch: int
    executor: str
    database: str
    elapsed: float  # this run
    new_pairs: int  # pairs of the shards this run finished
    targets: tuple[TargetReport, ...]
    shard_runs: tuple[ShardRun, ...]
    path: Path  # where report.json is

    @property
    def findings(self) -> int:
        return sum(len(t.findings) for t in self.targets)

    @property
    def lost(self) -> int:
        return sum(r.status != "finished" for r in self.shard_runs)

    def to_json(self) -> dict[str, object]:
        runs = self.shard_runs
        return {"campaign": self.campaign, "plan_digest": self.plan_digest, "epoch": self.epoch,
                "executor": self.executor, "database": self.database, "elapsed_s": round(self.elapsed, 3),
                "shards": {"total": len(runs), "finished": sum(r.status == "finished" for r in runs),
                           "resumed": sum(r.resumed for r in runs), "lost": self.lost,
                           "retried": sum(r.retried for r in runs)},
                "pairs": sum(t.pairs for t in self.targets),
                "pairs_per_second": round(self.new_pairs / self.elapsed, 1) if self.elapsed > 0 else None,
                "findings": self.findings, "report": str(self.path),
                "targets": [t.to_json() for t in self.targets], "shard_runs": [r.to_json() for r in runs]}


def merge(run: Run, out: Path) -> CampaignReport:
    """The report (also written to ``out/report.json``; reproducers to ``out/reproducers/``)."""
    by_target: dict[str, list[Shard]] = {}
    for shard in run.shards:
        by_target.setdefault(shard.target, []).append(shard)
    stores = {s.namespace: SharedStore(run.database, s.namespace) for s in run.shards}
    targets = []
    for target, shards in by_target.items():
        records: list[dict[str, object]] = []
        for shard in shards:
            result = run.results.get(shard.id)
            if result is not None:
                records += [dict(f) for f in result.findings]
        for namespace in sorted({s.namespace for s in shards}):
            records += stores[namespace].findings()
        findings = [_merged(target, signature, group, out) for signature, group in _by_signature(records)]
        finished = [run.results[s.id] for s in shards if s.id in run.results]
        targets.append(TargetReport(target=target, kernel=shards[0].kernel,
                                    releases=tuple(sorted({r.release for r in finished if r.release})),
                                    models=tuple(sorted({r.model for r in finished if r.model})),
                                    shards=len(shards), pairs=sum(r.pairs for r in finished),
                                    findings=tuple(sorted(findings, key=lambda f: f.first_seen or "~"))))
    runs = []
    for shard in run.shards:
        result = run.results.get(shard.id)
        attempts = stores[shard.namespace].attempts(shard.id)
        runs.append(ShardRun(shard=shard.id, target=shard.target,
                             status="lost" if shard.id in run.lost else "finished" if result else "not run",
                             resumed=shard.id in run.resumed, attempts=len(attempts),
                             lost_attempts=tuple(run.losses.get(shard.id, [])),
                             workers=tuple(f"{a.get('host')}:{a.get('pid')}" for a in attempts),
                             release=result.release if result else None, pairs=result.pairs if result else 0,
                             seconds=result.seconds if result else 0.0,
                             findings=tuple(sorted({str(f["signature"]) for f in result.findings}))
                             if result else ()))
    report = CampaignReport(campaign=run.plan.name, plan_digest=run.plan.digest, epoch=run.epoch,
                            executor=run.executor, database=run.database, elapsed=run.elapsed,
                            new_pairs=sum(r.pairs for s, r in run.results.items() if s not in run.resumed),
                            targets=tuple(targets), shard_runs=tuple(runs), path=out / "report.json")
    atomic_write_text(report.path, json.dumps(report.to_json(), indent=2) + "\n")
    return report


def _by_signature(records: list[dict[str, object]]) -> list[tuple[str, list[dict[str, object]]]]:
    groups: dict[str, list[dict[str, object]]] = {}
    for record in records:
        if "signature" in record:
            groups.setdefault(str(record["signature"]), []).append(record)
    for group in groups.values():
        group.sort(key=lambda r: str(r.get("detected_at") or "~"))  # undated (conformance, sweep) last
    return sorted(groups.items())


def _merged(target: str, signature: str, group: list[dict[str, object]], out: Path) -> MergedFinding:
    first = group[0]
    shards = tuple(dict.fromkeys(str(r.get("shard", "")) for r in group if r.get("shard")))
    reproducer = None
    scenario = first.get("scenario")
    if isinstance(scenario, str) and scenario:
        path = out / "reproducers" / shard_slug(target) / reproducer_name(signature, str(first.get("rule", "")))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, scenario)
        reproducer = str(path)
    return MergedFinding(signature=signature, rule=str(first.get("rule", "")),
                         first_seen=str(first.get("detected_at") or ""), first_shard=shards[0] if shards else "",
                         shards=shards, record=first, reproducer=reproducer)


def junit_xml(report: CampaignReport) -> str:
    """One testsuite per target: a testcase per shard (an error when it was lost) and a failing
    testcase per finding, as CI dashboards count them."""
    suites = ET.Element("testsuites", name=f"apicmap campaign {report.campaign}")
    for target in report.targets:
        shard_runs = [r for r in report.shard_runs if r.target == target.target]
        suite = ET.SubElement(suites, "testsuite", name=target.target,
                              tests=str(len(shard_runs) + len(target.findings)), failures=str(len(target.findings)),
                              errors=str(sum(r.status != "finished" for r in shard_runs)))
        for r in shard_runs:
            case = ET.SubElement(suite, "testcase", classname=target.target, name=f"shard {r.shard}",
                                 time=f"{r.seconds:.3f}")
            if r.status != "finished":
                error = ET.SubElement(case, "error", message=f"shard {r.status} after {r.attempts} attempt(s)")
                error.text = "\n".join(r.lost_attempts)
        for f in target.findings:
            case = ET.SubElement(suite, "testcase", classname=target.target, name=f.signature)
            failure = ET.SubElement(case, "failure",
                                    message=f"{f.rule}: first seen {f.first_seen or '-'} in {f.first_shard}")
            failure.text = f"found by {', '.join(f.shards)}" + (f"\nreproducer: {f.reproducer}" if f.reproducer else "")
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def text(report: CampaignReport) -> list[str]:
    data = report.to_json()
    shards = data["shards"]
    assert isinstance(shards, dict)
    rate = data["pairs_per_second"]
    lines = [f"campaign {report.campaign} on {report.executor}: {shards['finished']}/{shards['total']} shards "
             f"finished ({shards['resumed']} earlier), {shards['lost']} lost, {shards['retried']} retried; "
             f"{data['pairs']} pairs" + (f", {rate:,.0f}/s this run" if rate else "")
             + f"; {report.findings} finding(s)"]
    for target in report.targets:
        lines.append(f"  {target.target}" + (f" (Linux {', '.join(target.releases)})" if target.releases else "")
                     + f": {target.pairs} pairs, {len(target.findings)} finding(s)")
        for f in target.findings:
            others = len(f.shards) - 1
            lines.append(f"    {f.signature}  first {f.first_seen or '-'} in {f.first_shard}"
                         + (f" (+{others} shard(s))" if others > 0 else ""))
            if f.reproducer:
                lines.append(f"      reproducer: {f.reproducer}")
    for r in report.shard_runs:
        if r.status != "finished":
            lines.append(f"  {r.status}: {r.shard} after {r.attempts} attempt(s)"
                         + (f": {r.lost_attempts[-1]}" if r.lost_attempts else ""))
    lines.append(f"report: {report.path}")
    return lines
