"""Progress is drawn only on a terminal and never with --json; plain lines where rich is absent."""

from __future__ import annotations

import io
import sys

import pytest

from apicmap.app import progress as progress_module
from apicmap.app.progress import progress, shown, ticking


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_not_a_terminal_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with progress("x", total=3) as bar:
        bar.advance(status="a")
    with ticking("y", 0.1, lambda: "s"):
        pass
    assert err.getvalue() == "" and not shown()
    monkeypatch.setattr(sys, "stderr", _Tty())
    assert shown() and not shown(enabled=False)


def test_plain_line_without_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    err = _Tty()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(progress_module, "_rich_available", lambda: False)
    with progress("conformance", total=4) as bar:
        bar.advance(status="first.toml")
    text = err.getvalue()
    assert "conformance: 1/4 ( 25%)  first.toml" in text
    assert text.endswith("\r")  # the line is cleared at the end, nothing is left behind
