"""SimPy's environment with a leaner run loop and timeout: the same events, in the same order.

    >>> env = Environment()
    >>> env.process(proc(env)); env.run(until=done)

``timeout`` builds and schedules exactly the ``Timeout`` SimPy's would (same time, priority and
sequence number), without the generic constructor; ``run(until=event)`` processes events exactly as
SimPy's ``step`` does, in one loop without a method call per event. Runs are event for event those
of ``simpy.Environment`` (the event logs are identical), only cheaper: the engine's hot path. The
hot loops read the clock as ``env._now`` (the ``now`` property costs a call per read).

``_fanout`` is True while an event's callbacks run and more of them are still to come (the batch
rules' arbiter grants a request at once only when nothing else would run before it).
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.core import EmptySchedule, StopSimulation
from simpy.events import NORMAL, Event, Timeout

_new_timeout = Timeout.__new__


class Environment(simpy.Environment):
    """``simpy.Environment`` with a cheaper ``timeout`` and ``run(until=event)``."""

    _fanout = False

    def timeout(self, delay: float, value: Any = None) -> Timeout:  # type: ignore[override]
        """``simpy.Environment.timeout``: a ``Timeout`` scheduled ``delay`` from now."""
        if delay < 0:
            raise ValueError(f"Negative delay {delay}")
        event = _new_timeout(Timeout)
        event.env, event.callbacks, event._value, event._delay, event._ok = self, [], value, delay, True
        heappush(self._queue, (self._now + delay, NORMAL, next(self._eid), event))
        return event

    def run(self, until: Any = None) -> Any:
        """``simpy.Environment.run``; an event as ``until`` runs in a lean loop (other forms go to SimPy's)."""
        if not isinstance(until, Event):
            return super().run(until)
        if until.callbacks is None:  # processed already
            return until.value
        until.callbacks.append(StopSimulation.callback)
        queue = self._queue
        try:
            while queue:
                self._now, _, _, event = heappop(queue)
                callbacks, event.callbacks = event.callbacks, None
                if len(callbacks) == 1:
                    callbacks[0](event)
                elif callbacks:
                    self._callbacks(event, callbacks)
                if not event._ok and not hasattr(event, "_defused"):
                    _raise(event)
        except StopSimulation as stop:
            self._fanout = False
            return stop.args[0]
        raise RuntimeError(f'No scheduled events left but "until" event was not triggered: {until}')

    def step(self) -> None:
        """``simpy.Environment.step``: process the next event (``_fanout`` kept as ``run`` keeps it)."""
        try:
            self._now, _, _, event = heappop(self._queue)
        except IndexError:
            raise EmptySchedule() from None
        callbacks, event.callbacks = event.callbacks, None
        try:
            self._callbacks(event, callbacks)
        except StopSimulation:
            self._fanout = False
            raise
        if not event._ok and not hasattr(event, "_defused"):
            _raise(event)

    def _callbacks(self, event: Event, callbacks: list[Any]) -> None:
        self._fanout = True
        for callback in callbacks[:-1]:
            callback(event)
        self._fanout = False
        if callbacks:
            callbacks[-1](event)


def _raise(event: Event) -> None:
    # an unhandled failure: raise it here, as simpy.Environment.step does
    exc = type(event._value)(*event._value.args)
    exc.__cause__ = event._value
    raise exc
