"""Hypothesis strategies for VM states and injections, biased toward the corners (issue #4 item 1):
sparse and aliased IDs, vcpu_ids above 255, mixed xAPIC/x2APIC, multi-bit and duplicate LDRs, raw
DFR values, software- and hardware-disabled APICs, X2APIC_API flags; every encoding and delivery
mode, shorthands, broadcasts, RH, and destinations near the boundaries."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from ..message import IcrInjection, Injection, IoapicInjection, MsiInjection, SelfIpiInjection
from ..state import DFR_CLUSTER, DFR_FLAT, ApicMode, Vcpu, VmState

# A few id layouts recur so that the kvm engine can reuse its VMs; the rest are free-form.
ID_LAYOUTS = [(0, 1, 2), (0, 1, 2, 3), (0, 1, 255, 256), (1, 256), (0, 16, 17, 300), (0, 2, 5, 7, 11, 13)]
ID_POOL = [0, 1, 2, 3, 4, 5, 7, 15, 16, 17, 31, 254, 255, 256, 257, 300, 511, 4095]
XAPIC_IDS = [0, 1, 2, 3, 5, 0xF, 0x10, 0x11, 0xFE, 0xFF]
LOGICAL_IDS = [0, 0x01, 0x02, 0x03, 0x04, 0x08, 0x10, 0x11, 0x12, 0x21, 0x80, 0xF1, 0xFF]
DFRS = [DFR_FLAT, DFR_FLAT, DFR_CLUSTER, 0x5FFFFFFF, 0xF0000000]
DESTS = [0, 1, 2, 3, 5, 0x0F, 0x10, 0x11, 0x13, 0x21, 0xF1, 0xFE, 0xFF, 0x100, 0x101, 0x12C, 0x1FF,
         0x10001, 0xFFFF, 0xFFFFFFFF]
MODES = [0, 0, 0, 1, 1, 4, 5, 6, 2, 7, 3]  # FIXED, LOWEST weighted; NMI, INIT, SIPI, SMI, EXTINT, REMRD


@dataclass(frozen=True, slots=True)
class Profile:
    """What the campaign's engines can run: the kvm engine needs the host's module parameters."""

    vector_hashing: bool = True
    smm: bool = False
    x2apic_sources_only: bool = True  # the host can only send IPIs from x2APIC-mode vCPUs
    allow_remrd: bool = False  # REMRD's effect is not observable on the host
    max_vcpus: int = 6


@st.composite
def vm_states(draw: st.DrawFn, profile: Profile = Profile()) -> VmState:
    ids = draw(st.one_of(st.sampled_from(ID_LAYOUTS),
                         st.lists(st.sampled_from(ID_POOL), min_size=1, max_size=profile.max_vcpus, unique=True)))
    vcpus = []
    for vid in ids:
        mode = draw(st.sampled_from([ApicMode.XAPIC, ApicMode.XAPIC, ApicMode.X2APIC, ApicMode.X2APIC,
                                     ApicMode.DISABLED]))
        xapic_id = draw(st.one_of(st.just(vid & 0xFF), st.just(vid & 0xFF), st.sampled_from(XAPIC_IDS)))
        if mode is ApicMode.X2APIC:
            vcpus.append(Vcpu(vid, mode, draw(st.booleans()) or draw(st.booleans())))
            continue
        ldr = draw(st.sampled_from(LOGICAL_IDS)) << 24
        if draw(st.integers(0, 9)) == 0:
            ldr |= draw(st.sampled_from([0x1, 0x00010002, 0xFF]))  # raw junk below bits 31:24
        vcpus.append(Vcpu(vid, mode, draw(st.booleans()) or draw(st.booleans()), xapic_id, ldr,
                          draw(st.sampled_from(DFRS))))
    return VmState(tuple(vcpus), use_32bit_ids=draw(st.booleans()), disable_broadcast_quirk=draw(st.booleans()),
                   vector_hashing=profile.vector_hashing, smm=profile.smm)


def _mode(draw: st.DrawFn, profile: Profile) -> int:
    mode = draw(st.sampled_from(MODES))
    return 0 if mode == 3 and not profile.allow_remrd else mode


@st.composite
def injections(draw: st.DrawFn, vm: VmState, profile: Profile = Profile()) -> Injection:
    kinds = ["msi", "msi", "msi", "ipi", "ipi", "ioapic", "self"]
    sources = [v.vcpu_id for v in vm.vcpus
               if v.mode is ApicMode.X2APIC or (not profile.x2apic_sources_only and v.present)]
    kind = draw(st.sampled_from(kinds if sources else ["msi", "ioapic"]))
    vector = draw(st.one_of(st.integers(0x10, 0xFF), st.sampled_from([0, 5, 0x0F, 0x10, 0x40, 0x41, 0xFF])))
    mode = _mode(draw, profile)
    logical = draw(st.booleans())
    trigger = draw(st.integers(0, 4)) == 0
    dest = draw(st.one_of(st.sampled_from(DESTS), st.sampled_from(list(vm.vcpu_ids)),
                          st.integers(0, 0xFFFFFFFF)))
    if kind == "msi":
        rh = draw(st.integers(0, 3)) == 0
        lo = 0xFEE00000 | (dest & 0xFF) << 12 | rh << 3 | logical << 2
        hi = dest & 0xFFFFFF00 if draw(st.integers(0, 3)) else draw(st.sampled_from([0, 1, 0x100]))
        if not vm.use_32bit_ids and draw(st.booleans()):
            hi = 0
        data = vector | mode << 8 | draw(st.booleans()) << 14 | trigger << 15
        return MsiInjection(lo, hi, data)
    if kind == "ioapic":
        rte = vector | mode << 8 | logical << 11 | trigger << 15 | (dest & 0xFF) << 56
        if draw(st.integers(0, 9)) == 0:
            rte |= 1 << 16  # masked
        return IoapicInjection(draw(st.sampled_from([16, 17, 20, 23])), rte)
    source = draw(st.sampled_from(sources))
    if kind == "self":
        return SelfIpiInjection(source, draw(st.one_of(st.integers(0, 0xFF), st.sampled_from([0x100, 0x131]))))
    shorthand = draw(st.sampled_from([0, 0, 0, 1, 2, 3]))
    level = draw(st.integers(0, 5)) != 0
    low = vector | mode << 8 | logical << 11 | level << 14 | trigger << 15 | shorthand << 18
    if draw(st.integers(0, 9)) == 0:
        low |= draw(st.sampled_from([1 << 12, 1 << 13, 1 << 16, 1 << 20]))  # busy or reserved bits
    return IcrInjection(source, (dest & 0xFFFFFFFF) << 32 | low)


@st.composite
def cases(draw: st.DrawFn, profile: Profile = Profile()) -> tuple[VmState, list[Injection]]:
    """One VM state and a few injections judged against it (each against the state as written)."""
    vm = draw(vm_states(profile))
    return vm, draw(st.lists(injections(vm, profile), min_size=1, max_size=8))
