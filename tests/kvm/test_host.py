"""``apicmap host``'s APICv/AVIC state and X2APIC_API flag names, from a fake /sys/module."""

from __future__ import annotations

from pathlib import Path

from apicmap.kvm.host import apicv_state, x2apic_api_flags


def _param(root: Path, module: str, name: str, value: str) -> None:
    (root / module / "parameters").mkdir(parents=True)
    (root / module / "parameters" / name).write_text(value + "\n")


def test_apicv_per_vendor_module(tmp_path: Path) -> None:
    _param(tmp_path, "kvm_intel", "enable_apicv", "Y")
    _param(tmp_path, "kvm_amd", "avic", "0")
    intel = apicv_state("kvm_intel", tmp_path)
    assert intel["enabled"] is True and intel["parameter"] == "kvm_intel.enable_apicv" and intel["value"] == "Y"
    amd = apicv_state("kvm_amd", tmp_path)
    assert amd["enabled"] is False and amd["parameter"] == "kvm_amd.avic"
    pvm = apicv_state("kvm_pvm", tmp_path)
    assert pvm["enabled"] is None and "not applicable" in str(pvm["note"])
    unreadable = apicv_state("kvm_intel", tmp_path / "nothing")
    assert unreadable["enabled"] is None and "cannot read" in str(unreadable["note"])
    assert apicv_state(None, tmp_path)["note"] == "no KVM vendor module loaded"


def test_x2apic_api_flag_names() -> None:
    assert x2apic_api_flags(0x3) == ["USE_32BIT_IDS", "DISABLE_BROADCAST_QUIRK"]
    assert x2apic_api_flags(0xF)[2:] == ["ENABLE_SUPPRESS_EOI_BROADCAST", "DISABLE_SUPPRESS_EOI_BROADCAST"]
    assert x2apic_api_flags(0x20) == ["bit 5"] and x2apic_api_flags(0) == []
