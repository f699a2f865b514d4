"""Small VMs and injections for the profile tests (plain arithmetic encoders from tests.helpers)."""

from __future__ import annotations

from apicmap.domain.engine import deliver_once
from apicmap.domain.message import Injection, IoapicInjection
from apicmap.domain.outcome import Outcome
from apicmap.domain.vm import DFR_CLUSTER, Vcpu, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.profiles import profile_engine
from apicmap.profiles.policy import Policy

X2 = ApicMode.X2APIC
XA = ApicMode.XAPIC


def run(profile: str | Policy, vm: VmState, injection: Injection, kernel: str | None = None) -> Outcome:
    return deliver_once(profile_engine(profile, kernel), vm, injection, explain=True)


def rte(dest: int, vector: int = 0x40, *, mode: int = 0, logical: bool = False, level: bool = False) -> IoapicInjection:
    return IoapicInjection(16, vector | mode << 8 | int(logical) << 11 | int(level) << 15 | dest << 56)


def xapic_vm(count: int, **kw: object) -> VmState:
    return VmState(tuple(Vcpu(i) for i in range(count)), **kw)  # type: ignore[arg-type]


def x2apic_vm(ids: tuple[int, ...]) -> VmState:
    return VmState(tuple(Vcpu(i, X2) for i in ids))


def flat_vm(tprs: tuple[int, ...]) -> VmState:
    """xAPIC flat logical IDs 1, 2, 4, ... with the given TPRs."""
    return VmState(tuple(Vcpu(i, ldr=(1 << i) << 24, tpr=t) for i, t in enumerate(tprs)))


def cluster_vm() -> VmState:
    """Cluster 1 members 0 and 1 (vCPUs 0, 1), cluster 2 member 0 (vCPU 2)."""
    return VmState((Vcpu(0, ldr=0x11 << 24, dfr=DFR_CLUSTER), Vcpu(1, ldr=0x12 << 24, dfr=DFR_CLUSTER),
                    Vcpu(2, ldr=0x21 << 24, dfr=DFR_CLUSTER)))


ALIASED = VmState((Vcpu(0), Vcpu(1), Vcpu(2, xapic_id=1)))
"""vCPUs 1 and 2 share xAPIC ID 1 (examples/aliased-xapic-id.toml)."""
