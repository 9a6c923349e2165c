"""The event-stepping kernel: one lane is one design in one replication, stepped event by event.

    >>> run = compiled_event_kernel(EventShape(shape, pools=(4, 0)))  # jitted, cached per static shape
    >>> out = run(design, seq, draws, consts)      # vmapped over designs and replications, as ``compiled_kernel``

The scan kernel (``optimizers.kernel``) computes departures batch by batch, which cannot follow a
resource that stations share in time order (operators on shifts). This kernel steps the line's
events in time order in a ``lax.while_loop`` instead, on fixed-size state:

- per unit slot (a station has one for each of its most units, ``EventShape.owner``; a design's units are the first
  ones, ``_active``): its phase (``TAKE`` a batch, wait for its ``CREW``, ``PROCESS``, ``LEAVE``; with the
  cleaning rule also wait for a clean's crew, ``CLEAN``, and ``CLEANING``; with changeovers wait for their crew,
  ``SETUP_CREW``, and ``SETUP``; on the wall clock ``HELD`` or ``AFTER`` by a repair that outlasted the wait for a
  batch or for a place), the batch it holds, when its timed phase ends, when it asked for its crew, the operators it
  holds per pool, its hygiene (``kernel._hygiene_init``), the product it processed last, its failure clock;
- per buffer: the batches waiting in it. A station of one unit passes its batches on in the order it took
  them, so the batches before station j are those station j-1 passed on and j has not taken yet: two counts
  (where batches can leave early or overtake, on several units, also which batch is at each place and its times,
  ``queue`` and ``carried``: a scrapped batch leaves a gap in the numbers, one back from investigation,
  ``returned``, comes in out of order). Units of a station take its batches first come, first served (the time
  each asked, then the order its timeout was scheduled in: ``_take_ranks``, ``_scheduled``), and put them into the
  next buffer in the same order (``_put_order``); they draw from their station's streams in the order the engine's
  processes go on in (``_reorder``), each with its own failure clock and hygiene;
- per operator pool: on shift or not, operators busy (of the design's headcount, an input of each design as the
  buffers are), the next shift change (the engine's clock:
  ``t + (next_change(t) - t)``, ``WeeklyCalendar``'s arithmetic in ``kernel._working``, ``kernel._next_change``);
- per operator, where which one a crew takes matters (``EventShape.members`` places per pool,
  ``lines.operators_one_by_one``: rooms that gown, or a station of several pools on a line with rooms): the room it is
  gowned for, and per station the operators its crew holds.

Each step is one instant: the earliest time any ordinary event is due (a station that can take a batch, the
end of a timed phase, a station that can pass its batch on, a shift change). It runs every event due then, kind
after kind (ends of timed phases, then stations passing batches on, then stations taking them, each kind seeing
what the one before did, then shift changes); what they make possible at the same time (a station blocked until the one
after it took its batch) is due at the same time in the next step. When nothing more is due at the instant,
the step ends with its *serve step* (``twin.engine.rules.arbiter``, docs/batch-rules.md "Who goes first at
one instant"): the waiting crew requests are served in key order (time of request, station index), first
fit (a request that cannot be served yet is passed over by a later one that can), each crew taken from the
station's pools in pool order (``Operators._grant``; followed one by one: those gowned for the station's room
first, across its pools), no more people at work in a room than it allows (the crews its stations hold). A crew
of which one was not gowned for the room gowns: its phase (processing, a clean, a changeover) begins the room's
gowning time after the grant (the engine logs the wait as waiting for operators, no state of the kernel's), the
clean's kind decided then; its operators are gowned for the room until their shift ends. Free operators are
``headcount - busy`` on shift and none off shift: an operator whose shift ends finishes the phase at hand, and a
crew released off shift frees nobody. Every processing start is a serve step's grant (a station that needs no crew
asks for none, which is always granted at the instant it took its batch, as the engine starts it). Which station's
event of an instant runs first does not change a departure: a buffer has one station before it and one after.

Processing draws, operating-basis failures and line OEE's figures (``kernel._processed_on``) and the KPIs
(``kernel._lane_kpis``) are the scan kernel's own functions; the draws are ``lines.draw_inputs``'.
Cleaning is the engine's (``twin.engine.rules.cleaning``), decided by the scan kernel's functions: when a station
takes a batch, a clean first if the equipment stood clean or dirty past its hold time (``kernel._stale``); when it
passes a batch on, the clean after it (``kernel._due_clean``); a clean asks for its crew (the cleaning phase's),
is major when its grant comes later than the dirty-hold time (``kernel._expired``), and runs as ``kernel._clean``.

A batch begins (``_begin``) with the clean before it, if any, then its changeover (``changeovers.change``: a product
other than the station's last, and the pair has a changeover time), then its processing. The changeover asks for
its crew when its ``setup`` phase needs one (else for none); the grant starts it (the pair's ``setup:A->B`` draws
in the order of that pair's changeovers, ``kernel._timed``: failures on the wall clock extend it, operating ones do
not); its end frees the crew and asks for the processing crew at that instant. Failures on the wall clock
(``CalendarClock``) are ``kernel._wait_over`` where the engine calls it (a station that takes a batch, but the
pulling first station; one that passes its batch on after being blocked, whose repair hold comes before the clean
after it: ``_after``; a wait under way at the end) and ``kernel._calendar_work`` for processing, changeovers and
cleans: a failure that fell due while a crew kept the station waiting is repaired within the phase that crew
starts, as the engine does (the engine logs it then, with that phase's state after the repair: where that happens,
the station's state shares are not the engine's).
Hold times that scrap (``twin.engine.rules.holds``): when a hold's first station passes a batch on, the batch's
clock starts (it goes with the batch: ``holding``, ``carried``); when the hold's last station takes it later than the
maximum after that (``holds_kept``'s test), the batch is scrapped: it leaves the line there and then (a reject in the
window, ``last_out``), asks for no crew, and the station takes its next batch at the same instant, as the engine's
take loop does. The exits skip it. A hold that investigates instead (the first late hold of the station, in order,
decides) sends the batch to investigation at that instant: its clocks from that hold's first station stop, and it
comes back into the station's buffer after the hold's next investigation time (``_investigate``; a lane keeps
``EventShape.returns`` batches in investigation, and the evaluator runs it again with more when it needed more).
Its put waits its turn (``_put_order``, ``Buffer``: first come, first served) behind the pass-ons of the station
before that asked first: their processing ended earlier, or at the same time but its timeout was scheduled before
the batch was sent (SimPy's order of the two timeouts).
QC release after the line shares nothing with it (the analysts are their own pool): a lane with QC keeps each exit's
time and release time (``_count_exit``, written into the array of every exit once per chunk of exits: ``_in_chunks``;
without QC, running totals only) and after the loop runs the scan kernel's stage and totals on them (``_qc_totals``).
Scope (``lines.events_outside``): serial lines of stations of one unit or several, finite or unlimited buffers,
every release mode, products, failures on either clock, rate-based stations, yields and rejects, changeovers (with
their major cleans, decided by looking at the next batch when it is known, and line clearances), cleaning (on
shared skids too), rooms (headcounts; gowning and stations of several pools on single units where no hold
investigates), operator pools on shift calendars (the crews of processing, changeovers and cleaning), hold times
that scrap or investigate (not ending at a station on the wall clock), QC release, the release gate of a pulling first
station of one unit (a release calendar and a WIP limit: ``_gate``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optimizers.kernel import (
    INF,
    STATES,
    Shape,
    _clean,
    _div,
    _due_clean,
    _exit_totals,
    _expired,
    _hygiene_init,
    _in_window,
    _lane_kpis,
    _next_change,
    _overlap,
    _processed,
    _processed_on,
    _qc_stage,
    _recorded,
    _release_gate,
    _stale,
    _timed,
    _wait_over,
    _with_levers,
    _working,
    out_of_failures,
    out_of_places,
    over_designs,
    with_gradient,
)

CHUNK = 64  # with QC, exits kept in the loop before they are written into the array of every exit (``_in_chunks``)

# a station's phase: take a batch, wait for the processing crew, process, pass the batch on, wait for a clean's crew,
# clean (then ``then``: the changeover or the processing crew after a clean before the batch, take the next after one
# after it) (a clean on a shared skid waits for the skid first, ``SKID``); wait for the changeover's crew, change
# over; a repair that outlasted the wait for a batch (then the batch begins: ``_begin``) or the wait for a place
# downstream (then the clean after the batch, or the next batch: ``_after``)
TAKE, CREW, PROCESS, LEAVE, CLEAN, CLEANING, SKID, SETUP_CREW, SETUP, HELD, AFTER = range(11)
CHANGE = 11  # (passing: after a clean before the batch, the changeover's major clean is decided, ``_change_clean``)


@dataclass(frozen=True)
class EventShape:
    """The scan kernel's ``Shape`` (sizes, products, release, failures, recording) and, per operator pool, the
    number of edges of its weekly calendar (0: always on shift)."""

    base: Shape
    pools: tuple[int, ...]
    ring: int = 0  # release times (pulled batches) or buffer places kept, > the batches the line holds at once; 0: all
    investigated: tuple[int, ...] = ()  # the hold times (indices in ``base.holds``) that investigate a late batch
    returns: int = 8  # with those, the batches a lane can have in investigation at once (``returns_used``)
    weeks: int = 0  # weeks of the pools' shift changes a lane may step through (at least the horizon's)
    members: int = 0  # operators followed one by one per pool (the most headcount of any design; 0: counts only)
    shifts_like: tuple[int, ...] = ()  # per pool, the first pool on its calendar (``lines.pool_shifts_like``; (): own)

    @property
    def owner(self) -> tuple[int, ...]:
        """The station of each unit slot: a station has a slot for each of its most units (``base.max_units``), in
        station order; a design's units are the first slots of their station (``_active``)."""
        return tuple(j for j, c in enumerate(self.base.max_units) for _ in range(max(c, 1)))

    @property
    def unit(self) -> tuple[int, ...]:
        """Each slot's unit at its station."""
        return tuple(i for c in self.base.max_units for i in range(max(c, 1)))

    @property
    def multi(self) -> bool:
        """Some station may have several units."""
        return len(self.owner) > self.base.stations

    @property
    def kept(self) -> int:
        """How many release times a lane keeps, by batch modulo (a line of single units lets its batches out in the
        order it took them: a batch's slot is free once it has left). With hold times, the places of each buffer, by
        place modulo (a scrapped batch leaves a gap in the numbers: the batch goes with its times, ``carried``)."""
        return self.ring if 0 < self.ring < self.base.batches else self.base.batches

    @property
    def steps(self) -> int:
        """Most steps of a lane (a step is an instant, or a station's cascade within one): a few per batch and unit,
        plus every shift change of the pools over ``weeks``; only a line whose crews can never be served reaches it."""
        return 16 * self.base.batches * len(self.owner) + self.weeks * sum(self.pools) + 4096


