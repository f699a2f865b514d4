"""``apicmap bench``: speed of the model, of the kvm engine and of the fuzzer, side by side.

Figures on a shared machine drift, so the comparisons that matter are ratios, each taken within
one repetition (model rate / kernel rate, engine rate / ioctl bound, measured in interleaved
slices). Every figure is the median of several repetitions, with the spread (min-max).
"Computed" means each timed message is seen for the first time by its prepared VM: no memo
table; the memo table has its own, labelled figure.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from apicmap.domain.message import Injection, MsiInjection
from apicmap.domain.vm import DFR_CLUSTER, Vcpu, VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.model.apic_map import build_map
from apicmap.model.engine import ModelEngine
from apicmap.model.policy import NEWEST


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    value: float | None  # the median over the repetitions
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""
    low: float | None = None  # min over the repetitions
    high: float | None = None  # max
    runs: int = 1

    def to_json(self) -> dict[str, object]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {"value": r(self.value), "unit": self.unit, "target": self.target, "met": self.met,
                "note": self.note, "min": r(self.low), "max": r(self.high), "runs": self.runs}


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def summary(name: str, samples: Sequence[float], unit: str, target: str = "",
            check: Callable[[float], bool] | None = None, note: str = "", every_run: bool = False) -> Figure:
    """The median of ``samples`` with its spread. ``check`` judges the median, or with
    ``every_run`` every repetition (the worst one)."""
    median = statistics.median(samples)
    low, high = min(samples), max(samples)
    met = None
    if check is not None:
        met = all(check(x) for x in samples) if every_run else check(median)
    spread = f"median of {len(samples)}, {_fmt(low)}-{_fmt(high)}"
    return Figure(name, median, unit, target, met, f"{spread}; {note}" if note else spread, low, high, len(samples))


def _best_of(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def mixed_vm(n: int) -> VmState:
    """n vCPUs: a third x2APIC, the rest xAPIC (flat LDRs on a few), some aliased xAPIC IDs."""
    vcpus = []
    for i in range(n):
        if i % 3 == 0:
            vcpus.append(Vcpu(i, ApicMode.X2APIC))
        else:
            alias = i % 17 == 0  # some vCPUs share xAPIC ID 1
            vcpus.append(Vcpu(i, ApicMode.XAPIC, xapic_id=1 if alias else i & 0xFF,
                              ldr=(1 << (i % 8)) << 24 if i < 8 else 0))
    return VmState(tuple(vcpus), use_32bit_ids=True)


def _msi(dest: int, vector: int = 0x40, logical: bool = False, lowest: bool = False) -> MsiInjection:
    return MsiInjection(0xFEE00000 | (dest & 0xFF) << 12 | logical << 2, dest & 0xFFFFFF00,
                        vector | (1 if lowest else 0) << 8)


def _delivery_vms() -> dict[str, tuple[VmState, list[Injection]]]:
    n = 1024
    x2 = VmState(tuple(Vcpu(i, ApicMode.X2APIC) for i in range(n)), use_32bit_ids=True)
    flat = VmState(tuple(Vcpu(i, ldr=((1 << i) << 24) if i < 8 else 0) for i in range(n)), use_32bit_ids=True)
    cluster = VmState(tuple(Vcpu(i, ldr=((((i // 4) + 1) << 4 | 1 << (i % 4)) << 24) if i < 56 else 0,
                                 dfr=DFR_CLUSTER) for i in range(n)), use_32bit_ids=True)
    return {
        "physical unicast": (x2, [_msi(d, vector=0x20 + d % 200) for d in range(n)]),
        "logical flat": (flat, [_msi(1 << (d % 8) | 1 << ((d + 3) % 8), vector=0x20 + d % 200, logical=True)
                                for d in range(256)]),
        "logical cluster": (cluster, [_msi(((d % 14) + 1) << 4 | (d % 15) + 1, vector=0x20 + d % 200, logical=True)
                                      for d in range(256)]),
        "x2APIC cluster": (x2, [_msi(((d % 64) << 16) | (0x8421 >> (d % 4)), vector=0x20 + d % 200, logical=True)
                                for d in range(256)]),
        "broadcast": (x2, [_msi(0xFF, vector=0x20 + (d % 200)) for d in range(256)]),
        "lowest priority": (x2, [_msi(((d % 64) << 16) | 0xFFFF, vector=0x20 + d % 200, logical=True,
                                      lowest=True) for d in range(256)]),
    }


def _computed_rate(engine: ModelEngine, vm: VmState, injections: Sequence[Injection], vms: int,
                   batch: bool = False) -> float:
    """Messages/s, each message seen for the first time by its prepared VM (fresh VMs, prepared
    outside the timing)."""
    prepared = [engine.prepare(vm) for _ in range(vms)]
    elapsed = 0.0
    for p in prepared:
        start = time.perf_counter()
        if batch:
            p.deliver_many(injections)
        else:
            deliver = p.deliver
            for injection in injections:
                deliver(injection)
        elapsed += time.perf_counter() - start
    return vms * len(injections) / elapsed


class _Kernel:
    """Raw ioctls on a 4-vCPU VM of the kvm engine: the kernel's own rates and the bound."""

    def __init__(self) -> None:
        import ctypes

        from apicmap.kvm import abi as s
        from apicmap.kvm.engine import KvmEngine

        self.s = s
        self.engine = KvmEngine()
        self.prepared = self.engine.prepare(VmState(tuple(Vcpu(i) for i in range(4))))
        real = self.prepared._real
        self.vm_fd = real.vm_fd
        self.fd = real.vcpus[1].fd
        self.ioctl = ctypes.CDLL(None, use_errno=True).ioctl
        self.msi = s.KvmMsi(address_lo=0xFEE01000, data=0x40)
        self.msi_ref = ctypes.byref(self.msi)
        self.lapic = s.KvmLapicState()
        self.lapic_ref = ctypes.byref(self.lapic)
        self.baseline_ref = ctypes.byref(real.vcpus[1].baseline_state)

    def msi_seconds(self, n: int) -> float:
        ioctl, fd, request, ref = self.ioctl, self.vm_fd, self.s.KVM_SIGNAL_MSI, self.msi_ref
        start = time.perf_counter()
        for _ in range(n):
            ioctl(fd, request, ref)
        return (time.perf_counter() - start) / n

    def close(self) -> None:
        self.engine.close()


