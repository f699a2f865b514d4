"""linux-guest: the /proc files and dmesg of a real Linux 6.1 guest booted under QEMU."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from apicmap import ApicMode, DestMode, InputError, IoapicInjection
from apicmap.files.scenario import parse_scenario
from apicmap.importers import ImportOptions, LinuxApicDriver, import_source, scenario_from_import
from apicmap.importers.linux_guest import check_irqs, guest_irqs, irq_injection, load_linux_guest

from .engines import answers, engine, engines_here
from .guest_capture import boot_and_capture, write_capture

DATA = Path(__file__).parent / "data" / "linux-guest-6.1"
FLAT = ImportOptions(x2apic_api=frozenset(), linux_apic_driver=LinuxApicDriver.FLAT)


def cpuinfo_ids(path: Path) -> list[tuple[int, int]]:
    """(processor, apicid) pairs, read independently of the importer."""
    pairs, cpu = [], -1
    for line in path.read_text().splitlines():
        if line.startswith("processor"):
            cpu = int(line.split(":")[1])
        elif line.startswith("apicid"):
            pairs.append((cpu, int(line.split(":")[1])))
    return pairs


def test_import_the_captured_guest() -> None:
    result = import_source("linux-guest", DATA, FLAT)
    pairs = cpuinfo_ids(DATA / "proc" / "cpuinfo")
    assert result.vm.vcpu_ids == tuple(a for _, a in pairs)
    for cpu, apic in pairs:
        v = result.vm.vcpu(apic)
        assert (v.mode, v.xapic_id, v.ldr, v.sw_enabled) == (ApicMode.XAPIC, apic, (1 << cpu) << 24, True)
    assert result.vcpu_provenance[pairs[1][1]]["vcpu_id"].location.endswith("(processor 1) apicid")
    assert result.extra["linux CPU -> APIC ID"] == ", ".join(f"{c}->{a}" for c, a in pairs)


def test_driver_must_be_given_when_dmesg_names_none() -> None:
    # Linux 6.1 kept its default flat driver and said nothing about it.
    assert "APIC routing to" not in (DATA / "dmesg").read_text()
    with pytest.raises(InputError) as err:
        import_source("linux-guest", DATA, ImportOptions(x2apic_api=frozenset()))
    assert err.value.where == "option linux_apic_driver" and "dmesg names no APIC driver" in err.value.problem


def test_physical_flat_reading_of_the_same_guest() -> None:
    result = import_source("linux-guest", DATA, replace(FLAT, linux_apic_driver=LinuxApicDriver.PHYSICAL_FLAT))
    assert all(v.ldr == 0 and v.xapic_id == v.vcpu_id for v in result.vm.vcpus)


def test_every_irq_reaches_the_cpu_the_guest_routed_it_to_on_every_engine() -> None:
    guest = load_linux_guest(DATA)
    result = import_source("linux-guest", DATA, FLAT)
    irqs = guest_irqs(guest, options=FLAT)
    # Every IO-APIC row of /proc/interrupts with a CPU in its effective affinity is resolved.
    rows = [line for line in (DATA / "proc" / "interrupts").read_text().splitlines() if "IO-APIC" in line]
    assert [g.irq for g in irqs] == sorted(int(r.split(":")[0]) for r in rows)
    by_cpu = {c.cpu: c.apic_id for c in guest.cpus}
    for g in irqs:
        affinity = (DATA / "proc" / "irq" / str(g.irq) / "effective_affinity_list").read_text().strip()
        assert g.cpus == (int(affinity),)
        assert g.dest_mode is DestMode.LOGICAL and g.destination == 1 << g.cpus[0]
        assert isinstance(g.injection, IoapicInjection) and g.expect == (by_cpu[g.cpus[0]],)
    injections = [g.injection for g in irqs]
    for name in engines_here():
        got = answers(name, result.vm, injections)
        assert [a[0] if isinstance(a, tuple) else a for a in got] == [g.expect for g in irqs], name
        checks = check_irqs(result.vm, irqs, engine(name))
        assert all(c.agrees for c in checks) and [c.irq for c in checks] == [g.irq for g in irqs]
    # Had vCPU 1 lost its LDR (0), the IRQs Linux routed logically to CPU 1 would reach nobody.
    moved = result.vm.with_vcpu(replace(result.vm.vcpu(1), ldr=0))
    lost = [c.irq for c in check_irqs(moved, irqs, engine("model")) if not c.agrees]
    assert lost == [g.irq for g in irqs if g.cpus == (1,)]
    # The scenario carries them, with the guest's expectation, and loads.
    scenario = parse_scenario(tomllib.loads(scenario_from_import(result, [g.case() for g in irqs])), "guest.toml")
    assert [c.expect for c in scenario.interrupts] == [g.expect for g in irqs]
    assert scenario.vm == result.vm


def test_level_triggered_pin_and_errors() -> None:
    guest = load_linux_guest(DATA)
    acpi = irq_injection(guest, 9, options=FLAT)  # "9-fasteoi acpi"
    assert isinstance(acpi.injection, IoapicInjection) and acpi.injection.pin == 9
    assert acpi.injection.rte >> 15 & 1 == 1  # level
    with pytest.raises(InputError, match="empty"):
        irq_injection(guest, 2, options=FLAT)  # the cascade: no effective affinity
    with pytest.raises(InputError, match="missing"):
        irq_injection(guest, 77, options=FLAT)


def test_tarball_gives_the_same_vm(tmp_path: Path) -> None:
    archive = tmp_path / "guest.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(DATA, arcname="./guest")
    assert import_source("linux-guest", archive, FLAT).vm == import_source("linux-guest", DATA, FLAT).vm
    (tmp_path / "junk.tar.gz").write_bytes(b"\x1f\x8b not really")
    with pytest.raises(InputError, match="not a directory or a readable tarball"):
        import_source("linux-guest", tmp_path / "junk.tar.gz", FLAT)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "cpuinfo").write_bytes(io.BytesIO(b"processor : 0\nvendor_id : GenuineIntel\n").read())
    with pytest.raises(InputError, match="no 'apicid' lines"):
        import_source("linux-guest", bad, FLAT)


def _kernel(cache: Path) -> Path | None:
    """Debian's 6.1 kernel image, downloaded once with apt-get into the pytest cache (only the image is kept)."""
    found = sorted(cache.glob("vmlinuz-*"))
    if found:
        return found[-1]
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        return None
    cache.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(["apt-get", "download", "linux-image-6.1.0-47-amd64-unsigned"], cwd=cache,
                         capture_output=True, check=False)
    debs = sorted(cache.glob("linux-image-*.deb"))
    if got.returncode != 0 or not debs:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), tmp], check=True)
        for image in Path(tmp).glob("boot/vmlinuz-*"):
            shutil.copy(image, cache / image.name)
    for deb in debs:
        deb.unlink()
    found = sorted(cache.glob("vmlinuz-*"))
    return found[-1] if found else None


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("qemu-system-x86_64") or not Path("/bin/busybox").exists(),
                    reason="needs qemu-system-x86_64 and busybox-static")