def _slots(x: jax.Array, shape: EventShape) -> jax.Array:
    """Per-station values ``x`` for each unit slot."""
    return x[jnp.asarray(shape.owner)] if shape.multi else x


def _per_station(x: jax.Array, shape: EventShape) -> jax.Array:
    """Per-slot values ``x`` summed per station."""
    if not shape.multi:
        return x
    zero = jnp.zeros((shape.base.stations, *x.shape[1:]), x.dtype)
    return zero.at[jnp.asarray(shape.owner)].add(x)


def _active(design: dict[str, Any], shape: EventShape) -> jax.Array | bool:
    """The slots that are units of the design (the first of each station's)."""
    if not shape.multi:
        return True
    return jnp.asarray(shape.unit) < _slots(design["units"], shape)


def _ranks(mask: jax.Array, key: jax.Array, key2: jax.Array, group: Any) -> jax.Array:
    """Each item's place among the ``mask``ed items of its ``group`` in order of (``key``, ``key2``, index)."""
    index = jnp.arange(mask.shape[0])
    k1, k2 = jnp.where(mask, key, INF), jnp.where(mask, key2, INF)
    lower = (k1[None, :] < k1[:, None]) | ((k1[None, :] == k1[:, None]) & (
        (k2[None, :] < k2[:, None]) | ((k2[None, :] == k2[:, None]) & (index[None, :] < index[:, None]))))
    same = jnp.asarray(group)[None, :] == jnp.asarray(group)[:, None]
    return jnp.sum(same & mask[None, :] & lower, axis=1, dtype=jnp.int32)


def _reorder(go: jax.Array, match: jax.Array, rank: jax.Array, shape: EventShape) -> jax.Array | int:
    """For each slot: how many of its station's slots ``go`` (and ``match`` it, [slot, slot]) come before it in
    ``rank`` order, less those before it in slot order. A loop over slots in slot order that counts draws adds this
    to have them in ``rank`` order, the order in which the engine's processes go on (0 on single units)."""
    if not shape.multi:
        return 0
    owner = jnp.asarray(shape.owner)
    same = (owner[None, :] == owner[:, None]) & match & go[None, :]
    index = jnp.arange(owner.shape[0])
    ahead = jnp.sum(same & (rank[None, :] < rank[:, None]), axis=1, dtype=jnp.int32)
    return ahead - jnp.sum(same & (index[None, :] < index[:, None]), axis=1, dtype=jnp.int32)


def _unit(s: dict[str, Any], i: int) -> dict[str, Any]:
    """Station dict ``s`` as its unit ``i`` sees it: that unit's hygiene (the clean draws stay the station's)."""
    if "hygienes" not in s:
        return s
    return {**s, "hygiene": {**s["hygiene"], **{k: v[i] for k, v in s["hygienes"].items()}}}


def _unit_back(s: dict[str, Any], view: dict[str, Any], i: int) -> dict[str, Any]:
    """``view`` (``_unit(s, i)``, changed) written back into the station's dict."""
    if "hygienes" not in s:
        return view
    h = view["hygiene"]
    hygienes = {k: v.at[i].set(h[k]) for k, v in s["hygienes"].items()}
    return {**view, "hygiene": {**s["hygiene"], "drawn": h["drawn"]}, "hygienes": hygienes}


def _timed_phase(phase: jax.Array, shape: EventShape) -> jax.Array:
    """Phases that end at ``fin`` (those the shape can have: processing; cleans, changeovers, repair holds)."""
    base = shape.base
    timed = phase == PROCESS
    for kind, present in ((CLEANING, any(base.cleans(j) for j in range(base.stations))), (SETUP, any(base.has_setup)),
                          (HELD, any(base.calendar_failures)), (AFTER, any(base.calendar_failures))):  # fmt: skip
        if present:
            timed = timed | (phase == kind)
    return timed


def _puts(st) -> jax.Array:
    """The batches put into each station's buffer so far, from the second station on: those the station before passed
    on, and those back from investigation (``returned``)."""
    return st["left"][:-1] + st["returned"][1:] if "returned" in st else st["left"][:-1]


def _idle(st, design, shape) -> jax.Array:
    """The slots waiting for a batch (units of the design)."""
    return (st["phase"] == TAKE) & _active(design, shape)


def _take_ranks(st, idle, shape) -> jax.Array:
    """Each waiting slot's place among its station's (``Buffer``'s gets, first come, first served: the time it asked,
    then the slot): the batch it takes is that many after its station's next."""
    if not shape.multi:
        return jnp.zeros(idle.shape, jnp.int32)
    return _ranks(idle, st["idle_at"], st["sched"], shape.owner)


def _free_places(st, idle, design, shape) -> jax.Array:
    """Places each buffer (after the first station) has for a put now: its places, and the units waiting for a batch,
    less the batches in it (``Buffer``'s put; unlimited: many)."""
    b, waiting = design["buffers"][1:], _puts(st) - st["taken"][1:]
    idle_n = _per_station(jnp.asarray(idle, jnp.int32), shape)[1:] if shape.multi else idle[1:].astype(jnp.int32)
    return jnp.where(b < 0, shape.base.batches + len(shape.owner), b + idle_n - waiting)


def _put_order(st, free, shape) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Which pass-ons (per slot) and puts back from investigation (per investigation slot) go now, and each one's
    place among the puts into its buffer: ``Buffer``'s puts, first come, first served, as many as it has places
    (``free``). A pass-on's put is asked when its processing ends, a batch back from investigation's at its return:
    at one instant, in the order their timeouts were scheduled (``_scheduled``). Out of the line: always."""
    t, owner = st["t"], jnp.asarray(shape.owner)
    blocked = st["phase"] == LEAVE
    space = jnp.concatenate([free, jnp.full(1, shape.base.batches + len(shape.owner))])  # [station after]
    if not shape.multi and not shape.investigated:  # (one pass-on per buffer at most)
        go = blocked & (space[owner] > 0)
        return go, jnp.zeros(0, bool), jnp.zeros(owner.shape[0], jnp.int32), jnp.zeros(0, jnp.int32)
    target, key, key2, mask = owner + 1, jnp.where(blocked, st["fin"], INF), st["sched"], blocked
    kind = jnp.zeros(owner.shape[0], jnp.int32)
    if shape.investigated:
        back = st["back_at"] <= t
        target = jnp.concatenate([target, st["back_to"]])
        key, key2 = jnp.concatenate([key, st["back_at"]]), jnp.concatenate([key2, st["back_seq"]])
        mask, kind = jnp.concatenate([mask, back]), jnp.concatenate([kind, jnp.ones(back.shape[0], jnp.int32)])
    rank = _ranks(mask, key, 2.0 * key2 + kind, target)  # (ties of both: the pass-on first, then by slot)
    go = mask & (rank < space[target - 1])
    u = owner.shape[0]
    return go[:u], go[u:], rank[:u], rank[u:]


def _due(st: dict[str, Any], shape: EventShape, design: dict[str, Any], draws: dict[str, Any], n_in,
         consts: dict[str, Any]) -> jax.Array:
    """When each slot's next ordinary event happens (inf: none until another event), then each pool's shift change,
    then each investigation's return. A slot taking or passing on a batch does so now if it can (it could not
    earlier); a pulling first station behind a release gate when the gate opens (``_gate``)."""
    base, t, phase, owner = shape.base, st["t"], st["phase"], jnp.asarray(shape.owner)
    idle = _idle(st, design, shape)
    next_k = _slots(st["taken"], shape) + _take_ranks(st, idle, shape)  # the batch each waiting slot would take
    if base.pull:
        first = _gate(st, shape, design, consts)[1] if _gated(shape) else t
    else:
        first = jnp.maximum(t, draws["arrivals"][jnp.minimum(next_k, base.batches - 1)])
    waiting = jnp.concatenate([jnp.zeros(1, jnp.int32), _puts(st)]) - st["taken"]  # (station 0: unused)
    queued = next_k < _slots(st["taken"] + waiting, shape)
    take = jnp.where(owner == 0, jnp.where(next_k < n_in, first, INF), jnp.where(queued, t, INF))
    passes, back, _, _ = _put_order(st, _free_places(st, idle, design, shape), shape)
    timed = _timed_phase(phase, shape)
    times = jnp.select([idle, timed, phase == LEAVE], [take, st["fin"], jnp.where(passes, t, INF)], INF)
    if not shape.investigated:
        return jnp.concatenate([times, st["shift_at"]])
    at = st["back_at"]
    return jnp.concatenate([times, st["shift_at"], jnp.where(at > t, at, jnp.where(back, t, INF))])


def _gated(shape: EventShape) -> bool:
    """The pulling first station waits at a release gate (``ReleaseGate``): a release calendar, a WIP limit."""
    base = shape.base
    return base.pull and bool(base.release_calendar or base.wip)


def _wip(st, shape: EventShape, consts) -> jax.Array:
    """The released batches that count towards the WIP limit (``ReleaseGate.waiting``): released (taken by the first
    station), less those that started processing at the limit's station and those that left the line before
    (``wip_gone``: scrapped or rejected before it, scrapped when it took them). One in investigation still counts.
    A start is a grant there (its processing draws; ``lines.events_outside`` keeps out a crew that gowns first), or
    a slot there that asks for no processing crew: the engine starts it at once, before the instant's serve step."""
    station = shape.base.wip[1]
    at = jnp.asarray(shape.owner) == station
    crewless = jnp.sum(at & (st["phase"] == CREW) & (consts["pools"]["need"] == 0), dtype=jnp.int32)
    return st["taken"][0] - jnp.sum(st["stations"][station]["count"]) - crewless - st["wip_gone"]


