"""CLI commands of the OPC-UA connector: ``twin serve``, ``emulate``, ``sync``, ``history`` and ``opcua``.

    twin serve osd-tablet --speed 60 --users users.yaml
    twin emulate osd-tablet --endpoint opc.tcp://127.0.0.1:4841 --speed max --allow-anonymous --security none
    twin sync osd-tablet --endpoint opc.tcp://127.0.0.1:4841 --historian plant.db --shadow
    twin history plant.db --tag COATING_U1_STATE --start 2025-01-01 --out states.csv
    twin opcua user add users.yaml alice --role operator

asyncua is imported inside the commands, so that ``twin --help`` stays quick.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from connectors.opcua.limits import HANDSHAKE_TIMEOUT_S, MAX_SESSIONS
from twin.cli.common import SetOpt, SpecArg, emit_json, optional_hours
from twin.errors import InputError, SpecError

T = TypeVar("T")

EndpointOpt = Annotated[
    str, typer.Option("--endpoint", help="opc.tcp://HOST:PORT (loopback unless you say otherwise).")
]
SpeedOpt = Annotated[
    str, typer.Option(help="Simulated seconds per second (1 = real time, 60 = a minute a second) or 'max'.")
]
SeedOpt = Annotated[int, typer.Option(help="Seed of the run's random streams.")]
HorizonOpt = Annotated[str | None, typer.Option(help="Run length, e.g. '2000 h' (default: the spec's).")]
PkiOpt = Annotated[
    Path | None,
    typer.Option("--pki", help="Folder with this program's certificate, key and trust list (created on first use)."),
]
UsersOpt = Annotated[Path | None, typer.Option("--users", help="Users file (made with `twin opcua user add`).")]
SecurityOpt = Annotated[
    str, typer.Option("--security", help="Endpoints to offer: none, sign, sign-encrypt (comma-separated).")
]
AnonOpt = Annotated[bool, typer.Option("--allow-anonymous", help="Let anonymous clients in (read-only).")]
HandshakeOpt = Annotated[
    float,
    typer.Option("--handshake-timeout", help="Seconds a connection has to say Hello and log in before it is closed."),
]
MaxSessionsOpt = Annotated[
    int, typer.Option("--max-sessions", help="Client sessions open at once; one more is refused (BadTooManySessions).")
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log asyncua's own messages too.")]
LiveUsdOpt = Annotated[
    Path | None,
    typer.Option("--live-usd", help="Keep a live USD scene in this folder: scene.usda to open, live.usda rewritten."),
]
UsdIntervalOpt = Annotated[
    float, typer.Option("--usd-interval", help="Seconds between rewrites of live.usda (at most one per interval).")
]

log = logging.getLogger("connectors.opcua")


def register(app: typer.Typer) -> None:
    """Add the OPC-UA commands to the ``twin`` CLI."""
    app.command("serve")(serve_command)
    app.command("emulate")(emulate_command)
    app.command("sync")(sync_command)
    app.command("history")(history_command)
    opcua = typer.Typer(
        help="OPC-UA users, certificates, the NodeSet2 export and tag maps from a browse.", no_args_is_help=True
    )
    user = typer.Typer(
        help="Users of the twin's OPC-UA servers (scrypt-hashed passwords, roles).", no_args_is_help=True
    )
    user.command("add")(user_add_command)
    opcua.add_typer(user, name="user")
    opcua.command("trust")(trust_command)
    opcua.command("cert")(cert_command)
    opcua.command("nodeset")(nodeset_command)
    opcua.command("discover")(discover_command)
    app.add_typer(opcua, name="opcua")


def _logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("connectors").setLevel(logging.INFO)
    logging.getLogger("asyncua").setLevel(logging.INFO if verbose else logging.CRITICAL)


def settle() -> None:
    """Keep what exists now (imports, an address space just built) out of the garbage collector's full passes.

    It lives as long as the process; scanning it again and again stalls the event loop for 100-500 ms
    (measured in the sync and in a server of 500 units), which costs publishes and latency.
    """
    gc.collect()
    gc.freeze()


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``main(stop)`` in an event loop; SIGINT and SIGTERM set ``stop`` (a clean shutdown), and say so.

    After the loop the CLI's own handlers are back (``asyncio`` would leave SIGTERM at its default, which
    kills the process while it writes what it has)."""
    from twin.cli.entry import install_signal_handlers

    settle()

    def on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
        if not stop.is_set():
            print(f"{sig.name}: stopping cleanly", file=sys.stderr, flush=True)
        stop.set()

    async def wrapper() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig, stop)
        return await main(stop)

    try:
        return asyncio.run(wrapper())
    finally:
        install_signal_handlers()


