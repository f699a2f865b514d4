"""Output paths are checked before any work and written atomically."""

from __future__ import annotations

from pathlib import Path

import pytest

from apicmap import InputError
from apicmap.files.output import atomic_write_text, check_output_dir, check_output_path


@pytest.mark.parametrize("path", ["/nonexistent/x.xml", "/proc/nope.xml"])
def test_unwritable_file_is_an_input_error(path: str) -> None:
    with pytest.raises(InputError, match="--junit"):
        check_output_path(path, "--junit")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="directory"):
        check_output_path(tmp_path, "--tap")


def test_unwritable_dir_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--out"):
        check_output_dir("/proc/nope", "--out")
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match="not a directory"):
        check_output_dir(tmp_path / "f", "--out")
    assert check_output_dir(tmp_path / "a" / "b", "--out").is_dir()


def test_checks_create_nothing(tmp_path: Path) -> None:
    check_output_path(tmp_path / "x.xml", "--junit")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.xml"
    target.write_text("old")
    atomic_write_text(target, "new" * 1000)
    assert target.read_text() == "new" * 1000 and [p.name for p in tmp_path.iterdir()] == ["out.xml"]
