"""The departure-time recursion as a JAX scan: one lane is one design in one replication.

    >>> run = compiled_kernel(shape)                     # jitted, cached per static shape
    >>> out = run(design, seq, draws, consts)            # vmapped over designs and replications

Station ``j`` has ``c_j`` units fed FIFO from its buffer of ``b_j`` places (blocking after
service). Batches are counted by their *rank* at each station: the n-th arrival, the n-th
departure. Rank n arrives when station j-1 makes its n-th departure, starts on the unit freed by
departure n - c_j (units 0..c_j-1 take the first c_j), and the n-th departure of station j is

    D_j(n) = max( F_j(n), D_{j+1}(n - b_{j+1} - c_{j+1}) )

with F_j(n) the n-th smallest finish time (the engine serves blocked units in the order they
finished). With one unit everywhere this is the reference recursion
``D_j(n) = max(max(D_{j-1}(n), D_j(n-1)) + S_j(n), D_{j+1}(n - b_{j+1} - 1))``.

Step t of the scan makes station j's arrival of rank t - L_{j-1} and departure of rank t - L_j,
with L_j = sum over i <= j of (c_i - 1); so a departure of station j-1 is the arrival of
station j in the same step, and the blocking term was written b_{j+1} + 1 steps earlier (a small
ring buffer). Unit counts, buffers and speeds are traced values: allocations are batched too.
Operating-basis failures are folded into processing times with the same float operations as
``twin.engine.failures.OperatingClock``; changeovers draw the ``setup:A->B`` stream of each pair in
order of occurrence. Times in float64.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from twin.jaxcache import use_compilation_cache  # noqa: E402
from twin.kpis.report import OEE_TIE  # noqa: E402

INF = jnp.inf
STATES = ("processing", "setup", "down", "blocked", "cleaning")  # a lane's ``states`` (hours in the window), in order


@dataclass(frozen=True)
class Shape:
    """Everything that fixes the compiled kernel (hashable; one compilation per shape and batch size)."""

    stations: int
    products: int
    max_units: tuple[int, ...]
    has_setup: tuple[bool, ...]
    has_failures: tuple[bool, ...]
    pull: bool
    batches: int
    ring: int  # > largest finite buffer + 1
    finite_plan: bool
    seq_from_design: bool  # product sequence per design (plan order) or per replication (mix)
    record: bool = False  # also return every station's departures (for tests)
    has_cleaning: tuple[bool, ...] = ()  # the cleaning rule (on several units: a hygiene per unit)

    has_rate: tuple[bool, ...] = ()  # rate-based stations (times from the batch's units)
    has_yield: tuple[bool, ...] = ()  # stations that lose units at the end of processing
    has_reject: tuple[bool, ...] = ()  # stations that reject whole batches (draws in finish order)
    holds: tuple[tuple[int, int], ...] = ()  # hold-time rules (from, to) that scrap a late batch when taken
    changeover_cleans: tuple[bool, ...] = ()  # stations with changeovers that need a major clean or clearance
    calendar_failures: tuple[bool, ...] = ()  # stations whose failures run on the wall clock
    release_calendar: int = 0  # edges of the weekly calendar the first station releases in (0: any time)
    wip: tuple[int, int] = ()  # CONWIP (largest limit of any design, station): a release waits for a start there
    qc: tuple[int, int] = ()  # QC release after the line (analyst slots, edges of the lab's calendar; 0: always)
    # (the levers of the batch rules, QC analysts, WIP limit, cleaning due thresholds, a plan's campaign lengths, are
    # inputs of each design, not part of the shape: ``_with_levers``)

    def on_calendar(self, j: int) -> bool:
        """Failures on the wall clock (``CalendarClock``), not on operating time."""
        return bool(self.calendar_failures) and self.calendar_failures[j]

    def looks_ahead(self, j: int) -> bool:
        """The clean after a batch depends on the next batch, if already waiting (a change that needs a major
        clean): decided when that batch arrives (or none will). On one unit (on several: ``multiunit_outside``)."""
        return self.change_cleans(j) and self.max_units[j] == 1

    def change_cleans(self, j: int) -> bool:
        """Changes that need a major clean (or a line clearance) on a station with cleaning."""
        return self.cleans(j) and bool(self.changeover_cleans) and self.changeover_cleans[j]

    def cleans(self, j: int) -> bool:
        return bool(self.has_cleaning) and self.has_cleaning[j]

    def defers(self, j: int) -> bool:
        """Several units whose batches can start out of the order they were taken in (cleans, changeovers): the
        processing streams are drawn in start order, at departures (``_draw_in_start_order``)."""
        return self.max_units[j] > 1 and (self.has_setup[j] or self.cleans(j))

    def rated(self, j: int) -> bool:
        return bool(self.has_rate) and self.has_rate[j]

    def yields(self, j: int) -> bool:
        return bool(self.has_yield) and self.has_yield[j]

    def holds_at(self, j: int) -> tuple[int, ...]:
        """The hold-time rules checked when station ``j`` takes a batch."""
        return tuple(h for h, (_, to) in enumerate(self.holds) if to == j)

    def rejects(self, j: int) -> bool:
        return bool(self.has_reject) and self.has_reject[j]

    @property
    def steps(self) -> int:
        return self.batches + sum(c - 1 for c in self.max_units)


def _div(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a / b`` rounded as the engine's Python division. XLA turns a division by a value that every lane shares
    (a broadcast: a station's rate, a design's speed) into a product with its reciprocal, which can be one ulp
    off, and one ulp decides a tie such as a failure due exactly when a batch ends. ``a * 0.0`` gives the
    divisor the lanes' shape, which XLA cannot fold away (``a`` is finite)."""
    return a / (b + a * 0.0)


def _overlap(a: jax.Array, b: jax.Array, w0: jax.Array, w1: jax.Array) -> jax.Array:
    return jnp.maximum(0.0, jnp.minimum(b, w1) - jnp.maximum(a, w0))


def out_of_failures(used: Any, drawn: int) -> Any:
    """Whether a lane used every failure draw of a unit (``used``: the most a unit used; ``drawn``: per unit): the
    evaluator runs it again with more (``Evaluator._grow``), and the event lane stops there (``events._overflowed``)."""
    return used >= drawn - 1


def out_of_places(used: Any, places: int) -> Any:
    """Whether a batch found no place for batches in investigation (a lane reports twice its ``places`` then; one
    that only fills them is exact): as ``out_of_failures``."""
    return used > places


def _mapped_zero(x: jax.Array) -> jax.Array:
    """0 of ``x``'s type, mapped over the same vmap axes as ``x``: a loop's first state mapped as the loop makes it
    (vmapping a loop batches its body again for each value found mapped late; ``events._batched_like``)."""
    return jnp.where(x == x, 0, 0).astype(x.dtype)


def _work(start, duration, until, f, ttf, ttr, u, active, w0, w1):
    """``OperatingClock.work`` for one batch on unit ``u`` (draws ``ttf[u, f]``, ``ttr[u, f]``):
    (end, until, f, processing time, down time in the window)."""
    last = ttf.shape[1] - 1

    def cond(s):
        return active & (s[2] < s[1])

    def body(s):
        t, rem, until, f, proc, down = s
        proc = proc + _overlap(t, t + until, w0, w1)
        t = t + until
        rem = rem - until
        repair = ttr[u, jnp.minimum(f, last)]
        down = down + _overlap(t, t + repair, w0, w1)
        t = t + repair
        f = f + 1
        return t, rem, ttf[u, jnp.minimum(f, last)], f, proc, down

    zero = _mapped_zero(start)
    t, rem, until, f, proc, down = jax.lax.while_loop(cond, body, (start, duration, until, f, zero, zero))
    proc = proc + _overlap(t, t + rem, w0, w1)
    return t + rem, until - rem, f, proc, down


