"""A buffer with blocking after service: a SimPy store that also hands over to waiting units.

``Buffer(env, places)`` holds up to ``places`` waiting batches; a put also succeeds when a unit of
the downstream station is free and waiting, so a station with ``places`` buffer places and ``c``
units holds at most ``places + c`` batches, as in ``docs/reference/queueing.md``.
Waiting puts and gets are served first come, first served.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import simpy
from simpy.resources.base import BaseResource
from simpy.resources.store import Store, StoreGet, StorePut


class Buffer(Store):
    """A BAS buffer; ``capacity`` may be 0 (hand-over only) or ``math.inf``."""

    def __init__(self, env: simpy.Environment, capacity: float):
        BaseResource.__init__(self, env, capacity)  # Store itself refuses a capacity of 0
        self.items: deque[Any] = deque()

    def _do_put(self, event: StorePut) -> Any:
        if len(self.items) < self._capacity + len(self.get_queue):
            self.items.append(event.item)
            event.succeed()
        return None

    def _do_get(self, event: StoreGet) -> Any:
        if self.items:
            event.succeed(self.items.popleft())
        elif self.put_queue:
            # A unit that starts waiting makes room for a blocked batch. The hand-over completes when
            # that put is processed, so the sender records "leave" before the receiver records "start".
            self._trigger_put(None)
        return None
