"""The profile pages hold the rules generated from the rows, so docs and data cannot drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from apicmap.profiles.doc import disagreements_table, page_of, rules_table
from apicmap.profiles.policy import PROFILES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "profiles"


@pytest.mark.parametrize("name", list(PROFILES))
def test_each_profile_page_holds_its_generated_rules(name: str) -> None:
    page = (DOCS / page_of(name)).read_text()
    for row in PROFILES[name]:
        assert rules_table(row) in page, f"docs/profiles/{page_of(name)} is stale for {row.key}"


def test_readme_holds_the_disagreements_table_and_the_model_page_links_the_live_page() -> None:
    assert disagreements_table() in (DOCS / "README.md").read_text()
    assert "(qemu.md)" in (DOCS / "qemu-model.md").read_text()
