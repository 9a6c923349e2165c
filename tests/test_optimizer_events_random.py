"""The event-stepping kernel on random lines: for each structure of ``test_optimizer_events.POOLED``, every departure
equals the SimPy engine's on the same draws (1e-9). A file of its own: the suite runs files on parallel workers."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_optimizer_events import POOLED, assert_exact, pooled_lines


@pytest.mark.slow
@pytest.mark.parametrize("structure", list(POOLED))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**31))
def test_departures_with_operators_equal_engine(structure: str, data: st.DataObject, seed: int) -> None:
    shape = POOLED[structure]
    assert_exact(data.draw(pooled_lines(shape), label="spec"), seed, shape.batches)
