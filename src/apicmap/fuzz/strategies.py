"""Hypothesis strategies for VM states and injections, biased toward the corners:
sparse and aliased IDs, vcpu_ids above 255, mixed xAPIC/x2APIC, multi-bit and duplicate LDRs, raw
DFR values, software- and hardware-disabled APICs, X2APIC_API flags; every encoding and delivery
mode, shorthands, broadcasts, RH, and destinations near the boundaries."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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

    @staticmethod
    def for_host(report: Mapping[str, object]) -> Profile:
        """What a kernel's kvm engine can run, from its ``kvm.host.host_report()``."""
        return Profile(vector_hashing=bool(report.get("vector_hashing", True)), smm=bool(report.get("smm")))


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


@st.composite
def vm_states(draw: st.DrawFn, profile: Profile = Profile()) -> VmState:
    ids = draw(_LAYOUT) if draw(_LAYOUT_KIND) else draw(_ID_LIST)
    vcpus = []
    for vid in ids:
        mode = draw(_APIC_MODE)
        sw_enabled = draw(_BOOL) or draw(_BOOL)  # 3 in 4 enabled
        if mode is ApicMode.X2APIC:
            vcpus.append(Vcpu(vid, mode, sw_enabled))
            continue
        choice = draw(_SMALL)
        xapic_id = draw(_XAPIC_ID) if choice < 4 else vid & 0xFF  # aliasing is common
        ldr = draw(_LOGICAL_ID) << 24
        if draw(_SMALL) == 0:
            ldr |= draw(_LDR_JUNK)  # raw junk below bits 31:24
        vcpus.append(Vcpu(vid, mode, sw_enabled, xapic_id, ldr, draw(_DFR)))
    return VmState(tuple(vcpus), use_32bit_ids=draw(_BOOL), disable_broadcast_quirk=draw(_BOOL),
                   vector_hashing=profile.vector_hashing, smm=profile.smm)


_INJECTION_BITS = st.integers(0, (1 << 128) - 1)
_RAW_HOW = st.integers(0, 7)  # 0: flip one bit, 1: flip a random mask, else leave the encoding as built
_RAW_MASK = st.integers(0, (1 << 64) - 1)
_KINDS = ("msi", "msi", "msi", "ipi", "ipi", "ioapic", "self")
_VECTORS = (0, 5, 0x0F, 0x10, 0x40, 0x41, 0xFF)
_SHORTHANDS = (0, 0, 0, 1, 2, 3)
_ICR_JUNKS = (1 << 12, 1 << 13, 1 << 16, 1 << 20)
_HIS = (0, 1, 0x100)
_PINS = (0, 2, 8, 16, 17, 20, 23)
# IOAPIC entries: (level-triggered, Remote IRR) corners, weighted toward the plain ones.
_RTE_STATES = ((0, 0), (0, 0), (1, 0), (1, 0), (1, 1), (0, 1))


