"""The event-stepping kernel: one lane is one design in one replication, stepped event by event.

    >>> run = compiled_event_kernel(EventShape(shape, pools=(4, 0)))  # jitted, cached per static shape
    >>> out = run(design, seq, draws, consts)      # vmapped over designs and replications, as ``compiled_kernel``

The scan kernel (``optimizers.kernel``) computes departures batch by batch, which cannot follow a
resource that stations share in time order (operators on shifts). This kernel steps the line's
events in time order in a ``lax.while_loop`` instead, on fixed-size state:

- per station (one unit): its phase (``TAKE`` a batch, wait for its ``CREW``, ``PROCESS``, ``LEAVE``), the
  batch it holds, when its processing ends, when it asked for its crew, the operators it holds per pool;
- per buffer: the batches waiting in it. A station of one unit passes its batches on in the order it took
  them, so the batches before station j are those station j-1 passed on and j has not taken yet: two counts;
- per operator pool: on shift or not, operators busy, the next shift change (the engine's clock:
  ``t + (next_change(t) - t)``, ``WeeklyCalendar``'s arithmetic in ``kernel._working``, ``kernel._next_change``).

Each step runs the earliest *ordinary* event at its time (a station that can take a batch, a finish, a
station that can pass its batch on, a shift change; ties: stations in line order, then pools). When no
ordinary event is left at the current instant and something happened in it, the step is the instant's
*serve step* instead (``twin.engine.rules.arbiter``, docs/batch-rules.md "Who goes first at one
instant"): the waiting crew requests are served in key order (time of request, station index), first
fit (a request that cannot be served yet is passed over by a later one that can), each crew taken from
the station's pools in pool order (``Operators._grant``). Free operators are ``headcount - busy`` on
shift and none off shift: an operator whose shift ends finishes the phase at hand, and a crew released
off shift frees nobody. Every processing start is a serve step's grant (a station that needs no crew
asks for none, which is always granted at the instant it took its batch, as the engine starts it).

Processing draws, operating-basis failures and line OEE's figures (``kernel._processed_on``) and the KPIs
(``kernel._lane_kpis``) are the scan kernel's own functions; the draws are ``lines.draw_inputs``'.
Scope (``lines.events_outside``): serial lines of single-unit stations, finite or unlimited buffers,
every release mode, products, operating-basis failures, rate-based stations, operator pools on shift calendars.
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
    _div,
    _lane_kpis,
    _next_change,
    _overlap,
    _processed_on,
    _working,
    over_designs,
    with_gradient,
)

TAKE, CREW, PROCESS, LEAVE = 0, 1, 2, 3  # a station's phase


@dataclass(frozen=True)
class EventShape:
    """The scan kernel's ``Shape`` (sizes, products, release, failures, recording) and, per operator pool, the
    number of edges of its weekly calendar (0: always on shift)."""

    base: Shape
    pools: tuple[int, ...]

    @property
    def steps(self) -> int:
        """Most steps of a lane: each batch takes, is served, finishes and leaves at each station, with a serve step
        after each, plus shift changes (a bound that only a line whose crews can never be served reaches)."""
        return 16 * self.base.batches * self.base.stations + 4096


def _due(st: dict[str, Any], shape: EventShape, design: dict[str, Any], draws: dict[str, Any], n_in) -> jax.Array:
    """When each station's next ordinary event happens (inf: none until another event), then each pool's shift
    change. A station taking or passing on a batch does so now if it can (it could not earlier)."""
    base, t = shape.base, st["t"]
    n, last = base.stations, base.batches - 1
    times = []
    for j in range(n):
        phase = st["phase"][j]
        if j == 0:
            k = st["taken"][0]
            arrival = t if base.pull else jnp.maximum(t, draws["arrivals"][jnp.minimum(k, last)])
            take = jnp.where(k < n_in, arrival, INF)
        else:
            take = jnp.where(st["left"][j - 1] > st["taken"][j], t, INF)
        leave = t
        if j + 1 < n:  # a place downstream: ``Buffer``'s put (its places, and the unit waiting for a batch)
            b, waiting = design["buffers"][j + 1], st["left"][j] - st["taken"][j + 1]
            leave = jnp.where((b < 0) | (waiting < b + (st["phase"][j + 1] == TAKE)), t, INF)
        times.append(jnp.select([phase == TAKE, phase == PROCESS, phase == LEAVE], [take, st["fin"][j], leave], INF))
    return jnp.concatenate([jnp.stack(times), st["shift_at"]])


def _take(st, j, on, shape, draws):
    """Station ``j`` takes its next batch (the first station: releases it, or takes the next arrival) and asks
    for its crew."""
    k = st["taken"][j]
    st["batch"] = st["batch"].at[j].set(jnp.where(on, k, st["batch"][j]))
    st["taken"] = st["taken"].at[j].add(jnp.where(on, 1, 0))
    st["phase"] = st["phase"].at[j].set(jnp.where(on, CREW, st["phase"][j]))
    st["asked"] = st["asked"].at[j].set(jnp.where(on, st["t"], st["asked"][j]))
    if j == 0:
        at = jnp.minimum(k, shape.base.batches - 1)
        released = st["t"] if shape.base.pull else draws["arrivals"][at]
        st["release"] = st["release"].at[at].set(jnp.where(on, released, st["release"][at]))
    return st


def _finish(st, j, on):
    """Station ``j``'s processing ends: its crew goes (back to work if on shift: ``_free``)."""
    st["busy"] = st["busy"] - jnp.where(on, st["crew"][j], 0)
    st["crew"] = st["crew"].at[j].set(jnp.where(on, 0, st["crew"][j]))
    st["phase"] = st["phase"].at[j].set(jnp.where(on, LEAVE, st["phase"][j]))
    return st