def _calendar_work(start, duration, nf, f, ttf, ttr, u, active, w0, w1):
    """``CalendarClock.work`` for unit ``u``: failures on the wall clock, the next one a time to failure after
    the last repair (``nf``: when it falls due; ``f``: failures so far). (end, nf, f, processing, down time in
    the window, the part of it after ``start``)."""
    last = ttf.shape[1] - 1

    def cond(s):
        t, rem, nf = s[0], s[1], s[2]
        return active & (nf < t + rem)

    def body(s):
        t, rem, nf, f, proc, down, inside = s
        proc = proc + _overlap(t, nf, w0, w1)
        rem = rem - (nf - t)
        t = nf + ttr[u, jnp.minimum(f, last)]
        down = down + _overlap(nf, t, w0, w1)
        inside = inside + _overlap(jnp.maximum(nf, start), t, w0, w1)  # (due while it waited: from the start)
        return t, rem, t + ttf[u, jnp.minimum(f + 1, last)], f + 1, proc, down, inside

    zero = _mapped_zero(start)
    t, rem, nf, f, proc, down, inside = jax.lax.while_loop(cond, body, (start, duration, nf, f, zero, zero, zero))
    return t + rem, nf, f, proc + _overlap(t, t + rem, w0, w1), down, inside


def _wait_over(now, nf, f, ttf, ttr, u, active, w0, w1):
    """``CalendarClock.wait_over``: the failures of a wait that ends at ``now``; (ready, nf, f, down time in the
    window, the part of it before ``now``): the unit works again at ``now``, or when a repair still under way is
    done."""
    last = ttf.shape[1] - 1

    def body(s):
        ready, nf, f, down, before = s
        repaired = nf + ttr[u, jnp.minimum(f, last)]
        down = down + _overlap(nf, repaired, w0, w1)
        before = before + _overlap(nf, jnp.minimum(repaired, now), w0, w1)
        ready = jnp.where(repaired <= now, ready, repaired)
        return ready, repaired + ttf[u, jnp.minimum(f + 1, last)], f + 1, down, before

    zero = _mapped_zero(now)
    return jax.lax.while_loop(lambda s: active & (s[1] <= now), body, (now, nf, f, zero, zero))


def _timed(now, duration, on, s, j, u, shape, draws, w0, w1):
    """When a changeover, clearance or clean of ``duration`` begun at ``now`` ends: operating-basis failures do
    not extend it (``OperatingClock.setup``'s rounding), calendar-basis ones do; then SimPy's timeout. Also the
    down hours inside it (counted as down, not as the step's state)."""
    if shape.on_calendar(j):
        end, nf, f, _, down, inside = _calendar_work(
            now, duration, s["nf"][u], s["f"][u], draws["ttf"][j], draws["ttr"][j], u, on, w0, w1
        )
        s["nf"], s["f"] = s["nf"].at[u].set(nf), s["f"].at[u].set(f)
        s["acc"] = s["acc"].at[2].add(jnp.where(on, down, 0.0))
        return now + (end - now), jnp.where(on, inside, 0.0)
    if shape.has_failures[j]:
        return now + ((now + duration) - now), jnp.zeros(())
    return now + duration, jnp.zeros(())


def _hygiene_init() -> dict[str, jax.Array]:
    """``twin.engine.rules.cleaning.Hygiene`` of a unit at the start: clean, after a major clean."""
    zero = jnp.zeros(())
    return {
        "dirty": jnp.zeros((), bool), "dirty_since": zero, "clean_since": zero, "batches": jnp.zeros((), jnp.int32),
        "kg": zero, "major_at": zero, "drawn": jnp.zeros(2, jnp.int32),  # cleans drawn: minor, major
        "major_since": jnp.ones((), bool),  # a major clean since the last batch
    }  # fmt: skip


def _processed(h: dict[str, jax.Array], now: jax.Array, kg: jax.Array, on: jax.Array) -> dict[str, jax.Array]:
    """``Hygiene.processed``: a batch finished at ``now``; the equipment is dirty."""
    return {
        **h,
        "dirty": h["dirty"] | on,
        "dirty_since": jnp.where(on, now, h["dirty_since"]),
        "clean_since": jnp.where(on, now, h["clean_since"]),
        "batches": h["batches"] + jnp.where(on, 1, 0),
        "kg": jnp.where(on, h["kg"] + kg, h["kg"]),
        "major_since": h["major_since"] & ~on,
    }


def _clean(now, major, on, s, j, shape, draws, w0, w1):
    """``cleaning.clean`` without skid or operators: the clean's draw, its end, the hygiene after it."""
    h = s["hygiene"]
    kind = jnp.where(major, 1, 0)
    last = draws["clean"].shape[-1] - 1
    d = draws["clean"][j, kind, jnp.minimum(h["drawn"][kind], last)]
    s = dict(s)
    end, down = _timed(now, d, on, s, j, 0, shape, draws, w0, w1)  # (cleans: on one unit)
    s["acc"] = s["acc"].at[4].add(jnp.where(on, _overlap(now, end, w0, w1) - down, 0.0))
    major_on = on & major
    s["hygiene"] = {
        **h,
        "dirty": h["dirty"] & ~on,
        "clean_since": jnp.where(on, end, h["clean_since"]),
        "batches": jnp.where(major_on, 0, h["batches"]),
        "kg": jnp.where(major_on, 0.0, h["kg"]),
        "major_at": jnp.where(major_on, end, h["major_at"]),
        "drawn": h["drawn"].at[kind].add(jnp.where(on, 1, 0)),
        "major_since": h["major_since"] | major_on,
    }
    return jnp.where(on, end, now), s


def _stale(take, s, j, consts) -> tuple[jax.Array, jax.Array]:
    """``cleaning.clean_before``'s decision for a batch taken at ``take``: (a clean is needed, it is major): again
    when the equipment stood clean (or dirty) longer than its hold time."""
    h, c = s["hygiene"], consts["cleaning"]
    stale_clean = ~h["dirty"] & (take - h["clean_since"] > c["clean_hold"][j])
    stale_dirty = h["dirty"] & (take - h["dirty_since"] > c["dirty_hold"][j])
    return stale_clean | stale_dirty, jnp.where(stale_clean, ~c["has_minor"][j], True)


def _clean_before(take, valid, s, j, shape, draws, consts, w0, w1):
    """``cleaning.before``: clean again when the equipment stood clean (or dirty) longer than its hold time."""
    need, major = _stale(take, s, j, consts)
    return _clean(take, major, valid & need, s, j, shape, draws, w0, w1)


def _due_clean(departure, s, j, consts, change_major=False) -> tuple[jax.Array, jax.Array]:
    """``cleaning.clean_after``'s decision when a batch left at ``departure``: (a clean follows, it is major because
    due (batches, hours, kg since the last major clean) or before a waiting batch whose change needs one)."""
    h, c = s["hygiene"], consts["cleaning"]
    due = (
        (h["batches"] >= c["due_batches"][j])
        | (departure - h["major_at"] >= c["due_hours"][j])
        | (h["kg"] >= c["due_kg"][j])
    )
    return due | change_major | c["has_minor"][j], due | change_major


def _expired(now, s, j, consts) -> jax.Array:
    """``cleaning.clean``: a clean that starts at ``now`` later than the dirty-hold time is a major one."""
    h = s["hygiene"]
    return h["dirty"] & (now - h["dirty_since"] > consts["cleaning"]["dirty_hold"][j])


def _clean_after(departure, leaving, s, j, shape, draws, consts, w0, w1, change_major=False):
    """``cleaning.after``: major when due or before a change that needs one (``_due_clean``), minor otherwise; a
    minor clean that starts later than the dirty-hold time is a major one (``_expired``)."""
    cleans, major = _due_clean(departure, s, j, consts, change_major)
    major = major | _expired(departure, s, j, consts)
    return _clean(departure, major, leaving & cleans, s, j, shape, draws, w0, w1)


def _unit_hygiene(s: dict[str, Any], u: jax.Array) -> dict[str, Any]:
    """Put unit ``u``'s hygiene in ``s["hygiene"]`` (a station of several units keeps one per unit in
    ``s["hygienes"]``; the clean draws, one stream per station, stay the station's)."""
    if "hygienes" not in s:
        return s
    return {**s, "hygiene": {**{k: v[u] for k, v in s["hygienes"].items()}, "drawn": s["hygiene"]["drawn"]}}


def _keep_hygiene(s: dict[str, Any], u: jax.Array) -> dict[str, Any]:
    """Store ``s["hygiene"]`` back as unit ``u``'s (``_unit_hygiene``)."""
    if "hygienes" not in s:
        return s
    return {**s, "hygienes": {k: v.at[u].set(s["hygiene"][k]) for k, v in s["hygienes"].items()}}


