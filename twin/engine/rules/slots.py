"""Slots: a pool of identical places (cleaning skids, QC analysts), served by the serve step of an instant.

    >>> skid = Slots(arbiter, capacity=1)
    >>> yield skid.request((env.now, station, unit), on_wait=lambda: unit.record("waiting_cleaning"))
    >>> skid.release()

Requests wait for the serve step at the end of their instant (``twin.engine.rules.arbiter``), which
grants free places in order of the requests' keys; a request not served by the step of its instant
calls its ``on_wait`` (the unit records its waiting state then) and waits for a later step.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from twin.engine.rules.arbiter import Arbiter, Key, Wake


def _key(entry: tuple[Key, Wake, Callable[[], None] | None]) -> Key:
    return entry[0]


class Slots:
    """``capacity`` identical places."""

    def __init__(self, arbiter: Arbiter, capacity: int):
        self.arbiter, self.env, self.capacity = arbiter, arbiter.env, capacity
        self.users = 0
        self.queue: list[tuple[Key, Wake, Callable[[], None] | None]] = []  # waiting, by key
        self.number = arbiter.add(self)

    def request(self, key: Key, on_wait: Callable[[], None] | None = None) -> Wake:
        """What to yield for a place (granted at the earliest by the serve step of this instant).
        ``key`` orders requests (unique per requester); ``on_wait`` is called once if the step does not serve it."""
        queue, wake = self.queue, Wake()
        entry = (key, wake, on_wait)
        if not queue or queue[-1][0] < key:  # keys are unique: entries compare by key alone
            queue.append(entry)
        else:
            bisect.insort(queue, entry, key=_key)
        self.arbiter.wake(self.number)
        return wake

    def release(self) -> None:
        """Free a place; waiting requests get it at the end of this instant."""
        self.users -= 1
        if self.queue:
            self.arbiter.wake(self.number)

    def serve(self) -> list[tuple[Wake, None]]:
        """Give free places to the waiting requests in key order and tell the others of this instant they
        wait; the granted requests, in that order (the arbiter lets their processes go on)."""
        queue, granted = self.queue, []
        while queue and self.users < self.capacity:
            self.users += 1
            granted.append((queue.pop(0)[1], None))
        now = self.env._now
        for i, (key, wake, on_wait) in enumerate(queue):
            if on_wait is not None and key[0] == now:
                queue[i] = (key, wake, None)
                on_wait()
        return granted
