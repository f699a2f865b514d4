"""The one declarative loader of scenario and sequence files.

A file format is a few ``Section``s, each a table of ``Key`` specs (name, type, range, allowed
values, default, doc, and where the key applies). ``read_toml`` reads a file, ``validate``
checks one table against its keys, and every problem is one ``InputError(where, problem,
allowed)``; ``json_schema`` turns the same tables into the JSON Schema checked in next to them.
The cross-key rules (x2APIC mode has no LDR, a raw encoding excludes the named fields) stay in
the loaders, and raise through the same error path.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apicmap.errors import InputError, echo


class Kind(enum.Enum):
    INT = "integer"
    BOOL = "boolean"
    TEXT = "string"
    CHOICE = "one of the names"
    CHOICE_OR_INT = "a name or an integer"
    FLAGS = "a list of names"
    VCPU_LIST = "a list of vcpu_ids"
    TABLE = "an inline table"
    TABLE_LIST = "a list of inline tables"
    TEXT_LIST = "a list of strings"
    INT_LIST = "a list of integers"


@dataclass(frozen=True, slots=True, kw_only=True)
class Key:
    name: str
    kind: Kind
    doc: str
    low: int = 0
    high: int = 0
    decimal: bool = False  # write the range in decimal (counts, ids, pins)
    choices: tuple[str, ...] = ()
    default: Any = None  # None: no fixed default (absent, or a default that depends on other keys)
    default_doc: str = ""  # how docs/scenario.md states a default that depends on other keys
    required: bool = False
    only: tuple[str, ...] = ()  # the values of the section's discriminator where the key applies; () = all
    fields: tuple[Key, ...] = ()  # Kind.TABLE: the inline table's keys
    pattern: str | None = None  # Kind.TEXT: the JSON Schema pattern

    def allowed(self) -> str:
        """What would be accepted, as the error message says it."""
        if self.kind is Kind.INT:
            return f"an integer {_number(self.low, self.decimal)}..{_number(self.high, self.decimal)}"
        if self.kind is Kind.BOOL:
            return "true, false"
        if self.kind is Kind.CHOICE:
            return ", ".join(f'"{c}"' for c in self.choices)
        if self.kind is Kind.CHOICE_OR_INT:
            return (", ".join(f'"{c}"' for c in self.choices)
                    + f" or an integer {_number(self.low, False)}..{_number(self.high, False)}")
        if self.kind is Kind.FLAGS:
            return "a list of " + ", ".join(f'"{c}"' for c in self.choices)
        if self.kind is Kind.VCPU_LIST:
            return "a list of vcpu_ids of the VM"
        if self.kind is Kind.TABLE:
            return "{ " + ", ".join(f"{f.name} = ..." for f in self.fields) + " }"
        if self.kind is Kind.TABLE_LIST:
            return "[{ " + ", ".join(f"{f.name} = ..." for f in self.fields) + " }, ...]"
        if self.kind is Kind.TEXT_LIST:
            return 'a list of strings, e.g. ["6.1.170"]'
        if self.kind is Kind.INT_LIST:
            return f"a non-empty list of integers {_number(self.low, self.decimal)}..{_number(self.high, self.decimal)}"
        return f"text matching {self.pattern}" if self.pattern else "text"


@dataclass(frozen=True, slots=True)
class Section:
    """A top-level table (``[vm]``) or array of tables (``[[vcpu]]``)."""

    name: str
    keys: tuple[Key, ...]
    array: bool = False
    doc: str = ""
    discriminator: str | None = None  # the key whose value decides which keys apply (``via``, ``op``)

    def key(self, name: str) -> Key:
        for key in self.keys:
            if key.name == name:
                return key
        raise KeyError(name)

    @property
    def title(self) -> str:
        return f"[[{self.name}]]" if self.array else f"[{self.name}]"


@dataclass(frozen=True, slots=True)
class Table:
    """One table's values, checked: ``get`` gives a given value or the key's default."""

    where: str
    values: Mapping[str, Any]
    keys: tuple[Key, ...]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str, default: Any = None) -> Any:
        if name in self.values:
            return self.values[name]
        if default is not None:
            return default
        return next(k.default for k in self.keys if k.name == name)

    def at(self, name: str) -> str:
        """The place of one key, for an error message."""
        return f"{self.where} {name}"

    def require(self, name: str) -> Any:
        if name not in self.values:
            key = next(k for k in self.keys if k.name == name)
            raise InputError(self.at(name), "missing", key.allowed())
        return self.values[name]

    def given(self, names: tuple[str, ...]) -> list[str]:
        return [n for n in names if n in self.values]


def _number(n: int, decimal: bool) -> str:
    return str(n) if decimal or -1 <= n <= 16 else f"0x{n:x}"


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a table; unreadable, non-UTF-8 (binary) or invalid files are an ``InputError``."""
    where = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise InputError(where, f"cannot read the file: {err.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(where, f"not a text file: byte {err.start} is not UTF-8",
                         "a UTF-8 TOML scenario or sequence file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InputError(where, f"not valid TOML: {err}") from None


def validate(value: Any, keys: tuple[Key, ...], where: str, *, discriminator: str | None = None,
             chosen: str | None = None) -> Table:
    """Check one table: a table at all, no unknown key, every given value of its key's type and range,
    and, when ``chosen`` names the discriminator's value, no key that does not apply to it."""
    if not isinstance(value, dict):
        raise InputError(where, f"expected a table, got {echo(value)}")
    names = [k.name for k in keys]
    for name in value:
        if name not in names:
            raise InputError(f"{where} {name}", "unknown key", ", ".join(names))
    for key in keys:
        if key.name in value:
            _check(key, value[key.name], f"{where} {key.name}")
            if chosen is not None and key.only and chosen not in key.only:
                raise InputError(f"{where} {key.name}", f'does not apply to {discriminator} = "{chosen}"',
                                 f"{discriminator} = " + ", ".join(f'"{o}"' for o in key.only))
        elif key.required:
            raise InputError(f"{where} {key.name}", "missing", key.allowed())
    return Table(where, value, keys)


def _check(key: Key, value: Any, where: str) -> None:
    bad = InputError(where, f"bad value {echo(value)}", key.allowed())
    match key.kind:
        case Kind.INT:
            if isinstance(value, bool) or not isinstance(value, int) or not key.low <= value <= key.high:
                raise bad
        case Kind.BOOL:
            if not isinstance(value, bool):
                raise bad
        case Kind.TEXT:
            if not isinstance(value, str) or (key.pattern is not None and re.match(key.pattern, value) is None):
                raise bad
        case Kind.CHOICE:
            if not isinstance(value, str) or value not in key.choices:
                raise bad
        case Kind.CHOICE_OR_INT:
            if isinstance(value, str):
                if value not in key.choices:
                    raise bad
            elif isinstance(value, bool) or not isinstance(value, int) or not key.low <= value <= key.high:
                raise bad
        case Kind.FLAGS:
            if not isinstance(value, list) or any(not isinstance(v, str) or v not in key.choices for v in value):
                raise bad
        case Kind.VCPU_LIST:
            if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
                raise bad
        case Kind.TABLE:
            validate(value, key.fields, where)
        case Kind.TABLE_LIST:
            if not isinstance(value, list) or not value:
                raise bad
            for i, item in enumerate(value):
                validate(item, key.fields, f"{where}[{i}]")
        case Kind.TEXT_LIST:
            if not isinstance(value, list) or any(not isinstance(v, str) for v in value):
                raise bad
        case Kind.INT_LIST:
            if not isinstance(value, list) or not value or any(
                    isinstance(v, bool) or not isinstance(v, int) or not key.low <= v <= key.high for v in value):
                raise bad


# --- JSON Schema -------------------------------------------------------------------------------


def json_schema(sections: tuple[Section, ...], *, title: str, description: str, schema_id: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a file made of ``sections``: the shape TOML reads into."""
    properties: dict[str, Any] = {}
    for section in sections:
        table = _object_schema(section.keys)
        if section.doc:
            table["description"] = section.doc
        properties[section.name] = {"type": "array", "items": table} if section.array else table
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id,
        "title": title,
        "description": description,
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }


def _object_schema(keys: tuple[Key, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "additionalProperties": False,
                           "properties": {k.name: _key_schema(k) for k in keys}}
    required = [k.name for k in keys if k.required]
    if required:
        out["required"] = required
    return out


def _key_schema(key: Key) -> dict[str, Any]:
    out: dict[str, Any]
    match key.kind:
        case Kind.INT:
            out = {"type": "integer", "minimum": key.low, "maximum": key.high}
        case Kind.BOOL:
            out = {"type": "boolean"}
        case Kind.TEXT:
            out = {"type": "string"}
            if key.pattern:
                out["pattern"] = key.pattern
        case Kind.CHOICE:
            out = {"enum": list(key.choices)}
        case Kind.CHOICE_OR_INT:
            out = {"oneOf": [{"enum": list(key.choices)},
                             {"type": "integer", "minimum": key.low, "maximum": key.high}]}
        case Kind.FLAGS:
            out = {"type": "array", "items": {"enum": list(key.choices)}, "uniqueItems": True}
        case Kind.VCPU_LIST:
            out = {"type": "array", "items": {"type": "integer", "minimum": 0}}
        case Kind.TABLE:
            out = _object_schema(key.fields)
        case Kind.TABLE_LIST:
            out = {"type": "array", "items": _object_schema(key.fields), "minItems": 1}
        case Kind.TEXT_LIST:
            out = {"type": "array", "items": {"type": "string"}}
        case Kind.INT_LIST:
            out = {"type": "array", "items": {"type": "integer", "minimum": key.low, "maximum": key.high},
                   "minItems": 1}
    if key.default is not None:
        out["default"] = key.default
    doc = key.doc
    if key.default_doc:
        doc += f" (default: {key.default_doc})"
    if key.only:
        doc += f" [only with {', '.join(key.only)}]"
    out["description"] = doc
    return out