def _leave(st, j, on, shape, w0, w1):
    """Station ``j`` passes its batch on (into the next buffer, or out of the line), blocked since it finished."""
    base, t, batch = shape.base, st["t"], st["batch"][j]
    s = st["stations"][j]
    s["acc"] = s["acc"].at[3].add(jnp.where(on, _overlap(st["fin"][j], t, w0, w1), 0.0))
    st["left"] = st["left"].at[j].add(jnp.where(on, 1, 0))
    st["phase"] = st["phase"].at[j].set(jnp.where(on, TAKE, st["phase"][j]))
    if j == base.stations - 1:
        st["exit"] = st["exit"].at[batch].set(jnp.where(on, t, st["exit"][batch]))
    if j == 0:  # the last batch left the first station: the run may need more batches than drawn
        st["limit"] = jnp.where(on & (batch == base.batches - 1), t, st["limit"])
    if base.record:
        st["departure"] = st["departure"].at[batch, j].set(jnp.where(on, t, st["departure"][batch, j]))
    return st


def _shift(st, p, on, shape, consts):
    """Pool ``p``'s shift starts or ends now (``Operators._shifts``)."""
    cal, edges, t = consts["pools"]["calendars"][p], shape.pools[p], st["t"]
    change = _next_change(t, cal, edges)
    st["on_shift"] = st["on_shift"].at[p].set(jnp.where(on, _working(t, cal), st["on_shift"][p]))
    st["shift_at"] = st["shift_at"].at[p].set(jnp.where(on, t + (change - t), st["shift_at"][p]))
    return st


def _free(st, consts) -> jax.Array:
    """Operators of each pool free now: on shift and not busy."""
    return jnp.where(st["on_shift"], consts["pools"]["headcount"] - st["busy"], 0)


def _serve(st, go, shape, design, seq, draws, consts, w0, w1):
    """The serve step (``Operators.serve``): grant the waiting requests in key order, first fit, each crew from the
    station's pools in pool order; each granted station starts processing now."""
    base, t, pools = shape.base, st["t"], consts["pools"]
    n, n_pools = base.stations, len(shape.pools)
    waiting = go & (st["phase"] == CREW)
    order = jnp.lexsort((jnp.arange(n), jnp.where(waiting, st["asked"], INF)))  # (time of request, station)
    free, granted = _free(st, consts), jnp.zeros(n, bool)
    for i in range(n):
        j = order[i]
        need, qualified = pools["need"][j], pools["qualified"][j]
        ok = waiting[j] & (jnp.sum(jnp.where(qualified, free, 0)) >= need)
        crew, left = [], need
        for p in range(n_pools):
            took = jnp.where(ok & qualified[p], jnp.minimum(free[p], left), 0)
            crew.append(took)
            left = left - took
        crew = jnp.stack(crew) if n_pools else jnp.zeros(0, jnp.int32)
        free = free - crew
        st["busy"] = st["busy"] + crew
        st["crew"] = st["crew"].at[j].set(jnp.where(ok, crew, st["crew"][j]))
        granted = granted.at[j].set(ok)
    speed = design["speed"]
    for j in range(n):
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
        st["stations"][j] = s
        st["fin"] = st["fin"].at[j].set(jnp.where(on, finish, st["fin"][j]))
        st["phase"] = st["phase"].at[j].set(jnp.where(on, PROCESS, st["phase"][j]))
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
    return s


