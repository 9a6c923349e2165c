"""Operators at run time: pools on shift calendars, qualified for stations, working in cleanrooms.

    >>> ops = Operators(arbiter, rules)
    >>> request = Request(unit)                              # once per unit: the RulesUnit asking (station, count)
    >>> crew, gowning_hours = yield ops.request(request, now)
    >>> ops.release(crew, room)

Requests are served by the serve step at the end of their instant (``twin.engine.rules.arbiter``), in
order (time of request, station index, unit index), a later request going ahead when an earlier one
cannot be served yet (first fit). Free operators are counted per pool, so a request that cannot be
served is passed over without scanning the crew. An operator whose shift ends finishes the phase at hand, then
goes off. Entering a grade A/B room costs gowning time unless the operators were already working
in that room; they leave it, de-gowned, when their shift ends.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twin.engine.rules.arbiter import Arbiter, Key, Wake
from twin.engine.rules.calendar import WeeklyCalendar
from twin.engine.rules.rule import Rule
from twin.eventlog import Event, State
from twin.spec.model import LineSpec

if TYPE_CHECKING:
    from twin.engine.rules.compiled import CompiledRules, StationRules
    from twin.engine.rules.unit import RulesUnit

OPERATORS = Rule(
    "operators", "operators and shifts", ("operators", "calendars", "stations.*.operators"),
    lambda s: bool(s.operators) or any(st.operators for st in s.stations),
)  # fmt: skip
ROOMS = Rule("rooms", "rooms (headcount and gowning)", ("rooms",), lambda s: bool(s.rooms), (Event.GOWNING,))


def compile_pools(spec: LineSpec) -> tuple[tuple[str, int, int], ...]:
    """(name, headcount, calendar index or -1) of each operator pool."""
    calendars = list(spec.calendars)
    return tuple((p.name, p.headcount, calendars.index(p.calendar) if p.calendar else -1) for p in spec.operators)


def compile_rooms(spec: LineSpec) -> tuple[tuple[str, float, int], ...]:
    """(name, gowning hours, most people at work) of each room."""
    return tuple((r.name, spec.hours(r.gowning_time()), r.max_people) for r in spec.rooms)


@dataclass(slots=True)
class Operator:
    pool: int
    on_shift: bool = True
    busy: bool = False
    room: int = -1  # room the operator is gowned for (-1: none)


class Request:
    """A unit's request for its crew, made again for each phase that needs one."""

    __slots__ = ("count", "key", "pool", "rules", "state", "unit", "wake")

    def __init__(self, unit: RulesUnit) -> None:
        self.unit, self.rules = unit, unit.rules
        pools = self.rules.pools
        self.pool = pools[0] if len(pools) == 1 else -1  # the one pool qualified, or -1
        self.count = self.rules.operators
        self.key: Key = (0.0, unit.j, unit.u)  # (time of request, station index, unit index)
        self.wake = Wake()
        self.state = ""  # the waiting state last recorded for the unit


_WAITING_OPERATOR, _OFF_SHIFT = State.WAITING_OPERATOR, State.OFF_SHIFT


def _key(request: Request) -> Key:
    return request.key


