"""Stateful fuzzing of VMM operation sequences against the kernel.

A Hypothesis rule-based state machine creates vCPUs, writes APIC bases, sets LAPIC state,
enables X2APIC_API and signals MSIs, on the real kernel and on a model, comparing every
KVM_SIGNAL_MSI return value. Against the *naive* model (a map that is always fresh) the campaign
rediscovers, by itself, the behaviours that exist only in sequences: the map misses the
last-created vCPU after KVM_CREATE_VCPU, and is not rebuilt after KVM_ENABLE_CAP(X2APIC_API)
(docs/routing.md#when-the-map-is-rebuilt). Against the tracking model there should be no divergence.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from apicmap.domain.message import MsiInjection
from apicmap.domain.vm import DFR_CLUSTER, DFR_FLAT
from apicmap.encoding.apic_base import ApicMode
from apicmap.files.output import atomic_write_text
from apicmap.files.sequence import Step, apply
from apicmap.kvm.driver import RealSequence
from apicmap.model.lifecycle import ModelLifecycle
from apicmap.model.policy import KernelPolicy, policy_for_release

STALE_AFTER_CREATE = "the map misses the last-created vCPU after KVM_CREATE_VCPU"
STALE_AFTER_ENABLE_CAP = "the map is not rebuilt after KVM_ENABLE_CAP(X2APIC_API)"


BOTH = f"{STALE_AFTER_CREATE}, and KVM_ENABLE_CAP(X2APIC_API) does not repair it"
OTHER = "other sequence behaviour"


def _replay(steps: list[Step], policy: KernelPolicy, create: bool, cap: bool) -> int | None:
    model = ModelLifecycle(policy, stale_after_create=create, stale_after_enable_cap=cap)
    result = None
    for step in steps:
        result = apply(step, model)
    return result


def classify(steps: list[Step], kernel_result: int | None, policy: KernelPolicy) -> str:
    """Which of KVM's two non-recalculating operations the kernel's answer needs: replay the steps
    on the full lifecycle model without each behaviour in turn (docs/routing.md#when-the-map-is-rebuilt)."""
    if _replay(steps, policy, True, True) != kernel_result:
        return OTHER
    needs_create = _replay(steps, policy, False, True) != kernel_result
    needs_cap = _replay(steps, policy, True, False) != kernel_result
    if needs_create and needs_cap:
        return BOTH
    if needs_cap:
        return STALE_AFTER_ENABLE_CAP
    return STALE_AFTER_CREATE


class SequenceDivergence(Exception):
    def __init__(self, kind: str, steps: list[Step]) -> None:
        super().__init__(kind)
        self.kind = kind
        self.steps = steps


# One exception type per kind, raised from its own line, so that Hypothesis shrinks each kind
# separately instead of sliding from one behaviour to another.
class _StaleAfterCreate(SequenceDivergence):
    pass


class _StaleAfterEnableCap(SequenceDivergence):
    pass


class _Both(SequenceDivergence):
    pass


class _OtherSequence(SequenceDivergence):
    pass


@dataclass(slots=True)
class StatefulCampaign:
    kernel: str | None = None
    track_recalculation: bool = False  # False: rediscover the sequence-only behaviours
    seconds: float = 60.0
    seed: int = 0
    out: Path | None = None
    found: dict[str, tuple[float, list[Step], str | None]] = field(default_factory=dict)
    sequences: int = 0

    def run(self) -> dict[str, tuple[float, list[Step], str | None]]:
        started = time.monotonic()
        if self.out:
            self.out.mkdir(parents=True, exist_ok=True)
        chunk = self.seed
        while time.monotonic() - started < self.seconds:
            try:
                self._chunk(chunk)
            except SequenceDivergence as divergence:
                if divergence.kind not in self.found:
                    path = self._write(divergence) if self.out else None
                    self.found[divergence.kind] = (time.monotonic() - started, divergence.steps, path)
            chunk += 1
        return self.found

    def _chunk(self, chunk_seed: int) -> None:
        campaign = self
        policy = policy_for_release(self.kernel)
        ids = st.sampled_from([0, 1, 2, 3, 256])
        index = st.integers(0, 7)

        class Machine(RuleBasedStateMachine):
            def __init__(self) -> None:
                super().__init__()
                self.model = ModelLifecycle(policy, track_recalculation=campaign.track_recalculation)
                self.real = RealSequence()
                self.steps: list[Step] = []
                self.ids: list[int] = []
                campaign.sequences += 1

            def _do(self, step: Step) -> None:
                self.steps.append(step)
                ours, theirs = apply(step, self.model), apply(step, self.real)
                if step.op == "signal_msi" and ours != theirs:
                    kind = classify(self.steps, theirs, policy)
                    if kind in campaign.found:
                        return
                    steps = [*self.steps[:-1], Step(step.op, msi=step.msi, expect_return=theirs)]
                    if kind == STALE_AFTER_CREATE:
                        raise _StaleAfterCreate(kind, steps)
                    if kind == STALE_AFTER_ENABLE_CAP:
                        raise _StaleAfterEnableCap(kind, steps)
                    if kind == BOTH:
                        raise _Both(kind, steps)
                    raise _OtherSequence(kind, steps)

            @precondition(lambda self: len(self.ids) < 4)
            @rule(vcpu_id=ids)
            def create_vcpu(self, vcpu_id: int) -> None:
                if vcpu_id not in self.ids:
                    self.ids.append(vcpu_id)
                    self._do(Step("create_vcpu", vcpu_id))

            @precondition(lambda self: bool(self.ids))
            @rule(i=index, mode=st.sampled_from([ApicMode.XAPIC, ApicMode.X2APIC, ApicMode.DISABLED]))
            def set_apic_base(self, i: int, mode: ApicMode) -> None:
                self._do(Step("set_apic_base", self.ids[i % len(self.ids)], mode))

            @precondition(lambda self: bool(self.ids))
            @rule(i=index, xapic_id=st.sampled_from([0, 1, 2]), logical=st.sampled_from([0, 1, 2, 3, 0x11]),
                  cluster=st.booleans(), sw_enabled=st.booleans())
            def set_lapic(self, i: int, xapic_id: int, logical: int, cluster: bool, sw_enabled: bool) -> None:
                self._do(Step("set_lapic", self.ids[i % len(self.ids)], xapic_id=xapic_id, ldr=logical << 24,
                              dfr=DFR_CLUSTER if cluster else DFR_FLAT, sw_enabled=sw_enabled))

            @rule(use_32bit_ids=st.booleans(), disable_broadcast_quirk=st.booleans())
            def enable_cap(self, use_32bit_ids: bool, disable_broadcast_quirk: bool) -> None:
                self._do(Step("enable_cap", use_32bit_ids=use_32bit_ids,
                              disable_broadcast_quirk=disable_broadcast_quirk))

            @precondition(lambda self: bool(self.ids))
            @rule(dest=st.sampled_from([0, 1, 2, 3, 0xFF, 0x100]), logical=st.booleans(),
                  nmi=st.booleans())
            def signal_msi(self, dest: int, logical: bool, nmi: bool) -> None:
                data = 0x40 | (4 << 8 if nmi else 0)
                msi = MsiInjection(0xFEE00000 | (dest & 0xFF) << 12 | logical << 2, dest & 0xFFFFFF00, data)
                self._do(Step("signal_msi", msi=msi))

            def teardown(self) -> None:
                self.real.close()

        # Hypothesis seeds a state machine run from the global random module: seeding it makes
        # --seed reproducible for sequences too.
        random.seed(chunk_seed)
        run_state_machine_as_test(Machine, settings=settings(
            max_examples=100, stateful_step_count=12, deadline=None, database=None, derandomize=False,
            suppress_health_check=list(HealthCheck), report_multiple_bugs=False))

    def _write(self, divergence: SequenceDivergence) -> str:
        assert self.out is not None
        digest = hashlib.sha1(divergence.kind.encode()).hexdigest()[:8]
        path = self.out / f"sequence-{digest}.toml"
        lines = [f"# apicmap fuzz --stateful reproducer: {divergence.kind}",
                 "# the naive model (map always fresh) disagrees with the kernel; the model that tracks",
                 "# KVM's recalculation points agrees (docs/routing.md#when-the-map-is-rebuilt). re-run: apicmap check "
                 "THIS_FILE"]
        if self.kernel:
            lines += ["[sequence]", f'kernel = "{self.kernel}"']
        for step in divergence.steps:
            lines += ["", *step.toml()]
        atomic_write_text(path, "\n".join(lines) + "\n")
        return str(path)
