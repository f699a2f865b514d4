"""Pictures of KVM's optimized map (``apicmap map --svg``) and of one interrupt's answer
(``apicmap explain --svg``), as SVG written with the standard library only.

Layout, for VMs of any size and sparse IDs: one cell per physical ID in use (phys_map slot), in ID
order, 24 to a row; runs of four or more empty slots collapse into one "gap" cell that says how many;
each vCPU is one ``rect.vcpu`` inside its ID's cell (aliased vCPUs share the cell, side by side);
hardware-disabled vCPUs, which are in no map, get a row of their own. Below: the logical map, the
APICv inhibits, a legend with counts and, for an interrupt, why the others did not receive it.
Every vCPU rectangle carries a ``<title>`` (a tooltip in browsers) with its full reason.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from apicmap.app.render import vcpu_set
from apicmap.app.runner import CaseResult
from apicmap.domain.reasons import Code
from apicmap.domain.vm import VmState
from apicmap.encoding.apic_base import ApicMode
from apicmap.explain import render
from apicmap.files.scenario import Scenario
from apicmap.model.apic_map import ApicMap, LogicalMode
from apicmap.model.policy import KernelPolicy

COLUMNS = 24
CELL_W, CELL_H, GAP = 42, 38, 4
MARGIN = 20
WIDTH = 2 * MARGIN + COLUMNS * (CELL_W + GAP)
COLLAPSE = 4  # runs of this many empty slots or more become one gap cell
FONT = "font-family:DejaVu Sans,Arial,sans-serif"


@dataclass(frozen=True, slots=True)
class Category:
    key: str
    label: str
    fill: str


# Map view.
IN_MAP = Category("in-map", "in phys_map at its ID", "#4e79a7")
ALIASED = Category("aliased", "ID aliased: another vCPU holds the slot", "#f28e2b")
MAP_NULL = Category("map-null", "map NULL: slow path only", "#e15759")
HELD = Category("hotplug", "slot held through the hotplug hack (vcpu_id > 0xff)", "#a0cbe8")
ABSENT = Category("absent", "APIC hardware-disabled: in no map", "#555555")
EMPTY = Category("empty", "empty slot", "#f4f4f4")
# Explain view.
RECEIVED = Category("received", "received", "#59a14f")
HIDDEN = Category("hidden", "would match, but the map sends it elsewhere", "#f28e2b")
REFUSED = Category("refused", "addressed, but refused (disabled, no SMM, de-assert...)", "#e15759")
LP_LOST = Category("lp-lost", "lowest-priority candidate, not chosen", "#edc948")
NOT_ADDRESSED = Category("not-addressed", "not addressed", "#d9d9d9")

_ADDRESSED_CODES = {Code.IN_SLOT, Code.MATCHED, Code.LP_CHOSEN, Code.LP_NOT_CANDIDATE_SW_DISABLED}


@dataclass(frozen=True, slots=True)
class VcpuMark:
    index: int  # creation index
    category: Category
    tooltip: str


class _Svg:
    def __init__(self, title: str) -> None:
        self.root = ET.Element("svg", xmlns="http://www.w3.org/2000/svg", version="1.1")
        self.title = title
        ET.SubElement(self.root, "title").text = title
        ET.SubElement(self.root, "rect", {"class": "background", "x": "0", "y": "0", "width": "100%",
                                          "height": "100%", "fill": "white"})
        self.y = MARGIN

    def text(self, x: float, y: float, text: str, size: int = 12, parent: ET.Element | None = None,
             weight: str = "normal", anchor: str = "start", fill: str = "#222222") -> ET.Element:
        node = ET.SubElement(parent if parent is not None else self.root, "text",
                             {"x": f"{x:g}", "y": f"{y:g}", "font-size": str(size), "style": FONT,
                              "font-weight": weight, "text-anchor": anchor, "fill": fill})
        node.text = text
        return node

    def line(self, text: str, size: int = 12, weight: str = "normal", css: str = "") -> None:
        """A paragraph, wrapped to the picture's width."""
        per_line = int((WIDTH - 2 * MARGIN) / (size * 0.55))
        import textwrap

        for chunk in textwrap.wrap(text, per_line, break_on_hyphens=False) or [""]:
            self.y += size + 4
            node = self.text(MARGIN, self.y, chunk, size, weight=weight)
            if css:
                node.set("class", css)

    def finish(self) -> str:
        height = self.y + MARGIN
        self.root.set("width", str(WIDTH))
        self.root.set("height", str(height))
        self.root.set("viewBox", f"0 0 {WIDTH} {height}")
        ET.indent(self.root)
        return ET.tostring(self.root, encoding="unicode", xml_declaration=True) + "\n"


