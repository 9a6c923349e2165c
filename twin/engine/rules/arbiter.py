"""The tie-break rule of shared resources: the requests of an instant are served together at its end.

    arbiter = Arbiter(env)                 # one per replication; resources add themselves
    number = arbiter.add(resource)         # operators, a cleaning skid, the QC lab: each has serve()
    if arbiter.quiet(): ...                # a request now would be served next and alone: grant it at once
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

A shortcut with the same outcome: when a request is made while the arbiter is ``quiet`` (no serve
step due at this instant, no other process to go on before one would run: no event of this instant
left in the queue, no grant or callback still to come in the current step or event), the serve step
would run next and serve this request alone, so the resource grants it at once (the same crew or
place, the same rows in the same order) and the process goes on without waiting.
"""

from __future__ import annotations

from heapq import heappush
from typing import Any, Protocol

import simpy
from simpy.events import Event

SERVE = 2  # SimPy's priorities are URGENT 0 and NORMAL 1; the horizon's stop (AfterAllAt) is 3

Key = tuple[float, int, int]  # (time of request, station index, unit index)


class Wake:
    """What a process yields to wait for a grant (SimPy's event protocol, without a place in the queue).

    ``grant(value)`` resumes the waiting process at once; a ``Wake`` granted before it is yielded
    (``granted(value)``) lets the process go on without waiting."""

    __slots__ = ("callbacks", "_ok", "_value", "_defused")

    def __init__(self) -> None:
        self.callbacks: list[Any] | None = []
        self._ok = True

    def grant(self, value: Any) -> None:
        """Give ``value`` to the process waiting on this and let it go on now."""
        self._value = value
        callbacks, self.callbacks = self.callbacks, None
        for callback in callbacks:
            callback(self)

    def granted(self, value: Any) -> Wake:
        """Granted at once: a process that yields this goes on with ``value`` without waiting."""
        self._value, self.callbacks = value, None
        return self


class Served(Protocol):
    def serve(self) -> list[tuple[Wake, Any]]: ...


class Arbiter:
    """Runs the serve step of an instant once something was requested or freed in it."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.resources: list[Served] = []
        self._pending = False
        self._busy = False  # in a serve step, with more grants to come
        self._due: list[bool] = []  # per resource: requested from or freed in since its last serve
        self._event = Event(env)
        self._event._ok, self._event._value = True, None

    def add(self, resource: Served) -> int:
        """Register a resource (served in the order added); returns its number for ``wake``."""
        self.resources.append(resource)
        self._due.append(False)
        return len(self.resources) - 1

    def wake(self, resource: int) -> None:
        """Something was requested from or freed in ``resource`` now: serve it at the end of this instant."""
        self._due[resource] = True
        if not self._pending:
            self._pending = True
            step, env = self._event, self.env
            step.callbacks = [self._step]  # one event object, scheduled again for each step
            heappush(env._queue, (env._now, SERVE, next(env._eid), step))

    def quiet(self) -> bool:
        """Whether a serve step for a request made now would run next and serve only it: no step due at this
        instant, no grant or callback still to come, no other event left at this instant."""
        if self._pending or self._busy:
            return False
        env = self.env
        if env._fanout:
            return False
        queue = env._queue
        return not queue or queue[0][0] > env._now or queue[0][1] > SERVE

    def _step(self, _: Event) -> None:
        # the resources due when the step begins; a request made during the step is served by the next one
        due, self._due, self._pending = self._due, [False] * len(self._due), False
        serving = [resource for i, resource in enumerate(self.resources) if due[i]]
        last = serving[-1]
        for resource in serving:
            granted = resource.serve()
            if granted:
                final = granted[-1][0] if resource is last else None
                self._busy = True
                for wake, value in granted:
                    if wake is final:
                        self._busy = False
                    wake.grant(value)
                self._busy = False
