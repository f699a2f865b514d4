"""Every ``PeerPolicy`` rule field is read by the engine: two rows that differ only in that field
give different outcomes on some scenario of a small corpus."""

from __future__ import annotations

import enum
from dataclasses import replace

import pytest

from apicmap.domain.message import Injection, MsiInjection
from apicmap.domain.outcome import Outcome
from apicmap.domain.vm import Vcpu, VmState
from apicmap.errors import NotExpressible
from apicmap.profiles.engine import ProfileEngine
from apicmap.profiles.policy import PROFILES, RULE_FIELDS, PeerPolicy
from tests.helpers import LOWEST, SIPI, SMI, msi, x2icr
from tests.profiles.common import ALIASED, X2, XA, cluster_vm, flat_vm, rte, x2apic_vm, xapic_vm

CORPUS: list[tuple[VmState, Injection]] = [
    (ALIASED, msi(1)),
    (VmState((Vcpu(0), Vcpu(5, xapic_id=3))), msi(3)),
    (VmState((Vcpu(0, ldr=1 << 24), Vcpu(2, ldr=2 << 24))), msi(3, logical=True)),
    (VmState((Vcpu(0, X2), Vcpu(1, XA), Vcpu(0x101, XA, xapic_id=2))), x2icr(0, 0x101)),
    (VmState((Vcpu(0, X2), Vcpu(1, XA, ldr=1 << 24))), x2icr(0, 0x10001, logical=True)),
    (x2apic_vm((0, 1, 2, 3)), x2icr(0, 2)),
    (VmState((Vcpu(0, X2), Vcpu(1, XA), Vcpu(2, XA))), x2icr(0, 0xFFFFFFFF)),
    (VmState((Vcpu(0, X2), Vcpu(1, XA), Vcpu(2, XA))), msi(0xFF)),
    (x2apic_vm((0, 1, 2)), x2icr(0, 0x1FF)),
    (VmState((Vcpu(0), Vcpu(1), Vcpu(255))), msi(0xFF)),
    (cluster_vm(), msi(0xFF, logical=True)),
    (cluster_vm(), msi(0xF1, logical=True)),
    (cluster_vm(), msi(0x13, logical=True)),
    (VmState((Vcpu(0, X2), Vcpu(1, ldr=0x08 << 24), Vcpu(2, ldr=0x10 << 24))), msi(0x18, logical=True)),
    (VmState((Vcpu(0, ldr=1 << 24, dfr=0x5FFFFFFF), Vcpu(1, ldr=2 << 24))), msi(3, logical=True)),
    (flat_vm((0, 0, 0)), msi(0x7, mode=LOWEST, logical=True)),
    (flat_vm((0x20, 0x00, 0x10)), msi(0x7, mode=LOWEST, logical=True)),
    (VmState((Vcpu(0, ldr=1 << 24, sw_enabled=False), Vcpu(1, ldr=2 << 24))), msi(0x3, mode=LOWEST, logical=True)),
    (xapic_vm(2), msi(1, mode=LOWEST)),
    (x2apic_vm((0, 1)), x2icr(0, 1, mode=LOWEST)),
    (VmState(tuple(Vcpu(i, ldr=(1 << i) << 24) for i in range(4))), msi(0x0F, logical=True, rh=True)),
    (VmState((Vcpu(0, ldr=1 << 24), Vcpu(1, ldr=2 << 24), Vcpu(3, xapic_id=3))), msi(0x3, logical=True)),
    (VmState((Vcpu(0, X2), Vcpu(0x101, X2))), MsiInjection(0xFEE01000 | 1 << 5, 0, 0x4040)),
    (VmState((Vcpu(0, X2), Vcpu(0x101, X2))), MsiInjection(0xFEE01000, 0x100, 0x4040)),
    (VmState((Vcpu(0), Vcpu(1, sw_enabled=False))), msi(1)),
    (x2apic_vm((0, 1)), x2icr(0, 1, level_trigger=True, level=False)),
    (x2apic_vm((0, 1)), x2icr(0, 1, level_trigger=True)),
    (xapic_vm(2), msi(1, 0, mode=SMI)),
    (xapic_vm(2), msi(1, 0x05)),
    (xapic_vm(2), msi(1, 0x30, mode=SIPI)),
    (VmState((Vcpu(0), Vcpu(1, xapic_id=0))), x2icr(1, 0, shorthand=1)),
    (VmState((Vcpu(0, X2), Vcpu(1, xapic_id=0))), x2icr(0, 0, shorthand=3)),
    (xapic_vm(3), rte(0xFF)),
]


def _answer(policy: PeerPolicy, vm: VmState, injection: Injection) -> object:
    try:
        with ProfileEngine(policy).prepare(vm) as prepared:
            out: Outcome = prepared.deliver(injection)
    except NotExpressible:
        return "not expressible"
    return out.receivers, out.undefined, out.rejected is None, frozenset(out.effects)


def _values(value: object) -> list[object]:
    if isinstance(value, bool):
        return [not value]
    assert isinstance(value, enum.Enum)
    return [v for v in type(value) if v is not value]


ROWS = [row for rows in PROFILES.values() for row in rows if isinstance(row, PeerPolicy)]


@pytest.mark.parametrize("name", RULE_FIELDS)
def test_every_field_changes_some_outcome(name: str) -> None:
    for base in ROWS:
        for value in _values(getattr(base, name)):
            other = replace(base, **{name: value})
            for vm, injection in CORPUS:
                if _answer(base, vm, injection) != _answer(other, vm, injection):
                    return
    pytest.fail(f"no two rows differing only in {name} answer differently on the corpus")


def test_rule_fields_are_exactly_the_routing_fields() -> None:
    identity = {"name", "version", "since", "summary", "sources"}
    assert set(RULE_FIELDS) == set(PeerPolicy.__dataclass_fields__) - identity
