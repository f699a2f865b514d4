"""The qemu tests boot real QEMU (TCG). They are skipped, with the reason, only where
qemu-system-x86_64 or gcc is missing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apicmap.qemu import QemuEngine, find_qemu
from apicmap.qemu.build import find_gcc
from tests.helpers import skip_unless_ci


def _missing() -> str | None:
    if find_qemu() is None:
        return "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
    if find_gcc() is None:
        return "gcc not found (apt-get install gcc)"
    return None


@pytest.fixture(scope="session")
def qemu_engine() -> Iterator[QemuEngine]:
    missing = _missing()
    if missing:
        skip_unless_ci(missing)
    yield QemuEngine()
