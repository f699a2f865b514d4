"""Where fuzzing campaigns keep what outlives them: Hypothesis's example database (the corpus of
inputs that diverged, replayed first by the next campaign) and the findings already reported.

Two stores, one protocol (``FindingStore``):

- ``FuzzStore``: one machine. A ``DirectoryBasedExampleDatabase`` and a JSON index next to it
  (``apicmap fuzz``; ``--out DIR`` or the cache directory).
- ``SharedStore``: many shards at once (``apicmap campaign``). Everything lives in one Hypothesis
  ``ExampleDatabase`` made for sharing: a directory on shared storage, or Redis through
  ``hypothesis.extra.redis``. An example database is a multimap of byte keys to sets of byte
  values whose ``save`` is an idempotent set-add on both backends (a file named by the value's
  hash; ``SADD``), so concurrent shards never overwrite one another: the findings and the shard
  attempts are kept there too, under their own keys, as JSON values.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from apicmap.errors import InputError
from apicmap.files.output import atomic_write_text

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class Reportable(Protocol):
    """What a store keeps of a finding (``fuzz.campaign.Finding``)."""

    @property
    def signature(self) -> str: ...

    def to_json(self) -> dict[str, object]: ...


class FindingStore(Protocol):
    def examples(self) -> ExampleDatabase:
        """Hypothesis's example database for the campaign."""
        ...

    def saved(self) -> dict[str, dict[str, object]]:
        """The findings reported so far (by any campaign sharing the store), by signature."""
        ...

    def remember(self, findings: Iterable[Reportable]) -> None: ...


class KeepEverything(ExampleDatabase):
    """An example database that never forgets an input that once diverged.

    Hypothesis deletes a saved example that no longer fails when it replays it; a finding already
    reported no longer fails by design (it is not reported twice), so deleting would empty the
    corpus at every resume. Moves (to the secondary corpus) copy for the same reason. ``prefix``
    keeps several campaigns apart in one backend.
    """

    def __init__(self, backend: ExampleDatabase, prefix: bytes = b"") -> None:
        super().__init__()
        self.backend = backend
        self.prefix = prefix

    def save(self, key: bytes, value: bytes) -> None:
        self.backend.save(self.prefix + key, value)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        return self.backend.fetch(self.prefix + key)

    def delete(self, key: bytes, value: bytes) -> None:
        pass

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self.save(dest, value)


@dataclass(frozen=True, slots=True)
class FuzzStore:
    """One machine's store: ``database`` (a directory) and ``index`` (a JSON list of findings)."""

    database: Path
    index: Path

    @staticmethod
    def in_dir(out: Path) -> FuzzStore:
        """``--out DIR``: ``DIR/fuzz-db/`` and ``DIR/findings.json``."""
        return FuzzStore(out / "fuzz-db", out / "findings.json")

    def examples(self) -> ExampleDatabase:
        self.database.mkdir(parents=True, exist_ok=True)
        return KeepEverything(DirectoryBasedExampleDatabase(str(self.database)))

    def saved(self) -> dict[str, dict[str, object]]:
        """The findings earlier campaigns reported, by signature (empty when there is no index)."""
        try:
            entries = json.loads(self.index.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(entries, list):
            return {}
        return {str(e["signature"]): e for e in entries if isinstance(e, dict) and "signature" in e}

    def remember(self, findings: Iterable[Reportable]) -> None:
        """Add findings to the index (merged with what is there: parallel jobs share it), atomically."""
        entries = self.saved()
        now = _now()
        for f in findings:
            record = f.to_json()
            entries.setdefault(f.signature, {"signature": f.signature, "rule": record["rule"], "saved_at": now,
                                             "reproducer": record["reproducer"], "scenario": record["scenario"]})
        self.index.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.index, json.dumps(list(entries.values()), indent=2) + "\n")


