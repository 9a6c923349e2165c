"""The run store: catalog, queries, atomic writes and deletes, schema version, concurrent writers and readers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
from conftest import ROOT, run_cli, serial_line
from store_helpers import BIN, popen, stop, stored_count, write_line

from twin.errors import InputError
from twin.eventlog import EventLog
from twin.experiment import run, with_overrides
from twin.runfolder import read_run
from twin.stats import paired_difference
from twin.store import KPI_COLUMNS, RunStore, StoreError, point_key


@pytest.fixture(scope="module")
def two_results():
    base = serial_line([1.0, 1.2], [None, 1], horizon=300.0, warmup=30.0)
    a = run(base, replications=3, seed=4)
    b = run(with_overrides(base, ["stations.s2.buffer=3"]), replications=3, seed=4, name="bigger buffer",
            overrides=("stations.s2.buffer=3",))  # fmt: skip
    return a, b


def test_save_get_list_query_delete(tmp_path, two_results):
    a, b = two_results
    store = RunStore(tmp_path / "store")
    id_a = store.save(a, tags={"study": "buffers"})
    id_b = store.save(b, sweep_id="s1")
    assert sorted(store.run_ids()) == sorted([id_a, id_b])

    back = store.get(id_a[:6])  # a unique prefix names a run
    pd.testing.assert_frame_equal(back.log.table, a.log.table, check_exact=True)
    assert back.kpis.summary == a.kpis.summary and back.spec == a.spec

    rows = store.list()
    assert list(rows["run_id"]) == [id_a, id_b]  # in the order stored
    row = rows.set_index("run_id").loc[id_b]
    assert (
        row["scenario"] == "bigger buffer"
        and row["sweep_id"] == "s1"
        and list(row["overrides"]) == ["stations.s2.buffer=3"]
    )
    assert row["spec_hash"] == b.spec.spec_hash and row["seed"] == 4 and row["replications"] == 3
    assert row["point_key"] == point_key(b.spec.spec_hash, 4, 3, 300.0, 30.0)
    for kpi in KPI_COLUMNS:  # the catalog carries the KPI summary exactly
        stat = b.kpis.summary[kpi] if "p50" not in kpi and "p90" not in kpi else \
            b.kpis.summary["lead_time_hours"][kpi.split("_")[2]]  # fmt: skip
        assert row[kpi] == stat["mean"] and [row[f"{kpi}_low"], row[f"{kpi}_high"]] == stat["ci95"]
    assert row["station_oee"]["s2"] == b.kpis.summary["stations"]["s2"]["oee"]["mean"]

    assert list(store.list(where="tags['study'] = 'buffers'")["run_id"]) == [id_a]
    assert list(store.list(where="wip > 0", order_by="wip DESC", limit=1)["run_id"]) == [
        max((id_a, a), (id_b, b), key=lambda r: r[1].kpis.summary["wip"]["mean"])[0]
    ]
    counts = store.query("SELECT scenario, count(*) AS n FROM runs GROUP BY scenario ORDER BY scenario")
    assert counts.to_dict("records") == [{"scenario": "baseline", "n": 1}, {"scenario": "bigger buffer", "n": 1}]
    assert store.find_points([row["point_key"], "nope"]) == {row["point_key"]: id_b}

    with pytest.raises(StoreError, match="Referenced column"):
        store.list(where="no_such_column = 1")
    with pytest.raises(StoreError, match="no run"):
        store.get("abc")  # too short to be a prefix
    assert store.delete([id_a]) == [id_a]
    assert list(store.list()["run_id"]) == [id_b]
    with pytest.raises(StoreError, match="no run"):
        store.get(id_a)
    assert not any((tmp_path / "store" / ".trash").iterdir())


def test_an_empty_store_lists_nothing_with_every_column(tmp_path):
    store = RunStore(tmp_path / "fresh")
    frame = store.list()
    assert frame.empty and "throughput_per_hour" in frame.columns and "station_oee" in frame.columns


def test_store_refuses_what_it_cannot_read(tmp_path, two_results):
    store = RunStore(tmp_path / "s")
    store.save(two_results[0])
    marker = tmp_path / "s" / "twin-store.json"
    data = json.loads(marker.read_text())
    marker.write_text(json.dumps({**data, "schema_version": 2}))
    with pytest.raises(StoreError, match=r"schema version 2 cannot be read by this twin .*reads version 1.*upgrade"):
        RunStore(tmp_path / "s")
    marker.write_text("{not json")
    with pytest.raises(StoreError, match="unreadable"):
        RunStore(tmp_path / "s")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(StoreError, match="not a twin run store"):
        RunStore(tmp_path / "mine")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["thesis.tex"]  # nothing written there
    with pytest.raises(StoreError, match="no run store here"):
        RunStore(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()

    marker.write_text(json.dumps({**data, "schema_version": 2}))
    for args in (
        ["runs", "list"],
        ["runs", "show", "abcd"],
        ["sweep", "osd-tablet", "--grid", "stations.nope.units=1,2"],
    ):
        proc = run_cli(*args, "--store", str(tmp_path / "s"))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == (
            f"error: {tmp_path / 's'}: run store schema version 2 cannot be read by this twin "
            "(it reads version 1); upgrade twin to read it"
        )
    proc = run_cli("runs", "list", "--store", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "no run store here" in proc.stderr and "Traceback" not in proc.stderr


WRITER = """
import sys
from conftest import serial_line
from twin.experiment import run
from twin.store import RunStore
store = RunStore(sys.argv[1])
result = run(serial_line([1.0, 1.1], [None, 1], horizon=2000.0, warmup=100.0), replications=2, seed=1)
store.save(result)  # one whole run before the kills start, however slow the machine
print("ready", flush=True)
while True:
    store.save(result)
