"""Shared test helpers. The apicmap pytest plugin (kvm fixtures) is loaded from its entry point
when the package is installed, or registered here when running from a source tree."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "guest: boots a real kernel under QEMU (skipped without QEMU or apt downloads)")
    manager = config.pluginmanager
    if not (manager.has_plugin("apicmap") or manager.has_plugin("apicmap.pytest_plugin")):
        manager.import_plugin("apicmap.pytest_plugin")
