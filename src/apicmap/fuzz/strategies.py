"""Hypothesis strategies for VM states and injections, biased toward the corners (issue #4 item 1):
sparse and aliased IDs, vcpu_ids above 255, mixed xAPIC/x2APIC, multi-bit and duplicate LDRs, raw
DFR values, software- and hardware-disabled APICs, X2APIC_API flags; every encoding and delivery
mode, shorthands, broadcasts, RH, and destinations near the boundaries. On top of the named
fields, every raw bit of every encoding (MSI address, address_hi and data; ICR; SELF_IPI; the
IOAPIC redirection entry, Remote IRR and polarity included) is set or cleared now and then."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from apicmap.domain.message import IcrInjection, Injection, IoapicInjection, MsiInjection, SelfIpiInjection
from apicmap.domain.vm import DFR_CLUSTER, DFR_FLAT, Vcpu, VmState
from apicmap.encoding.apic_base import ApicMode

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


# Strategies are built once: constructing them per draw dominated the campaign's cost.
_LAYOUT = st.sampled_from(ID_LAYOUTS)
_ID_LIST = st.lists(st.sampled_from(ID_POOL), min_size=1, max_size=6, unique=True)
_LAYOUT_KIND = st.integers(0, 3)  # 3 in 4: a recurring layout (the kvm engine reuses its VM)
_APIC_MODE = st.sampled_from([ApicMode.XAPIC, ApicMode.XAPIC, ApicMode.X2APIC, ApicMode.X2APIC, ApicMode.DISABLED])
_XAPIC_ID = st.sampled_from(XAPIC_IDS)
_SMALL = st.integers(0, 9)
_LOGICAL_ID = st.sampled_from(LOGICAL_IDS)
_LDR_JUNK = st.sampled_from([0x1, 0x00010002, 0xFF])
_DFR = st.sampled_from(DFRS)
_BOOL = st.booleans()
_INDEX = st.integers(0, 1 << 16)
_KIND = st.sampled_from(["msi", "msi", "msi", "ipi", "ipi", "ioapic", "self"])
_VECTOR = st.one_of(st.integers(0x10, 0xFF), st.sampled_from([0, 5, 0x0F, 0x10, 0x40, 0x41, 0xFF]))
_MODE = st.sampled_from(MODES)
_DEST = st.sampled_from(DESTS)
_DEST_CHOICE = st.integers(0, 5)
_ANY_U32 = st.integers(0, 0xFFFFFFFF)
_HI = st.sampled_from([0, 1, 0x100])
_PIN = st.sampled_from([0, 2, 8, 16, 17, 20, 23])
_SELF_VALUE = st.one_of(st.integers(0, 0xFF), st.sampled_from([0x100, 0x131]))
_SHORTHAND = st.sampled_from([0, 0, 0, 1, 2, 3])
_ICR_JUNK = st.sampled_from([1 << 12, 1 << 13, 1 << 16, 1 << 20])
_RAW_HOW = st.integers(0, 7)  # 0: flip one bit, 1: flip a random mask, else leave the value as built
_BIT = st.integers(0, 63)
_U64 = st.integers(0, (1 << 64) - 1)
# IOAPIC entries: (level-triggered, Remote IRR) corners, weighted toward the plain ones.
_RTE_STATE = st.sampled_from([(0, 0), (0, 0), (1, 0), (1, 0), (1, 1), (0, 1)])


def _raw_bits(draw: st.DrawFn, value: int, width: int) -> int:
    """Now and then flip one raw bit, or a random mask, of a ``width``-bit encoding."""
    how = draw(_RAW_HOW)
    if how == 0:
        return value ^ (1 << (draw(_BIT) % width))
    if how == 1:
        return value ^ (draw(_U64) & ((1 << width) - 1))
    return value


@st.composite
def vm_states(draw: st.DrawFn, profile: Profile = Profile()) -> VmState:
    ids = draw(_LAYOUT) if draw(_LAYOUT_KIND) else draw(_ID_LIST)
    use_32bit_ids = draw(_BOOL)
    vcpus = []
    for vid in ids:
        mode = draw(_APIC_MODE)
        sw_enabled = draw(_BOOL) or draw(_BOOL)  # 3 in 4 enabled
        if mode is ApicMode.X2APIC:
            # Sometimes KVM_SET_LAPIC carries another x2APIC ID (planted before 6.11).
            planted = None if use_32bit_ids or draw(_SMALL) else draw(_XAPIC_ID) << 24
            vcpus.append(Vcpu(vid, mode, sw_enabled, lapic_id=planted))
            continue
        choice = draw(_SMALL)
        xapic_id = draw(_XAPIC_ID) if choice < 4 else vid & 0xFF  # aliasing is common
        ldr = draw(_LOGICAL_ID) << 24
        if draw(_SMALL) == 0:
            ldr |= draw(_LDR_JUNK)  # raw junk below bits 31:24
        vcpus.append(Vcpu(vid, mode, sw_enabled, xapic_id, ldr, draw(_DFR)))
    return VmState(tuple(vcpus), use_32bit_ids=use_32bit_ids, disable_broadcast_quirk=draw(_BOOL),
                   vector_hashing=profile.vector_hashing, smm=profile.smm)


@st.composite
def injections(draw: st.DrawFn, vm: VmState, profile: Profile = Profile()) -> Injection:
    sources = [v.vcpu_id for v in vm.vcpus
               if v.mode is ApicMode.X2APIC or (not profile.x2apic_sources_only and v.present)]
    kind = draw(_KIND)
    if not sources and kind in ("ipi", "self"):
        kind = "msi"
    vector = draw(_VECTOR)
    mode = draw(_MODE)
    if mode == 3 and not profile.allow_remrd:
        mode = 0
    logical = draw(_BOOL)
    trigger = draw(_SMALL) < 2
    choice = draw(_DEST_CHOICE)
    if choice < 3:
        dest = draw(_DEST)
    elif choice < 5:
        target = vm.vcpus[draw(_INDEX) % len(vm.vcpus)]
        dest = target.vcpu_id if choice == 3 else target.xapic_id
    else:
        dest = draw(_ANY_U32)
    if kind == "msi":
        rh = draw(_SMALL) < 2
        lo = 0xFEE00000 | (dest & 0xFF) << 12 | rh << 3 | logical << 2
        hi = dest & 0xFFFFFF00 if draw(_SMALL) else draw(_HI)
        data = vector | mode << 8 | draw(_BOOL) << 14 | trigger << 15
        return MsiInjection(_raw_bits(draw, lo, 32), _raw_bits(draw, hi, 32), _raw_bits(draw, data, 32))
    if kind == "ioapic":
        level, remote_irr = draw(_RTE_STATE)
        rte = vector | mode << 8 | logical << 11 | remote_irr << 14 | level << 15 | (dest & 0xFF) << 56
        if draw(_SMALL) == 0:
            rte |= 1 << 16  # masked
        return IoapicInjection(draw(_PIN), _raw_bits(draw, rte, 64))
    source = sources[draw(_INDEX) % len(sources)]
    if kind == "self":
        return SelfIpiInjection(source, _raw_bits(draw, draw(_SELF_VALUE), 64))
    shorthand = draw(_SHORTHAND)
    level = draw(_SMALL) != 0
    low = vector | mode << 8 | logical << 11 | level << 14 | trigger << 15 | shorthand << 18
    if draw(_SMALL) == 0:
        low |= draw(_ICR_JUNK)  # busy or reserved bits
    return IcrInjection(source, _raw_bits(draw, (dest & 0xFFFFFFFF) << 32 | low, 64))


@st.composite
def cases(draw: st.DrawFn, profile: Profile = Profile()) -> tuple[VmState, list[Injection]]:
    """One VM state and several injections, each judged against the state as written."""
    vm = draw(vm_states(profile))
    count = 4 + draw(_SMALL)
    return vm, [draw(injections(vm, profile)) for _ in range(count)]