def _hours(text: str | None, option: str, unit: str = "h", zero: bool = False) -> float | None:
    return optional_hours(text, option, unit, allow_zero=zero)


def _server_options(
    endpoint: str,
    pki: Path | None,
    users: Path | None,
    security: str,
    anonymous: bool,
    role: str,
    handshake_timeout: float,
    max_sessions: int,
) -> Any:
    from connectors.opcua.security import parse_modes
    from connectors.opcua.uabase import ServerOptions, check_limits

    options = ServerOptions(
        endpoint=endpoint,
        pki=pki or Path.home() / ".twin" / "pki" / role,
        users=users,
        security=parse_modes(security),
        allow_anonymous=anonymous,
        handshake_timeout=handshake_timeout,
        max_sessions=max_sessions,
    )
    check_limits(options)
    return options


def builtin_tag_map(spec_arg: str) -> Path | None:
    """The tag map shipped with a built-in model, if ``spec_arg`` names one."""
    import plant_models

    path = plant_models.available().get(spec_arg)
    if path is None:
        return None
    shipped = path.parent / "tags" / path.name
    return shipped if shipped.exists() else None


# ---------------------------------------------------------------------------------------------------- serve


def serve_command(
    spec: SpecArg,
    endpoint: EndpointOpt = "opc.tcp://127.0.0.1:4840",
    speed: SpeedOpt = "60",
    seed: SeedOpt = 1,
    horizon: HorizonOpt = None,
    set_: SetOpt = None,
    paused: Annotated[bool, typer.Option("--paused", help="Wait for the Start method before running.")] = False,
    publish_interval: Annotated[float, typer.Option(help="Seconds between published updates.")] = 0.1,
    history_depth: Annotated[
        int, typer.Option(help="Values each variable keeps for HistoryRead (the oldest go first).")
    ] = 1000,
    pki: PkiOpt = None,
    users: UsersOpt = None,
    security: SecurityOpt = "sign,sign-encrypt",
    allow_anonymous: AnonOpt = False,
    handshake_timeout: HandshakeOpt = HANDSHAKE_TIMEOUT_S,
    max_sessions: MaxSessionsOpt = MAX_SESSIONS,
    live_usd: LiveUsdOpt = None,
    usd_interval: UsdIntervalOpt = 2.0,
    verbose: VerboseOpt = False,
) -> None:
    """Serve the twin over OPC-UA: the run paced to the wall clock, ISA-95 address space, PackML states."""
    from connectors.opcua.pacing import parse_speed
    from connectors.opcua.server import TwinServer
    from twin.models import load_spec

    _logging(verbose)
    line = load_spec(spec, set_ or ())
    options = _server_options(
        endpoint, pki, users, security, allow_anonymous, "serve", handshake_timeout, max_sessions
    )
    pace = parse_speed(speed)
    hours = _hours(horizon, "--horizon", line.time_unit)
    if not 1 <= history_depth <= 1_000_000:
        raise InputError(f"--history-depth {history_depth}: choose from 1 to 1000000")

    async def main(stop: asyncio.Event) -> None:
        server = TwinServer(
            line,
            options,
            speed=pace,
            seed=seed,
            horizon=hours,
            paused=paused,
            publish_interval=publish_interval,
            overrides=tuple(set_ or ()),
            history_depth=history_depth,
        )
        scene = _live_scene(line, live_usd, usd_interval)
        if scene is not None:
            from connectors.usd.live import ServerObserver

            server.observer = ServerObserver(scene)
        await server.start()
        settle()
        print(f"serving {line.name} on {endpoint} (namespace {server.namespace_uri})", file=sys.stderr, flush=True)
        try:
            await server.run(stop)
        finally:
            await server.stop()
            if scene is not None:
                scene.close()

    run_until_signal(main)


