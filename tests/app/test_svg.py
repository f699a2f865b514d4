"""``map --svg`` and ``explain --svg``: the SVG parses as XML with one element per vCPU and per slot and a
legend, and a real browser (headless Chromium) renders it to a PNG that is not blank and shows the colours."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from apicmap.app import svg

ROOT = Path(__file__).resolve().parents[2]
NS = {"s": "http://www.w3.org/2000/svg"}
BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def _sparse_vm(tmp_path: Path) -> Path:
    """300 vCPUs: ids 0..199 dense, then every 7th id (sparse, x2APIC above 255), xAPIC IDs aliased by
    the default xAPIC vCPUs above 255, one hardware-disabled vCPU."""
    lines = ["[vm]", "vcpus = 300", 'x2apic_api = ["use_32bit_ids"]']
    for i in range(300):
        vid = i if i < 200 else 200 + (i - 200) * 7
        lines += ["[[vcpu]]", f"vcpu_id = {vid}"]
        if vid > 255 or i % 5 == 0:
            lines.append('mode = "x2apic"')
        elif i == 9:
            lines.append('mode = "disabled"')
    lines += ["[[interrupt]]", 'name = "to 3"', "dest = 3", "vector = 0x40"]
    path = tmp_path / "sparse.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def apicmap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "apicmap", *args], capture_output=True, text=True, cwd=ROOT)


def _parse(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def _by_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def test_map_svg_has_a_cell_per_vcpu_and_slot_and_a_legend(tmp_path: Path) -> None:
    from apicmap.files.scenario import load_scenario
    from apicmap.model.apic_map import build_map
    from apicmap.model.policy import NEWEST

    scenario_path = _sparse_vm(tmp_path)
    out = tmp_path / "map.svg"
    proc = apicmap("map", str(scenario_path), "--svg", str(out))
    assert proc.returncode == 0, proc.stderr
    root = _parse(out)
    scenario = load_scenario(scenario_path)
    vcpus = _by_class(root, "vcpu")
    assert sorted(int(r.get("data-vcpu", "-1")) for r in vcpus) == sorted(v.vcpu_id for v in scenario.vm.vcpus)
    amap = build_map(scenario.vm, NEWEST)
    assert amap.phys is not None
    used = {i for i, s in enumerate(amap.phys) if s is not None}
    slot_ids = {int(g.get("data-id", "x"), 16) for g in _by_class(root, "slot")}
    assert used <= slot_ids
    gaps = _by_class(root, "gap")
    assert gaps, "runs of empty slots are collapsed"
    empties = _by_class(root, "empty")
    covered = sum(int(g.get("data-last", "0"), 16) - int(g.get("data-first", "0"), 16) + 1 for g in gaps)
    cells = len(_by_class(root, "slot")) + len(empties) + len(gaps)
    assert len(slot_ids) + len(empties) + covered == amap.max_apic_id + 1  # every slot is accounted for
    assert cells < 0.6 * (amap.max_apic_id + 1)
    assert {e.get("data-category") for e in vcpus} == {"in-map", "aliased", "absent"}
    legend = _by_class(root, "legend-item")
    assert {e.get("data-category") for e in legend} >= {"in-map", "aliased", "absent", "hotplug"}
    assert all(r.find("s:title", NS) is not None for r in vcpus)  # every vCPU has its reason as a tooltip
    inhibits = ", ".join(sorted(amap.inhibits)) or "none"
    assert "".join(_by_class(root, "inhibits")[0].itertext()).endswith(inhibits)


def test_map_svg_of_a_null_map_says_why(tmp_path: Path) -> None:
    out = tmp_path / "null.svg"
    assert apicmap("map", str(ROOT / "examples" / "aliased-xapic-id.toml"), "--svg", str(out)).returncode == 0
    root = _parse(out)
    assert "aliased by vCPU 1 and vCPU 2" in "".join(_by_class(root, "map-null")[0].itertext())
    assert {r.get("data-category") for r in _by_class(root, "vcpu")} == {"map-null"}


def test_explain_svg_colours_receivers_and_reasons(tmp_path: Path) -> None:
    scenario_path = _sparse_vm(tmp_path)
    out = tmp_path / "explain.svg"
    proc = apicmap("explain", str(scenario_path), "--engines", "model", "--svg", str(out), "--interrupt", "1")
    assert proc.returncode == 0, proc.stderr
    root = _parse(out)
    category = {int(r.get("data-vcpu", "-1")): r.get("data-category") for r in _by_class(root, "vcpu")}
    assert category[3] == "received"
    # vCPU 259 is xAPIC ID 3 too (259 & 0xff): the fast path sends only to phys_map[0x3].
    assert category[259] == "hidden" and category[9] == "absent"
    assert set(category.values()) == {"received", "hidden", "absent", "not-addressed"}
    reasons = " ".join("".join(e.itertext()) for e in _by_class(root, "reason"))
    assert "would match in the slow path" in reasons


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) pixels of an 8-bit PNG (the standard library's zlib only)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6)
    bpp = 4 if colour == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = previous[i]
            c = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line if bpp == 3 else bytes(v for k, v in enumerate(line) if k % 4 != 3)))
        previous = line
    return width, height, rows


def _screenshot(svg_path: Path, png: Path) -> None:
    assert BROWSER is not None
    with tempfile.TemporaryDirectory() as profile:
        args = [BROWSER, "--headless", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                f"--screenshot={png}", "--window-size=1200,900", svg_path.as_uri()]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")
        subprocess.run(args, capture_output=True, timeout=120, check=False)
    assert png.exists(), f"{BROWSER} wrote no screenshot"


@pytest.mark.skipif(BROWSER is None, reason="Chromium is not installed (apt-get install chromium; tools/test.py "
                                            "installs it where it can)")
def test_chromium_renders_the_pictures(tmp_path: Path) -> None:
    scenario_path = _sparse_vm(tmp_path)
    for name, args, colour in (("map", ("map",), svg.IN_MAP.fill),
                               ("explain", ("explain", "--engines", "model"), svg.RECEIVED.fill)):
        out = tmp_path / f"{name}.svg"
        assert apicmap(*args, str(scenario_path), "--svg", str(out)).returncode == 0
        png = tmp_path / f"{name}.png"
        _screenshot(out, png)
        width, height, rows = _png_pixels(png)
        assert (width, height) == (1200, 900)
        pixels = {row[i:i + 3] for row in rows[::3] for i in range(0, len(row), 9)}
        assert len(pixels) > 20, f"{name}: the screenshot is blank"
        white = sum(row.count(b"\xff\xff\xff") for row in rows[::10])
        assert white < 0.9 * (width * height / 10), f"{name}: the screenshot is nearly all white"
        rgb = bytes.fromhex(colour[1:])
        assert any(rgb in row for row in rows), f"{name}: colour {colour} not drawn"
