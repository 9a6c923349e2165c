"""Forecasts under late data: a forecast made from a plant log that late values had not reached yet is made again
once they arrive, and every score uses the latest forecast and the latest log (the sync's view, in process, over
the emulator's tag values of a real run with one tag's values held back past a forecast's time)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

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
HOURS, EVERY, HORIZON, TICK = 160.0, 40.0, 24.0, 4.0
LATE_AT = 80.0  # the forecast whose inputs arrive late


def plant_samples(spec, tags, hours: float) -> list[tuple[str, int, object]]:
    """The emulator's tag values of a ``hours`` run: (tag, source us, value), in time order."""
    emu = PlantEmulator(spec, tags, ServerOptions(), speed=None, seed=1)
    run = simulate(spec, seed=1, horizon=hours, warmup=0.0)
    first = {"batch": "", "product": "", "alarm": False}
    samples = [(tag, T0, first.get(role.rsplit(".", 1)[-1], 0)) for tag, role in tags.all_tags().items()]
    for change in emu.live.apply(run.table[run.table["event"] != "end"]):
        samples += [(tag, T0 + round(change.time * US_PER_HOUR), v) for tag, v in emu._values(change)]
    return samples


def test_a_forecast_whose_inputs_arrive_late_is_made_again_and_scored_on_the_latest(tmp_path: Path) -> None:
    spec = load_spec("osd-tablet")
    tags = parse_tag_map(default_tag_map(spec), "map", spec)
    samples = plant_samples(spec, tags, HOURS)
    # one unit's tags: their values in the 6 plant hours before LATE_AT reach the historian only after the
    # forecast at LATE_AT was made (a PLC whose notifications lag the others')
    window = (T0 + (LATE_AT - 6) * US_PER_HOUR, T0 + LATE_AT * US_PER_HOUR)

    def held(sample: tuple[str, int, object], unit_tags: set[str]) -> bool:
        return sample[0] in unit_tags and window[0] < sample[1] <= window[1]

    units = [set(unit_roles(unit).values()) for _, _, unit in tags.units()]
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
    done_upto, t, first_made = 0, 0.0, None
    while t < HOURS:
        t += TICK
        end_us = T0 + round(t * US_PER_HOUR)
        upto = int(np.searchsorted(times, end_us, side="right"))
        rows = on_time[done_upto:upto]
        if t == LATE_AT + 2 * TICK:
            rows = rows + late  # the held-back values arrive, after the forecast at LATE_AT was made
        h.append([(ids[tag], ts, None, ts, v, 0) for tag, ts, v in rows])
        done_upto = upto
        snap = view.tick(end_us, {})
        PlantSync._keep_forecasts(h, snap["forecasts"])
        stored = h.forecasts()
        if first_made is None and (stored["at_hours"] == LATE_AT).any():
            first_made = stored.loc[stored["at_hours"] == LATE_AT, "predicted"].iloc[0]
    view.close()

    assert view.observer.rebuilds >= 1 and first_made is not None
    known = view.observer.decoder.hours()
    assert known > LATE_AT + HORIZON
    log = decode_historian(h, spec, tags, T0, T0 + round(HOURS * US_PER_HOUR)).log
    stored = h.forecasts()
    h.close()
    assert list(stored["at_hours"]) == [40.0, 80.0, 120.0]
    for at, predicted, score in zip(stored["at_hours"], stored["predicted"], stored["score"], strict=True):
        expected = make_forecast(spec, log, at, HORIZON, 8, 1)  # from the whole, corrected log
        assert predicted["batches"] == expected["batches"] and predicted["completed"] == expected["completed"], at
        due = at + HORIZON <= known  # scored once decoded past its horizon
        assert score == (score_forecast(predicted, log) if due else None), at
        assert predicted.get("remade", 0) == (1 if at == LATE_AT else 0), at
    # the first forecast at LATE_AT was made without the late values, and differed
    assert first_made.get("remade") is None
    assert (first_made["batches"], first_made["completed"]) != (stored["predicted"][1]["batches"],
                                                                stored["predicted"][1]["completed"])  # fmt: skip
