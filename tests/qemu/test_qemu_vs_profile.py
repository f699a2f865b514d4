"""The live QEMU engine and the ``qemu@7.2`` profile (QEMU's rules as data, read from its source)
agree on every corpus, example and catalogue interrupt this QEMU can run."""

from __future__ import annotations

from pathlib import Path

import pytest

from apicmap.errors import NotExpressible
from apicmap.files.scenario import load_scenario
from apicmap.files.sequence import is_sequence_file
from apicmap.profiles import profile_engine
from apicmap.qemu import QemuEngine

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(p for d in ("corpus", "examples", "catalogue") for p in (ROOT / d).rglob("*.toml")
               if not is_sequence_file(p))


def test_live_qemu_agrees_with_its_profile(qemu_engine: QemuEngine) -> None:
    if qemu_engine.version[:2] != (7, 2):
        pytest.skip(f"the profile row checked here is qemu@7.2; this is QEMU {qemu_engine.version_text}")
    profile = profile_engine("qemu@7.2")
    compared, problems = 0, []
    for path in FILES:
        scenario = load_scenario(path)
        try:
            live = qemu_engine.prepare(scenario.vm).try_deliver_many([c.injection for c in scenario.interrupts])
        except NotExpressible:
            continue  # the whole VM (x2APIC, more CPUs than TCG allows, sparse ids)
        with profile.prepare(scenario.vm) as modelled:
            for case, seen in zip(scenario.interrupts, live, strict=True):
                if isinstance(seen, NotExpressible):
                    continue
                compared += 1
                ours = modelled.deliver(case.injection)
                if ours.receivers != seen.receivers:
                    problems.append(f"{path.name} #{case.index}: profile {list(ours.receivers)} "
                                    f"(undefined {list(ours.undefined)}), live {list(seen.receivers)}")
    assert compared > 3000
    assert not problems, "\n".join(problems[:20])
