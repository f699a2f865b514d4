"""The apicmap command: output contracts and exit statuses (the project's history, the project's history)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from apicmap.model.policy import NEWEST

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


# --- the reworked CLI -------------------------------------------------------------------------------


def test_version_and_help_show_defaults() -> None:
    from apicmap import __version__

    assert apicmap("--version").stdout.strip() == f"apicmap {__version__}"
    nothing = apicmap()
    assert nothing.returncode == 2 and "(allowed: run, explain, map, decode, check" in nothing.stderr
    for command in ("run", "explain", "map", "decode", "check", "fuzz", "conformance", "bench", "host"):
        proc = apicmap(command, "--help")
        assert proc.returncode == 0, command
        assert "None" not in proc.stdout and "False" not in proc.stdout, command
    assert "(default: 60.0)" in apicmap("fuzz", "--help").stdout
    assert "(default: arch,model,kvm)" in " ".join(apicmap("explain", "--help").stdout.split())


def test_every_option_has_help() -> None:
    import argparse

    from apicmap.app.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_commands_are_modules_with_register() -> None:
    from apicmap.app import cli

    for module in cli.COMMANDS:
        assert callable(module.register) and callable(module.handle), module.__name__


def test_bad_arguments_are_one_line_naming_the_option() -> None:
    for args, option in ((("run", PATCH, "--kernel", "banana"), "--kernel"),
                         (("run", PATCH, "--engine", "nope"), "--engine"),
                         (("explain", PATCH, "--engines", "arch,nope"), "--engines"),
                         (("check", PATCH, "--engines", "qemu"), "--engines"),
                         (("fuzz", "--tracking"), "--tracking"),
                         (("fuzz", "--time", "-3"), "--time"),
                         (("run", PATCH, "--engine", "arch", "--kernel", "6.2"), "--kernel"),
                         (("map", PATCH, "--all-kernels", "--svg", "x.svg"), "--svg"),
                         (("explain", PATCH, "--interrupt", "9"), "--interrupt"),
                         (("explain", PATCH, "--vcpu", "x"), "--vcpu"),
                         (("explain", PATCH, "--vcpu", "7-9"), "--vcpu")):
        proc = apicmap(*args)
        assert proc.returncode == 2, args
        assert len(proc.stderr.splitlines()) == 1 and option in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "usage:" not in proc.stderr
        assert "allowed" in proc.stderr or "invalid choice" in proc.stderr, proc.stderr


def test_kernel_choice_is_reported_and_warned_past_the_newest() -> None:
    proc = apicmap("run", PATCH, "--kernel", "7.5", "--json")
    kernel = json.loads(proc.stdout)["kernel"]
    assert kernel["asked"] == "7.5" and kernel["variant"] == NEWEST.key and "newer" in kernel["warning"]
    assert f"variant {NEWEST.key}" in proc.stderr and "warning" in proc.stderr
    quiet = apicmap("run", PATCH, "--kernel", "6.2")
    assert "variant K6.2" in quiet.stderr and "warning" not in quiet.stderr
    explain = json.loads(apicmap("explain", PATCH, "--engines", "model", "--kernel", "5.10", "--json").stdout)
    assert explain["kernel"]["variant"] == "K5.3"


def test_run_several_files_and_stdin() -> None:
    flat = str(ROOT / "examples" / "logical-flat.toml")
    one = json.loads(apicmap("run", PATCH, "--json").stdout)
    assert isinstance(one, dict)
    many = json.loads(apicmap("run", PATCH, flat, "--json").stdout)
    assert [p["scenario"] for p in many] == [PATCH, flat]
    assert many[0]["interrupts"] == one["interrupts"]
    text = Path(PATCH).read_text()
    piped = subprocess.run([sys.executable, "-m", "apicmap", "run", "-", "--json"], input=text,
                           capture_output=True, text=True, cwd=ROOT)
    assert json.loads(piped.stdout)["interrupts"][0]["receivers"] == [1, 2]
    twice = apicmap("run", "-", "-")
    assert twice.returncode == 2 and "stdin" in twice.stderr


def test_check_and_conformance_take_kernel_and_engines() -> None:
    proc = apicmap("check", PATCH, "--engines", "arch,model", "--kernel", "6.2", "--json")
    payload = json.loads(proc.stdout)
    assert payload["kernel"]["variant"] == "K6.2" and payload["kvm_skipped"]
    assert payload["interrupts"][0]["model"]["receivers"] == [1]
    text = apicmap("check", PATCH, "--engines", "model")
    assert "legend:" in text.stdout and "EXPECT-FAIL" in text.stdout and "| arch |" not in text.stdout
    conf = apicmap("conformance", PATCH, "--engines", "model", "--json")
    summary = json.loads(conf.stdout)
    assert conf.returncode == 0 and summary["passed"] == 3 and summary["failed"] == 0


def test_output_paths_are_checked_before_the_work(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "out.xml"
    for args in (("conformance", PATCH, "--junit", str(missing)), ("map", PATCH, "--svg", str(missing)),
                 ("explain", PATCH, "--svg", str(tmp_path))):
        proc = apicmap(*args)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, (args, proc.stderr)
        assert proc.stdout == ""  # nothing ran
    tap = tmp_path / "out.tap"
    assert apicmap("conformance", PATCH, "--engines", "arch,model", "--tap", str(tap)).returncode == 0
    assert tap.read_text().startswith("TAP version 13")
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no leftovers


def test_large_vm_output_is_compact(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text("[vm]\nvcpus = 1024\nx2apic_api = [\"use_32bit_ids\"]\nmode = \"x2apic\"\n"
                   "[[interrupt]]\ndest = 0xffffffff\nvector = 0x40\n")
    proc = apicmap("explain", str(big), "--engines", "arch")  # the architecture: a broadcast
    assert "receivers {0-1023}" in proc.stdout
    model = apicmap("explain", str(big), "--engines", "model")
    # every vCPU has the same reason (0xffffffff is no broadcast for an MSI): one line for all of them
    assert "vCPU 0-1023: not targeted: destination 0xffffffff > max_apic_id 0x3ff" in model.stdout
    assert len(model.stdout.splitlines()) < 12
    only = apicmap("explain", str(big), "--engines", "arch", "--vcpu", "5,7-8,10")
    reasons = [line for line in only.stdout.splitlines() if line.strip().startswith("vCPU")]
    assert [line.split(":")[0].split()[-1] for line in reasons] == ["5", "7-8", "10"]  # runs of one reason merge
    assert "1020 other vCPUs not shown" in only.stdout
    assert len(only.stdout.splitlines()) < 20
    run = apicmap("run", str(big))
    assert all(line == line.rstrip() for line in run.stdout.splitlines())
    assert "None" not in run.stdout and "True" not in run.stdout


def test_explain_only_receivers_json() -> None:
    payload = json.loads(apicmap("explain", PATCH, "--engines", "model", "--only", "receivers",
                                 "--interrupt", "3", "--json").stdout)
    [item] = payload["engines"]["model"]
    assert item["index"] == 3 and set(item["explanation"]["reasons"]) == {"0"}


def test_host_names_apicv_and_flags() -> None:
    payload = json.loads(apicmap("host", "--json").stdout)
    assert "apicv" in payload and set(payload["apicv"]) == {"parameter", "value", "enabled", "note"}
    text = apicmap("host").stdout
    assert "apicv / avic" in text and "None" not in text and "True" not in text


def test_all_kernels_explanations_are_words() -> None:
    """``explain --all-kernels`` renders each reason (apicmap.explain.render), never a Python repr."""
    out = apicmap("explain", PATCH, "--all-kernels").stdout
    assert "path: fast path: physical" in out
    assert "Reason(" not in out and "<Code." not in out


def test_conformance_json_lists_failures(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[vm]\nvcpus = 2\n[[interrupt]]\ndest = 1\nvector = 0x40\nexpect = [0]\n')
    proc = apicmap("conformance", str(wrong), "--engines", "arch,model", "--json")
    assert proc.returncode == 1 and not proc.stderr
    assert json.loads(proc.stdout)["failures"][0]["engine"] == "model"


@pytest.mark.parametrize("flags", [("--against", "arch"), ("--stateful",), ("--jobs", "2"), ("--profiles", "kvm,qemu")])
def test_fuzz_on_is_one_campaign_against_kvm(flags: tuple[str, ...]) -> None:
    proc = apicmap("fuzz", "--on", "debian:6.1", "--time", "1", *flags)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("apicmap: error: ")


def test_check_shows_qemu_without_judging_it_by_kvm_expectations() -> None:
    """``expect`` describes KVM; QEMU's TCG (vCPU 1 only, here) is a column, not a verdict. A VM QEMU cannot
    number (vCPU ids 1 and 256) makes each interrupt not expressible, not the command fail."""
    from apicmap.qemu import find_qemu
    from apicmap.qemu.build import find_gcc

    if find_qemu() is None or find_gcc() is None:
        pytest.skip("qemu-system-x86_64 or gcc not found")
    proc = apicmap("check", PATCH, "--engines", "arch,model,qemu", "--json")
    payload = json.loads(proc.stdout)
    assert proc.returncode == 0 and payload["ok"] and payload["interrupts"][0]["qemu"]["receivers"] == [1]
    vcpu256 = str(ROOT / "examples" / "vcpu256-xapic.toml")
    other = json.loads(apicmap("check", vcpu256, "--engines", "model,qemu", "--json").stdout)
    assert all(case["qemu"]["not_expressible"] for case in other["interrupts"])


def test_check_reads_a_sequence_from_stdin() -> None:
    sequence = ('[[step]]\nop = "create_vcpu"\nvcpu_id = 0\n[[step]]\nop = "create_vcpu"\nvcpu_id = 1\n'
                '[[step]]\nop = "signal_msi"\nmsi = { address = 0xFEE01000, data = 0x40 }\n')
    proc = subprocess.run([sys.executable, "-m", "apicmap", "check", "-", "--json"], input=sequence,
                          capture_output=True, text=True, cwd=ROOT)
    payload = json.loads(proc.stdout)
    assert payload["sequence"] == "<stdin>" and [r["step"] for r in payload["signals"]] == [3]
    flagged = subprocess.run([sys.executable, "-m", "apicmap", "check", "-", "--kernel", "6.2"], input=sequence,
                             capture_output=True, text=True, cwd=ROOT)
    assert flagged.returncode == 2 and "does not apply to a sequence file" in flagged.stderr
