"""Each profile's distinctive rules on small VMs."""

from __future__ import annotations

import pytest

from apicmap.domain.message import IoapicInjection, MsiInjection
from apicmap.domain.outcome import EffectKind
from apicmap.domain.reasons import Code
from apicmap.domain.vm import Vcpu, VmState
from apicmap.errors import NotExpressible
from apicmap.profiles import profile_engine
from tests.helpers import INIT, LOWEST, NMI, SMI, msi, x2icr
from tests.profiles.common import ALIASED, X2, XA, cluster_vm, flat_vm, rte, run, x2apic_vm, xapic_vm

# --- physical aliasing: the four answers ------------------------------------------------------


def test_aliased_ids_four_answers() -> None:
    message = msi(1)
    assert run("kvm", ALIASED, message).receivers == (1, 2)  # all (KVM 6.3+ without 32-bit IDs)
    assert run("qemu", ALIASED, message).receivers == (1, 2)  # all
    assert run("xen", ALIASED, message).receivers == (1, 2)  # all
    assert run("bochs", ALIASED, message).receivers == (1,)  # first match only
    assert run("qemu@7.2", ALIASED, message).receivers == (1,)  # apic_find_dest: slot [1]
    for peer in ("crosvm", "virtualbox", "bhyve", "openvmm"):  # impossible: the ID write is ignored
        out = run(peer, ALIASED, message)
        assert out.receivers == (1,)
        assert out.explanation is not None
        assert Code.PEER_ID_READONLY in out.explanation.reason_for(2).codes()  # type: ignore[union-attr]
    hyperv = run("hyperv", ALIASED, message)  # undefined (TLFS: one, all or none)
    assert hyperv.receivers == () and hyperv.undefined == (1, 2)


def test_qemu_7_2_lookup_shortcut_then_scan_stops_at_a_gap() -> None:
    # vCPU 5 has xAPIC ID 3; there is no APIC at index 3 and the scan from 0 stops at the gap at 1.
    vm = VmState((Vcpu(0), Vcpu(5, xapic_id=3)))
    assert run("qemu@7.2", vm, msi(3)).receivers == ()
    assert run("qemu", vm, msi(3)).receivers == (5,)
    # Aliases at IDs 0: the slot [0] wins even though vCPU 2 also matches.
    vm2 = VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=0)))
    assert run("qemu@7.2", vm2, msi(0)).receivers == (0,)


def test_qemu_7_2_logical_scan_stops_at_the_first_empty_index() -> None:
    vm = VmState((Vcpu(0, ldr=1 << 24), Vcpu(2, ldr=2 << 24)))
    assert run("qemu@7.2", vm, msi(3, logical=True)).receivers == (0,)
    assert run("qemu", vm, msi(3, logical=True)).receivers == (0, 2)


# --- wide destinations against xAPIC-mode targets ---------------------------------------------


def test_32bit_destination_against_an_xapic_target() -> None:
    # vCPU 0 (x2APIC) sends to 0x101; vCPU 1 is xAPIC with ID 1; vCPU 0x101 is xAPIC with ID 2.
    vm = VmState((Vcpu(0, X2), Vcpu(1, XA), Vcpu(0x101, XA, xapic_id=0x2)))
    ipi = x2icr(0, 0x101)
    assert run("qemu", vm, ipi).receivers == (1,)  # truncated to 8 bits (like Knights Landing)
    assert run("openvmm", vm, ipi).receivers == (0x101,)  # compared with the full ID (like KVM's hotplug hack)
    assert run("xen", vm, ipi).receivers == ()  # no match
    assert run("bochs", vm, ipi).receivers == ()


# --- x2APIC IDs -------------------------------------------------------------------------------


