"""How batches enter the line: pulled by the first station, or pushed by an arrival process.

Saturated mode and plan mode without ``interarrival``: the first station's free units pull the next
batch at once (the first station never starves). Interarrival mode, and plan mode with
``interarrival``: a source releases a batch after each interarrival time into the first
station's buffer; when that buffer is full, released batches wait before the line in release
order (they count as work in process from their release).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Generator
from typing import Any

import simpy

from twin.engine.buffer import Buffer
from twin.engine.compiled import CompiledLine
from twin.engine.recorder import Recorder
from twin.random import block_draws, stream_rng

RELEASE_OWNER = "release"


class Releaser:
    """Creates batches in release order and records their ``release`` and first ``arrive`` rows."""

    def __init__(self, line: CompiledLine, rec: Recorder, seed: int, replication: int):
        release = line.release
        self.rec = rec
        self.plan = release.plan
        self.repeat = release.repeat
        self.position = 0
        self.mix = release.mix
        self.shares = None
        if release.mode != "plan" and len(line.products) > 1:
            rng = stream_rng(seed, replication, RELEASE_OWNER, "mix")
            self.shares = block_draws(lambda g, n: g.random(n), rng)
        self.planned = len(self.plan) if release.mode == "plan" and not release.repeat else None
        self.on_release: Callable[[int], None] | None = None  # told of every batch released
        self.k_release = rec.kind(-1, -1, "release")
        self.k_arrive = rec.kind(0, -1, "arrive")

    def next_product(self) -> int:
        """The product of the next batch, or -1 when a plan that does not repeat is done."""
        if self.plan:
            if self.position >= len(self.plan):
                if not self.repeat:
                    return -1
                self.position = 0
            self.position += 1
            return self.plan[self.position - 1]
        if self.shares is None:
            return 0
        return min(bisect.bisect_right(self.mix, next(self.shares)), len(self.mix) - 1)

    def exhausted(self) -> bool:
        """True once a plan that does not repeat has released all its batches."""
        return self.planned is not None and self.position >= len(self.plan)

    def peek_product(self) -> int | None:
        """The product of the next batch if it is already known (a plan), else None."""
        if not self.plan or (self.exhausted()):
            return None
        return self.plan[self.position % len(self.plan)]

    def pull(self, now: float) -> int:
        """A new batch released and arrived at the first station now, or -1 when none is left."""
        product = self.next_product()
        if product < 0:
            return -1
        rec = self.rec
        batch = rec.new_batch(product)
        if self.on_release is not None:
            self.on_release(batch)
        rec.times.append(now)
        rec.batches.append(batch)
        rec.kinds.append(self.k_release)
        rec.times.append(now)
        rec.batches.append(batch)
        rec.kinds.append(self.k_arrive)
        return batch


def source(
    env: simpy.Environment, releaser: Releaser, interarrival: Any, first: Buffer
) -> Generator[simpy.Event, Any, None]:
    """Release a batch after each interarrival time into the first buffer."""
    rec = releaser.rec
    while True:
        yield env.timeout(next(interarrival))
        product = releaser.next_product()
        if product < 0:
            return
        batch = rec.new_batch(product)
        if releaser.on_release is not None:
            releaser.on_release(batch)
        rec.row(env.now, batch, releaser.k_release)
        request = first.put(batch)
        if request.triggered:
            rec.row(env.now, batch, releaser.k_arrive)
        else:
            env.process(_enter_when_room(env, rec, request, batch, releaser.k_arrive))


def _enter_when_room(
    env: simpy.Environment, rec: Recorder, request: simpy.Event, batch: int, k_arrive: int
) -> Generator[simpy.Event, Any, None]:
    yield request
    rec.row(env.now, batch, k_arrive)
