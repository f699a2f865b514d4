"""The kvm engine against this machine's kernel (skipped with the reason where /dev/kvm is unusable)."""

from __future__ import annotations

import ctypes
import gc
import os
import resource

import pytest

from apicmap import ApicMode, IcrInjection, IoapicInjection, NotExpressible, SelfIpiInjection, Vcpu, VmState
from apicmap.domain.outcome import EffectKind
from apicmap.kvm import abi as s
from tests.helpers import INIT, LOWEST, NMI, REMRD, SIPI, msi, x2icr

pytestmark = pytest.mark.kvm


def test_structure_sizes_match_the_abi() -> None:
    sizes = {s.KvmVcpuEvents: 64, s.KvmIrqchip: 520, s.KvmMsi: 32, s.KvmEnableCap: 104, s.KvmLapicState: 1024,
             s.KvmIrqLevel: 8, s.KvmCpuidEntry2: 40, s.KvmSregs: 312, s.KvmMsrEntry: 16}
    assert {k.__name__: ctypes.sizeof(k) for k in sizes} == {k.__name__: v for k, v in sizes.items()}
    assert s.KvmVcpuEvents.nmi_pending.offset == 13 and s.KvmVcpuEvents.smi_pending.offset == 25


def test_ioctl_errors_name_the_ioctl() -> None:
    from apicmap.kvm.ioctl import KvmIoctlError, ioctl_int, open_kvm

    fd = open_kvm()
    try:
        with pytest.raises(KvmIoctlError, match="KVM_CREATE_VCPU"):
            ioctl_int(fd, s.KVM_CREATE_VCPU, 0)  # a VM ioctl on the system fd
    finally:
        os.close(fd)


def test_patch_case_on_the_kernel(kvm_engine) -> None:  # type: ignore[no-untyped-def]
    """Issue #3 'done when': {1, 2} and {1} on the real kernel (docs/routing.md#current-algorithm-v63-and-later,
    docs/routing.md#kvm-x2apic_api)."""
    vcpus = (Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1))
    out = kvm_engine.prepare(VmState(vcpus)).deliver(msi(1))
    assert out.receivers == (1, 2) and out.result == 2
    out = kvm_engine.prepare(VmState(vcpus, use_32bit_ids=True)).deliver(msi(1))
    assert out.receivers == (1,) and out.result == 1


def test_eperm_is_minus_one_and_einval_is_refused(kvm_engine) -> None:  # type: ignore[no-untyped-def]
    vcpus = (Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1))
    assert kvm_engine.prepare(VmState(vcpus)).deliver(msi(9)).result == -1
    out = kvm_engine.prepare(VmState(vcpus, use_32bit_ids=True)).deliver(msi(1, hi=0x1))
    assert out.rejected and out.result is None


def test_state_is_restored_between_injections(kvm_engine) -> None:  # type: ignore[no-untyped-def]
    vm = kvm_engine.prepare(VmState.simple(3))
    for injection in (msi(1), msi(1, mode=NMI), msi(1, mode=INIT), msi(1, 0x9A, mode=SIPI), msi(0xFF, 0x41)):
        first, second = vm.deliver(injection), vm.deliver(injection)
        assert first == second and first.receivers


def test_nmi_init_sipi_observed(kvm_engine) -> None:  # type: ignore[no-untyped-def]
    vm = kvm_engine.prepare(VmState.simple(2))
    assert vm.deliver(msi(1, mode=NMI)).effects[0].kind is EffectKind.NMI
    assert vm.deliver(msi(1, mode=INIT)).effects[0].kind is EffectKind.INIT
    sipi = vm.deliver(msi(0, 0x9A, mode=SIPI))
    assert sipi.effects[0].kind is EffectKind.SIPI and sipi.effects[0].vector == 0x9A


def test_x2apic_icr_shorthands_and_reserved_bits(kvm_engine) -> None:  # type: ignore[no-untyped-def]
    vm = kvm_engine.prepare(VmState(tuple(Vcpu(i, mode=ApicMode.X2APIC) for i in range(3))))
    assert vm.deliver(x2icr(1, 0, shorthand=3)).receivers == (0, 2)
    assert vm.deliver(SelfIpiInjection(2, 0x31)).receivers == (2,)
    bad = x2icr(0, 1)
    assert vm.deliver(IcrInjection(0, bad.icr | 1 << 13)).rejected  # v6.12+ (docs/routing.md#x2apic-icr-and-self_ipi)


def test_ioapic_pin(kvm_engine) -> None:  # type: ignore[no-untyped-def]
    vm = kvm_engine.prepare(VmState(tuple(Vcpu(i, mode=ApicMode.X2APIC) for i in range(4))))
    level = vm.deliver(IoapicInjection(14, (1 << 56) | 1 << 15 | 0x85))
    assert level.receivers == (1,) and level.effects[0].level_triggered
    assert vm.deliver(IoapicInjection(14, (1 << 56) | 1 << 15 | 0x85)) == level  # remote IRR was reset
    assert vm.deliver(IoapicInjection(14, (1 << 56) | 1 << 16 | 0x85)).receivers == ()


