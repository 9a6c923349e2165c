"""Weekly shift calendars: ``next_change`` and ``next_start`` against their definitions on random calendars."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from twin.engine.rules.calendar import WEEK, WeeklyCalendar

# quarter hours: edges whose multiples of a week add up exactly (a week's multiple plus an edge that is not
# exact in binary can fall a hair before the edge, where no calendar arithmetic is well defined)
hours = st.integers(0, 167 * 4).map(lambda q: q / 4)
intervals = st.lists(
    st.tuples(hours, st.integers(1, 100 * 4).map(lambda q: q / 4)).map(lambda iv: (iv[0], iv[0] + iv[1])),
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
    t = data.draw(st.sampled_from([t, *(e + WEEK * data.draw(st.integers(0, 5)) for e in calendar.edges)]))
    change = calendar.next_change(t)
    assert t < change <= t + 2 * WEEK
    assert calendar.is_working(change) != calendar.is_working(t)
    # no edge between t and the change turns working time on or off
    week = int(t // WEEK)
    for w in range(week, week + 3):
        for edge in calendar.edges:
            at = w * WEEK + edge
            if t < at < change:
                assert calendar.is_working(at) == calendar.is_working(t)
    start = calendar.next_start(t)
    assert start == t if calendar.is_working(t) else calendar.is_working(start) and start > t


def test_the_tablet_lines_two_shifts():
    calendar = WeeklyCalendar([(24.0 * d + 6.0, 24.0 * d + 22.0) for d in range(5)])  # Monday to Friday 06-22
    assert calendar.next_change(0.0) == 6.0
    assert calendar.next_change(6.0) == 22.0
    assert calendar.next_change(4 * 24.0 + 22.0) == WEEK + 6.0  # Friday night to Monday morning
    assert calendar.next_start(5 * 24.0) == WEEK + 6.0
    assert calendar.next_start(30.0) == 30.0
