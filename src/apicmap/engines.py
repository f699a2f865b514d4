"""Build an engine by name: the one place that knows every engine."""

from __future__ import annotations

from apicmap.domain.engine import ENGINE_NAMES, Engine


def make_engine(name: str, kernel: str | None = None) -> Engine:
    """Build an engine by name. ``kernel`` picks the KVM release the model follows."""
    from apicmap.errors import InputError, echo

    if name == "arch":
        from apicmap.arch.engine import ArchEngine

        return ArchEngine()
    if name == "model":
        from apicmap.model.engine import ModelEngine
        from apicmap.model.policy import policy_for_release

        return ModelEngine(policy_for_release(kernel))
    if name == "kvm":
        from apicmap.kvm.engine import KvmEngine

        return KvmEngine()
    if name == "qemu":
        from apicmap.qemu.engine import QemuEngine

        return QemuEngine()
    raise InputError("--engine", f"unknown engine {echo(name)}", ", ".join(ENGINE_NAMES))
