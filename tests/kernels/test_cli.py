from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from apicmap import MsiInjection, Vcpu, VmState
from apicmap.kernels import GuestKernel
from apicmap.kernels.cli import add_kernels_command, add_on_option, kvm_engine_for, run_kernels_command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apicmap")
    sub = parser.add_subparsers(dest="command")
    add_kernels_command(sub)
    run = sub.add_parser("run")
    add_on_option(run)
    return parser


def test_list_json_names_cached_kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("APICMAP_CACHE", str(tmp_path))
    assert run_kernels_command(_parser().parse_args(["kernels", "list", "--json"])) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert run_kernels_command(_parser().parse_args(["kernels", "list"])) == 0
    assert "no cached kernels" in capsys.readouterr().out


def test_on_option_parses() -> None:
    args = _parser().parse_args(["run", "--on", "debian:6.1", "--boot-timeout", "60"])
    assert args.on == "debian:6.1" and args.boot_timeout == 60.0 and args.on_modules is None


@pytest.mark.guest
def test_fetch_cached_then_run_on_it(debian_6_1: GuestKernel, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_kernels_command(_parser().parse_args(["kernels", "fetch", "debian:6.1"])) == 0
    assert capsys.readouterr().out.split("\t")[0] == debian_6_1.release
    assert run_kernels_command(_parser().parse_args(["kernels", "list", "--json"])) == 0
    listed = {row["release"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed[debian_6_1.release]["vendor"] == "kvm_amd, kvm_intel" and listed[debian_6_1.release]["size_bytes"] > 0
    with kvm_engine_for(_parser().parse_args(["run", "--on", "debian:6.1"])) as engine:
        vm = VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1)))
        assert engine.name == "kvm"
        assert engine.prepare(vm).deliver(MsiInjection(0xFEE01000, 0, 0x40)).receivers == (1,)


@pytest.mark.guest
def test_fuzz_against_a_booted_kernel(debian_6_1: GuestKernel, tmp_path: Path) -> None:
    """``fuzz --against kvm --on debian:6.1``: one boot, the model follows the guest's release."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "apicmap", "fuzz", "--against", "kvm", "--on", "debian:6.1",
                           "--time", "10", "--out", str(tmp_path / "finds"), "--json"],
                          capture_output=True, text=True, cwd=root)
    assert proc.returncode in (0, 1), proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["pairs"] > 0 and payload["kernel"].startswith("6.1.")
