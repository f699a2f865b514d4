"""pytest plugin: routing tests against the real kernel in a few lines.

Registered through the ``pytest11`` entry point, so installing apicmap makes it available::

    import pytest
    from apicmap.domain.vm import Vcpu, VmState
    from apicmap.domain.message import MsiInjection

    @pytest.mark.kvm
    def test_aliased_ids_reach_both(kvm_engine):
        vm = VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1)))
        outcome = kvm_engine.prepare(vm).deliver(MsiInjection(0xFEE01000, 0, 0x40))
        assert outcome.receivers == (1, 2)

Tests marked ``kvm`` (or using the ``kvm_engine`` fixture) are skipped, with the reason shown,
where /dev/kvm is absent or not accessible.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def _kvm_status() -> tuple[bool, str]:
    try:
        from apicmap.kvm.host import kvm_available
    except ImportError as err:  # pragma: no cover - only in a broken install
        return False, f"apicmap.kvm is not importable: {err}"
    return kvm_available()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kvm: needs a usable /dev/kvm (skipped with the reason otherwise)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("kvm") for item in items):
        return
    available, why = _kvm_status()
    if available:
        return
    skip = pytest.mark.skip(reason=f"/dev/kvm unavailable: {why}")
    for item in items:
        if item.get_closest_marker("kvm"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def kvm_engine() -> Iterator[Any]:
    """A session-wide ``KvmEngine`` (it reuses VMs between tests)."""
    available, why = _kvm_status()
    if not available:
        pytest.skip(f"/dev/kvm unavailable: {why}")
    from apicmap.kvm.engine import KvmEngine

    with KvmEngine() as engine:
        yield engine
