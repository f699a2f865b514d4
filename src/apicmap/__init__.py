"""apicmap: which vCPUs accept this interrupt, and why.

x86 local-APIC interrupt routing under the architecture (``arch``), under KVM as each kernel
release implements it (``model``), and on the real KVM of this machine (``kvm``).

Typical use::

    from apicmap import VmState, Vcpu, make_engine, MsiInjection
    vm = VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1)))
    outcome = make_engine("model", "6.18").prepare(vm).deliver(MsiInjection(0xFEE01000, 0, 0x40))
    outcome.receivers  # (1, 2)
"""

from apicmap.domain.engine import ENGINE_NAMES, Engine, PreparedVm, deliver_once
from apicmap.domain.message import (
    Broadcast,
    Destination,
    IcrInjection,
    Injection,
    IoapicInjection,
    Logical,
    Message,
    MsiInjection,
    Origin,
    Physical,
    SelfIpiInjection,
    ToAll,
    ToAllButSelf,
    ToSelf,
)
from apicmap.domain.outcome import Effect, EffectKind, Explanation, Outcome, Verdict
from apicmap.domain.vm import Vcpu, VmState, x2apic_ldr
from apicmap.encoding.apic_base import ApicMode
from apicmap.encoding.kinds import DeliveryMode, DestMode, Shorthand, Trigger
from apicmap.engines import make_engine
from apicmap.errors import ApicmapError, EncodingError, InputError, KvmUnavailable, NotExpressible
from apicmap.version import __version__ as __version__

__all__ = [
    "ENGINE_NAMES", "ApicMode", "ApicmapError", "Broadcast", "DeliveryMode", "DestMode", "Destination",
    "Effect", "EffectKind", "EncodingError", "Engine", "Explanation", "IcrInjection", "Injection",
    "InputError", "IoapicInjection", "KvmUnavailable", "Logical", "Message", "MsiInjection",
    "NotExpressible", "Origin", "Outcome", "Physical", "PreparedVm", "SelfIpiInjection", "Shorthand",
    "ToAll", "ToAllButSelf", "ToSelf", "Trigger", "Vcpu", "Verdict", "VmState", "deliver_once",
    "make_engine", "x2apic_ldr",
]