def _physical_id(vm: VmState, index: int) -> int:
    v = vm.vcpus[index]
    return v.vcpu_id if v.mode is ApicMode.X2APIC else v.xapic_id


def _grid(svg: _Svg, vm: VmState, amap: ApicMap, marks: dict[int, VcpuMark]) -> None:
    """The physical ID grid (one ``g.slot`` per ID in use or slot held, ``g.gap`` per collapsed run)."""
    claims: dict[int, list[int]] = {}
    absent: list[int] = []
    for index, v in enumerate(vm.vcpus):
        if v.mode is ApicMode.DISABLED:
            absent.append(index)
        else:
            claims.setdefault(_physical_id(vm, index), []).append(index)
    holders = {} if amap.phys is None else {slot: idx for slot, idx in enumerate(amap.phys) if idx is not None}
    used = sorted(set(claims) | set(holders))
    last = amap.max_apic_id if amap.phys is not None else (used[-1] if used else -1)
    cells: list[tuple[str, int, int]] = []  # ("slot", id, id) or ("gap"/"empty", first, last)
    previous = -1
    for pid in [*used, last + 1]:
        gap = pid - previous - 1
        if gap >= COLLAPSE:
            cells.append(("gap", previous + 1, pid - 1))
        else:
            cells += [("empty", i, i) for i in range(previous + 1, pid)]
        if pid <= last:
            cells.append(("slot", pid, pid))
        previous = pid
    kind = "phys_map" if amap.phys is not None else "physical IDs (no map: NULL)"
    svg.line(f"{kind}: IDs 0x0-{last:#x}, {len(used)} in use; cells show the ID (top) and the vCPU ids", 13, "bold")
    svg.y += 6
    grid = ET.SubElement(svg.root, "g", {"class": "grid"})
    for n, (what, first, end) in enumerate(cells):
        x = MARGIN + (n % COLUMNS) * (CELL_W + GAP)
        y = svg.y + (n // COLUMNS) * (CELL_H + GAP)
        if what == "slot":
            _slot(svg, grid, x, y, first, claims.get(first, []), holders.get(first), vm, marks)
        else:
            node = ET.SubElement(grid, "g", {"class": what, "data-first": f"{first:#x}", "data-last": f"{end:#x}"})
            ET.SubElement(node, "rect", {"x": str(x), "y": str(y), "width": str(CELL_W), "height": str(CELL_H),
                                         "fill": EMPTY.fill, "stroke": "#bbbbbb", "stroke-dasharray":
                                         "3,2" if what == "gap" else "none"})
            count = end - first + 1
            ET.SubElement(node, "title").text = (f"{count} empty slots {first:#x}-{end:#x}" if what == "gap"
                                                 else f"empty slot {first:#x}")
            svg.text(x + CELL_W / 2, y + 15, f"{first:#x}" if what == "empty" else f"{first:#x}-", 9, node,
                     anchor="middle", fill="#888888")
            if what == "gap":
                svg.text(x + CELL_W / 2, y + 30, f"{count} empty", 8, node, anchor="middle", fill="#888888")
    rows = (len(cells) + COLUMNS - 1) // COLUMNS
    svg.y += rows * (CELL_H + GAP)
    if absent:
        svg.line("hardware-disabled APICs (in no map):", 13, "bold")
        svg.y += 6
        group = ET.SubElement(svg.root, "g", {"class": "absent"})
        for n, index in enumerate(absent):
            x = MARGIN + (n % COLUMNS) * (CELL_W + GAP)
            y = svg.y + (n // COLUMNS) * (CELL_H + GAP)
            _slot(svg, group, x, y, None, [index], None, vm, marks)
        svg.y += ((len(absent) + COLUMNS - 1) // COLUMNS) * (CELL_H + GAP)


def _slot(svg: _Svg, parent: ET.Element, x: float, y: float, pid: int | None, members: list[int],
          holder: int | None, vm: VmState, marks: dict[int, VcpuMark]) -> None:
    node = ET.SubElement(parent, "g", {"class": "slot"} if pid is not None else {"class": "slot-absent"})
    if pid is not None:
        node.set("data-id", f"{pid:#x}")
    ET.SubElement(node, "rect", {"x": str(x), "y": str(y), "width": str(CELL_W), "height": str(CELL_H),
                                 "fill": HELD.fill if not members else "white", "stroke": "#666666"})
    if not members and holder is not None:
        held = vm.vcpus[holder].vcpu_id
        ET.SubElement(node, "title").text = f"phys_map[{pid:#x}] holds vCPU {held} (hotplug hack)"
    width = (CELL_W - 2) / max(len(members), 1)
    for k, index in enumerate(members):
        mark = marks[index]
        rect = ET.SubElement(node, "rect", {"class": "vcpu", "data-vcpu": str(vm.vcpus[index].vcpu_id),
                                            "data-category": mark.category.key, "x": f"{x + 1 + k * width:g}",
                                            "y": str(y + 1), "width": f"{width:g}", "height": str(CELL_H - 2),
                                            "fill": mark.category.fill, "stroke": "white", "stroke-width": "1"})
        ET.SubElement(rect, "title").text = mark.tooltip
    dark = members and marks[members[0]].category.key in ("in-map", "map-null", "absent", "received", "refused")
    ink = "white" if dark else "#222222"
    svg.text(x + CELL_W / 2, y + 14, f"{pid:#x}" if pid is not None else "off", 9, node, anchor="middle", fill=ink)
    ids = [vm.vcpus[i].vcpu_id for i in members]
    if not ids and holder is not None:
        label = f"→{vm.vcpus[holder].vcpu_id}"
    else:
        label = ",".join(str(i) for i in ids) if len(ids) <= 2 else f"{ids[0]},+{len(ids) - 1}"
    svg.text(x + CELL_W / 2, y + 31, label, 11, node, weight="bold", anchor="middle", fill=ink)


def _logical(svg: _Svg, vm: VmState, amap: ApicMap) -> None:
    group = ET.SubElement(svg.root, "g", {"class": "logical"})
    mode = amap.logical_mode
    reason = f" ({amap.logical_reason})" if amap.logical_reason else ""
    svg.line(f"logical map: {mode.value}{reason}", 13, "bold")
    if amap.phys is None:
        svg.line("the map is NULL, so logical deliveries take the slow path too", 12)
        return
    if mode is LogicalMode.X2APIC:
        svg.line("x2APIC logical lookups use phys_map: cluster = x2APIC ID >> 4, bit = ID & 0xf", 12)
        return
    if mode not in (LogicalMode.XAPIC_FLAT, LogicalMode.XAPIC_CLUSTER):
        svg.line("no logical fast path: logical interrupts take the slow path (or are dropped when "
                 "SW_DISABLED)", 12)
        return
    bits = 8 if mode is LogicalMode.XAPIC_FLAT else 4
    rows = [(0, amap.clusters[0][:8])] if bits == 8 else [
        (c, row[:4]) for c, row in enumerate(amap.clusters) if any(s is not None for s in row[:4])]
    svg.y += 6
    for r, (cluster, row) in enumerate(rows):
        y = svg.y + r * (CELL_H // 2 + GAP)
        svg.text(MARGIN, y + 14, "flat" if bits == 8 else f"cluster {cluster:#x}", 11, group)
        for b, idx in enumerate(row):
            x = MARGIN + 80 + b * (CELL_W + GAP)
            ET.SubElement(group, "rect", {"class": "logical-slot", "x": str(x), "y": str(y), "width": str(CELL_W),
                                          "height": str(CELL_H // 2), "stroke": "#666666",
                                          "fill": IN_MAP.fill if idx is not None else EMPTY.fill})
            text = f"b{b}:{vm.vcpus[idx].vcpu_id}" if idx is not None else f"b{b}"
            svg.text(x + CELL_W / 2, y + 14, text, 10, group, anchor="middle",
                     fill="white" if idx is not None else "#888888")
    svg.y += len(rows) * (CELL_H // 2 + GAP)


def _legend(svg: _Svg, marks: dict[int, VcpuMark], extra: tuple[Category, ...]) -> None:
    counts: dict[str, int] = {}
    for mark in marks.values():
        counts[mark.category.key] = counts.get(mark.category.key, 0) + 1
    seen: dict[str, Category] = {m.category.key: m.category for m in marks.values()}
    shown = [*[c for c in seen.values()], *[c for c in extra if c.key not in seen]]
    svg.y += 10
    legend = ET.SubElement(svg.root, "g", {"class": "legend"})
    svg.text(MARGIN, svg.y + 12, "legend", 13, legend, weight="bold")
    svg.y += 18
    for n, category in enumerate(shown):
        x = MARGIN + (n % 2) * (WIDTH - 2 * MARGIN) / 2
        y = svg.y + (n // 2) * 20
        item = ET.SubElement(legend, "g", {"class": "legend-item", "data-category": category.key})
        ET.SubElement(item, "rect", {"x": str(x), "y": str(y), "width": "14", "height": "14",
                                     "fill": category.fill, "stroke": "#666666"})
        count = counts.get(category.key)
        svg.text(x + 20, y + 12, category.label + (f": {count} vCPU{'s' if count != 1 else ''}" if count else ""),
                 12, item)
    svg.y += ((len(shown) + 1) // 2) * 20


def _header(svg: _Svg, scenario: Scenario, amap: ApicMap, policy: KernelPolicy, heading: str) -> None:
    svg.line(heading, 16, "bold")
    svg.line(f"{scenario.path}: {len(scenario.vm.vcpus)} vCPUs; model of KVM {policy.releases} ({policy.key})", 12)
    if amap.phys is None:
        svg.line(f"map NULL: {amap.null_reason}; every delivery takes the slow path", 12, "bold", "map-null")
    else:
        svg.line(f"map present: max_apic_id {amap.max_apic_id:#x} ({amap.max_apic_id + 1} slots)", 12)
    inhibits = ", ".join(sorted(amap.inhibits)) or "none"
    svg.line(f"APICv inhibits raised by the map: {inhibits}", 12, css="inhibits")
    svg.y += 6


def map_marks(vm: VmState, amap: ApicMap) -> dict[int, VcpuMark]:
    marks: dict[int, VcpuMark] = {}
    holders = {} if amap.phys is None else {slot: idx for slot, idx in enumerate(amap.phys) if idx is not None}
    for index, v in enumerate(vm.vcpus):
        if v.mode is ApicMode.DISABLED:
            marks[index] = VcpuMark(index, ABSENT, f"vCPU {v.vcpu_id}: APIC hardware-disabled, in no map")
            continue
        pid = _physical_id(vm, index)
        head = f"vCPU {v.vcpu_id} ({v.mode.value}, ID {pid:#x}{'' if v.sw_enabled else ', software-disabled'})"
        if amap.phys is None:
            marks[index] = VcpuMark(index, MAP_NULL, f"{head}: map NULL ({amap.null_reason})")
        elif holders.get(pid) == index:
            marks[index] = VcpuMark(index, IN_MAP, f"{head}: phys_map[{pid:#x}]")
        else:
            other = holders.get(pid)
            held_by = "nobody" if other is None else f"vCPU {vm.vcpus[other].vcpu_id}"
            marks[index] = VcpuMark(index, ALIASED, f"{head}: phys_map[{pid:#x}] holds {held_by}")
    return marks


def map_svg(scenario: Scenario, amap: ApicMap, policy: KernelPolicy) -> str:
    svg = _Svg(f"KVM optimized APIC map: {scenario.path}")
    _header(svg, scenario, amap, policy, f"KVM's optimized APIC map, {policy.key}")
    marks = map_marks(scenario.vm, amap)
    _grid(svg, scenario.vm, amap, marks)
    svg.y += 8
    _logical(svg, scenario.vm, amap)
    held = amap.phys is not None and any(
        idx is not None and _physical_id(scenario.vm, idx) != slot for slot, idx in enumerate(amap.phys))
    _legend(svg, marks, (HELD,) if held else ())
    return svg.finish()


def _explain_category(code: Code | None, received: bool) -> Category:
    if received:
        return RECEIVED
    if code is Code.HIDDEN_BY_MAP:
        return HIDDEN
    if code is Code.NOT_PRESENT:
        return ABSENT
    if code is Code.LP_NOT_CHOSEN:
        return LP_LOST
    if code in _ADDRESSED_CODES:
        return REFUSED
    return NOT_ADDRESSED


def explain_svg(scenario: Scenario, amap: ApicMap, policy: KernelPolicy, result: CaseResult) -> str:
    """Who received ``result``'s interrupt under the model and why each other vCPU did not."""
    case = result.case
    svg = _Svg(f"interrupt {case.index} ({case.name}): {scenario.path}")
    _header(svg, scenario, amap, policy, f"interrupt {case.index}: {case.name}")
    outcome = result.outcome
    explanation = outcome.explanation if outcome is not None else None
    if outcome is None or explanation is None:
        svg.line(f"the model cannot express this interrupt: {result.not_expressible}", 12, "bold")
        return svg.finish()
    svg.line(f"message: {explanation.message}", 12)
    svg.line(f"path: {render(explanation.path)}", 12, css="path")
    result_text = "-" if outcome.result is None else str(outcome.result)
    svg.line(f"receivers {vcpu_set(outcome.receivers)}; KVM_SIGNAL_MSI returns {result_text}"
             + (f"; refused: {outcome.rejected}" if outcome.rejected else ""), 12, "bold", "receivers")
    for note in explanation.notes:
        svg.line(f"note: {render(note)}", 11)
    svg.y += 6
    reasons = dict(explanation.reasons)
    marks: dict[int, VcpuMark] = {}
    groups: dict[tuple[str, Code | None], list[int]] = {}
    for index, v in enumerate(scenario.vm.vcpus):
        reason = reasons.get(v.vcpu_id)
        code = reason.code if reason is not None else None
        category = _explain_category(code, v.vcpu_id in outcome.receivers)
        text = render(reason) if reason is not None else "no reason recorded"
        marks[index] = VcpuMark(index, category, f"vCPU {v.vcpu_id}: {text}")
        groups.setdefault((category.key, code), []).append(index)
    _grid(svg, scenario.vm, amap, marks)
    svg.y += 8
    _logical(svg, scenario.vm, amap)
    _legend(svg, marks, ())
    return _why(svg, scenario.vm, marks, groups)


def _why(svg: _Svg, vm: VmState, marks: dict[int, VcpuMark], groups: dict[tuple[str, Code | None], list[int]]
         ) -> str:
    svg.y += 8
    why = ET.SubElement(svg.root, "g", {"class": "reasons"})
    svg.text(MARGIN, svg.y + 12, "why, by reason (hover a vCPU for its own)", 13, why, weight="bold")
    svg.y += 14
    for (_key, _code), members in groups.items():
        category = marks[members[0]].category
        ids = vcpu_set(vm.vcpus[i].vcpu_id for i in members)
        first = marks[members[0]].tooltip
        example = first if len(members) == 1 else f"e.g. {first}"
        svg.line(f"{category.label} {ids}: {example}", 11, css=f"reason {category.key}")
    return svg.finish()