def test_xen_x2apic_id_is_twice_the_vcpu_id() -> None:
    vm = x2apic_vm((0, 1, 2, 3))
    assert run("xen", vm, x2icr(0, 2)).receivers == (1,)
    assert run("kvm", vm, x2icr(0, 2)).receivers == (2,)
    # Logical: vCPU 1 has x2APIC ID 2, so LDR bit 2 of cluster 0.
    assert run("xen", vm, x2icr(0, 0x4, logical=True)).receivers == (1,)
    assert run("qemu", vm, x2icr(0, 0x4, logical=True)).receivers == (2,)


def test_peers_without_x2apic_cannot_express_an_x2apic_vcpu() -> None:
    for peer in ("crosvm", "qemu@7.2"):
        with pytest.raises(NotExpressible, match="has no x2APIC"):
            profile_engine(peer).prepare(x2apic_vm((0, 1)))


# --- broadcasts: who decides ------------------------------------------------------------------


def test_broadcast_decider_in_a_mixed_vm() -> None:
    vm = VmState((Vcpu(0, X2), Vcpu(1, XA), Vcpu(2, XA)))
    wide = x2icr(0, 0xFFFFFFFF)
    assert run("xen", vm, wide).receivers == (0,)  # the receiver's all-ones: xAPIC targets see 0xFFFFFFFF
    assert run("bhyve", vm, wide).receivers == (0, 1, 2)  # the sender's format: everyone
    assert run("qemu", vm, wide).receivers == (0, 1, 2)  # hybrid: 0xFFFFFFFF reaches all
    assert run("hyperv", vm, wide).undefined == (1, 2)  # undocumented for mixed modes
    narrow = msi(0xFF)
    assert run("xen", vm, narrow).receivers == (1, 2)
    assert run("qemu", vm, narrow).receivers == (1, 2)  # xAPIC-mode APICs plus an x2APIC APIC with ID 0xFF
    assert run("bhyve", vm, narrow).receivers == (0, 1, 2)


def test_bochs_low_byte_ff_is_a_broadcast() -> None:
    vm = x2apic_vm((0, 1, 2))
    assert run("bochs", vm, x2icr(0, 0x1FF)).receivers == (0, 1, 2)
    assert run("qemu", vm, x2icr(0, 0x1FF)).receivers == ()


def test_openvmm_msi_broadcast_follows_the_vm_x2apic_capability() -> None:
    # OpenVMM models an x2APIC-capable VM: an 8-bit MSI to 0xFF is a unicast to APIC 255.
    vm = VmState((Vcpu(0), Vcpu(1), Vcpu(255)))
    assert run("openvmm", vm, msi(0xFF)).receivers == (255,)
    assert run("xen", vm, msi(0xFF)).receivers == (0, 1, 255)


def test_logical_broadcast() -> None:
    vm = cluster_vm()
    assert run("xen", vm, msi(0xFF, logical=True)).receivers == ()  # none: matched literally
    assert run("virtualbox", vm, msi(0xFF, logical=True)).receivers == (0, 1, 2)
    assert run("qemu", vm, msi(0xFF, logical=True)).receivers == (0, 1, 2)  # cluster 0xF: all clusters


# --- logical decode ---------------------------------------------------------------------------


def test_cluster_f_and_unsupported_cluster_mode() -> None:
    vm = cluster_vm()
    assert run("qemu", vm, msi(0xF1, logical=True)).receivers == (0, 2)
    assert run("kvm", vm, msi(0xF1, logical=True)).receivers == ()
    assert run("crosvm", vm, msi(0x13, logical=True)).receivers == ()
    assert run("xen", vm, msi(0x13, logical=True)).receivers == (0, 1)


def test_openvmm_decodes_logical_globally() -> None:
    # One vCPU already in x2APIC mode: OpenVMM reads every logical MDA as x2APIC cluster format.
    vm = VmState((Vcpu(0, X2), Vcpu(1, ldr=0x02 << 24), Vcpu(2, ldr=0x04 << 24)))
    flat = msi(0x06, logical=True)
    assert run("openvmm", vm, flat).receivers == (1, 2)  # IDs 1 and 2 by the x2APIC formula
    assert run("qemu", vm, flat).receivers == (1, 2)  # per receiver: flat bits 1 and 2
    vm2 = VmState((Vcpu(0, X2), Vcpu(1, ldr=0x08 << 24), Vcpu(2, ldr=0x10 << 24)))
    assert run("openvmm", vm2, msi(0x18, logical=True)).receivers == ()
    assert run("qemu", vm2, msi(0x18, logical=True)).receivers == (1, 2)