# ---------------------------------------------------------------------------------------------------- emulate


def emulate_command(
    spec: SpecArg,
    endpoint: EndpointOpt = "opc.tcp://127.0.0.1:4841",
    tag_map: Annotated[
        Path | None, typer.Option("--map", help="Tag layout to serve (default: the built-in layout).")
    ] = None,
    speed: SpeedOpt = "1",
    seed: SeedOpt = 1,
    horizon: HorizonOpt = None,
    set_: SetOpt = None,
    paused: Annotated[bool, typer.Option("--paused", help="Wait for PLC.Start before running.")] = False,
    state: Annotated[
        Path | None, typer.Option("--state", help="Resume file: a restarted emulator goes on where it stopped.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the emulator's own run (a run folder) when it ends.")
    ] = None,
    write_map: Annotated[
        Path | None, typer.Option("--write-map", help="Write the default tag map of SPEC and exit.")
    ] = None,
    bench_tags: Annotated[int, typer.Option(help="Extra BENCH_nnnn counters for load tests.")] = 0,
    bench_rate: Annotated[float, typer.Option(help="Changes per second of each bench counter.")] = 10.0,
    pki: PkiOpt = None,
    users: UsersOpt = None,
    security: SecurityOpt = "sign,sign-encrypt",
    allow_anonymous: AnonOpt = False,
    handshake_timeout: HandshakeOpt = HANDSHAKE_TIMEOUT_S,
    max_sessions: MaxSessionsOpt = MAX_SESSIONS,
    verbose: VerboseOpt = False,
) -> None:
    """Play a plant: an OPC-UA server with PLC-style tags driven by a SimPy run of SPEC."""
    from connectors.opcua.emulator import PlantEmulator
    from connectors.opcua.pacing import parse_speed
    from connectors.opcua.tagmap import default_tag_map, dump_tag_map, load_tag_map, parse_tag_map
    from twin.models import load_spec

    _logging(verbose)
    line = load_spec(spec, set_ or ())
    if write_map is not None:
        header = (
            f"Tag map of the emulated PLC of {line.name} (`twin emulate {spec}`).\n"
            f"Regenerate with: twin emulate {spec} --write-map {write_map}"
        )
        from twin.files import write_atomically

        write_atomically(write_map, dump_tag_map(default_tag_map(line), header))
        typer.echo(f"tag map written to {write_map}")
        return
    if out is not None and out.exists():
        raise InputError(f"{out}: already exists; choose another --out or remove it")
    if bench_tags < 0 or not bench_rate > 0:
        raise InputError("--bench-tags must be >= 0 and --bench-rate positive")
    tags = load_tag_map(tag_map, line) if tag_map else parse_tag_map(default_tag_map(line), "<default layout>", line)
    options = _server_options(
        endpoint, pki, users, security, allow_anonymous, "emulate", handshake_timeout, max_sessions
    )
    pace = parse_speed(speed)
    hours = _hours(horizon, "--horizon", line.time_unit)

    async def main(stop: asyncio.Event) -> None:
        emu = PlantEmulator(
            line,
            tags,
            options,
            speed=pace,
            seed=seed,
            horizon=hours,
            paused=paused,
            state_file=state,
            out=out,
            bench_tags=bench_tags,
            bench_rate=bench_rate,
        )
        await emu.start()
        settle()
        print(f"emulating {line.name} on {endpoint} (namespace {tags.namespace})", file=sys.stderr, flush=True)
        try:
            await emu.run(stop)
        finally:
            await emu.stop()

    run_until_signal(main)