"""


def test_a_writer_killed_at_any_moment_leaves_no_half_run(tmp_path):
    store_dir = tmp_path / "store"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env_path = str(ROOT / "tests")
    killed_mid_write = 0
    for delay in (0.05, 0.13, 0.21, 0.34, 0.55):
        proc = subprocess.Popen([sys.executable, str(script), str(store_dir)], stdout=subprocess.PIPE,
                                env={"PYTHONPATH": env_path, "PATH": str(BIN)})  # fmt: skip
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        killed_mid_write += any((store_dir / ".staging").iterdir())
        store = RunStore(store_dir)
        listed = store.list()
        assert len(listed) == stored_count(store_dir) > 0  # every folder in runs/ has its catalog row
        for run_id in listed["run_id"]:
            read_run(store.path(run_id))  # and is whole
    assert killed_mid_write, "the test should kill a writer in the middle of a write"
    store.save(run(serial_line([1.0], horizon=50.0, warmup=5.0), replications=1))
    assert list((store_dir / ".staging").iterdir()) == []  # the next writer clears dead writers' debris


READER = """
import json, sys, time
from twin.store import RunStore
from twin.runfolder import read_run
store_dir, expected = sys.argv[1], int(sys.argv[2])
counts, errors, whole = [], [], set()
print("ready", flush=True)
deadline = time.monotonic() + 240
while time.monotonic() < deadline:
    try:
        store = RunStore(store_dir, create=False)
        frame = store.list()
        for run_id in set(frame["run_id"]) - whole:  # each listed run reads whole (once: the reader keeps up)
            read_run(store.path(run_id))
            whole.add(run_id)
        counts.append(len(frame))
        if len(frame) >= expected:
            break
    except Exception as err:  # a store that is not there yet is fine; anything else is a failure
        if "no run store here" not in str(err):
            errors.append(f"{err.__class__.__name__}: {err}")
    time.sleep(0.02)
