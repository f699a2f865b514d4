"""``apicmap decode``: register values are unsigned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from apicmap import InputError
from apicmap.app.decode_command import describe, parse_values

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("texts", [["-1", "0x40"], ["0xFEE00000", "-0x40"]])
def test_negative_values_are_refused(texts: list[str]) -> None:
    with pytest.raises(InputError, match="negative"):
        parse_values("msi", texts)
    with pytest.raises(InputError, match="unsigned"):
        describe("msi", [int(t, 0) for t in texts])


def test_cli_negative_value_exits_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "apicmap", "decode", "msi", "-1", "0x40"], capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1


def test_values_parse() -> None:
    assert parse_values("msi", ["0xFEE0_1000", "16"]) == [0xFEE01000, 16]