# ---------------------------------------------------------------------------------------------------- sync


def sync_command(
    spec: SpecArg,
    endpoint: EndpointOpt = "opc.tcp://127.0.0.1:4841",
    tag_map: Annotated[
        Path | None, typer.Option("--map", help="Tag map (default: the one shipped with a built-in model).")
    ] = None,
    historian: Annotated[Path, typer.Option("--historian", help="Historian file (SQLite).")] = Path("plant-history.db"),
    retention: Annotated[
        str | None,
        typer.Option(help="Keep raw samples this long, e.g. '30 d'; older ones are compacted (default: all raw)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Stop when the plant clock is this far past the start, e.g. '300 h'.")
    ] = None,
    warmup: Annotated[str | None, typer.Option(help="Start of the feed left out of KPIs.")] = None,
    shadow: Annotated[
        bool, typer.Option("--shadow", help="Run the twin alongside and show twin vs plant KPIs.")
    ] = False,
    forecast_every: Annotated[
        str | None, typer.Option(help="With --shadow: forecast from the plant's state this often, e.g. '8 h'.")
    ] = None,
    forecast_horizon: Annotated[str, typer.Option(help="How far each forecast looks ahead.")] = "24 h",
    seed: SeedOpt = 1,
    set_: SetOpt = None,
    kpi_every: Annotated[float, typer.Option(help="Seconds between KPI updates.")] = 5.0,
    kpis_since: Annotated[
        str | None,
        typer.Option(help="Also keep the KPIs since this plant time (UTC), e.g. 2026-12-07T06:00, beside this "
                     "shift's and the last 24 h's."),
    ] = None,
    extra_tag: Annotated[
        list[str] | None, typer.Option("--extra-tag", help="Another tag to keep in the historian. Repeatable.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the plant's event log and KPIs as a run folder at the end.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final report as JSON.")] = False,
    live_usd: LiveUsdOpt = None,
    usd_interval: UsdIntervalOpt = 2.0,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="Serve the sync's own figures at http://127.0.0.1:PORT/metrics."),
    ] = None,
    pki: PkiOpt = None,
    security: Annotated[str, typer.Option("--security", help="none, sign or sign-encrypt.")] = "sign-encrypt",
    user: Annotated[str | None, typer.Option("--user", help="User name (password from --password-env).")] = None,
    password_env: Annotated[str, typer.Option(help="Environment variable with the password.")] = "TWIN_OPCUA_PASSWORD",
    verbose: VerboseOpt = False,
) -> None:
    """Subscribe to a plant's tags: historian, the plant's event log and KPIs, shadow twin and drift."""
    from connectors.opcua.security import MODES
    from connectors.opcua.sync import PlantSync, SyncOptions
    from connectors.opcua.tagmap import load_tag_map
    from connectors.opcua.uabase import ClientOptions, check_endpoint
    from twin.models import load_spec

    _logging(verbose)
    line = load_spec(spec, set_ or ())
    map_path = tag_map or builtin_tag_map(spec)
    if map_path is None:
        raise InputError(f"--map: give the tag map of the plant ({spec!r} is not a built-in model with a shipped map)")
    tags = load_tag_map(map_path, line)
    check_endpoint(endpoint)
    if security not in MODES:
        raise InputError(f"--security {security!r}: expected one of {', '.join(MODES)}")
    if out is not None and out.exists():
        raise InputError(f"{out}: already exists; choose another --out or remove it")
    if forecast_every is not None and not shadow:
        raise InputError("--forecast-every: forecasts are made in shadow mode; add --shadow")
    since = _calendar_time(kpis_since, "--kpis-since")
    password = os.environ.get(password_env) if user else None
    if user and password is None:
        password = typer.prompt(f"password of {user}", hide_input=True) if sys.stdin.isatty() else ""
    client = ClientOptions(
        endpoint=endpoint,
        pki=pki or Path.home() / ".twin" / "pki" / "sync",
        security=security,
        user=user,
        password=password,
    )

    scene = _live_scene(line, live_usd, usd_interval, shadow)

    def report(snap: dict[str, Any]) -> None:
        print(_snapshot_line(snap), file=sys.stderr, flush=True)
        if scene is not None:
            from connectors.usd.live import report_kpis

            report_kpis(scene, snap, sync)

    options = SyncOptions(
        client=client,
        historian=historian,
        retention_hours=_hours(retention, "--retention"),
        until=_hours(until, "--until", line.time_unit),
        warmup=_hours(warmup, "--warmup", line.time_unit, zero=True) or 0.0,
        shadow=shadow,
        seed=seed,
        kpi_every=kpi_every,
        forecast_every=_hours(forecast_every, "--forecast-every", line.time_unit),
        forecast_horizon=_hours(forecast_horizon, "--forecast-horizon", line.time_unit) or 24.0,
        extra_tags=tuple(extra_tag or ()),
        report=report,
        on_value=None if scene is None else _plant_feed(scene, tags),
        metrics_port=metrics_port,
        kpis_since=since,
    )
    sync = PlantSync(line, tags, options, str(map_path))
    try:
        result = run_until_signal(sync.run)
    finally:
        if scene is not None:
            scene.close()
    if out is not None:
        from twin.durations import format_hours
        from twin.experiment import RunResult
        from twin.runfolder import write_run

        settings = {
            "replications": 1,
            "seed": None,
            "horizon": result.decoded.log.meta.horizon,
            "warmup": options.warmup,
        }
        write_run(RunResult(line, result.decoded.log, result.kpis, "plant", (), settings), out)
        print(f"plant run written to {out} ({format_hours(settings['horizon'])} of plant time)", file=sys.stderr)
    summary = {
        "plant": result.kpis.summary,
        "twin": result.twin_kpis.summary if result.twin_kpis else None,
        "drift": result.drift,
        "received": result.stats.received,
        "acknowledged": result.acknowledged,
        "duplicates": result.stats.duplicates,
        "backfilled": result.stats.backfilled,
        "reconnects": result.stats.reconnects,
        "lost": result.stats.lost,
        "gaps": len(result.stats.gaps),
        "bad_values": result.decoded.bad_values,
        "missed": result.decoded.missed,
        "forecasts": result.forecasts,
        "windows": result.windows,
    }
    if as_json:
        emit_json(summary)
        return
    _print_report(summary)


