"""The tie-break rule of shared resources: the requests of an instant are served together at its end.

    arbiter = Arbiter(env)                 # one per replication; resources add themselves
    number = arbiter.add(resource)         # operators, a cleaning skid, the QC lab: each has serve()
    arbiter.wake(number)                   # a request or a release now: serve it at the end of this instant
    wake = Wake(); yield wake              # a process waits for its grant ...
    resource.serve() -> [(wake, value)]    # ... which the serve step gives, in order

The rule (docs/batch-rules.md, "Who goes first"): a request for operators, a cleaning skid or a QC
analyst is never granted when it is made. One serve step at the end of the instant, an event after
every ordinary event of that time (priority ``SERVE``; the horizon's stop comes after it), serves
each resource in turn (the skids in spec order, then the operators, then the QC lab); a resource
grants its waiting requests in order of their key, (time of request, station index, unit index)
(QC analysts: after the stations, in quarantine order), a request that cannot be served yet being
passed over by a later one that can (first fit). A resource freed and requested at the same instant
therefore serves the requests already waiting first. A granted process goes on at once, inside the
step, in that order; what it asks for next at the same time is served by the next serve step of
the instant. Nothing here depends on which SimPy process happened to run first.
"""

from __future__ import annotations

from heapq import heappush
from typing import Any, Protocol

import simpy
from simpy.events import Event

SERVE = 2  # SimPy's priorities are URGENT 0 and NORMAL 1; the horizon's stop (AfterAllAt) is 3

Key = tuple[float, int, int]  # (time of request, station index, unit index)


class Wake:
    """What a process yields to wait for a grant: SimPy's event protocol without a place in the queue
    (``grant(value)`` resumes the waiting process at once)."""

    __slots__ = ("_ok", "_value", "callbacks")

    def __init__(self) -> None:
        self.callbacks: list[Any] | None = []
        self._ok = True

    def grant(self, value: Any) -> None:
        """Give ``value`` to the process waiting on this and let it go on now."""
        self._value = value
        callbacks, self.callbacks = self.callbacks, None
        for callback in callbacks:
            callback(self)


class Served(Protocol):
    def serve(self) -> list[tuple[Wake, Any]]: ...


class Arbiter:
    """Runs the serve step of an instant once something was requested or freed in it."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.resources: list[Served] = []
        self._pending = False
        self._due = 0  # bit i: resource i was requested from or freed in since its last serve
        self._event = Event(env)
        self._event._ok, self._event._value = True, None

    def add(self, resource: Served) -> int:
        """Register a resource (served in the order added); returns its number for ``wake``."""
        self.resources.append(resource)
        return len(self.resources) - 1

    def wake(self, resource: int) -> None:
        """Something was requested from or freed in ``resource`` now: serve it at the end of this instant."""
        self._due |= 1 << resource
        if not self._pending:
            self._pending = True
            step, env = self._event, self.env
            step.callbacks = [self._step]  # one event object, scheduled again for each step
            heappush(env._queue, (env._now, SERVE, next(env._eid), step))

    def _step(self, _: Event) -> None:
        # the resources due when the step begins; a request made during the step is served by the next one
        due, self._due, self._pending = self._due, 0, False
        if due & (due - 1) == 0:  # one resource due (the usual case)
            serving = [self.resources[due.bit_length() - 1]]
        else:
            serving = [resource for i, resource in enumerate(self.resources) if due >> i & 1]
        for resource in serving:
            for wake, value in resource.serve():
                wake.grant(value)