def _processed_on(s, j, u, start, work, on, shape, draws, w0, w1, batch=None):
    """Unit ``u`` of station ``j`` processes ``work`` hours from ``start`` (where ``on``): its failures on the
    calendar or the operating clock, and the processing and down hours in the window; ``batch`` (product, units,
    speeds, constants) also credits it to line OEE's figures (``_credit``). (finish, state)."""
    if shape.on_calendar(j):
        end, nf, f, proc, down, _ = _calendar_work(
            start, work, s["nf"][u], s["f"][u], draws["ttf"][j], draws["ttr"][j], u, on, w0, w1
        )
        finish = start + (end - start)
        s["nf"], s["f"] = s["nf"].at[u].set(jnp.where(on, nf, s["nf"][u])), s["f"].at[u].set(f)
        s["acc"] = s["acc"].at[0].add(jnp.where(on, proc, 0.0)).at[2].add(jnp.where(on, down, 0.0))
    elif shape.has_failures[j]:
        end, until, f, proc, down = _work(
            start, work, s["until"][u], s["f"][u], draws["ttf"][j], draws["ttr"][j], u, on, w0, w1
        )
        finish = start + (end - start)
        s["until"] = s["until"].at[u].set(jnp.where(on, until, s["until"][u]))
        s["f"] = s["f"].at[u].set(jnp.where(on, f, s["f"][u]))
        s["acc"] = s["acc"].at[0].add(jnp.where(on, proc, 0.0)).at[2].add(jnp.where(on, down, 0.0))
    else:
        finish = start + work
        proc = _overlap(start, finish, w0, w1)
        s["acc"] = s["acc"].at[0].add(jnp.where(on, proc, 0.0))
    if batch is not None:
        s = _credit(s, j, start, finish, work, proc, on, *batch, w0, w1)
    return finish, s


def _credit(s, j, start, finish, work, proc, on, p, qty, speed, consts, w0, w1):
    """What a batch of product ``p`` and ``qty`` units (as it came in), processed on station ``j`` from ``start``
    to ``finish`` (``work`` hours of processing, ``proc`` of them in the window), adds to the figures of line OEE
    (``twin.kpis.report.line_oee``): its ``finish`` row, in the log when no later than the horizon, adds its ideal
    hours and units to the station's sums per product (``ideal``: the spec's, over the speed, or the units over the
    nameplate rate) and earns the ideal hours' share of its processing that lies in the window
    (``credited_ideal``: at most that processing when it began at the log's first instant, 0); a batch begun by the
    horizon and not finished by it counts its processing in the window (``tail``)."""
    horizon, nameplate = consts["horizon"], consts["oee"]["rate"][j]
    ideal = jnp.where(jnp.isnan(nameplate), _div(consts["oee"]["ideal"][j, p], speed[j]), _div(qty, nameplate))
    logged = on & (finish <= horizon)
    in_window = ((finish > w0) & (finish <= horizon)).astype(finish.dtype)
    share = jnp.clip(jnp.where(work > 0, proc / jnp.where(work > 0, work, 1.0), in_window), 0.0, 1.0)
    earned = ideal * share
    earned = jnp.where(start <= 0.0, jnp.minimum(earned, proc), earned)  # (censored: the log begins at 0)
    mine = logged & (jnp.arange(s["oee_qty"].shape[0]) == p)  # (no scatter: slow on CPUs under vmap)
    return {
        **s,
        "oee_ideal": s["oee_ideal"] + jnp.where(mine, ideal, 0.0),
        "oee_qty": s["oee_qty"] + jnp.where(mine, qty, 0.0),
        "oee_finishes": s["oee_finishes"] + jnp.where(logged, 1, 0),
        "oee_credit": s["oee_credit"] + jnp.where(logged, earned, 0.0),
        "oee_tail": s["oee_tail"] + jnp.where(on & ~logged & (start <= horizon), proc, 0.0),
    }


def _draw_in_start_order(s, j, leaving, shape, draws, consts, speed, w0, w1):
    """The processing of loaded units, drawn in the order their batches start (the engine draws the processing and
    rate-noise streams at the start, after any clean and changeover): at a departure, the unit that starts first
    draws while its start is no later than the earliest finish drawn (every batch taken later starts after the
    unit that departs first is free). The departure is then the earliest finish, drawn."""
    big = jnp.iinfo(jnp.int32).max

    def one(_, s):  # (a loop, not unrolled: each unit's failures compile once)
        pending = s["undrawn"]
        first = jnp.min(jnp.where(pending, s["start"], INF))
        u = jnp.argmin(jnp.where(pending & (s["start"] == first), s["rank"], big)).astype(jnp.int32)
        start, p, qty = s["start"][u], s["prod"][u], s["qty_in"][u]
        on = leaving & pending[u] & (start <= jnp.min(jnp.where(pending, INF, s["fin"])))
        n = s["drawn_n"]
        if shape.rated(j):  # start-up plus the batch's units over the effective rate, noise in start order
            startup, effective = consts["rate"][j, 0], consts["rate"][j, 1]
            noise = draws["rate_noise"][j, jnp.minimum(n, draws["rate_noise"].shape[-1] - 1)]
            work = _div(startup + _div(qty, effective) * noise, speed[j])
        else:
            index = s["count"][p] if shape.products > 1 else n
            work = _div(draws["process"][j, p, jnp.minimum(index, draws["process"].shape[-1] - 1)], speed[j])
        finish, s = _processed_on(s, j, u, start, work, on, shape, draws, w0, w1, (p, qty, speed, consts))
        if shape.cleans(j):
            s = _unit_hygiene(s, u)
            s["hygiene"] = _processed(s["hygiene"], finish, _div(consts["masses"][p] * qty, consts["sizes"][p]), on)
            s = _keep_hygiene(s, u)
        if shape.products > 1:
            s["count"] = s["count"].at[p].add(jnp.where(on, 1, 0))
        s["drawn_n"] = n + jnp.where(on, 1, 0)
        s["fin"] = s["fin"].at[u].set(jnp.where(on, finish, s["fin"][u]))
        s["undrawn"] = s["undrawn"].at[u].set(pending[u] & ~on)
        return s

    return jax.lax.fori_loop(0, shape.max_units[j], one, dict(s))


WEEK = 168.0


def _working(t, cal):
    """``WeeklyCalendar.is_working``: the week's working intervals as sorted ``starts`` and ``ends``."""
    w = jnp.mod(t, WEEK)
    i = jnp.searchsorted(cal["starts"], w, side="right") - 1
    return (i >= 0) & (w < cal["ends"][jnp.maximum(i, 0)])


def _next_edge(t, cal, n_edges: int):
    w = jnp.mod(t, WEEK)
    week = jnp.round((t - w) / WEEK)  # Python's divmod on a float
    i = jnp.searchsorted(cal["edges"], w, side="right")
    return jnp.where(i < n_edges, week * WEEK + cal["edges"][jnp.minimum(i, n_edges - 1)],
                     (week + 1) * WEEK + cal["edges"][0])  # fmt: skip


def _next_change(t, cal, n_edges: int):
    """``WeeklyCalendar.next_change``: the first time after ``t`` on the other side. An edge that changes nothing
    (the week's wrap-around, shifts that touch) is passed over; weeks plus an edge not exact in binary can fall a
    hair before the edge (the next edge is then the same time): as the engine, the next float instead, until the
    other side. A loop, not unrolled: each call site compiles small."""
    working = _working(t, cal)

    def same(s):
        change, count = s
        return (count <= n_edges + 4) & ((_working(change, cal) == working) | (change <= t))

    def onward(s):
        change, count = s
        edge = _next_edge(change, cal, n_edges)
        return jnp.where(edge > change, edge, jnp.nextafter(change, INF)), count + 1

    return jax.lax.while_loop(same, onward, (_next_edge(t, cal, n_edges), jnp.int32(0)))[0]


def _next_start(t, cal, n_edges: int):
    """``WeeklyCalendar.next_start``: ``t`` in working time, else the start of the next working period."""
    change = _next_change(t, cal, n_edges)
    return jnp.where(_working(t, cal), t, jnp.where(_working(change, cal), change, _next_change(change, cal, n_edges)))


