"""Plant tag samples -> event log, on hand-made samples whose event log is known exactly; tag map checks."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from opcua_helpers import LINE_YAML

import plant_models
from connectors.opcua.cli import builtin_tag_map
from connectors.opcua.plantlog import plant_event_log
from connectors.opcua.tagmap import default_tag_map, dump_tag_map, load_tag_map, parse_tag_map
from twin.errors import SpecError
from twin.kpis.report import compute_kpis
from twin.models import load_spec
from twin.spec.model import LineSpec

H = 3_600_000_000  # microseconds an hour
T0 = 1_700_000_000_000_000


def one_station() -> tuple[LineSpec, object]:
    spec = LineSpec.from_dict(
        {
            "name": "one",
            "horizon": 100.0,
            "products": [{"name": "A", "batch_size": 100}, {"name": "B", "batch_size": 50}],
            "stations": [{"name": "press", "process_time": 1.0, "ideal_time": {"A": 0.5, "B": 0.25}}],
        }
    )
    tags = parse_tag_map(
        {
            "namespace": "urn:plc",
            "states": {"RUN": "processing", "WAIT": "starved", "CIP": "setup", "OFF": None},
            "release": {"batch": "REL", "count": {"tag": "REL_N", "wrap": 100}},
            "stations": {
                "press": [
                    {
                        "state": "ST",
                        "batch": "LOT",
                        "product": "PROD",
                        "count": {"tag": "GOOD", "wrap": 1000},
                        "done": {"tag": "DONE", "wrap": 4},
                        "alarm": "ALM",
                    }
                ]
            },
        },
        "map",
        spec,
    )
    return spec, tags


def samples(rows: list[tuple[str, float, object]], status: dict[int, int] | None = None) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["tag", "hours", "value"])
    return pd.DataFrame(
        {
            "tag": df["tag"],
            "source_us": T0 + (df["hours"] * H).round().astype("int64"),
            "value": df["value"],
            "status": [(status or {}).get(i, 0) for i in range(len(df))],
            "seq": range(len(df)),
        }
    )


def test_states_batches_wrapping_counters_and_alarms_become_the_exact_event_log():
    spec, tags = one_station()
    feed = samples(
        [
            # values read at the start: from before the feed began (origin = T0 + 1 h)
            ("ST", 0.5, "WAIT"),
            ("DONE", 0.2, 2),
            ("GOOD", 0.2, 900),
            ("REL", 0.9, "L0"),
            ("REL_N", 0.9, 99),
            ("ALM", 0.0, False),
            ("LOT", 0.9, "L0"),
            ("PROD", 0.9, "A"),
            ("REL", 2.0, "L1"),
            ("REL_N", 2.0, 0),
            ("LOT", 2.0, "L1"),
            ("PROD", 2.0, "B"),
            ("ST", 2.0, "RUN"),
            ("ALM", 2.5, True),
            ("ALM", 3.0, False),  # a breakdown during the batch
            ("DONE", 4.0, 3),
            ("GOOD", 4.0, 950),  # L1 done: 50 units
            ("REL", 4.0, "L2"),
            ("REL_N", 4.0, 1),
            ("LOT", 4.0, "L2"),
            ("PROD", 4.0, "A"),  # next batch at once
            ("ST", 4.0, "CIP"),
            ("ST", 5.0, "RUN"),
            ("DONE", 6.0, 0),
            ("GOOD", 6.0, 50),  # both counters wrap: L2 done, 100 units
            ("ST", 6.0, "WAIT"),
            ("ST", 6.5, "BOGUS"),
            ("ST", 7.0, "OFF"),
        ]
    )
    decoded = plant_event_log(spec, tags, feed, origin_us=T0 + H, end_us=T0 + 9 * H)
    table = decoded.log.table
    text = {c: [str(v) for v in table[c].astype(object)] for c in ("event", "product", "state")}
    got = list(
        zip(
            table["time"].round(9),
            text["event"],
            table["batch"],
            text["product"],
            text["state"],
            table["quantity"].fillna(0),
            strict=True,
        )
    )
    assert got == [
        (0.0, "state", -1, "nan", "starved", 0.0),
        (1.0, "release", 1, "B", "nan", 0.0),
        (1.0, "start", 1, "B", "processing", 0.0),
        (1.5, "fail", -1, "nan", "down", 0.0),
        (2.0, "repair", 1, "B", "processing", 0.0),
        (3.0, "finish", 1, "B", "nan", 50.0),
        (3.0, "leave", 1, "B", "nan", 50.0),
        (3.0, "release", 2, "A", "nan", 0.0),
        (3.0, "setup", 2, "A", "setup", 0.0),
        (4.0, "start", 2, "A", "processing", 0.0),
        (5.0, "finish", 2, "A", "nan", 100.0),
        (5.0, "leave", 2, "A", "nan", 100.0),
        (5.0, "state", -1, "nan", "starved", 0.0),
        (8.0, "end", -1, "nan", "nan", 0.0),
    ]
    assert table.loc[table["event"] == "finish", "ideal"].tolist() == [0.25, 0.5]
    assert decoded.bad_values == {"ST": 1} and decoded.missed == {}
    assert decoded.log.meta.source == "plant"
    kpis = compute_kpis(decoded.log).per_replication.iloc[0]
    assert kpis["throughput_per_hour"] == pytest.approx(2 / 8)
    assert kpis["units_per_hour"] == pytest.approx(150 / 8)
    assert kpis["press.state.down"] == pytest.approx(0.5 / 8)
    assert kpis["press.state.starved"] == pytest.approx((1 + 3) / 8)  # the "no information" code keeps the last state
    assert kpis["lead_time_hours"] == pytest.approx(2.0)
    assert kpis["press.oee"] == pytest.approx(0.75 / 8)


def test_missed_counter_steps_and_bad_statuses_are_counted_not_guessed():
    spec, tags = one_station()
    feed = samples(
        [
            ("DONE", 0.0, 0),
            ("LOT", 0.0, "L1"),
            ("PROD", 0.0, "A"),
            ("REL", 0.0, ""),
            ("REL_N", 0.0, 0),
            ("DONE", 1.0, 3),
            ("REL", 1.0, "L1"),
            ("REL_N", 1.0, 4),
            ("ST", 1.0, "RUN"),
            ("ST", 2.0, "WAIT"),
        ],
        status={9: 0x80000000},
    )
    decoded = plant_event_log(spec, tags, feed, origin_us=T0, end_us=T0 + 2 * H)
    assert decoded.missed == {"DONE": 2, "REL_N": 3}
    assert decoded.bad_values == {"ST": 1}
    assert (decoded.log.table["event"] == "finish").sum() == 1


def test_shipped_tag_maps_are_the_emulators_layout_and_ship_with_the_package():
    for name, path in plant_models.available().items():
        shipped = builtin_tag_map(name)
        assert shipped is not None and shipped.parent == path.parent / "tags", name
        spec = load_spec(name)
        assert yaml.safe_load(shipped.read_text()) == default_tag_map(spec), (
            f"{shipped} is stale: regenerate it with `twin emulate {name} --write-map {shipped}`"
        )
        load_tag_map(shipped, spec)
    assert "tags/*.yaml" in (plant_models.MODELS_DIR.parent / "pyproject.toml").read_text()


def test_a_tag_map_lists_every_problem_with_file_and_field(tmp_path):
    spec = LineSpec.from_dict(yaml.safe_load(LINE_YAML))
    data = default_tag_map(spec)
    data["states"][9] = "sleeping"
    data["stations"]["fill"] = data["stations"]["fill"][:1]
    data["stations"]["press"] = data["stations"].pop("pack")
    data["stations"]["mix"][0]["alarm"] = data["stations"]["mix"][0]["batch"]
    data["products"] = {1: "C"}
    (tmp_path / "bad.yaml").write_text(dump_tag_map(data))
    with pytest.raises(SpecError) as err:
        load_tag_map(tmp_path / "bad.yaml", spec)
    text = str(err.value)
    for expected in (
        "bad.yaml: states.9: unknown twin state 'sleeping'",
        "stations.fill: lists 1 unit(s); the spec has 2",
        "stations.press: the spec 'mini' has no station 'press'",
        "no tags for station 'pack'",
        "tag 'MIX_U1_BATCH' is also used for stations.mix[0].batch",
        "products.1: unknown product 'C'",
    ):
        assert expected in text, text
    (tmp_path / "typo.yaml").write_text("namespace: x\nstates: {}\nstations: {}\nheartbeet: {tag: HB}\n")
    with pytest.raises(SpecError, match=r"typo\.yaml: heartbeet: Extra inputs are not permitted"):
        load_tag_map(tmp_path / "typo.yaml")