def _wip_left(st, gone, shape: EventShape, before: int) -> dict[str, Any]:
    """Slots ``gone`` let their batches out of the line early (``ReleaseGate.left``): those of stations before
    ``before`` free a place under the WIP limit."""
    if "wip_gone" in st:
        early = gone & (jnp.asarray(shape.owner) < before)
        st["wip_gone"] = st["wip_gone"] + jnp.sum(early, dtype=jnp.int32)
    return st


def _gate(st, shape: EventShape, design, consts) -> tuple[jax.Array, jax.Array]:
    """The pulling first station's (one unit) release gate now (``ReleaseGate.wait``): (the time its calendar wait
    counts from, when it releases its next batch). It waits for the release calendar's working time from when it
    asked for the batch (``gate_from``; ``kernel._release_gate``'s arithmetic), then, while the WIP limit is reached,
    for a place to be freed (``gate_full``: it was at the end of the last step; freed now, it wakes now and waits for
    the calendar from now), then for the calendar again."""
    t, base = st["t"], shape.base
    cal = (lambda x: _release_gate(x, consts["release_calendar"], base.release_calendar)) if base.release_calendar \
        else (lambda x: x)  # fmt: skip
    if not base.wip:
        return st["gate_from"], cal(st["gate_from"])
    room = _wip(st, shape, consts) < design["wip_limit"]
    woken = st["gate_full"] & room & (cal(st["gate_from"]) <= t)
    since = jnp.where(woken, t, st["gate_from"])
    return since, jnp.where(room, cal(since), INF)


def _take(st, on, shape, design, seq, draws, consts, w0, w1):
    """Slots ``on`` take their next batch (the first station: releases it, or takes the next arrival), or scrap
    it or send it to investigation when one of its hold times ran out (``_scrap``: the slot takes the next one at
    the same instant); on the wall clock, the failures of the wait (``RulesUnit._ready``: a repair under way holds the
    unit, ``HELD``); then the batch begins (``_begin``)."""
    base, t, owner = shape.base, st["t"], jnp.asarray(shape.owner)
    rank = _take_ranks(st, _idle(st, design, shape), shape)
    k = _slots(st["taken"], shape) + rank  # each slot's place in its station's batches (or buffer)
    st = _scheduled(st, on, rank)  # (a batch handed over is an event: the unit goes on in that order)
    taken, batch = on, k
    if _gaps(shape):  # (a hold never ends at a station on the wall clock: ``lines.events_outside``)
        batch, times = _from_buffers(st, k, shape, draws)
        late, st = _scrap(st, on, batch, times, shape, draws, consts, w0, w1)
        taken = on & ~late
        st["holding"] = jnp.where(taken[None, :], times, st["holding"])
        if shape.multi:  # a slot that did not keep its batch asks for the next one now, after the others waiting
            st["idle_at"] = jnp.where(late, t, st["idle_at"])
    st["batch"] = jnp.where(taken, batch, st["batch"])
    st["taken"] = st["taken"] + _per_station(jnp.asarray(on, jnp.int32), shape)
    if any(base.has_setup):  # a changeover when the product changes (``changeovers.change``), decided now
        p = seq[batch] if base.products > 1 else jnp.zeros_like(k)
        pa = jnp.maximum(st["prev"], 0)
        pair = (owner, pa, p)
        exists = consts["setup_exists"][pair] | consts["change_clearance"][pair]  # (the changeover's crew phase)
        st["change"] = jnp.where(taken, (st["prev"] >= 0) & exists, st["change"])
        if "change_clean" in st:  # the change needs a major clean (done unless one was done since the last batch)
            st["change_clean"] = jnp.where(taken, (st["prev"] >= 0) & consts["change_major"][pair], st["change_clean"])
        st["from"] = jnp.where(taken, st["prev"], st["from"])  # (the changeover's pair: from, to the batch's product)
        st["prev"] = jnp.where(taken, p, st["prev"])
    held = jnp.zeros_like(on)
    for u, (j, i) in enumerate(zip(shape.owner, shape.unit, strict=True)):
        if base.on_calendar(j) and not (j == 0 and base.pull):  # (the pulling first station does not wait)
            s = st["stations"][j] = dict(st["stations"][j])
            ready, nf, f, down, _ = _wait_over(t, s["nf"][i], s["f"][i], draws["ttf"][j], draws["ttr"][j], i,
                                               taken[u], w0, w1)  # fmt: skip
            s["nf"], s["f"], s["acc"] = s["nf"].at[i].set(nf), s["f"].at[i].set(f), s["acc"].at[2].add(down)
            held = held.at[u].set(taken[u] & (ready > t))
            st["fin"] = st["fin"].at[u].set(jnp.where(held[u], t + (ready - t), st["fin"][u]))
    st["phase"] = jnp.where(held, HELD, st["phase"])
    st = _scheduled(st, held, rank)
    st = _begin(st, taken & ~held, shape, consts)
    if base.pull:  # the release time of a pulled batch is now (an arrival's is drawn: ``_released``)
        at = jnp.mod(k, shape.kept)
        st["released"] = st["released"].at[jnp.where(on & (owner == 0), at, shape.kept)].set(t, mode="drop")
    return st


def _from_buffers(st, k, shape, draws) -> tuple[jax.Array, jax.Array]:
    """Where batches can leave the line early or overtake each other, the batch each slot takes next (its place in its
    station's batches, ``k``) and its times (``carried``: its release, then when it left each hold's first station;
    inf: not yet): the first station's next batches, the others' at their places in their buffers (``queue``; a
    scrapped batch leaves a gap in the numbers)."""
    base, t, owner = shape.base, st["t"], jnp.asarray(shape.owner)
    place = jnp.mod(k, shape.kept)
    released = t if base.pull else draws["arrivals"][jnp.minimum(k, base.batches - 1)]
    first = jnp.concatenate([jnp.broadcast_to(released, owner.shape)[None], jnp.full((len(base.holds), owner.shape[0]),
                                                                                      INF)])  # fmt: skip
    batch = jnp.where(owner > 0, st["queue"][owner, place], k)
    return batch, jnp.where(owner[None, :] > 0, st["carried"][:, owner, place], first)


def _gaps(shape: EventShape) -> bool:
    """Batches can leave the line before its end (scrapped by a hold time, rejected at the end of processing) or
    overtake each other (several units): the buffers keep which batch is at each place and the batches carry their
    times."""
    base = shape.base
    return bool(base.holds) or any(base.rejects(j) for j in range(base.stations)) or shape.multi


def _reject(st, on, shape, draws, consts, w0, w1) -> tuple[jax.Array, dict[str, Any]]:
    """Which slots ``on``, at the end of processing, reject the whole batch (``quality.after_processing``: one
    draw per batch processed, in the order processing ends): it leaves the line now (a reject in the window,
    ``last_out``)."""
    base = shape.base
    rejected = jnp.zeros_like(on)
    order = _reorder(on, True, _ranks(on, st["fin"], st["sched"], shape.owner), shape) if shape.multi else 0
    for u, j in enumerate(shape.owner):
        if base.rejects(j):
            s = st["stations"][j] = dict(st["stations"][j])
            done = s["finished"] + (order[u] if shape.multi else 0)  # batches processed before
            drawn = jnp.minimum(done, draws["reject"].shape[-1] - 1)
            rejected = rejected.at[u].set(on[u] & (draws["reject"][j, drawn] < consts["quality"][j, 1]))
            s["finished"] = s["finished"] + jnp.where(on[u], 1, 0)
    st = _wip_left(st, rejected, shape, shape.base.wip[1] if shape.base.wip else 0)  # (started there: not counted)
    return rejected, _out_early(st, rejected, shape, w0, w1)


def _out_early(st, gone, shape, w0, w1) -> dict[str, Any]:
    """The batches of slots ``gone`` leave the line now, before its end (scrapped or rejected): a reject at the
    station (``last_out``), in the window's ``rejected`` (``kernel._in_window``), and out for a finite plan's end."""
    t, base = st["t"], shape.base
    for u, j in enumerate(shape.owner):
        if base.rejects(j) or base.holds_at(j):  # (the stations whose batches can leave early)
            s = st["stations"][j]
            st["stations"][j] = {**s, "last_out": jnp.where(gone[u], jnp.maximum(s["last_out"], t), s["last_out"])}
    st["scrapped"] = st["scrapped"] + jnp.sum(gone, dtype=jnp.int32)
    st["rejected"] = st["rejected"] + jnp.sum(gone & _in_window(t, w0, w1))
    return st


