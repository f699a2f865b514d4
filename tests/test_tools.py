"""tools/test.py's system-packages step: idempotent, and one line per package it could not install."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "test.py"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("apicmap_tools_test", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nothing_to_do_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _tool()
    monkeypatch.setattr(tool.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(tool.subprocess, "run", lambda *a, **k: pytest.fail("ran a command"))
    assert tool.install_system_packages() == []


def test_one_line_per_package_it_cannot_install(monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _tool()
    monkeypatch.setattr(tool.shutil, "which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None)
    monkeypatch.setattr(tool.os, "geteuid", lambda: 1000)
    lines = tool.install_system_packages({"chromium": "chromium", "qemu-system-x86": "qemu-system-x86_64"})
    assert len(lines) == 2 and all("not root" in line for line in lines)
    monkeypatch.setattr(tool.os, "geteuid", lambda: 0)
    calls: list[list[str]] = []

    def fake_run(args: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        return subprocess.CompletedProcess(args, 100, "", "E: Unable to locate package chromium")

    monkeypatch.setattr(tool.subprocess, "run", fake_run)
    [line] = tool.install_system_packages({"chromium": "chromium"})
    assert line.startswith("system package chromium: could not install (E: Unable to locate package chromium)")
    assert [c[:2] for c in calls] == [["apt-get", "install"], ["apt-get", "update"], ["apt-get", "install"]]
