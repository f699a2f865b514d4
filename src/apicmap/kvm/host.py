"""What this machine's KVM is and can do (``apicmap host``)."""

from __future__ import annotations

import os
from pathlib import Path

from apicmap.errors import KvmUnavailable
from apicmap.kvm import abi as s
from apicmap.kvm.ioctl import check_extension, ioctl_int, open_kvm

VENDOR_MODULES = ("kvm_intel", "kvm_amd", "kvm_pvm")


def kvm_available(path: str = "/dev/kvm") -> tuple[bool, str]:
    """(usable, reason when not)."""
    try:
        fd = open_kvm(path)
    except KvmUnavailable as err:
        return False, str(err)
    try:
        if not check_extension(fd, s.KVM_CAP_X2APIC_API):
            return False, "KVM_CAP_X2APIC_API is not supported"
        if not check_extension(fd, s.KVM_CAP_IRQCHIP):
            return False, "no in-kernel irqchip (KVM_CAP_IRQCHIP)"
    finally:
        os.close(fd)
    return True, ""


def vector_hashing() -> bool | None:
    """kvm.vector_hashing (read-only at run time, docs/routing.md#kvm-fast-path)."""
    try:
        return Path("/sys/module/kvm/parameters/vector_hashing").read_text().strip() in ("Y", "1")
    except OSError:
        return None


def vendor_module() -> str | None:
    for name in VENDOR_MODULES:
        if Path(f"/sys/module/{name}").exists():
            return name
    return None


# The module parameter that turns the hardware APIC virtualization on, per vendor module.
APICV_PARAMETERS = {"kvm_intel": "enable_apicv", "kvm_amd": "avic"}
# KVM_CAP_X2APIC_API flags (include/uapi/linux/kvm.h: KVM_X2APIC_API_USE_32BIT_IDS,
# KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK, and the directed-EOI pair KVM_X2APIC_ENABLE_SUPPRESS_EOI_BROADCAST
# and KVM_X2APIC_DISABLE_SUPPRESS_EOI_BROADCAST, bits 2 and 3, which do not affect routing).
X2APIC_API_FLAGS = {s.X2APIC_API_USE_32BIT_IDS: "USE_32BIT_IDS",
                    s.X2APIC_API_DISABLE_BROADCAST_QUIRK: "DISABLE_BROADCAST_QUIRK",
                    1 << 2: "ENABLE_SUPPRESS_EOI_BROADCAST", 1 << 3: "DISABLE_SUPPRESS_EOI_BROADCAST"}


def apicv_state(module: str | None, sys_module: Path = Path("/sys/module")) -> dict[str, object]:
    """APICv (Intel) / AVIC (AMD) as the vendor module's parameter says: ``enabled`` True/False, or
    None with ``note`` where it does not apply (another vendor module, such as kvm_pvm) or cannot be read."""
    parameter = APICV_PARAMETERS.get(module or "")
    if module is None:
        return {"parameter": None, "value": None, "enabled": None, "note": "no KVM vendor module loaded"}
    if parameter is None:
        return {"parameter": None, "value": None, "enabled": None,
                "note": f"not applicable: {module} has no APICv or AVIC"}
    name = f"{module}.{parameter}"
    try:
        value = (sys_module / module / "parameters" / parameter).read_text().strip()
    except OSError as err:
        return {"parameter": name, "value": None, "enabled": None, "note": f"cannot read it: {err.strerror}"}
    return {"parameter": name, "value": value, "enabled": value in ("Y", "y", "1"), "note": ""}


def x2apic_api_flags(mask: int) -> list[str]:
    """The names of the flags in a KVM_CAP_X2APIC_API mask; bits apicmap does not know as ``bit N``."""
    return [X2APIC_API_FLAGS.get(1 << bit, f"bit {bit}") for bit in range(mask.bit_length()) if mask >> bit & 1]


def host_report() -> dict[str, object]:
    from apicmap.model.policy import host_release, parse_release, policy_for_release

    release = os.uname().release
    module = vendor_module()
    report: dict[str, object] = {"kernel": release, "vendor_module": module, "apicv": apicv_state(module)}
    try:
        report["model_variant"] = policy_for_release(host_release()).key
        report["upstream_release"] = "{}.{}.{}".format(*parse_release(host_release()))
    except Exception as err:  # a release apicmap cannot place
        report["model_variant"] = f"unknown ({err})"
    available, why = kvm_available()
    report["engine_can_run"] = available
    if not available:
        report["why_not"] = why
        return report
    fd = open_kvm()
    try:
        report["api_version"] = ioctl_int(fd, s.KVM_GET_API_VERSION)
        x2apic_api = check_extension(fd, s.KVM_CAP_X2APIC_API)
        report["x2apic_api"] = f"{x2apic_api:#x}"
        report["x2apic_api_flags"] = x2apic_api_flags(x2apic_api)
        report["max_vcpus"] = check_extension(fd, s.KVM_CAP_MAX_VCPUS)
        report["max_vcpu_id"] = check_extension(fd, s.KVM_CAP_MAX_VCPU_ID)
        report["recommended_vcpus"] = check_extension(fd, s.KVM_CAP_NR_VCPUS)
        report["smm"] = bool(check_extension(fd, s.KVM_CAP_X86_SMM))
        report["signal_msi"] = bool(check_extension(fd, s.KVM_CAP_SIGNAL_MSI))
        report["set_boot_cpu_id"] = bool(check_extension(fd, s.KVM_CAP_SET_BOOT_CPU_ID))
    finally:
        os.close(fd)
    report["vector_hashing"] = vector_hashing()
    return report