def _scrap(st, on, batch, times, shape, draws, consts, w0, w1) -> tuple[jax.Array, dict[str, Any]]:
    """Which slots ``on`` do not go on with the batch they take (``holds.holds_kept``: taken later than a hold's
    maximum after it left the hold's first station, ``times``; the first such hold in order decides): it leaves the
    line (``_out_early``), or goes to investigation (``_investigate``)."""
    t, holds, owner = st["t"], shape.base.holds, jnp.asarray(shape.owner)
    late, decides = jnp.zeros_like(on), jnp.zeros(on.shape, jnp.int32)
    for h in reversed(range(len(holds))):  # (the first late hold of a slot, last written)
        over = on & (owner == holds[h][1]) & (t - times[1 + h] > consts["hold_max"][h])
        late, decides = late | over, jnp.where(over, h, decides)
    upto = shape.base.wip[1] + 1 if shape.base.wip else 0  # (scrapped when taken: not started at the limit's station)
    if not shape.investigated:
        return late, _out_early(_wip_left(st, late, shape, upto), late, shape, w0, w1)
    sent = late & jnp.isin(decides, jnp.asarray(shape.investigated))
    st = _out_early(_wip_left(st, late & ~sent, shape, upto), late & ~sent, shape, w0, w1)
    return late, _investigate(st, sent, decides, batch, times, shape, draws)


def _investigate(st, sent, decides, batch, times, shape, draws) -> dict[str, Any]:
    """Slots ``sent`` send the batch they took to investigation under hold ``decides`` (``HoldClocks.investigate``):
    its clocks from that hold's first station stop; it comes back to the station's buffer after the hold's next
    investigation time (``draws["investigation"]``, in the order of that hold's investigations), in a free slot."""
    t, holds = st["t"], shape.base.holds
    targets = {holds[h][1] for h in shape.investigated}
    for u in (u for u, j in enumerate(shape.owner) if j in targets):
        h = decides[u]
        free = st["back_at"] == INF
        slot = jnp.argmax(free)
        go = sent[u] & free[slot]
        delay = draws["investigation"][h, jnp.minimum(st["investigations"][h], draws["investigation"].shape[-1] - 1)]
        source = jnp.asarray([s for s, _ in holds])
        carried = jnp.where(jnp.concatenate([jnp.zeros(1, bool), source == source[h]]), INF, times[:, u])
        st["back_at"] = st["back_at"].at[slot].set(jnp.where(go, t + delay, st["back_at"][slot]))
        st["back_to"] = st["back_to"].at[slot].set(jnp.where(go, shape.owner[u], st["back_to"][slot]))
        st["back_batch"] = st["back_batch"].at[slot].set(jnp.where(go, batch[u], st["back_batch"][slot]))
        st["back_times"] = st["back_times"].at[:, slot].set(jnp.where(go, carried, st["back_times"][:, slot]))
        st["back_seq"] = st["back_seq"].at[slot].set(jnp.where(go, st["seq"], st["back_seq"][slot]))
        st["seq"] = st["seq"] + jnp.where(go, 1, 0)
        st["investigations"] = st["investigations"].at[h].add(jnp.where(sent[u], 1, 0))
        # (no free slot: the lane reports twice the places it has, and the evaluator runs it again with more)
        used = jnp.sum(st["back_at"] < INF, dtype=jnp.int32) + jnp.where(sent[u] & ~go, shape.returns, 0)
        st["returns_used"] = jnp.maximum(st["returns_used"], used)
    return st


def _put(st, passes, back, rank, rank_back, shape) -> dict[str, Any]:
    """Slots ``passes`` put their batches into the next buffer, and investigation slots ``back`` theirs into their
    station's, each at its place (``rank``: after the buffer's puts so far), with their times; then count them."""
    n, owner = shape.base.stations, jnp.asarray(shape.owner)
    puts = jnp.concatenate([jnp.zeros(1, jnp.int32), _puts(st)])  # [station]
    into = jnp.where(passes & (owner < n - 1), owner + 1, n)  # (n: nowhere)
    place = jnp.mod(puts[jnp.minimum(into, n - 1)] + rank, shape.kept)
    st["queue"] = st["queue"].at[into, place].set(st["batch"], mode="drop")
    st["carried"] = st["carried"].at[:, into, place].set(st["holding"], mode="drop")
    if shape.investigated:
        to = jnp.where(back, st["back_to"], n)
        place = jnp.mod(puts[jnp.minimum(to, n - 1)] + rank_back, shape.kept)
        st["queue"] = st["queue"].at[to, place].set(st["back_batch"], mode="drop")
        st["carried"] = st["carried"].at[:, to, place].set(st["back_times"], mode="drop")
        st["returned"] = st["returned"].at[to].add(1, mode="drop")
        st["back_at"] = jnp.where(back, INF, st["back_at"])
    return st


def _released(st, batch, shape, draws) -> jax.Array:
    """When ``batch`` was released (it is in the line, or has just left it)."""
    if shape.base.pull:
        return st["released"][jnp.mod(batch, shape.kept)]
    return draws["arrivals"][jnp.minimum(batch, shape.base.batches - 1)]


def _count_exit(st, on, u, shape, seq, draws, consts, w0, w1):
    """Slot ``u`` of the last station passes its batch out of the line (when ``on``): the running totals
    ``kernel._lane_kpis`` takes (``kernel._exit_totals``: exits in the window, their lead times, first and last,
    units per product); with QC, its time and its release time instead, by exit count, in the chunk's ``recent``
    (``_in_chunks``)."""
    t, out = st["t"], st["batch"][u]
    released = st["holding"][0, u] if _gaps(shape) else _released(st, out, shape, draws)
    st["left"] = st["left"].at[-1].add(jnp.where(on, 1, 0))
    if shape.base.qc:
        at = st["left"][-1] - 1 - st["chunk"]
        row = jnp.stack([t, released, out.astype(t.dtype)])
        st["recent"] = st["recent"].at[at].set(jnp.where(on, row, st["recent"][at]))
        return st
    p = seq[out] if shape.base.products > 1 else jnp.zeros((), jnp.int32)
    counted = on & _in_window(t, w0, w1)
    st["count"] = st["count"] + counted
    st["lead_sum"] = st["lead_sum"] + jnp.where(counted, t - released, 0.0)
    st["first"] = jnp.where(counted, jnp.minimum(st["first"], t), st["first"])
    st["final"] = jnp.where(counted, t, st["final"])
    st["made"] = st["made"] + jnp.where(counted & (jnp.arange(shape.base.products) == p), consts["qty_in"][-1, p], 0.0)
    st["last_exit"] = jnp.where(on, t, st["last_exit"])
    return st


def _qc_totals(final, shape: EventShape, seq, draws, consts) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """QC release after the line (``kernel._qc_stage``) on the exits a lane kept, and what the KPIs need of them
    (``kernel._exit_totals``), as the scan kernel computes them: (totals, outputs per exit). Each exit's row holds its
    time, its release time and its batch (a scrapped batch leaves a gap in the numbers): ``exit_batch`` is the exit's
    place, which indexes its release time."""
    base = shape.base
    index = jnp.arange(base.batches, dtype=jnp.int32)
    exit_t = final["exits"][: base.batches, 0]
    batch = jnp.where(exit_t < INF, final["exits"][: base.batches, 2], 0.0).astype(jnp.int32)
    product = seq[batch] if base.products > 1 else jnp.zeros(base.batches, jnp.int32)
    ys = {"exit": exit_t, "exit_valid": exit_t < INF, "exit_batch": index, "exit_product": product,
          "exit_qty": consts["qty_in"][-1][product], "release": final["exits"][: base.batches, 1]}  # fmt: skip
    ys.update(_qc_stage(base, exit_t, ys["exit_valid"], draws, consts))
    return _exit_totals(base, ys, consts), {**ys, "exit_number": jnp.where(exit_t < INF, batch, base.batches)}


def _batched_like(state: dict[str, Any], design: dict[str, Any], draws: dict[str, Any]) -> dict[str, Any]:
    """``state``, each value mapped over every axis the lane is vmapped over (designs, replications), as the loop
    makes it after a step anyway. Vmapping a loop whose first state is partly unmapped batches its body once per value
    found mapped late, and nested loops multiply that: the lane traced several times slower."""
    a, b = jax.tree.leaves(design)[0].ravel()[0], jax.tree.leaves(draws)[0].ravel()[0]
    mapped = (a == a) | (b == b)  # (true: only its mapping matters)
    return jax.tree.map(lambda x: jnp.where(mapped, x, x), state)


def _in_chunks(going, step, state):
    """``lax.while_loop(going, step, state)`` in chunks of at least ``CHUNK`` exits, each written into ``exits``
    (every exit's time and release time) at its end: vmapped, a write into an array of every batch is a copy of it
    per lane, which in every step would cost more than the rest of the step. (A step lets out at most one batch per
    unit of the last station: ``recent`` has room for a chunk and one step more.)"""

    def chunk(st):
        done = st["chunk"] = st["left"][-1]  # exits before this chunk
        st = jax.lax.while_loop(lambda s: going(s) & (s["left"][-1] < done + CHUNK), step, st)
        st["exits"] = jax.lax.dynamic_update_slice(st["exits"], st["recent"], (done, jnp.zeros((), done.dtype)))
        st["recent"] = jnp.full_like(st["recent"], INF)
        return st

    return jax.lax.while_loop(going, chunk, state)


def _cleaning(shape: EventShape) -> list[tuple[int, int, int]]:
    """The slots of stations with the cleaning rule: (slot, station, unit)."""
    return [(u, j, i) for u, (j, i) in enumerate(zip(shape.owner, shape.unit, strict=True)) if shape.base.cleans(j)]


