"""The incremental observer equals a full re-decode at every tick; checkpoints, restarts and compaction change nothing.

Random feeds of a one-station line (states, alarms, batch and product ids, wrapping counters, bad statuses)
arrive in random chunks into a real historian file, some samples late (after later ones: a backfill, a
commit split at a tick), some repeated, with restarts of the observer from the historian's checkpoint.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from connectors.opcua.historian import Historian
from connectors.opcua.logsource import compact_historian, historian_decoded
from connectors.opcua.observer import Observer
from connectors.opcua.plantlog import PlantDecoder, plant_event_log
from connectors.opcua.tagmap import parse_tag_map, tag_map_text
from twin.kpis.report import compute_kpis
from twin.spec.model import LineSpec

H = 3_600_000_000
T0 = 1_700_000_000_000_000
SPEC = LineSpec.from_dict(
    {
        "name": "one",
        "horizon": 100.0,
        "products": [{"name": "A", "batch_size": 100}, {"name": "B", "batch_size": 50}],
        "stations": [
            {"name": "press", "process_time": 1.0, "ideal_time": {"A": 0.5, "B": 0.25}},
            {"name": "pack", "process_time": 1.0},
        ],
    }
)
MAP = {
    "namespace": "urn:plc",
    "states": {"RUN": "processing", "WAIT": "starved", "CIP": "setup", "OFF": None},
    "release": {"batch": "REL", "count": {"tag": "REL_N", "wrap": 8}},
    "heartbeat": {"tag": "BEAT", "wrap": 16},
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
        ],
        "pack": [
            {
                "state": "ST2",
                "batch": "LOT2",
                "count": {"tag": "GOOD2", "wrap": 500},
                "scrap": {"tag": "SCRAP2", "wrap": 64},
                "reject": {"tag": "REJ2", "wrap": 64},
                "done": {"tag": "DONE2", "wrap": 8},
            }
        ],
    },
}
TAGS = parse_tag_map(MAP, "map", SPEC)
COUNTERS = {"GOOD": 1000, "DONE": 4, "REL_N": 8, "BEAT": 16, "GOOD2": 500, "SCRAP2": 64, "REJ2": 64, "DONE2": 8}
CHOICES = {
    "ST": ["RUN", "WAIT", "CIP", "OFF", "BOGUS"],
    "ST2": ["RUN", "WAIT", "OFF"],
    "LOT": ["L1", "L2", "L3", ""],
    "LOT2": ["L1", "L2", "L3"],
    "PROD": ["A", "B", "X"],
    "REL": ["L1", "L2", "L3", ""],
    "ALM": [True, False, "junk"],
}


@st.composite
def feeds(draw: st.DrawFn) -> tuple[list[tuple[str, int, object, int]], list[int], list[int], set[int]]:
    """Samples (tag, source_us, value, status) in arrival order, the chunk sizes, restart points, late ones."""
    n = draw(st.integers(5, 80))
    values = dict.fromkeys(COUNTERS, 0)
    t = T0 + draw(st.integers(-2 * H, 0))  # the first values come from before the feed's time 0
    out = []
    for _ in range(n):
        t += draw(st.sampled_from([0, 0, 1, H // 4, H, 3 * H]))
        tag = draw(st.sampled_from(sorted(COUNTERS) + sorted(CHOICES)))
        if tag in COUNTERS:
            values[tag] = (values[tag] + draw(st.integers(0, COUNTERS[tag] + 2))) % COUNTERS[tag]  # wraps, jumps
            value: object = values[tag]
        else:
            value = draw(st.sampled_from(CHOICES[tag]))
        status = draw(st.sampled_from([0] * 9 + [0x80000000]))
        out.append((tag, t, value, status))
        if draw(st.integers(0, 9)) == 0:
            out.append((tag, t, value, status))  # an exact repeat stored twice
    # arrival order: mostly in time, a few samples late (after later ones)
    late = set(draw(st.lists(st.integers(0, len(out) - 1), max_size=4)))
    order = [i for i in range(len(out)) if i not in late]
    for i in sorted(late):
        order.insert(draw(st.integers(min(i + 1, len(order)), len(order))), i)
    arrived = [out[i] for i in order]
    chunks = draw(st.lists(st.integers(1, 12), min_size=1, max_size=12))
    restarts = set(draw(st.lists(st.integers(0, 12), max_size=3)))
    return arrived, chunks, sorted(restarts), late


def _append(h: Historian, ids: dict[str, int], rows: list[tuple[str, int, object, int]]) -> None:
    h.append([(ids[tag], t, None, t, v, status) for tag, t, v, status in rows])


def _same(got, want) -> None:
    pd.testing.assert_frame_equal(got.log.table.reset_index(drop=True), want.log.table.reset_index(drop=True))
    assert got.bad_values == want.bad_values and got.missed == want.missed
    assert got.log.meta.extra["plant_batches"] == want.log.meta.extra["plant_batches"]


FEED_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking a failure costs minutes; the example is shown
)  # the random feeds' settings, shared with tests/test_kpi_accumulators.py


@pytest.mark.slow
@FEED_SETTINGS
@given(feeds())
def test_the_incremental_observer_equals_a_full_decode_at_every_tick(feed):
    arrived, chunks, restarts, _late = feed
    with tempfile.TemporaryDirectory() as folder:
        h = Historian(Path(folder) / "h.db")
        ids = h.register_tags(TAGS.all_tags())
        observer = Observer(SPEC, TAGS, T0)
        position, tick = 0, 0
        while position < len(arrived):
            size = chunks[tick % len(chunks)]
            _append(h, ids, arrived[position : position + size])
            position += size
            if tick in restarts and observer.decoder is not None:  # a restart: a new observer takes up the checkpoint
                h.save_checkpoint(observer.key, *observer.checkpoint())
                observer = Observer(SPEC, TAGS, T0)
            end_us = max(t for _tag, t, _v, _s in arrived[:position])
            got = observer.advance(h, end_us)
            want = plant_event_log(SPEC, TAGS, h.query(raw_times=True), T0, end_us)
            want.log.meta.extra["gaps"] = []
            _same(got, want)
            tick += 1
        h.close()


def _full(h: Historian, origin_us: int, end_us: int):
    """The full decode of every sample stored, with the (empty) gap list the observer adds."""
    decoded = plant_event_log(SPEC, TAGS, h.query(raw_times=True), origin_us, end_us)
    decoded.log.meta.extra["gaps"] = []
    return decoded


def test_a_late_sample_rolls_back_and_a_restart_resumes_from_the_checkpoint(tmp_path):
    h = Historian(tmp_path / "h.db")
    ids = h.register_tags(TAGS.all_tags())
    rows = [("LOT", 0, "L1"), ("PROD", 0, "A"), ("ST", 0, "RUN"), ("DONE", 0, 0), ("GOOD", 0, 0)]
    rows += [("GOOD", H, 40), ("GOOD", 2 * H, 100), ("DONE", 2 * H, 1), ("ST", 2 * H, "WAIT")]
    _append(h, ids, [(tag, T0 + t, v, 0) for tag, t, v in rows])
    observer = Observer(SPEC, TAGS, T0)
    first = observer.advance(h, T0 + 2 * H)
    finish = first.log.table[first.log.table["event"] == "finish"]
    assert finish["quantity"].tolist() == [100.0]  # a counter rising through the batch: all of it
    _append(h, ids, [("ALM", T0 + H, True, 0), ("ALM", T0 + H + H // 2, False, 0)])  # arrives late: a backfill
    second = observer.advance(h, T0 + 2 * H)
    assert observer.rebuilds == 1 and (second.log.table["event"] == "fail").sum() == 1
    _same(second, _full(h, T0, T0 + 2 * H))
    h.save_checkpoint(observer.key, *observer.checkpoint())
    _append(h, ids, [("ST", T0 + 3 * H, "RUN", 0)])
    resumed = Observer(SPEC, TAGS, T0)
    after = resumed.advance(h, T0 + 3 * H)
    assert resumed.resumed_from == T0 + 2 * H  # the checkpoint's watermark: only what came after was decoded
    assert resumed.decoder.samples == observer.decoder.samples + 1
    _same(after, _full(h, T0, T0 + 3 * H))
    _append(h, ids, [("ST", T0 + H, "CIP", 0)])  # older than the checkpoint: the checkpoint is not used
    again = Observer(SPEC, TAGS, T0)
    _same(again.advance(h, T0 + 3 * H), _full(h, T0, T0 + 3 * H))
    assert again.resumed_from is None
    h.close()


def test_a_checkpoint_round_trips_through_json():
    decoder = PlantDecoder(SPEC, TAGS, T0)
    rows = [("LOT", T0, "L1", 0), ("PROD", T0, "B", 0), ("ST", T0, "RUN", 0), ("DONE", T0, 3, 0)]
    rows += [("DONE", T0 + H, 1, 0), ("REL", T0 + H, "L2", 0), ("ST", T0 + H, "BOGUS", 0)]
    frame = pd.DataFrame(rows, columns=["tag", "source_us", "value", "status"])
    decoder.feed(frame)
    copy = PlantDecoder.from_state(SPEC, TAGS, decoder.state())
    more = pd.DataFrame([("DONE", T0 + 2 * H, 2, 0), ("ST", T0 + 2 * H, "WAIT", 0)], columns=frame.columns)
    decoder.feed(more)
    copy.feed(more)
    _same(copy.decoded(T0 + 3 * H), decoder.decoded(T0 + 3 * H))
    with pytest.raises(ValueError, match="not a decoder checkpoint"):
        PlantDecoder.from_state(SPEC, TAGS, b"junk")


def test_a_one_product_line_without_product_tags_gets_its_throughput():
    spec = LineSpec.from_dict(
        {"name": "solo", "horizon": 10.0, "products": [{"name": "A", "batch_size": 10}], "stations": [{"name": "f", "process_time": 1.0}]}
    )
    tags = parse_tag_map(
        {"namespace": "u", "states": {1: "processing", 4: "starved"}, "stations": {"f": [{"state": "S", "done": "D"}]}},
        "map",
        spec,
    )
    rows = [("S", 0, 1), ("D", 0, 0), ("D", H, 1), ("D", 2 * H, 2), ("S", 2 * H, 4)]
    frame = pd.DataFrame([(tag, T0 + t, v, 0) for tag, t, v in rows], columns=["tag", "source_us", "value", "status"])
    decoded = plant_event_log(spec, tags, frame, T0, T0 + 4 * H)
    assert decoded.bad_values == {}
    kpis = compute_kpis(decoded.log).per_replication.iloc[0]
    assert kpis["throughput_per_hour"] == pytest.approx(2 / 4) and kpis["units_per_hour"] == pytest.approx(20 / 4)


def _sync_historian(path: Path, n_hours: int) -> None:
    """A historian as `twin sync` leaves it: meta (spec, map, origin), a feed of ``n_hours`` plant hours."""
    h = Historian(path)
    ids = h.register_tags(TAGS.all_tags())
    rng = np.random.default_rng(3)
    rows, done, good, beat = [], 0, 0, 0
    for hour in range(n_hours):
        t = T0 + hour * H
        lot = f"L{hour // 2}"
        rows += [("LOT", t, lot, 0), ("PROD", t, "AB"[hour % 2], 0), ("ST", t, "RUN", 0), ("REL", t, lot, 0)]
        for minute in range(0, 60, 5):  # a heartbeat and a counter that rises through the batch
            beat = (beat + 1) % 16
            good = (good + int(rng.integers(1, 9))) % 1000
            rows += [("BEAT", t + minute * 60_000_000, beat, 0), ("GOOD", t + minute * 60_000_000 + 1, good, 0)]
        done = (done + 1) % 4
        rows += [("DONE", t + H - 10, done, 0), ("ST", t + H - 10, "WAIT", 0)]
        rows += [("LOT2", t + H - 10, lot, 0), ("ST2", t + H - 10, "RUN", 0), ("DONE2", t + H - 5, (hour + 1) % 8, 0)]
    _append(h, ids, rows)
    h.set_meta(origin_us=T0, plant_us=T0 + n_hours * H, spec=SPEC.to_data(), tag_map=tag_map_text(TAGS), warmup=0.0)
    h.close()


def _changes(samples: pd.DataFrame) -> dict[str, list]:
    """Each tag's values with repeats of the value before left out."""
    out = {}
    for tag, rows in samples.groupby("tag"):
        values = rows.sort_values("source_time", kind="stable")["value"].tolist()
        out[tag] = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
    return out


