"""VMM operations in order: what a sequence file replays, on the model or on a real VM.

``ModelLifecycle`` (the model, tracking KVM's map recalculation points) and ``RealSequence`` (a
real VM through /dev/kvm) both implement ``VmmOperations``, so one sequence runs on either.
"""

from __future__ import annotations

from typing import Protocol

from apicmap.domain.message import MsiInjection
from apicmap.encoding.apic_base import ApicMode


class VmmOperations(Protocol):
    """The ioctls a sequence step stands for, one method each."""

    def create_vcpu(self, vcpu_id: int) -> None:
        """KVM_CREATE_VCPU."""
        ...

    def enable_cap(self, use_32bit_ids: bool, disable_broadcast_quirk: bool) -> None:
        """KVM_ENABLE_CAP(KVM_CAP_X2APIC_API)."""
        ...

    def set_apic_base(self, vcpu_id: int, mode: ApicMode) -> None:
        """KVM_SET_MSRS of IA32_APIC_BASE (host-initiated: any mode change is allowed)."""
        ...

    def set_lapic(self, vcpu_id: int, *, xapic_id: int, ldr: int, dfr: int, sw_enabled: bool) -> None:
        """KVM_SET_LAPIC of the vCPU's page, in its current mode."""
        ...

    def signal_msi(self, injection: MsiInjection) -> int | None:
        """KVM_SIGNAL_MSI: its return value."""
        ...
