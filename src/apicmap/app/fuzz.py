"""``apicmap fuzz``: run campaigns (optionally in parallel) with a live progress line."""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from apicmap.fuzz.campaign import Campaign, FuzzStore, default_store


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


class _Progress:
    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, campaign: Campaign) -> None:
        now = time.monotonic()
        if now - self.last < (0.5 if self.tty else 10.0):
            return
        self.last = now
        rate = campaign.pairs / max(campaign.elapsed, 1e-9)
        line = (f"fuzz {campaign.against}: {campaign.elapsed:6.1f}s  {campaign.pairs} pairs  {rate:,.0f} pairs/s  "
                f"{len(campaign.findings)} divergences")
        sys.stderr.write(("\r" + line) if self.tty else line + "\n")
        sys.stderr.flush()


def run_fuzz(against: str, kernel: str | None, seconds: float, seed: int | None, jobs: int, out: str | None,
             as_json: bool) -> int:
    """A campaign (``jobs`` in parallel); ``seed`` None gives fresh inputs every run, N the same inputs.
    Call ``files.output.check_output_dir(out, "--out")`` first. Findings earlier campaigns saved (in
    the store, see ``fuzz_store``) are not reported again; new ones are listed in detection order."""
    saved = 0
    if jobs <= 1:
        progress = _Progress()
        campaign = Campaign(against, kernel, seconds, seed, Path(out) if out else None, progress=progress,
                            store=fuzz_store(against, kernel, out))
        findings = [f.to_json() for f in campaign.run()]
        saved = len(campaign.saved)
        totals = {"pairs": campaign.pairs, "cases": campaign.cases, "skipped": campaign.skipped,
                  "elapsed": campaign.elapsed}
        if progress.tty:
            sys.stderr.write("\n")
    else:
        started = time.monotonic()
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_worker, (against, kernel, seconds, None if seed is None else seed + 1000 * j, out))
                       for j in range(jobs)]
            while not all(f.done() for f in futures):
                time.sleep(0.5)
                if sys.stderr.isatty():
                    sys.stderr.write(f"\rfuzz {against}: {time.monotonic() - started:6.1f}s with {jobs} jobs")
            results = [f.result() for f in futures]
        if sys.stderr.isatty():
            sys.stderr.write("\n")
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
            print(f"      model {f['model']} (return {f['model_return']}) vs {against} {f['other']} "
                  f"(return {f['other_return']})")
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
