"""A buffer with blocking after service: a SimPy store that also hands over to waiting units.

``Buffer(env, places)`` holds up to ``places`` waiting batches; a put also succeeds when a unit of
the downstream station is free and waiting, so a station with ``places`` buffer places and ``c``
units holds at most ``places + c`` batches (the blocking-after-service model of
docs/reference/queueing.md). Waiting puts and gets are served first come, first served.

``put`` and ``get`` make and schedule exactly the events SimPy's ``Store`` would, in the same order
(so event logs do not change), without its generic machinery: the engine's hot path.
"""

from __future__ import annotations

from collections import deque
from heapq import heappush
from typing import Any

import simpy
from simpy.events import NORMAL
from simpy.resources.base import BaseResource
from simpy.resources.store import Store, StoreGet, StorePut


class Buffer(Store):
    """A BAS buffer; ``capacity`` may be 0 (hand-over only) or ``math.inf``."""

    def __init__(self, env: simpy.Environment, capacity: float):
        BaseResource.__init__(self, env, capacity)  # Store itself refuses a capacity of 0
        self.items: deque[Any] = deque()

    def put(self, item: Any) -> StorePut:  # type: ignore[override]
        """``Store.put``: queue the put, then try the first waiting put."""
        env = self._env
        event = StorePut.__new__(StorePut)
        event.env, event.item, event.resource, event.proc = env, item, self, env._active_proc
        event.callbacks = [self._trigger_get]
        self.put_queue.append(event)
        self._trigger_put(None)
        return event

    def get(self) -> StoreGet:  # type: ignore[override]
        """``Store.get``: queue the get, then try the first waiting get."""
        env = self._env
        event = StoreGet.__new__(StoreGet)
        event.env, event.resource, event.proc = env, self, env._active_proc
        event.callbacks = [self._trigger_put]
        self.get_queue.append(event)
        self._trigger_get(None)
        return event

    def _trigger_put(self, _: Any = None) -> None:
        # SimPy's loop tries the first waiting put only (``_do_put`` never asks it to go on)
        queue = self.put_queue
        if queue and len(self.items) < self._capacity + len(self.get_queue):
            head = queue.pop(0)
            self.items.append(head.item)
            head._ok, head._value = True, None  # ``head.succeed()``, inlined
            env = self._env
            heappush(env._queue, (env._now, NORMAL, next(env._eid), head))

    def _trigger_get(self, _: Any = None) -> None:
        queue = self.get_queue
        if not queue:
            return
        if self.items:
            head = queue.pop(0)
            head._ok, head._value = True, self.items.popleft()  # ``head.succeed(item)``, inlined
            env = self._env
            heappush(env._queue, (env._now, NORMAL, next(env._eid), head))
        elif self.put_queue:
            # A unit that starts waiting makes room for a blocked batch. The hand-over completes when
            # that put is processed, so the sender records "leave" before the receiver records "start".
            self._trigger_put(None)
