from __future__ import annotations

import errno
import json

from hypothesis import given
from hypothesis import strategies as st

from apicmap import (
    ApicMode,
    Effect,
    EffectKind,
    Explanation,
    IcrInjection,
    Injection,
    InputError,
    IoapicInjection,
    MsiInjection,
    NotExpressible,
    Outcome,
    SelfIpiInjection,
    Vcpu,
    VmState,
)
from apicmap.domain.reasons import Code, Reason
from apicmap.kernels import RemoteError
from apicmap.kernels.wire import (
    decode_error,
    decode_injection,
    decode_outcome,
    decode_vm,
    encode_error,
    encode_injection,
    encode_outcome,
    encode_vm,
)
from apicmap.kvm.ioctl import KvmIoctlError

u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 2**64 - 1)
text = st.text(max_size=30)


@st.composite
def vms(draw: st.DrawFn) -> VmState:
    ids = draw(st.lists(st.integers(0, 4095), min_size=1, max_size=6, unique=True))
    vcpus = tuple(Vcpu(i, mode=draw(st.sampled_from(ApicMode)), sw_enabled=draw(st.booleans()),
                       xapic_id=draw(st.integers(0, 255)), ldr=draw(u32), dfr=draw(u32),
                       arb_prio=draw(st.integers(0, 1000)), tpr=draw(st.integers(0, 255)),
                       lapic_id=draw(st.none() | u32), lapic_ldr=draw(st.none() | u32)) for i in ids)
    return VmState(vcpus, use_32bit_ids=draw(st.booleans()), disable_broadcast_quirk=draw(st.booleans()),
                   vector_hashing=draw(st.booleans()), smm=draw(st.booleans()))


injections = st.one_of(
    st.builds(MsiInjection, u32, u32, u32),
    st.builds(IcrInjection, st.integers(0, 4095), u64),
    st.builds(SelfIpiInjection, st.integers(0, 4095), u32),
    st.builds(IoapicInjection, st.integers(0, 23), u64),
)
effects = st.builds(Effect, st.integers(0, 4095), st.sampled_from(EffectKind), st.none() | st.integers(0, 255),
                    st.booleans())
arg_values = st.none() | st.booleans() | st.integers(-1, 2**32) | text
reasons = st.recursive(
    st.builds(Reason, st.sampled_from(Code), st.just(())),
    lambda inner: st.builds(Reason, st.sampled_from(Code),
                            st.lists(st.tuples(text, arg_values | inner), max_size=3).map(tuple)),
    max_leaves=6)
explanations = st.builds(Explanation, message=text, path=reasons, map_state=st.none() | text,
                         reasons=st.lists(st.tuples(st.integers(0, 4095), reasons), max_size=4).map(tuple),
                         notes=st.lists(reasons, max_size=3).map(tuple))
outcomes = st.builds(Outcome, engine=st.sampled_from(["kvm", "model", "arch"]),
                     receivers=st.lists(st.integers(0, 4095), max_size=5).map(tuple),
                     effects=st.lists(effects, max_size=4).map(tuple), result=st.none() | st.integers(-1, 4096),
                     rejected=st.none() | text, undefined=st.lists(st.integers(0, 4095), max_size=3).map(tuple),
                     explanation=st.none() | explanations)


def _through_json(value: object) -> object:
    return json.loads(json.dumps(value))


@given(vms())
def test_vm_round_trip(vm: VmState) -> None:
    assert decode_vm(_through_json(encode_vm(vm))) == vm  # type: ignore[arg-type]


@given(injections)
def test_injection_round_trip(injection: Injection) -> None:
    assert decode_injection(_through_json(encode_injection(injection))) == injection  # type: ignore[arg-type]


@given(outcomes)
def test_outcome_round_trip_with_explanation(outcome: Outcome) -> None:
    back = decode_outcome(_through_json(encode_outcome(outcome)))  # type: ignore[arg-type]
    assert back == outcome and back.engine == outcome.engine
    assert back.explanation == outcome.explanation  # Outcome's == leaves the explanation out


def test_errors_come_back_as_the_same_type() -> None:
    not_expressible = decode_error(_through_json(encode_error(NotExpressible("IPI from xAPIC-mode vCPU 0"))))  # type: ignore[arg-type]
    assert type(not_expressible) is NotExpressible and str(not_expressible) == "IPI from xAPIC-mode vCPU 0"

    original = InputError("vcpu 3", "bad LDR", "0..0xffffffff")
    back = decode_error(_through_json(encode_error(original)))  # type: ignore[arg-type]
    assert type(back) is InputError and str(back) == str(original)
    assert (back.where, back.problem, back.allowed) == ("vcpu 3", "bad LDR", "0..0xffffffff")

    ioctl = decode_error(_through_json(encode_error(KvmIoctlError("KVM_SIGNAL_MSI", errno.EINVAL))))  # type: ignore[arg-type]
    assert type(ioctl) is KvmIoctlError and ioctl.errno == errno.EINVAL and "KVM_SIGNAL_MSI" in str(ioctl)

    assert type(decode_error({"type": "ValueError", "message": "x"})) is ValueError


def test_unknown_error_types_keep_their_name() -> None:
    class Strange(Exception):
        pass

    back = decode_error(_through_json(encode_error(Strange("odd"))))  # type: ignore[arg-type]
    assert isinstance(back, RemoteError) and "Strange" in str(back) and "odd" in str(back)