def _calendar_time(text: str | None, option: str) -> Any:
    """A date and time (naive, read as UTC) from an option, or None; a bad one is an ``InputError``."""
    if text is None:
        return None
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{option} {text!r}: not a date and time, e.g. 2026-12-07T06:00") from None
    return moment.replace(tzinfo=None) if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def _live_scene(line: Any, folder: Path | None, interval: float, shadow: bool = False) -> Any:
    """The live USD scene of ``--live-usd`` (layout and first live layer written), or None; with ``shadow``
    a second view, the shadow twin's."""
    if folder is None:
        return None
    from connectors.usd.live import LiveScene
    from connectors.usd.live_state import LineNow

    scene = LiveScene(line, folder, interval, twin=LineNow(line) if shadow else None)
    scene.start()
    print(f"live USD scene: {folder / 'scene.usda'} (live.usda at most every {interval:g} s)", file=sys.stderr)
    return scene


def _plant_feed(scene: Any, tags: Any) -> Any:
    from connectors.usd.live import plant_feed

    return plant_feed(scene, tags)


def _fmt(v: Any, pct: bool = False, digits: int = 2) -> str:
    """A figure as people read it: fixed decimals with thousands separators (never 8.939e+04), or a percentage."""
    if v is None:
        return "-"
    return f"{v:.1%}" if pct else f"{v:,.{digits}f}"


def _metric(name: str) -> tuple[str, bool, int]:
    """The label of a drift key (a line KPI, or STATION.factor), whether it is a share, and its decimals."""
    from twin.kpis.line import LINE_KPI, station_factor_label

    kpi = LINE_KPI.get(name)
    if kpi is not None:
        return (kpi.label if kpi.percent else f"{kpi.label} ({kpi.unit})"), kpi.percent, kpi.digits
    return station_factor_label(name), True, 1


