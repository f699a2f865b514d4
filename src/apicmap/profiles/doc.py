"""The rules table of a profile's documentation page, generated from its row so the pages
(``docs/profiles/<name>.md``) cannot drift from the data; a test checks each page holds it."""

from __future__ import annotations

import enum

from apicmap.profiles.policy import KVM_RULE_FIELDS, RULE_FIELDS, KvmBasedPolicy, PeerPolicy, Policy

BEGIN = "<!-- rules: generated from apicmap.profiles.policy; do not edit by hand -->"
END = "<!-- end of rules -->"


def _text(value: object) -> str:
    if isinstance(value, enum.Enum):
        return f"`{value.name.lower()}`: {value.value}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "none" if value is None else str(value)


def rules_table(policy: Policy) -> str:
    """The Markdown block: one row per rule field, then the sources."""
    fields = RULE_FIELDS if isinstance(policy, PeerPolicy) else KVM_RULE_FIELDS
    assert isinstance(policy, (PeerPolicy, KvmBasedPolicy))
    if policy.since != (0, 0):
        span = f"releases from {policy.since[0]}.{policy.since[1]}"
    elif policy.version[:1].isdigit() and "." in policy.version:
        span = f"releases before the next row; read at v{policy.version}"
    else:
        span = f"read at {policy.version}"
    lines = [BEGIN, f"Row `{policy.key}` ({span}): {policy.summary}.", "",
             "| rule | value |", "|---|---|"]
    lines += [f"| `{name}` | {_text(getattr(policy, name))} |" for name in fields]
    lines += ["", "Read in:", ""]
    lines += [f"- {source.cite()}" for source in policy.sources]
    lines.append(END)
    return "\n".join(lines)


PAGES: dict[str, str] = {"qemu": "qemu-model.md"}
"""The page of each profile under ``docs/profiles/`` (``NAME.md`` unless listed)."""


def page_of(name: str) -> str:
    return PAGES.get(name, f"{name}.md")


def disagreements_table() -> str:
    """Rule fields x peer rows (``PeerPolicy`` rows only), a cell per value, for the README."""
    from apicmap.profiles.policy import PROFILES

    rows = [(f"{name}@{row.version}" if row is not rows_[-1] else name, row)
            for name, rows_ in PROFILES.items() for row in rows_ if isinstance(row, PeerPolicy)]
    header = "| rule | " + " | ".join(f"[{key}]({page_of(row.name)})" for key, row in rows) + " |"
    lines = [BEGIN, header, "|---" * (len(rows) + 1) + "|"]
    for field in RULE_FIELDS:
        cells = []
        for _, row in rows:
            value = getattr(row, field)
            cells.append(value.name.lower() if isinstance(value, enum.Enum) else ("yes" if value else "no"))
        lines.append(f"| `{field}` | " + " | ".join(cells) + " |")
    lines.append(END)
    return "\n".join(lines)
