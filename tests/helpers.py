"""Encoders for tests, written with plain arithmetic so tests do not lean on the code under test."""

from __future__ import annotations

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