def test_bad_dfr() -> None:
    vm = VmState((Vcpu(0, ldr=1 << 24, dfr=0x5FFFFFFF), Vcpu(1, ldr=2 << 24)))
    assert run("xen", vm, msi(3, logical=True)).receivers == (1,)
    bochs = run("bochs", vm, msi(3, logical=True))
    assert bochs.receivers == (1,) and bochs.undefined == (0,)


# --- lowest priority ------------------------------------------------------------------------


def test_lowest_priority_tie_breaks() -> None:
    vm = flat_vm((0, 0, 0))
    lp = msi(0x7, mode=LOWEST, logical=True)
    assert run("qemu", vm, lp).receivers == (0,)  # first match, lowest ID
    assert run("bochs", vm, lp).receivers == (0,)  # minimum APR, ties to the lowest
    assert run("crosvm", vm, lp).receivers == (2,)  # minimum PPR with <=: ties to the last
    assert run("virtualbox", vm, lp).receivers == (2,)  # minimum TPR, ties to the highest
    assert run("xen", vm, lp).undefined == (0, 1, 2)  # round robin: depends on the previous winner
    assert run("hyperv", vm, lp).undefined == (0, 1, 2)
    assert len(run("kvm", vm, lp).receivers) == 1  # vector hashing


def test_lowest_priority_by_priority() -> None:
    vm = flat_vm((0x20, 0x10, 0x10))
    lp = msi(0x7, mode=LOWEST, logical=True)
    assert run("qemu", vm, lp).receivers == (0,)  # no priority compared at all
    assert run("crosvm", vm, lp).receivers == (2,)
    assert run("xen", vm, lp).undefined == (1, 2)
    vm2 = flat_vm((0x20, 0x00, 0x10))
    assert run("xen", vm2, lp).receivers == (1,)
    assert run("virtualbox", vm2, lp).receivers == (1,)


def test_lowest_priority_candidates_and_physical_lowest() -> None:
    vm = VmState((Vcpu(0, ldr=1 << 24, sw_enabled=False), Vcpu(1, ldr=2 << 24)))
    lp = msi(0x3, mode=LOWEST, logical=True)
    assert run("xen", vm, lp).receivers == (1,)  # software-disabled APICs are not candidates
    assert run("qemu", vm, lp).receivers == (0,)  # first match, even software-disabled (IRR set anyway)
    physical = msi(1, mode=LOWEST)
    assert run("bochs", xapic_vm(2), physical).receivers == ()  # physical lowest priority dropped
    assert run("virtualbox", xapic_vm(2), physical).receivers == (1,)  # as fixed


def test_lowest_priority_ipis() -> None:
    vm = x2apic_vm((0, 1))
    ipi = x2icr(0, 1, mode=LOWEST)
    assert run("openvmm", vm, ipi).receivers == ()  # dropped from an x2APIC sender
    assert run("qemu", vm, ipi).receivers == (1,)
    assert run("bhyve", vm, ipi).undefined == (1,)  # no case in the ICR path


def test_redirection_hint() -> None:
    vm = xapic_vm(4)
    rh = msi(0xFF, rh=True)
    assert len(run("kvm", vm, rh).receivers) == 1  # KVM: RH=1 keeps a physical broadcast lowest priority
    assert run("qemu", vm, rh).receivers == (0, 1, 2, 3)
    logical = VmState(tuple(Vcpu(i, ldr=(1 << i) << 24) for i in range(4)))
    rh_logical = msi(0x0F, logical=True, rh=True)
    assert len(run("kvm", logical, rh_logical).receivers) == 1
    assert run("qemu", logical, rh_logical).receivers == (0, 1, 2, 3)  # RH ignored