def _ask_clean(st, u, on, major, then, consts):
    """Slot ``u`` asks for a clean now (when ``on``; ``major``: the kind decided so far): its skid first if that
    kind of clean uses one, then its crew; then it goes on to phase ``then``."""
    pools = consts["pools"]
    skid = jnp.any(pools["on_skid"][u]) & jnp.where(major, pools["skid_major"][u], pools["skid_minor"][u])
    st["phase"] = st["phase"].at[u].set(jnp.where(on, jnp.where(skid, SKID, CLEAN), st["phase"][u]))
    st["then"] = st["then"].at[u].set(jnp.where(on, then, st["then"][u]))
    st["major"] = st["major"].at[u].set(jnp.where(on, major, st["major"][u]))
    return st


def _begin(st, on, shape, consts):
    """Slots ``on`` begin their batch now: a clean first where the equipment stood clean or dirty past its hold
    time (``kernel._stale``), then the changeover when the product changes (its crew asked for: ``SETUP_CREW``), then
    the processing crew (a phase that needs no crew asks for none: granted by the serve step)."""
    t = st["t"]
    then = jnp.where(st["change"], SETUP_CREW, CREW) if "change" in st else jnp.full_like(st["phase"], CREW)
    st["asked"] = jnp.where(on, t, st["asked"])  # (the phase: ``_ask_clean`` or ``_change_clean``)
    stale = jnp.zeros_like(on)
    for u, j, i in _cleaning(shape):
        need, major = _stale(t, _unit(st["stations"][j], i), j, consts)
        st = _ask_clean(st, u, on[u] & need, major, CHANGE if shape.base.change_cleans(j) else then[u], consts)
        stale = stale.at[u].set(on[u] & need)
    return _change_clean(st, on & ~stale, shape, consts)


def _change_clean(st, on, shape, consts):
    """Slots ``on`` go on to their changeover (or processing): first its major clean where the change needs one
    and none was done since the last batch (``changeovers.change``)."""
    then = jnp.where(st["change"], SETUP_CREW, CREW) if "change" in st else jnp.full_like(st["phase"], CREW)
    st["phase"] = jnp.where(on, then, st["phase"])
    st["asked"] = jnp.where(on, st["t"], st["asked"])
    for u, j, i in _cleaning(shape):
        if shape.base.change_cleans(j):
            need = on[u] & st["change_clean"][u] & ~_unit(st["stations"][j], i)["hygiene"]["major_since"]
            st = _ask_clean(st, u, need, jnp.bool_(True), then[u], consts)
    return st


def _next_change_major(st, u: int, idle, shape: EventShape, consts) -> jax.Array:
    """The batch that will come next to slot ``u``'s station is already known (``runtime.next_product``: the release
    plan's next at a pulling first station, else the first batch waiting in its buffer that no waiting unit claimed)
    and the change to it from the batch just done needs a major clean."""
    base, t, j = shape.base, st["t"], shape.owner[u]
    k = st["taken"][j] + (_per_station(jnp.asarray(idle, jnp.int32), shape)[j] if shape.multi else 0)
    if j == 0 and base.pull:  # (a mix's next product is not known: only a plan's)
        known, batch = jnp.bool_(base.seq_from_design) & (k < consts["n_in"]), k
    elif j == 0:
        known, batch = consts["arrivals"][jnp.minimum(k, base.batches - 1)] <= t, k
    else:
        known = _puts(st)[j - 1] > k
        batch = st["queue"][j, jnp.mod(k, shape.kept)] if "queue" in st else k
    upcoming = consts["seq"][jnp.minimum(batch, base.batches - 1)] if base.products > 1 else 0
    return known & consts["change_major"][j, jnp.maximum(st["prev"][u], 0), upcoming]


def _after(st, on, shape, design, consts):
    """Slots ``on`` are done with their batch now: the clean after it, if any (``kernel._due_clean``), then the
    next batch."""
    t = st["t"]
    idle = _idle(st, design, shape)
    st["phase"] = jnp.where(on, TAKE, st["phase"])
    for u, j, i in _cleaning(shape):
        change_major = _next_change_major(st, u, idle, shape, consts) if shape.base.change_cleans(j) else False
        cleans, major = _due_clean(t, _unit(st["stations"][j], i), j, consts, change_major)
        st["asked"] = st["asked"].at[u].set(jnp.where(on[u] & cleans, t, st["asked"][u]))
        st = _ask_clean(st, u, on[u] & cleans, major, TAKE, consts)
    return st


def _ended(st, on, shape, design, draws, consts, w0, w1):
    """Slots ``on`` end a timed phase now. Processing: its crew goes (back to work if on shift: ``_free``), the
    batch is passed on. A clean: its crew and skid place go, then the phase it was for (a changeover's or the
    processing crew asked for now, or the next batch). The changeover: its crew goes, the processing crew is asked for.
    A repair after the wait for a batch: the batch begins (``_begin``); after the wait for a place: ``_after``. A
    batch rejected at the end of processing (``_reject``) leaves the line: the slot goes on to ``_after``."""
    phase, t = st["phase"], st["t"]
    release = on & ((phase == PROCESS) | (phase == CLEANING) | (phase == SETUP))
    st["busy"] = st["busy"] - jnp.sum(jnp.where(release[:, None], st["crew"], 0), axis=0, dtype=jnp.int32)
    st["crew"] = jnp.where(release[:, None], 0, st["crew"])
    then = st.get("then", CREW)
    cleaned = on & (phase == CLEANING)
    asks = (on & (phase == SETUP)) | (cleaned & ((then == CREW) | (then == SETUP_CREW)))
    st["asked"] = jnp.where(asks, t, st["asked"])
    if "on_skid" in st:  # a clean's skid goes back
        st["on_skid"] = st["on_skid"] & ~cleaned
    if "change_clean" in st:  # after a clean before the batch: the changeover's major clean, if due
        st = _change_clean(st, cleaned & (then == CHANGE), shape, consts)
        cleaned = cleaned & (then != CHANGE)
    st["phase"] = jnp.select([on & (phase == PROCESS), cleaned, on & (phase == SETUP)], [LEAVE, then, CREW],
                             st["phase"])
    if any(shape.base.rejects(j) for j in range(shape.base.stations)):
        rejected, st = _reject(st, on & (phase == PROCESS), shape, draws, consts, w0, w1)
        st = _after(st, rejected, shape, design, consts)
    if any(shape.base.calendar_failures):
        st = _begin(st, on & (phase == HELD), shape, consts)
        st = _after(st, on & (phase == AFTER), shape, design, consts)
    return st


def _leave(st, passes, back, rank, rank_back, shape, design, seq, draws, consts, w0, w1):
    """Slots ``passes`` pass their batches on (into the next buffer, or out of the line), blocked since they
    finished; investigation slots ``back`` put theirs back (``_put``; ``rank``: their places)."""
    base, t, batch, owner = shape.base, st["t"], st["batch"], jnp.asarray(shape.owner)
    st["blocked"] = st["blocked"] + _per_station(jnp.where(passes, _overlap(st["fin"], t, w0, w1), 0.0), shape)
    if _gaps(shape):  # the batch passed on goes to its buffer's next place with its times; the clocks that start now
        for h, (source, _) in enumerate(base.holds):
            starts = passes & (owner == source)
            st["holding"] = st["holding"].at[1 + h].set(jnp.where(starts, t, st["holding"][1 + h]))
        st = _put(st, passes, back, rank, rank_back, shape)
    inner = passes & (owner < base.stations - 1)
    st["left"] = st["left"] + _per_station(jnp.asarray(inner, jnp.int32), shape)
    # a put served now is an event scheduled now, in put order: the unit goes on (asks for its next batch) after it
    st = _scheduled(st, inner, rank)
    for u in (u for u, j in enumerate(shape.owner) if j == base.stations - 1):  # out of the line, in slot order
        st = _count_exit(st, passes[u], u, shape, seq, draws, consts, w0, w1)
    held = jnp.zeros_like(passes)
    for u, (j, i) in enumerate(zip(shape.owner, shape.unit, strict=True)):
        if base.on_calendar(j) and j < base.stations - 1:  # failures while blocked: down, not blocked (a repair under
            s = st["stations"][j] = dict(st["stations"][j])  # way holds the unit); the last station is never blocked
            was = passes[u] & (t > st["fin"][u])
            ready, nf, f, down, before = _wait_over(t, s["nf"][i], s["f"][i], draws["ttf"][j], draws["ttr"][j], i,
                                                    was, w0, w1)  # fmt: skip
            s["nf"], s["f"], s["acc"] = s["nf"].at[i].set(nf), s["f"].at[i].set(f), s["acc"].at[2].add(down)
            st["blocked"] = st["blocked"].at[j].add(-before)
            held = held.at[u].set(was & (ready > t))
            st["fin"] = st["fin"].at[u].set(jnp.where(held[u], t + (ready - t), st["fin"][u]))
    st["phase"] = jnp.where(held, AFTER, st["phase"])
    st = _scheduled(st, held, jnp.arange(held.shape[0]))
    st = _after(st, passes & ~held, shape, design, consts)  # the clean after the batch, if any, then the next batch
    # the last batch left the first station: the run may need more batches than drawn
    last = jnp.any(passes & (owner == 0) & (batch == base.batches - 1))
    st["limit"] = jnp.where(last, t, st["limit"])
    if base.record:
        row = jnp.where(passes, batch, base.batches)  # (a slot not passing on writes nowhere)
        st["departure"] = st["departure"].at[row, owner].set(t, mode="drop")
    return st


