"""Slots: a pool of identical places served first come, first served (cleaning skids, QC analysts).

    >>> skid = Slots(env, capacity=1)
    >>> request = skid.request()             # GRANTED at once, or an event to yield
    >>> if request is not GRANTED: yield request
    >>> skid.release()

It behaves event for event as ``simpy.Resource`` (the runs and their event logs are the same):
a waiting request is served when a release is processed (a SimPy event scheduled at the release),
or when a new request finds the head of the queue servable; each trigger serves the head only.
Unlike SimPy's, a request granted at once makes no event unless asked to (``event=True``, for a
process that yields it anyway): SimPy's event for it would do nothing when processed.
"""

from __future__ import annotations

from collections import deque
from heapq import heappush

import simpy
from simpy.events import NORMAL, Event

GRANTED = None  # what ``request`` returns for a place granted at once (no event)


class Slots:
    """``capacity`` identical places."""

    def __init__(self, env: simpy.Environment, capacity: int):
        self.env, self.capacity = env, capacity
        self.users = 0
        self.queue: deque[Event] = deque()  # waiting requests, first come first

    def request(self, event: bool = False) -> Event | None:
        """A place: ``GRANTED`` (None) when free now, else an event that succeeds when one is granted.
        With ``event=True`` a place granted at once is an event too (already triggered)."""
        queue = self.queue
        if not queue and self.users < self.capacity:
            self.users += 1
            if not event:
                return GRANTED
            granted = Event(self.env)
            self._succeed(granted)
            return granted
        waiting = Event(self.env)
        queue.append(waiting)
        self._serve()  # SimPy tries the head of the queue (an earlier request) once
        return waiting

    def release(self) -> None:
        """Free a place; the head of the queue is served when the release is processed (as SimPy's)."""
        self.users -= 1
        env = self.env
        release = Event(env)
        release._ok, release._value = True, None
        release.callbacks.append(self._serve)
        heappush(env._queue, (env._now, NORMAL, next(env._eid), release))

    def _serve(self, _: Event | None = None) -> None:
        queue = self.queue
        if queue and self.users < self.capacity:
            self.users += 1
            self._succeed(queue.popleft())

    def _succeed(self, event: Event) -> None:
        event._ok, event._value = True, None
        env = self.env
        heappush(env._queue, (env._now, NORMAL, next(env._eid), event))