def test_bhyve_logical_msi_needs_the_redirection_hint() -> None:
    vm = VmState((Vcpu(0, ldr=1 << 24), Vcpu(1, ldr=2 << 24), Vcpu(2, ldr=4 << 24), Vcpu(3, xapic_id=3)))
    plain = msi(0x3, logical=True)
    assert run("bhyve", vm, plain).receivers == (3,)  # DM ignored with RH=0: physical ID 3
    assert run("bhyve-illumos", vm, plain).receivers == (0, 1)
    assert run("bhyve", vm, msi(0x3, logical=True, rh=True)).receivers == (0, 1)


# --- MSI extended destination ----------------------------------------------------------------


def test_msi_extended_destination_formats() -> None:
    vm = VmState((Vcpu(0, X2), Vcpu(1, X2), Vcpu(0x101, X2)))
    ext = MsiInjection(0xFEE01000 | 1 << 5, 0, 0x4040)  # bits 11:5 = 1: ID 0x101
    hi = MsiInjection(0xFEE01000, 0x100, 0x4040)  # address_hi = ID[31:8]
    assert run("openvmm", vm, ext).receivers == (0x101,)
    assert run("hyperv", vm, ext).receivers == (0x101,)
    assert run("qemu", vm, ext).receivers == (1,)  # bits 11:5 ignored
    assert run("qemu", vm, hi).receivers == (0x101,)  # the vIOMMU's address_hi
    assert run("openvmm", vm, hi).receivers == (1,)
    assert run("xen", vm, hi).receivers == ()  # 8 bits: ID 1, and Xen's x2APIC IDs are 0, 2 and 0x202
    # KVM-based: cloud-hypervisor swizzles 11:5 into address_hi and enables X2APIC_API above ID 254.
    assert run("cloud-hypervisor", vm, ext).receivers == (0x101,)
    assert run("firecracker", vm, ext).receivers == (1,)  # no swizzle, no X2APIC_API
    assert run("qemu-split", vm, ext).receivers == (0x101,)


# --- acceptance ---------------------------------------------------------------------------------


def test_software_disabled_targets_and_fixed_interrupts() -> None:
    vm = VmState((Vcpu(0), Vcpu(1, sw_enabled=False)))
    for peer in ("qemu", "qemu@7.2", "crosvm"):
        assert run(peer, vm, msi(1)).receivers == (1,), peer
    for peer in ("kvm", "xen", "bhyve", "openvmm", "hyperv"):
        assert run(peer, vm, msi(1)).receivers == (), peer
    for peer in ("virtualbox", "bochs"):  # not traced in their sources
        assert run(peer, vm, msi(1)).undefined == (1,), peer
    assert run("xen", vm, msi(1, mode=NMI)).receivers == (1,)


def test_level_triggered_ipis() -> None:
    level = x2icr(0, 1, level_trigger=True)
    x2 = x2apic_vm((0, 1))
    out = run("qemu", x2, level)
    assert out.receivers == (1,) and out.effects[0].level_triggered
    deassert = x2icr(0, 1, level_trigger=True, level=False)
    assert run("qemu", x2, deassert).receivers == (1,)
    assert run("virtualbox", x2, deassert).receivers == ()
    assert run("xen", x2, x2icr(0, 2, level_trigger=True)).undefined == (1,)  # x2APIC ID 2 is vCPU 1


def test_smi_init_and_illegal_vectors() -> None:
    vm = xapic_vm(2)
    assert run("xen", vm, msi(1, 0, mode=SMI)).receivers == ()
    assert run("qemu", vm, msi(1, 0, mode=SMI)).effects[0].kind is EffectKind.SMI
    assert run("crosvm", vm, msi(1, 0, mode=SMI)).undefined == (1,)
    assert run("xen", vm, msi(1, 0, mode=INIT)).receivers == (1,)
    assert run("qemu", vm, msi(1, 0x05)).receivers == (1,)  # no vector check
    assert run("xen", vm, msi(1, 0x05)).receivers == ()
    assert run("virtualbox", vm, msi(1, 0x05)).undefined == (1,)