def test_compaction_keeps_the_event_log_identical_and_frees_the_raw_counters(tmp_path):
    path = tmp_path / "h.db"
    _sync_historian(path, 48)
    before = historian_decoded(path)
    h = Historian(path, readonly=True)
    raw, states = h.count(), _changes(h.query(["ST", "LOT", "PROD", "REL"]))
    raw_counters = len(h.query(["BEAT", "GOOD", "DONE", "DONE2"]))
    h.close()
    deleted, _size_before, _size_after = compact_historian(path, keep_raw_hours=6)
    after = historian_decoded(path)
    _same(after, before)
    h = Historian(path, readonly=True)
    assert deleted > 0 and h.count() == raw - deleted
    kept = h.query(["ST", "LOT", "PROD", "REL"])
    assert _changes(kept) == states and len(kept) < raw  # every state change stays, the repeats go
    beats = h.query(["BEAT"])
    assert beats["source_time"].min() >= pd.Timestamp((T0 + 42 * H) * 1000, tz="UTC") - pd.Timedelta(hours=1)
    aggregated = h.db.execute("SELECT SUM(n) FROM aggregates").fetchone()[0]
    counters = len(h.query(["BEAT", "GOOD", "DONE", "DONE2"]))
    assert aggregated + counters == raw_counters  # what went of the counters is counted, minute by minute
    h.close()
    # a second compaction finds nothing new to do, and the log is still the same
    assert compact_historian(path, keep_raw_hours=6)[0] == 0
    _same(historian_decoded(path), before)