def _snapshot_line(snap: dict[str, Any]) -> str:
    plant = snap.get("plant") or {}
    throughput = _fmt((plant.get("throughput_per_hour") or {}).get("mean"), digits=4)
    oee = _fmt((plant.get("oee") or {}).get("mean"), True)
    text = (
        f"plant {snap['plant_hours']:.2f} h: throughput {throughput}/h, OEE {oee}; "
        f"{snap['acknowledged']} values stored, {snap['bad_values']} bad, {snap['missed']} missed, {snap['state']}"
    )
    if snap.get("drift"):
        t, o = snap["drift"]["throughput_per_hour"], snap["drift"]["oee"]
        text += (
            f" | twin throughput {_fmt(t['twin'], digits=4)}/h (drift {_fmt(t['relative'], True)}), "
            f"OEE {_fmt(o['twin'], True)}"
        )
    return text


def _print_report(summary: dict[str, Any]) -> None:
    from rich.table import Table

    from connectors.opcua.shadow import LINE_METRICS
    from twin.cli.render import console

    table = Table(title="Plant KPIs" + (" vs twin (shadow)" if summary["drift"] else ""))
    for column in ("KPI", "plant", "twin", "drift"):
        table.add_column(column)
    if summary["drift"]:
        for name, d in summary["drift"].items():
            label, pct, digits = _metric(name)
            table.add_row(label, _fmt(d["plant"], pct, digits), _fmt(d["twin"], pct, digits), _fmt(d["relative"], True))
    else:
        plant = summary["plant"]
        for name in LINE_METRICS:
            label, pct, digits = _metric(name)
            table.add_row(label, _fmt(plant[name]["mean"], pct, digits), "-", "-")
    if summary["plant"] and (summary["plant"].get("constraint") or {}).get("station"):
        table.caption = f"line OEE valued at {summary['plant']['constraint']['station']}, the constraint"
    out = console()
    out.print(table)
    out.print(
        f"{summary['acknowledged']} values stored ({summary['duplicates']} repeats dropped), "
        f"{summary['reconnects']} reconnects, {summary['gaps']} gaps "
        f"({summary['backfilled']} values fetched from history, {summary['lost']} lost), "
        f"bad values {summary['bad_values'] or 0}, "
        f"missed {summary['missed'] or 0}"
    )
    fc = summary.get("forecasts")
    if fc:
        out.print(
            f"shadow forecasts: {fc['made']} made, {fc['forecasts']} scored; batch completion error "
            f"{_fmt(fc['mean_abs_error_h'])} h on average (bias {_fmt(fc['bias_h'])} h), 90% intervals covered "
            f"{_fmt(fc['batch_coverage'], True)} of {fc['batches_scored']} batches and "
            f"{_fmt(fc['completed_coverage'], True)} of the batch counts"
        )


# ---------------------------------------------------------------------------------------------------- history