def _shift(st, p, on, shape, consts, like=None):
    """Pool ``p``'s shift starts or ends now (``Operators._shifts``); ``like``: whether on shift and the next change
    worked out now for a pool on the same calendar (returned for the next)."""
    cal, edges, t = consts["pools"]["calendars"][p], shape.pools[p], st["t"]
    working, change = like if like is not None else (_working(t, cal), _next_change(t, cal, edges))
    st["on_shift"] = st["on_shift"].at[p].set(jnp.where(on, working, st["on_shift"][p]))
    st["shift_at"] = st["shift_at"].at[p].set(jnp.where(on, t + (change - t), st["shift_at"][p]))
    if shape.members:  # its operators leave their rooms, de-gowned, when it ends
        mine = jnp.asarray(_pool_of(shape)) == p
        st["gowned"] = jnp.where(on & ~working & mine, -1, st["gowned"])
    return st, (working, change)


def _pool_of(shape: EventShape) -> np.ndarray:
    """The pool of each operator followed one by one (``EventShape.members`` places per pool, in pool order)."""
    return np.repeat(np.arange(len(shape.pools)), shape.members)


def _free(st, design) -> jax.Array:
    """Operators of each pool free now: on shift and not busy (of the design's headcount)."""
    return jnp.where(st["on_shift"], design["headcount"] - st["busy"], 0)


def _order(waiting, asked) -> jax.Array:
    """[i, j]: slot j's request comes before slot i's (key order: time of request, station, unit; both waiting)."""
    key, index = jnp.where(waiting, asked, INF), jnp.arange(waiting.shape[0])
    return (key[None, :] < key[:, None]) | ((key[None, :] == key[:, None]) & (index[None, :] < index[:, None]))


def _serve_skids(st, go, consts):
    """The skids' part of the serve step (before the operators', ``Slots.serve``): each skid's free places to its
    waiting cleans in key order; a granted clean asks for its crew now."""
    pools, t = consts["pools"], st["t"]
    waiting = go & (st["phase"] == SKID)
    earlier = _order(waiting, st["asked"])
    granted = jnp.zeros_like(waiting)
    for k in range(pools["on_skid"].shape[1]):
        mine, users = waiting & pools["on_skid"][:, k], jnp.sum(st["on_skid"] & pools["on_skid"][:, k])
        place = jnp.sum(earlier & mine[None, :], axis=1)  # waiting for this skid before each slot
        granted = granted | (mine & (place < pools["skid_places"][k] - users))
    st["on_skid"] = st["on_skid"] | granted
    st["phase"] = jnp.where(granted, CLEAN, st["phase"])
    st["asked"] = jnp.where(granted, t, st["asked"])
    return st


def _needs(st, consts) -> jax.Array:
    """The operators each slot's waiting phase needs (its clean's, its changeover's, or its processing's crew)."""
    pools, phase = consts["pools"], st["phase"]
    return jnp.select([phase == CLEAN, phase == SETUP_CREW], [pools["clean_need"], pools["need_setup"]], pools["need"])


def _grants(st, go, shape, design, consts) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
    """The serve step's grants (``Operators.serve``): the waiting requests in key order (time of request, station,
    unit), first fit, each crew the first free operators of the station's pools in pool order (``Operators._grant``);
    where operators are followed one by one (``EventShape.members``), those already gowned for the station's room
    first, and the crew gowns when one of it was not (the room's gowning hours, when it has some). (granted per slot,
    crew per slot and pool, each slot's place in key order, gowning hours per slot, the state with the operators'
    rooms and who each slot holds)."""
    pools = consts["pools"]
    n = st["phase"].shape[0]
    phase = st["phase"]
    waiting = go & ((phase == CREW) | (phase == CLEAN) | (phase == SETUP_CREW))
    needs = _needs(st, consts)
    rank = jnp.sum(_order(waiting, st["asked"]), axis=1)  # each slot's place in key order
    free, granted, crew = _free(st, design), jnp.zeros(n, bool), st["crew"]
    in_room = pools["in_room"]  # [slot, room]: a room's people are the crews its stations hold
    people = jnp.sum(jnp.where(in_room, jnp.sum(crew, axis=1)[:, None], 0), axis=0)
    gowning = jnp.zeros(n)
    if shape.members:  # each operator: free (of the design's headcount, on shift, held by no crew), its room
        pool_of = _pool_of(shape)
        rooms = jnp.where(jnp.any(in_room, axis=1), jnp.argmax(in_room, axis=1), -1).astype(jnp.int32)  # (-1: none)
        held = jnp.any(st["who"] & (crew[:, pool_of] > 0), axis=0)  # (a crew released is zeroed in ``crew``)
        present = jnp.tile(jnp.arange(shape.members), len(shape.pools)) < design["headcount"][pool_of]
        free_one = present & st["on_shift"][pool_of] & ~held
    for i in range(n):
        at = rank == i
        need = jnp.sum(jnp.where(at, needs, 0))
        mine = jnp.any(at[:, None] & pools["qualified"], axis=0)
        qualified_free = jnp.where(mine, free, 0)
        ok = jnp.any(at & waiting) & (jnp.sum(qualified_free) >= need)
        if in_room.shape[1]:  # no more people in the station's room than it allows (checked first by the engine)
            room = jnp.any(at[:, None] & in_room, axis=0)
            ok = ok & jnp.all(~room | (people + need <= pools["max_people"]))
            people = people + jnp.where(room & ok, need, 0)
        if shape.members:  # those gowned for the room first, then the others, each in pool order
            r = jnp.sum(jnp.where(at, rooms, 0), dtype=jnp.int32)  # the station's room
            can = free_one & mine[pool_of]
            first = can & (st["gowned"] == r)
            first = first & (jnp.cumsum(first) <= need)
            rest = can & (st["gowned"] != r)
            rest = rest & (jnp.cumsum(rest) <= need - jnp.sum(first))
            one = ok & (first | rest)
            free_one = free_one & ~one
            st["who"] = jnp.where(at[:, None] & ok, one[None, :], st["who"])
            st["gowned"] = jnp.where(one & (r >= 0), r, st["gowned"])
            hours = pools["gowning"][jnp.maximum(r, 0)] if in_room.shape[1] else 0.0
            gowning = jnp.where(at & ok & jnp.any(rest) & (r >= 0), hours, gowning)
            took = jnp.sum(one.reshape(len(shape.pools), shape.members), axis=1).astype(jnp.int32)
        else:
            before = jnp.cumsum(qualified_free) - qualified_free  # free operators of the pools before each pool
            took = jnp.where(ok, jnp.clip(need - before, 0, qualified_free), 0).astype(jnp.int32)
        free = free - took
        crew = jnp.where(at[:, None] & ok, took[None, :], crew)
        granted = granted | (at & ok)
    return granted, crew, rank, gowning, st