def _release_gate(t, cal, n_edges: int):
    """``ReleaseGate.wait`` for the calendar: sleep until the next working time, as SimPy adds the timeout."""
    for _ in range(3):
        start = _next_start(t, cal, n_edges)
        t = jnp.where(start > t, t + (start - t), t)
    return t


def _ranks(first, then, window: int = 0):
    """Each element's place when sorted by ``first``, ties by ``then`` (the order SimPy processes events of one
    instant in: by when they were scheduled); the pairs are distinct (``then`` is).

    With a ``window``, for keys nearly in order already (QC ends against starts): each element's place is its index
    plus the smaller elements within ``window`` after it less the larger ones within ``window`` before it, right
    when no pair further apart is out of order. That is checked (the places are a permutation that puts the keys in
    order), and the sort runs only if some lane fails it (a loop of at most one pass: under ``vmap``, none at all
    when every lane passes), so the ranks are the sort's in every case."""

    def by_sort(first, then):
        order = jax.lax.sort((first, then, jnp.arange(first.shape[0], dtype=jnp.int32)), num_keys=2)[2]
        return jnp.zeros(first.shape, jnp.int32).at[order].set(jnp.arange(first.shape[0], dtype=jnp.int32))

    n = first.shape[0]
    if not window or n <= window:
        return by_sort(first, then)
    index = jnp.arange(n, dtype=jnp.int32)
    after, before = jnp.zeros(n, jnp.int32), jnp.zeros(n, jnp.int32)
    ahead_f = jnp.concatenate([first, jnp.full(window, INF, first.dtype)])
    ahead_t = jnp.concatenate([then, jnp.full(window, jnp.iinfo(then.dtype).max, then.dtype)])
    for s in range(1, window + 1):  # element i + s before element i in the order (none past the end)
        f, t = ahead_f[s : s + n], ahead_t[s : s + n]
        less = (f < first) | ((f == first) & (t < then))
        after = after + less
        before = before + jnp.concatenate([jnp.zeros(s, bool), less[: n - s]])  # element j - s after element j
    rank = index + after - before
    # right when every element is after the largest of those more than ``window`` before it (no scatter: slow on CPUs)
    larger = lambda x, y: (jnp.where((y[0] > x[0]) | ((y[0] == x[0]) & (y[1] > x[1])), y[0], x[0]),  # noqa: E731
                           jnp.where((y[0] > x[0]) | ((y[0] == x[0]) & (y[1] > x[1])), y[1], x[1]))  # fmt: skip
    most_f, most_t = jax.lax.associative_scan(larger, (first[: n - window - 1], then[: n - window - 1]))
    f, t = first[window + 1 :], then[window + 1 :]
    right = jnp.all((most_f < f) | ((most_f == f) & (most_t < t)))
    # (the loop's own value goes into the sort's, so XLA cannot hoist the sort out of the loop and run it always)
    again = lambda c: (by_sort(*jax.lax.optimization_barrier((first, then, c))[:2]), jnp.bool_(True))  # noqa: E731
    return jax.lax.while_loop(lambda c: ~c[1], again, (rank, right))[0]


def _qc_stage(shape: Shape, exit_t, exit_ok, draws, consts) -> dict[str, jax.Array]:
    """``twin.engine.rules.qc.QcLab`` after the scan, over the line's exits (in scan order): per exit, when its QC
    started and ended and when it was approved or rejected (inf where no batch left), and whether approved.

    Quarantine order is exit order: the last station's departures come in time order (ties: scan order), so it is
    the scan's order with the holes taken out. Analysts are a FIFO pool: the n-th batch is granted at
    ``max(quarantined, earliest free analyst)`` and holds the analyst until its QC ends; QC starts at the lab
    calendar's next start, as SimPy adds the wait (``grant + (start - grant)``). Each stream is drawn when its
    event happens, so a batch's draw is its rank in time: the test at QC start (by start, then quarantine order:
    starts follow grants, except that a start one ulp before an earlier batch's draws first; starts depend on
    earlier tests, so such ranks are iterated to a fixed point), the incubation at QC end (by end, then start
    rank), the out-of-spec draw when the incubation ends (at QC end without one; by that time, then end rank),
    the investigation in the order of out-of-spec results. Sorting is what costs: a rank is sorted for only
    where the lab's options make it matter (``lax.cond`` on constants every lane shares), and ends and results,
    nearly in order already, are ranked in a window (``_ranks``) and sorted only if a lane fails its check. The
    lab calendar's next start is found in the scan without ``_next_start``'s loop, and checked afterwards.
    Every shortcut gives what the long way gives, to the bit."""
    width, n_edges = shape.qc
    qc, d = consts["qc"], draws["qc"]  # d: [stream, k]: test, incubation, oos, investigation
    last = d.shape[-1] - 1
    n = exit_t.shape[0]
    index = jnp.arange(n, dtype=jnp.int32)
    holes = jnp.cumsum(~exit_ok) - 1
    place = jnp.where(exit_ok, jnp.cumsum(exit_ok) - 1, jnp.sum(exit_ok) + holes)  # exits first, in scan order
    order = jnp.zeros(n, jnp.int32).at[place].set(index)  # quarantine order
    ok = exit_ok[order]
    quarantined = jnp.where(ok, exit_t[order], 0.0)
    free0 = jnp.where(jnp.arange(width) < qc["analysts"], 0.0, INF)  # analysts' free times (slots beyond: never)
    # (``qc["analysts"]``: the design's; ``qc["most"]``: the most of any design, shared by all lanes)

    def testing(rank):
        def one(free, x, exact):
            q, valid, r = x
            a = jnp.argmin(free)
            grant = jnp.maximum(q, free[a])
            start = opens = grant
            if n_edges:  # the analyst waits for the lab's working time
                if exact:
                    opens = _next_start(grant, qc["calendar"], n_edges)
                else:  # the next edge, or the float after it when that is a hair early (checked below)
                    cal, change = qc["calendar"], _next_edge(grant, qc["calendar"], n_edges)
                    later = jnp.where(_working(change, cal), change, jnp.nextafter(change, INF))
                    opens = jnp.where(_working(grant, cal), grant, later)
                start = jnp.where(opens > grant, grant + (opens - grant), grant)
            end = start + d[0, jnp.minimum(r, last)]
            return free.at[a].set(jnp.where(valid, end, free[a])), (start, end, grant)

        x = (quarantined, ok, rank)
        start, end, grant = jax.lax.scan(functools.partial(one, exact=not n_edges), free0, x)[1]
        if not n_edges:
            return start, end
        # That is ``_next_start``'s value where its loop stops there: from a grant off shift, the next edge is later
        # and on shift, or it is a hair early (its own next edge is no later) and the float after it is on shift.
        # Then the scan took the engine's steps; else it runs again with ``_next_start``, in every lane that needs it
        # (its inputs pass the loop's value: XLA would otherwise hoist the scan out of the loop and always run it).
        cal, change = qc["calendar"], _next_edge(grant, qc["calendar"], n_edges)
        early = (_next_edge(change, cal, n_edges) <= change) & _working(jnp.nextafter(change, INF), cal)
        right = jnp.all(~ok | _working(grant, cal) | ((change > grant) & (_working(change, cal) | early)))
        exact = functools.partial(one, exact=True)
        barrier = jax.lax.optimization_barrier
        again = lambda c: (*jax.lax.scan(exact, *barrier((free0, x, c))[:2])[1][:2], jnp.bool_(True))  # noqa: E731
        return jax.lax.while_loop(lambda c: ~c[2], again, (start, end, right))[:2]

    def unsettled(s):
        return s[3] & (s[4] < n)  # (a pass per batch at most)

    def settle(s):  # draws by the ranks of the starts they gave, until those are the ranks they were drawn by
        rank, start, end, _, it = s
        implied = _ranks(jnp.where(ok, start, INF), index)
        settled = jnp.all(implied == rank)
        start2, end2 = testing(implied)
        return (jnp.where(settled, rank, implied), jnp.where(settled, start, start2), jnp.where(settled, end, end2),
                ~settled, it + 1)  # fmt: skip

    start, end = testing(index)  # starts in quarantine order: ranks are the order (ties too)
    key = jnp.where(ok, start, INF)
    in_order = jnp.all(key[1:] >= key[:-1])
    rank, start, end, _, _ = jax.lax.while_loop(unsettled, settle, (index, start, end, ~in_order, jnp.int32(0)))
    oos_p = qc["oos"]
    # one analyst ends in start order; results after an incubation of constant length come in end order
    sort_ends = (qc["most"] > 1) & (qc["incubation"] | (oos_p > 0))
    end_rank = jax.lax.cond(sort_ends, lambda: _ranks(jnp.where(ok, end, INF), rank, 32), lambda: rank)
    incubation = d[1, jnp.minimum(end_rank, last)]
    result = end + incubation  # the out-of-spec draw (at QC end when the incubation is zero: ``qc_outside``)
    sort_results = qc["incubation_varies"] & (oos_p > 0)
    oos_rank = jax.lax.cond(sort_results, lambda: _ranks(jnp.where(ok, result, INF), end_rank, 32), lambda: end_rank)
    oos = ok & (d[2, jnp.minimum(oos_rank, last)] < oos_p)
    investigated = oos & qc["investigate"]
    by_result = jnp.zeros(n, jnp.int32).at[oos_rank].set(index)  # who drew the k-th out-of-spec draw
    flags = investigated[by_result].astype(jnp.int32)
    inv_rank = (jnp.cumsum(flags) - flags)[oos_rank]  # investigations before, in the order of the results
    out = jnp.where(investigated, result + d[3, jnp.minimum(inv_rank, last)], result)
    back = lambda x, fill: jnp.zeros_like(x).at[order].set(jnp.where(ok, x, fill))  # noqa: E731 (to scan order)
    return {
        "qc_start": back(start, INF), "qc_end": back(end, INF), "qc_out": back(out, INF),
        "qc_approved": back(~oos | investigated, False),
    }  # fmt: skip