class Operators:
    """All operator pools of a line."""

    def __init__(self, arbiter: Arbiter, rules: CompiledRules):
        self.env = env = arbiter.env
        self.arbiter = arbiter
        self.number = arbiter.add(self)
        self.rules = rules
        self.calendars = [WeeklyCalendar(rules.calendars[c] if c >= 0 else None) for _, _, c in rules.pools]
        self.crew = [Operator(p) for p, (_, headcount, _) in enumerate(rules.pools) for _ in range(headcount)]
        for person in self.crew:
            person.on_shift = self.calendars[person.pool].is_working(0.0)
        self.members = [[p for p in self.crew if p.pool == pool] for pool in range(len(rules.pools))]  # by pool
        self.shift_on = [any(p.on_shift for p in members) for members in self.members]  # per pool
        self.free = [0] * len(rules.pools)  # on shift and not busy, per pool
        for person in self.crew:
            self.free[person.pool] += person.on_shift
        self.room_busy = [0] * len(rules.rooms)
        self.waiting: list[Request] = []  # in key order
        self._shift_changed = False  # since the last serve step: waiting states to check again
        for pool, calendar in enumerate(self.calendars):
            if not calendar.always:
                env.process(self._shifts(pool, calendar))

    def request(self, request: Request, now: float) -> Wake:
        """Ask for a unit's operators (``request``: its ``Request``): what to yield for (crew, gowning hours),
        granted by the serve step of this instant at the earliest."""
        wake, waiting = request.wake, self.waiting
        wake.callbacks, request.state = [], ""
        key = request.key = (now, request.key[1], request.key[2])
        if not waiting or waiting[-1].key < key:
            waiting.append(request)
        else:
            insort(waiting, request, key=_key)
        self.arbiter.wake(self.number)
        return wake

    def release(self, crew: list[Operator], room: int) -> None:
        """The phase is done: free the crew (those whose shift has ended go off)."""
        free = self.free
        for person in crew:
            person.busy = False
            if person.on_shift:
                free[person.pool] += 1
        if room >= 0:
            self.room_busy[room] -= len(crew)
        if self.waiting:
            self.arbiter.wake(self.number)

    def on_shift(self, pools: tuple[int, ...]) -> bool:
        shift_on = self.shift_on
        return any(shift_on[pool] for pool in pools)

    def serve(self) -> list[tuple[Wake, tuple[list[Operator], float]]]:
        """The serve step: grant the waiting requests in key order, a later one going ahead of one that cannot
        be served, and record the waiting state of the others; the granted requests, in that order (the
        arbiter lets their units go on)."""
        free, grant_crew, granted, waiting = self.free, self._grant, [], self.waiting
        now, every = self.env._now, self._shift_changed
        self._shift_changed = False
        left = []
        for request in waiting:
            pool = request.pool
            # a request of one pool without enough free operators is passed over without a call
            crew = None if pool >= 0 and free[pool] < request.count else grant_crew(request.rules)
            if crew is not None:
                granted.append((request.wake, crew))
                continue
            left.append(request)
            if every or not request.state:  # new requests, and all after a shift change: their waiting state
                self._mark_waiting(request, now)
        if granted:
            self.waiting = left
        return granted

    def _grant(self, rules: StationRules) -> tuple[list[Operator], float] | None:
        """Take the crew a station needs, if its pools and room allow now: (crew, gowning hours), else None.

        The crew is the first ``count`` free operators of the station's pools, those already gowned for its
        room first, then in the order of its pools, then in pool order."""
        free_count = self.free
        room, count, pools = rules.room, rules.operators, rules.pools
        if room >= 0 and self.room_busy[room] + count > self.rules.rooms[room][2]:
            return None
        if len(pools) == 1:
            if free_count[pools[0]] < count:
                return None
        else:
            total = 0
            for pool in pools:
                total += free_count[pool]
            if total < count:
                return None
        members = self.members
        if count == 1:  # the first free operator gowned for the room, else the first free one
            pick = None
            for pool in pools:
                for person in members[pool]:
                    if person.on_shift and not person.busy:
                        if person.room == room:
                            pick = person
                            break
                        if pick is None:
                            pick = person
                else:
                    continue
                break
            crew = [pick]
        else:
            crew = [p for pool in pools for p in members[pool] if p.room == room and p.on_shift and not p.busy]
            if len(crew) > count:
                del crew[count:]
            elif len(crew) < count:
                others = [p for pool in pools for p in members[pool] if p.room != room and p.on_shift and not p.busy]
                crew += others[: count - len(crew)]
        for person in crew:
            person.busy = True
            free_count[person.pool] -= 1
        gowning = 0.0
        if room >= 0:
            self.room_busy[room] += count
            gowning = self.rules.rooms[room][1]
            if gowning > 0 and any(p.room != room for p in crew):
                for person in crew:
                    person.room = room
                return crew, gowning
            for person in crew:
                person.room = room
        return crew, 0.0

    def _mark_waiting(self, request: Request, now: float) -> None:
        pool = request.pool
        on_shift = self.shift_on[pool] if pool >= 0 else self.on_shift(request.rules.pools)
        state = _WAITING_OPERATOR if on_shift else _OFF_SHIFT
        if state != request.state:
            request.state = state
            request.unit.record_state(now, state)

    def _shifts(self, pool: int, calendar: WeeklyCalendar) -> Any:
        while True:
            change = calendar.next_change(self.env._now)
            if change == float("inf"):
                return
            yield self.env.timeout(change - self.env._now)
            working = calendar.is_working(self.env._now)
            self.shift_on[pool] = working and bool(self.members[pool])
            for person in self.members[pool]:
                person.on_shift = working
                if not working:
                    person.room = -1  # de-gowned at the end of the shift
            self.free[pool] = sum(1 for p in self.members[pool] if p.on_shift and not p.busy)
            if self.waiting:
                self._shift_changed = True
                self.arbiter.wake(self.number)  # served, or their waiting state changes, at the end of this instant