def _serve(st, go, shape, design, seq, draws, consts, w0, w1):
    """The serve step (when ``go``): grant the waiting requests (``_grants``); each granted slot starts its
    processing or its clean now (``kernel._clean``: major as decided, or when it stood dirty past its hold). Units of
    one station granted at one instant draw from the station's streams in key order (``_reorder``)."""
    base, t = shape.base, st["t"]
    if "on_skid" in st:
        st = _serve_skids(st, go, consts)
    granted, crew, rank, gowning, st = _grants(st, go, shape, design, consts)
    starts = t + gowning if shape.members else jnp.full(gowning.shape, t)  # (once the crew has gowned)
    if "sched" in st:  # a phase that needs no crew starts when its unit goes on (in the order of its last event),
        # before the serve step's grants of the instant (in key order)
        rank = jnp.where(_needs(st, consts) == 0, st["sched"], 2**30 + rank)
    st["busy"] = st["busy"] + jnp.sum(jnp.where(granted[:, None], crew, 0), axis=0, dtype=jnp.int32)
    st["crew"] = crew
    cleaning = granted & (st["phase"] == CLEAN)
    changing = granted & (st["phase"] == SETUP_CREW)
    granted = granted & (st["phase"] == CREW)
    speed = design["speed"]
    p_all = seq[st["batch"]] if base.products > 1 else jnp.zeros_like(st["batch"])
    same_p = p_all[None, :] == p_all[:, None]
    process_order = _reorder(granted, same_p, rank, shape)
    any_order = _reorder(granted, True, rank, shape)
    if any(base.has_setup):
        pa_all = jnp.maximum(st["from"], 0)
        same_pair = same_p & (pa_all[None, :] == pa_all[:, None])
        timed_all = changing & consts["setup_exists"][jnp.asarray(shape.owner), pa_all, p_all]
        setup_order = _reorder(timed_all, same_pair, rank, shape)
        clear_all = changing & consts["change_clearance"][jnp.asarray(shape.owner), pa_all, p_all]
        clear_order = _reorder(clear_all, True, rank, shape)
    majors = {}
    for u, j, i in _cleaning(shape):  # each clean's kind: as decided, or major when it stood dirty past its hold
        majors[u] = st["major"][u] | _expired(starts[u], _unit(st["stations"][j], i), j, consts)
    if majors and shape.multi:
        kinds = jnp.zeros(len(shape.owner), bool).at[jnp.asarray(list(majors))].set(jnp.stack(list(majors.values())))
        clean_order = _reorder(cleaning, kinds[None, :] == kinds[:, None], rank, shape)
    for u, (j, i) in enumerate(zip(shape.owner, shape.unit, strict=True)):
        on, p, start = granted[u], p_all[u], starts[u]
        s = dict(st["stations"][j])
        if base.has_setup[j]:  # the changeover's time (the pair's stream, in the order of its changeovers here), then
            pa = pa_all[u]  # its line clearance (the station's stream), under one crew
            timed = timed_all[u]
            drawn = s["setups"][pa, p] + (setup_order[u] if shape.multi else 0)
            index = jnp.minimum(drawn, draws["setup"].shape[-1] - 1)
            end, down = _timed(start, draws["setup"][j, pa, p, index], timed, s, j, i, base, draws, w0, w1)
            end = jnp.where(timed, end, start)
            s["setups"] = s["setups"].at[pa, p].add(jnp.where(timed, 1, 0))
            if "clearances" in s:
                clear = clear_all[u]
                drawn = s["clearances"] + (clear_order[u] if shape.multi else 0)
                d = draws["line_clearance"][j, jnp.minimum(drawn, draws["line_clearance"].shape[-1] - 1)]
                cleared, more = _timed(end, d, clear, s, j, i, base, draws, w0, w1)
                end, down = jnp.where(clear, cleared, end), down + jnp.where(clear, more, 0.0)
                s["clearances"] = s["clearances"] + jnp.where(clear, 1, 0)
            s["acc"] = s["acc"].at[1].add(jnp.where(changing[u], _overlap(start, end, w0, w1) - down, 0.0))
            st["fin"] = st["fin"].at[u].set(jnp.where(changing[u], end, st["fin"][u]))
        qty = consts["qty_in"][j, p]
        if base.rated(j):  # start-up plus the batch's units over the effective rate, noise in start order
            startup, effective = consts["rate"][j, 0], consts["rate"][j, 1]
            drawn = jnp.sum(s["count"]) + (any_order[u] if shape.multi else 0)
            noise = draws["rate_noise"][j, jnp.minimum(drawn, draws["rate_noise"].shape[-1] - 1)]
            work = _div(startup + _div(qty, effective) * noise, speed[j])
        else:  # the station's draws of the product, in start order
            index = jnp.minimum(s["count"][p] + (process_order[u] if shape.multi else 0), base.batches - 1)
            work = _div(draws["process"][j, p, index], speed[j])
        finish, s = _processed_on(s, j, i, start, work, on, base, draws, w0, w1, (p, qty, speed, consts))
        s["count"] = s["count"].at[p].add(jnp.where(on, 1, 0))
        if base.cleans(j):
            view = _unit(s, i)
            skip = clean_order[u] if shape.multi else 0  # (the station's clean draws, in key order)
            shift = jnp.where(majors[u], jnp.stack([0, skip]), jnp.stack([skip, 0])) if shape.multi else 0
            view = {**view, "hygiene": {**view["hygiene"], "drawn": view["hygiene"]["drawn"] + shift}}
            cleaned, view = _clean(start, majors[u], cleaning[u], view, j, base, draws, w0, w1)
            kg = _div(consts["masses"][p] * qty, consts["sizes"][p])
            view["hygiene"] = {**_processed(view["hygiene"], finish, kg, on),
                               "drawn": view["hygiene"]["drawn"] - shift}  # fmt: skip
            s = _unit_back(s, view, i)
            finish = jnp.where(cleaning[u], cleaned, finish)
        st["stations"][j] = s
        st["fin"] = st["fin"].at[u].set(jnp.where(on | cleaning[u], finish, st["fin"][u]))
    st["phase"] = jnp.select([granted, cleaning, changing], [PROCESS, CLEANING, SETUP], st["phase"])
    return _scheduled(st, granted | cleaning | changing, rank)


def _scheduled(st, on, order) -> dict[str, Any]:
    """Slots ``on`` scheduled the timeout of a phase now, in ``order`` (a rank; ties by slot). Timeouts due at one
    instant run in the order they were scheduled, as SimPy's (``seq``, its event ids): what a slot asks for when its
    phase ends (a place downstream, its next batch, a reject draw) comes in that order (``sched``)."""
    if "sched" not in st:
        return st
    before = _ranks(on, order.astype(jnp.float64), jnp.zeros(on.shape), jnp.zeros(on.shape, jnp.int32))
    st["sched"] = jnp.where(on, st["seq"] + before, st["sched"])
    st["seq"] = st["seq"] + jnp.sum(on, dtype=jnp.int32)
    return st


def _quantities(base: Shape, consts: dict[str, Any]) -> jax.Array:
    """[station + 1, product]: the units of a batch of each product as it comes to each station and as it leaves the
    line, after each station's yield (the scan kernel's arithmetic; a serial line's batches all pass every station)."""
    qty, out = consts["sizes"], []
    for j in range(base.stations):
        out.append(qty)
        if base.yields(j):
            qty = qty - qty * (1 - consts["quality"][j, 0])
    return jnp.stack([*out, qty])


def _station_init(shape: EventShape, j: int, draws: dict[str, Any]) -> dict[str, Any]:
    """What ``kernel._processed_on`` and ``kernel._lane_kpis`` keep of a station (per unit: its failure clock, its
    hygiene)."""
    base = shape.base
    width = max(base.max_units[j], 1)
    s = {
        "acc": jnp.zeros(len(STATES)), "count": jnp.zeros(base.products, jnp.int32), "last_out": jnp.full((), -INF),
        "oee_ideal": jnp.zeros(base.products), "oee_qty": jnp.zeros(base.products),
        "oee_finishes": jnp.zeros((), jnp.int32), "oee_credit": jnp.zeros(()), "oee_tail": jnp.zeros(()),
    }  # fmt: skip
    if base.on_calendar(j):  # ``CalendarClock``: the first failure a time to failure after the start (0)
        s["nf"], s["f"] = draws["ttf"][j, :width, 0], jnp.zeros(width, jnp.int32)
    elif base.has_failures[j]:
        s["until"], s["f"] = draws["ttf"][j, :width, 0], jnp.zeros(width, jnp.int32)
    if base.has_setup[j]:  # changeovers made per (previous, next) product: the draws they used
        s["setups"] = jnp.zeros((base.products, base.products), jnp.int32)
    if base.changeover_cleans and base.changeover_cleans[j]:  # line clearances made: the draws they used
        s["clearances"] = jnp.zeros((), jnp.int32)
    if base.rejects(j):  # batches processed to their end (the reject draws, in that order)
        s["finished"] = jnp.zeros((), jnp.int32)
    if base.cleans(j):
        s["hygiene"] = _hygiene_init()
        if width > 1:  # one per unit (the clean draws stay the station's): ``_unit``
            s["hygienes"] = {k: jnp.broadcast_to(v, (width,)) for k, v in s["hygiene"].items() if k != "drawn"}
    return s


