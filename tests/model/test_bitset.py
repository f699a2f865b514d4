"""The set-algebra model (``model/bitset.py``) equals the per-vCPU reference (``model/resolve.py``).

For every release in ``policy.VARIANTS``, on generated VMs (the fuzzer's small corner-case VMs and
large ones: up to 1,024 vCPUs, sparse ids, aliases, mixed modes, sw-disabled, LDR/DFR variety,
disabled APICs) and generated messages and injections, the outcome is the same: receivers,
effects in order, the return value, the refusal. A policy field that the reference reads and the
set algebra does not shows up here as a failure.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apicmap.decode import Refused, decode_for_kvm
from apicmap.domain.message import Injection, MsiInjection
from apicmap.domain.vm import DFR_CLUSTER, DFR_FLAT, Vcpu, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.fuzz.strategies import DESTS, Profile, injections, vm_states
from apicmap.model.apic_map import build_map
from apicmap.model.bitset import VmIndex, path_of, resolve_message, supports
from apicmap.model.engine import ModelEngine
from apicmap.model.policy import VARIANTS, KernelPolicy
from apicmap.model.resolve import Trace, deliver
from tests.known.test_fast_slow import messages, vms

# The releases the set algebra implements; the others take the reference path (test below).
_POLICY = st.sampled_from([p for p in VARIANTS if supports(p)])
_PROFILE = st.builds(Profile, vector_hashing=st.booleans(), smm=st.booleans(), x2apic_sources_only=st.just(False),
                     allow_remrd=st.just(True))


@st.composite
def large_vms(draw: st.DrawFn) -> VmState:
    """Up to 1,024 vCPUs: sparse ids, aliased xAPIC IDs, mixed modes, sw-disabled and disabled
    APICs, flat/cluster/raw DFRs, multi-bit and duplicate logical IDs, arb_prio variety."""
    count = draw(st.sampled_from([8, 17, 64, 255, 256, 257, 600, 1024]))
    stride = draw(st.sampled_from([1, 1, 2, 3, 4]))
    start = draw(st.sampled_from([0, 1, 200]))
    ids = [start + i * stride for i in range(count) if start + i * stride <= 4095]
    if draw(st.booleans()):
        ids = ids[::-1] if draw(st.booleans()) else ids[1::2] + ids[::2]  # creation order != id order
    seed = draw(st.integers(0, 1 << 30))
    x2_share = draw(st.sampled_from([0, 1, 3, 10]))  # in 10
    alias = draw(st.sampled_from([0, 7, 50]))
    logical = draw(st.sampled_from(["none", "flat", "cluster", "mixed", "junk"]))
    vcpus = []
    for n, vid in enumerate(ids):
        h = (seed ^ (n * 2654435761)) & 0xFFFFFFFF
        roll = h % 10
        mode = ApicMode.X2APIC if roll < x2_share else ApicMode.XAPIC
        if h % 37 == 0:
            mode = ApicMode.DISABLED
        sw = h % 11 != 0
        arb = (h >> 8) % 3 if h % 5 == 0 else 0
        if mode is ApicMode.X2APIC:
            vcpus.append(Vcpu(vid, mode, sw, arb_prio=arb))
            continue
        xapic_id = (h >> 4) % 8 if alias and h % alias == 0 else vid & 0xFF
        if logical == "none":
            ldr, dfr = 0, DFR_FLAT
        elif logical == "flat" or (logical == "mixed" and h % 2):
            ldr, dfr = (1 << (n % 8)) << 24 if n < 8 or h % 13 == 0 else 0, DFR_FLAT
        elif logical == "cluster" or logical == "mixed":
            ldr, dfr = ((((n // 4) % 15) << 4 | 1 << (n % 4)) << 24), DFR_CLUSTER
        else:
            ldr, dfr = ((h >> 12) & 0xFF) << 24 | (h & 3), [DFR_FLAT, DFR_CLUSTER, 0x5FFFFFFF][h % 3]
        vcpus.append(Vcpu(vid, mode, sw, xapic_id, ldr, dfr, arb_prio=arb))
    return VmState(tuple(vcpus), use_32bit_ids=draw(st.booleans()), disable_broadcast_quirk=draw(st.booleans()),
                   vector_hashing=draw(st.booleans()), smm=draw(st.booleans()))


@st.composite
def large_injections(draw: st.DrawFn, vm: VmState) -> Injection:
    """The fuzzer's injections plus destinations that name this VM's vCPUs and clusters."""
    if draw(st.integers(0, 2)):
        return draw(injections(vm, Profile(x2apic_sources_only=False, allow_remrd=True)))
    target = vm.vcpus[draw(st.integers(0, len(vm.vcpus) - 1))]
    dest = draw(st.sampled_from([target.vcpu_id, target.xapic_id, (target.vcpu_id >> 4) << 16 | 0xFFFF,
                                 (target.ldr >> 24) & 0xFF, *DESTS]))
    logical = draw(st.booleans())
    rh = draw(st.integers(0, 4)) == 0
    data = draw(st.integers(0x10, 0xFF)) | draw(st.sampled_from([0, 0, 1, 2, 4, 5, 6, 7])) << 8 \
        | draw(st.booleans()) << 15
    hi = dest & 0xFFFFFF00 if vm.use_32bit_ids else 0
    return MsiInjection(0xFEE00000 | (dest & 0xFF) << 12 | rh << 3 | logical << 2, hi, data)


def _check(vm: VmState, policy: KernelPolicy, items: list[Injection], paths: bool = False) -> None:
    prepared = ModelEngine(policy).prepare(vm)
    if paths:  # the path the sweep groups by equals the one the explained reference records
        for injection in items:
            decoded = decode_for_kvm(injection, vm, prepared.rules)
            if not isinstance(decoded, Refused):
                explained = prepared.deliver(injection, explain=True).explanation
                assert explained is not None and path_of(prepared.index, decoded) == explained.path
    batch = prepared.deliver_many(items)
    for injection, together in zip(items, batch, strict=True):
        reference = prepared._resolve(injection, False)
        fast = prepared.deliver(injection)
        assert fast == reference, (policy.key, injection)
        assert list(fast.effects) == list(reference.effects)  # effects in the same order
        assert together == reference, (policy.key, injection)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data(), _POLICY, _PROFILE)
def test_small_vms_agree(data: st.DataObject, policy: KernelPolicy, profile: Profile) -> None:
    vm = data.draw(vm_states(profile))
    _check(vm, policy, [data.draw(injections(vm, profile)) for _ in range(8)], paths=True)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data(), _POLICY)
def test_large_vms_agree(data: st.DataObject, policy: KernelPolicy) -> None:
    vm = data.draw(large_vms())
    _check(vm, policy, [data.draw(large_injections(vm)) for _ in range(12)])


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data(), _POLICY)
def test_messages_agree(data: st.DataObject, policy: KernelPolicy) -> None:
    """Message level (arb_prio, vector hashing off and on), against ``resolve.deliver`` directly."""
    vm = data.draw(vms())
    amap = build_map(vm, policy)
    ix = VmIndex(vm, amap, policy)
    for _ in range(6):
        message = data.draw(messages(vm))
        trace = Trace()
        r, effects = deliver(vm, amap, policy, message, trace)
        assert path_of(ix, message) == trace.path
        fr, receivers, fast_effects = resolve_message(ix, message)
        assert (fr, list(fast_effects)) == (r, effects), (policy.key, message)
        assert receivers == tuple(sorted({e.vcpu_id for e in effects}))


def test_releases_the_set_algebra_does_not_implement_take_the_reference() -> None:
    from apicmap.model.engine import ModelEngine

    unsupported = [p for p in VARIANTS if not supports(p)]
    assert unsupported and all(p.last is not None and p.last < (4, 11) for p in unsupported)
    for policy in unsupported:
        assert not ModelEngine(policy).prepare(VmState.simple(2)).fast
