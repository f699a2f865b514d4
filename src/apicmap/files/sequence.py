"""Sequence files: VMM operations in order, for map-lifecycle behaviours (issue #4 item 3).

A scenario file describes a state; a sequence file describes how a VMM got there, one ioctl at
a time, because some behaviours exist only in the order of operations (kvm-routing.md §2.2).

```toml
[[step]]
op = "create_vcpu"          # | "set_apic_base" | "set_lapic" | "enable_cap" | "signal_msi"
vcpu_id = 0
[[step]]
op = "signal_msi"
msi = { address = 0xFEE00000, address_hi = 0, data = 0x400 }
expect_return = 1           # optional: what KVM_SIGNAL_MSI returns
# or, per release: expect_kernels = [{ from = "4.9", expect_return = 1 }, { from = "6.3", expect_return = 0 }]
```

A host-forced mode switch is a ``set_apic_base`` step whose ``mode`` differs from the vCPU's
current one (``KVM_SET_MSRS`` of IA32_APIC_BASE is host-initiated, so x2APIC -> xAPIC is allowed).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apicmap.domain.message import MsiInjection
from apicmap.domain.vm import DFR_FLAT, MAX_VCPU_ID
from apicmap.encoding.apic_base import ApicMode
from apicmap.errors import InputError
from apicmap.files.writer import injection_toml
from apicmap.model.lifecycle import ModelLifecycle
from apicmap.model.policy import host_release, parse_release, policy_for_release

OPS = ("create_vcpu", "set_apic_base", "set_lapic", "enable_cap", "signal_msi")


@dataclass(frozen=True, slots=True)
class Step:
    op: str
    vcpu_id: int = 0
    mode: ApicMode = ApicMode.XAPIC
    xapic_id: int = 0
    ldr: int = 0
    dfr: int = DFR_FLAT
    sw_enabled: bool = True
    use_32bit_ids: bool = False
    disable_broadcast_quirk: bool = False
    msi: MsiInjection | None = None
    expect_return: int | None = None
    # (from release, KVM_SIGNAL_MSI value) pairs in increasing release order.
    expect_kernels: tuple[tuple[tuple[int, int, int], int], ...] = ()

    def expected_at(self, release: tuple[int, int, int]) -> int | None:
        """The return value expected on ``release``: from ``expect_kernels``, else ``expect_return``."""
        if not self.expect_kernels:
            return self.expect_return
        found = None
        for since, value in self.expect_kernels:
            if since <= release:
                found = value
        return found

    def toml(self) -> list[str]:
        lines = ["[[step]]", f'op = "{self.op}"']
        if self.op in ("create_vcpu", "set_apic_base", "set_lapic"):
            lines.append(f"vcpu_id = {self.vcpu_id}")
        if self.op == "set_apic_base":
            lines.append(f'mode = "{self.mode.value}"')
        if self.op == "set_lapic":
            lines += [f"apic_id = {self.xapic_id:#x}", f"ldr_register = {self.ldr:#x}", f"dfr = {self.dfr:#x}",
                      f"sw_enabled = {'true' if self.sw_enabled else 'false'}"]
        if self.op == "enable_cap":
            flags = [n for n, on in (("use_32bit_ids", self.use_32bit_ids),
                                     ("disable_broadcast_quirk", self.disable_broadcast_quirk)) if on]
            lines.append(f"x2apic_api = [{', '.join(chr(34) + f + chr(34) for f in flags)}]")
        if self.msi is not None:
            lines += injection_toml(self.msi)
        if self.expect_return is not None:
            lines.append(f"expect_return = {self.expect_return}")
        return lines


def is_sequence_file(path: str | Path) -> bool:
    try:
        return "step" in tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False


def load_sequence(path: str | Path) -> tuple[list[Step], str | None]:
    where = str(path)
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise InputError(where, f"cannot read the sequence: {err}") from None
    kernel = document.get("sequence", {}).get("kernel")
    steps = [_step(entry, f"{where}: [[step]] #{i + 1}") for i, entry in enumerate(document.get("step", []))]
    return steps, kernel


def _step(entry: Any, place: str) -> Step:
    if not isinstance(entry, dict) or entry.get("op") not in OPS:
        raise InputError(f"{place} op", f"bad value {entry.get('op') if isinstance(entry, dict) else entry!r}",
                         ", ".join(OPS))
    def num(key: str, high: int, default: int = 0) -> int:
        value = entry.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
            raise InputError(f"{place} {key}", f"bad value {value!r}", f"0..{high:#x}")
        return value
    mode_text = entry.get("mode", "xapic")
    try:
        mode = ApicMode(mode_text)
    except ValueError:
        raise InputError(f"{place} mode", f"bad value {mode_text!r}", '"xapic", "x2apic", "disabled"') from None
    msi = None
    if "msi" in entry:
        raw = entry["msi"]
        if not isinstance(raw, dict):
            raise InputError(f"{place} msi", f"bad value {raw!r}", "{ address = ..., address_hi = ..., data = ... }")
        msi = MsiInjection(int(raw.get("address", 0xFEE00000)) & 0xFFFFFFFF, int(raw.get("address_hi", 0)),
                           int(raw.get("data", 0)))
    flags = entry.get("x2apic_api", [])
    expect = entry.get("expect_return")
    per_kernel: list[tuple[tuple[int, int, int], int]] = []
    for item in entry.get("expect_kernels", []):
        if not isinstance(item, dict) or not isinstance(item.get("expect_return"), int):
            raise InputError(f"{place} expect_kernels", f"bad value {item!r}",
                             '[{ from = "4.9", expect_return = N }, ...]')
        per_kernel.append((parse_release(str(item.get("from")), f"{place} expect_kernels from"),
                           item["expect_return"]))
    return Step(entry["op"], num("vcpu_id", MAX_VCPU_ID), mode, num("apic_id", 0xFF), num("ldr_register", 0xFFFFFFFF),
                num("dfr", 0xFFFFFFFF, DFR_FLAT), bool(entry.get("sw_enabled", True)), "use_32bit_ids" in flags,
                "disable_broadcast_quirk" in flags, msi, expect if isinstance(expect, int) else None,
                tuple(per_kernel))


def apply(step: Step, target: Any) -> int | None:
    """Apply one step to a ``ModelLifecycle`` or a ``RealSequence``; the MSI return for signal_msi."""
    if step.op == "create_vcpu":
        target.create_vcpu(step.vcpu_id)
    elif step.op == "set_apic_base":
        target.set_apic_base(step.vcpu_id, step.mode)
    elif step.op == "set_lapic":
        if isinstance(target, ModelLifecycle):
            target.set_lapic(step.vcpu_id, xapic_id=step.xapic_id, ldr=step.ldr, dfr=step.dfr,
                             sw_enabled=step.sw_enabled)
        else:
            mode = target_mode(target, step.vcpu_id)
            target.set_lapic(step.vcpu_id, mode, xapic_id=step.xapic_id, ldr=step.ldr, dfr=step.dfr,
                             sw_enabled=step.sw_enabled)
    elif step.op == "enable_cap":
        target.enable_cap(step.use_32bit_ids, step.disable_broadcast_quirk)
    else:
        assert step.msi is not None
        result: int | None = target.signal_msi(step.msi)
        return result
    return None


def target_mode(target: Any, vcpu_id: int) -> ApicMode:
    modes: dict[int, ApicMode] = getattr(target, "modes", {})
    return modes.get(vcpu_id, ApicMode.XAPIC)


def run_sequence_check(path: str | Path) -> tuple[list[dict[str, object]], bool]:
    """Run a sequence on the model (tracking recalculation points), the naive model and the kernel."""
    from apicmap.kvm.host import kvm_available

    steps, kernel = load_sequence(path)
    available, _ = kvm_available()
    text = kernel or (host_release() if available else None)
    policy = policy_for_release(text)
    release = parse_release(text) if text is not None else (99, 0, 0)
    model = ModelLifecycle(policy)
    naive = ModelLifecycle(policy, track_recalculation=False)
    real = None
    if available:
        from apicmap.kvm.driver import RealSequence

        real = RealSequence()
    rows: list[dict[str, object]] = []
    ok = True
    try:
        for i, step in enumerate(steps, 1):
            results = [apply(step, t) for t in (model, naive)]
            kernel_r = apply(step, real) if real is not None else None
            if step.op != "signal_msi":
                continue
            row: dict[str, object] = {"step": i, "model": results[0], "naive model": results[1], "kvm": kernel_r,
                   "expect_return": step.expect_return}
            if real is not None and results[0] != kernel_r:
                ok = False
            wanted = step.expected_at(release)
            row["expect_return"] = wanted
            if wanted is not None and results[0] != wanted:
                ok = False
            rows.append(row)
    finally:
        if real is not None:
            real.close()
    return rows, ok
