"""The engine interface shared by ``arch``, ``model``, ``kvm`` and ``qemu``.

An engine prepares a VM state once (the model builds KVM's optimized map; the kvm engine
creates and configures a real VM), then delivers injections against that state. Every
delivery is judged against the state as prepared: engines never let one injection's effects
leak into the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, Self

from apicmap.domain.message import Injection
from apicmap.domain.outcome import Outcome
from apicmap.domain.vm import VmState
from apicmap.errors import NotExpressible

ENGINE_NAMES = ("arch", "model", "kvm", "qemu")


class PreparedVm(Protocol):
    """A VM state an engine has prepared; deliveries are judged against it, one by one."""

    def deliver(self, injection: Injection, *, explain: bool = False) -> Outcome:
        """Deliver one injection and report who accepted it."""
        ...

    def deliver_many(self, injections: Sequence[Injection], *, explain: bool = False) -> list[Outcome]:
        """Deliver each injection independently (as ``deliver`` would), possibly in one batch."""
        ...

    def close(self) -> None:
        """Release resources (file descriptors for the kvm engine)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class Engine(Protocol):
    name: str

    def prepare(self, vm: VmState) -> PreparedVm: ...

    def close(self) -> None:
        """Release what the engine keeps between VMs (the kvm engine's reusable VMs)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class Closing:
    """``close()`` that does nothing, and ``with`` support that calls it: a base for engines."""

    __slots__ = ()

    def close(self) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PreparedBase(Closing):
    """A base for prepared VMs: ``deliver_many`` delivers one by one unless a subclass batches."""

    __slots__ = ()

    def deliver(self, injection: Injection, *, explain: bool = False) -> Outcome:
        raise NotImplementedError

    def deliver_many(self, injections: Sequence[Injection], *, explain: bool = False) -> list[Outcome]:
        return [self.deliver(i, explain=explain) for i in injections]


def deliver_each(prepared: PreparedVm, injections: Sequence[Injection], *,
                 explain: bool = False) -> list[Outcome | NotExpressible]:
    """Each injection's outcome, or the ``NotExpressible`` it raised: one batch (one round trip to a
    booted kernel, one QEMU boot) when every injection is expressible, one by one otherwise, so that
    each one the engine cannot express is reported alone."""
    try:
        return list(prepared.deliver_many(injections, explain=explain))
    except NotExpressible:
        pass
    found: list[Outcome | NotExpressible] = []
    for injection in injections:
        try:
            found.append(prepared.deliver(injection, explain=explain))
        except NotExpressible as err:
            found.append(err)
    return found


def deliver_once(engine: Engine, vm: VmState, injection: Injection, *, explain: bool = False) -> Outcome:
    with engine.prepare(vm) as prepared:
        return prepared.deliver(injection, explain=explain)