def _released(free, k, stations, shape, consts):
    """When the first station, free at ``free``, releases the batch of rank ``k`` (``ReleaseGate.wait``): in the
    release calendar's working time and, under a WIP limit of L batches, once rank k - L has started at the
    limit's station (written ``L - sum(c_i - 1)`` or more steps earlier: ``Shape.wip`` only then)."""
    n_edges = shape.release_calendar
    t = _release_gate(free, consts["release_calendar"], n_edges) if n_edges else free
    if not shape.wip:
        return t
    station, limit = shape.wip[1], consts["wip_limit"]  # the design's limit (the ring holds the largest + 1)
    if _wip_exits(shape):  # batches leave before the station: the L-th latest of the ranks' starts or exits
        latest = stations[station]["wip_out"]  # the latest times for the largest limit of any design
        freed = jnp.sort(latest)[latest.shape[0] - limit]
    else:
        ring = stations[station]["wip_starts"]
        freed = jnp.where(k >= limit, ring[jnp.mod(k - limit, limit + 1)], -INF)  # the start that makes room
    later = _release_gate(freed, consts["release_calendar"], n_edges) if n_edges else freed
    return jnp.where(freed <= t, t, later)  # the gate looks at the calendar, then waits for room, then again


def _wip_exits(shape: Shape) -> bool:
    """Batches can leave before the WIP limit's station (rejects, scraps when taken), each freeing its place when it
    leaves, so ranks there are not batches; or they start there out of rank order (several units with cleans or
    changeovers). The release of rank n then waits for the L-th latest of the n earlier batches' starts at the
    station or exits before it (all made in earlier steps: one unit at every station before it,
    ``optimizers.lines.conwip_outside``)."""
    if not shape.wip:
        return False
    station = shape.wip[1]
    return shape.defers(station) or any(shape.rejects(i) or shape.holds_at(i) for i in range(station))


def _keep_latest(latest: jax.Array, t: jax.Array, on: jax.Array) -> jax.Array:
    """The ``len(latest)`` latest times seen, with ``t`` (where ``on``) seen too (-inf: none yet)."""
    at = jnp.argmin(latest)
    return latest.at[at].set(jnp.where(on & (t > latest[at]), t, latest[at]))


def _resolve_pending(s, j, arriving, finished, arrival, product, history, shape, draws, consts, w0, w1):
    """The clean after a deferred departure: it sees the arriving batch if that was waiting when the clean
    started (``next_product``), then frees the unit (and its place upstream) at the clean's end."""
    resolve = s["pending"] & (arriving | finished)
    waiting = arriving & (arrival < s["pending_at"])
    change_major = waiting & consts["change_major"][j, s["pending_product"], product]
    free, s = _clean_after(s["pending_at"], resolve, s, j, shape, draws, consts, w0, w1, change_major)
    at = jnp.mod(s["pending_number"], history)
    s["hist"] = s["hist"].at[at].set(jnp.where(resolve, free, s["hist"][at]))
    s["last_dep"] = jnp.where(resolve, free, s["last_dep"])
    s["pending"] = s["pending"] & ~resolve
    return s


def _with_levers(design: dict[str, Any], consts: dict[str, Any]) -> dict[str, Any]:
    """The constants with the levers of the batch rules a design sets (``optimizers.problem.LEVERS``, kernel
    inputs of each design, so one compilation serves every value): the cleaning due thresholds per station, the
    QC analysts, the WIP limit."""
    due = {key: design[key] for key in ("due_batches", "due_hours", "due_kg")}
    return {
        **consts, "cleaning": {**consts["cleaning"], **due}, "qc": {**consts["qc"], "analysts": design["qc_analysts"]},
        "wip_limit": design["wip_limit"],
    }  # fmt: skip


