"""``--on KERNEL``: the command line runs the kvm engine inside a booted kernel, one boot per command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from apicmap.kernels import GuestKernel

ROOT = Path(__file__).resolve().parents[2]
PATCH = str(ROOT / "examples" / "aliased-xapic-id.toml")

pytestmark = pytest.mark.guest


def apicmap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "apicmap", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


@pytest.mark.parametrize(("kernel_fixture", "spec", "receivers"),
                         [("debian_6_1", "debian:6.1", [1]), ("debian_6_12", "debian:6.12", [1, 2])])
def test_run_on_a_booted_kernel(kernel_fixture: str, spec: str, receivers: list[int],
                                request: pytest.FixtureRequest) -> None:
    kernel: GuestKernel = request.getfixturevalue(kernel_fixture)  # fetched (or skipped) once per session
    proc = apicmap("run", PATCH, "--engine", "kvm", "--on", spec, "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["on"]["release"].startswith(kernel.release.split("-")[0].rsplit(".", 1)[0])
    aliased = payload["interrupts"][0]
    assert aliased["receivers"] == receivers and aliased["return"] == len(receivers)


def test_check_and_conformance_follow_the_guest_release(debian_6_1: GuestKernel) -> None:
    check = apicmap("check", PATCH, "--on", "debian:6.1", "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["on"]["release"].startswith("6.1.") and report["kernel"]["asked"] == report["on"]["release"]
    assert all(not row["differs"] for row in report["interrupts"])
    conformance = apicmap("conformance", str(ROOT / "examples"), "--on", "debian:6.1")
    assert conformance.returncode == 0, conformance.stdout[-2000:]
    assert "kvm: Linux 6.1." in conformance.stdout and " 0 failed" in conformance.stdout


def test_on_needs_the_kvm_engine() -> None:
    proc = apicmap("run", PATCH, "--engine", "model", "--on", "debian:6.1")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "--on" in proc.stderr