def model_and_kernel_figures(quick: bool) -> list[Figure]:
    """Every ratio from one repetition: model and kernel rates measured back to back."""
    from apicmap.kvm.host import kvm_available

    runs = 3 if quick else 7
    ok, why = kvm_available()
    kernel = _Kernel() if ok else None
    engine = ModelEngine(NEWEST)
    memo_engine = ModelEngine(NEWEST, memo=True)
    kinds = _delivery_vms()
    samples: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    try:
        for _ in range(runs):
            for name, (vm, injections) in kinds.items():
                vms = 3 if name == "physical unicast" else 1
                if name == "physical unicast" and kernel is not None:
                    # Interleaved: model, kernel, model; the ratio uses the kernel rate between.
                    a = _computed_rate(engine, vm, injections, vms)
                    kernel_rate = 1 / kernel.msi_seconds(5_000 if quick else 20_000)
                    b = _computed_rate(engine, vm, injections, vms)
                    rate = (a + b) / 2
                    add("kernel KVM_SIGNAL_MSI rate", kernel_rate)
                    add("model physical unicast / kernel KVM_SIGNAL_MSI", rate / kernel_rate)
                else:
                    rate = _computed_rate(engine, vm, injections, vms)
                add(f"model {name} (computed), 1024 vCPUs", rate)
                if name == "physical unicast":
                    add("model physical unicast (computed, deliver_many), 1024 vCPUs",
                        _computed_rate(engine, vm, injections, vms, batch=True))
                    memo = memo_engine.prepare(vm)
                    for injection in injections:
                        memo.deliver(injection)
                    loops = 10
                    seconds = _best_of(1, lambda m=memo, inj=injections, k=loops: [  # type: ignore[misc]
                        m.deliver(i) for _ in range(k) for i in inj])
                    add("model physical unicast (memo table, repeated messages), 1024 vCPUs",
                        loops * len(injections) / seconds)
            add("sweep, 256 vCPUs, model (all messages)", _sweep_seconds())
    finally:
        if kernel is not None:
            kernel.close()
    figures = []
    for n in (64, 256, 1024, 4096):
        vm = mixed_vm(n)
        builds = [_best_of(3, lambda vm=vm: build_map(vm, NEWEST)) * 1e3 for _ in range(runs)]  # type: ignore[misc]
        four = n == 1024
        figures.append(summary(f"model map build, {n} vCPUs", builds, "ms", "<= 2 ms" if four else "",
                               (lambda x: x <= 2) if four else None))
    unicast = "model physical unicast (computed), 1024 vCPUs"
    figures.append(summary(unicast, samples[unicast], "resolutions/s",
                           note="first sight of each message by its prepared VM, through deliver()"))
    figures.append(summary("model physical unicast (computed, deliver_many), 1024 vCPUs",
                           samples["model physical unicast (computed, deliver_many), 1024 vCPUs"], "resolutions/s"))
    for name in kinds:
        if name == "physical unicast":
            continue
        key = f"model {name} (computed), 1024 vCPUs"
        broadcast = name == "broadcast"
        figures.append(summary(key, samples[key], "resolutions/s", ">= 100,000" if broadcast else "",
                               (lambda x: x >= 100_000) if broadcast else None))
    memo_key = "model physical unicast (memo table, repeated messages), 1024 vCPUs"
    figures.append(summary(memo_key, samples[memo_key], "resolutions/s",
                           note="ModelEngine(memo=True): the same messages again, a dictionary lookup; "
                                "not a computed rate"))
    sweep_key = "sweep, 256 vCPUs, model (all messages)"
    figures.append(summary(sweep_key, samples[sweep_key], "s", "<= 2 s", lambda x: x <= 2,
                           note="bench/sweep-256.toml: generate + prepare + deliver_many, MSIs, IOAPIC, IPIs"))
    figures.append(_memory_figure(engine))
    if kernel is None:
        figures.append(Figure("kernel and kvm engine figures", None, "", note=f"skipped: {why}"))
        return figures
    figures.append(summary("kernel KVM_SIGNAL_MSI rate", samples["kernel KVM_SIGNAL_MSI rate"], "ioctls/s",
                           note="from Python through ctypes, 4 vCPUs"))
    ratio = "model physical unicast / kernel KVM_SIGNAL_MSI"
    figures.append(summary(ratio, samples[ratio], "ratio", ">= 1.0 (floor 0.5)", lambda x: x >= 1.0,
                           note="computed model rate over the kernel's, within each repetition"))
    figures += kvm_engine_figures(quick)
    return figures


