"""Engine ``qemu``: real QEMU (TCG) routes the interrupt, a test guest observes who takes it.

``prepare`` checks the VM (vcpu ids 0..n-1, xAPIC or disabled APICs, at most 255 CPUs);
``deliver_many`` boots QEMU once for a batch: the guest programs every APIC as the VM says,
sends each interrupt (an MSI write into the APIC window, an ICR write, or an IOAPIC pin
pulsed through pc-testdev), reports which CPU took which vector or an NMI, and restores the
state before the next one. Nothing is predicted: every receiver is what the guest saw.

KVM's VM flags (``use_32bit_ids``, ``disable_broadcast_quirk``, ``vector_hashing``, ``smm``)
and ``arb_prio`` have no meaning under TCG and are ignored (the explanation says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from apicmap.domain.engine import Closing, PreparedBase
from apicmap.domain.message import Injection
from apicmap.domain.outcome import Effect, EffectKind, Explanation, Outcome
from apicmap.domain.reasons import Code, because
from apicmap.domain.vm import VmState
from apicmap.errors import NotExpressible
from apicmap.qemu.build import guest_elf
from apicmap.qemu.job import JobInterrupt, QemuMessage, check_vm, encode, plan
from apicmap.qemu.run import Observed, QemuUnavailable, find_qemu, qemu_version, run_job


@dataclass(frozen=True, slots=True)
class _Planned:
    job: JobInterrupt
    message: QemuMessage


class QemuEngine(Closing):
    """QEMU's own interrupt routing, proven live by a guest. ``timeout``: seconds per boot."""

    name = "qemu"

    def __init__(self, qemu: str | None = None, *, timeout: float | None = None) -> None:
        found = qemu or find_qemu()
        if found is None:
            raise QemuUnavailable("qemu engine: qemu-system-x86_64 not found (install qemu-system-x86, "
                                  "or set APICMAP_QEMU)")
        self.qemu = found
        self.version = qemu_version(found)
        self.timeout = timeout

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    def prepare(self, vm: VmState) -> QemuVm:
        check_vm(vm, self.version)
        return QemuVm(self, vm)


class QemuVm(PreparedBase):
    """A VM state ready to run; each batch of interrupts is one QEMU boot."""

    def __init__(self, engine: QemuEngine, vm: VmState) -> None:
        self._engine = engine
        self._vm = vm
        self.last_boot_seconds: float | None = None

    def close(self) -> None:
        return None  # nothing stays running between batches

    def deliver(self, injection: Injection, *, explain: bool = False) -> Outcome:
        return self.deliver_many([injection], explain=explain)[0]

    def deliver_many(self, injections: Sequence[Injection], *, explain: bool = False) -> list[Outcome]:
        """One boot for all of ``injections``; NotExpressible for the first one the guest cannot send."""
        results = self.try_deliver_many(injections, explain=explain)
        for result in results:
            if isinstance(result, NotExpressible):
                raise result
        return [r for r in results if isinstance(r, Outcome)]

    def try_deliver_many(self, injections: Sequence[Injection], *,
                         explain: bool = False) -> list[Outcome | NotExpressible]:
        """Like ``deliver_many``, but an inexpressible injection yields its NotExpressible in place."""
        planned: list[_Planned | NotExpressible] = []
        for injection in injections:
            try:
                job, message = plan(self._vm, injection, self._engine.version)
                planned.append(_Planned(job, message))
            except NotExpressible as err:
                planned.append(err)
        runnable = [p for p in planned if isinstance(p, _Planned)]
        reports: tuple[tuple[Observed, ...], ...] = ()
        if runnable:
            n = len(self._vm.vcpus)  # generous: a boot, then a few ms per interrupt per vCPU
            timeout = self._engine.timeout or 60.0 + 0.5 * n + 0.02 * n * len(runnable)
            result = run_job(self._engine.qemu, guest_elf(), len(self._vm.vcpus),
                             encode(self._vm, [p.job for p in runnable]), len(runnable), timeout)
            reports = result.reports
            self.last_boot_seconds = result.seconds
        outcomes: list[Outcome | NotExpressible] = []
        seen = iter(reports)
        for p in planned:
            if isinstance(p, NotExpressible):
                outcomes.append(p)
            else:
                outcomes.append(self._outcome(p, next(seen), explain))
        return outcomes

    def _outcome(self, planned: _Planned, seen: tuple[Observed, ...], explain: bool) -> Outcome:
        effects: list[Effect] = []
        for o in seen:
            if o.what == "nmi":
                effects.append(Effect(o.cpu, EffectKind.NMI))
            else:
                effects.append(Effect(o.cpu, EffectKind.IRR, o.value, o.tmr))
        receivers = tuple(sorted({e.vcpu_id for e in effects}))
        explanation = self._explain(planned.message, seen) if explain else None
        return Outcome(engine="qemu", receivers=receivers, effects=tuple(effects), explanation=explanation)

    def _explain(self, message: QemuMessage, seen: tuple[Observed, ...]) -> Explanation:
        by_cpu: dict[int, list[str]] = {}
        for o in seen:
            if o.what == "nmi":
                text = "NMI handler ran" + (f" {o.value} times" if o.value > 1 else "")
            elif o.what == "handler":
                text = f"handler for vector 0x{o.value:02x} ran (ISR bit set{', TMR set' if o.tmr else ''}), EOI"
            else:
                text = (f"vector 0x{o.value:02x} accepted into the IRR{' (TMR set)' if o.tmr else ''} but not "
                        "dispatched (APIC software-disabled, hardware-disabled, or TPR)")
            by_cpu.setdefault(o.cpu, []).append(text)
        notes = [because(Code.NOTE_QEMU_OBSERVED, version=self._engine.version_text)]
        ignored = [name for name, on in (("use_32bit_ids", self._vm.use_32bit_ids),
                                         ("disable_broadcast_quirk", self._vm.disable_broadcast_quirk),
                                         ("smm", self._vm.smm),
                                         ("vector_hashing=false", not self._vm.vector_hashing),
                                         ("arb_prio", any(v.arb_prio for v in self._vm.vcpus))) if on]
        if ignored:
            notes.append(because(Code.NOTE_KVM_SETTINGS_IGNORED, settings=", ".join(ignored)))
        return Explanation(
            message=message.describe(),
            path=because(Code.PATH_OBSERVED_QEMU, version=self._engine.version_text),
            reasons=tuple((v.vcpu_id, because(Code.OBSERVED, effects="; ".join(by_cpu[v.vcpu_id]))
                           if v.vcpu_id in by_cpu else because(Code.OBSERVED_NOTHING))
                          for v in self._vm.vcpus),
            notes=tuple(notes),
        )
