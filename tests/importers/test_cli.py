"""``apicmap import`` as a command (run through ``apicmap.importers.cli.main``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apicmap.files.scenario import load_scenario
from apicmap.importers.cli import main

from .test_linux_guest import cpuinfo_ids

DATA = Path(__file__).parent / "data"


def test_linux_guest_with_irqs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "guest.toml"
    code = main(["linux-guest", str(DATA / "linux-guest-6.1"), "--x2apic-api", "none",
                 "--linux-apic-driver", "flat", "--irqs", "-o", str(out)])
    assert code == 0
    scenario = load_scenario(out)
    assert scenario.vm.vcpu_ids == tuple(a for _, a in cpuinfo_ids(DATA / "linux-guest-6.1" / "proc" / "cpuinfo"))
    assert scenario.interrupts and all(c.expect for c in scenario.interrupts)
    err = capsys.readouterr().err
    assert "imported 4 vCPUs" in err and "not in the source: vector_hashing" in err
    assert "# not in the source: KVM's default" in out.read_text()


def test_qemu_text_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["qemu-info-lapic", str(DATA / "qemu-7.2-tcg-2s3c" / "info-lapic.txt"), "--apic-mode", "xapic",
                 "--x2apic-api", "none", "--topology", "sockets=2,cores=3", "--vector-hashing", "--no-smm"])
    assert code == 0
    text = capsys.readouterr().out
    assert "vcpu_id = 6" in text and "x86_apicid_from_cpu_idx(5)" in text


def test_errors_are_one_line_with_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["qemu-info-lapic", str(DATA / "qemu-7.2-tcg-smp4" / "info-lapic.txt"), "--apic-mode", "xapic",
                 "--x2apic-api", "none"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("apicmap: error: option apic_ids:")
    assert main(["kvm-lapic", str(tmp_path)]) == 2
    assert "no vcpu<ID>.lapic files" in capsys.readouterr().err
    assert main(["crosvm", str(DATA / "crosvm-4vcpu"), "--x2apic-api", "bogus"]) == 2
    assert "--x2apic-api: bad value 'bogus'" in capsys.readouterr().err
