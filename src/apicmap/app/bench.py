"""``apicmap bench``: speed of the model, of the kvm engine and of the fuzzer, side by side (issue #5).

Figures on a shared machine drift, so the comparisons that matter are ratios measured in the
same run (model rate / kernel rate, engine rate / ioctl bound). Each figure is reported next to
its target.
"""

from __future__ import annotations

import gc
import os
import platform
import time
import tracemalloc
from collections.abc import Callable
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
    value: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""

    def to_json(self) -> dict[str, object]:
        return {"value": None if self.value is None else round(self.value, 4), "unit": self.unit,
                "target": self.target, "met": self.met, "note": self.note}


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
        "physical unicast": (x2, [_msi(d) for d in range(n)]),
        "logical flat": (flat, [_msi(1 << (d % 8) | 1 << ((d + 3) % 8), logical=True) for d in range(256)]),
        "logical cluster": (cluster, [_msi(((d % 14) + 1) << 4 | (d % 15) + 1, logical=True) for d in range(256)]),
        "x2APIC cluster": (x2, [_msi(((d % 64) << 16) | (0x8421 >> (d % 4)), logical=True) for d in range(256)]),
        "broadcast": (x2, [_msi(0xFF, vector=0x20 + (d % 200)) for d in range(256)]),
        "lowest priority": (x2, [_msi(((d % 64) << 16) | 0xFFFF, vector=0x20 + d % 200, logical=True,
                                      lowest=True) for d in range(256)]),
    }


def model_figures(quick: bool) -> tuple[list[Figure], float]:
    figures: list[Figure] = []
    for n in (64, 256, 1024, 4096):
        vm = mixed_vm(n)
        seconds = _best_of(5 if quick else 20, lambda vm=vm: build_map(vm, NEWEST))  # type: ignore[misc]
        ms = seconds * 1e3
        target = "<= 2 ms" if n == 1024 else ""
        figures.append(Figure(f"model map build, {n} vCPUs", ms, "ms", target, ms <= 2 if n == 1024 else None))
    engine = ModelEngine(NEWEST)
    unicast_rate = 0.0
    for name, (vm, injections) in _delivery_vms().items():
        prepared = engine.prepare(vm)
        count = len(injections)
        # Cold: each resolution computed from scratch (decode + fast/slow path), no table.
        rounds = 1 if quick else 3
        cold = _best_of(rounds, lambda p=prepared, inj=injections: [p._resolve(i, False) for i in inj])  # type: ignore[misc]
        for i in injections:
            prepared.deliver(i)  # fill the resolution table
        loops = 20 if quick else 100
        warm = _best_of(3, lambda p=prepared, inj=injections, k=loops: [p.deliver(i) for _ in range(k) for i in inj])  # type: ignore[misc]
        cold_rate, warm_rate = count / cold, count * loops / warm
        if name == "physical unicast":
            unicast_rate = warm_rate
        unicast = name == "physical unicast"
        figures.append(Figure(f"model {name} (computed), 1024 vCPUs", cold_rate, "resolutions/s",
                              ">= 300,000" if unicast else "", cold_rate >= 300_000 if unicast else None,
                              "first resolution of each message: decode + fast/slow path; the target is met "
                              "by the resolution table below" if unicast else ""))
        figures.append(Figure(f"model {name} (resolution table), 1024 vCPUs", warm_rate, "resolutions/s",
                              ">= 300,000" if name == "physical unicast" else "",
                              warm_rate >= 300_000 if name == "physical unicast" else None))
    tracemalloc.start()
    vm = mixed_vm(4096)
    prepared = engine.prepare(vm)
    for d in range(4096):
        prepared.deliver(_msi(d))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del prepared, vm
    gc.collect()
    figures.append(Figure("model peak memory, 4096 vCPUs (4096 resolutions cached)", peak / 2**20, "MB",
                          "<= 200 MB", peak / 2**20 <= 200))
    return figures, unicast_rate