def history_command(
    historian: Annotated[Path, typer.Argument(help="Historian file written by `twin sync`.")],
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag to show (repeatable; default: all).")] = None,
    start: Annotated[str | None, typer.Option(help="From this source time (ISO 8601, UTC unless it says).")] = None,
    end: Annotated[str | None, typer.Option(help="Up to this source time.")] = None,
    list_tags: Annotated[bool, typer.Option("--list", help="List the tags with their sample counts.")] = False,
    gaps: Annotated[bool, typer.Option("--gaps", help="List the connection gaps.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Export to FILE.csv or FILE.parquet.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to print (exports have no limit).")] = 50,
    compact: Annotated[
        bool,
        typer.Option(
            "--compact",
            help="Compact raw samples older than --keep-raw: counters to per-minute aggregates, state changes kept; "
            "the plant's event log stays the same.",
        ),
    ] = False,
    keep_raw: Annotated[str, typer.Option(help="With --compact: raw samples of this much plant time stay.")] = "7 d",
) -> None:
    """Query the historian by tag and time range; export CSV or Parquet; compact it."""
    import pandas as pd

    from connectors.opcua.historian import Historian

    if compact:
        from connectors.opcua.logsource import compact_historian

        keep = _hours(keep_raw, "--keep-raw", zero=True) or 0.0
        deleted, before, after = compact_historian(historian, keep)
        typer.echo(
            f"{historian}: {deleted:,} raw samples compacted; {before / 1e6:,.1f} MB -> {after / 1e6:,.1f} MB "
            f"(raw samples of the last {keep_raw} kept, and every state change)"
        )
        return

    h = Historian(historian, readonly=True)
    try:
        start_t, end_t = (_timestamp(t, o) for t, o in ((start, "--start"), (end, "--end")))
        if list_tags:
            typer.echo(h.tags().to_string(index=False))
            return
        if gaps:
            found = h.gaps()
            typer.echo(found.to_string(index=False) if len(found) else "no gaps")
            return
        if out is not None:
            n = h.export(out, tag, start_t, end_t)
            typer.echo(f"{n} samples written to {out}")
            return
        df = h.query(tag, start_t, end_t)
        names = _value_names(h)
        if len(df) and names:  # state and product codes as the tag map names them, the code beside
            df["value"] = [
                f"{names[t][v]} ({v})" if t in names and _hashable(v) and v in names[t] else v
                for t, v in zip(df["tag"], df["value"], strict=True)
            ]
        with pd.option_context("display.width", 200, "display.max_columns", 10):
            typer.echo(df.tail(limit).to_string(index=False) if len(df) else "no samples")
        if len(df) > limit:
            typer.echo(f"... {len(df)} samples; the last {limit} shown (use --out to export them all)")
    finally:
        h.close()


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _value_names(h: Any) -> dict[str, dict[Any, str]]:
    """Tag -> {plant code: name} for the state and product tags of the historian's own tag map ({} if it has none)."""
    import yaml

    from connectors.opcua.tagmap import parse_tag_map

    text = h.meta().get("tag_map")
    if not text:
        return {}
    try:
        tags = parse_tag_map(yaml.safe_load(text), f"{h.path} (meta.tag_map)")
    except (SpecError, yaml.YAMLError):
        return {}  # the raw values are still worth showing
    out: dict[str, dict[Any, str]] = {}
    for _station, _u, unit in tags.units():
        out[unit.state] = {code: state or "no information" for code, state in tags.codes_for(unit).items()}
        if unit.product and tags.products:
            out[unit.product] = dict(tags.products)
    return out


def _timestamp(text: str | None, option: str) -> Any:
    import pandas as pd

    if text is None:
        return None
    try:
        return pd.Timestamp(text)
    except ValueError:
        raise InputError(f"{option} {text!r}: expected an ISO 8601 time, e.g. 2025-03-01T08:00") from None


# ---------------------------------------------------------------------------------------------------- opcua


def user_add_command(
    users: Annotated[Path, typer.Argument(help="Users file (created if missing).")],
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option(help="read-only or operator.")] = "read-only",
    password_env: Annotated[
        str, typer.Option(help="Take the password from this environment variable.")
    ] = "TWIN_OPCUA_PASSWORD",
) -> None:
    """Add (or replace) a user with an scrypt-hashed password."""
    from connectors.opcua.security import Users

    password = os.environ.get(password_env)
    if password is None:
        if not sys.stdin.isatty():
            raise InputError(f"no password: set {password_env} or run in a terminal")
        password = typer.prompt(f"password of {name}", hide_input=True, confirmation_prompt=True)
    Users.add(users, name, role, password)
    typer.echo(f"{name} ({role}) saved in {users}")


def trust_command(
    pki: Annotated[Path, typer.Argument(help="PKI folder of the program that should trust the certificate.")],
    certificate: Annotated[Path, typer.Argument(help="The peer's certificate (DER or PEM).")],
) -> None:
    """Put a peer certificate into a trust list."""
    from connectors.opcua.security import Pki

    typer.echo(f"trusted: {Pki(pki).trust(certificate)}")


