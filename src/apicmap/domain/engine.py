"""The engine interface shared by ``arch``, ``model`` and ``kvm``.

An engine prepares a VM state once (the model builds KVM's optimized map; the kvm engine
creates and configures a real VM), then delivers injections against that state. Every
delivery is judged against the state as prepared: engines never let one injection's effects
leak into the next.
"""

from __future__ import annotations

from typing import Protocol

from apicmap.domain.message import Injection
from apicmap.domain.outcome import Outcome
from apicmap.domain.vm import VmState

ENGINE_NAMES = ("arch", "model", "kvm")


class PreparedVm(Protocol):
    def deliver(self, injection: Injection, *, explain: bool = False) -> Outcome:
        """Deliver one injection and report who accepted it."""
        ...

    def close(self) -> None:
        """Release resources (file descriptors for the kvm engine)."""
        ...


class Engine(Protocol):
    name: str

    def prepare(self, vm: VmState) -> PreparedVm: ...


def deliver_once(engine: Engine, vm: VmState, injection: Injection, *, explain: bool = False) -> Outcome:
    prepared = engine.prepare(vm)
    try:
        return prepared.deliver(injection, explain=explain)
    finally:
        prepared.close()
