"""Where a sweep's points run: in this process, on a local Dask cluster, or on an existing Dask cluster.

    >>> with open_backend(scheduler=None, workers=2, points=50) as backend:   # a LocalCluster
    ...     for job, result in backend.run(jobs, progress=print):
    ...         store.save(result)

``scheduler="tcp://host:8786"`` connects to a running Dask scheduler (dask-jobqueue, the Dask
Kubernetes operator, or ``dask scheduler`` / ``dask worker`` by hand); ``workers=0`` runs in this
process; ``workers=N`` starts a local cluster of N processes. Without either (``Auto``), points run in
this process and a local cluster (one worker per core) starts only once the measured pace says it pays:
when the work left, spread over the cores, saves more than ``TWIN_DASK_PAYS_S`` seconds (default 10: a
cluster's start and its workers' imports). Every backend yields the same results bit for bit: a task is a
point, or a chunk of a point's replications put together afterwards (``twin.sweep.tasks``), and results never depend on
which worker ran what. A worker that dies is replaced by its nanny and the scheduler runs its
tasks again (Dask's ``distributed.scheduler.allowed-failures`` bounds how often).
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from twin.errors import InputError, TwinError
from twin.experiment import RunResult, run
from twin.spec.model import LineSpec
from twin.store.packed import PackedRun
from twin.sweep.tasks import packed_chunks, packed_point, simulate_chunk, worker_twin_version

Progress = Callable[[float], None]


class PointFailed(TwinError):
    """A point's task failed on the cluster (e.g. it took down workers more often than Dask allows)."""


WORKERS_TIMEOUT_S = 60.0
DASK_PAYS_S = 10.0  # a local cluster starts only when it saves more than this (TWIN_DASK_PAYS_S overrides)


@dataclass(frozen=True)
class Job:
    """One point to simulate."""

    key: str
    spec: LineSpec
    name: str
    overrides: tuple[str, ...]
    replications: int
    seed: int
    horizon: float
    warmup: float


class Backend(Protocol):
    description: str
    workers: int

    def run(self, jobs: Sequence[Job], progress: Progress | None = None) -> Iterator[tuple[Job, RunResult | PackedRun]]:
        """Simulate the jobs; yield each with its result as soon as it is done (any order)."""
        ...


def available_cores() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class InProcess:
    """Points one after another in this process: no Dask at all."""

    description = "in this process"
    workers = 1

    def run(self, jobs: Sequence[Job], progress: Progress | None = None) -> Iterator[tuple[Job, RunResult]]:
        total = sum(j.replications for j in jobs) or 1
        done = 0
        for job in jobs:
            report = None
            if progress is not None:
                report = lambda f, d=done, n=job.replications: progress((d + f * n) / total)  # noqa: E731
            result = run(job.spec, job.replications, job.seed, job.horizon, job.warmup, report,
                         name=job.name, overrides=job.overrides)  # fmt: skip
            done += job.replications
            yield job, result


def dask_pays_s() -> float:
    """Seconds a local Dask cluster must save before ``Auto`` starts one (``TWIN_DASK_PAYS_S``, default 10)."""
    value = os.environ.get("TWIN_DASK_PAYS_S", "")
    try:
        seconds = float(value) if value.strip() else DASK_PAYS_S
    except ValueError:
        raise InputError(f"TWIN_DASK_PAYS_S={value!r}: expected a number of seconds") from None
    if not seconds >= 0:
        raise InputError(f"TWIN_DASK_PAYS_S={value!r}: must be 0 or more seconds")
    return seconds


class Auto:
    """Points in this process until the measured pace says a local Dask cluster pays for its start.

    After each point, the seconds per replication so far give the time the points left would take
    here; spread over ``cores`` workers they would save ``left * (1 - 1/cores)``. When that exceeds
    ``pays_s``, a local cluster starts and runs the rest (results are the same on every backend).
    ``on_switch(description)`` is called when it does.
    """

    def __init__(self, cores: int, pays_s: float, on_switch: Callable[[str], None] | None = None):
        self.cores, self.pays_s, self.on_switch = cores, pays_s, on_switch
        self.description = "in this process"
        self.workers = 1

    def pays(self, seconds_left: float) -> bool:
        """Would a local cluster save more than ``pays_s`` on this much work (in seconds of this process)?"""
        return self.cores > 1 and seconds_left * (1 - 1 / self.cores) > self.pays_s

    def run(self, jobs: Sequence[Job], progress: Progress | None = None) -> Iterator[tuple[Job, RunResult | PackedRun]]:
        total = sum(j.replications for j in jobs) or 1
        done, busy = 0, 0.0
        for i, job in enumerate(jobs):
            left = sum(j.replications for j in jobs[i:])
            if done and self.pays(busy / done * left):
                rest = None
                if progress is not None:
                    rest = lambda f, d=done, n=left: progress((d + f * n) / total)  # noqa: E731
                yield from self._on_cluster(jobs[i:], i, rest)
                return
            report = None
            if progress is not None:
                report = lambda f, d=done, n=job.replications: progress((d + f * n) / total)  # noqa: E731
            start = time.perf_counter()
            result = run(job.spec, job.replications, job.seed, job.horizon, job.warmup, report,
                         name=job.name, overrides=job.overrides)  # fmt: skip
            busy += time.perf_counter() - start
            done += job.replications
            yield job, result

    def _on_cluster(self, jobs: Sequence[Job], ran: int, progress: Progress | None) -> Iterator[tuple[Job, PackedRun]]:
        with _local(self.cores) as backend:
            self.description = f"in this process ({ran} point{'s' if ran != 1 else ''}), then {backend.description}"
            self.workers = backend.workers
            if self.on_switch is not None:
                self.on_switch(f"{backend.description} for the {len(jobs)} points left (it pays)")
            yield from backend.run(jobs, progress)