@dataclass(frozen=True, slots=True)
class SharedStore:
    """A store many shards share: all of it in one example database, under ``namespace``.

    ``namespace`` names the campaign and its target (one corpus and one set of findings per
    kernel, engine or profile pair); ``shard`` names who writes, kept with each finding.
    """

    url: str
    namespace: str
    shard: str = ""
    # Opened on first use and kept: a campaign reads the store between every two Hypothesis runs,
    # and a Redis client per read would be a new connection each time.
    _backend: ExampleDatabase | None = field(default=None, init=False, repr=False, compare=False)

    def backend(self) -> ExampleDatabase:
        if self._backend is None:
            object.__setattr__(self, "_backend", open_backend(self.url))
        assert self._backend is not None
        return self._backend

    def examples(self) -> ExampleDatabase:
        return KeepEverything(self.backend(), self._key("examples:"))

    def _key(self, what: str) -> bytes:
        return f"apicmap:{self.namespace}:{what}".encode()

    def findings(self) -> list[dict[str, object]]:
        """Every finding record any shard saved (one per shard that found it), oldest first."""
        records = [_decode(v) for v in self.backend().fetch(self._key("findings"))]
        return sorted((r for r in records if "signature" in r), key=lambda r: str(r.get("detected_at", "")))

    def saved(self) -> dict[str, dict[str, object]]:
        """By signature: the first record of each finding."""
        first: dict[str, dict[str, object]] = {}
        for record in self.findings():
            first.setdefault(str(record["signature"]), record)
        return first

    def remember(self, findings: Iterable[Reportable]) -> None:
        backend = self.backend()
        for f in findings:
            record = {**f.to_json(), "shard": self.shard}
            record.setdefault("detected_at", _now())
            backend.save(self._key("findings"), _encode(record))

    def record_attempt(self, shard: str) -> None:
        """A shard started on this machine (kept whatever becomes of the worker). The database keeps
        sets of values, so each record carries its own id: two starts are never one."""
        self.backend().save(self._key(f"attempts:{shard}"),
                            _encode({"host": socket.gethostname(), "pid": os.getpid(), "at": _now(),
                                     "id": uuid.uuid4().hex}))

    def attempts(self, shard: str) -> list[dict[str, object]]:
        return sorted((_decode(v) for v in self.backend().fetch(self._key(f"attempts:{shard}"))),
                      key=lambda a: str(a.get("at", "")))


def open_backend(url: str, where: str = "database") -> ExampleDatabase:
    """The shared example database at ``url``: ``redis://HOST:PORT/DB`` (also ``rediss://``,
    ``unix://``) through ``hypothesis.extra.redis``, else a directory (created if missing)."""
    if url.startswith(REDIS_SCHEMES):
        try:
            import redis
            from hypothesis.extra.redis import RedisExampleDatabase
        except ImportError:
            raise InputError(where, "a Redis database needs the redis package, which is not installed",
                             "pip install 'apicmap[campaign]', or a directory") from None
        # Examples of a campaign that stops for a month are allowed to expire, as Hypothesis's own default.
        return RedisExampleDatabase(redis.Redis.from_url(url), expire_after=timedelta(days=30))
    if "://" in url:
        raise InputError(where, f"unknown database {url!r}", "a directory, or redis://HOST:PORT/DB")
    path = Path(url)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(where, f"cannot create the directory {url}: {err.strerror}",
                         "a writable directory, or redis://HOST:PORT/DB") from None
    return DirectoryBasedExampleDatabase(str(path))


def check_backend(url: str, where: str) -> None:
    """Reach the database once, before any shard starts: a bad address is one line, not N lost shards."""
    backend = open_backend(url, where)
    try:
        list(backend.fetch(b"apicmap:ping"))
    except Exception as err:  # redis.ConnectionError and friends; the redis package is optional
        raise InputError(where, f"cannot reach {url}: {err}", "a running Redis server, or a directory") from None


def _encode(record: Mapping[str, object]) -> bytes:
    return json.dumps(record, sort_keys=True).encode()


def _decode(value: bytes) -> dict[str, object]:
    try:
        record = json.loads(value)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