def lane(shape: Shape, design: dict[str, Any], seq: jax.Array, draws: dict[str, Any], consts: dict[str, Any]):
    """Simulate one design in one replication; returns its KPIs (and departures when recording)."""
    n_st, n_batches = shape.stations, shape.batches
    consts = _with_levers(design, consts)
    w0, w1 = consts["warmup"], consts["horizon"]
    units, buffers, speed = design["units"], design["buffers"], design["speed"]
    n_in = design["batches"]  # the design's batches (a plan's campaign lengths): shape.batches at most
    big = jnp.iinfo(jnp.int32).max
    history = shape.ring + max(shape.max_units)  # > buffer + units: the departures a blocking term looks back

    def station_init(j: int) -> dict[str, Any]:
        width = shape.max_units[j]
        state = {
            "hist": jnp.zeros(history),  # when the unit of each departure was free again, by departure number
            "arrived": jnp.zeros((), jnp.int32),  # batches taken so far (the next one's rank)
            "started": jnp.zeros((), jnp.int32),  # batches processed so far (the draws they used)
            "left": jnp.zeros((), jnp.int32),  # departures so far (rejected batches included)
            "last_dep": jnp.zeros(()),
            "last_unit": jnp.zeros((), jnp.int32),
            "fin": jnp.full(width, INF),
            "batch": jnp.zeros(width, jnp.int32),
            "qty": jnp.zeros(width),
            "rank": jnp.full(width, big, jnp.int32),
            "acc": jnp.zeros(len(STATES)),  # hours in each of STATES in the window
            "limit": jnp.full((), -INF),  # departure of rank N - c: after it no unit can start a batch we lack
            "last_out": jnp.full((), -INF),  # the latest rejected batch
            # line OEE's figures (``_credit``): ideal hours and units of the finishes per product, finishes, the
            # ideal hours earned in the window, the processing in the window of a batch unfinished at the horizon
            "oee_ideal": jnp.zeros(shape.products), "oee_qty": jnp.zeros(shape.products),
            "oee_finishes": jnp.zeros((), jnp.int32), "oee_credit": jnp.zeros(()), "oee_tail": jnp.zeros(()),
        }
        if shape.products > 1:
            state["count"] = jnp.zeros(shape.products, jnp.int32)
        if shape.has_setup[j]:
            state["prev"] = jnp.full(width, -1, jnp.int32)
            state["setups"] = jnp.zeros((shape.products, shape.products), jnp.int32)
        if shape.on_calendar(j):  # the first failure a time to failure after the start (0)
            state["nf"] = draws["ttf"][j, :width, 0]
            state["f"] = jnp.zeros(width, jnp.int32)
        elif shape.has_failures[j]:
            state["until"] = draws["ttf"][j, :width, 0]
            state["f"] = jnp.zeros(width, jnp.int32)
        if shape.cleans(j):
            state["hygiene"] = _hygiene_init()
            if width > 1:  # one per unit (the clean draws stay the station's)
                state["hygienes"] = {
                    k: jnp.broadcast_to(v, (width,)) for k, v in state["hygiene"].items() if k != "drawn"
                }
        if shape.defers(j):  # taken batches waiting for their processing draw (``_draw_in_start_order``)
            state["start"], state["undrawn"] = jnp.full(width, INF), jnp.zeros(width, bool)
            state["prod"], state["qty_in"] = jnp.zeros(width, jnp.int32), jnp.zeros(width)
            state["drawn_n"] = jnp.zeros((), jnp.int32)
        if width > 1 and shape.holds_at(j):
            state["scrap"] = jnp.zeros(width, bool)
        if width > 1 and shape.rejects(j):
            state["finishes"] = jnp.zeros((), jnp.int32)  # processed batches departed (reject draws: finish order)
        if shape.looks_ahead(j):  # a departure whose clean waits to see whether the next batch is there
            state["pending"] = jnp.zeros((), bool)
            state["pending_at"], state["pending_product"] = jnp.zeros(()), jnp.zeros((), jnp.int32)
            state["pending_number"] = jnp.zeros((), jnp.int32)
        if shape.changeover_cleans and shape.changeover_cleans[j]:
            state["clearances"] = jnp.zeros((), jnp.int32)
        if shape.wip and shape.wip[1] == j:  # the WIP limit's station: when each rank started (or was scrapped)
            state["wip_starts"] = jnp.full(shape.wip[0] + 1, -INF)
            if _wip_exits(shape):  # the L latest starts here or exits before (``_released``)
                state["wip_out"] = jnp.full(shape.wip[0], -INF)
        return state

    def step(carry, t):
        stations, clocks = list(carry[0]), carry[1]
        valid, finished = t < n_in, t >= n_in - 1  # a batch arrives; none will after this one
        batch = jnp.minimum(t, n_batches - 1).astype(jnp.int32)
        arrival = jnp.zeros(()) if shape.pull else draws["arrivals"][batch]
        p_first = seq[batch] if shape.products > 1 else jnp.zeros((), jnp.int32)
        qty = consts["sizes"][p_first]
        release = arrival
        outputs = []
        for j in range(n_st):
            s = dict(stations[j])
            c = units[j]
            p = seq[batch] if shape.products > 1 else jnp.zeros((), jnp.int32)
            if shape.looks_ahead(j):  # the clean after the last departure, now that we know what came next
                s = _resolve_pending(s, j, valid, finished, arrival, p, history, shape, draws, consts, w0, w1)
            k = s["arrived"]  # the arriving batch's rank here
            # -- the arrival of rank k takes the unit freed by departure k - c (or unit k at the start)
            first = k < c
            u = jnp.where(first, k, s["last_unit"]).astype(jnp.int32)
            u = jnp.clip(u, 0, shape.max_units[j] - 1)
            take = jnp.maximum(arrival, jnp.where(first, 0.0, s["last_dep"]))
            if j == 0 and shape.pull:
                take = _released(take, k, stations, shape, consts)
                release = take
            elif shape.on_calendar(j):  # failures while it waited for the batch (``RulesUnit._ready``)
                ready, nf, f, down, _ = _wait_over(
                    take, s["nf"][u], s["f"][u], draws["ttf"][j], draws["ttr"][j], u, valid, w0, w1
                )
                s["nf"], s["f"] = s["nf"].at[u].set(nf), s["f"].at[u].set(f)
                s["acc"] = s["acc"].at[2].add(down)
                take = take + (ready - take)
            scrapped = jnp.zeros((), bool)
            for h in shape.holds_at(j):  # a batch whose hold time ran out is scrapped when taken
                scrapped = scrapped | (take - clocks[h, batch] > consts["hold_max"][h])
            arriving, valid = valid, valid & ~scrapped  # ``valid`` from here: the batch is processed
            if shape.cleans(j):  # a clean again if the clean or dirty hold time ran out
                s = _unit_hygiene(s, u)
                take, s = _clean_before(take, valid, s, j, shape, draws, consts, w0, w1)
            start = take
            if shape.has_setup[j]:
                prev = s["prev"][u]
                pa = jnp.maximum(prev, 0)
                if shape.change_cleans(j):  # a change that needs a major clean gets one unless one was done since
                    major = valid & (prev >= 0) & consts["change_major"][j, pa, p] & ~s["hygiene"]["major_since"]
                    take, s = _clean(take, True, major, s, j, shape, draws, w0, w1)
                needs = valid & (prev >= 0) & consts["setup_exists"][j, pa, p]
                index = jnp.minimum(s["setups"][pa, p], draws["setup"].shape[-1] - 1)
                d = draws["setup"][j, pa, p, index]
                after, down_in_setup = _timed(take, d, needs, s, j, u, shape, draws, w0, w1)
                start = jnp.where(needs, after, take)
                s["setups"] = s["setups"].at[pa, p].add(jnp.where(needs, 1, 0))
                s["prev"] = s["prev"].at[u].set(jnp.where(valid, p, prev))
                if "clearances" in s:  # the line clearance after the changeover time
                    clear = valid & (prev >= 0) & consts["change_clearance"][j, pa, p]
                    d = draws["line_clearance"][j, jnp.minimum(s["clearances"], draws["line_clearance"].shape[-1] - 1)]
                    cleared, down = _timed(start, d, clear, s, j, u, shape, draws, w0, w1)
                    down_in_setup = down_in_setup + down
                    start = jnp.where(clear, cleared, start)
                    s["clearances"] = s["clearances"] + jnp.where(clear, 1, 0)
                s["acc"] = s["acc"].at[1].add(jnp.where(valid, _overlap(take, start, w0, w1) - down_in_setup, 0.0))
            if shape.cleans(j):
                s = _keep_hygiene(s, u)
            if "wip_starts" in s:  # out of the WIP limit's count: started (or scrapped when taken)
                at = jnp.mod(k, consts["wip_limit"] + 1)
                s["wip_starts"] = s["wip_starts"].at[at].set(jnp.where(arriving, start, s["wip_starts"][at]))
                if "wip_out" in s:  # this step's exits before the station (their batches leave the count), the start
                    for _, _, _, exit_t in outputs:
                        s["wip_out"] = _keep_latest(s["wip_out"], exit_t, exit_t < INF)
                    s["wip_out"] = _keep_latest(s["wip_out"], start, arriving)
            started = jnp.minimum(s["started"], n_batches - 1)  # draws of the station's own streams, in start order
            qty_in, busy = qty, valid if not shape.defers(j) else jnp.zeros((), bool)  # (deferred: drawn later)
            if shape.products > 1:
                index = s["count"][p]
                s["count"] = s["count"].at[p].add(jnp.where(busy, 1, 0))
            else:
                index = started
            index = jnp.minimum(index, n_batches - 1)
            if shape.rated(j):  # start-up plus the batch's units over the effective rate, with noise
                startup, effective = consts["rate"][j, 0], consts["rate"][j, 1]
                noise = draws["rate_noise"][j, started]  # one stream, in start order
                work = _div(startup + _div(qty, effective) * noise, speed[j])
            else:
                work = _div(draws["process"][j, p, index], speed[j])
            finish, s = _processed_on(s, j, u, start, work, busy, shape, draws, w0, w1, (p, qty, speed, consts))
            if shape.cleans(j):
                kg = _div(consts["masses"][p] * qty, consts["sizes"][p])
                s["hygiene"] = _processed(s["hygiene"], finish, kg, busy)
            if shape.yields(j):
                qty = qty - qty * (1 - consts["quality"][j, 0])
            if shape.defers(j):  # its start, product and units, for the processing drawn in start order
                finish = jnp.full((), INF)
                for key, value in (("start", start), ("undrawn", valid), ("prod", p), ("qty_in", qty_in)):
                    s[key] = s[key].at[u].set(jnp.where(arriving, value, s[key][u]))
            if "scrap" in s:
                s["scrap"] = s["scrap"].at[u].set(jnp.where(arriving, scrapped, s["scrap"][u]))
            finish = jnp.where(scrapped, take, finish)  # a scrapped batch leaves the unit free at once
            s["fin"] = s["fin"].at[u].set(jnp.where(arriving, finish, s["fin"][u]))
            s["batch"] = s["batch"].at[u].set(jnp.where(arriving, batch, s["batch"][u]))
            s["qty"] = s["qty"].at[u].set(jnp.where(arriving, qty, s["qty"][u]))
            s["rank"] = s["rank"].at[u].set(jnp.where(arriving, k, s["rank"][u]).astype(jnp.int32))
            s["arrived"] = k + jnp.where(arriving, 1, 0)
            s["started"] = s["started"] + jnp.where(valid, 1, 0)
            # -- a departure when every unit is loaded, or when no batch will come: the earliest finish (ties:
            # the earlier start), when a place is free downstream
            loaded = s["arrived"] - s["left"]
            leaving = (loaded > 0) & ((loaded >= c) | finished)
            m = s["left"]  # the departure's number
            if shape.defers(j):
                s = _draw_in_start_order(s, j, leaving, shape, draws, consts, speed, w0, w1)
            if shape.max_units[j] == 1:
                w = jnp.zeros((), jnp.int32)
            else:
                soonest = jnp.min(s["fin"])
                w = jnp.argmin(jnp.where(s["fin"] == soonest, s["rank"], big)).astype(jnp.int32)
            done = s["fin"][w]
            rejected = s["scrap"][w] if "scrap" in s else scrapped  # (one unit: the departure is this batch)
            if shape.rejects(j):  # the whole batch rejected at the end of processing (draws in processing order)
                drawn = s.get("finishes", started)  # (several units: departures in finish order)
                if "finishes" in s:
                    s["finishes"] = drawn + jnp.where(leaving & ~rejected, 1, 0)
                rejected = rejected | (draws["reject"][j, jnp.minimum(drawn, n_batches - 1)] < consts["quality"][j, 1])
            departure = done
            if j + 1 < n_st:
                b, down_c = buffers[j + 1], units[j + 1]
                back = stations[j + 1]["arrived"] - b - down_c  # the departure downstream that frees our place
                held = stations[j + 1]["hist"][jnp.mod(back, history)]
                blocking = (b >= 0) & (back >= 0) & ~rejected
                departure = jnp.maximum(done, jnp.where(blocking, held, 0.0))
            s["acc"] = s["acc"].at[3].add(jnp.where(leaving, _overlap(done, departure, w0, w1), 0.0))
            free = departure  # when the unit can take its next batch (a place frees in this station's buffer)
            if shape.on_calendar(j):  # failures while blocked: a repair under way holds the unit after it leaves
                ready, nf, f, down, while_blocked = _wait_over(
                    departure, s["nf"][w], s["f"][w], draws["ttf"][j], draws["ttr"][j], w, leaving & (departure > done),
                    w0, w1,
                )  # fmt: skip
                s["nf"], s["f"] = s["nf"].at[w].set(nf), s["f"].at[w].set(f)
                s["acc"] = s["acc"].at[2].add(down).at[3].add(-while_blocked)  # down, not blocked
                free = departure + (ready - departure)
            cleaned = leaving & ~(s["scrap"][w] if "scrap" in s else scrapped)
            if shape.looks_ahead(j):  # wait for the next batch, unless none can be waiting when the clean starts
                # the release plan's next product is known (a mix's is not); a batch can wait in a buffer, not in
                # a hand-over
                can_wait = jnp.bool_(shape.seq_from_design) if j == 0 and shape.pull else buffers[j] != 0
                defer = cleaned & ~finished & can_wait
                s["pending"] = s["pending"] | defer
                s["pending_at"] = jnp.where(defer, free, s["pending_at"])
                s["pending_product"] = jnp.where(defer, p, s["pending_product"])  # (one unit: the batch taken)
                s["pending_number"] = jnp.where(defer, m, s["pending_number"])
                cleaned = cleaned & ~defer
            if shape.cleans(j):  # the clean after the batch: major when due, minor otherwise
                s = _unit_hygiene(s, w)
                free, s = _clean_after(free, cleaned, s, j, shape, draws, consts, w0, w1)
                s = _keep_hygiene(s, w)
            out_batch, out_qty = s["batch"][w], s["qty"][w]
            s["fin"] = s["fin"].at[w].set(jnp.where(leaving, INF, done))
            s["rank"] = s["rank"].at[w].set(jnp.where(leaving, big, s["rank"][w]))
            s["limit"] = jnp.where(leaving & (m == n_batches - c), free, s["limit"])
            s["last_out"] = jnp.where(leaving & rejected, jnp.maximum(s["last_out"], done), s["last_out"])
            s["last_dep"] = jnp.where(leaving, free, s["last_dep"])
            s["last_unit"] = jnp.where(leaving, w, s["last_unit"])
            s["hist"] = s["hist"].at[jnp.mod(m, history)].set(jnp.where(leaving, free, s["hist"][jnp.mod(m, history)]))
            s["left"] = m + jnp.where(leaving, 1, 0)
            finished = finished & (s["arrived"] == s["left"])  # downstream: nothing more after this step
            for h, (source, _) in enumerate(shape.holds):  # the clocks that start when a batch leaves here
                if source == j:
                    clocks = clocks.at[h, out_batch].set(
                        jnp.where(leaving & ~rejected, departure, clocks[h, out_batch])
                    )
            stations[j] = s
            outputs.append((departure, out_batch, leaving & ~rejected, jnp.where(leaving & rejected, done, INF)))
            arrival, batch, valid, qty = departure, out_batch, leaving & ~rejected, out_qty
        last = outputs[-1]
        ys = {"exit": last[0], "exit_batch": last[1], "exit_valid": last[2], "release": release, "exit_qty": qty}
        if shape.products > 1:
            ys["exit_product"] = seq[batch]
        if any(shape.rejects(j) or shape.holds_at(j) for j in range(n_st)):
            ys["rejects"] = jnp.stack([o[3] for o in outputs])  # when each station rejected a batch (else inf)
        if shape.record:
            ys["departure"] = jnp.stack([o[0] for o in outputs])
            ys["batch"] = jnp.stack([o[1] for o in outputs])
            ys["valid"] = jnp.stack([o[2] for o in outputs])
        return (tuple(stations), clocks), ys

    init = (tuple(station_init(j) for j in range(n_st)), jnp.full((max(len(shape.holds), 1), n_batches), INF))
    (final, _), ys = jax.lax.scan(step, init, jnp.arange(shape.steps))
    if shape.qc:  # QC release after the line: approvals and QC rejects per exit
        ys = {**ys, **_qc_stage(shape, ys["exit"], ys["exit_valid"], draws, consts)}
    out = _lane_kpis(shape, final, _exit_totals(shape, ys, consts), units, consts)
    return {**out, **_recorded(shape, ys)} if shape.record else out


