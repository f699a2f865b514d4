"""Encoders for tests, written with plain arithmetic so tests do not lean on the code under test."""

from __future__ import annotations

import subprocess
from typing import NoReturn

from apicmap import IcrInjection, MsiInjection

FIXED, LOWEST, SMI, REMRD, NMI, INIT, SIPI, EXTINT = range(8)


def msi(dest: int, vector: int = 0x40, *, mode: int = FIXED, logical: bool = False, rh: bool = False,
        level_trigger: bool = False, hi: int | None = None) -> MsiInjection:
    lo = 0xFEE00000 | (dest & 0xFF) << 12 | int(rh) << 3 | int(logical) << 2
    data = vector | mode << 8 | 1 << 14 | int(level_trigger) << 15
    return MsiInjection(lo, (dest & 0xFFFFFF00) if hi is None else hi, data)


def x2icr(source: int, dest: int, vector: int = 0x40, *, mode: int = FIXED, logical: bool = False,
          shorthand: int = 0, level: bool = True, level_trigger: bool = False) -> IcrInjection:
    low = (vector | mode << 8 | int(logical) << 11 | int(level) << 14 | int(level_trigger) << 15
           | shorthand << 18)
    return IcrInjection(source, dest << 32 | low)


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip, with the reason, where a system tool the test needs is missing; in CI (``CI`` set, as
    the project's CI runs ``.ci/run``) those tools are installed by ``tools/test.py``, so a missing
    one is a failure, never a silent skip."""
    import os

    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI: the test command installs what these tests need)")
    pytest.skip(reason)


def fetch_kernel_or_skip(text: str) -> object:
    """A Debian kernel from the cache (fetched with apt on first use), for tests that boot it: skipped,
    with the reason, only where QEMU is missing or apt cannot download it (never in CI)."""
    from apicmap.kernels import KernelFetchError, QemuMissing, fetch, parse_spec
    from apicmap.kernels.launcher import find_qemu

    try:
        find_qemu()
        return fetch(parse_spec(text))
    except (QemuMissing, KernelFetchError) as err:
        skip_unless_ci(f"cannot run {text}: {err}")


def redis_server_or_skip(directory: object) -> tuple[subprocess.Popen[bytes], str]:
    """A private redis-server on a free loopback port (the Debian package); (process, URL).
    The caller terminates the process."""
    import shutil
    import socket
    import time

    binary = shutil.which("redis-server")
    if binary is None:
        skip_unless_ci("redis-server is not installed (Debian package redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                "no", "--dir", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start listening within 10 s")