class _Bits:
    """Fields sliced from one drawn integer, low bits first: one Hypothesis draw per injection
    instead of a dozen (drawing dominated the campaign's time), and an integer that shrinks
    toward zero shrinks every field toward its first, simplest choice."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    def take(self, bits: int) -> int:
        out = self.value & ((1 << bits) - 1)
        self.value >>= bits
        return out

    def pick(self, choices: tuple[int, ...] | tuple[str, ...] | list[int], bits: int = 4) -> int | str:
        return choices[self.take(bits) % len(choices)]

    def small(self) -> int:
        """0..9, as ``_SMALL`` draws."""
        return self.take(4) % 10



@st.composite
def injections(draw: st.DrawFn, vm: VmState, profile: Profile = Profile()) -> Injection:
    return injection_from_bits(vm, profile, draw(_INJECTION_BITS), _RawFlips(draw))


class _RawFlips:
    """Now and then flip one raw bit, or a random mask, of a ``width``-bit encoding, so that every bit
    is fuzzed, not only the named fields (Remote IRR and delivery status of an RTE, reserved ICR
    bits...). Drawn separately from the fields: the high bits of one huge drawn integer are mostly
    zero, so flips sliced from it would rarely reach the top bits."""

    __slots__ = ("draw",)

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def __call__(self, value: int, width: int) -> int:
        how = self.draw(_RAW_HOW)
        if how == 0:
            return value ^ (1 << (self.draw(_RAW_MASK) % width))
        if how == 1:
            return value ^ (self.draw(_RAW_MASK) & ((1 << width) - 1))
        return value


def injection_from_bits(vm: VmState, profile: Profile, bits: int,
                        raw: Callable[[int, int], int] = lambda value, width: value) -> Injection:
    """The injection that ``bits`` (one draw of ``_INJECTION_BITS``) selects for ``vm``."""
    sources = [v.vcpu_id for v in vm.vcpus
               if v.mode is ApicMode.X2APIC or (not profile.x2apic_sources_only and v.present)]
    b = _Bits(bits)
    kind = b.pick(_KINDS, 3)
    if not sources and kind in ("ipi", "self"):
        kind = "msi"
    vector = 0x10 + b.take(8) % 0xF0 if b.take(1) else int(b.pick(_VECTORS, 3))
    mode = int(b.pick(MODES))
    if mode == 3 and not profile.allow_remrd:
        mode = 0
    logical = b.take(1)
    trigger = b.small() < 2
    choice = b.take(3) % 6
    if choice < 3:
        dest = int(b.pick(DESTS, 5))
    elif choice < 5:
        target = vm.vcpus[b.take(16) % len(vm.vcpus)]
        dest = target.vcpu_id if choice == 3 else target.xapic_id
    else:
        dest = b.take(32)
    if kind == "msi":
        rh = b.small() < 2
        lo = 0xFEE00000 | (dest & 0xFF) << 12 | rh << 3 | logical << 2
        hi = dest & 0xFFFFFF00 if b.small() else int(b.pick(_HIS, 2))
        data = vector | mode << 8 | b.take(1) << 14 | trigger << 15
        return MsiInjection(raw(lo, 32), raw(hi, 32), raw(data, 32))
    if kind == "ioapic":
        level, remote_irr = _RTE_STATES[b.take(3) % len(_RTE_STATES)]
        rte = vector | mode << 8 | logical << 11 | remote_irr << 14 | level << 15 | (dest & 0xFF) << 56
        if b.small() == 0:
            rte |= 1 << 16  # masked
        return IoapicInjection(int(b.pick(_PINS, 3)), raw(rte, 64))
    source = sources[b.take(16) % len(sources)]
    if kind == "self":
        value = b.take(8) if b.take(3) else (0x100, 0x131)[b.take(1)]
        return SelfIpiInjection(source, raw(value, 64))
    shorthand = int(b.pick(_SHORTHANDS, 3))
    level = b.small() != 0
    low = vector | mode << 8 | logical << 11 | level << 14 | trigger << 15 | shorthand << 18
    if b.small() == 0:
        low |= int(b.pick(_ICR_JUNKS, 2))  # busy or reserved bits
    return IcrInjection(source, raw((dest & 0xFFFFFFFF) << 32 | low, 64))


_VM_STRATEGIES: dict[Profile, st.SearchStrategy[VmState]] = {}


@st.composite
def cases(draw: st.DrawFn, profile: Profile = Profile()) -> tuple[VmState, list[Injection]]:
    """One VM state and several injections, each judged against the state as written."""
    strategy = _VM_STRATEGIES.get(profile)
    if strategy is None:
        strategy = _VM_STRATEGIES[profile] = vm_states(profile)  # built once per profile, not per case
    vm = draw(strategy)
    count = 8 + 2 * draw(_SMALL)  # more injections per drawn VM: the VM's draws are shared
    # One integer per injection, mapped without building a strategy per injection (building and
    # validating a composite strategy per draw cost more than the draw itself).
    raw = _RawFlips(draw)
    return vm, [injection_from_bits(vm, profile, draw(_INJECTION_BITS), raw) for _ in range(count)]
