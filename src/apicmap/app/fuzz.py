"""``apicmap fuzz``: run campaigns (optionally in parallel), with progress (``app/progress.py``)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from apicmap.app.progress import progress, ticking
from apicmap.app.render import cell, vcpu_set
from apicmap.domain.engine import Engine
from apicmap.fuzz.campaign import Campaign, default_store
from apicmap.fuzz.store import FuzzStore
from apicmap.fuzz.strategies import Profile


def fuzz_store(against: str, kernel: str | None, out: str | None) -> FuzzStore:
    """Where ``apicmap fuzz`` keeps its example database and findings index: in ``--out`` if given,
    else under the cache directory (``$APICMAP_CACHE``, ``$XDG_CACHE_HOME/apicmap``, ``~/.cache/apicmap``)."""
    return FuzzStore.in_dir(Path(out)) if out else default_store(against, kernel)


def _worker(args: tuple[str, str | None, float, int | None, str | None]) -> dict[str, object]:
    against, kernel, seconds, seed, out = args
    campaign = Campaign(against, kernel, seconds, seed, Path(out) if out else None,
                        store=fuzz_store(against, kernel, out))
    findings = campaign.run()
    return {"pairs": campaign.pairs, "cases": campaign.cases, "skipped": campaign.skipped,
            "elapsed": campaign.elapsed, "findings": [f.to_json() for f in findings],
            "saved": len(campaign.saved)}


def _ids(value: object) -> str:
    return vcpu_set(value) if isinstance(value, list) else cell(value)


def run_fuzz(against: str, kernel: str | None, seconds: float, seed: int | None, jobs: int, out: str | None,
             as_json: bool, *, kvm_engine: Engine | None = None, kvm_profile: Profile | None = None) -> int:
    """A campaign (``jobs`` in parallel); ``seed`` None gives fresh inputs every run, N the same inputs.
    Call ``files.output.check_output_dir(out, "--out")`` first. Findings earlier campaigns saved (in
    the store, see ``fuzz_store``) are not reported again; new ones are listed in detection order.
    ``engine``/``profile``: the kvm engine to compare with (a booted guest's, ``--on``; one job)."""
    saved = 0
    label = f"fuzz {against}"
    if jobs <= 1:
        with progress(label, total=seconds, enabled=not as_json) as bar:
            def report(c: Campaign) -> None:
                rate = c.pairs / max(c.elapsed, 1e-9)
                bar.update(min(c.elapsed, seconds),
                           f"{c.pairs} pairs, {rate:,.0f}/s, {len(c.findings)} divergences")

            campaign = Campaign(against, kernel, seconds, seed, Path(out) if out else None, progress=report,
                                store=fuzz_store(against, kernel, out), kvm_engine=kvm_engine,
                                kvm_profile=kvm_profile)
            findings = [f.to_json() for f in campaign.run()]
        saved = len(campaign.saved)
        totals = {"pairs": campaign.pairs, "cases": campaign.cases, "skipped": campaign.skipped,
                  "elapsed": campaign.elapsed}
    else:
        started = time.monotonic()
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_worker, (against, kernel, seconds, None if seed is None else seed + 1000 * j, out))
                       for j in range(jobs)]
            done = lambda: f"{sum(f.done() for f in futures)}/{jobs} jobs done"  # noqa: E731
            with ticking(f"{label} ({jobs} jobs)", seconds, done, enabled=not as_json):
                results = [f.result() for f in futures]
        seen: dict[str, dict[str, object]] = {}
        for result in results:
            for finding in result["findings"]:  # type: ignore[attr-defined]
                seen.setdefault(str(finding["signature"]), finding)
        findings = sorted(seen.values(), key=lambda f: float(f["found_after_s"]))  # type: ignore[arg-type]
        saved = max(int(r["saved"]) for r in results)  # type: ignore[call-overload]
        totals = {key: sum(r[key] for r in results) for key in ("pairs", "cases", "skipped")}  # type: ignore[misc]
        totals["elapsed"] = time.monotonic() - started
    rate = float(totals["pairs"]) / max(float(totals["elapsed"]), 1e-9)
    summary = {"against": against, "kernel": kernel or "newest", "seed": seed, "jobs": jobs, **totals,
               "pairs_per_second": round(rate, 1), "saved_before": saved, "divergences": findings,
               "store": str(fuzz_store(against, kernel, out).database)}
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{totals['pairs']} (state, message) pairs in {float(totals['elapsed']):.1f}s ({rate:,.0f}/s), "
              f"{totals['skipped']} not expressible; {len(findings)} new divergence(s)"
              + (f" ({saved} found by earlier campaigns, not repeated)" if saved else ""))
        for f in findings:
            print(f"  [{f['found_after_s']}s] {f['signature']}")
            print(f"      model {_ids(f['model'])} (return {cell(f['model_return'])}) vs {against} {_ids(f['other'])} "
                  f"(return {cell(f['other_return'])})")
            if f.get("model_detail") or f.get("other_detail"):
                print(f"      model: {f.get('model_detail') or '-'} | {against}: {f.get('other_detail') or '-'}")
            if f.get("explained_by"):
                print(f"      explained by: {f['explained_by']}")
            if f.get("reproducer"):
                print(f"      reproducer: {f['reproducer']}  (apicmap check {f['reproducer']})")
            else:
                print("      reproducer (save it as a .toml file and run apicmap check on it):")
                for line in str(f["scenario"]).splitlines():
                    print(f"        {line}")
    return 1 if findings else 0
