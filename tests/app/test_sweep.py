"""``run_sweep``: every message to a scenario's VM on several engines, differences grouped by rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apicmap.app.sweep import parse_ranges, run_sweep, sweep_injections
from apicmap.domain.message import IcrInjection, IoapicInjection, MsiInjection
from apicmap.errors import InputError
from apicmap.files.scenario import load_scenario
from apicmap.model.engine import ModelEngine
from apicmap.model.policy import NEWEST

ROOT = Path(__file__).resolve().parents[2]
PATCH = str(ROOT / "examples" / "aliased-xapic-id.toml")
VCPU256 = str(ROOT / "examples" / "vcpu256-xapic.toml")
SWEEP256 = str(ROOT / "bench" / "sweep-256.toml")


def test_messages_cover_destinations_modes_and_sources() -> None:
    vm = load_scenario(SWEEP256).vm
    items = sweep_injections(vm, parse_ranges("0x100-0x10f"))
    msis = [i for i in items if isinstance(i, MsiInjection)]
    assert len(msis) == (256 + 16) * 2 * 8 * 2  # use_32bit_ids: the x2APIC range through address_hi
    assert len([i for i in items if isinstance(i, IoapicInjection)]) == 256 * 2 * 8
    ipis = [i for i in items if isinstance(i, IcrInjection)]
    x2_sources = {v.vcpu_id for v in vm.vcpus if v.mode.value == "x2apic"}
    assert {i.source for i in ipis} == x2_sources
    assert {(i.icr >> 18) & 3 for i in ipis} == {0, 1, 2, 3}
    assert {(i.icr >> 8) & 7 for i in ipis} == set(range(8))


def test_model_batch_equals_reference_on_the_sweep() -> None:
    vm = load_scenario(SWEEP256).vm
    items = sweep_injections(vm)[::7]
    prepared = ModelEngine(NEWEST).prepare(vm)
    assert prepared.deliver_many(items) == [prepared._resolve(i, False) for i in items]


def test_sweep_model_arch_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_sweep(PATCH, engines=["model", "arch"], json=True) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["engines"] == ["model", "arch"] and report["injections"] > 8000
    assert report["compared"]["arch"] == report["injections"]
    groups = report["differences"]
    assert groups and all(g["known"] for g in groups)  # the aliasing case: catalogued differences
    assert any(g["rule"].startswith("physical ID aliasing") for g in groups)


def test_sweep_text_and_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_sweep(VCPU256, engines=["model"], kernel="6.2", x2apic_ranges="0x100-0x101") == 0
    out = capsys.readouterr().out
    assert "sweep" in out and "messages" in out and "result: 0" in out


def test_bad_input() -> None:
    with pytest.raises(InputError):
        run_sweep(PATCH, engines=["model", "qemu"])
    with pytest.raises(InputError):
        parse_ranges("0x200-0x100")


@pytest.mark.kvm
def test_sweep_against_the_kernel(kvm_engine, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """The model (this host's release) and the kernel agree on every message of the patch's VM."""
    import os

    rc = run_sweep(PATCH, engines=["model", "kvm"], kernel=os.uname().release, json=True)
    report = json.loads(capsys.readouterr().out)
    assert report["compared"]["kvm"] > 4000, report
    assert rc == 0, report["differences"]
