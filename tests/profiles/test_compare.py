"""``run_compare``: the table, the rules behind each difference, and --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apicmap.app.compare import compare_scenario, run_compare
from apicmap.errors import InputError
from apicmap.files.scenario import load_scenario

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ALIASED = str(EXAMPLES / "aliased-xapic-id.toml")


def test_all_profiles_on_the_aliased_example_show_the_four_answers(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_compare([ALIASED], profiles=["all"], kernel=None, json=False) == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if line.startswith("#"))
    row = next(line for line in text.splitlines() if line.startswith("1 |"))
    cells = dict(zip([h.strip() for h in header.split("|")], [c.strip() for c in row.split("|")], strict=True))
    assert cells["kvm"] == cells["qemu"] == cells["xen"] == "{1, 2}"  # all receive
    assert cells["bochs"] == cells["qemu@7.2"] == "{1}* (first match)"  # first only
    impossible = "{1}* (aliasing impossible)"
    assert cells["crosvm"] == cells["virtualbox"] == cells["bhyve"] == cells["openvmm"] == impossible
    assert cells["hyperv"] == "undefined {1, 2}*"  # undefined
    assert "#1 bochs {1}: physical_aliasing=first" in text
    assert "#1 crosvm {1}: physical_aliasing=impossible" in text
    assert "#1 hyperv undefined {1, 2}: physical_aliasing=undefined" in text
    assert "#1 qemu@7.2 {1}: physical_aliasing=first_slot_then_scan" in text
    assert "#3" not in text.split("why the marked answers differ:")[1]  # the unaliased ID: everyone agrees


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    run_compare([ALIASED], profiles=["kvm,bochs,crosvm,hyperv"], kernel="6.2", json=True)
    data = json.loads(capsys.readouterr().out)
    assert data["profiles"] == ["kvm", "bochs", "crosvm", "hyperv"]
    first = data["interrupts"][0]["profiles"]
    assert first["kvm"]["receivers"] == [1]  # KVM 6.2: first wins
    assert first["bochs"]["differs"] is False
    assert first["hyperv"]["undefined"] == [1, 2] and first["hyperv"]["rules"] == ["physical_aliasing=undefined"]
    assert "reasons" in first["crosvm"]["explanation"]


def test_rules_name_kvm_rules_and_peer_fields() -> None:
    scenario = load_scenario(str(EXAMPLES / "lowest-priority-hashing.toml"))
    rows = compare_scenario(scenario, ["qemu", "kvm", "virtualbox"], None)
    assert rows[0].rules["kvm"] == ["kvm:lowest priority"]
    assert rows[0].rules["virtualbox"] == ["lowest_priority=min_tpr_ties_highest"]
    assert rows[3].rules["kvm"] == ["kvm:lowest priority"]  # RH=1: one vCPU under KVM, all under QEMU
    assert "virtualbox" not in rows[3].rules


def test_rules_name_the_vmm_transform(tmp_path: Path) -> None:
    path = tmp_path / "ioapic.toml"
    path.write_text('[vm]\nvcpus = 4\n\n[[interrupt]]\nname = "IOAPIC pin to physical 0xFF"\nvia = "ioapic"\n'
                    'dest = 0xFF\nvector = 0x40\n')
    rows = compare_scenario(load_scenario(str(path)), ["qemu", "kvm", "cloud-hypervisor"], None)
    assert rows[0].cells[0].text() == rows[0].cells[1].text() == "{0, 1, 2, 3}"
    assert "vmm:ioapic=userspace_8bit_rh" in rows[0].rules["cloud-hypervisor"]


def test_not_expressible_columns(capsys: pytest.CaptureFixture[str]) -> None:
    run_compare([str(EXAMPLES / "broadcast-quirk.toml")], profiles=["kvm", "crosvm"], kernel=None, json=False)
    text = capsys.readouterr().out
    assert "n/a*" in text and "crosvm@f1e797a has no x2APIC" in text


def test_unknown_profile_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"^--profiles: unknown profile 'vmware' \(allowed: kvm"):
        run_compare([ALIASED], profiles=["kvm,vmware"], kernel=None, json=False)


def test_run_with_profile_checks_expectations_only_under_kvm() -> None:
    from apicmap.app.profile_run import run_with_profile
    from apicmap.app.runner import Check

    scenario = load_scenario(ALIASED)
    assert [r.check for r in run_with_profile(scenario, None)] == [Check.PASS] * 3
    bochs = run_with_profile(scenario, "bochs", explain=True)
    assert [r.outcome.receivers for r in bochs if r.outcome] == [(1,), (1,), (0,)]
    assert {r.check for r in bochs} == {Check.NOT_APPLICABLE}
    assert bochs[0].outcome is not None and bochs[0].outcome.explanation is not None
    assert len(bochs[0].outcome.explanation.reasons) == 3  # a reason per vCPU, for explain --profile
    crosvm = run_with_profile(load_scenario(str(EXAMPLES / "broadcast-quirk.toml")), "crosvm")
    assert crosvm[0].outcome is None and "has no x2APIC" in (crosvm[0].not_expressible or "")
