"""The apicmap command: output contracts and exit statuses (issue #2 item 8, issue #3 item 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATCH = str(ROOT / "examples" / "aliased-xapic-id.toml")


def apicmap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "apicmap", *args], capture_output=True, text=True, cwd=ROOT)


def test_run_json_contract() -> None:
    proc = apicmap("run", PATCH, "--engine", "model", "--json")
    assert proc.returncode == 0
    payload = json.loads(proc.stdout)
    first = payload["interrupts"][0]
    assert first["receivers"] == [1, 2] and first["return"] == 2
    assert first["explanation"]["path"].startswith("slow path") and "aliased" in first["explanation"]["map"]
    assert payload["kernel"]["variant"] == "K6.16"  # the newest row


def test_run_kernel_option_selects_the_variant() -> None:
    proc = apicmap("run", PATCH, "--kernel", "6.2", "--json")
    payload = json.loads(proc.stdout)
    assert payload["interrupts"][0]["receivers"] == [1]
    assert payload["interrupts"][0]["check"] == "n/a"  # the file's expectations are for the newest KVM
    assert apicmap("run", PATCH, "--kernel", "banana").returncode == 2


def test_failed_expect_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "wrong.toml"
    bad.write_text('[vm]\nvcpus = 2\n[[interrupt]]\ndest = 1\nvector = 0x40\nexpect = [0]\n')
    proc = apicmap("run", str(bad))
    assert proc.returncode == 1 and "FAIL" in proc.stdout


def test_explain_lists_every_engine_and_vcpu() -> None:
    proc = apicmap("explain", PATCH, "--engines", "arch,model", "--json")
    payload = json.loads(proc.stdout)
    assert set(payload["engines"]) == {"arch", "model"}
    reasons = payload["engines"]["model"][0]["explanation"]["reasons"]
    assert set(reasons) == {"0", "1", "2"}


def test_map_json_reports_null_and_inhibits() -> None:
    payload = json.loads(apicmap("map", PATCH, "--json").stdout)
    amap = payload["maps"][0]
    assert amap["map"] == "NULL" and "PHYSICAL_ID_ALIASED" in amap["inhibits"]
    legacy = json.loads(apicmap("map", PATCH, "--kernel", "5.10", "--json").stdout)["maps"][0]
    assert legacy["map"] == "present" and legacy["phys_map"]["0x1"] == 1


def test_decode_msi_and_errors() -> None:
    proc = apicmap("decode", "msi", "0xFEE01000", "0x4040", "--json")
    rows = {r["field"]: r["value"] for r in json.loads(proc.stdout)}
    assert rows["address.dest"] == 1 and rows["data.vector"] == 0x40
    bad = apicmap("decode", "msi", "0xFEE01000")
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and "msi ADDRESS DATA" in bad.stderr
    assert apicmap("decode", "icr", "zz").returncode == 2


@pytest.mark.kvm
def test_check_side_by_side_and_exit_status(tmp_path: Path) -> None:
    proc = apicmap("check", PATCH, "--json")
    payload = json.loads(proc.stdout)
    assert proc.returncode == 0 and payload["ok"]
    row = payload["interrupts"][0]
    assert row["arch"]["receivers"] == row["model"]["receivers"] == row["kvm"]["receivers"] == [1, 2]
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[vm]\nvcpus = 2\n[[interrupt]]\ndest = 1\nvector = 0x40\nexpect = [0]\n')
    assert apicmap("check", str(wrong)).returncode == 1


@pytest.mark.kvm
def test_run_on_kvm_and_host() -> None:
    payload = json.loads(apicmap("run", PATCH, "--engine", "kvm", "--json").stdout)
    assert payload["interrupts"][0]["receivers"] == [1, 2] and payload["interrupts"][0]["return"] == 2
    host = json.loads(apicmap("host", "--json").stdout)
    assert host["engine_can_run"] is True and host["x2apic_api"] == "0xf"


def test_kvm_unavailable_is_one_line(tmp_path: Path) -> None:
    """Where /dev/kvm cannot be opened the kvm engine fails with one line; the rest works."""
    from apicmap.kvm.host import kvm_available

    ok, why = kvm_available(str(tmp_path / "no-kvm"))
    assert not ok and "does not exist" in why and "\n" not in why