def lane(shape: EventShape, design: dict[str, Any], seq: jax.Array, draws: dict[str, Any], consts: dict[str, Any]):
    """Simulate one design in one replication event by event; returns its KPIs (``kernel.lane``'s)."""
    base = shape.base
    n, n_pools, n_batches = base.stations, len(shape.pools), base.batches
    w0, w1 = consts["warmup"], consts["horizon"]
    n_in = design["batches"]
    zero = jnp.zeros((), jnp.float64)
    start_on, start_change = [], []
    for p in range(n_pools):  # each pool's shift at time 0 and its first change (``Operators.__init__``)
        cal = consts["pools"]["calendars"][p]
        start_on.append(_working(zero, cal) if shape.pools[p] else jnp.bool_(True))
        start_change.append(_next_change(zero, cal, shape.pools[p]) if shape.pools[p] else INF)
    state = {
        "t": zero, "serve": jnp.bool_(False), "steps": jnp.int32(0),
        "phase": jnp.full(n, TAKE, jnp.int32), "fin": jnp.full(n, INF), "batch": jnp.zeros(n, jnp.int32),
        "asked": jnp.zeros(n), "crew": jnp.zeros((n, n_pools), jnp.int32),
        "taken": jnp.zeros(n, jnp.int32), "left": jnp.zeros(n, jnp.int32),
        "busy": jnp.zeros(n_pools, jnp.int32),
        "on_shift": jnp.stack(start_on) if n_pools else jnp.zeros(0, bool),
        "shift_at": jnp.stack(start_change).astype(zero.dtype) if n_pools else jnp.zeros(0),
        "stations": [_station_init(shape, j, draws) for j in range(n)],
        "exit": jnp.full(n_batches, INF), "release": jnp.full(n_batches, INF), "limit": jnp.full((), INF),
    }  # fmt: skip
    if base.record:
        state["departure"] = jnp.full((n_batches, n), INF)

    def going(st):
        t = jnp.min(_due(st, shape, design, draws, n_in))
        unfinished = base.finite_plan & (st["left"][n - 1] < n_in) & (t < INF)
        return (st["steps"] < shape.steps) & (st["serve"] | (t <= w1) | unfinished)

    def step(st):
        st = {**st, "stations": [dict(s) for s in st["stations"]]}
        due = _due(st, shape, design, draws, n_in)
        t, which = jnp.min(due), jnp.argmin(due)
        serve = st["serve"] & (t > st["t"])  # nothing more happens at this instant: its serve step
        ordinary = ~serve
        st = _serve(st, serve, shape, design, seq, draws, consts, w0, w1)
        st["t"] = jnp.where(ordinary, t, st["t"])
        for j in range(n):
            on, phase = ordinary & (which == j), st["phase"][j]
            st = _take(st, j, on & (phase == TAKE), shape, draws)
            st = _finish(st, j, on & (phase == PROCESS))
            st = _leave(st, j, on & (phase == LEAVE), shape, w0, w1)
        for p in range(n_pools):
            if shape.pools[p]:  # (a pool always on shift has no change: never due)
                st = _shift(st, p, ordinary & (which == n + p), shape, consts)
        st["serve"] = ordinary
        st["steps"] = st["steps"] + 1
        return st

    final = jax.lax.while_loop(going, step, state)
    stations = []
    for j, s in enumerate(final["stations"]):
        blocked = jnp.where(final["phase"][j] == LEAVE, _overlap(final["fin"][j], INF, w0, w1), 0.0)  # at the end
        stations.append({**s, "acc": s["acc"].at[3].add(blocked), "limit": final["limit"] if j == 0 else INF})
    index = jnp.arange(n_batches, dtype=jnp.int32)
    products = seq[index] if base.products > 1 else jnp.zeros(n_batches, jnp.int32)
    ys = {
        "exit": final["exit"], "exit_batch": index, "exit_valid": final["exit"] < INF, "release": final["release"],
        "exit_qty": consts["sizes"][products], "exit_product": products,
    }  # fmt: skip
    if base.record:
        ys.update(departure=final["departure"], batch=jnp.broadcast_to(index[:, None], (n_batches, n)),
                  valid=final["departure"] < INF)  # fmt: skip
    return _lane_kpis(base, stations, ys, design["units"], consts)


@functools.lru_cache(maxsize=16)
def compiled_event_kernel(shape: EventShape):
    """``f(design, seq, draws, consts)`` over [designs] x [replications], jitted once per shape (as
    ``kernel.compiled_kernel``; ``consts["pools"]``: ``lines.pool_constants``)."""
    return over_designs(functools.partial(lane, shape), shape.base.seq_from_design)


@functools.lru_cache(maxsize=4)
def event_gradient_kernel(shape: EventShape):
    """``kernel.gradient_kernel`` of the event lane."""
    return with_gradient(functools.partial(lane, shape), shape.base.seq_from_design)