def _exit_totals(shape: Shape, ys, consts) -> dict[str, jax.Array]:
    """What the KPIs need of the exits (``_lane_kpis``), from the scan's outputs per exit ``ys``; the event kernel
    keeps the same totals as it goes (``events._count_exit``). The window is after the warm-up and by the horizon (a
    finite plan's ends at its last exit, which no exit is after: the same test). Keys: ``count`` (exits in the
    window), ``lead_sum`` (their hours from release), ``first`` and ``final`` (the first and last of them),
    ``made`` (their units per product), ``last_exit`` (the last time a batch left the line, or QC), ``rejected``
    (batches rejected or scrapped in the window), ``release_lead`` (QC: mean hours from release to approval)."""
    w0, horizon = consts["warmup"], consts["horizon"]
    exit_t, exit_ok = ys["exit"], ys["exit_valid"]
    out_t = ys["qc_out"] if shape.qc else exit_t  # a batch leaves the system when QC approves or rejects it
    release = ys["release"][: shape.batches]
    rejected = jnp.sum(_in_window(ys["rejects"], w0, horizon)) if "rejects" in ys else jnp.zeros((), int)
    release_lead = jnp.full((), jnp.nan)
    if shape.qc:  # approvals in the window, from each batch's release (``twin.kpis.quality``); QC rejects too
        out_in_window = exit_ok & _in_window(out_t, w0, horizon)
        approved = out_in_window & ys["qc_approved"]
        rejected = rejected + jnp.sum(out_in_window & ~ys["qc_approved"])
        leads = jnp.where(approved, out_t - release[ys["exit_batch"]], 0.0)
        count_approved = jnp.sum(approved)
        release_lead = jnp.where(count_approved > 0, jnp.sum(leads) / jnp.maximum(count_approved, 1), jnp.nan)
    in_window = exit_ok & _in_window(exit_t, w0, horizon)
    exit_qty = jnp.where(in_window, ys["exit_qty"], 0.0)
    if shape.products > 1:
        made = jnp.stack([jnp.sum(jnp.where(ys["exit_product"] == q, exit_qty, 0.0)) for q in range(shape.products)])
    else:
        made = jnp.sum(exit_qty)[None]
    return {
        "count": jnp.sum(in_window),
        "lead_sum": jnp.sum(jnp.where(in_window, exit_t - release[ys["exit_batch"]], 0.0)),
        "first": jnp.min(jnp.where(in_window, exit_t, INF)),
        "final": jnp.max(jnp.where(in_window, exit_t, -INF)),
        "made": made,
        "last_exit": jnp.max(jnp.where(exit_ok, out_t, -INF)),
        "rejected": rejected,
        "release_lead": release_lead,
    }


