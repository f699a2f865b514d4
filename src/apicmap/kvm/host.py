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
    """kvm.vector_hashing (read-only at run time, kvm-routing.md §3)."""
    try:
        return Path("/sys/module/kvm/parameters/vector_hashing").read_text().strip() in ("Y", "1")
    except OSError:
        return None


def vendor_module() -> str | None:
    for name in VENDOR_MODULES:
        if Path(f"/sys/module/{name}").exists():
            return name
    return None


def host_report() -> dict[str, object]:
    from apicmap.model.policy import host_release, parse_release, policy_for_release

    release = os.uname().release
    report: dict[str, object] = {"kernel": release, "vendor_module": vendor_module()}
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
        report["x2apic_api"] = f"{check_extension(fd, s.KVM_CAP_X2APIC_API):#x}"
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
