"""The event-stepping kernel: one lane is one design in one replication, stepped event by event.

    >>> run = compiled_event_kernel(EventShape(shape, pools=(4, 0)))  # jitted, cached per static shape
    >>> out = run(design, seq, draws, consts)      # vmapped over designs and replications, as ``compiled_kernel``

The scan kernel (``optimizers.kernel``) computes departures batch by batch, which cannot follow a
resource that stations share in time order (operators on shifts). This kernel steps the line's
events in time order in a ``lax.while_loop`` instead, on fixed-size state:

- per station (one unit): its phase (``TAKE`` a batch, wait for its ``CREW``, ``PROCESS``, ``LEAVE``; with the
  cleaning rule also wait for a clean's crew, ``CLEAN``, and ``CLEANING``), the batch it holds, when its processing
  or clean ends, when it asked for its crew, the operators it holds per pool, its hygiene (``kernel._hygiene_init``);
- per buffer: the batches waiting in it. A station of one unit passes its batches on in the order it took
  them, so the batches before station j are those station j-1 passed on and j has not taken yet: two counts;
- per operator pool: on shift or not, operators busy (of the design's headcount, an input of each design as the
  buffers are), the next shift change (the engine's clock:
  ``t + (next_change(t) - t)``, ``WeeklyCalendar``'s arithmetic in ``kernel._working``, ``kernel._next_change``).

Each step is one instant: the earliest time any ordinary event is due (a station that can take a batch, a
finish, a station that can pass its batch on, a shift change). It runs every event due then, kind after
kind (finishes, then stations passing batches on, then stations taking them, each kind seeing what the one
before did, then shift changes); what they make possible at the same time (a station blocked until the one
after it took its batch) is due at the same time in the next step. When nothing more is due at the instant,
the step ends with its *serve step* (``twin.engine.rules.arbiter``, docs/batch-rules.md "Who goes first at
one instant"): the waiting crew requests are served in key order (time of request, station index), first
fit (a request that cannot be served yet is passed over by a later one that can), each crew taken from the
station's pools in pool order (``Operators._grant``). Free operators are ``headcount - busy`` on shift and
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
QC release after the line shares nothing with it (the analysts are their own pool): a lane with QC keeps each exit's
time and release time (``_count_exit``, written into the array of every exit once per chunk of exits: ``_in_chunks``;
without QC, running totals only) and after the loop runs the scan kernel's stage and totals on them (``_qc_totals``).
Scope (``lines.events_outside``): serial lines of single-unit stations, finite or unlimited buffers,
every release mode, products, operating-basis failures, rate-based stations, cleaning without a skid, operator
pools on shift calendars (the crews of processing and cleaning), QC release.
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
    _lane_kpis,
    _next_change,
    _overlap,
    _processed,
    _processed_on,
    _qc_stage,
    _recorded,
    _stale,
    _with_levers,
    _working,
    over_designs,
    with_gradient,
)

CHUNK = 64  # with QC, exits kept in the loop before they are written into the array of every exit (``_in_chunks``)

# a station's phase: take a batch, wait for the processing crew, process, pass the batch on, wait for a clean's crew,
# clean (then ``then``: wait for the processing crew after a clean before the batch, take the next after one after it)
TAKE, CREW, PROCESS, LEAVE, CLEAN, CLEANING = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class EventShape:
    """The scan kernel's ``Shape`` (sizes, products, release, failures, recording) and, per operator pool, the
    number of edges of its weekly calendar (0: always on shift)."""

    base: Shape
    pools: tuple[int, ...]
    ring: int = 0  # release times kept (pulled batches), > the batches the line holds at once; 0: every batch's

    @property
    def kept(self) -> int:
        """How many release times a lane keeps, by batch modulo (a line of single units lets its batches out in the
        order it took them: a batch's slot is free once it has left)."""
        return self.ring if 0 < self.ring < self.base.batches else self.base.batches

    @property
    def steps(self) -> int:
        """Most steps of a lane (a step is an instant, or a station's cascade within one): a few per batch and station,
        plus shift changes; only a line whose crews can never be served reaches it."""
        return 16 * self.base.batches * self.base.stations + 4096


def _due(st: dict[str, Any], shape: EventShape, design: dict[str, Any], draws: dict[str, Any], n_in) -> jax.Array:
    """When each station's next ordinary event happens (inf: none until another event), then each pool's shift
    change. A station taking or passing on a batch does so now if it can (it could not earlier)."""
    base, t, phase = shape.base, st["t"], st["phase"]
    k = st["taken"][0]
    first = t if base.pull else jnp.maximum(t, draws["arrivals"][jnp.minimum(k, base.batches - 1)])
    queued = st["left"][:-1] > st["taken"][1:]
    take = jnp.concatenate([jnp.where(k < n_in, first, INF)[None], jnp.where(queued, t, INF)])
    # a place downstream: ``Buffer``'s put (its places, and the unit waiting for a batch); out of the last station
    b, waiting = design["buffers"][1:], st["left"][:-1] - st["taken"][1:]
    room = jnp.concatenate([(b < 0) | (waiting < b + (phase[1:] == TAKE)), jnp.ones(1, bool)])
    leave = jnp.where(room, t, INF)
    times = jnp.select([phase == TAKE, (phase == PROCESS) | (phase == CLEANING), phase == LEAVE],
                       [take, st["fin"], leave], INF)
    return jnp.concatenate([times, st["shift_at"]])


def _take(st, on, shape, seq, draws, consts, *_):
    """Stations ``on`` take their next batch (the first station: releases it, or takes the next arrival) and ask
    for their crews: a clean's first where the equipment stood clean or dirty past its hold time
    (``kernel._stale``), processing's otherwise."""
    t, k = st["t"], st["taken"]
    st["batch"] = jnp.where(on, k, st["batch"])
    st["taken"] = k + on
    st["asked"] = jnp.where(on, t, st["asked"])
    st["phase"] = jnp.where(on, CREW, st["phase"])
    for j in _cleaning(shape):
        need, major = _stale(t, st["stations"][j], j, consts)
        st = _ask_clean(st, j, on[j] & need, major, CREW)
    if shape.base.pull:  # the release time of a pulled batch is now (an arrival's is drawn: ``_released``)
        at = jnp.mod(k[0], shape.kept)
        st["released"] = st["released"].at[at].set(jnp.where(on[0], t, st["released"][at]))
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
    if shape.base.qc:
        at = jnp.mod(st["left"][-1] - 1, CHUNK)  # (``_leave`` has counted this exit)
        row = jnp.stack([t, _released(st, out, shape, draws)])
        st["recent"] = st["recent"].at[at].set(jnp.where(on, row, st["recent"][at]))
        return st
    p = seq[out] if shape.base.products > 1 else jnp.zeros((), jnp.int32)
    counted = on & (t > w0) & (t <= w1)
    st["count"] = st["count"] + counted
    st["lead_sum"] = st["lead_sum"] + jnp.where(counted, t - _released(st, out, shape, draws), 0.0)
    st["first"] = jnp.where(counted, jnp.minimum(st["first"], t), st["first"])
    st["final"] = jnp.where(counted, t, st["final"])
    st["made"] = st["made"] + jnp.where(counted & (jnp.arange(shape.base.products) == p), consts["sizes"][p], 0.0)
    st["last_exit"] = jnp.where(on, t, st["last_exit"])
    return st


def _qc_totals(final, shape: EventShape, seq, draws, consts) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """QC release after the line (``kernel._qc_stage``) on the exits a lane kept, and what the KPIs need of them
    (``kernel._exit_totals``), as the scan kernel computes them: (totals, outputs per exit). A serial line of single
    units lets its batches out in the order it took them: the n-th exit is batch n."""
    base = shape.base
    index = jnp.arange(base.batches, dtype=jnp.int32)
    product = seq[index] if base.products > 1 else jnp.zeros(base.batches, jnp.int32)
    exit_t = final["exits"][: base.batches, 0]
    ys = {"exit": exit_t, "exit_valid": exit_t < INF, "exit_batch": index, "exit_product": product,
          "exit_qty": consts["sizes"][product], "release": final["exits"][: base.batches, 1]}  # fmt: skip
    ys.update(_qc_stage(base, exit_t, ys["exit_valid"], draws, consts))
    return _exit_totals(base, ys, consts), ys


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


def _ask_clean(st, j, on, major, then):
    """Station ``j`` asks for a clean's crew now (when ``on``; ``major``: the kind decided so far), then goes on to
    phase ``then``."""
    st["phase"] = st["phase"].at[j].set(jnp.where(on, CLEAN, st["phase"][j]))
    st["then"] = st["then"].at[j].set(jnp.where(on, then, st["then"][j]))
    st["major"] = st["major"].at[j].set(jnp.where(on, major, st["major"][j]))
    return st


def _finish(st, on):
    """Stations ``on`` end their processing or clean: their crews go (back to work if on shift: ``_free``); after a
    clean, the phase it was for (asking for the processing crew now)."""
    st["busy"] = st["busy"] - jnp.sum(jnp.where(on[:, None], st["crew"], 0), axis=0, dtype=jnp.int32)
    st["crew"] = jnp.where(on[:, None], 0, st["crew"])
    after = st.get("then", CREW)
    st["asked"] = jnp.where(on & (st["phase"] == CLEANING) & (after == CREW), st["t"], st["asked"])
    st["phase"] = jnp.where(on, jnp.where(st["phase"] == PROCESS, LEAVE, after), st["phase"])
    return st


def _leave(st, on, shape, seq, draws, consts, w0, w1):
    """Stations ``on`` pass their batches on (into the next buffer, or out of the line), blocked since they
    finished."""
    base, t, batch = shape.base, st["t"], st["batch"]
    st["blocked"] = st["blocked"] + jnp.where(on, _overlap(st["fin"], t, w0, w1), 0.0)
    st["left"] = st["left"] + on
    st["phase"] = jnp.where(on, TAKE, st["phase"])
    st = _count_exit(st, on[-1], shape, seq, draws, consts, w0, w1)
    for j in _cleaning(shape):  # the clean after the batch (``kernel._due_clean``), if any
        cleans, major = _due_clean(t, st["stations"][j], j, consts)
        st["asked"] = st["asked"].at[j].set(jnp.where(on[j] & cleans, t, st["asked"][j]))
        st = _ask_clean(st, j, on[j] & cleans, major, TAKE)
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


def _grants(st, go, design, consts) -> tuple[jax.Array, jax.Array]:
    """The serve step's grants (``Operators.serve``): the waiting requests in key order (time of request, station),
    first fit, each crew the first free operators of the station's pools in pool order (``Operators._grant``).
    (granted per station, crew per station and pool)."""
    pools = consts["pools"]
    n = st["phase"].shape[0]
    waiting = go & ((st["phase"] == CREW) | (st["phase"] == CLEAN))
    needs = jnp.where(st["phase"] == CLEAN, pools["clean_need"], pools["need"])  # each request's operators
    key, index = jnp.where(waiting, st["asked"], INF), jnp.arange(n)
    earlier = (key[None, :] < key[:, None]) | ((key[None, :] == key[:, None]) & (index[None, :] < index[:, None]))
    rank = jnp.sum(earlier, axis=1)  # each station's place in key order
    free, granted, crew = _free(st, design), jnp.zeros(n, bool), st["crew"]
    for i in range(n):
        at = rank == i
        need = jnp.sum(jnp.where(at, needs, 0))
        qualified_free = jnp.where(jnp.any(at[:, None] & pools["qualified"], axis=0), free, 0)
        ok = jnp.any(at & waiting) & (jnp.sum(qualified_free) >= need)
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
    granted, crew = _grants(st, go, design, consts)
    st["busy"] = st["busy"] + jnp.sum(jnp.where(granted[:, None], crew, 0), axis=0, dtype=jnp.int32)
    st["crew"] = crew
    cleaning = granted & (st["phase"] == CLEAN)
    granted = granted & (st["phase"] == CREW)
    speed = design["speed"]
    for j in range(base.stations):
        on, batch = granted[j], st["batch"][j]
        p = seq[batch] if base.products > 1 else jnp.zeros((), jnp.int32)
        s = dict(st["stations"][j])
        qty = consts["sizes"][p]
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
    st["phase"] = jnp.where(granted, PROCESS, jnp.where(cleaning, CLEANING, st["phase"]))
    return st


def _station_init(shape: EventShape, j: int, draws: dict[str, Any]) -> dict[str, Any]:
    """What ``kernel._processed_on`` and ``kernel._lane_kpis`` keep of a station."""
    base = shape.base
    s = {
        "acc": jnp.zeros(len(STATES)), "count": jnp.zeros(base.products, jnp.int32), "last_out": jnp.full((), -INF),
        "oee_ideal": jnp.zeros(base.products), "oee_qty": jnp.zeros(base.products),
        "oee_finishes": jnp.zeros((), jnp.int32), "oee_credit": jnp.zeros(()), "oee_tail": jnp.zeros(()),
    }  # fmt: skip
    if base.has_failures[j]:
        s["until"], s["f"] = draws["ttf"][j, :1, 0], jnp.zeros(1, jnp.int32)
    if base.cleans(j):
        s["hygiene"] = _hygiene_init()
    return s


def lane(shape: EventShape, design: dict[str, Any], seq: jax.Array, draws: dict[str, Any], consts: dict[str, Any]):
    """Simulate one design in one replication event by event; returns its KPIs (``kernel.lane``'s)."""
    base = shape.base
    n, n_pools, n_batches = base.stations, len(shape.pools), base.batches
    consts = _with_levers(design, consts)  # (the cleaning due thresholds of the design)
    w0, w1 = consts["warmup"], consts["horizon"]
    n_in = design["batches"]
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
    if base.pull:
        state["released"] = jnp.full(shape.kept, INF)
    if base.qc:  # each exit's time and release time, for QC release after the loop (``_in_chunks``, ``_qc_totals``)
        state["exits"], state["recent"] = jnp.full((n_batches + CHUNK, 2), INF), jnp.full((CHUNK, 2), INF)
    if _cleaning(shape):  # a clean's kind and the phase after it
        state["then"], state["major"] = jnp.full(n, TAKE, jnp.int32), jnp.zeros(n, bool)
    if base.record:
        state["departure"] = jnp.full((n_batches, n), INF)

    def going(st):
        t = jnp.min(_due(st, shape, design, draws, n_in))
        unfinished = base.finite_plan & (st["left"][n - 1] < n_in) & (t < INF)
        return (st["steps"] < shape.steps) & ((t <= w1) | unfinished)

    def step(st):
        st = {**st, "stations": [dict(s) for s in st["stations"]]}
        due = _due(st, shape, design, draws, n_in)
        t = st["t"] = jnp.min(due)
        # the ordinary events due now, one kind after another, each seeing what the one before did (a buffer has one
        # station before it and one after: what one of them does after the other at this instant, the next step sees)
        on = due == t
        st = _finish(st, on[:n] & ((st["phase"] == PROCESS) | (st["phase"] == CLEANING)))
        for phase, event in ((LEAVE, _leave), (TAKE, _take)):
            ready = (_due(st, shape, design, draws, n_in)[:n] == t) & (st["phase"] == phase)
            st = event(st, ready, shape, seq, draws, consts, w0, w1)
        for p in range(n_pools):
            if shape.pools[p]:  # (a pool always on shift has no change: never due)
                st = _shift(st, p, on[n + p], shape, consts)
        # nothing more happens at this instant: its serve step
        serve = jnp.min(_due(st, shape, design, draws, n_in)) > t
        st = _serve(st, serve, shape, design, seq, draws, consts, w0, w1)
        st["steps"] = st["steps"] + 1
        return st

    final = _in_chunks(going, step, state) if base.qc else jax.lax.while_loop(going, step, state)
    stations = []
    for j, s in enumerate(final["stations"]):
        still = jnp.where(final["phase"][j] == LEAVE, _overlap(final["fin"][j], INF, w0, w1), 0.0)  # at the end
        blocked = final["blocked"][j] + still
        stations.append({**s, "acc": s["acc"].at[3].add(blocked), "limit": final["limit"] if j == 0 else INF})
    if base.qc:
        totals, ys = _qc_totals(final, shape, seq, draws, consts)
    else:
        totals, ys = {k: final[k] for k in ("count", "lead_sum", "first", "final", "made", "last_exit")}, {}
        totals.update(rejected=jnp.zeros((), int), release_lead=jnp.full((), jnp.nan))
    out = _lane_kpis(base, stations, totals, design["units"], consts)
    if base.record:  # (a recording lane keeps every batch's release time: ``EventShape.kept``)
        index = jnp.arange(n_batches, dtype=jnp.int32)
        ys.update(departure=final["departure"], batch=jnp.broadcast_to(index[:, None], (n_batches, n)),
                  valid=final["departure"] < INF, release=_released(final, index, shape, draws))  # fmt: skip
        out.update(_recorded(base, ys))
    # a lane stopped by the bound on steps is cut short: the evaluator runs it again with more batches (more steps)
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
