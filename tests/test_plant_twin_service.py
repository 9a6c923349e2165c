"""The sync as a service, with real `twin` processes on loopback: /metrics, checkpoints, a restart that resumes
from the checkpoint, the Live page's bounded reads, and a port already in use refused with exit code 2."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from opcua_helpers import TwinProcess, call, mini_plant, wait_until

from connectors.opcua.historian import KPI_COLUMNS, Historian
from connectors.opcua.metrics import METRICS
from connectors.opcua.uabase import free_port


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = answer.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split(" ")
            out[name] = float(value)
    return out


def _sync_args(ep: str, port: int) -> list[str]:
    args = ["sync", "line.yaml", "--endpoint", ep, "--map", "map.yaml", "--security", "none", "--pki", "pki-s"]
    return [*args, "--historian", "h.db", "--kpi-every", "0.3", "--metrics-port", str(port), "--shadow"]


@pytest.mark.slow
def test_sync_serves_its_metrics_checkpoints_and_resumes_from_the_checkpoint(tmp_path: Path):
    ep, emulate = mini_plant(tmp_path, "2000 h", seed=5, speed="3000")
    port = free_port()
    with TwinProcess(emulate, tmp_path, "emu") as emu:
        emu.wait_for("emulating mini")
        with TwinProcess(_sync_args(ep, port), tmp_path, "sync") as feed:
            feed.wait_for("subscribed to")
            call(ep, "urn:twin:plc:mini", "PLC", "Start", pki=tmp_path / "pki-caller")
            wait_until(lambda: "twin_sync_tick_seconds" in _metrics(port), 120, what="a tick in /metrics")
            wait_until(lambda: _metrics(port)["twin_sync_plant_hours"] > 30, 120, what="30 plant hours")
            figures = _metrics(port)
            with pytest.raises(urllib.error.HTTPError, match="404"):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
            assert feed.stop() == 0, feed.log()
        assert set(figures) <= {name for name, _kind, _help in METRICS.values()}
        assert figures["twin_sync_connected"] == 1 and figures["twin_sync_values_stored_total"] > 100
        assert 0 <= figures["twin_sync_tick_seconds"] < 60 and figures["twin_sync_historian_bytes"] > 0
        assert "tick " in feed.log() and "values/s" in feed.log()  # each tick logged

        h = Historian(tmp_path / "h.db", readonly=True)
        rows, view = h.kpis(), h.view()
        checkpoint = h.latest_checkpoint()
        h.close()
        assert len(rows) >= 2 and rows["tick_s"].notna().all() and set(KPI_COLUMNS) <= set(rows.columns)
        assert view["plant"]["oee"]["mean"] == pytest.approx(rows["plant_oee"].iloc[-1])
        assert view["twin"] is not None and view["tick_s"] >= 0
        assert checkpoint is not None  # stored when the sync stopped

        port2 = free_port()
        with TwinProcess(_sync_args(ep, port2), tmp_path, "sync2") as again:
            again.wait_for("resumed from the historian's checkpoint")
            wait_until(lambda: "twin_sync_tick_seconds" in _metrics(port2), 120, what="a tick after the restart")
            assert again.stop() == 0, again.log()
        emu.stop()


def test_live_page_reads_are_bounded_however_many_snapshots_are_stored(tmp_path: Path):
    from dashboards.historians import HistorianAccess
    from dashboards.pages import live

    h = Historian(tmp_path / "h.db")
    snap = {"plant": {"oee": {"mean": 0.5}, "throughput_per_hour": {"mean": 2.0}}, "acknowledged": 7, "state": "x"}
    rows = [(i * 1_000_000, i / 10, "connected") + (0.5,) * len(KPI_COLUMNS) for i in range(5000)]
    h.db.executemany(f"INSERT INTO kpi_rows VALUES ({', '.join('?' * (3 + len(KPI_COLUMNS)))})", rows)
    h.db.commit()
    h.add_kpis(500.0, snap)
    h.set_meta(line="mini", origin_us=0, plant_us=10)
    h.close()

    class Ctx:
        historians = HistorianAccess(files=(tmp_path / "h.db",))

    data = live._read(Ctx(), str(tmp_path / "h.db"))  # a sync that kept no hourly totals: its snapshots
    hours, values = data["kpis"]["plant"]
    assert len(hours) <= live.MAX_POINTS and hours[-1] == 500.0 and data["kpis"]["since"] is None
    assert data["view"]["acknowledged"] == 7
    figure = live.history_figure(data["kpis"])
    assert len(figure.data[0].x) == len(hours) and list(figure.data[0].y) == values
    # with a year of hourly running totals (what a sync of this version keeps), MAX_POINTS of them, first and last
    h = Historian(tmp_path / "h.db")
    totals = [(float(t), {"hours": float(t), "exits": t // 4, "quantity": 0, "lead_sum": 0.0, "lead_n": 0, "wip": 0.0})
              for t in range(10, 8770)]  # fmt: skip
    h.add_kpis(8769.0, {**snap, "marks": totals})
    h.close()
    data = live._read(Ctx(), str(tmp_path / "h.db"))
    hours, values = data["kpis"]["plant"]
    assert data["kpis"]["since"] == 10.0 and hours[-1] == 8769.0 and live.MAX_POINTS // 2 < len(hours) < live.MAX_POINTS
    assert values[-1] == (8769 // 4 - 10 // 4) / (8769.0 - 10.0)  # the throughput since the first total
    assert data["kpis"]["twin"] == ([], [])


def test_a_metrics_port_in_use_is_refused_in_one_line(tmp_path: Path):
    from conftest import run_cli

    ep, _emulate = mini_plant(tmp_path, "100 h", seed=1, speed="max")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run_cli(*_sync_args(ep, port), cwd=tmp_path)
    assert r.returncode == 2 and f"--metrics-port {port}" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "h.db").exists()  # nothing half-written