def _sweep_seconds() -> float:
    from pathlib import Path

    from apicmap.app.sweep import sweep_injections
    from apicmap.files.scenario import load_scenario

    path = Path(__file__).resolve().parents[3] / "bench" / "sweep-256.toml"
    vm = load_scenario(path).vm
    start = time.perf_counter()
    injections = sweep_injections(vm)
    ModelEngine(NEWEST).prepare(vm).deliver_many(injections)
    return time.perf_counter() - start


def _memory_figure(engine: ModelEngine) -> Figure:
    tracemalloc.start()
    vm = mixed_vm(4096)
    prepared = engine.prepare(vm)
    outcomes = [prepared.deliver(_msi(d)) for d in range(4096)]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del prepared, vm, outcomes
    gc.collect()
    mb = peak / 2**20
    return Figure("model peak memory, 4096 vCPUs (4096 resolutions kept)", mb, "MB", "<= 200 MB", mb <= 200)


class _Sequence:
    """The least any engine must do per checked unicast, for the same messages as the engine:
    ``KVM_SIGNAL_MSI``, ``KVM_GET_LAPIC`` of the receiver, ``KVM_SET_LAPIC`` of its baseline
    (raw ioctls through ctypes, on the engine's own VM)."""

    def __init__(self, prepared: object, dests: Sequence[int]) -> None:
        import ctypes

        from apicmap.kvm import abi as s

        real = prepared._real  # type: ignore[attr-defined]
        self.vm_fd = real.vm_fd
        self.ioctl = ctypes.CDLL(None, use_errno=True).ioctl
        self.lapic = s.KvmLapicState()
        self.lapic_ref = ctypes.byref(self.lapic)
        self.msis = [s.KvmMsi(address_lo=0xFEE00000 | d << 12, data=0x40) for d in dests]
        self.steps = [(ctypes.byref(m), real.vcpus[d].fd, ctypes.byref(real.vcpus[d].baseline_state))
                      for m, d in zip(self.msis, dests, strict=True)]
        self.requests = (s.KVM_SIGNAL_MSI, s.KVM_GET_LAPIC, s.KVM_SET_LAPIC)

    def seconds(self) -> float:
        ioctl, vm_fd, lapic = self.ioctl, self.vm_fd, self.lapic_ref
        msi, get, put = self.requests
        start = time.perf_counter()
        for msi_ref, fd, base_ref in self.steps:
            ioctl(vm_fd, msi, msi_ref)
            ioctl(fd, get, lapic)
            ioctl(fd, put, base_ref)
        return time.perf_counter() - start


