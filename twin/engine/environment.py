"""SimPy's environment with a leaner run loop and timeout: the same events, in the same order.

    >>> env = Environment()
    >>> env.process(proc(env)); env.run(until=done)

``timeout`` builds and schedules exactly the ``Timeout`` SimPy's would (same time, priority and
sequence number), without the generic constructor; ``run(until=event)`` processes events exactly as
SimPy's ``step`` does, in one loop without a method call per event. Runs are event for event those
of ``simpy.Environment`` (the event logs are identical), only cheaper: the engine's hot path. The
hot loops read the clock as ``env._now`` (the ``now`` property costs a call per read).
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.core import StopSimulation
from simpy.events import NORMAL, Event, Timeout

_new_timeout = Timeout.__new__


class Environment(simpy.Environment):
    """``simpy.Environment`` with a cheaper ``timeout`` and ``run(until=event)``."""

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
                for callback in callbacks:
                    callback(event)
                if not event._ok and not hasattr(event, "_defused"):
                    # an unhandled failure: raise it here, as simpy.Environment.step does
                    exc = type(event._value)(*event._value.args)
                    exc.__cause__ = event._value
                    raise exc
        except StopSimulation as stop:
            return stop.args[0]
        raise RuntimeError(f'No scheduled events left but "until" event was not triggered: {until}')
