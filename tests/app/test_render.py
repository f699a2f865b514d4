"""Compact text for large VMs: vCPU sets as ranges, tables without trailing spaces, words kept whole."""

from __future__ import annotations

import pytest

from apicmap.app.render import cell, parse_vcpu_list, plain_table, vcpu_set
from apicmap.errors import InputError


def test_vcpu_set_ranges() -> None:
    assert vcpu_set(range(1024)) == "{0-1023}"
    assert vcpu_set([1, 3, 4, 5]) == "{1, 3-5}"
    assert vcpu_set([5, 1, 2]) == "{1, 2, 5}"
    assert vcpu_set([]) == "{}"


def test_parse_vcpu_list_is_the_inverse() -> None:
    assert parse_vcpu_list("1,3-5", "--vcpu") == frozenset({1, 3, 4, 5})
    with pytest.raises(InputError, match="--vcpu"):
        parse_vcpu_list("5-1", "--vcpu")


def test_plain_table_wraps_on_words_and_has_no_trailing_spaces() -> None:
    note = "the fast path delivers only to phys_map[0x1] (vCPU 1) " * 3
    text = plain_table("t", ["a", "note"], [["x", note.strip()], ["longer cell", "short"]], width=60)
    lines = text.splitlines()
    assert all(line == line.rstrip() for line in lines)
    assert all(len(line) <= 60 for line in lines)
    words = " ".join(line.split("|")[-1].strip() for line in lines[3:-1])
    assert words == note.strip()  # every word whole, in order


def test_cells_hide_python_values() -> None:
    assert [cell(None), cell(True), cell(False), cell([]), cell(["A", "B"]), cell(3)] == \
        ["-", "true", "false", "-", "A, B", "3"]
