"""The shared store of campaign shards: set semantics under concurrent writers, namespaces kept
apart, nothing deleted, on a directory and on a real Redis server."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis.database import InMemoryExampleDatabase

from apicmap.errors import InputError
from apicmap.fuzz.campaign import Campaign
from apicmap.fuzz.store import KeepEverything, SharedStore, check_backend, open_backend
from tests.helpers import redis_server_or_skip


@dataclass(frozen=True)
class _Record:
    signature: str
    n: int

    def to_json(self) -> dict[str, object]:
        return {"signature": self.signature, "rule": "r", "n": self.n, "detected_at": f"2026-01-01T00:00:{self.n:02}"}


@pytest.fixture(params=["directory", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "directory":
        yield str(tmp_path / "db")
        return
    server, address = redis_server_or_skip(tmp_path)
    try:
        yield address
    finally:
        server.terminate()
        server.wait(10)


def _remember_many(url: str, writer: int) -> None:
    store = SharedStore(url, "ns", f"writer{writer}")
    for n in range(40):
        store.remember([_Record(f"sig{n % 10}", writer * 100 + n)])
        store.record_attempt(f"shard{n % 3}")


def test_concurrent_writers_lose_nothing(url: str) -> None:
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_remember_many, args=(url, w)) for w in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
        assert w.exitcode == 0
    store = SharedStore(url, "ns")
    records = store.findings()
    assert len(records) == 3 * 40  # every write kept: no read-modify-write to race
    assert {r["shard"] for r in records} == {"writer0", "writer1", "writer2"}
    first = store.saved()
    assert set(first) == {f"sig{i}" for i in range(10)}
    assert first["sig3"]["n"] == 3  # the earliest detection, whoever wrote it
    assert sum(len(store.attempts(f"shard{i}")) for i in range(3)) == 3 * 40
    assert SharedStore(url, "other").findings() == []


def test_examples_are_namespaced_and_never_deleted(url: str) -> None:
    a = SharedStore(url, "a").examples()
    b = SharedStore(url, "b").examples()
    a.save(b"key", b"one")
    a.delete(b"key", b"one")  # Hypothesis drops examples that stop failing; a campaign's corpus keeps them
    a.move(b"key", b"key.secondary", b"one")
    assert set(a.fetch(b"key")) == {b"one"} and set(a.fetch(b"key.secondary")) == {b"one"}
    assert set(b.fetch(b"key")) == set()


def test_campaigns_sharing_a_store_report_each_finding_once(url: str) -> None:
    first = Campaign("arch", "4.19", seconds=6.0, seed=3, store=SharedStore(url, "arch", "first"))
    found = {f.signature for f in first.run()}
    assert found, "the arch campaign found nothing to check"
    second = Campaign("arch", "4.19", seconds=3.0, seed=3, store=SharedStore(url, "arch", "second"))
    again = {f.signature for f in second.run()}
    assert found <= set(second.saved) and not again & found
    records = SharedStore(url, "arch").findings()
    assert {str(r["signature"]) for r in records} == found | again
    assert all(r["shard"] == "first" for r in records if r["signature"] in found)
    assert all(isinstance(r["scenario"], str) and "[[interrupt]]" in r["scenario"] for r in records)


def test_keep_everything_wraps_any_backend() -> None:
    backend = InMemoryExampleDatabase()
    kept = KeepEverything(backend, b"p:")
    kept.save(b"k", b"v")
    assert list(backend.fetch(b"p:k")) == [b"v"]


def test_bad_database_addresses_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown database"):
        open_backend("ftp://host/x")
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="cannot create the directory"):
        open_backend(str(tmp_path / "file" / "db"))
    with pytest.raises(InputError, match=r"cannot reach redis://127\.0\.0\.1:1/0"):
        check_backend("redis://127.0.0.1:1/0", "--database")
