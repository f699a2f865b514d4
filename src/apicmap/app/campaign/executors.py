"""Where shards run: local processes (no extra dependency), or a Dask distributed cluster.

Both executors answer the same three calls, so the coordinator's loop (retries, journal, report)
is one: ``start`` a shard, ``wait`` for some to end (each with its ``ShardResult`` or the reason it
was lost), ``close``. Neither retries on its own: a lost shard comes back to the coordinator, which
decides (``[campaign] retries``) and reports every attempt.

Why Dask (docs/campaigns.md, "Why Dask"): it is pure Python, installs with pip on the machines
that already run the kernels, runs the same code on one machine (``LocalCluster``) and on a
cluster (``dask scheduler`` / ``dask worker``), and reports a worker's death as a task failure
(``KilledWorker``) that the coordinator can count.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from apicmap.app.campaign.shards import Shard, ShardResult, run_shard
from apicmap.errors import InputError

Ended = tuple[Any, ShardResult | str]  # a handle, and the result or why the shard was lost


class Executor(Protocol):
    description: str

    def room(self, running: int) -> bool:
        """Whether another shard may start now (the local executor runs ``workers`` at once)."""
        ...

    def start(self, shard: Shard, database: str, attempt: int) -> Any: ...

    def wait(self, running: Sequence[Any], timeout: float) -> list[Ended]: ...

    def close(self) -> None: ...


# --- local processes -------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)  # a handle: hashed by identity
class _Local:
    process: BaseProcess
    results: Connection


def _die_with_parent() -> None:
    """A shard process ends when the campaign does (Linux ``PR_SET_PDEATHSIG``): a killed campaign
    leaves no orphan fuzzing on (the resumed campaign starts its shard again)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _shard_process(shard: Shard, database: str, results: Connection) -> None:
    _die_with_parent()
    try:
        outcome: tuple[str, object] = ("ok", run_shard(shard, database).to_json())
    except BaseException as err:  # the shard is lost, the campaign goes on
        outcome = ("lost", f"{type(err).__name__}: {err}")
    results.send(outcome)
    results.close()


class LocalExecutor:
    """Each shard in its own process (spawned: no state shared with the campaign), ``workers`` at once."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.description = f"local processes ({workers} at once)"
        self._context = multiprocessing.get_context("spawn")

    def room(self, running: int) -> bool:
        return running < self.workers

    def start(self, shard: Shard, database: str, attempt: int) -> _Local:
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(target=_shard_process, args=(shard, database, send),
                                        name=f"apicmap shard {shard.id} #{attempt}", daemon=True)
        process.start()
        send.close()
        return _Local(process, receive)

    def wait(self, running: Sequence[Any], timeout: float) -> list[Ended]:
        handles = [h for h in running if isinstance(h, _Local)]
        ready = set(wait([h.results for h in handles], timeout))
        ended: list[Ended] = []
        for handle in handles:
            if handle.results not in ready:
                continue
            try:
                status, payload = handle.results.recv()
            except (EOFError, OSError):  # the process died before it could answer
                handle.process.join(5)
                code = handle.process.exitcode
                why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
                ended.append((handle, f"the shard's process died ({why})"))
                continue
            handle.process.join(5)
            ended.append((handle, ShardResult.from_json(payload) if status == "ok" else str(payload)))
        return ended

    def close(self) -> None:
        pass


# --- Dask distributed ------------------------------------------------------------------------------


def _run_shard_json(shard: Shard, database: str) -> dict[str, object]:
    # Hypothesis warns when the global ``random`` state moves during a draw; in a Dask worker the
    # worker's own threads (heartbeats, scheduling jitter) move it, not apicmap's strategies, which
    # draw only from Hypothesis. Seeded shards stay reproducible: their inputs come from Hypothesis.
    from hypothesis.errors import HypothesisDeprecationWarning

    warnings.filterwarnings("ignore", message="Do not use the `random` module inside strategies",
                            category=HypothesisDeprecationWarning)
    return run_shard(shard, database).to_json()


class DaskExecutor:
    """Shards as Dask tasks: on the scheduler at ``address``, or (``address`` "local") on a
    ``LocalCluster`` of ``workers`` processes with one thread each started here.

    Dask's own rescheduling of a task whose worker died is turned off on the local cluster
    (``allowed-failures`` 0), so a death reaches the coordinator as ``KilledWorker`` and counts as
    an attempt, as with local processes. On a cluster of your own that setting is the scheduler's;
    the attempts the report counts are recorded by the shards themselves, so they stay true.
    """

    def __init__(self, address: str, workers: int) -> None:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise InputError("--scheduler", "needs Dask distributed, which is not installed",
                             "pip install 'apicmap[campaign]'") from None
        self._cluster: Any = None
        if address == "local":
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                             dashboard_address=None)
            self.client = Client(self._cluster)
            self.description = f"Dask LocalCluster ({workers} worker processes)"
        else:
            try:
                self.client = Client(address, timeout=20)
            except (OSError, TimeoutError) as err:
                raise InputError("--scheduler", f"cannot reach the Dask scheduler {address}: {err}",
                                 "tcp://HOST:PORT of a running dask scheduler, or local") from None
            self.description = f"Dask scheduler {address}"

    def room(self, running: int) -> bool:
        return True  # the scheduler queues what its workers cannot take yet

    def start(self, shard: Shard, database: str, attempt: int) -> Any:
        return self.client.submit(_run_shard_json, shard, database, key=f"{shard.id}#{attempt}-{uuid.uuid4().hex[:8]}",
                                  pure=False)

    def wait(self, running: Sequence[Any], timeout: float) -> list[Ended]:
        from distributed import wait as dask_wait

        if not running:
            return []
        try:
            done = dask_wait(list(running), timeout=timeout, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            return []
        ended: list[Ended] = []
        for future in done:
            if future.status == "finished":
                ended.append((future, ShardResult.from_json(future.result())))
            else:
                err = future.exception() if future.status == "error" else None
                ended.append((future, f"{type(err).__name__}: {err}" if err is not None else future.status))
        return ended

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
