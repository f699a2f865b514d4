"""The model's fast path equals its slow path wherever KVM makes them equal.

Every documented difference is named in ``apicmap.model.differences`` and has its own test
below showing that it really makes the two paths differ.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apicmap import ApicMode, DeliveryMode, DestMode, Message, Origin, Physical, Vcpu, VmState
from apicmap.decode import destination
from apicmap.encoding.kinds import Shorthand, Trigger
from apicmap.known import fast_slow as d
from apicmap.model.apic_map import build_map
from apicmap.model.policy import VARIANTS, KernelPolicy, policy_for_release
from apicmap.model.resolve import deliver_fast_only, deliver_slow_only

VCPU_IDS = [0, 1, 2, 3, 4, 5, 15, 16, 17, 255, 256, 257, 300]
XAPIC_IDS = [0, 1, 2, 3, 5, 0xF, 0x10, 0xFF]
LDRS = [0, 0x01, 0x02, 0x03, 0x04, 0x08, 0x11, 0x12, 0x21, 0x80, 0xF1]
DFRS = [0xFFFFFFFF, 0x0FFFFFFF, 0x5FFFFFFF]
DESTS = [0, 1, 2, 3, 5, 0x0F, 0x10, 0x11, 0x13, 0x21, 0xF1, 0xFF, 0x100, 0x101, 0x12C, 0x10001,
         0x00000003, 0xFFFFFFFF]


@st.composite
def vms(draw: st.DrawFn) -> VmState:
    ids = draw(st.lists(st.sampled_from(VCPU_IDS), min_size=1, max_size=6, unique=True))
    vcpus = []
    for vid in ids:
        mode = draw(st.sampled_from([ApicMode.XAPIC, ApicMode.XAPIC, ApicMode.X2APIC, ApicMode.DISABLED]))
        xapic = draw(st.one_of(st.just(vid & 0xFF), st.sampled_from(XAPIC_IDS)))
        ldr = draw(st.sampled_from(LDRS)) << 24 if mode is not ApicMode.X2APIC else 0
        dfr = draw(st.sampled_from(DFRS)) if mode is not ApicMode.X2APIC else 0xFFFFFFFF
        vcpus.append(Vcpu(vid, mode, draw(st.booleans()), xapic, ldr, dfr,
                          arb_prio=draw(st.integers(0, 3))))
    return VmState(tuple(vcpus), use_32bit_ids=draw(st.booleans()),
                   disable_broadcast_quirk=draw(st.booleans()), vector_hashing=draw(st.booleans()))


@st.composite
def messages(draw: st.DrawFn, vm: VmState) -> Message:
    x2_sources = [v.vcpu_id for v in vm.vcpus if v.mode is ApicMode.X2APIC]
    source = draw(st.one_of(st.none(), st.sampled_from(x2_sources))) if x2_sources else None
    dest = draw(st.sampled_from(DESTS))
    if source is None:
        dest = dest if vm.use_32bit_ids else dest & 0xFF
    dest_mode = draw(st.sampled_from(DestMode))
    delivery = draw(st.sampled_from([DeliveryMode.FIXED, DeliveryMode.LOWEST, DeliveryMode.NMI]))
    rh = source is None and draw(st.booleans())
    return Message(vector=draw(st.integers(16, 255)), delivery=delivery,
                   dest=destination(Shorthand.NONE, dest, dest_mode, 32 if source is not None else 8),
                   trigger=Trigger.EDGE, level=True, redirection_hint=rh,
                   origin=Origin.IPI if source is not None else Origin.MSI, source=source)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(VARIANTS))
def test_fast_path_equals_slow_path_except_named_differences(data: st.DataObject, policy: KernelPolicy) -> None:
    vm = data.draw(vms())
    message = data.draw(messages(vm))
    amap = build_map(vm, policy)
    fast = deliver_fast_only(vm, amap, policy, message)
    if fast is None:
        return  # KVM itself falls back to the slow path
    slow = deliver_slow_only(vm, policy, message)
    fast_receivers = sorted(e.vcpu_id for e in fast[1])
    slow_receivers = sorted(e.vcpu_id for e in slow[1])
    named = d.fast_slow_difference(vm, amap, policy, message)
    if fast_receivers != slow_receivers:
        assert named, f"unexplained fast/slow difference: fast {fast_receivers} slow {slow_receivers}"
    elif fast[0] != slow[0]:
        # NO_TARGET_RESULT: with nobody accepting, each path returns 0 or -1 by its own rules.
        assert fast_receivers == [] and {fast[0], slow[0]} <= {0, -1}, (fast, slow)


# --- each named difference, shown to be real ---------------------------------------------------------

NEWEST = policy_for_release(None)


def _both(vm: VmState, message: Message, policy: KernelPolicy = NEWEST) -> tuple[list[int], list[int], list[str]]:
    amap = build_map(vm, policy)
    fast = deliver_fast_only(vm, amap, policy, message)
    assert fast is not None, "the case must be handled by the fast path"
    slow = deliver_slow_only(vm, policy, message)
    return (sorted(e.vcpu_id for e in fast[1]), sorted(e.vcpu_id for e in slow[1]),
            d.fast_slow_difference(vm, amap, policy, message))


def msg(dest: int, dest_mode: DestMode = DestMode.PHYSICAL, delivery: DeliveryMode = DeliveryMode.FIXED,
        vector: int = 0x40, source: int | None = None, rh: bool = False) -> Message:
    width = 32 if source is not None or dest > 0xFF else 8
    return Message(vector=vector, delivery=delivery, dest=destination(Shorthand.NONE, dest, dest_mode, width),
                   trigger=Trigger.EDGE, level=True, redirection_hint=rh,
                   origin=Origin.IPI if source is not None else Origin.MSI, source=source)


def test_named_hotplug_first_wins() -> None:
    vm = VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1)), use_32bit_ids=True)
    fast, slow, named = _both(vm, msg(1))
    assert (fast, slow) == ([1], [1, 2]) and d.HOTPLUG_FIRST_WINS in named


def test_named_no_hack_in_map() -> None:
    vm = VmState((Vcpu(1, mode=ApicMode.X2APIC), Vcpu(256)))
    fast, slow, named = _both(vm, msg(0x100, source=1))
    assert (fast, slow) == ([], [256]) and d.NO_HACK_IN_MAP in named


def test_named_x2apic_logical_via_phys_map() -> None:
    vm = VmState((Vcpu(0, mode=ApicMode.X2APIC), Vcpu(1)))
    fast, slow, named = _both(vm, msg(0x2, DestMode.LOGICAL))
    assert (fast, slow) == ([1], []) and d.X2APIC_LOGICAL_VIA_PHYS_MAP in named


def test_named_sw_disabled_logical_drop() -> None:
    vm = VmState((Vcpu(0, ldr=0x01 << 24, sw_enabled=False),))
    fast, slow, named = _both(vm, msg(0x1, DestMode.LOGICAL, DeliveryMode.NMI))
    assert (fast, slow) == ([], [0]) and d.SW_DISABLED_LOGICAL_DROP in named


def test_named_sw_disabled_not_in_logical_map() -> None:
    vm = VmState((Vcpu(0, ldr=0x01 << 24, sw_enabled=False), Vcpu(1, ldr=0x02 << 24)))
    fast, slow, named = _both(vm, msg(0x1, DestMode.LOGICAL, DeliveryMode.NMI), policy_for_release("5.10"))
    assert (fast, slow) == ([], [0]) and d.SW_DISABLED_NOT_IN_LOGICAL_MAP in named


def test_named_lowest_priority_arbitration() -> None:
    vm = VmState(tuple(Vcpu(i, ldr=(1 << i) << 24) for i in range(3)))
    fast, slow, named = _both(vm, msg(0x0F, DestMode.LOGICAL, DeliveryMode.LOWEST, vector=0x43))
    assert fast != slow and d.LOWEST_PRIORITY_ARBITRATION in named  # 4 bits (hole) vs 3 candidates


def test_named_legacy_last_wins() -> None:
    vm = VmState((Vcpu(0, ldr=0x01 << 24), Vcpu(1, ldr=0x01 << 24)))
    fast, slow, named = _both(vm, msg(0x1, DestMode.LOGICAL), policy_for_release("6.2"))
    assert (fast, slow) == ([1], [0, 1]) and d.LEGACY_LAST_WINS in named


def test_named_unknown_dfr() -> None:
    vm = VmState((Vcpu(0, ldr=0x11 << 24, dfr=0x5FFFFFFF),))
    fast, slow, named = _both(vm, msg(0x11, DestMode.LOGICAL))
    assert (fast, slow) == ([0], []) and d.UNKNOWN_DFR in named


def test_named_wide_mda_truncated() -> None:
    vm = VmState((Vcpu(0, ldr=0x11 << 24, dfr=0x0FFFFFFF), Vcpu(1, mode=ApicMode.X2APIC, sw_enabled=False)))
    fast, slow, named = _both(vm, msg(0x111, DestMode.LOGICAL, source=1))
    assert (fast, slow) == ([0], []) and d.WIDE_MDA_TRUNCATED in named


def test_named_broadcast_mismatch() -> None:
    # x2APIC source, xAPIC target: 0xFF is not a broadcast for the fast path (quirk on) but is
    # one for the xAPIC target in the slow path.
    vm = VmState((Vcpu(0, mode=ApicMode.X2APIC), Vcpu(1)), use_32bit_ids=True)
    fast, slow, named = _both(vm, msg(0xFF, source=0))
    assert (fast, slow) == ([], [1]) and d.BROADCAST_MISMATCH in named


def test_named_no_target_result() -> None:
    vm = VmState((Vcpu(0, sw_enabled=False),))
    amap = build_map(vm, NEWEST)
    m = msg(0, delivery=DeliveryMode.LOWEST)
    fast = deliver_fast_only(vm, amap, NEWEST, m)
    assert fast == (0, []) and deliver_slow_only(vm, NEWEST, m) == (-1, [])
    assert d.NO_TARGET_RESULT in d.fast_slow_difference(vm, amap, NEWEST, m)
    assert Physical(0) == m.dest
