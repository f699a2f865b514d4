"""Fixtures for the real-kernel tests: one booted guest per kernel for the whole test session.

Tests marked ``guest`` boot Debian kernels under QEMU. They are skipped, with the reason, only
when QEMU is not installed or apt cannot download the kernel; any other failure fails them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apicmap.kernels import GuestKernel, GuestSession
from tests.helpers import fetch_kernel_or_skip


def _fetch_or_skip(text: str) -> GuestKernel:
    kernel = fetch_kernel_or_skip(text)
    assert isinstance(kernel, GuestKernel)
    return kernel


def _boot(kernel: GuestKernel, log_dir: object) -> Iterator[GuestSession]:
    from pathlib import Path

    session = GuestSession(kernel, log_dir=Path(str(log_dir)))
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="session")
def debian_6_1() -> GuestKernel:
    return _fetch_or_skip("debian:6.1")


@pytest.fixture(scope="session")
def debian_6_12() -> GuestKernel:
    return _fetch_or_skip("debian:6.12")


@pytest.fixture(scope="session")
def guest_6_1(debian_6_1: GuestKernel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestSession]:
    yield from _boot(debian_6_1, tmp_path_factory.mktemp("guest-6.1"))


@pytest.fixture(scope="session")
def guest_6_12(debian_6_12: GuestKernel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestSession]:
    yield from _boot(debian_6_12, tmp_path_factory.mktemp("guest-6.12"))