def test_compact_refuses_a_file_that_is_not_a_historian(tmp_path):
    from conftest import run_cli

    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite")
    r = run_cli("history", str(junk), "--compact")
    assert r.returncode == 2 and "junk.db" in r.stderr and "Traceback" not in r.stderr
    assert junk.read_text() == "not sqlite"


def test_twin_history_compact_reports_what_it_did(tmp_path):
    from conftest import run_cli

    path = tmp_path / "h.db"
    _sync_historian(path, 30)
    r = run_cli("history", str(path), "--compact", "--keep-raw", "12 h")
    assert r.returncode == 0, r.stderr
    assert "raw samples compacted" in r.stdout and "12 h" in r.stdout
    assert yaml.safe_load(Historian(path, readonly=True).meta()["tag_map"])["namespace"] == "urn:plc"


def test_the_docs_tables_of_roles_and_metrics_are_the_code_s():
    from connectors.opcua.metrics import metrics_markdown
    from connectors.opcua.roles import roles_markdown

    text = (Path(__file__).resolve().parents[1] / "docs" / "plant-twin.md").read_text()
    for name, table in (("roles", roles_markdown()), ("metrics", metrics_markdown())):
        inside = text.split(f"<!-- {name}:begin -->\n")[1].split(f"<!-- {name}:end -->")[0]
        assert inside == table, f"docs/plant-twin.md: regenerate the {name} table (python -m connectors.opcua.{name})"
