"""A line spec compiled into arrays for the JAX evaluator, and its random draws (common random numbers).

    >>> line = line_arrays(spec)
    >>> line.approximations            # [] when the evaluator is exact for this spec
    >>> draws = draw_inputs(line, seed=1, replications=10, batches=5000, max_units=(1, 2, 1))

The draws come from the engine's own streams (``twin.random.stream_rng`` with the same owners and
stream names, ``first_draws`` of the same samplers), so a batch of the evaluator and of the SimPy
engine see the same processing, changeover, failure and release times.

The exact subset (departures equal the engine's to 1e-9) is written down in ``SUBSET``; a spec
outside it is evaluated as a surrogate whose departures are close to, not equal to, the engine's.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from twin.engine.compiled import CompiledLine, compile_line
from twin.engine.release import RELEASE_OWNER
from twin.engine.rules.calendar import WeeklyCalendar
from twin.engine.rules.qc import QC_OWNER
from twin.engine.rules.registry import rules_used
from twin.random import first_draws, stream_rng, uniform
from twin.spec.model import LineSpec

# batch rules the JAX kernel evaluates exactly (names in the rule registry)
KERNEL_RULES = frozenset(
    {"rate", "cleaning", "quality", "hold_times", "changeover_cleaning", "release_rules", "qc"}
)
# batch rules the event-stepping kernel (``optimizers/events.py``) evaluates exactly, on lines in its scope
# (``events_outside``): a spec whose rules are all here, some of them not in KERNEL_RULES, is stepped event by event
EVENT_RULES = frozenset(
    {"operators", "rate", "cleaning", "rooms", "skids", "quality", "hold_times", "qc", "changeover_cleaning",
     "release_rules"}
)  # fmt: skip
QC_STREAMS = ("test", "incubation", "oos", "investigation")  # the ``qc`` owner's streams (``Draws.qc``), in order

SUBSET = """\
Exact (departure times equal the SimPy engine's to 1e-9 given the same draws):
- serial routes of any number of stations; blocking after service; finite or unlimited buffers;
- release saturated, by plan (repeating or not, pulled or with interarrival times), or by
  interarrival times; several products by plan or by mix;
- operating-basis failures, folded into processing times with the engine's arithmetic;
- sequence-dependent changeovers, on one unit or several (processing drawn in the order batches
  start, as the engine draws it);
- cleaning (minor and major cleans, due after N batches / T hours / M kg, dirty- and clean-hold
  expiry); on shared skids or with operators on single units as below; on several units where a
  unit is free again in departure order and the cleans' draws come in the order batches are taken
  (``multiunit_outside``);
- yields (units lost at each station, carried with the batch to rate-based stations and cleans due
  in kg) and rejects (the batch leaves the line at the end of processing; on several units at the
  last station, which is never blocked);
- rate-based stations (start-up, units over the net rate, the engine's noise stream);
- hold times that scrap a late batch (checked when the station takes the batch; on several units at
  the last station);
- major cleans and line clearances of changeovers on single-unit stations with cleaning (the clean
  after a batch waits for the next batch's arrival to see whether it is already waiting; a batch
  arriving at the very instant the clean starts counts as not waiting, where the engine follows
  SimPy's event order: only deterministic times can make the two instants equal); on several units
  fed by a hand-over (buffer 0: no batch can be waiting);
- a release calendar: the first station pulls a batch only in the calendar's working time (the
  engine's weekly calendar and its float arithmetic);
- a WIP limit (CONWIP) of more batches than the extra units before its station; with rejects or
  scraps before that station (a batch that leaves early frees its place at once), or at a station of
  several units with cleans or changeovers (starts out of arrival order), where every station before
  it has one unit;
- calendar-basis failures on single-unit stations (failures while waiting, repairs that outlast a
  wait);
- parallel identical units (FIFO, blocking after service);
- QC release after the last station: analysts in quarantine order on the lab's calendar, test,
  incubation, out-of-specification results rejected or investigated (a stage after the scan);
- operator pools on shift calendars: headcounts, the pools qualified for a station (its crew taken in
  pool order), a station's crews for processing, for its changeovers and for its cleans (asked for
  again for each phase), waiting off shift, a phase that runs on past the shift's end, requests
  served at the end of each instant in key order (time of request, station, unit), first fit, rooms'
  headcount limits and gowning (operators gowned for a station's room taken first, across its
  pools; de-gowned at the end of their shift; where no station has several units and no hold
  investigates), cleans waiting for a
  shared skid's place first (skids served before operators, in key order); on serial lines of
  stations of one unit or several (a station's units take its batches first come, first served,
  and put them on in the same order, each with its own failures and hygiene, drawing from the
  station's streams in the order the engine's processes go on in; rate-based ones, cleaning,
  yields, rejects, QC release after the line, a release calendar and a WIP limit at a pulling
  first station of one unit (a WIP limit not until a station whose crew gowns),
  changeovers with their major cleans and line clearances, failures on either clock, hold times that
  scrap a late batch or send it to investigation: it comes back into the station's buffer after its
  investigation time, its put waiting behind the pass-ons asked before it) without other rules
  (stepped event by event, ``optimizers/events.py``); the state shares of a
  station on the wall clock whose crew keeps it waiting follow the engine's log only where no failure
  falls due during that wait (the engine records it when the phase starts);
- decision variables: buffers, units, speeds (processing times divided by the speed), campaign order,
  and the levers of the rules above: QC analysts, cleaning due thresholds (batches, hours, kg), the
  WIP limit, campaign lengths (a plan's sequence and, without repeat, its number of batches per design),
  and the headcount of each operator pool where the line is stepped event by event.
Surrogate (evaluated, and its error against SimPy measured and reported with every answer):
- on lines not stepped event by event: calendar-basis failures on stations with more than one unit
  (a repair can free units out of departure order);
- on such lines, on stations with more than one unit: cleans due, dirty-hold times, minor cleans of varying time
  and rejects or scraps before the last station (units free out of departure order);
  changes that need a major clean fed by a buffer (the clean looks at the waiting batch); draws of
  varying time after cleans that differ between batches (out of the order taken);
- hold times that send a late batch to investigation on lines not stepped event by event (run as
  scraps);
- an incubation time that can be zero (an empirical one with a zero value: the order of the
  out-of-specification draws at equal instants is not followed);
- the other GMP batch rules (splits and merges; operators, shifts, rooms and shared skids on lines
  the event kernel does not step yet): ignored by the evaluator.
"""


@dataclass(frozen=True)
class LineArrays:
    """What the evaluator needs of a spec, as plain numbers (times in hours)."""

    spec: LineSpec
    line: CompiledLine
    stations: tuple[str, ...]
    products: tuple[str, ...]
    pull: bool  # the first station pulls its batches (saturated; plan without interarrival)
    interarrival: bool
    units: tuple[int, ...]
    buffers: tuple[int, ...]  # -1 = unlimited
    setup_exists: np.ndarray  # [station, previous, next] bool: a changeover time
    change_major: np.ndarray  # [station, previous, next] bool: the change needs a major clean
    change_clearance: np.ndarray  # [station, previous, next] bool: the change ends with a line clearance
    has_setup: tuple[bool, ...]
    has_failures: tuple[bool, ...]
    calendar_failures: tuple[bool, ...]  # failures on the wall clock (``CalendarClock``)
    has_cleaning: tuple[bool, ...]
    has_rate: tuple[bool, ...]
    has_yield: tuple[bool, ...]
    has_reject: tuple[bool, ...]
    holds: tuple[tuple[int, int, float, bool], ...]  # hold-time rules: (from, to, max hours, scrap)
    campaigns: tuple[tuple[int, int], ...]  # plan mode: (product, batches) in the spec's order
    finite_plan: bool  # plan mode without repeat: the run ends when the last planned batch leaves
    horizon: float
    warmup: float
    approximations: tuple[str, ...]

    @property
    def plan_batches(self) -> int:
        return sum(b for _, b in self.campaigns)


def line_arrays(spec: LineSpec) -> LineArrays:
    """Compile ``spec`` for the evaluator; ``approximations`` says where it leaves the exact subset."""
    line = compile_line(spec)
    rules = line.rules
    products = line.products
    n_products = len(products)
    exists = np.zeros((len(line.stations), n_products, n_products), dtype=bool)
    major, clearance = np.zeros_like(exists), np.zeros_like(exists)
    for s in line.stations:
        for a, b in s.setup:
            exists[s.index, a, b] = True
        for (a, b), change in rules.stations[s.index].changeovers.items() if rules is not None else ():
            major[s.index, a, b], clearance[s.index, a, b] = change.major_clean, change.line_clearance
    release = spec.release
    campaigns = tuple((products.index(c.product), c.batches) for c in release.plan or ())
    line_arrays_ = LineArrays(
        spec=spec,
        line=line,
        stations=tuple(s.name for s in line.stations),
        products=products,
        pull=line.release.interarrival is None,
        interarrival=line.release.interarrival is not None,
        units=tuple(s.units for s in line.stations),
        buffers=tuple(-1 if s.buffer == float("inf") else int(s.buffer) for s in line.stations),
        setup_exists=exists,
        change_major=major,
        change_clearance=clearance,
        has_setup=tuple(
            bool(exists[j].any() or major[j].any() or clearance[j].any()) for j in range(len(line.stations))
        ),
        has_failures=tuple(s.failures is not None for s in line.stations),
        calendar_failures=tuple(s.failures is not None and s.failures.calendar for s in line.stations),
        has_rate=tuple(rules is not None and rules.stations[s.index].rate is not None for s in line.stations),
        has_yield=tuple(rules is not None and rules.stations[s.index].yield_ < 1 for s in line.stations),
        has_reject=tuple(rules is not None and rules.stations[s.index].reject_probability > 0 for s in line.stations),
        holds=tuple(
            (h.source, s.index, h.max_hours, h.scrap) for s in line.stations for h in rules.stations[s.index].holds
        )
        if rules is not None
        else (),
        has_cleaning=tuple(
            line.rules is not None and line.rules.stations[s.index].cleaning is not None for s in line.stations
        ),
        campaigns=campaigns,
        finite_plan=release.mode == "plan" and not release.repeat,
        horizon=line.horizon,
        warmup=line.warmup,
        approximations=(),
    )
    return _with_approximations(line_arrays_, line_arrays_.units)


def approximations_for(
    line: LineArrays, units: tuple[int, ...], wip_limit: int | None = None, buffered: tuple[bool, ...] | None = None
) -> tuple[str, ...]:
    """Why the evaluator is a surrogate (not exact) for ``line`` with these unit counts (and this WIP limit, None:
    the spec's); empty when exact."""
    reasons = []
    rules = line.line.rules
    outside = events_outside(line, units) if rules is not None and uses_events(line.spec) else None
    if rules is not None and rules.wip_limit is not None and outside != []:  # (the event kernel follows every limit)
        why = conwip_outside(line, units, wip_limit)
        if why:
            reasons.append(f"release.wip_limit: CONWIP {why}")
    if rules is not None:
        ignored = _ignored_rules(line.spec) if outside != [] else []  # (the event kernel evaluates them all)
        if ignored:
            reasons.append(f"batch rules not evaluated: {', '.join(ignored)}")
        reasons.extend(outside or [])
        why = qc_outside(line.spec)
        if why:
            reasons.append(f"qc.incubation: {why}")
    stepped = rules is not None and uses_events(line.spec)
    for s in line.line.stations:
        if line.calendar_failures[s.index] and (waits := _waits_unlogged(line, s.index, stepped)):
            reasons.append(f"stations.{s.name}.failures: calendar basis at a station with {' and '.join(waits)}: a "
                           "failure due while it waits for one is logged by the engine when the phase starts, so the "
                           "station's state shares, utilization and OEE can differ from the engine's (departures are "
                           "exact)")  # fmt: skip
        if stepped and outside == []:  # (the event kernel: investigations and several units, exact)
            continue
        if line.calendar_failures[s.index] and units[s.index] > 1:
            reasons.append(f"stations.{s.name}.failures: calendar basis on {units[s.index]} units (exact on one unit)")
        reasons.extend(_investigated(line, s.index))  # (the scan kernel scraps them)
        if units[s.index] > 1:
            fed = buffered[s.index] if buffered is not None else line.buffers[s.index] != 0
            reasons.extend(multiunit_outside(line, s.index, units[s.index], fed))
    return tuple(reasons)


def _waits_unlogged(line: LineArrays, j: int, stepped: bool) -> list[str]:
    """What station ``j`` may wait for, in a kernel that evaluates it (``stepped``: the event kernel), without the
    engine's ``CalendarClock.wait_over`` at the wait's end (``RulesUnit`` calls it after a take and a blocked pass-on
    only; see ``docs/design/exact-rules-kernel.md``): a crew, a shared skid, the release gate of a pulling first
    station (a release calendar or a WIP limit)."""
    rules, release = line.line.rules, line.spec.release
    station = rules.stations[j] if rules is not None else None
    waits = []
    if stepped and station is not None and station.operators:
        waits.append("a crew")
    if stepped and station is not None and station.cleaning is not None and station.cleaning.skid >= 0:
        waits.append("a shared skid")
    if j == 0 and line.pull and (release.calendar is not None or release.wip_limit is not None):
        waits.append("a release gate")
    return waits


def _investigated(line: LineArrays, j: int) -> list[str]:
    """The hold-time rules that end at station ``j`` and send a late batch to investigation (the scan kernel runs them
    as scraps)."""
    return [f"hold_times: {line.stations[source]}->{line.stations[j]} investigates late batches (not scraps)"
            for source, to, _, scrap in line.holds if to == j and not scrap]  # fmt: skip


def uses_events(spec: LineSpec) -> bool:
    """``spec`` uses batch rules that the scan kernel leaves out, all of them in the event kernel's
    (``EVENT_RULES``, from the rule registry): the evaluator steps its events (where ``events_outside`` is empty)."""
    used = {rule.name for rule in rules_used(spec)}
    investigates = any(h.action == "investigate" for h in spec.hold_times)  # (scraps in the scan kernel)
    return (investigates or not used <= KERNEL_RULES) and used <= EVENT_RULES


def steps_events(line: LineArrays, units: tuple[int, ...]) -> bool:
    """The evaluator of ``line`` made for these (most) unit counts runs the event kernel: its spec uses rules only that
    kernel evaluates (``uses_events``), and the line with these units is in its scope (``events_outside``)."""
    return uses_events(line.spec) and not events_outside(line, units)


def events_outside(line: LineArrays, units: tuple[int, ...]) -> list[str]:
    """Why the event kernel does not follow ``line`` with these unit counts exactly (empty: it does). Its scope:
    serial lines of single-unit stations, buffers, every release mode, products, failures on either clock,
    rate-based stations, changeovers (their time, major clean and line clearance), operator pools on shift
    calendars (the crews of processing, changeovers and cleaning), cleaning (minor and major cleans, due after
    batches, hours or kg, dirty and clean holds, on shared skids), rooms (headcount limits, gowning, stations served
    by several pools: ``operators_one_by_one``; not several units at a station whose crews gown, nor a hold that
    investigates after one), yields
    and rejects, QC release after the line (the scan kernel's stage on the lane's exits: where that stage is a
    surrogate, ``qc_outside``, it is one here too, and ``approximations_for`` says so), and hold times that scrap a
    late batch or send it to investigation (not one that ends at a station on the wall clock), and the release gate
    of a pulling first station of one unit (a release calendar, a WIP limit not until a station whose crew gowns
    before processing: ``events._gate``)."""
    reasons = []
    for j, name in enumerate(line.stations):
        where = f"stations.{name}"
        if line.calendar_failures[j] and any(to == j for _, to, _, _ in line.holds):
            reasons.append(f"{where}.failures: calendar basis where a hold time ends (the engine checks the hold after "
                           "the repairs of the wait; not in the event kernel yet)")  # fmt: skip
    rules = line.line.rules
    for j, station in enumerate(rules.stations if rules is not None else ()):
        cleaning = station.cleaning  # a minor clean off the skid that stood dirty too long asks for it after its crew
        if cleaning and cleaning.skid >= 0 and "minor" not in cleaning.skid_for and cleaning.dirty_hold is not None:
            reasons.append(f"stations.{line.stations[j]}.cleaning.skid_for: a minor clean off the skid with a dirty "
                           "hold (not in the event kernel yet)")  # fmt: skip
    if line.pull and rules is not None and (rules.release_calendar >= 0 or rules.wip_limit is not None):
        first = line.stations[0]  # (the gate wakes one unit; with several, which one pulls is the engine's order)
        if units[0] > 1:
            reasons.append(f"stations.{first}.units: {units[0]} units pulling behind a release calendar or a WIP "
                           "limit: not in the event kernel yet")  # fmt: skip
        until = rules.wip_limit[1] if rules.wip_limit is not None else -1
        room = rules.stations[until].room if until >= 0 else -1
        if room >= 0 and rules.rooms[room][1] > 0 and "processing" in rules.stations[until].operator_phases:
            reasons.append(f"release.wip_limit: until {line.stations[until]}, whose crew gowns before processing "
                           "starts (the batch leaves the count then): not in the event kernel yet")  # fmt: skip
    # a phase begun after its crew gowned schedules its timeout then, not at the grant where the kernel numbers it
    # (``events._scheduled``): out of the order units of one station go on in, or a pass-on and a batch back from
    # investigation at one instant
    gowns = _gowning_stations(line)
    why = "its crews gown (a room with gowning): not in the event kernel yet"
    reasons.extend(f"stations.{name}.units: {units[j]} units where {why}"
                   for j, name in enumerate(line.stations) if units[j] > 1 and j in gowns)  # fmt: skip
    reasons.extend(f"hold_times: {line.stations[source]}->{line.stations[to]} investigates after a station where {why}"
                   for source, to, _, scrap in line.holds if not scrap and to - 1 in gowns)  # fmt: skip
    return reasons


def _gowning_stations(line: LineArrays) -> set[int]:
    """The stations whose crews gown: they work in a room with gowning time."""
    rules = line.line.rules
    if rules is None:
        return set()
    return {j for j, station in enumerate(rules.stations)
            if station.operators and station.room >= 0 and rules.rooms[station.room][1] > 0}  # fmt: skip


def operators_one_by_one(line: LineArrays) -> bool:
    """The event kernel follows each operator (``EventShape.members``): which room it is gowned for decides which
    operators a crew takes (``Operators._grant``: those gowned for the station's room first, across its pools) and
    whether it gowns; counts per pool suffice where no room has gowning and every crew has one pool."""
    rules = line.line.rules
    if rules is None or not rules.rooms:
        return False
    gowning = any(hours > 0 for _, hours, _ in rules.rooms)
    return gowning or any(station.operators and len(station.pools) > 1 for station in rules.stations)


def pool_shifts_like(line: LineArrays) -> tuple[int, ...]:
    """Per operator pool, the first pool on the same shift calendar (itself where none is before it): pools on one
    calendar change shift at the same instants, which the event kernel works out once (``EventShape.shifts_like``)."""
    rules = line.line.rules
    calendars = [c for _, _, c in (rules.pools if rules is not None else ())]
    return tuple(calendars.index(c) for c in calendars)


def pool_edges(line: LineArrays) -> tuple[int, ...]:
    """Per operator pool, the edges of its weekly calendar (0: always on shift): ``EventShape.pools``."""
    return tuple(len(cal["edges"]) if cal is not None else 0 for cal in _pool_calendars(line))


def pool_constants(line: LineArrays, units: tuple[int, ...] | None = None) -> dict[str, object]:
    """The operator pools as numbers for the event kernel: the pools qualified for each station ([station, pool]), the
    operators each station's processing, each of its changeovers and each of its cleans need (0: none), each pool's
    calendar (a placeholder when always on shift), the room of each station ([station, room]), the most people
    each room allows and its gowning hours, the cleaning skid of each station's cleans ([station, skid];
    ``skid_minor``, ``skid_major``: the kinds of clean that use it) and each skid's places. (Each pool's headcount
    is an input of each design: ``lever_inputs``.) With ``units`` (the most of each station), a station's rows once
    per unit: the kernel's unit slots (``events.EventShape.owner``)."""
    rules = line.line.rules
    pools = rules.pools if rules is not None else ()
    n = len(line.stations)
    qualified, need, clean_need = np.zeros((n, len(pools)), bool), np.zeros(n, np.int32), np.zeros(n, np.int32)
    need_setup = np.zeros(n, np.int32)
    for j in range(n if rules is not None else 0):
        station = rules.stations[j]
        qualified[j, list(station.pools)] = True
        need[j] = station.operators if "processing" in station.operator_phases else 0
        need_setup[j] = station.operators if "setup" in station.operator_phases else 0
        clean_need[j] = station.operators if "cleaning" in station.operator_phases else 0
    rooms = rules.rooms if rules is not None else ()
    in_room = np.zeros((n, len(rooms)), bool)
    for j in range(n if rules is not None else 0):
        if rules.stations[j].room >= 0:
            in_room[j, rules.stations[j].room] = True
    skids = rules.skids if rules is not None else ()
    on_skid, skid_minor, skid_major = np.zeros((n, len(skids)), bool), np.zeros(n, bool), np.zeros(n, bool)
    for j in range(n if rules is not None else 0):
        cleaning = rules.stations[j].cleaning
        if cleaning is not None and cleaning.skid >= 0:
            on_skid[j, cleaning.skid] = True
            skid_minor[j], skid_major[j] = "minor" in cleaning.skid_for, "major" in cleaning.skid_for
    always = {"starts": np.zeros(1), "ends": np.zeros(1), "edges": np.zeros(1)}
    slots = np.repeat(np.arange(n), [max(c, 1) for c in units]) if units is not None else np.arange(n)
    return {
        "on_skid": on_skid[slots],
        "skid_minor": skid_minor[slots],
        "skid_major": skid_major[slots],
        "skid_places": np.array([capacity for _, capacity in skids], np.int32),
        "qualified": qualified[slots],
        "in_room": in_room[slots],
        "max_people": np.array([most for _, _, most in rooms], np.int32),
        "gowning": np.array([hours for _, hours, _ in rooms], np.float64),
        "need": need[slots],
        "need_setup": need_setup[slots],
        "clean_need": clean_need[slots],
        "calendars": [cal if cal is not None else always for cal in _pool_calendars(line)],
    }


def crews_unserved(line: LineArrays, headcount: np.ndarray) -> list[str]:
    """Per design (rows of ``headcount``: [design, pool]), why no crew of some station can ever be served: it needs
    more operators than the pools qualified for it have ('': none; the spec's own check, ``twin.spec.checks``, on the
    kernel's numbers: a design's spec with such headcounts does not validate)."""
    rules = line.line.rules
    out = [""] * len(headcount)
    for j, station in enumerate(rules.stations if rules is not None and rules.pools else ()):
        if not station.operators:
            continue
        have = np.asarray(headcount)[:, list(station.pools)].sum(axis=1)
        for i in np.flatnonzero(have < station.operators):
            out[i] = out[i] or (f"stations.{line.stations[j]}: needs {station.operators} operators but the pools "
                                f"qualified for it have {int(have[i])}")  # fmt: skip
    return out


def _pool_calendars(line: LineArrays) -> list[dict[str, np.ndarray] | None]:
    rules = line.line.rules
    pools = rules.pools if rules is not None else ()
    return [_calendar_arrays(WeeklyCalendar(rules.calendars[c] if c >= 0 else None)) for _, _, c in pools]


def multiunit_outside(line: LineArrays, j: int, units: int, fed_by_buffer: bool | None = None) -> list[str]:
    """Why the kernel does not follow station ``j``'s rules on ``units`` (> 1) units exactly (empty: it does);
    ``fed_by_buffer``: whether some design gives the station a buffer (not a hand-over; None: the spec's buffer).

    The scan gives a freed unit its next batch in departure order, so a unit must be free again in that order: no
    blocked batch overtaken by a rejected or scrapped one (a station never blocked: the last one), and after-cleans
    that all take one constant time (no cleans due, no dirty-hold time, no major clean decided by a batch already
    waiting). The processing streams are drawn in start order (at departures);
    the other streams in the order batches are taken, which holds where what comes before a draw takes the same
    time for every batch, or the draw is of a constant time (its order then does not matter)."""
    spec_station, name = line.spec.stations[j], line.stations[j]
    where = f"stations.{name}"
    reasons = []
    blocked = j + 1 < len(line.stations)  # (an unlimited buffer after it would do, but a buffer lever can end that)
    scraps = any(to == j and scrap for _, to, _, scrap in line.holds)
    if blocked and (line.has_reject[j] or scraps):
        what = "rejects" if line.has_reject[j] else "hold-time scraps"
        reasons.append(
            f"{where}: {what} on {units} units that can be blocked (a batch that leaves early frees its unit before "
            "a blocked one: units free out of departure order)"
        )
    cleaning = spec_station.cleaning
    if cleaning is not None:
        if cleaning.due is not None:
            reasons.append(f"{where}.cleaning: cleans due on {units} units (a major clean frees units out of order)")
        if cleaning.dirty_hold is not None:
            reasons.append(f"{where}.cleaning: a dirty-hold time on {units} units (late cleans become major ones)")
        if cleaning.minor is not None and _varies(cleaning.minor):
            reasons.append(f"{where}.cleaning: a minor clean of varying time on {units} units (free out of order)")
        fed = line.buffers[j] != 0 if fed_by_buffer is None else fed_by_buffer
        if line.change_major[j].any() and (fed or (j == 0 and line.pull)):
            reasons.append(
                f"{where}: changes that need a major clean on {units} units fed by a buffer (the clean after a batch "
                "looks at the batch waiting: exact with a hand-over, buffer 0)"
            )
        if cleaning.clean_hold is not None and line.change_major[j].any() and _varies(cleaning.major):
            reasons.append(
                f"{where}.cleaning: major cleans of varying time for changes after clean-hold cleans on {units} units "
                "(drawn out of the order batches are taken)"
            )
        offset = cleaning.clean_hold is not None or (line.change_major[j].any() and _varies(cleaning.major))
        changes = [spec_station.changeover_for(a, b) for a in line.products for b in line.products]
        times = [c.time for c in changes if c is not None and c.time is not None]
        if offset and any(_varies(t) for t in times):
            reasons.append(
                f"{where}: changeover times of varying length after cleans that differ between batches on {units} "
                "units (drawn out of the order batches are taken)"
            )
        if line.change_clearance[j].any() and _varies(cleaning.line_clearance) and (offset or any(map(_varies, times))):
            reasons.append(
                f"{where}.cleaning: line clearances of varying time on {units} units after times that differ "
                "(drawn out of the order batches are taken)"
            )
    return reasons


def conwip_outside(line: LineArrays, units: tuple[int, ...], limit: int | None = None) -> str | None:
    """Why the kernel cannot follow the spec's WIP limit (or ``limit`` batches) with these unit counts (None: it
    follows it exactly).

    The first station's release of rank n waits for the start of rank n - L at the limit's station; the scan
    has made that start only if L exceeds the units beyond one of the stations before it; ranks are batches
    only where no batch leaves the line before it (where one can, the release waits for the L-th latest start or
    exit of the earlier batches, all made in earlier steps when every station before has one unit); starts come in
    rank order on one unit, or on several without cleans or changeovers (else, the same L-th latest start)."""
    assert line.line.rules is not None and line.line.rules.wip_limit is not None
    spec_limit, station = line.line.rules.wip_limit
    limit = spec_limit if limit is None else limit
    name = line.stations[station]
    if not line.pull:
        return "with timed releases (the recursion releases on the clock)"
    if limit <= sum(c - 1 for c in units[:station]):
        return f"of {limit} batches within the extra units before {name} (their starts come later in the recursion)"
    early = any(line.has_reject[:station]) or any(to < station for _, to, _, _ in line.holds)
    if early and any(c > 1 for c in units[:station]):
        return (
            f"with rejects or scraps before {name} and several units before it (a batch that leaves early frees its "
            "place at once; the scan makes the starts and exits it waits for only later)"
        )
    starts_out_of_order = units[station] > 1 and (line.has_setup[station] or line.has_cleaning[station])
    if starts_out_of_order and any(c > 1 for c in units[:station]):
        return (
            f"at {name} on {units[station]} units with cleans or changeovers, and several units before it (starts "
            "out of arrival order, made later in the scan)"
        )
    return None


def qc_outside(spec: LineSpec) -> str | None:
    """Why the kernel's QC stage does not follow the spec's QC lab exactly (None: it does, or no QC lab).

    An out-of-specification result is drawn when the incubation ends, at once when it takes no time; the stage
    orders those draws by (time, order of the QC ends), which holds unless a zero and a positive incubation
    can end at one instant: an empirical incubation time with a zero value."""
    incubation = spec.qc.incubation if spec.qc is not None else None
    values = getattr(incubation, "values", None)
    if values is not None and any(incubation._h(v, spec.time_unit) == 0 for v in values):
        return "an empirical time with a zero value (the order of out-of-specification draws at one instant)"
    return None


def qc_shape(line: LineArrays, most_analysts: int = 0) -> tuple[int, int] | tuple[()]:
    """``Shape.qc``: (analyst slots, edges of the lab's weekly calendar, 0: always working), or () without a lab.
    Slots are the most analysts of any design (``most_analysts``, at least the spec's) rounded up to a multiple
    of 4; each design's count is a kernel input that masks the slots beyond it, so 1 to 4 analysts share one
    compiled kernel."""
    qc = line.line.rules.qc if line.line.rules is not None else None
    if qc is None:
        return ()
    cal = qc_calendar(line)
    return -(-max(qc.analysts, most_analysts) // 4) * 4, len(cal["edges"]) if cal is not None else 0


def qc_calendar(line: LineArrays) -> dict[str, np.ndarray] | None:
    """The QC lab's working intervals of one week (``WeeklyCalendar``'s), or None: the analysts always work."""
    rules = line.line.rules
    if rules is None or rules.qc is None or rules.qc.calendar < 0:
        return None
    return _calendar_arrays(WeeklyCalendar(rules.calendars[rules.qc.calendar]))


def qc_constants(line: LineArrays) -> dict[str, np.ndarray]:
    """The QC lab as numbers: analysts (the spec's; ``most``: the most of any design, a constant all lanes share),
    chance of an out-of-specification result, investigate (or reject), incubation (or none; of constant length or
    not), and its calendar (a placeholder when it always works)."""
    rules = line.line.rules
    qc = rules.qc if rules is not None else None
    return {
        "analysts": np.int32(qc.analysts if qc is not None else 0),
        "most": np.int32(qc.analysts if qc is not None else 0),
        "oos": np.float64(qc.oos_probability if qc is not None else 0.0),
        "investigate": np.bool_(qc is not None and qc.investigate),
        "incubation": np.bool_(qc is not None and qc.incubation is not None),
        "incubation_varies": np.bool_(line.spec.qc is not None and _varies(line.spec.qc.incubation)),
        "calendar": qc_calendar(line) or {"starts": np.zeros(1), "ends": np.zeros(1), "edges": np.zeros(1)},
    }


def _varies(distribution: object) -> bool:
    """A duration whose draws can differ (not a constant one)."""
    return distribution is not None and getattr(distribution, "dist", None) != "constant"


def wip_shape(
    line: LineArrays, max_units: tuple[int, ...], limits: tuple[int, int] | None = None, events: bool = False
) -> tuple[int, int] | tuple[()]:
    """``Shape.wip``: (the largest WIP limit of any design, station) where the kernel follows every limit in
    ``limits`` (lowest, highest; None: the spec's), else (). The limit of each design is a kernel input; the ring
    of start times is sized for the largest. The event kernel (``events``) follows every limit (``events_outside``
    says where not)."""
    rules = line.line.rules
    if rules is None or rules.wip_limit is None:
        return ()
    low, high = limits or (rules.wip_limit[0],) * 2
    if not events and conwip_outside(line, max_units, low):
        return ()
    return max(high, rules.wip_limit[0]), rules.wip_limit[1]


def _ignored_rules(spec: LineSpec) -> list[str]:
    """The batch rules of ``spec`` (from the rule registry) that the JAX kernel leaves out."""
    return [rule.label for rule in rules_used(spec) if rule.name not in KERNEL_RULES]


def _with_approximations(line: LineArrays, units: tuple[int, ...]) -> LineArrays:
    from dataclasses import replace

    return replace(line, approximations=approximations_for(line, units))


def plan_sequence(
    line: LineArrays, order: tuple[int, ...] | None, batches: int, lengths: tuple[int, ...] | None = None
) -> np.ndarray:
    """Product of each batch in release order for campaigns in ``order`` (default: the spec's), each campaign of
    ``lengths[i]`` batches (default: the spec's; campaign i in the spec's order)."""
    order = tuple(range(len(line.campaigns))) if order is None else order
    lengths = tuple(b for _, b in line.campaigns) if lengths is None else lengths
    one = np.concatenate([np.full(lengths[i], line.campaigns[i][0], dtype=np.int32) for i in order])
    reps = -(-batches // len(one))
    return np.tile(one, reps)[:batches]


@dataclass(frozen=True)
class Draws:
    """Random inputs of ``replications`` replications, as the engine draws them (numpy, float64)."""

    process: np.ndarray  # [replication, station, product, k]: the k-th processing draw of a product
    setup: np.ndarray  # [replication, station, previous, next, k]: the k-th changeover draw of a pair
    ttf: np.ndarray  # [replication, station, unit, k]: times to failure (k = 0 drawn at start)
    ttr: np.ndarray  # [replication, station, unit, k]: times to repair
    clean: np.ndarray  # [replication, station, (minor, major), k]: the k-th clean of each kind
    rate_noise: np.ndarray  # [replication, station, k]: rate-based stations' noise of the k-th batch
    reject: np.ndarray  # [replication, station, k]: the uniform draw deciding the k-th batch's reject
    line_clearance: np.ndarray  # [replication, station, k]: the k-th line clearance's time
    arrivals: np.ndarray  # [replication, batch]: release times (interarrival mode), else zeros
    products: np.ndarray | None  # [replication, batch]: product of each batch (mix), None in plan mode
    seed: int
    first_replication: int
    qc: np.ndarray | None = None  # [replication, stream of QC_STREAMS, k]: the k-th draw (zeros: no such stream)
    investigation: np.ndarray | None = None  # [replication, hold, k]: the k-th investigation's time (zeros: a scrap)

    @property
    def replications(self) -> int:
        return self.process.shape[0]


def draw_inputs(
    line: LineArrays,
    seed: int,
    replications: int,
    batches: int,
    max_units: tuple[int, ...],
    failures: int = 64,
    first_replication: int = 0,
) -> Draws:
    """The first ``batches`` draws of every stream (and ``failures`` per unit) of each replication."""
    compiled = line.line
    n_st, n_pr = len(line.stations), len(line.products)
    width = max(max_units)
    n_setup = batches if any(line.has_setup) else 1
    n_fail = failures if any(line.has_failures) else 1
    process = np.zeros((replications, n_st, n_pr, batches))
    setup = np.zeros((replications, n_st, n_pr, n_pr, n_setup))
    ttf = np.full((replications, n_st, width, n_fail), np.inf)
    ttr = np.zeros((replications, n_st, width, n_fail))
    n_clean = 2 * batches + 2 if any(line.has_cleaning) else 1  # at most a clean before and after each batch
    clean = np.zeros((replications, n_st, 2, n_clean))
    rate_noise = np.ones((replications, n_st, batches if any(line.has_rate) else 1))
    reject = np.ones((replications, n_st, batches if any(line.has_reject) else 1))
    clearance = np.zeros((replications, n_st, batches if line.change_clearance.any() else 1))
    arrivals = np.zeros((replications, batches))
    products = None if compiled.release.mode == "plan" else np.zeros((replications, batches), dtype=np.int32)
    lab = compiled.rules.qc if compiled.rules is not None else None
    qc = np.zeros((replications, len(QC_STREAMS), batches if lab is not None else 1))
    holds = [h for s in compiled.stations for h in compiled.rules.stations[s.index].holds] if compiled.rules else []
    investigation = np.zeros((replications, len(holds), batches if any(not h.scrap for h in holds) else 1))
    for i in range(replications):
        r = first_replication + i
        for s in compiled.stations:
            for p, sampler in enumerate(s.process):
                rng = stream_rng(seed, r, s.name, f"process:{compiled.products[p]}")
                process[i, s.index, p] = first_draws(sampler, rng, batches)
            if line.has_rate[s.index]:  # rate-based: the noise of the engine's formula, its own stream
                rate_noise[i, s.index] = _rate_noise(compiled, s.index, seed, r, batches)
            if line.change_clearance[s.index].any():
                sampler = compiled.rules.stations[s.index].cleaning.line_clearance
                rng_l = stream_rng(seed, r, s.name, "line_clearance")
                clearance[i, s.index] = first_draws(sampler, rng_l, clearance.shape[-1])
            if line.has_reject[s.index]:
                reject[i, s.index] = first_draws(uniform, stream_rng(seed, r, s.name, "reject"), batches)
            if line.has_setup[s.index]:
                for (a, b), (name, sampler) in s.setup.items():
                    setup[i, s.index, a, b] = first_draws(sampler, stream_rng(seed, r, s.name, name), n_setup)
            cleaning = compiled.rules.stations[s.index].cleaning if line.has_cleaning[s.index] else None
            for kind, name in enumerate(("minor", "major")):
                sampler = getattr(cleaning, name) if cleaning is not None else None
                if sampler is not None:  # one stream per station, as ``LineRuntime.station_streams``
                    rng_c = stream_rng(seed, r, s.name, f"clean:{name}")
                    clean[i, s.index, kind] = first_draws(sampler, rng_c, n_clean)
            if s.failures is not None:
                for u in range(max_units[s.index]):
                    rng_f = stream_rng(seed, r, s.name, f"ttf:{u}")
                    rng_r = stream_rng(seed, r, s.name, f"ttr:{u}")
                    ttf[i, s.index, u] = first_draws(s.failures.time_to_failure, rng_f, n_fail)
                    ttr[i, s.index, u] = first_draws(s.failures.time_to_repair, rng_r, n_fail)
        if compiled.release.interarrival is not None:
            gaps = first_draws(
                compiled.release.interarrival, stream_rng(seed, r, RELEASE_OWNER, "interarrival"), batches
            )
            arrivals[i] = np.cumsum(gaps)  # sequential sums, as SimPy adds each timeout to its clock
        if products is not None:
            products[i] = mix_products(compiled, seed, r, batches)
        if lab is not None:  # at most one draw of each stream per batch (``QcLab``'s samplers)
            samplers = (lab.test_time, lab.incubation, uniform, lab.investigation)
            for k, (name, sampler) in enumerate(zip(QC_STREAMS, samplers, strict=True)):
                if sampler is not None:
                    qc[i, k] = first_draws(sampler, stream_rng(seed, r, QC_OWNER, name), batches)
        for h, hold in enumerate(holds):  # (``HoldClocks.investigate``: a batch investigated at most once per hold)
            if not hold.scrap:
                rng_h = stream_rng(seed, r, hold.stream_owner, "investigation")
                investigation[i, h] = first_draws(hold.investigation, rng_h, batches)
    return Draws(
        process, setup, ttf, ttr, clean, rate_noise, reject, clearance, arrivals, products, seed, first_replication, qc,
        investigation,
    )


def cleaning_constants(line: LineArrays) -> dict[str, np.ndarray]:
    """The cleaning rule of each station as arrays (a rule left out is one that never fires)."""
    n = len(line.stations)
    out = {
        "has_minor": np.zeros(n, bool), "due_batches": np.full(n, np.iinfo(np.int32).max, np.int32),
        "due_hours": np.full(n, np.inf), "due_kg": np.full(n, np.inf),
        "dirty_hold": np.full(n, np.inf), "clean_hold": np.full(n, np.inf),
    }  # fmt: skip
    rules = line.line.rules
    for j in range(n):
        c = rules.stations[j].cleaning if rules is not None else None
        if c is None:
            continue
        out["has_minor"][j] = c.minor is not None
        for key, v in (("due_batches", c.due_batches), ("due_hours", c.due_hours), ("due_kg", c.due_kg),
                       ("dirty_hold", c.dirty_hold), ("clean_hold", c.clean_hold)):  # fmt: skip
            if v is not None:
                out[key][j] = v
    return out


def lever_inputs(line: LineArrays) -> dict[str, np.ndarray]:
    """The kernel inputs of the batch rules' levers (the ``kernel`` names of ``optimizers.problem.LEVERS``) at the
    spec's values: QC analysts, the WIP limit, the cleaning due thresholds per station (a threshold the spec does
    not set never falls due: the largest int32, inf), the campaign lengths (in the spec's order) and the headcount
    of each operator pool (in the spec's order; the event kernel's)."""
    rules = line.line.rules
    cleaning = cleaning_constants(line)
    pools = rules.pools if rules is not None else ()
    return {
        "qc_analysts": np.int32(rules.qc.analysts if rules is not None and rules.qc is not None else 0),
        "wip_limit": np.int32(rules.wip_limit[0] if rules is not None and rules.wip_limit is not None else 0),
        **{key: cleaning[key] for key in ("due_batches", "due_hours", "due_kg")},
        "campaigns": np.array([b for _, b in line.campaigns], np.int32),
        "headcount": np.array([headcount for _, headcount, _ in pools], np.int32),
    }


def _rate_noise(compiled: CompiledLine, station: int, seed: int, replication: int, batches: int) -> np.ndarray:
    """[k]: the noise factor of a rate-based station's k-th batch (ones without noise), as ``rate.hours``."""
    assert compiled.rules is not None and compiled.rules.stations[station].rate is not None
    cv = compiled.rules.stations[station].rate[3]
    if cv <= 0:
        return np.ones(batches)
    shape, scale = 1 / cv**2, cv**2
    name = compiled.stations[station].name
    return first_draws(lambda g, n: g.gamma(shape, scale, n), stream_rng(seed, replication, name, "rate"), batches)


def rule_constants(line: LineArrays) -> dict[str, np.ndarray]:
    """Per-station numbers of the rate and quality rules, and each product's size and mass."""
    n = len(line.stations)
    rate, quality = np.zeros((n, 2)), np.zeros((n, 2))  # (start-up, units/h net of speed loss); (yield, reject p)
    rules = line.line.rules
    for j in range(n):
        r = rules.stations[j] if rules is not None else None
        quality[j] = (r.yield_, r.reject_probability) if r is not None else (1.0, 0.0)
        if r is not None and r.rate is not None:
            units_per_hour, startup, loss, _ = r.rate
            rate[j] = (startup, units_per_hour * (1 - loss))
    sizes = np.asarray(line.line.batch_sizes, np.float64)
    masses = np.asarray(rules.masses if rules is not None else np.zeros(len(sizes)), np.float64)
    calendar = release_calendar(line)
    hold_max = np.array([h[2] for h in line.holds] or [np.inf], np.float64)
    return {
        "rate": rate, "quality": quality, "sizes": sizes, "masses": masses, "hold_max": hold_max,
        "release_calendar": calendar or {"starts": np.zeros(1), "ends": np.zeros(1), "edges": np.zeros(1)},
        "qc": qc_constants(line),
    }  # fmt: skip


def release_calendar(line: LineArrays) -> dict[str, np.ndarray] | None:
    """The release calendar's working intervals of one week (``WeeklyCalendar``'s), or None: release at any time."""
    rules = line.line.rules
    if rules is None or rules.release_calendar < 0 or not line.pull:
        return None
    return _calendar_arrays(WeeklyCalendar(rules.calendars[rules.release_calendar]))


def _calendar_arrays(cal: WeeklyCalendar) -> dict[str, np.ndarray] | None:
    if cal.always:
        return None
    return {"starts": np.asarray(cal.starts), "ends": np.asarray(cal.ends), "edges": np.asarray(cal.edges)}


def mix_products(compiled: CompiledLine, seed: int, replication: int, batches: int) -> np.ndarray:
    """Products of released batches in saturated and interarrival modes, as ``Releaser.next_product``."""
    if len(compiled.products) == 1:
        return np.zeros(batches, dtype=np.int32)
    shares = first_draws(lambda g, n: g.random(n), stream_rng(seed, replication, RELEASE_OWNER, "mix"), batches)
    mix, last = compiled.release.mix, len(compiled.release.mix) - 1
    return np.array([min(bisect.bisect_right(mix, u), last) for u in shares], dtype=np.int32)