def chunk_sizes(replications: int, chunks: int) -> list[int]:
    """Split ``replications`` into ``chunks`` consecutive parts of nearly equal size."""
    chunks = max(1, min(chunks, replications))
    base, extra = divmod(replications, chunks)
    return [base + (1 if i < extra else 0) for i in range(chunks)]


class DaskBackend:
    """Points as tasks of a Dask ``Client``; a point whose replications are too few tasks is split.

    Workers return each run packed (``PackedRun``): encoding Parquet is worker work, not client work.
    """

    def __init__(self, client: Any, description: str):
        self.client = client
        self.description = description

    @property
    def workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def run(self, jobs: Sequence[Job], progress: Progress | None = None) -> Iterator[tuple[Job, PackedRun]]:
        from distributed import as_completed

        if not jobs:
            return
        client, nonce = self.client, uuid.uuid4().hex[:8]
        # enough tasks to keep every worker busy to the end: split points when they are fewer than 2 per thread
        chunks = math.ceil(2 * self.workers / len(jobs)) if len(jobs) < 2 * self.workers else 1
        pending: dict[Any, tuple[Job, int, bool]] = {}  # future -> (job, replications it completes, final?)
        for i, job in enumerate(jobs):
            tag = f"{nonce}-{i}"
            sizes = chunk_sizes(job.replications, chunks)
            if len(sizes) == 1:
                future = client.submit(packed_point, job.spec, job.name, job.overrides, job.replications, job.seed,
                                       job.horizon, job.warmup, key=f"twin-point-{tag}", pure=False)  # fmt: skip
                pending[future] = (job, job.replications, True)
                continue
            parts, first = [], 0
            for c, size in enumerate(sizes):
                part = client.submit(simulate_chunk, job.spec, job.seed, first, size, job.horizon, job.warmup,
                                     key=f"twin-replications-{tag}-{c}", pure=False)  # fmt: skip
                pending[part] = (job, size, False)
                parts.append(part)
                first += size
            whole = client.submit(packed_chunks, job.spec, job.name, job.overrides, *parts,
                                  key=f"twin-point-{tag}", pure=False)  # fmt: skip
            pending[whole] = (job, 0, True)
        total, done = sum(j.replications for j in jobs), 0
        completed = as_completed(list(pending), loop=client.loop)
        try:
            for future in completed:
                job, replications, final = pending.pop(future)
                done += replications
                if progress is not None and replications:
                    progress(done / total)
                if final:
                    try:
                        result = future.result()
                    except Exception as err:  # e.g. KilledWorker: the task took down workers too often
                        raise PointFailed(
                            f"point {job.name!r} failed: {err.__class__.__name__}: {str(err).rstrip('.')}"
                        ) from err
                    yield job, result
                del future  # the scheduler keeps a chunk while the point that needs it is not done
        finally:
            if pending:
                client.cancel(list(pending), force=True)


@contextmanager
def open_backend(
    scheduler: str | None = None,
    workers: int | None = None,
    points: int = 2,
    on_switch: Callable[[str], None] | None = None,
) -> Iterator[Backend]:
    """The backend for a sweep of ``points`` points to run.

    ``scheduler`` (``tcp://host:port``) uses an existing Dask cluster; ``workers=0`` runs in this
    process; ``workers=N`` a local Dask cluster of N processes; neither: ``Auto`` (in this process,
    and a local cluster of one worker per core for the rest once it pays; ``on_switch`` hears of it).
    """
    if workers is not None and workers < 0:
        raise InputError(f"--workers {workers}: must be 0 (in this process) or more")
    if scheduler:
        with _remote(scheduler) as backend:
            yield backend
    elif workers == 0:
        yield InProcess()
    elif workers is None:
        yield Auto(available_cores() if points > 1 else 1, dask_pays_s(), on_switch)
    else:
        with _local(workers) as backend:
            yield backend


@contextmanager
def _local(workers: int) -> Iterator[DaskBackend]:
    """A local cluster whose processes keep Dask's own log lines off the terminal (failures still raise)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                     silence_logs=logging.CRITICAL, preload=["twin.sweep.worker_setup"]) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):  # fmt: skip
        client.run(worker_twin_version)  # the workers import the engine now, not in the first tasks
        yield DaskBackend(client, f"on a local Dask cluster of {workers} worker process{'es' if workers > 1 else ''}")


@contextmanager
def _remote(address: str) -> Iterator[DaskBackend]:
    from distributed import Client

    try:
        client = Client(address, set_as_default=False)  # waits up to distributed.comm.timeouts.connect
    except (OSError, TimeoutError, ValueError) as err:
        raise InputError(f"--scheduler {address}: cannot connect to a Dask scheduler ({err})") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError:
            raise InputError(f"--scheduler {address}: no worker joined within {WORKERS_TIMEOUT_S:.0f} s") from None
        _check_workers(client, address)
        threads = sum(client.nthreads().values())
        yield DaskBackend(
            client, f"on the Dask cluster at {address} ({threads} worker thread{'s' if threads > 1 else ''})"
        )


def _check_workers(client: Any, address: str) -> None:
    """Every worker must run this twin: results are bit-identical only with the same engine."""
    from twin import __version__

    try:
        versions = client.run(worker_twin_version)
    except Exception as err:
        raise InputError(
            f"--scheduler {address}: workers cannot run twin ({err.__class__.__name__}: {err}); "
            f"install twin {__version__} on every worker"
        ) from None
    wrong = {w: v for w, v in versions.items() if v != __version__}
    if wrong:
        worker, version = next(iter(wrong.items()))
        raise InputError(
            f"--scheduler {address}: worker {worker} runs twin {version}, this is twin {__version__}; "
            "every worker needs the same version"
        )
