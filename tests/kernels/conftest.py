"""Fixtures for the real-kernel tests: one booted guest per kernel for the whole test session.

Tests marked ``guest`` boot Debian kernels under QEMU. They are skipped, with the reason, only
when QEMU is not installed or apt cannot download the kernel; any other failure fails them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apicmap.kernels import GuestKernel, GuestSession, KernelFetchError, QemuMissing, fetch, parse_spec
from apicmap.kernels.launcher import find_qemu
from tests.helpers import skip_unless_ci


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "guest: boots a real kernel under QEMU (skipped without QEMU or apt downloads)")


def _fetch_or_skip(text: str) -> GuestKernel:
    try:
        find_qemu()
        return fetch(parse_spec(text))
    except (QemuMissing, KernelFetchError) as err:
        skip_unless_ci(f"cannot run {text}: {err}")


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
