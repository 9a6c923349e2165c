"""The event-stepping kernel: one lane is one design in one replication, stepped event by event.

    >>> run = compiled_event_kernel(EventShape(shape, pools=(4, 0)))  # jitted, cached per static shape
    >>> out = run(design, seq, draws, consts)      # vmapped over designs and replications, as ``compiled_kernel``

The scan kernel (``optimizers.kernel``) computes departures batch by batch, which cannot follow a
resource that stations share in time order (operators on shifts). This kernel steps the line's
events in time order in a ``lax.while_loop`` instead, on fixed-size state:

- per station (one unit): its phase (``TAKE`` a batch, wait for its ``CREW``, ``PROCESS``, ``LEAVE``; with the
  cleaning rule also wait for a clean's crew, ``CLEAN``, and ``CLEANING``; with changeovers wait for their crew,
  ``SETUP_CREW``, and ``SETUP``; on the wall clock ``HELD`` or ``AFTER`` by a repair that outlasted the wait for a
  batch or for a place), the batch it holds, when its timed phase ends, when it asked for its crew, the operators it
  holds per pool, its hygiene (``kernel._hygiene_init``), the product it processed last, its failure clock;
- per buffer: the batches waiting in it. A station of one unit passes its batches on in the order it took
  them, so the batches before station j are those station j-1 passed on and j has not taken yet: two counts
  (with hold times, also which batch is at each place and its times, ``queue`` and ``carried``: a scrapped batch
  leaves a gap in the numbers, and one back from investigation, ``returned``, comes in out of order);
- per operator pool: on shift or not, operators busy (of the design's headcount, an input of each design as the
  buffers are), the next shift change (the engine's clock:
  ``t + (next_change(t) - t)``, ``WeeklyCalendar``'s arithmetic in ``kernel._working``, ``kernel._next_change``).

Each step is one instant: the earliest time any ordinary event is due (a station that can take a batch, the
end of a timed phase, a station that can pass its batch on, a shift change). It runs every event due then, kind
after kind (ends of timed phases, then stations passing batches on, then stations taking them, each kind seeing
what the one before did, then shift changes); what they make possible at the same time (a station blocked until the one
after it took its batch) is due at the same time in the next step. When nothing more is due at the instant,
the step ends with its *serve step* (``twin.engine.rules.arbiter``, docs/batch-rules.md "Who goes first at
one instant"): the waiting crew requests are served in key order (time of request, station index), first
fit (a request that cannot be served yet is passed over by a later one that can), each crew taken from the
station's pools in pool order (``Operators._grant``), no more people at work in a room than it allows (the crews
its stations hold). Free operators are ``headcount - busy`` on shift and
none off shift: an operator whose shift ends finishes the phase at hand, and a crew released off shift
frees nobody. Every processing start is a serve step's grant (a station that needs no crew asks for none,
which is always granted at the instant it took its batch, as the engine starts it). Which station's event
of an instant runs first does not change a departure: a buffer has one station before it and one after.

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
Its put waits its turn (``_returns_due``, ``Buffer``: first come, first served) behind the pass-on of the station
before, when that asked first: its processing ended earlier, or at the same time but began before the batch was
sent (SimPy's order of the two timeouts; a tie of both instants: the pass-on first).
QC release after the line shares nothing with it (the analysts are their own pool): a lane with QC keeps each exit's
time and release time (``_count_exit``, written into the array of every exit once per chunk of exits: ``_in_chunks``;
without QC, running totals only) and after the loop runs the scan kernel's stage and totals on them (``_qc_totals``).
Scope (``lines.events_outside``): serial lines of single-unit stations, finite or unlimited buffers,
every release mode, products, failures on either clock, rate-based stations, yields and rejects, changeovers (with
their major cleans, decided by looking at the next batch when it is known, and line clearances), cleaning (on
shared skids too), rooms' headcounts, operator pools on shift calendars (the
crews of processing, changeovers and cleaning), hold times that scrap or investigate (not ending at a station on the
wall clock), QC release.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

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
    _stale,
    _timed,
    _wait_over,
    _with_levers,
    _working,
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

    @property
    def kept(self) -> int:
        """How many release times a lane keeps, by batch modulo (a line of single units lets its batches out in the
        order it took them: a batch's slot is free once it has left). With hold times, the places of each buffer, by
        place modulo (a scrapped batch leaves a gap in the numbers: the batch goes with its times, ``carried``)."""
        return self.ring if 0 < self.ring < self.base.batches else self.base.batches

    @property
    def steps(self) -> int:
        """Most steps of a lane (a step is an instant, or a station's cascade within one): a few per batch and station,
        plus every shift change of the pools over ``weeks``; only a line whose crews can never be served reaches it."""
        return 16 * self.base.batches * self.base.stations + self.weeks * sum(self.pools) + 4096


def _timed_phase(phase: jax.Array, shape: EventShape) -> jax.Array:
    """Phases that end at ``fin`` (those the shape can have: processing; cleans, changeovers, repair holds)."""
    base = shape.base
    timed = phase == PROCESS
    for kind, present in ((CLEANING, any(base.cleans(j) for j in range(base.stations))), (SETUP, any(base.has_setup)),
                          (HELD, any(base.calendar_failures)), (AFTER, any(base.calendar_failures))):  # fmt: skip
        if present:
            timed = timed | (phase == kind)
    return timed


def _due(st: dict[str, Any], shape: EventShape, design: dict[str, Any], draws: dict[str, Any], n_in) -> jax.Array:
    """When each station's next ordinary event happens (inf: none until another event), then each pool's shift
    change. A station taking or passing on a batch does so now if it can (it could not earlier)."""
    base, t, phase = shape.base, st["t"], st["phase"]
    k = st["taken"][0]
    first = t if base.pull else jnp.maximum(t, draws["arrivals"][jnp.minimum(k, base.batches - 1)])
    puts = _puts(st)
    queued = puts > st["taken"][1:]
    take = jnp.concatenate([jnp.where(k < n_in, first, INF)[None], jnp.where(queued, t, INF)])
    # a place downstream: ``Buffer``'s put (its places, and the unit waiting for a batch); out of the last station
    b, waiting = design["buffers"][1:], puts - st["taken"][1:]
    room = jnp.concatenate([(b < 0) | (waiting < b + (phase[1:] == TAKE)), jnp.ones(1, bool)])
    back, first_put = _returns_due(st, room, shape) if shape.investigated else ((), True)
    leave = jnp.where(room & first_put, t, INF)
    timed = _timed_phase(phase, shape)
    times = jnp.select([phase == TAKE, timed, phase == LEAVE], [take, st["fin"], leave], INF)
    return jnp.concatenate([times, st["shift_at"], *back])


def _puts(st) -> jax.Array:
    """The batches put into each station's buffer so far, from the second station on: those the station before passed
    on, and those back from investigation (``returned``)."""
    return st["left"][:-1] + st["returned"][1:] if "returned" in st else st["left"][:-1]


def _returns_due(st, room, shape) -> tuple[tuple[jax.Array], jax.Array]:
    """When each batch in investigation is put back into its station's buffer (``HoldClocks._investigation``): at the
    end of its investigation, or later when it waits for a place (``Buffer``'s puts: first come, first served, with
    the station before that passes a batch on since its processing ended); and whether each station's pass-on comes
    before every such put waiting for its buffer (``room``: a place for the put of each station's batch)."""
    t, at, to, sent = st["t"], st["back_at"], st["back_to"], st["back_sent"]
    n = st["phase"].shape[0]
    # a pass-on's put is asked when its processing ends (a timeout scheduled when it began); at the same time as a
    # batch back from investigation (scheduled when it was sent), the one scheduled first (a tie: the pass-on)
    asked = jnp.where(st["phase"] == LEAVE, st["fin"], INF)
    upstream = jnp.concatenate([jnp.full(1, INF), asked[:-1]])[to]  # (into station 0's buffer: never)
    began = jnp.concatenate([jnp.full(1, INF), st["began"][:-1]])[to]
    waiting = at <= t
    same = to[None, :] == to[:, None]
    order = jnp.arange(at.shape[0])  # (batches back at the same time were sent at one instant, to slots in order)
    earlier = waiting[None, :] & same & ((at[None, :] < at[:, None]) | ((at[None, :] == at[:, None]) &
                                                                         (order[None, :] < order[:, None])))
    ahead = (at < upstream) | ((at == upstream) & (sent < began))  # a put back asked before the pass-on's
    first = ~jnp.any(earlier, axis=1) & ahead
    space = jnp.concatenate([jnp.zeros(1, bool), room[:-1]])[to]
    due = jnp.where(at > t, at, jnp.where(waiting & space & first, t, INF))
    before = jnp.zeros(n + 1, bool).at[to].max(waiting & ahead)  # a pass-on waits for the puts asked before it
    return (due,), ~before[1:]


def _take(st, on, shape, seq, draws, consts, w0, w1):
    """Stations ``on`` take their next batch (the first station: releases it, or takes the next arrival), or scrap
    it when one of its hold times ran out (``_scrap``: the station takes the next one at the same instant); on the
    wall clock, the failures of the wait (``RulesUnit._ready``: a repair under way holds the station, ``HELD``);
    then the batch begins (``_begin``)."""
    base, t, k = shape.base, st["t"], st["taken"]
    taken, batch = on, k
    if _gaps(base):  # (a hold never ends at a station on the wall clock: ``lines.events_outside``)
        batch, times = _from_buffers(st, shape, draws)
        late, st = _scrap(st, on, batch, times, shape, draws, consts, w0, w1)
        taken = on & ~late
        st["holding"] = jnp.where(taken[None, :], times, st["holding"])
    st["batch"] = jnp.where(taken, batch, st["batch"])
    st["taken"] = k + on
    if any(base.has_setup):  # a changeover when the product changes (``changeovers.change``), decided now
        p = seq[batch] if base.products > 1 else jnp.zeros_like(k)
        pa = jnp.maximum(st["prev"], 0)
        pair = (jnp.arange(base.stations), pa, p)
        exists = consts["setup_exists"][pair] | consts["change_clearance"][pair]  # (the changeover's crew phase)
        st["change"] = jnp.where(taken, (st["prev"] >= 0) & exists, st["change"])
        if "change_clean" in st:  # the change needs a major clean (done unless one was done since the last batch)
            st["change_clean"] = jnp.where(taken, (st["prev"] >= 0) & consts["change_major"][pair], st["change_clean"])
        st["from"] = jnp.where(taken, st["prev"], st["from"])  # (the changeover's pair: from, to the batch's product)
        st["prev"] = jnp.where(taken, p, st["prev"])
    held = jnp.zeros_like(on)
    for j in range(base.stations):
        if base.on_calendar(j) and not (j == 0 and base.pull):  # (the pulling first station does not wait)
            s = st["stations"][j] = dict(st["stations"][j])
            ready, nf, f, down, _ = _wait_over(t, s["nf"][0], s["f"][0], draws["ttf"][j], draws["ttr"][j], 0,
                                               taken[j], w0, w1)  # fmt: skip
            s["nf"], s["f"], s["acc"] = s["nf"].at[0].set(nf), s["f"].at[0].set(f), s["acc"].at[2].add(down)
            held = held.at[j].set(taken[j] & (ready > t))
            st["fin"] = st["fin"].at[j].set(jnp.where(held[j], t + (ready - t), st["fin"][j]))
    st["phase"] = jnp.where(held, HELD, st["phase"])
    st = _begin(st, taken & ~held, shape, consts)
    if shape.base.pull:  # the release time of a pulled batch is now (an arrival's is drawn: ``_released``)
        at = jnp.mod(k[0], shape.kept)
        st["released"] = st["released"].at[at].set(jnp.where(on[0], t, st["released"][at]))
    return st


def _from_buffers(st, shape, draws) -> tuple[jax.Array, jax.Array]:
    """With hold times, the batch each station takes next and its times (``carried``: its release, then when it left
    each hold's first station; inf: not yet): the first station's next batch, the others' at the next place of their
    buffers (``queue``; a scrapped batch leaves a gap in the numbers)."""
    base, t, k = shape.base, st["t"], st["taken"]
    rows, place = jnp.arange(base.stations), jnp.mod(k, shape.kept)
    released = t if base.pull else draws["arrivals"][jnp.minimum(k[0], base.batches - 1)]
    first = jnp.concatenate([released[None], jnp.full(len(base.holds), INF)])
    batch = jnp.where(rows > 0, st["queue"][rows, place], k)
    return batch, st["carried"][:, rows, place].at[:, 0].set(first)


def _gaps(base: Shape) -> bool:
    """Batches can leave the line before its end (scrapped by a hold time, rejected at the end of processing): the
    buffers keep which batch is at each place and the batches carry their times."""
    return bool(base.holds) or any(base.rejects(j) for j in range(base.stations))


def _reject(st, on, shape, draws, consts, w0, w1) -> tuple[jax.Array, dict[str, Any]]:
    """Which stations ``on``, at the end of processing, reject the whole batch (``quality.after_processing``: one
    draw per batch processed, in processing order): it leaves the line now (a reject in the window, ``last_out``)."""
    base = shape.base
    rejected = jnp.zeros_like(on)
    for j in range(base.stations):
        if base.rejects(j):
            s = st["stations"][j]
            drawn = jnp.minimum(jnp.sum(s["count"]) - 1, draws["reject"].shape[-1] - 1)  # batches processed before
            rejected = rejected.at[j].set(on[j] & (draws["reject"][j, drawn] < consts["quality"][j, 1]))
    return rejected, _out_early(st, rejected, shape, w0, w1)


def _out_early(st, gone, shape, w0, w1) -> dict[str, Any]:
    """The batches of stations ``gone`` leave the line now, before its end (scrapped or rejected): a reject at the
    station (``last_out``), in the window's ``rejected`` (``kernel._in_window``), and out for a finite plan's end."""
    t, base = st["t"], shape.base
    for j in range(base.stations):
        if base.rejects(j) or base.holds_at(j):  # (the stations whose batches can leave early)
            s = st["stations"][j]
            st["stations"][j] = {**s, "last_out": jnp.where(gone[j], jnp.maximum(s["last_out"], t), s["last_out"])}
    st["scrapped"] = st["scrapped"] + jnp.sum(gone, dtype=jnp.int32)
    st["rejected"] = st["rejected"] + jnp.sum(gone & _in_window(t, w0, w1))
    return st


def _scrap(st, on, batch, times, shape, draws, consts, w0, w1) -> tuple[jax.Array, dict[str, Any]]:
    """Which stations ``on`` do not go on with the batch they take (``holds.holds_kept``: taken later than a hold's
    maximum after it left the hold's first station, ``times``; the first such hold in order decides): it leaves the
    line (``_out_early``), or goes to investigation (``_investigate``)."""
    t, holds = st["t"], shape.base.holds
    late, decides = jnp.zeros_like(on), jnp.zeros(on.shape, jnp.int32)
    for h in reversed(range(len(holds))):  # (the first late hold of a station, last written)
        to = holds[h][1]
        over = on[to] & (t - times[1 + h, to] > consts["hold_max"][h])
        late, decides = late.at[to].max(over), decides.at[to].set(jnp.where(over, h, decides[to]))
    if not shape.investigated:
        return late, _out_early(st, late, shape, w0, w1)
    sent = late & jnp.isin(decides, jnp.asarray(shape.investigated))
    st = _out_early(st, late & ~sent, shape, w0, w1)
    return late, _investigate(st, sent, decides, batch, times, shape, draws)


def _investigate(st, sent, decides, batch, times, shape, draws) -> dict[str, Any]:
    """Stations ``sent`` send the batch they took to investigation under hold ``decides`` (``HoldClocks.investigate``):
    its clocks from that hold's first station stop; it comes back to the station's buffer after the hold's next
    investigation time (``draws["investigation"]``, in the order of that hold's investigations), in a free slot."""
    t, holds = st["t"], shape.base.holds
    for j in sorted({holds[h][1] for h in shape.investigated}):
        h = decides[j]
        free = st["back_at"] == INF
        slot = jnp.argmax(free)
        go = sent[j] & free[slot]
        delay = draws["investigation"][h, jnp.minimum(st["investigations"][h], draws["investigation"].shape[-1] - 1)]
        source = jnp.asarray([s for s, _ in holds])
        carried = jnp.where(jnp.concatenate([jnp.zeros(1, bool), source == source[h]]), INF, times[:, j])
        st["back_at"] = st["back_at"].at[slot].set(jnp.where(go, t + delay, st["back_at"][slot]))
        st["back_to"] = st["back_to"].at[slot].set(jnp.where(go, j, st["back_to"][slot]))
        st["back_batch"] = st["back_batch"].at[slot].set(jnp.where(go, batch[j], st["back_batch"][slot]))
        st["back_times"] = st["back_times"].at[:, slot].set(jnp.where(go, carried, st["back_times"][:, slot]))
        st["back_sent"] = st["back_sent"].at[slot].set(jnp.where(go, t, st["back_sent"][slot]))
        st["investigations"] = st["investigations"].at[h].add(jnp.where(sent[j], 1, 0))
        # (no free slot: the lane reports more than it can keep, and the evaluator runs it again with more)
        used = jnp.sum(st["back_at"] < INF, dtype=jnp.int32) + jnp.where(sent[j] & ~go, shape.returns, 0)
        st["returns_used"] = jnp.maximum(st["returns_used"], used)
    return st


def _come_back(st, on, shape) -> dict[str, Any]:
    """The batches of investigation slots ``on`` are put back into their station's buffer (at most one per station at
    an instant: ``_returns_due``), at its next place, with their times."""
    to = jnp.where(on, st["back_to"], shape.base.stations)  # (a slot not on writes nowhere)
    place = jnp.mod(_puts(st)[jnp.maximum(to - 1, 0)], shape.kept)
    st["queue"] = st["queue"].at[to, place].set(st["back_batch"], mode="drop")
    st["carried"] = st["carried"].at[:, to, place].set(st["back_times"], mode="drop")
    st["returned"] = st["returned"].at[to].add(1, mode="drop")
    st["back_at"] = jnp.where(on, INF, st["back_at"])
    return st


def _released(st, batch, shape, draws) -> jax.Array:
    """When ``batch`` was released (it is in the line, or has just left it)."""
    if shape.base.pull:
        return st["released"][jnp.mod(batch, shape.kept)]
    return draws["arrivals"][jnp.minimum(batch, shape.base.batches - 1)]


def _count_exit(st, on, shape, seq, draws, consts, w0, w1):
    """The last station passes its batch out of the line (when ``on``): the running totals ``kernel._lane_kpis``
    takes (``kernel._exit_totals``: exits in the window, their lead times, first and last, units per product); with
    QC, its time and its release time instead, by exit count, in the chunk's ``recent`` (``_in_chunks``)."""
    t, out = st["t"], st["batch"][-1]
    released = st["holding"][0, -1] if _gaps(shape.base) else _released(st, out, shape, draws)
    if shape.base.qc:
        at = jnp.mod(st["left"][-1] - 1, CHUNK)  # (``_leave`` has counted this exit)
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


def _in_chunks(going, step, state):
    """``lax.while_loop(going, step, state)`` in chunks of ``CHUNK`` exits, each written into ``exits`` (every exit's
    time and release time) at its end: vmapped, a write into an array of every batch is a copy of it per lane, which
    in every step would cost more than the rest of the step."""

    def chunk(st):
        done = st["left"][-1]  # exits so far: a multiple of CHUNK
        st = jax.lax.while_loop(lambda s: going(s) & (s["left"][-1] < done + CHUNK), step, st)
        st["exits"] = jax.lax.dynamic_update_slice(st["exits"], st["recent"], (done, jnp.zeros((), done.dtype)))
        st["recent"] = jnp.full_like(st["recent"], INF)
        return st

    return jax.lax.while_loop(going, chunk, state)


def _cleaning(shape: EventShape) -> list[int]:
    """The stations with the cleaning rule."""
    return [j for j in range(shape.base.stations) if shape.base.cleans(j)]


def _ask_clean(st, j, on, major, then, consts):
    """Station ``j`` asks for a clean now (when ``on``; ``major``: the kind decided so far): its skid first if that
    kind of clean uses one, then its crew; then it goes on to phase ``then``."""
    pools = consts["pools"]
    skid = jnp.any(pools["on_skid"][j]) & jnp.where(major, pools["skid_major"][j], pools["skid_minor"][j])
    st["phase"] = st["phase"].at[j].set(jnp.where(on, jnp.where(skid, SKID, CLEAN), st["phase"][j]))
    st["then"] = st["then"].at[j].set(jnp.where(on, then, st["then"][j]))
    st["major"] = st["major"].at[j].set(jnp.where(on, major, st["major"][j]))
    return st


def _begin(st, on, shape, consts):
    """Stations ``on`` begin their batch now: a clean first where the equipment stood clean or dirty past its hold
    time (``kernel._stale``), then the changeover when the product changes (its crew asked for: ``SETUP_CREW``), then
    the processing crew (a phase that needs no crew asks for none: granted by the serve step)."""
    t = st["t"]
    then = jnp.where(st["change"], SETUP_CREW, CREW) if "change" in st else jnp.full_like(st["phase"], CREW)
    st["asked"] = jnp.where(on, t, st["asked"])  # (the phase: ``_ask_clean`` or ``_change_clean``)
    stale = jnp.zeros_like(on)
    for j in _cleaning(shape):
        need, major = _stale(t, st["stations"][j], j, consts)
        st = _ask_clean(st, j, on[j] & need, major, CHANGE if shape.base.change_cleans(j) else then[j], consts)
        stale = stale.at[j].set(on[j] & need)
    return _change_clean(st, on & ~stale, shape, consts)


def _change_clean(st, on, shape, consts):
    """Stations ``on`` go on to their changeover (or processing): first its major clean where the change needs one
    and none was done since the last batch (``changeovers.change``)."""
    then = jnp.where(st["change"], SETUP_CREW, CREW) if "change" in st else jnp.full_like(st["phase"], CREW)
    st["phase"] = jnp.where(on, then, st["phase"])
    st["asked"] = jnp.where(on, st["t"], st["asked"])
    for j in range(shape.base.stations):
        if shape.base.change_cleans(j):
            need = on[j] & st["change_clean"][j] & ~st["stations"][j]["hygiene"]["major_since"]
            st = _ask_clean(st, j, need, jnp.bool_(True), then[j], consts)
    return st


def _next_change_major(st, j: int, shape: EventShape, consts) -> jax.Array:
    """The batch that will come next to station ``j`` is already known (``runtime.next_product``: the release plan's
    next at a pulling first station, else the first batch waiting in its buffer) and the change to it from the
    batch just done needs a major clean."""
    base, t = shape.base, st["t"]
    k = st["taken"][j]
    if j == 0 and base.pull:  # (a mix's next product is not known: only a plan's)
        known, batch = jnp.bool_(base.seq_from_design) & (k < consts["n_in"]), k
    elif j == 0:
        known, batch = consts["arrivals"][jnp.minimum(k, base.batches - 1)] <= t, k
    else:
        known = _puts(st)[j - 1] > k
        batch = st["queue"][j, jnp.mod(k, shape.kept)] if "queue" in st else k
    upcoming = consts["seq"][jnp.minimum(batch, base.batches - 1)] if base.products > 1 else 0
    return known & consts["change_major"][j, jnp.maximum(st["prev"][j], 0), upcoming]


def _after(st, on, shape, consts):
    """Stations ``on`` are done with their batch now: the clean after it, if any (``kernel._due_clean``), then the
    next batch."""
    t = st["t"]
    st["phase"] = jnp.where(on, TAKE, st["phase"])
    for j in _cleaning(shape):
        change_major = _next_change_major(st, j, shape, consts) if shape.base.change_cleans(j) else False
        cleans, major = _due_clean(t, st["stations"][j], j, consts, change_major)
        st["asked"] = st["asked"].at[j].set(jnp.where(on[j] & cleans, t, st["asked"][j]))
        st = _ask_clean(st, j, on[j] & cleans, major, TAKE, consts)
    return st


def _ended(st, on, shape, draws, consts, w0, w1):
    """Stations ``on`` end a timed phase now. Processing: its crew goes (back to work if on shift: ``_free``), the
    batch is passed on. A clean: its crew and skid place go, then the phase it was for (a changeover's or the
    processing crew asked for now, or the next batch). The changeover: its crew goes, the processing crew is asked for.
    A repair after the wait for a batch: the batch begins (``_begin``); after the wait for a place: ``_after``. A
    batch rejected at the end of processing (``_reject``) leaves the line: the station goes on to ``_after``."""
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
        st = _after(st, rejected, shape, consts)
    if any(shape.base.calendar_failures):
        st = _begin(st, on & (phase == HELD), shape, consts)
        st = _after(st, on & (phase == AFTER), shape, consts)
    return st


def _leave(st, on, shape, seq, draws, consts, w0, w1):
    """Stations ``on`` pass their batches on (into the next buffer, or out of the line), blocked since they
    finished."""
    base, t, batch = shape.base, st["t"], st["batch"]
    st["blocked"] = st["blocked"] + jnp.where(on, _overlap(st["fin"], t, w0, w1), 0.0)
    if _gaps(base):  # the batch passed on goes to its buffer's next place with its times; the clocks that start now
        for h, (source, _) in enumerate(base.holds):
            st["holding"] = st["holding"].at[1 + h, source].set(jnp.where(on[source], t, st["holding"][1 + h, source]))
        into, place = jnp.arange(1, base.stations), jnp.mod(_puts(st), shape.kept)
        st["queue"] = st["queue"].at[into, place].set(jnp.where(on[:-1], batch[:-1], st["queue"][into, place]))
        carried = st["carried"][:, into, place]
        st["carried"] = st["carried"].at[:, into, place].set(jnp.where(on[None, :-1], st["holding"][:, :-1], carried))
    st["left"] = st["left"] + on
    st = _count_exit(st, on[-1], shape, seq, draws, consts, w0, w1)
    held = jnp.zeros_like(on)
    for j in range(base.stations - 1):  # (the last station is never blocked)
        if base.on_calendar(j):  # failures while blocked: down, not blocked; a repair under way holds the station
            s = st["stations"][j] = dict(st["stations"][j])
            was = on[j] & (t > st["fin"][j])
            ready, nf, f, down, before = _wait_over(t, s["nf"][0], s["f"][0], draws["ttf"][j], draws["ttr"][j], 0,
                                                    was, w0, w1)  # fmt: skip
            s["nf"], s["f"], s["acc"] = s["nf"].at[0].set(nf), s["f"].at[0].set(f), s["acc"].at[2].add(down)
            st["blocked"] = st["blocked"].at[j].add(-before)
            held = held.at[j].set(was & (ready > t))
            st["fin"] = st["fin"].at[j].set(jnp.where(held[j], t + (ready - t), st["fin"][j]))
    st["phase"] = jnp.where(held, AFTER, st["phase"])
    st = _after(st, on & ~held, shape, consts)  # the clean after the batch, if any, then the next batch
    # the last batch left the first station: the run may need more batches than drawn
    st["limit"] = jnp.where(on[0] & (batch[0] == base.batches - 1), t, st["limit"])
    if base.record:
        n = jnp.arange(base.stations)
        st["departure"] = st["departure"].at[batch, n].set(jnp.where(on, t, st["departure"][batch, n]))
    return st


def _shift(st, p, on, shape, consts):
    """Pool ``p``'s shift starts or ends now (``Operators._shifts``)."""
    cal, edges, t = consts["pools"]["calendars"][p], shape.pools[p], st["t"]
    change = _next_change(t, cal, edges)
    st["on_shift"] = st["on_shift"].at[p].set(jnp.where(on, _working(t, cal), st["on_shift"][p]))
    st["shift_at"] = st["shift_at"].at[p].set(jnp.where(on, t + (change - t), st["shift_at"][p]))
    return st


def _free(st, design) -> jax.Array:
    """Operators of each pool free now: on shift and not busy (of the design's headcount)."""
    return jnp.where(st["on_shift"], design["headcount"] - st["busy"], 0)


def _order(waiting, asked) -> jax.Array:
    """[i, j]: station j's request comes before station i's (key order: time of request, station; both waiting)."""
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
        place = jnp.sum(earlier & mine[None, :], axis=1)  # waiting for this skid before each station
        granted = granted | (mine & (place < pools["skid_places"][k] - users))
    st["on_skid"] = st["on_skid"] | granted
    st["phase"] = jnp.where(granted, CLEAN, st["phase"])
    st["asked"] = jnp.where(granted, t, st["asked"])
    return st


def _grants(st, go, design, consts) -> tuple[jax.Array, jax.Array]:
    """The serve step's grants (``Operators.serve``): the waiting requests in key order (time of request, station),
    first fit, each crew the first free operators of the station's pools in pool order (``Operators._grant``).
    (granted per station, crew per station and pool)."""
    pools = consts["pools"]
    n = st["phase"].shape[0]
    phase = st["phase"]
    waiting = go & ((phase == CREW) | (phase == CLEAN) | (phase == SETUP_CREW))
    needs = jnp.select([phase == CLEAN, phase == SETUP_CREW], [pools["clean_need"], pools["need_setup"]], pools["need"])
    rank = jnp.sum(_order(waiting, st["asked"]), axis=1)  # each station's place in key order
    free, granted, crew = _free(st, design), jnp.zeros(n, bool), st["crew"]
    in_room = pools["in_room"]  # [station, room]: a room's people are the crews its stations hold
    people = jnp.sum(jnp.where(in_room, jnp.sum(crew, axis=1)[:, None], 0), axis=0)
    for i in range(n):
        at = rank == i
        need = jnp.sum(jnp.where(at, needs, 0))
        qualified_free = jnp.where(jnp.any(at[:, None] & pools["qualified"], axis=0), free, 0)
        ok = jnp.any(at & waiting) & (jnp.sum(qualified_free) >= need)
        if in_room.shape[1]:  # no more people in the station's room than it allows (checked first by the engine)
            room = jnp.any(at[:, None] & in_room, axis=0)
            ok = ok & jnp.all(~room | (people + need <= pools["max_people"]))
            people = people + jnp.where(room & ok, need, 0)
        before = jnp.cumsum(qualified_free) - qualified_free  # free operators of the pools before each pool
        took = jnp.where(ok, jnp.clip(need - before, 0, qualified_free), 0).astype(jnp.int32)
        free = free - took
        crew = jnp.where(at[:, None] & ok, took[None, :], crew)
        granted = granted | (at & ok)
    return granted, crew


def _serve(st, go, shape, design, seq, draws, consts, w0, w1):
    """The serve step (when ``go``): grant the waiting requests (``_grants``); each granted station starts its
    processing or its clean now (``kernel._clean``: major as decided, or when it stood dirty past its hold)."""
    base, t = shape.base, st["t"]
    if "on_skid" in st:
        st = _serve_skids(st, go, consts)
    granted, crew = _grants(st, go, design, consts)
    st["busy"] = st["busy"] + jnp.sum(jnp.where(granted[:, None], crew, 0), axis=0, dtype=jnp.int32)
    st["crew"] = crew
    cleaning = granted & (st["phase"] == CLEAN)
    changing = granted & (st["phase"] == SETUP_CREW)
    granted = granted & (st["phase"] == CREW)
    speed = design["speed"]
    for j in range(base.stations):
        on, batch = granted[j], st["batch"][j]
        p = seq[batch] if base.products > 1 else jnp.zeros((), jnp.int32)
        s = dict(st["stations"][j])
        if base.has_setup[j]:  # the changeover's time (the pair's stream, in the order of its changeovers here), then
            pa = jnp.maximum(st["from"][j], 0)  # its line clearance (the station's stream), under one crew
            timed = changing[j] & consts["setup_exists"][j, pa, p]
            index = jnp.minimum(s["setups"][pa, p], draws["setup"].shape[-1] - 1)
            end, down = _timed(t, draws["setup"][j, pa, p, index], timed, s, j, 0, base, draws, w0, w1)
            end = jnp.where(timed, end, t)
            s["setups"] = s["setups"].at[pa, p].add(jnp.where(timed, 1, 0))
            if "clearances" in s:
                clear = changing[j] & consts["change_clearance"][j, pa, p]
                d = draws["line_clearance"][j, jnp.minimum(s["clearances"], draws["line_clearance"].shape[-1] - 1)]
                cleared, more = _timed(end, d, clear, s, j, 0, base, draws, w0, w1)
                end, down = jnp.where(clear, cleared, end), down + jnp.where(clear, more, 0.0)
                s["clearances"] = s["clearances"] + jnp.where(clear, 1, 0)
            s["acc"] = s["acc"].at[1].add(jnp.where(changing[j], _overlap(t, end, w0, w1) - down, 0.0))
            st["fin"] = st["fin"].at[j].set(jnp.where(changing[j], end, st["fin"][j]))
        qty = consts["qty_in"][j, p]
        if base.rated(j):  # start-up plus the batch's units over the effective rate, noise in start order
            startup, effective = consts["rate"][j, 0], consts["rate"][j, 1]
            noise = draws["rate_noise"][j, jnp.minimum(jnp.sum(s["count"]), draws["rate_noise"].shape[-1] - 1)]
            work = _div(startup + _div(qty, effective) * noise, speed[j])
        else:
            index = jnp.minimum(s["count"][p], base.batches - 1)  # the station's draws of the product, in start order
            work = _div(draws["process"][j, p, index], speed[j])
        finish, s = _processed_on(s, j, 0, t, work, on, base, draws, w0, w1, (p, qty, speed, consts))
        s["count"] = s["count"].at[p].add(jnp.where(on, 1, 0))
        if base.cleans(j):
            major = st["major"][j] | _expired(t, s, j, consts)
            cleaned, s = _clean(t, major, cleaning[j], s, j, base, draws, w0, w1)
            s["hygiene"] = _processed(s["hygiene"], finish, _div(consts["masses"][p] * qty, consts["sizes"][p]), on)
            finish = jnp.where(cleaning[j], cleaned, finish)
        st["stations"][j] = s
        st["fin"] = st["fin"].at[j].set(jnp.where(on | cleaning[j], finish, st["fin"][j]))
    st["phase"] = jnp.select([granted, cleaning, changing], [PROCESS, CLEANING, SETUP], st["phase"])
    if "began" in st:  # (when each processing began: ``_returns_due``)
        st["began"] = jnp.where(granted, t, st["began"])
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
    """What ``kernel._processed_on`` and ``kernel._lane_kpis`` keep of a station."""
    base = shape.base
    s = {
        "acc": jnp.zeros(len(STATES)), "count": jnp.zeros(base.products, jnp.int32), "last_out": jnp.full((), -INF),
        "oee_ideal": jnp.zeros(base.products), "oee_qty": jnp.zeros(base.products),
        "oee_finishes": jnp.zeros((), jnp.int32), "oee_credit": jnp.zeros(()), "oee_tail": jnp.zeros(()),
    }  # fmt: skip
    if base.on_calendar(j):  # ``CalendarClock``: the first failure a time to failure after the start (0)
        s["nf"], s["f"] = draws["ttf"][j, :1, 0], jnp.zeros(1, jnp.int32)
    elif base.has_failures[j]:
        s["until"], s["f"] = draws["ttf"][j, :1, 0], jnp.zeros(1, jnp.int32)
    if base.has_setup[j]:  # changeovers made per (previous, next) product: the draws they used
        s["setups"] = jnp.zeros((base.products, base.products), jnp.int32)
    if base.changeover_cleans and base.changeover_cleans[j]:  # line clearances made: the draws they used
        s["clearances"] = jnp.zeros((), jnp.int32)
    if base.cleans(j):
        s["hygiene"] = _hygiene_init()
    return s


def lane(shape: EventShape, design: dict[str, Any], seq: jax.Array, draws: dict[str, Any], consts: dict[str, Any]):
    """Simulate one design in one replication event by event; returns its KPIs (``kernel.lane``'s)."""
    base = shape.base
    n, n_pools, n_batches = base.stations, len(shape.pools), base.batches
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
        "phase": jnp.full(n, TAKE, jnp.int32), "fin": jnp.full(n, INF), "batch": jnp.zeros(n, jnp.int32),
        "asked": jnp.zeros(n), "crew": jnp.zeros((n, n_pools), jnp.int32),
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
    if any(base.has_setup):  # the product each station processed last (-1: none yet), whether it changes over
        state.update(prev=jnp.full(n, -1, jnp.int32), change=jnp.zeros(n, bool), **{"from": jnp.full(n, -1, jnp.int32)})
    if any(base.change_cleans(j) for j in range(n)):  # the change to the batch taken needs a major clean
        state["change_clean"] = jnp.zeros(n, bool)
    if base.pull:
        state["released"] = jnp.full(shape.kept, INF)
    if _gaps(base):  # the batch at each place of each buffer, its times and those of each station's batch, scraps
        state["queue"] = jnp.zeros((n, shape.kept), jnp.int32)
        state["carried"] = jnp.full((1 + len(base.holds), n, shape.kept), INF)
        state["holding"] = jnp.full((1 + len(base.holds), n), INF)
        state["scrapped"], state["rejected"] = jnp.zeros((), jnp.int32), jnp.zeros((), int)
    if shape.investigated:  # batches in investigation (a slot each: back at, to, batch, times), those put back
        r, h = shape.returns, len(base.holds)
        state.update(back_at=jnp.full(r, INF), back_to=jnp.zeros(r, jnp.int32), back_batch=jnp.zeros(r, jnp.int32),
                     back_times=jnp.full((1 + h, r), INF), returned=jnp.zeros(n, jnp.int32),
                     investigations=jnp.zeros(h, jnp.int32), returns_used=jnp.zeros((), jnp.int32),
                     back_sent=jnp.full(r, INF), began=jnp.full(n, INF))  # fmt: skip
    if base.qc:  # each exit's time and release time, for QC release after the loop (``_in_chunks``, ``_qc_totals``)
        state["exits"], state["recent"] = jnp.full((n_batches + CHUNK, 3), INF), jnp.full((CHUNK, 3), INF)
    if _cleaning(shape):  # a clean's kind and the phase after it
        state["then"], state["major"] = jnp.full(n, TAKE, jnp.int32), jnp.zeros(n, bool)
    if consts["pools"]["on_skid"].shape[1]:  # the stations whose cleans hold a skid place
        state["on_skid"] = jnp.zeros(n, bool)
    if base.record:
        state["departure"] = jnp.full((n_batches, n), INF)

    def going(st):
        t = jnp.min(_due(st, shape, design, draws, n_in))
        out = st["left"][n - 1] + (st["scrapped"] if _gaps(base) else 0)  # batches that left the line
        unfinished = base.finite_plan & (out < n_in) & (t < INF)
        return (st["steps"] < shape.steps) & ((t <= w1) | unfinished)

    def step(st):
        st = {**st, "stations": [dict(s) for s in st["stations"]]}
        due = _due(st, shape, design, draws, n_in)
        t = st["t"] = jnp.min(due)
        # the ordinary events due now, one kind after another, each seeing what the one before did (a buffer has one
        # station before it and one after: what one of them does after the other at this instant, the next step sees)
        on = due == t
        st = _ended(st, on[:n] & _timed_phase(st["phase"], shape), shape, draws, consts, w0, w1)
        ready = (_due(st, shape, design, draws, n_in)[:n] == t) & (st["phase"] == LEAVE)
        st = _leave(st, ready, shape, seq, draws, consts, w0, w1)
        if shape.investigated:  # batches back from investigation, put after the pass-ons asked before them
            st = _come_back(st, _due(st, shape, design, draws, n_in)[n + n_pools :] == t, shape)
        ready = (_due(st, shape, design, draws, n_in)[:n] == t) & (st["phase"] == TAKE)
        st = _take(st, ready, shape, seq, draws, consts, w0, w1)
        for p in range(n_pools):
            if shape.pools[p]:  # (a pool always on shift has no change: never due)
                st = _shift(st, p, on[n + p], shape, consts)
        # nothing more happens at this instant: its serve step
        serve = jnp.min(_due(st, shape, design, draws, n_in)) > t
        st = _serve(st, serve, shape, design, seq, draws, consts, w0, w1)
        st["steps"] = st["steps"] + 1
        return st

    final = _in_chunks(going, step, state) if base.qc else jax.lax.while_loop(going, step, state)
    if base.qc:
        totals, ys = _qc_totals(final, shape, seq, draws, consts)
    else:
        totals, ys = {k: final[k] for k in ("count", "lead_sum", "first", "final", "made", "last_exit")}, {}
        totals.update(rejected=jnp.zeros((), int), release_lead=jnp.full((), jnp.nan))
    if _gaps(base):  # scrapped and rejected batches (in the window)
        totals["rejected"] = totals["rejected"] + final["rejected"]
    stations = []
    last = jnp.maximum(totals["last_exit"], jnp.max(jnp.stack([s["last_out"] for s in final["stations"]])))
    end = jnp.minimum(w1, last) if base.finite_plan else w1  # (the engine's, as ``_lane_kpis``; QC's; scraps')
    for j, s in enumerate(final["stations"]):
        blocked_now = final["phase"][j] == LEAVE
        still = jnp.where(blocked_now, _overlap(final["fin"][j], INF, w0, w1), 0.0)  # at the end
        if base.on_calendar(j):  # the failures of a wait under way at the end (``RulesUnit.finish_run``)
            starved = (final["phase"][j] == TAKE) & (j > 0 or not base.pull)
            _, _, _, down, before = _wait_over(end, s["nf"][0], s["f"][0], draws["ttf"][j], draws["ttr"][j], 0,
                                               starved | (blocked_now & (j < n - 1)), w0, w1)  # fmt: skip
            s = {**s, "acc": s["acc"].at[2].add(down)}
            still = still - jnp.where(blocked_now, before, 0.0)
        blocked = final["blocked"][j] + still
        stations.append({**s, "acc": s["acc"].at[3].add(blocked), "limit": final["limit"] if j == 0 else INF})
    out = _lane_kpis(base, stations, totals, design["units"], consts)
    if base.record:  # (a recording lane keeps every batch's release time: ``EventShape.kept``)
        index = jnp.arange(n_batches, dtype=jnp.int32)
        ys.update(departure=final["departure"], batch=jnp.broadcast_to(index[:, None], (n_batches, n)),
                  valid=final["departure"] < INF, release=_released(final, index, shape, draws))  # fmt: skip
        for key in ("qc_start", "qc_end", "qc_out", "qc_approved") if base.qc else ():  # per exit: in its batch's row
            empty = jnp.zeros_like(ys[key]) if key == "qc_approved" else jnp.full_like(ys[key], INF)
            ys[key] = empty.at[ys["exit_number"]].set(ys[key], mode="drop")
        out.update(_recorded(base, ys))
    # a lane stopped by the bound on steps is cut short: the evaluator runs it again with more batches (more steps)
    if shape.investigated:  # (the evaluator runs a lane again with more slots when it had more in investigation)
        out["returns_used"] = final["returns_used"]
    return {**out, "truncated": out["truncated"] | (final["steps"] >= shape.steps)}


@functools.lru_cache(maxsize=16)
def compiled_event_kernel(shape: EventShape):
    """``f(design, seq, draws, consts)`` over [designs] x [replications], jitted once per shape (as
    ``kernel.compiled_kernel``; ``consts["pools"]``: ``lines.pool_constants``)."""
    return over_designs(functools.partial(lane, shape), shape.base.seq_from_design)


@functools.lru_cache(maxsize=4)
def event_gradient_kernel(shape: EventShape):
    """``kernel.gradient_kernel`` of the event lane."""
    return with_gradient(functools.partial(lane, shape), shape.base.seq_from_design)