def test_qemu_self_ipi_follows_the_current_apic_id() -> None:
    # vCPU 1 rewrote its xAPIC ID to 0: QEMU's self shorthand then names index 0 (the array is
    # indexed by the initial ID), and all-but-self leaves index 0 out instead of the sender.
    vm = VmState((Vcpu(0), Vcpu(1, xapic_id=0)))
    assert run("qemu", vm, x2icr(1, 0, shorthand=1)).receivers == (0,)
    assert run("xen", vm, x2icr(1, 0, shorthand=1)).receivers == (1,)
    assert run("qemu", vm, x2icr(1, 0, shorthand=3)).receivers == (1,)
    assert run("xen", vm, x2icr(1, 0, shorthand=3)).receivers == (0,)


# --- KVM-based VMMs ---------------------------------------------------------------------------


def test_cloud_hypervisor_ioapic_broadcast_reaches_one_vcpu() -> None:
    vm = xapic_vm(4)
    pin = rte(0xFF)
    assert run("kvm", vm, pin).receivers == (0, 1, 2, 3)
    assert run("qemu", vm, pin).receivers == (0, 1, 2, 3)
    assert run("qemu-split", vm, pin).receivers == (0, 1, 2, 3)
    ch = run("cloud-hypervisor", vm, pin)
    assert len(ch.receivers) == 1 and ch.result is None
    assert ch.explanation is not None and Code.PEER_NOTE_VMM_IOAPIC in {n.code for n in ch.explanation.notes}


def test_cloud_hypervisor_enables_x2apic_api_only_above_254() -> None:
    small = VmState((Vcpu(0, X2), Vcpu(1, X2)), use_32bit_ids=True, disable_broadcast_quirk=True)
    # The VMM, not the scenario, decides: KVM keeps its quirks for small VMs (0xFF reaches x2APIC vCPUs).
    assert run("cloud-hypervisor", small, msi(0xFF)).receivers == (0, 1)
    assert run("kvm", small, msi(0xFF)).receivers == ()
    big = VmState((Vcpu(0, X2), Vcpu(300, X2)))
    assert run("cloud-hypervisor", big, msi(0xFF)).receivers == ()


def test_firecracker_limits() -> None:
    with pytest.raises(NotExpressible, match="at most 32"):
        profile_engine("firecracker").prepare(xapic_vm(33))
    vm = VmState((Vcpu(0, X2), Vcpu(0x101, X2)), use_32bit_ids=True)
    assert run("firecracker", vm, msi(0x101)).receivers == ()  # no X2APIC_API: address_hi ignored, ID 1 absent
    assert run("kvm", vm, msi(0x101)).receivers == (0x101,)


def test_kvm_profile_is_the_model_and_follows_the_kernel() -> None:
    assert run("kvm", ALIASED, msi(1), kernel="6.2").receivers == (1,)
    assert run("kvm@6.2", ALIASED, msi(1)).receivers == (1,)
    assert run("kvm", ALIASED, msi(1)).result == 2


def test_ioapic_extended_destination_survives_only_qemus_split_ioapic() -> None:
    vm = VmState((Vcpu(0, X2), Vcpu(0x101, X2)))
    pin = IoapicInjection(16, 0x40 | 0x01 << 56 | 0x01 << 49)  # RTE dest 0x01, ext-dest bits 55:49 = 1
    assert run("qemu-split", vm, pin).receivers == (0x101,)  # RTE 63:48 -> address 19:4, then swizzled
    assert run("cloud-hypervisor", vm, pin).receivers == ()  # RTE 63:56 only: ID 1
    assert run("kvm", vm, pin).receivers == ()  # the in-kernel IOAPIC: 8 bits
