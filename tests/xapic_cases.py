"""IPIs from xAPIC-mode sources, shared by the host (tests/kvm) and booted-kernel (tests/kernels)
tests: one VM, the cases, and the comparison with the model."""

from __future__ import annotations

from apicmap import IcrInjection, Vcpu, VmState
from apicmap.domain.engine import Engine
from apicmap.model.engine import ModelEngine
from apicmap.model.policy import policy_for_release

PHYSICAL, LOGICAL, LOWEST = 0, 1 << 11, 1 << 8
SELF, ALL, ALL_BUT_SELF = 1 << 18, 2 << 18, 3 << 18


def icr(dest: int, low: int) -> int:
    """The 64-bit xAPIC ICR of ``IcrInjection``: ICR2 (destination in bits 63:56) above the low word."""
    return dest << 56 | low


# Four xAPIC vCPUs; vCPU 3's xAPIC ID is 1, an alias of vCPU 1's. Flat logical IDs: one LDR bit each.
XAPIC_VM = VmState(tuple(Vcpu(i, xapic_id=1 if i == 3 else i, ldr=1 << (24 + i)) for i in range(4)))

# (name, source, ICR): each FIXED or LOWEST (what the guest-code path sends).
XAPIC_CASES = [
    ("physical to the aliased ID 1", 0, icr(1, PHYSICAL | 0x40)),
    ("physical to ID 2", 1, icr(2, PHYSICAL | 0x41)),
    ("physical to nobody (ID 7)", 0, icr(7, PHYSICAL | 0x42)),
    ("physical broadcast 0xFF", 2, icr(0xFF, PHYSICAL | 0x43)),
    ("logical flat 0x06", 0, icr(0x06, LOGICAL | 0x44)),
    ("logical flat 0x0A (vCPUs 1 and 3)", 2, icr(0x0A, LOGICAL | 0x45)),
    ("logical flat broadcast 0xFF", 1, icr(0xFF, LOGICAL | 0x46)),
    ("lowest priority logical 0x0C", 0, icr(0x0C, LOGICAL | LOWEST | 0x47)),
    ("self shorthand", 3, icr(0, SELF | 0x48)),
    ("all-including-self shorthand", 1, icr(0, ALL | 0x49)),
    ("all-but-self shorthand", 2, icr(0, ALL_BUT_SELF | 0x4A)),
]


def disagreements(engine: Engine, release: str) -> list[str]:
    """Every XAPIC_CASES injection on ``engine`` (twice: the first must leave nothing behind)
    against the model at ``release``; the cases where they differ."""
    problems = []
    with engine.prepare(XAPIC_VM) as kernel, ModelEngine(policy_for_release(release)).prepare(XAPIC_VM) as model:
        for name, source, value in XAPIC_CASES:
            injection = IcrInjection(source, value)
            ours = model.deliver(injection)
            for attempt in ("first", "again"):
                theirs = kernel.deliver(injection)
                if theirs.receivers != ours.receivers or set(theirs.effects) != set(ours.effects):
                    problems.append(f"{name} ({attempt}): kernel {theirs.receivers} {theirs.effects}, "
                                    f"model {ours.receivers} {ours.effects}")
    return problems

