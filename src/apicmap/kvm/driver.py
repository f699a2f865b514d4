"""A real VM driven one VMM operation at a time, with nothing restored (for sequence fuzzing).

Only ``KVM_SIGNAL_MSI`` return values are compared, so observing never disturbs the map:
reading IRR back and restoring it would call ``KVM_SET_LAPIC``, a recalculation point.
"""

from __future__ import annotations

from apicmap.domain.message import MsiInjection
from apicmap.encoding.apic_base import ApicMode
from apicmap.errors import NotExpressible
from apicmap.kvm.vm import KvmSystem, LapicPage, get_lapic, set_apic_base, set_lapic, x2apic_api_flags


class RealSequence:
    def __init__(self) -> None:
        self._system = KvmSystem()
        self._vm = self._system.create_vm()
        self._vm.create_irqchip()
        self._format = False
        self.modes: dict[int, ApicMode] = {}

    def close(self) -> None:
        self._vm.close()
        self._system.close()

    def create_vcpu(self, vcpu_id: int) -> None:
        if vcpu_id >= self._system.max_vcpu_id:
            raise NotExpressible(f"vcpu_id {vcpu_id} >= {self._system.max_vcpu_id}")
        self._vm.create_vcpu(vcpu_id)
        self.modes[vcpu_id] = ApicMode.XAPIC

    def enable_cap(self, use_32bit_ids: bool, disable_broadcast_quirk: bool) -> None:
        self._vm.enable_x2apic_api(x2apic_api_flags(use_32bit_ids, disable_broadcast_quirk))
        self._format = self._format or use_32bit_ids

    def set_apic_base(self, vcpu_id: int, mode: ApicMode) -> None:
        # vCPU 0 is the BSP by default; keep its BSP bit as KVM set it.
        set_apic_base(self._vm.vcpus[vcpu_id], mode, bsp=vcpu_id == 0)
        self.modes[vcpu_id] = mode

    def set_lapic(self, vcpu_id: int, *, xapic_id: int, ldr: int, dfr: int, sw_enabled: bool) -> None:
        mode = self.modes.get(vcpu_id, ApicMode.XAPIC)  # the page is written in the vCPU's current mode
        fd = self._vm.vcpus[vcpu_id]
        page = get_lapic(fd, LapicPage())
        if mode is ApicMode.X2APIC:
            page.write_x2apic_id(vcpu_id, self._format)
        else:
            page.write_xapic(xapic_id=xapic_id, ldr=ldr, dfr=dfr)
        page.write_svr(sw_enabled)
        set_lapic(fd, page)

    def signal_msi(self, injection: MsiInjection) -> int | None:
        return self._vm.signal_msi(injection.address_lo, injection.address_hi, injection.data)