def kvm_engine_figures(quick: bool) -> list[Figure]:
    """The kvm engine against the raw ioctl sequence, in interleaved slices of one repetition."""
    from apicmap.kvm.engine import KvmEngine

    runs = 3 if quick else 7
    engine = KvmEngine()
    samples: dict[str, list[float]] = {}
    try:
        for count in (4, 64):
            vm = VmState(tuple(Vcpu(i) for i in range(count)))
            p = engine.prepare(vm)
            injections = [_msi(d % count, vector=0x40 + d % 64) for d in range(256)]
            sequence = _Sequence(p, [d % count for d in range(256)])
            for _ in range(runs):
                single = batched = seq = 0.0
                slices = 4 if quick else 8
                for _ in range(slices):
                    start = time.perf_counter()
                    for injection in injections:
                        p.deliver(injection)
                    single += time.perf_counter() - start
                    seq += sequence.seconds()
                    start = time.perf_counter()
                    p.deliver_many(injections)
                    batched += time.perf_counter() - start
                total = slices * len(injections)
                bound = total / seq
                samples.setdefault(f"single {count}", []).append(total / single)
                samples.setdefault(f"bound {count}", []).append(bound)
                samples.setdefault(f"ratio {count}", []).append(total / single / bound)
                samples.setdefault(f"batched {count}", []).append(total / batched / bound)
    finally:
        engine.close()
    figures = []
    for count in (4, 64):
        four = count == 4
        figures.append(summary(f"kvm engine, {count} vCPUs (physical unicast, inject+observe+restore)",
                               samples[f"single {count}"], "interrupts/s", ">= 5,000" if four else "",
                               (lambda x: x >= 5000) if four else None))
        figures.append(summary(f"kvm engine / ioctl bound, {count} vCPUs", samples[f"ratio {count}"], "ratio",
                               ">= 0.5 in every run" if four else "", (lambda x: x >= 0.5) if four else None,
                               note="bound = the raw MSI + GET_LAPIC + SET_LAPIC sequence for the same messages, "
                                    f"{statistics.median(samples[f'bound {count}']):,.0f}/s, in interleaved slices",
                               every_run=True))
        figures.append(summary(f"kvm engine batched / ioctl bound, {count} vCPUs", samples[f"batched {count}"],
                               "ratio", ">= 2" if four else "", (lambda x: x >= 2) if four else None,
                               note="deliver_many: 64 distinct vectors per batch", every_run=four))
    return figures


def fuzz_figures(quick: bool) -> list[Figure]:
    try:
        from apicmap.fuzz.campaign import Campaign
    except ImportError as err:
        return [Figure("fuzz figures", None, "", note=f"skipped: {err} (pip install 'apicmap[fuzz]')")]

    rates = []
    pairs = findings = 0
    for run in range(1 if quick else 3):
        campaign = Campaign("kvm", None, seconds=5.0 if quick else 10.0, seed=run)
        campaign.run()
        rates.append(campaign.pairs / max(campaign.elapsed, 1e-9))
        pairs += campaign.pairs
        findings += len(campaign.findings)
    figures = [summary("fuzz throughput, model vs kvm (Hypothesis end to end)", rates, "pairs/s", ">= 2,000",
                       lambda x: x >= 2000, note=f"{pairs} pairs, {findings} divergences")]
    for kernel in ("6.2", "4.19"):
        found = time_to_find_aliasing(kernel, 15.0 if quick else 60.0)
        figures.append(Figure(f"time to find the aliasing difference, --kernel {kernel}", found, "s", "<= 10 s",
                              None if found is None else found <= 10,
                              note="not found within the budget" if found is None else ""))
    return figures


def history_figure() -> Figure:
    """Historical KVM bugs whose change the model shows at exactly the release of their fix."""
    from apicmap.app.releases import rediscover, rediscovery_summary

    results = rediscover()
    found = sum(r.ok for r in results)
    missed = ", ".join(f"#{r.bug.number}" for r in results if not r.ok)
    return Figure("historical changes rediscovered at the right release", found, f"of {len(results)}",
                  f"{len(results)}", found == len(results),
                  note=rediscovery_summary() + (f"; not: {missed}" if missed else ""))


def time_to_find_aliasing(kernel: str, budget: float, seed: int = 0) -> float | None:
    """Seconds until a campaign against the kernel reports the aliasing receivers difference."""
    from apicmap.fuzz.campaign import Campaign

    class _Until(Campaign):
        def _enough(self) -> bool:
            return any("aliasing" in f.rule and "extra receivers" in f.signature for f in self.findings)

    campaign = _Until("kvm", kernel, seconds=budget, seed=seed)
    campaign.run()
    hits = [f.found_after for f in campaign.findings if "aliasing" in f.rule and "extra receivers" in f.signature]
    return min(hits) if hits else None


STAGES = ("model and kernel", "history and fuzzer")


def run_bench(quick: bool, on_stage: Callable[[str], None] | None = None) -> dict[str, object]:
    """Every figure; ``on_stage`` is called with each name in ``STAGES`` once that stage is done (progress)."""
    started = time.perf_counter()
    figures = model_and_kernel_figures(quick)
    if on_stage is not None:
        on_stage(STAGES[0])
    figures.append(history_figure())
    if not any(f.name == "kernel and kvm engine figures" for f in figures):
        figures += fuzz_figures(quick)
    if on_stage is not None:
        on_stage(STAGES[1])
    return {
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "kernel": os.uname().release,
                    "date": time.strftime("%Y-%m-%d")},
        "quick": quick,
        "seconds": round(time.perf_counter() - started, 1),
        "figures": {f.name: f.to_json() for f in figures},
    }

