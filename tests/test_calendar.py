"""Weekly shift calendars: ``next_change`` and ``next_start`` against their definitions on random calendars."""

from __future__ import annotations

import itertools
from pathlib import Path

from conftest import ROOT, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.engine.rules.calendar import WEEK, WeeklyCalendar

# whole minutes (most are not exact in binary: a week's multiple plus such an edge can fall a hair before it)
hours = st.integers(0, 167 * 60).map(lambda m: m / 60)
intervals = st.lists(
    st.tuples(hours, st.integers(1, 100 * 60).map(lambda m: m / 60)).map(lambda iv: (iv[0], iv[0] + iv[1])),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(intervals, st.floats(0.0, 20 * WEEK), st.data())
def test_next_change_is_the_first_edge_where_working_time_starts_or_ends(spans, t, data):
    calendar = WeeklyCalendar(spans)
    if calendar.always:
        assert calendar.next_change(t) == float("inf") and calendar.next_start(t) == t
        return
    t = data.draw(st.sampled_from([t, *(e + WEEK * data.draw(st.integers(0, 60)) for e in calendar.edges)]))
    change = calendar.next_change(t)
    assert t < change <= t + 2 * WEEK
    assert calendar.is_working(change) != calendar.is_working(t)
    # no edge between t and the change turns working time on or off
    week = int(t // WEEK)
    for w in range(week - 1, week + 3):
        for edge in calendar.edges:
            at = w * WEEK + edge
            if t < at < change:
                assert calendar.is_working(at) == calendar.is_working(t)
    start = calendar.next_start(t)
    assert start == t if calendar.is_working(t) else calendar.is_working(start) and start > t


def test_shift_edges_not_exact_in_binary_end_for_good():
    """A shift from 06:20 to 22:10: in week 2, 2 x 168 + 6.333... h lies a hair before 06:20 of its week (the
    loop that looked for the next change found the same time for ever, and a run hung)."""
    calendar = WeeklyCalendar([(24.0 * d + 6 + 20 / 60, 24.0 * d + 22 + 10 / 60) for d in range(5)])
    t, changes = 0.0, []
    while t < 10 * WEEK:
        t = calendar.next_change(t)
        changes.append(t)
    assert len(changes) == 10 * 10 + 1  # two a weekday, every week
    assert all(calendar.is_working(a) != calendar.is_working(b) for a, b in itertools.pairwise(changes))
    assert abs(changes[20] - (2 * WEEK + 6 + 20 / 60)) < 1e-9


def test_the_tablet_lines_two_shifts():
    calendar = WeeklyCalendar([(24.0 * d + 6.0, 24.0 * d + 22.0) for d in range(5)])  # Monday to Friday 06-22
    assert calendar.next_change(0.0) == 6.0
    assert calendar.next_change(6.0) == 22.0
    assert calendar.next_change(4 * 24.0 + 22.0) == WEEK + 6.0  # Friday night to Monday morning
    assert calendar.next_start(5 * 24.0) == WEEK + 6.0
    assert calendar.next_start(30.0) == 30.0


def test_a_tablet_line_on_shifts_from_0620_to_2210_runs_to_its_end(tmp_path: Path):
    """The built-in tablet line with its shifts moved off whole hours (the run used to hang in week 2)."""
    text = (ROOT / "plant_models" / "osd_tablet.yaml").read_text()
    for old, new in (('start: "06:00", end: "22:00"', 'start: "06:20", end: "22:10"'),
                     ('start: "00:00", end: "24:00"', 'start: "00:20", end: "23:50"')):  # fmt: skip
        assert old in text
        text = text.replace(old, new)
    spec = tmp_path / "tablets.yaml"
    spec.write_text(text)
    result = run_cli("run", str(spec), "--horizon", "26 w", "-r", "1", "--json", timeout=600)  # only a hang takes 600 s
    assert result.returncode == 0, result.stderr
    assert '"oee"' in result.stdout
