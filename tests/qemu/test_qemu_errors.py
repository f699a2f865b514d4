"""Errors are one line and name the QEMU log; the guest is cached and rebuilt on change."""

from __future__ import annotations

from pathlib import Path

import pytest

from apicmap import ApicmapError, MsiInjection, Vcpu, VmState
from apicmap.qemu import GuestBuildError, QemuEngine, QemuRunError, QemuUnavailable, build, guest_elf
from apicmap.qemu.run import run_job


def test_missing_qemu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("APICMAP_QEMU", str(tmp_path / "no-such-qemu"))
    with pytest.raises(QemuUnavailable, match="cannot run") as err:
        QemuEngine()
    assert isinstance(err.value, ApicmapError) and "\n" not in str(err.value)


def test_missing_gcc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("APICMAP_CACHE", str(tmp_path))
    monkeypatch.setenv("APICMAP_GCC", str(tmp_path / "no-such-gcc"))
    with pytest.raises(GuestBuildError, match="cannot run"):
        guest_elf()


def test_hang_is_a_timeout_naming_the_log(qemu_engine: QemuEngine, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("APICMAP_CACHE", str(tmp_path))
    engine = QemuEngine(timeout=0.05)
    with pytest.raises(QemuRunError, match=r"did not finish within .*QEMU log: .*qemu\.log") as err:
        engine.prepare(VmState((Vcpu(0), Vcpu(1)))).deliver(MsiInjection(0xFEE01000, 0, 0x40))
    log = Path(str(err.value).rsplit("QEMU log: ", 1)[1])
    assert log.is_file() and "qemu-system" in log.read_text()
    assert "\n" not in str(err.value)


def test_bad_job_is_reported_by_the_guest(qemu_engine: QemuEngine, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("APICMAP_CACHE", str(tmp_path))
    with pytest.raises(QemuRunError, match=r"the guest failed: job magic .*QEMU log: "):
        run_job(qemu_engine.qemu, guest_elf(), 1, b"\0" * 64, 1, 60.0)


def test_guest_is_cached_and_rebuilt_when_its_source_changes(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    if build.find_gcc() is None:
        pytest.skip("gcc not found (apt-get install gcc)")
    monkeypatch.setenv("APICMAP_CACHE", str(tmp_path))
    first = guest_elf()
    assert first.parent == tmp_path and first.read_bytes()[:4] == b"\x7fELF"
    stamp = first.stat().st_mtime_ns
    assert guest_elf() == first and first.stat().st_mtime_ns == stamp  # reused, not rebuilt
    original = build._sources

    def changed() -> dict[str, bytes]:
        sources = original()
        sources["guest.c"] += b"\n/* changed */\n"
        return sources

    monkeypatch.setattr(build, "_sources", changed)
    second = guest_elf()
    assert second != first and second.is_file()


def test_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("APICMAP_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert build.cache_root() == tmp_path / "apicmap"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert build.cache_root() == Path.home() / ".cache" / "apicmap"
