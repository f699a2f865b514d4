"""Resolving ``debian:X.Y`` on a machine whose apt lists are stale: refreshed once, as root."""

from __future__ import annotations

import importlib
import subprocess
from collections.abc import Sequence

import pytest

from apicmap.kernels import KernelFetchError
from apicmap.kernels.fetch import resolve_debian_series

fetch_module = importlib.import_module("apicmap.kernels.fetch")  # the package exports a function of that name


class _Apt:
    """apt-cache that knows the 6.12 packages only after apt-get update."""

    def __init__(self) -> None:
        self.updated = False
        self.calls: list[str] = []

    def __call__(self, command: Sequence[str], **_: object) -> subprocess.CompletedProcess[str]:
        self.calls.append(command[0] + " " + command[1])
        if command[:2] == ["apt-get", "update"]:
            self.updated = True
            return subprocess.CompletedProcess(command, 0, "", "")
        names = ("linux-image-6.12.118+deb12-amd64-unsigned linux-image-6.12.57+deb12-amd64-unsigned "
                 "linux-image-6.12.118+deb12-cloud-amd64-unsigned") if self.updated else ""
        return subprocess.CompletedProcess(command, 0, names, "")


def test_stale_lists_are_refreshed_once_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    apt = _Apt()
    monkeypatch.setattr(fetch_module.subprocess, "run", apt)
    monkeypatch.setattr(fetch_module.os, "geteuid", lambda: 0)
    assert resolve_debian_series("6.12") == "linux-image-6.12.118+deb12-amd64-unsigned"
    assert apt.calls == ["apt-cache pkgnames", "apt-get update", "apt-cache pkgnames"]


def test_without_root_the_error_says_to_update(monkeypatch: pytest.MonkeyPatch) -> None:
    apt = _Apt()
    monkeypatch.setattr(fetch_module.subprocess, "run", apt)
    monkeypatch.setattr(fetch_module.os, "geteuid", lambda: 1000)
    with pytest.raises(KernelFetchError, match="run apt-get update"):
        resolve_debian_series("6.12")
    assert apt.calls == ["apt-cache pkgnames"]