def kernel_figures(quick: bool, model_unicast: float) -> list[Figure]:
    from apicmap.kvm.host import kvm_available

    ok, why = kvm_available()
    if not ok:
        return [Figure("kernel and kvm engine figures", None, "", note=f"skipped: {why}")]
    import ctypes

    from apicmap.kvm import abi as s
    from apicmap.kvm.engine import KvmEngine
    from apicmap.kvm.ioctl import ioctl_ptr

    engine = KvmEngine()
    figures: list[Figure] = []
    try:
        vm4 = VmState(tuple(Vcpu(i) for i in range(4)))
        prepared = engine.prepare(vm4)
        real = prepared._real
        msi = s.KvmMsi(address_lo=0xFEE01000, data=0x40)
        n = 20_000 if quick else 100_000
        vm_fd = real.vm_fd
        libc_ioctl = ctypes.CDLL(None, use_errno=True).ioctl
        ref = ctypes.byref(msi)
        start = time.perf_counter()
        for _ in range(n):
            libc_ioctl(vm_fd, s.KVM_SIGNAL_MSI, ref)
        t_msi = (time.perf_counter() - start) / n
        lapic = s.KvmLapicState()
        fd = real.vcpus[1].fd
        start = time.perf_counter()
        for _ in range(n // 4):
            ioctl_ptr(fd, s.KVM_GET_LAPIC, lapic)
        t_get = (time.perf_counter() - start) / (n // 4)
        start = time.perf_counter()
        for _ in range(n // 4):
            ioctl_ptr(fd, s.KVM_SET_LAPIC, lapic)
        t_set = (time.perf_counter() - start) / (n // 4)
        lapic.regs[:] = list(real.vcpus[1].baseline)
        ioctl_ptr(fd, s.KVM_SET_LAPIC, lapic)
        kernel_rate = 1 / t_msi
        figures += [
            Figure("kernel KVM_SIGNAL_MSI rate", kernel_rate, "ioctls/s", note="from Python through ctypes"),
            Figure("KVM_GET_LAPIC cost", t_get * 1e6, "us"),
            Figure("KVM_SET_LAPIC cost", t_set * 1e6, "us"),
            Figure("model physical unicast / kernel KVM_SIGNAL_MSI", model_unicast / kernel_rate, "ratio",
                   ">= 0.5", model_unicast / kernel_rate >= 0.5),
        ]
        for count in (4, 64):
            vm = VmState(tuple(Vcpu(i) for i in range(count)))
            p = engine.prepare(vm)
            injections = [_msi(d % count, vector=0x40 + d % 64) for d in range(256)]
            loops = 4 if quick else 20
            start = time.perf_counter()
            for _ in range(loops):
                for injection in injections:
                    p.deliver(injection)
            rate = loops * len(injections) / (time.perf_counter() - start)
            # The least any engine must do per checked unicast: send, read the receiver's page
            # back, and write the baseline back; scanning in creation order reads (n+1)/2 pages.
            bound = 1 / (t_msi + t_get + t_set)
            four = count == 4
            figures.append(Figure(f"kvm engine, {count} vCPUs (physical unicast, inject+observe+restore)", rate,
                                  "interrupts/s", ">= 5,000" if four else "", rate >= 5000 if four else None))
            figures.append(Figure(f"kvm engine / ioctl bound, {count} vCPUs", rate / bound, "ratio",
                                  ">= 0.5" if count == 4 else "", rate / bound >= 0.5 if count == 4 else None,
                                  note=f"bound {bound:,.0f}/s = 1/(MSI + GET_LAPIC + SET_LAPIC)"))
    finally:
        engine.close()
    return figures


def fuzz_figures(quick: bool) -> list[Figure]:
    try:
        from apicmap.fuzz.campaign import Campaign
    except ImportError as err:
        return [Figure("fuzz figures", None, "", note=f"skipped: {err} (pip install 'apicmap[fuzz]')")]

    seconds = 5.0 if quick else 30.0
    campaign = Campaign("kvm", None, seconds=seconds, seed=0)
    campaign.run()
    rate = campaign.pairs / max(campaign.elapsed, 1e-9)
    figures = [Figure("fuzz throughput, model vs kvm (Hypothesis end to end)", rate, "pairs/s", ">= 1,000",
                      rate >= 1000, note=f"{campaign.pairs} pairs in {campaign.elapsed:.1f}s, "
                                         f"{len(campaign.findings)} divergences")]
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


STAGES = ("model", "kernel and kvm engine", "fuzzer")


def run_bench(quick: bool, on_stage: Callable[[str], None] | None = None) -> dict[str, object]:
    """Every figure; ``on_stage`` is called with each name in ``STAGES`` once that stage is done (progress).
    The fuzzer's figures run against the kernel, so only where the kernel figures could be measured."""
    from apicmap.kvm.host import kvm_available

    def done(stage: int) -> None:
        if on_stage is not None:
            on_stage(STAGES[stage])

    started = time.perf_counter()
    figures, unicast = model_figures(quick)
    done(0)
    figures.append(history_figure())
    figures += kernel_figures(quick, unicast)
    done(1)
    if kvm_available()[0]:
        figures += fuzz_figures(quick)
    done(2)
    return {
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "kernel": os.uname().release,
                    "date": time.strftime("%Y-%m-%d")},
        "quick": quick,
        "seconds": round(time.perf_counter() - started, 1),
        "figures": {f.name: f.to_json() for f in figures},
    }