def test_live_guest_capture(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    cache = getattr(pytestconfig, "cache", None)  # absent with -p no:cacheprovider
    kernel = _kernel(Path(str(cache.mkdir("apicmap-guest-kernel"))) if cache is not None else tmp_path / "kernel")
    if kernel is None:
        pytest.skip("Debian's linux-image-6.1.0-47-amd64-unsigned could not be downloaded")
    files, _ = boot_and_capture(kernel)
    write_capture(files, tmp_path / "guest")
    live = import_source("linux-guest", tmp_path / "guest", FLAT)
    assert live.vm == import_source("linux-guest", DATA, FLAT).vm
    guest = load_linux_guest(tmp_path / "guest")
    irqs = guest_irqs(guest, options=FLAT)
    assert irqs, "the guest routed no IO-APIC IRQ"
    got = answers("model", live.vm, [g.injection for g in irqs])
    assert [a[0] if isinstance(a, tuple) else a for a in got] == [g.expect for g in irqs]


SMP12 = Path(__file__).parent / "data" / "linux-guest-6.1-smp12"


def test_physical_flat_guest_driver_from_dmesg() -> None:
    options = ImportOptions(x2apic_api=frozenset())
    result = import_source("linux-guest", SMP12, options)
    line = next(n for n, text in enumerate((SMP12 / "dmesg").read_text().splitlines(), start=1)
                if "Switched APIC routing to physical flat" in text)
    assert result.vcpu_provenance[0]["mode"].location == f"line {line}"
    pairs = cpuinfo_ids(SMP12 / "proc" / "cpuinfo")
    assert len(pairs) == 12 and result.vm.vcpu_ids == tuple(a for _, a in pairs)
    assert all(v.ldr == 0 and v.mode is ApicMode.XAPIC for v in result.vm.vcpus)
    guest = load_linux_guest(SMP12)
    irqs = guest_irqs(guest, options=options)
    by_cpu = dict(pairs)
    for g in irqs:
        assert g.dest_mode is DestMode.PHYSICAL and g.destination == by_cpu[g.cpus[0]]
    for name in engines_here():
        got = answers(name, result.vm, [g.injection for g in irqs])
        assert [a[0] if isinstance(a, tuple) else a for a in got] == [g.expect for g in irqs], name
    # An option wins over dmesg; the flat driver is impossible with 12 CPUs (one LDR bit per CPU).
    forced = import_source("linux-guest", SMP12, replace(options, linux_apic_driver=LinuxApicDriver.PHYSICAL_FLAT))
    assert forced.vm == result.vm
    with pytest.raises(InputError, match="CPU 8 under the flat driver"):
        import_source("linux-guest", SMP12, replace(options, linux_apic_driver=LinuxApicDriver.FLAT))
