"""Compare every engine's answer for an original VM state and an imported one."""

from __future__ import annotations

from collections.abc import Sequence

from apicmap import Engine, Injection, KvmUnavailable, NotExpressible, VmState, make_engine

_ENGINES: dict[str, Engine] = {}


def engine(name: str) -> Engine:
    if name not in _ENGINES:
        _ENGINES[name] = make_engine(name)
    return _ENGINES[name]


def engines_here() -> tuple[str, ...]:
    """model and arch, and kvm where /dev/kvm is usable (the kvm-marked tests cover its absence)."""
    try:
        engine("kvm")
    except KvmUnavailable:
        return ("model", "arch")
    return ("model", "arch", "kvm")


def answers(name: str, vm: VmState, injections: Sequence[Injection]) -> list[object]:
    """Per injection: (receivers, return value, refusal, undefined), or the reason it is not expressible."""
    prepared = engine(name).prepare(vm)
    out: list[object] = []
    for injection in injections:
        try:
            o = prepared.deliver(injection)
        except NotExpressible as err:
            out.append(f"not expressible: {err}")
            continue
        out.append((o.receivers, o.result, o.rejected, o.undefined))
    return out
