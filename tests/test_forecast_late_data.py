"""Forecasts under late data: a forecast made from a plant log that late values had not reached yet is made again
once they arrive, and every score uses the latest forecast and the latest log (the sync's view, in process, over
the emulator's tag values of a real run with one tag's values held back past a forecast's time)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from connectors.opcua.emulator import PlantEmulator
from connectors.opcua.forecasting import make_forecast, score_forecast
from connectors.opcua.historian import Historian
from connectors.opcua.observer import PlantView, decode_historian
from connectors.opcua.plantlog import US_PER_HOUR
from connectors.opcua.roles import unit_roles
from connectors.opcua.sync import PlantSync
from connectors.opcua.tagmap import default_tag_map, parse_tag_map
from connectors.opcua.uabase import ServerOptions
from twin.engine import simulate
from twin.models import load_spec

T0 = 1_700_000_000_000_000
EVERY, HORIZON, TICK = 40.0, 24.0, 4.0
LATE_AT = 80.0  # the forecast whose inputs, or whose horizon's values, arrive late


def plant_samples(spec, tags, hours: float) -> list[tuple[str, int, object]]:
    """The emulator's tag values of a ``hours`` run: (tag, source us, value), in time order."""
    emu = PlantEmulator(spec, tags, ServerOptions(), speed=None, seed=1)
    run = simulate(spec, seed=1, horizon=hours, warmup=0.0)
    first = {"batch": "", "product": "", "alarm": False}
    samples = [(tag, T0, first.get(role.rsplit(".", 1)[-1], 0)) for tag, role in tags.all_tags().items()]
    for change in emu.live.apply(run.table[run.table["event"] != "end"]):
        samples += [(tag, T0 + round(change.time * US_PER_HOUR), v) for tag, v in emu._values(change)]
    return samples


@pytest.mark.parametrize(
    "held_from, held_to, arrive, hours",
    [
        (LATE_AT - 6, LATE_AT, LATE_AT + 2 * TICK, 160.0),  # its inputs, soon after it was made: made again
        (LATE_AT - 6, LATE_AT, LATE_AT + 144, 240.0),  # ... long after it was scored (a loaded machine, a fast plant)
        (LATE_AT + 6, LATE_AT + 12, LATE_AT + 144, 240.0),  # its horizon's, long after it was scored: scored again
    ],
    ids=["inputs-soon", "inputs-long-after", "horizon-long-after"],
)
def test_a_forecast_whose_values_arrive_late_is_made_or_scored_again_on_the_latest(
    tmp_path: Path, held_from: float, held_to: float, arrive: float, hours: float
) -> None:
    spec = load_spec("osd-tablet")
    tags = parse_tag_map(default_tag_map(spec), "map", spec)
    samples = plant_samples(spec, tags, hours)
    # one unit's tags: their values in (held_from, held_to] reach the historian only at plant time ``arrive``
    # (a PLC whose notifications lag the others')
    window = (T0 + held_from * US_PER_HOUR, T0 + held_to * US_PER_HOUR)

    def held(sample: tuple[str, int, object], unit_tags: set[str]) -> bool:
        return sample[0] in unit_tags and window[0] < sample[1] <= window[1]

    last = spec.stations[-1].name  # where batches leave the line: values that decide a score
    units = [set(unit_roles(unit).values()) for station, _, unit in tags.units() if held_to <= LATE_AT or station == last]
    unit_tags = max(units, key=lambda u: sum(held(s, u) for s in samples))
    late = [s for s in samples if held(s, unit_tags)]
    on_time = [s for s in samples if not held(s, unit_tags)]
    assert late

    h = Historian(tmp_path / "h.db")
    ids = h.register_tags(tags.all_tags())
    options = SimpleNamespace(warmup=0.0, shadow=True, until=None, seed=1, forecast_every=EVERY, kpis_since=None,
                              forecast_horizon=HORIZON, forecast_replications=8)  # fmt: skip
    view = PlantView(spec, tags, T0, options, str(tmp_path / "h.db"))
    times = np.array([ts for _, ts, _ in on_time])
    done_upto, t, first_made, first_score = 0, 0.0, None, None
    while t < hours:
        t += TICK
        end_us = T0 + round(t * US_PER_HOUR)
        upto = int(np.searchsorted(times, end_us, side="right"))
        rows = on_time[done_upto:upto]
        if t == arrive:
            rows = rows + late  # the held-back values arrive
        h.append([(ids[tag], ts, None, ts, v, 0) for tag, ts, v in rows])
        done_upto = upto
        snap = view.tick(end_us, {})
        PlantSync._keep_forecasts(h, snap["forecasts"])
        stored = h.forecasts()
        if first_made is None and (stored["at_hours"] == LATE_AT).any():
            first_made = stored.loc[stored["at_hours"] == LATE_AT, "predicted"].iloc[0]
        scored = stored.loc[stored["at_hours"] == LATE_AT, "score"]
        if first_score is None and t < arrive and len(scored) and scored.iloc[0] is not None:
            first_score = scored.iloc[0]
    view.close()

    assert view.observer.rebuilds >= 1 and first_made is not None
    known = view.observer.decoder.hours()
    assert known > LATE_AT + HORIZON
    log = decode_historian(h, spec, tags, T0, T0 + round(hours * US_PER_HOUR)).log
    stored = h.forecasts()
    h.close()
    assert list(stored["at_hours"]) == list(np.arange(EVERY, hours - HORIZON + 1e-9, EVERY))
    for at, predicted, score in zip(stored["at_hours"], stored["predicted"], stored["score"], strict=True):
        expected = make_forecast(spec, log, at, HORIZON, 8, 1)  # from the whole, corrected log
        assert predicted["batches"] == expected["batches"] and predicted["completed"] == expected["completed"], at
        due = at + HORIZON <= known  # scored once decoded past its horizon
        assert score == (score_forecast(predicted, log) if due else None), at
        inputs_late = held_from < at < arrive  # its inputs changed after it was made
        assert predicted.get("remade", 0) == (1 if inputs_late else 0), at
    final = stored.set_index("at_hours")
    if held_to <= LATE_AT:  # the first forecast at LATE_AT was made without the late values, and differed
        assert first_made.get("remade") is None
        now = final.loc[LATE_AT, "predicted"]
        assert (first_made["batches"], first_made["completed"]) != (now["batches"], now["completed"])
    if arrive > LATE_AT + HORIZON:  # it was scored before the late values came, and its score changed with them
        assert first_score is not None and first_score != final.loc[LATE_AT, "score"]