def test_what_the_host_cannot_express(kvm_engine) -> None:  # type: ignore[no-untyped-def]
    vm = kvm_engine.prepare(VmState.simple(2))
    with pytest.raises(NotExpressible, match="xAPIC-mode"):
        vm.deliver(IcrInjection(0, (1 << 56) | 0x40))
    with pytest.raises(NotExpressible, match="REMRD"):
        vm.deliver(msi(1, mode=REMRD))
    no_hashing = kvm_engine.prepare(VmState(VmState.simple(2).vcpus, vector_hashing=False))
    with pytest.raises(NotExpressible, match="vector_hashing"):
        no_hashing.deliver(msi(1, mode=LOWEST))


def test_large_vm_and_high_ids(kvm_engine) -> None:  # type: ignore[no-untyped-def]
    vcpus = tuple(Vcpu(i, mode=ApicMode.X2APIC) for i in range(0, 4096, 16))
    vm = kvm_engine.prepare(VmState(vcpus, use_32bit_ids=True))
    assert vm.deliver(msi(4080)).receivers == (4080,)


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_fd_leak_or_memory_growth_over_100k_interrupts() -> None:
    """Issue #3 item 8: 100,000 interrupts, engines created and closed, no growth."""
    from apicmap.kvm.engine import KvmEngine

    fds_before = _fd_count()
    for _ in range(3):
        KvmEngine().close()
    assert _fd_count() == fds_before
    engine = KvmEngine()
    try:
        vm = engine.prepare(VmState.simple(4))
        injections = [msi(1), msi(2, mode=NMI), msi(9), msi(0xFF, 0x41)]
        for i in range(5_000):
            vm.deliver(injections[i % 4])
        gc.collect()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fds_mid = _fd_count()
        for i in range(95_000):
            vm.deliver(injections[i % 4])
        gc.collect()
        growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
        assert _fd_count() == fds_mid
        assert growth_kib < 8 * 1024, f"max RSS grew by {growth_kib} KiB"
    finally:
        engine.close()
    assert _fd_count() == fds_before


def test_rh_physical_broadcast_is_rewritten_to_fixed(kvm_engine) -> None:  # type: ignore[no-untyped-def]
    """docs/routing.md#the-delivery-loop step 2: an NMI/SMI/SIPI MSI with RH to physical 0xFF lands in IRR.
    Found by the fuzzer: the engine used to look only at the NMI/SIPI channel."""
    vm = kvm_engine.prepare(VmState((Vcpu(0, sw_enabled=False), Vcpu(1), Vcpu(2))))
    for mode in (NMI, SIPI):
        out = vm.deliver(msi(0xFF, 0x41, mode=mode, rh=True))
        assert out.result == 1 and [e.kind for e in out.effects] == [EffectKind.IRR]


def test_every_channel_is_restored_after_any_injection(kvm_engine) -> None:  # type: ignore[no-untyped-def]
    """After any mix of injections the register pages, events and mp_states are as applied."""
    vm_state = VmState((Vcpu(0, mode=ApicMode.X2APIC), Vcpu(1), Vcpu(2, xapic_id=1, ldr=0x01 << 24)))
    vm = kvm_engine.prepare(vm_state)
    mixed = [msi(1), msi(1, mode=NMI), msi(1, mode=INIT), msi(0xFF, 0x10, mode=SIPI, rh=True),
             msi(0xFF, 0x41, mode=NMI, rh=True), x2icr(0, 0, mode=INIT, shorthand=2), msi(1, 0x9A, mode=SIPI),
             msi(0x01, 0x42, logical=True, mode=LOWEST)]
    reference = [vm.deliver(i) for i in mixed]
    for handle in vm._real.vcpus:
        lapic = s.KvmLapicState()
        from apicmap.kvm.ioctl import ioctl_ptr

        ioctl_ptr(handle.fd, s.KVM_GET_LAPIC, lapic)
        assert bytes(lapic.regs) == handle.baseline
        events = s.KvmVcpuEvents()
        ioctl_ptr(handle.fd, s.KVM_GET_VCPU_EVENTS, events)
        assert events.nmi_pending == 0
        mp = s.KvmMpState()
        ioctl_ptr(handle.fd, s.KVM_GET_MP_STATE, mp)
        assert mp.mp_state == handle.mp_state
    assert [vm.deliver(i) for i in reversed(mixed)] == list(reversed(reference))


@pytest.mark.parametrize("pin", [8, 16])
def test_level_entry_with_remote_irr_reaches_nobody_on_the_kernel(  # type: ignore[no-untyped-def]
        kvm_engine, pin: int) -> None:
    """ioapic_service() waits for the EOI; the engine programs bit 14 as given (it reads the entry back)."""
    vm = VmState((Vcpu(0, ApicMode.X2APIC), Vcpu(1, ApicMode.X2APIC)))
    prepared = kvm_engine.prepare(vm)
    base = 0x45 | 1 << 56
    for delivery in (0, 1, 4, 5, 7):  # fixed, lowest, NMI, INIT, ExtINT
        waiting = prepared.deliver(IoapicInjection(pin, base | delivery << 8 | 1 << 15 | 1 << 14))
        assert waiting.receivers == () and waiting.rejected is not None
    assert prepared.deliver(IoapicInjection(pin, base | 1 << 14)).receivers == (1,)  # edge: bit 14 ignored
    assert prepared.deliver(IoapicInjection(pin, base | 1 << 15)).receivers == (1,)  # level, Remote IRR clear
