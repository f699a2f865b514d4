"""Sequence files: VMM operations in order, for map-lifecycle behaviours.

A scenario file describes a state; a sequence file describes how a VMM got there, one ioctl at
a time, because some behaviours exist only in the order of operations. The keys are in
``files/keys.py`` (``SEQUENCE``), checked by the same loader as scenario files.

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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apicmap.domain.message import MsiInjection
from apicmap.domain.operations import VmmOperations
from apicmap.domain.vm import DFR_CLUSTER, DFR_FLAT
from apicmap.encoding.apic_base import ApicMode
from apicmap.errors import InputError
from apicmap.files.keys import (
    HISTORY_KEYS,
    KERNEL_EXPECTATION_KEYS,
    MSI_FIELDS,
    OPS,
    SEQUENCE,
    SEQUENCE_KEYS,
    STEP_KEYS,
)
from apicmap.files.spec import Table, read_toml, validate
from apicmap.files.writer import injection_toml
from apicmap.model.lifecycle import ModelLifecycle
from apicmap.model.policy import host_release, parse_release, policy_for_release

__all__ = ["OPS", "Step", "apply", "is_sequence_file", "load_sequence", "parse_sequence", "run_sequence_check"]


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
        return "step" in read_toml(path)
    except InputError:
        return False


def load_sequence(path: str | Path) -> tuple[list[Step], str | None]:
    return parse_sequence(read_toml(path), str(path))


def parse_sequence(document: dict[str, Any], where: str = "<sequence>") -> tuple[list[Step], str | None]:
    """The steps and the ``[sequence] kernel``; checked by the same key tables as scenario files."""
    for key in document:
        if key not in ("sequence", "step", "history"):
            raise InputError(f"{where}: {key}", "unknown table", ", ".join(s.title for s in SEQUENCE))
    header = validate(document.get("sequence", {}), SEQUENCE_KEYS, f"{where}: [sequence]")
    if "history" in document:
        validate(document["history"], HISTORY_KEYS, f"{where}: [history]")
    kernel = header.get("kernel")
    if kernel is not None:
        policy_for_release(kernel, header.at("kernel"))
    entries = document.get("step", [])
    if not isinstance(entries, list):
        raise InputError(f"{where}: step", "must be an array of tables", "[[step]] entries")
    return [_step(entry, f"{where}: [[step]] #{i + 1}") for i, entry in enumerate(entries)], kernel


def _step(entry: Any, place: str) -> Step:
    op = validate(entry, STEP_KEYS, place).require("op")
    table = validate(entry, STEP_KEYS, place, discriminator="op", chosen=op)
    msi = None
    if op == "signal_msi":
        raw = validate(table.require("msi"), MSI_FIELDS, table.at("msi"))
        address: int = raw.get("address")
        msi = MsiInjection(address & 0xFFFFFFFF, raw.get("address_hi", address >> 32), raw.get("data"))
    flags = table.get("x2apic_api")
    dfr = table.get("dfr")
    return Step(op, table.get("vcpu_id"), ApicMode(table.get("mode")), table.get("apic_id"),
                table.get("ldr_register"), {"flat": DFR_FLAT, "cluster": DFR_CLUSTER}[dfr] if isinstance(dfr, str)
                else dfr, table.get("sw_enabled"), "use_32bit_ids" in flags, "disable_broadcast_quirk" in flags,
                msi, table.get("expect_return"), _expect_kernels(table))


def _expect_kernels(table: Table) -> tuple[tuple[tuple[int, int, int], int], ...]:
    if "expect_kernels" not in table:
        return ()
    if "expect_return" in table:
        raise InputError(table.at("expect_kernels"), "give expect_return or expect_kernels, not both")
    found: list[tuple[tuple[int, int, int], int]] = []
    for i, item in enumerate(table.get("expect_kernels")):
        entry = validate(item, KERNEL_EXPECTATION_KEYS, f"{table.at('expect_kernels')}[{i}]")
        since = parse_release(entry.require("from"), entry.at("from"))
        if found and since <= found[-1][0]:
            raise InputError(entry.at("from"), "entries must be in increasing release order")
        found.append((since, entry.require("expect_return")))
    return tuple(found)


def apply(step: Step, target: VmmOperations) -> int | None:
    """Apply one step to the model or a real VM; the MSI return for signal_msi."""
    if step.op == "create_vcpu":
        target.create_vcpu(step.vcpu_id)
    elif step.op == "set_apic_base":
        target.set_apic_base(step.vcpu_id, step.mode)
    elif step.op == "set_lapic":
        target.set_lapic(step.vcpu_id, xapic_id=step.xapic_id, ldr=step.ldr, dfr=step.dfr,
                         sw_enabled=step.sw_enabled)
    elif step.op == "enable_cap":
        target.enable_cap(step.use_32bit_ids, step.disable_broadcast_quirk)
    else:
        assert step.msi is not None
        result: int | None = target.signal_msi(step.msi)
        return result
    return None


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
