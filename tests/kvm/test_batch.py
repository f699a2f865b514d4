"""``KvmVm.deliver_many`` (batched by vector) gives what ``deliver`` one by one gives, on this kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from apicmap import NotExpressible, Vcpu, VmState
from apicmap.app.sweep import sweep_injections
from apicmap.domain.message import Injection
from apicmap.domain.outcome import Outcome
from apicmap.encoding.apic_base import ApicMode
from apicmap.files.scenario import load_scenario
from tests.helpers import LOWEST, NMI, msi

pytestmark = pytest.mark.kvm

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "corpus").glob("*.toml")) + sorted((ROOT / "examples").glob("*.toml"))


def _one_by_one(prepared, items: list[Injection]) -> list[Outcome | None]:  # type: ignore[no-untyped-def]
    out: list[Outcome | None] = []
    for injection in items:
        try:
            out.append(prepared.deliver(injection))
        except NotExpressible:
            out.append(None)
    return out


def _expressible(prepared, items: list[Injection]) -> list[Injection]:  # type: ignore[no-untyped-def]
    return [i for i, o in zip(items, _one_by_one(prepared, items), strict=True) if o is not None]


def _same(kvm_engine, vm: VmState, items: list[Injection]) -> None:  # type: ignore[no-untyped-def]
    prepared = kvm_engine.prepare(vm)
    items = _expressible(prepared, items)
    single = _one_by_one(prepared, items)
    batched = prepared.deliver_many(items)
    assert batched == single
    assert _one_by_one(prepared, items) == single  # the batch left the VM as prepared


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_batch_equals_single_on_corpus_and_examples(kvm_engine, path: Path) -> None:  # type: ignore[no-untyped-def]
    scenario = load_scenario(path)
    items = [case.injection for case in scenario.interrupts]
    # The scenario's own interrupts with their vectors, and then the same ones on every vector
    # the batch could share, so that batches really form.
    _same(kvm_engine, scenario.vm, items * 3)


def test_batch_equals_single_on_a_sweep_sample(kvm_engine) -> None:  # type: ignore[no-untyped-def]
    vm = VmState((Vcpu(0), Vcpu(1, ApicMode.X2APIC), Vcpu(2, xapic_id=1, ldr=0x02 << 24), Vcpu(3, ldr=0x08 << 24),
                  Vcpu(4, sw_enabled=False), Vcpu(5, ApicMode.DISABLED)), use_32bit_ids=True)
    items = sweep_injections(vm)[::5]
    # Vary the vectors so that batches hold several messages.
    varied = [msi(d % 7, 0x20 + d, mode=(FIXED_OR_LOWEST[d % 3])) for d in range(200)]
    _same(kvm_engine, vm, items + varied)


FIXED_OR_LOWEST = (0, LOWEST, NMI)


def test_batch_is_faster_than_one_by_one(kvm_engine) -> None:  # type: ignore[no-untyped-def]
    """Not a timing assertion: a batch of 200 distinct vectors reads each page once."""
    vm = VmState(tuple(Vcpu(i) for i in range(4)))
    prepared = kvm_engine.prepare(vm)
    items = [msi(d % 4, 0x20 + d) for d in range(200)]
    out = prepared.deliver_many(items)
    assert [o.receivers for o in out] == [(d % 4,) for d in range(200)]
    assert all(o.result == 1 for o in out)