def _in_window(t: jax.Array, w0: jax.Array, horizon: jax.Array) -> jax.Array:
    """Whether an exit or reject at ``t`` counts in the window: after the warm-up and by the horizon."""
    return (t > w0) & (t <= horizon)


def _recorded(shape: Shape, ys) -> dict[str, jax.Array]:
    """A recording lane's departures per step and station (tests compare them with the engine's)."""
    out = {k: ys[k] for k in ("departure", "batch", "valid")}
    out["release"] = ys["release"][: shape.batches]
    if shape.qc:  # per exit, in scan order (the batch: ``batch[:, -1]``)
        out.update({k: ys[k] for k in ("qc_start", "qc_end", "qc_out", "qc_approved")})
    return out


def _lane_kpis(shape: Shape, final, totals, units, consts) -> dict[str, jax.Array]:
    """A lane's KPIs from its stations' final state and its exits' totals (``_exit_totals``)."""
    w0, horizon = consts["warmup"], consts["horizon"]
    last_exit = jnp.maximum(totals["last_exit"], jnp.max(jnp.stack([s["last_out"] for s in final])))  # rejects leave
    end = jnp.minimum(horizon, last_exit) if shape.finite_plan else horizon
    length = end - w0
    count, first, final_exit = totals["count"], totals["first"], totals["final"]
    acc = jnp.stack([s["acc"] for s in final])  # [station, 5]
    oee, constraint = _line_oee(shape, final, totals["made"], acc, units, length)
    return {
        "throughput": count / length,
        # exits per hour between the first and the last exit of the window: differentiable in the speeds
        "rate": jnp.where(count > 1, (count - 1) / jnp.maximum(final_exit - first, 1e-12), 0.0),
        "lead_time": jnp.where(count > 0, totals["lead_sum"] / jnp.maximum(count, 1), jnp.nan),
        "utilization": acc[:, 0] / (units * length),
        "states": acc / (units * length)[:, None],
        "makespan": last_exit,
        "window_end": end,
        "rejected": totals["rejected"],
        "release_lead_time": totals["release_lead"],
        "oee": oee,
        "constraint": constraint,
        # more batches needed: a station could start a batch beyond the simulated ones before the horizon
        # (the first station's: downstream, every batch it has not taken yet is one of the simulated ones)
        "truncated": jnp.logical_and(not shape.finite_plan, final[0]["limit"] <= horizon),
        "failures_used": jnp.max(jnp.stack([jnp.max(s["f"]) if "f" in s else jnp.zeros((), jnp.int32) for s in final])),
    }


def _line_oee(shape: Shape, final, made, acc, units, length) -> tuple[jax.Array, jax.Array]:
    """Line OEE over the window and the station it is valued at (-1: none), as ``twin.kpis.report.line_oee`` and
    ``valued_oee`` compute them from the log: each station's ideal hours per unit of each product (its finishes'),
    over its units, times the good units of each product that left the line in the window (``made``); the station
    that would need the most hours is the constraint (the first of equals), valued at no more than the ideal hours it
    earned in the window and its processing hours there, over its units. NaN when no batch finished anywhere; 0 when
    none left in the window."""
    ideal = jnp.stack([s["oee_ideal"] for s in final])  # [station, product]
    qty = jnp.stack([s["oee_qty"] for s in final])
    count = units.astype(ideal.dtype)
    per_unit = _div(jnp.where(qty > 0, _div(ideal, jnp.where(qty > 0, qty, 1.0)), 0.0), count[:, None])
    needed = per_unit[:, 0] * made[0]
    for q in range(1, shape.products):
        needed = needed + per_unit[:, q] * made[q]
    c = jnp.argmax(needed >= jnp.max(needed) * (1 - OEE_TIE)).astype(jnp.int32)  # the first of stations that tie
    hours = jnp.stack([s["oee_credit"] for s in final])[c] + jnp.stack([s["oee_tail"] for s in final])[c]
    value = _div(jnp.minimum(needed[c], _div(jnp.minimum(hours, acc[c, 0]), count[c])), length)
    finished = sum(s["oee_finishes"] for s in final) > 0
    valued = jnp.any(needed != 0)
    oee = jnp.where(finished, jnp.where(valued, value, 0.0), jnp.nan)
    return oee, jnp.where(finished & valued, c, -1).astype(jnp.int32)


def compiler_options() -> dict[str, int | bool] | None:
    """XLA's options for the kernels. ``TWIN_KERNEL_COMPILE=fast`` skips LLVM's optimisations and XLA's CPU fusion
    emitters (the loop emitters instead): a kernel compiles faster (turning the fusion emitters off too: a tablet-line
    kernel of 6 weeks x 16 designs in 20-25 s of CPU against 38-46 s, 2026-12-08) and runs 3-4x slower, with the
    same results but for the last bit of some sums (a release lead time of 426.0582729429728 h against ...27 on the
    tablet line; a flow line's to the last bit). The test suite sets it (each of its kernels evaluates a few lanes
    once); a search, which runs one kernel over thousands of lanes, should not.
    """
    if os.environ.get("TWIN_KERNEL_COMPILE") == "fast":
        return {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
    return None


@functools.lru_cache(maxsize=8)
def gradient_kernel(shape: Shape):
    """``f(design, seq, draws, consts)`` for one design -> ((mean rate, mean lead time), their derivatives in
    the speeds, KPIs per replication). Forward mode (``jax.jacfwd``): there are few speeds, and failures
    fold through ``lax.while_loop``, which reverse mode cannot differentiate."""
    return with_gradient(functools.partial(lane, shape), shape.seq_from_design)


def with_gradient(one: Any, seq_from_design: bool):
    """``gradient_kernel`` of a lane ``one(design, seq, draws, consts)``."""
    use_compilation_cache()
    over_reps = jax.vmap(one, in_axes=(None, None if seq_from_design else 0, 0, None))

    def objectives(speed, design, seq, draws, consts):
        kpis = over_reps({**design, "speed": speed}, seq, draws, consts)
        return jnp.stack([jnp.mean(kpis["rate"]), jnp.mean(kpis["lead_time"])]), kpis

    def run(design, seq, draws, consts):
        jac, kpis = jax.jacfwd(objectives, has_aux=True)(design["speed"], design, seq, draws, consts)
        value = jnp.stack([jnp.mean(kpis["rate"]), jnp.mean(kpis["lead_time"])])
        return value, jac, kpis

    return jax.jit(run, compiler_options=compiler_options())


@functools.lru_cache(maxsize=32)
def compiled_kernel(shape: Shape):
    """``f(design, seq, draws, consts)`` over [designs] x [replications], jitted once per shape."""
    return over_designs(functools.partial(lane, shape), shape.seq_from_design)


def over_designs(one: Any, seq_from_design: bool):
    """``one(design, seq, draws, consts)`` (a lane) vmapped over [designs] x [replications] and jitted: the
    product sequence per design (a plan) or per replication (a mix)."""
    use_compilation_cache()  # on first use, not at import: importing the kernel touches no files
    over_reps = jax.vmap(one, in_axes=(None, None if seq_from_design else 0, 0, None))
    over = jax.vmap(over_reps, in_axes=(0, 0 if seq_from_design else None, None, None))
    return jax.jit(over, compiler_options=compiler_options())
