"""An imported VM as a scenario file (docs/scenario.md), with a TOML comment on every value naming
where it came from, and a header listing what the source lacked and how it was filled.

Every vCPU key is written explicitly (no defaults), so the file reads the same to every engine
and to a reader. Interrupts use ``apicmap.files.writer.injection_toml`` (raw encodings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from apicmap.domain.message import Injection
from apicmap.domain.vm import DFR_CLUSTER, DFR_FLAT, Vcpu
from apicmap.encoding.apic_base import ApicMode
from apicmap.files.writer import injection_toml
from apicmap.importers.common import ImportResult, Provenance


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportedCase:
    """An interrupt to add to the written scenario (for example from a guest's IRQ affinity)."""

    name: str
    injection: Injection
    expect: tuple[int, ...] | None = None
    comment: str = ""


def _comment(text: str) -> str:
    return " ".join(text.split())  # a TOML comment ends at the line end


def _line(key_value: str, prov: Provenance | None) -> str:
    return f"{key_value:<28} # {_comment(prov.describe())}" if prov else key_value


def _dfr(value: int) -> str:
    return {DFR_FLAT: '"flat"', DFR_CLUSTER: '"cluster"'}.get(value, f"0x{value:08x}")


def scenario_from_import(result: ImportResult, cases: Sequence[ImportedCase] = (), *,
                         kernel: str | None = None) -> str:
    """The scenario text for ``result`` (loadable by ``apicmap.scenario.load_scenario``)."""
    vm = result.vm
    vp = result.vm_provenance
    lines = [f"# Imported by apicmap import {result.format.value} from {_comment(result.source)}",
             "# Each value's comment names where it came from: a file and offset or key, an option, a",
             "# rule (derived), or KVM's default where the source does not record it."]
    if result.lacking:
        lines.append("# Not in the source:")
        lines += [f"#   {lack.item}: {_comment(lack.resolution)}" for lack in result.lacking]
    lines += [f"# {_comment(note)}" for note in result.notes]
    for key, value in sorted(result.extra.items()):
        lines.append(f"# {key}: {_comment(value)}")
    flags = [name for name, on in (("use_32bit_ids", vm.use_32bit_ids),
                                   ("disable_broadcast_quirk", vm.disable_broadcast_quirk)) if on]
    lines += ["", "[vm]", _line("x2apic_api = [" + ", ".join(f'"{f}"' for f in flags) + "]",
                                vp.get("use_32bit_ids"))]
    if kernel:
        lines.append(f'kernel = "{kernel}"')
    lines.append(_line(f"vector_hashing = {str(vm.vector_hashing).lower()}", vp.get("vector_hashing")))
    lines.append(_line(f"smm = {str(vm.smm).lower()}", vp.get("smm")))
    order = vp.get("creation_order")
    if order:
        lines.append(f"# creation order = [[vcpu]] order: {_comment(order.describe())}")
    for vcpu in vm.vcpus:
        lines += ["", *_vcpu_lines(vcpu, result.vcpu_provenance.get(vcpu.vcpu_id, {}))]
    for case in cases:
        lines += ["", "[[interrupt]]"]
        if case.comment:
            lines.append(f"# {_comment(case.comment)}")
        lines.append(f'name = "{case.name}"')
        lines += injection_toml(case.injection)
        if case.expect is not None:
            lines.append(f"expect = {list(case.expect)}  # what the source says the guest expects")
    return "\n".join(lines) + "\n"


def _vcpu_lines(v: Vcpu, p: Mapping[str, Provenance]) -> list[str]:
    out = ["[[vcpu]]", _line(f"vcpu_id = {v.vcpu_id}", p.get("vcpu_id")),
           _line(f'mode = "{v.mode.value}"', p.get("mode")),
           _line(f"sw_enabled = {str(v.sw_enabled).lower()}", p.get("sw_enabled"))]
    if v.mode is ApicMode.X2APIC:
        # The scenario format forbids LDR/DFR (and a foreign apic_id) in x2APIC mode: say why instead.
        for key in ("xapic_id", "ldr", "dfr"):
            if key in p:
                out.append(f"# {key}: {_comment(p[key].describe())}")
    else:
        out.append(_line(f"apic_id = 0x{v.xapic_id:02x}", p.get("xapic_id")))
        out.append(_line(f"ldr_register = 0x{v.ldr:08x}", p.get("ldr")))
        out.append(_line(f"dfr = {_dfr(v.dfr)}", p.get("dfr")))
    out.append(_line(f"tpr = 0x{v.tpr:02x}", p.get("tpr")))
    out.append(_line(f"arb_prio = {v.arb_prio}", p.get("arb_prio")))
    return out