print(json.dumps({"counts": counts, "errors": errors}))
"""


def test_two_sweeps_write_while_a_reader_lists(tmp_path):
    """Two sweeps write into one store at once, a third process lists and reads meanwhile: no corruption."""
    line = write_line(tmp_path, horizon=6000.0)  # points long enough for the reader to see the store grow
    store_dir = tmp_path / "store"
    reader_script = tmp_path / "reader.py"
    reader_script.write_text(textwrap.dedent(READER))
    reader = subprocess.Popen([sys.executable, str(reader_script), str(store_dir), "16"], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    assert reader.stdout.readline().strip() == "ready"  # listing before the sweeps start
    sweeps = [
        popen([str(BIN / "twin"), "sweep", str(line), "--grid", "stations.s2.buffer=0..7", "-r", "2", "--workers", "0",
               "--store", str(store_dir)], tmp_path, tmp_path / "a.log"),
        popen([str(BIN / "twin"), "sweep", str(line), "--grid", "stations.s3.buffer=0..7", "-r", "3", "--workers", "0",
               "--store", str(store_dir)], tmp_path, tmp_path / "b.log"),
    ]  # fmt: skip
    try:
        codes = [p.wait(timeout=240) for p in sweeps]
    finally:
        for p in sweeps:
            stop(p)
    assert codes == [0, 0], [(tmp_path / f"{x}.log").read_text() for x in "ab"]
    out, _ = reader.communicate(timeout=240)
    report = json.loads(out)
    assert report["errors"] == []
    counts = report["counts"]
    assert counts == sorted(counts) and counts[-1] == 16  # runs only ever appear, each whole
    assert len(set(counts)) > 2, "the reader should have seen the store grow"
    store = RunStore(store_dir)
    frame = store.list()
    assert len(frame) == 16 and frame["sweep_id"].nunique() == 2
    assert not frame["point_key"].duplicated().any()


@pytest.mark.slow
def test_runs_commands(tmp_path, two_results):
    a, b = two_results
    store_dir = tmp_path / "store"
    store = RunStore(store_dir)
    id_a, id_b = store.save(a), store.save(b, sweep_id="s1")
    s = ("--store", str(store_dir))

    listed = run_cli("runs", "list", *s)
    assert listed.returncode == 0 and id_a[:8] in listed.stdout and "bigger buffer" in listed.stdout
    rows = json.loads(run_cli("runs", "list", "--where", "sweep_id = 's1'", "--json", *s).stdout)
    assert [r["run_id"] for r in rows] == [id_b] and rows[0]["station_oee"]["s1"] is not None
    csv = run_cli("runs", "list", "--csv", *s).stdout.splitlines()
    assert csv[0].startswith("run_id,created,line") and len(csv) == 3
    query = json.loads(run_cli("runs", "query", "SELECT count(*) AS n FROM runs", "--json", *s).stdout)
    assert query == [{"n": 2}]

    shown = json.loads(run_cli("runs", "show", id_b[:8], "--json", *s).stdout)
    assert shown["run"]["run_id"] == id_b and shown["kpis"] == b.kpis.summary
    table = run_cli("runs", "show", id_b[:8], *s)
    assert table.returncode == 0 and "stations.s2.buffer=3" in table.stdout and "Line OEE" in table.stdout

    diff = json.loads(run_cli("runs", "diff", id_a, id_b, "--json", *s).stdout)
    assert diff["changes"] == [{"path": "stations.s2.buffer", "a": 1, "b": 3}]
    assert diff["paired"] is True
    expected = paired_difference(a.kpis.per_replication["wip"], b.kpis.per_replication["wip"]).as_dict()
    assert diff["kpis"]["wip"]["delta"] == expected
    assert "stations.s2.buffer" in run_cli("runs", "diff", id_a, id_b, *s).stdout

    out = tmp_path / "exported"
    assert run_cli("runs", "export", id_a, "--to", str(out), *s).returncode == 0
    pd.testing.assert_frame_equal(read_run(out).log.table, a.log.table, check_exact=True)
    assert run_cli("runs", "export", id_a, id_b, "--to", str(tmp_path / "csv"), "--format", "csv", *s).returncode == 0
    events = pd.read_csv(tmp_path / "csv" / id_a / "events.csv")
    assert len(events) == len(a.log.table) and list(events.columns) == list(a.log.table.columns)

    bad = [
        (["runs", "show", "ffffffff"], "no run 'ffffffff'"),
        (["runs", "list", "--where", "nonsense ="], "--where 'nonsense ='"),
        (["runs", "export", id_a, "--to", str(out)], "already exists"),
        (["runs", "export", id_a, "--to", str(tmp_path / "x"), "--format", "xlsx"], "choose one of parquet, csv"),
        (["runs", "rm", "--where", "replications = 3"], "selects 2 run(s); add --yes"),
        (["runs", "rm", id_a, "ffffffff"], "no run 'ffffffff'"),
    ]
    for args, message in bad:
        proc = run_cli(*args, *s)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert len(store.list()) == 2  # a bad rm removes nothing

    assert run_cli("runs", "rm", id_a[:10], *s).stdout.strip() == f"removed 1 run from {store_dir}"
    assert run_cli("runs", "rm", "--where", "sweep_id = 's1'", "--yes", *s).returncode == 0
    assert store.list().empty


def test_an_event_log_in_the_store_is_a_plain_run_folder(tmp_path, two_results):
    store = RunStore(tmp_path / "s")
    run_id = store.save(two_results[0])
    folder = store.path(run_id)
    assert EventLog.from_parquet(folder / "events.parquet").meta.spec_hash == two_results[0].spec.spec_hash
    info = json.loads((folder / "run.json").read_text())
    assert info["run_id"] == run_id and info["point_key"] and info["store_schema_version"] == 1
    with pytest.raises(InputError):
        store.path("zzzz")
