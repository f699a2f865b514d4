"""JSON codecs for what crosses the host-guest channel: VM states, injections, outcomes, errors.

Every value maps to plain JSON (objects, lists, ints, strings, booleans, null) and back to an
equal value: ``decode_x(encode_x(v)) == v``, explanations included.
"""

from __future__ import annotations

import builtins
from typing import Any

import apicmap.errors as apicmap_errors
from apicmap.domain.message import IcrInjection, Injection, IoapicInjection, MsiInjection, SelfIpiInjection
from apicmap.domain.outcome import Effect, EffectKind, Explanation, Outcome
from apicmap.domain.reasons import Code, Reason
from apicmap.domain.vm import Vcpu, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.kernels.errors import GuestChannelError, RemoteError

JsonObject = dict[str, Any]


def _field(data: JsonObject, key: str) -> Any:
    try:
        return data[key]
    except (KeyError, TypeError):
        raise GuestChannelError(f"malformed message: no {key!r} in {str(data)[:200]}") from None


def _int(data: JsonObject, key: str) -> int:
    value = _field(data, key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise GuestChannelError(f"malformed message: {key!r} is {value!r}, not an integer")
    return value


def encode_vcpu(vcpu: Vcpu) -> JsonObject:
    # lapic_id / lapic_ldr: the raw x2APIC-mode page words the kvm engine writes with KVM_SET_LAPIC
    # (null: a get/set round trip). Dropping them would make the guest write a round trip instead,
    # which for vcpu_id < 256 plants vcpu_id itself and so looks like the 6.11 read-only ID.
    # x2apic_ldr_reg is model-internal (derived per release by model/set_lapic.py): not sent.
    return {"vcpu_id": vcpu.vcpu_id, "mode": vcpu.mode.value, "sw_enabled": vcpu.sw_enabled,
            "xapic_id": vcpu.xapic_id, "ldr": vcpu.ldr, "dfr": vcpu.dfr, "arb_prio": vcpu.arb_prio, "tpr": vcpu.tpr,
            "lapic_id": vcpu.lapic_id, "lapic_ldr": vcpu.lapic_ldr}


def _optional_int(data: JsonObject, key: str) -> int | None:
    value = _field(data, key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise GuestChannelError(f"malformed message: {key!r} is {value!r}, not an integer or null")
    return value


def decode_vcpu(data: JsonObject) -> Vcpu:
    return Vcpu(_int(data, "vcpu_id"), mode=ApicMode(_field(data, "mode")), sw_enabled=bool(_field(data, "sw_enabled")),
                xapic_id=_int(data, "xapic_id"), ldr=_int(data, "ldr"), dfr=_int(data, "dfr"),
                arb_prio=_int(data, "arb_prio"), tpr=_int(data, "tpr"),
                lapic_id=_optional_int(data, "lapic_id"), lapic_ldr=_optional_int(data, "lapic_ldr"))


def encode_vm(vm: VmState) -> JsonObject:
    return {"vcpus": [encode_vcpu(v) for v in vm.vcpus], "use_32bit_ids": vm.use_32bit_ids,
            "disable_broadcast_quirk": vm.disable_broadcast_quirk, "vector_hashing": vm.vector_hashing,
            "smm": vm.smm}


def decode_vm(data: JsonObject) -> VmState:
    return VmState(tuple(decode_vcpu(v) for v in _field(data, "vcpus")),
                   use_32bit_ids=bool(_field(data, "use_32bit_ids")),
                   disable_broadcast_quirk=bool(_field(data, "disable_broadcast_quirk")),
                   vector_hashing=bool(_field(data, "vector_hashing")), smm=bool(_field(data, "smm")))


def encode_injection(injection: Injection) -> JsonObject:
    match injection:
        case MsiInjection(address_lo, address_hi, data):
            return {"kind": "msi", "address_lo": address_lo, "address_hi": address_hi, "data": data}
        case IcrInjection(source, icr):
            return {"kind": "icr", "source": source, "icr": icr}
        case SelfIpiInjection(source, value):
            return {"kind": "self_ipi", "source": source, "value": value}
        case IoapicInjection(pin, rte):
            return {"kind": "ioapic", "pin": pin, "rte": rte}
    raise TypeError(f"not an injection: {injection!r}")


def decode_injection(data: JsonObject) -> Injection:
    kind = _field(data, "kind")
    if kind == "msi":
        return MsiInjection(_int(data, "address_lo"), _int(data, "address_hi"), _int(data, "data"))
    if kind == "icr":
        return IcrInjection(_int(data, "source"), _int(data, "icr"))
    if kind == "self_ipi":
        return SelfIpiInjection(_int(data, "source"), _int(data, "value"))
    if kind == "ioapic":
        return IoapicInjection(_int(data, "pin"), _int(data, "rte"))
    raise GuestChannelError(f"malformed message: unknown injection kind {kind!r}")


def encode_effect(effect: Effect) -> JsonObject:
    return {"vcpu_id": effect.vcpu_id, "kind": effect.kind.value, "vector": effect.vector,
            "level_triggered": effect.level_triggered}


def decode_effect(data: JsonObject) -> Effect:
    vector = _field(data, "vector")
    return Effect(_int(data, "vcpu_id"), EffectKind(_field(data, "kind")), None if vector is None else int(vector),
                  bool(_field(data, "level_triggered")))


def encode_reason(reason: Reason) -> JsonObject:
    """A reason code and its parameters (nested reasons encoded the same way)."""
    args = [[name, encode_reason(value) if isinstance(value, Reason) else value] for name, value in reason.args]
    return {"code": reason.code.value, "args": args}


def decode_reason(data: JsonObject) -> Reason:
    try:
        code = Code(_field(data, "code"))
    except ValueError:
        raise GuestChannelError(f"malformed message: unknown reason code {_field(data, 'code')!r}") from None
    args: list[tuple[str, int | str | bool | Reason | None]] = []
    for name, value in _field(data, "args"):
        args.append((str(name), decode_reason(value) if isinstance(value, dict) else value))
    return Reason(code, tuple(args))


def encode_explanation(explanation: Explanation) -> JsonObject:
    return {"message": explanation.message, "path": encode_reason(explanation.path),
            "map_state": explanation.map_state,
            "reasons": [[vcpu_id, encode_reason(r)] for vcpu_id, r in explanation.reasons],
            "notes": [encode_reason(n) for n in explanation.notes]}


def decode_explanation(data: JsonObject) -> Explanation:
    map_state = _field(data, "map_state")
    return Explanation(message=str(_field(data, "message")), path=decode_reason(_field(data, "path")),
                       map_state=None if map_state is None else str(map_state),
                       reasons=tuple((int(v), decode_reason(r)) for v, r in _field(data, "reasons")),
                       notes=tuple(decode_reason(n) for n in _field(data, "notes")))


def encode_outcome(outcome: Outcome) -> JsonObject:
    return {"engine": outcome.engine, "receivers": list(outcome.receivers),
            "effects": [encode_effect(e) for e in outcome.effects], "result": outcome.result,
            "rejected": outcome.rejected, "undefined": list(outcome.undefined),
            "explanation": None if outcome.explanation is None else encode_explanation(outcome.explanation)}


def decode_outcome(data: JsonObject) -> Outcome:
    result, rejected, explanation = _field(data, "result"), _field(data, "rejected"), _field(data, "explanation")
    return Outcome(engine=str(_field(data, "engine")), receivers=tuple(int(r) for r in _field(data, "receivers")),
                   effects=tuple(decode_effect(e) for e in _field(data, "effects")),
                   result=None if result is None else int(result), rejected=None if rejected is None else str(rejected),
                   undefined=tuple(int(u) for u in _field(data, "undefined")),
                   explanation=None if explanation is None else decode_explanation(explanation))


# --- errors -------------------------------------------------------------------------------------

# Built-in exception types an engine may raise on bad values; re-raised as the same type.
_BUILTIN_ERRORS = ("ValueError", "TypeError", "KeyError", "IndexError", "NotImplementedError", "OverflowError")


def _error_types() -> dict[str, type[BaseException]]:
    types: dict[str, type[BaseException]] = {}
    for module in (apicmap_errors,):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, apicmap_errors.ApicmapError):
                types[value.__name__] = value
    try:
        from apicmap.kvm.ioctl import KvmIoctlError  # raised by the kvm engine, not exported by apicmap
    except ImportError:  # moved: such errors then come back as RemoteError, with their name
        pass
    else:
        types[KvmIoctlError.__name__] = KvmIoctlError
    for name in _BUILTIN_ERRORS:
        types[name] = getattr(builtins, name)
    return types


def encode_error(err: BaseException) -> JsonObject:
    """An exception as its type name, its message and its JSON-simple attributes (``where``, ``errno``...)."""
    attributes = {k: v for k, v in getattr(err, "__dict__", {}).items()
                  if isinstance(v, str | int | float | bool | type(None))}
    return {"type": type(err).__name__, "message": str(err), "attributes": attributes}


def decode_error(data: JsonObject) -> BaseException:
    """The same exception type with the same message and attributes, or ``RemoteError`` for other types."""
    type_name, message = str(_field(data, "type")), str(_field(data, "message"))
    cls = _error_types().get(type_name)
    if cls is None:
        return RemoteError(f"{type_name} in the guest: {message}")
    err = cls.__new__(cls)
    BaseException.__init__(err, message)  # str(err) is the guest's message, constructor arguments aside
    attributes = data.get("attributes") or {}
    if isinstance(attributes, dict):
        for key, value in attributes.items():
            setattr(err, str(key), value)
    return err