def cert_command(
    pki: Annotated[Path, typer.Argument(help="PKI folder.")],
    role: Annotated[str, typer.Option(help="serve, emulate or sync (names the application URI).")] = "sync",
) -> None:
    """Show (and create on first use) a program's certificate, to hand to its peers."""
    import socket

    from connectors.opcua.security import Pki, thumbprint

    p = Pki(pki).ensure(f"urn:twin:{role}:{socket.gethostname()}", f"twin {role}", server=role != "sync")
    emit_json(
        {
            "certificate": str(p.cert_path),
            "thumbprint": thumbprint(p.certificate()),
            "application_uri": p.app_uri(),
            "trusted": str(p.trusted),
            "rejected": str(p.rejected),
        }
    )


def nodeset_command(
    spec: SpecArg,
    out: Annotated[Path, typer.Option("--out", help="NodeSet2 XML file to write (replaced if it exists).")],
    set_: SetOpt = None,
) -> None:
    """Export the twin's information model (what `twin serve SPEC` serves) as a NodeSet2 XML file."""
    from connectors.opcua.nodeset import export_nodeset
    from twin.files import write_atomically
    from twin.models import load_spec

    _logging(False)
    logging.getLogger("connectors.opcua.security").setLevel(logging.WARNING)  # the export's PKI is temporary
    line = load_spec(spec, set_ or ())
    if out.is_dir():
        raise InputError(f"--out {out}: is a folder; give a file name (e.g. {line.name}.NodeSet2.xml)")
    text = asyncio.run(export_nodeset(line))
    write_atomically(out, text)
    typer.echo(f"NodeSet2 of {line.name} written to {out} (load Opc.Ua.PackML.NodeSet2.xml before it)")


def discover_command(
    endpoint: Annotated[str, typer.Argument(help="opc.tcp://HOST:PORT of a server that exposes PackML machines.")],
    out: Annotated[Path, typer.Option("--out", help="Tag map to write (YAML; replaced if it exists).")],
    pki: PkiOpt = None,
    security: Annotated[str, typer.Option("--security", help="none, sign or sign-encrypt.")] = "sign-encrypt",
    user: Annotated[str | None, typer.Option("--user", help="User name (password from --password-env).")] = None,
    password_env: Annotated[str, typer.Option(help="Environment variable with the password.")] = "TWIN_OPCUA_PASSWORD",
) -> None:
    """Browse a server's PackML machines and write the tag map `twin sync --map` reads."""
    from connectors.opcua.discover import discover
    from connectors.opcua.security import MODES
    from connectors.opcua.tagmap import dump_tag_map, parse_tag_map
    from connectors.opcua.uabase import ClientOptions, check_endpoint, connect
    from twin.files import write_atomically

    _logging(False)
    check_endpoint(endpoint)
    if security not in MODES:
        raise InputError(f"--security {security!r}: expected one of {', '.join(MODES)}")
    options = ClientOptions(
        endpoint,
        pki=pki or Path.home() / ".twin" / "pki" / "sync",
        security=security,
        user=user,
        password=os.environ.get(password_env) if user else None,
    )

    async def main() -> tuple[dict[str, Any], list[str]]:
        client = await connect(options, "sync")
        try:
            return await discover(client)
        finally:
            await client.disconnect()

    data, notes = asyncio.run(main())
    parse_tag_map(data, f"{endpoint} (discovered)")  # what the sync will check, before anything is written
    units = sum(len(u) for u in data["stations"].values())
    header = f"Tag map discovered from {endpoint} by `twin opcua discover`: {units} units."
    write_atomically(out, dump_tag_map(data, header + "".join(f"\nleft out: {n}" for n in notes)))
    for note in notes:
        typer.echo(f"left out: {note}", err=True)
    typer.echo(f"tag map of {units} units in {len(data['stations'])} stations written to {out}")