def lane(shape: EventShape, design: dict[str, Any], seq: jax.Array, draws: dict[str, Any], consts: dict[str, Any]):
    """Simulate one design in one replication event by event; returns its KPIs (``kernel.lane``'s)."""
    base = shape.base
    n, n_pools, n_batches, n_slots = base.stations, len(shape.pools), base.batches, len(shape.owner)
    consts = _with_levers(design, consts)  # (the cleaning due thresholds of the design)
    n_in = design["batches"]
    # (and what the steps look up of the lane's own inputs: the batches' products, the plan's length, the arrivals)
    consts = {**consts, "qty_in": _quantities(base, consts), "seq": seq, "n_in": n_in, "arrivals": draws["arrivals"]}
    w0, w1 = consts["warmup"], consts["horizon"]
    zero = jnp.zeros((), jnp.float64)
    start_on, start_change = [], []
    for p in range(n_pools):  # each pool's shift at time 0 and its first change (``Operators.__init__``)
        cal = consts["pools"]["calendars"][p]
        start_on.append(_working(zero, cal) if shape.pools[p] else jnp.bool_(True))
        start_change.append(_next_change(zero, cal, shape.pools[p]) if shape.pools[p] else INF)
    state = {
        "t": zero, "steps": jnp.int32(0),
        "phase": jnp.full(n_slots, TAKE, jnp.int32), "fin": jnp.full(n_slots, INF),
        "batch": jnp.zeros(n_slots, jnp.int32), "asked": jnp.zeros(n_slots),
        "crew": jnp.zeros((n_slots, n_pools), jnp.int32),
        "taken": jnp.zeros(n, jnp.int32), "left": jnp.zeros(n, jnp.int32),
        "busy": jnp.zeros(n_pools, jnp.int32),
        "on_shift": jnp.stack(start_on) if n_pools else jnp.zeros(0, bool),
        "shift_at": jnp.stack(start_change).astype(zero.dtype) if n_pools else jnp.zeros(0),
        "stations": [_station_init(shape, j, draws) for j in range(n)],
        "limit": jnp.full((), INF), "blocked": jnp.zeros(n),  # hours blocked in the window
        # the exits' running totals (``_count_exit``) and the release times of the batches in the line (pulled)
        "count": jnp.zeros((), int), "lead_sum": zero, "first": jnp.full((), INF), "final": jnp.full((), -INF),
        "made": jnp.zeros(base.products), "last_exit": jnp.full((), -INF),
    }  # fmt: skip
    if any(base.has_setup):  # the product each slot processed last (-1: none yet), whether it changes over
        state.update(prev=jnp.full(n_slots, -1, jnp.int32), change=jnp.zeros(n_slots, bool),
                     **{"from": jnp.full(n_slots, -1, jnp.int32)})  # fmt: skip
    if any(base.change_cleans(j) for j in range(n)):  # the change to the batch taken needs a major clean
        state["change_clean"] = jnp.zeros(n_slots, bool)
    if base.pull:
        state["released"] = jnp.full(shape.kept, INF)
    if _gated(shape):  # the release gate: when the first station asked for its batch or was woken, WIP reached
        state["gate_from"], state["gate_full"] = zero, jnp.bool_(False)
        if base.wip:
            state["wip_gone"] = jnp.zeros((), jnp.int32)
    if _gaps(shape):  # the batch at each place of each buffer, its times and those of each slot's batch, scraps
        state["queue"] = jnp.zeros((n, shape.kept), jnp.int32)
        state["carried"] = jnp.full((1 + len(base.holds), n, shape.kept), INF)
        state["holding"] = jnp.full((1 + len(base.holds), n_slots), INF)
        state["scrapped"], state["rejected"] = jnp.zeros((), jnp.int32), jnp.zeros((), int)
    if shape.multi:  # when each slot asked for its next batch (``_take_ranks``)
        state["idle_at"] = jnp.zeros(n_slots)
    if shape.multi or shape.investigated:  # the order in which timeouts were scheduled (``_scheduled``)
        state["seq"], state["sched"] = jnp.zeros((), jnp.int32), jnp.zeros(n_slots, jnp.int32)
    if shape.investigated:  # batches in investigation (a slot each: back at, to, batch, times), those put back
        r, h = shape.returns, len(base.holds)
        state.update(back_at=jnp.full(r, INF), back_to=jnp.zeros(r, jnp.int32), back_batch=jnp.zeros(r, jnp.int32),
                     back_times=jnp.full((1 + h, r), INF), returned=jnp.zeros(n, jnp.int32),
                     investigations=jnp.zeros(h, jnp.int32), returns_used=jnp.zeros((), jnp.int32),
                     back_seq=jnp.zeros(r, jnp.int32))  # fmt: skip
    if base.qc:  # each exit's time and release time, for QC release after the loop (``_in_chunks``, ``_qc_totals``)
        state["exits"] = jnp.full((n_batches + 2 * CHUNK, 3), INF)
        state["recent"], state["chunk"] = jnp.full((2 * CHUNK, 3), INF), jnp.zeros((), jnp.int32)
    if _cleaning(shape):  # a clean's kind and the phase after it
        state["then"], state["major"] = jnp.full(n_slots, TAKE, jnp.int32), jnp.zeros(n_slots, bool)
    if consts["pools"]["on_skid"].shape[1]:  # the slots whose cleans hold a skid place
        state["on_skid"] = jnp.zeros(n_slots, bool)
    if shape.members:  # each operator's room (-1: not gowned for one) and the operators each slot's crew is
        state["gowned"] = jnp.full(n_pools * shape.members, -1, jnp.int32)
        state["who"] = jnp.zeros((n_slots, n_pools * shape.members), bool)
    if base.record:
        state["departure"] = jnp.full((n_batches, n), INF)

    def going(st):
        t = jnp.min(st["due"])
        out = st["left"][n - 1] + (st["scrapped"] if _gaps(shape) else 0)  # batches that left the line
        unfinished = base.finite_plan & (out < n_in) & (t < INF)
        return (st["steps"] < shape.steps) & ((t <= w1) | unfinished) & ~_overflowed(st, shape, draws)

    def step(st):
        st = {**st, "stations": [dict(s) for s in st["stations"]]}
        due = st["due"]
        t = st["t"] = jnp.min(due)
        phase0 = st["phase"]
        # the ordinary events due now, one kind after another, each seeing what the one before did (what a slot does
        # after another at this instant, the next step sees)
        on = due == t
        st = _ended(st, on[:n_slots] & _timed_phase(st["phase"], shape), shape, design, draws, consts, w0, w1)
        idle = _idle(st, design, shape)
        passes, back, rank, rank_back = _put_order(st, _free_places(st, idle, design, shape), shape)
        st = _leave(st, passes, back, rank, rank_back, shape, design, seq, draws, consts, w0, w1)
        if shape.multi:  # (a slot that asks for a batch now comes after those that asked before)
            st["idle_at"] = jnp.where((st["phase"] == TAKE) & (phase0 != TAKE), t, st["idle_at"])
        if _gated(shape):  # (the first station asks the release gate for its next batch now)
            st["gate_from"] = jnp.where((st["phase"][0] == TAKE) & (phase0[0] != TAKE), t, st["gate_from"])
        ready = (_due(st, shape, design, draws, n_in, consts)[:n_slots] == t) & _idle(st, design, shape)
        st = _take(st, ready, shape, design, seq, draws, consts, w0, w1)
        shifts = {}  # (pools on one calendar: worked out once)
        for p in range(n_pools):
            if shape.pools[p]:  # (a pool always on shift has no change: never due)
                like = shifts.get(shape.shifts_like[p] if shape.shifts_like else p)
                st, shifts[p] = _shift(st, p, on[n_slots + p], shape, consts, like)
        # nothing more happens at this instant: its serve step
        serve = jnp.min(_due(st, shape, design, draws, n_in, consts)) > t
        st = _serve(st, serve, shape, design, seq, draws, consts, w0, w1)
        if _gated(shape) and base.wip:  # (a place freed in this step wakes the gate now; is the limit reached?)
            st["gate_from"] = _gate(st, shape, design, consts)[0]
            st["gate_full"] = _wip(st, shape, consts) >= design["wip_limit"]
        st["steps"] = st["steps"] + 1
        st["due"] = _due(st, shape, design, draws, n_in, consts)  # (the next step's and the loop's test)
        return st

    state["due"] = _due(state, shape, design, draws, n_in, consts)
    state = _batched_like(state, design, draws)
    final = _in_chunks(going, step, state) if base.qc else jax.lax.while_loop(going, step, state)
    if base.qc:
        totals, ys = _qc_totals(final, shape, seq, draws, consts)
    else:
        totals, ys = {k: final[k] for k in ("count", "lead_sum", "first", "final", "made", "last_exit")}, {}
        totals.update(rejected=jnp.zeros((), int), release_lead=jnp.full((), jnp.nan))
    if _gaps(shape):  # scrapped and rejected batches (in the window)
        totals["rejected"] = totals["rejected"] + final["rejected"]
    last = jnp.maximum(totals["last_exit"], jnp.max(jnp.stack([s["last_out"] for s in final["stations"]])))
    end = jnp.minimum(w1, last) if base.finite_plan else w1  # (the engine's, as ``_lane_kpis``; QC's; scraps')
    active = _active(design, shape)
    blocked_now = final["phase"] == LEAVE
    still = _per_station(jnp.where(blocked_now, _overlap(final["fin"], INF, w0, w1), 0.0), shape)  # at the end
    stations = [dict(s) for s in final["stations"]]
    for u, (j, i) in enumerate(zip(shape.owner, shape.unit, strict=True)):
        if base.on_calendar(j):  # the failures of a wait under way at the end (``RulesUnit.finish_run``)
            s = stations[j]
            starved = (final["phase"][u] == TAKE) & (j > 0 or not base.pull) & (active if not shape.multi else
                                                                                 active[u])  # fmt: skip
            _, _, _, down, before = _wait_over(end, s["nf"][i], s["f"][i], draws["ttf"][j], draws["ttr"][j], i,
                                               starved | (blocked_now[u] & (j < n - 1)), w0, w1)  # fmt: skip
            s["acc"] = s["acc"].at[2].add(down)
            still = still.at[j].add(-jnp.where(blocked_now[u], before, 0.0))
    blocked = final["blocked"] + still
    stations = [{**s, "acc": s["acc"].at[3].add(blocked[j]), "limit": final["limit"] if j == 0 else INF}
                for j, s in enumerate(stations)]  # fmt: skip
    out = _lane_kpis(base, stations, totals, design["units"], consts)
    if base.record:  # (a recording lane keeps every batch's release time: ``EventShape.kept``)
        index = jnp.arange(n_batches, dtype=jnp.int32)
        ys.update(departure=final["departure"], batch=jnp.broadcast_to(index[:, None], (n_batches, n)),
                  valid=final["departure"] < INF, release=_released(final, index, shape, draws))  # fmt: skip
        for key in ("qc_start", "qc_end", "qc_out", "qc_approved") if base.qc else ():  # per exit: in its batch's row
            empty = jnp.zeros_like(ys[key]) if key == "qc_approved" else jnp.full_like(ys[key], INF)
            ys[key] = empty.at[ys["exit_number"]].set(ys[key], mode="drop")
        out.update(_recorded(base, ys))
    if shape.investigated:  # (the evaluator runs a lane again with more slots when it had more in investigation)
        out["returns_used"] = final["returns_used"]
    # a lane stopped by the bound on steps is cut short: the evaluator runs it again with more batches (more steps)
    return {**out, "truncated": out["truncated"] | (final["steps"] >= shape.steps)}


def _overflowed(st, shape: EventShape, draws) -> Any:
    """Whether the lane used every place for batches in investigation or every failure draw of a unit: the evaluator
    runs it again with more (``Evaluator._grow``), so it stops here (a batch with no place would leave a line of
    wall-clock failures stepping to the bound on steps, and be taken for a lane short of batches)."""
    over = out_of_places(st["returns_used"], shape.returns) if shape.investigated else jnp.zeros((), bool)
    for s in st["stations"]:
        if "f" in s:
            over = over | out_of_failures(jnp.max(s["f"]), draws["ttf"].shape[2])
    return over


@functools.lru_cache(maxsize=16)
def compiled_event_kernel(shape: EventShape):
    """``f(design, seq, draws, consts)`` over [designs] x [replications], jitted once per shape (as
    ``kernel.compiled_kernel``; ``consts["pools"]``: ``lines.pool_constants`` with a row per unit slot)."""
    return over_designs(functools.partial(lane, shape), shape.base.seq_from_design)


@functools.lru_cache(maxsize=4)
def event_gradient_kernel(shape: EventShape):
    """``kernel.gradient_kernel`` of the event lane."""
    return with_gradient(functools.partial(lane, shape), shape.base.seq_from_design)
