"""IPIs from an xAPIC-mode source on this machine's kernel: sent by guest code where the kernel
runs it, "not expressible" with the reason where it does not."""

from __future__ import annotations

import pytest

from apicmap import IcrInjection, NotExpressible, VmState
from apicmap.kvm import vm as kvm_vm
from apicmap.model.policy import host_release
from tests.xapic_cases import XAPIC_VM, disagreements, icr

pytestmark = pytest.mark.kvm


def test_xapic_ipis_agree_with_the_model_where_guest_code_runs(kvm_engine) -> None:  # type: ignore[no-untyped-def]
    reason = kvm_engine.guest_code_unavailable()
    if reason is not None:
        with pytest.raises(NotExpressible, match="cannot run guest code"):
            kvm_engine.prepare(XAPIC_VM).deliver(IcrInjection(0, icr(1, 0x40)))
        pytest.skip(reason)
    assert disagreements(kvm_engine, host_release()) == []


def test_the_guest_code_leaves_the_vcpu_as_it_was(kvm_engine) -> None:  # type: ignore[no-untyped-def]
    from apicmap.kvm import abi as s
    from apicmap.kvm.ioctl import ioctl_ptr

    if kvm_engine.guest_code_unavailable() is not None:
        pytest.skip("this kernel cannot run guest code")
    prepared = kvm_engine.prepare(VmState.simple(2))
    fd = prepared._handle(0).fd

    def state() -> tuple[bytes, bytes, int, bytes]:
        regs, sregs, mp, lapic = s.KvmRegs(), s.KvmSregs(), s.KvmMpState(), s.KvmLapicState()
        for request, struct in ((s.KVM_GET_REGS, regs), (s.KVM_GET_SREGS, sregs), (s.KVM_GET_MP_STATE, mp),
                                (s.KVM_GET_LAPIC, lapic)):
            ioctl_ptr(fd, request, struct)
        return bytes(regs), bytes(sregs), mp.mp_state, bytes(lapic)

    before = state()
    assert prepared.deliver(IcrInjection(0, icr(0, 1 << 18 | 0x40))).receivers == (0,)  # self
    assert state() == before


def test_not_expressible_with_the_reason_when_guest_code_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel whose KVM_RUN does not run the code (as a probe that faults would): the engine
    says so, once, and every xAPIC-source IPI is "not expressible" with that reason."""
    from apicmap.kvm.engine import KvmEngine

    calls = []

    def failing_run(self: kvm_vm.GuestRunner, fd: int, code: bytes, **_: object) -> None:
        calls.append(code)
        raise kvm_vm.GuestCodeFailed("KVM_RUN exited with KVM_EXIT_SHUTDOWN")

    monkeypatch.setattr(kvm_vm.GuestRunner, "run", failing_run)
    engine = KvmEngine()
    try:
        prepared = engine.prepare(XAPIC_VM)
        for _ in range(2):
            with pytest.raises(NotExpressible, match=r"cannot run guest code .*KVM_EXIT_SHUTDOWN"):
                prepared.deliver(IcrInjection(0, icr(1, 0x40)))
        assert calls == [kvm_vm.PROBE_CODE]  # probed once, the answer cached
    finally:
        engine.close()
