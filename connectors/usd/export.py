"""Export a line (from its spec) or its runs (from run folders) as one USD scene.

    >>> sources = [load_source("runs/baseline"), load_source("runs/second-coater")]
    >>> report = export_scene(sources, Path("scene/line.usdc"), step_hours=1 / 60)
    >>> report.samples, report.seconds

Time codes are minutes of simulated time since the start of the run (time code 90 = 1.5 h into
the run); the stage's start and end time codes are the exported window, and its time codes per
second set the playback pace (default: one simulated hour per second). Several runs of one line go
into the variant set ``scenario`` of the line prim. The scene file is written beside ``out`` under a
temporary name and renamed in one step; the procedural equipment assets go to ``twin_assets/``
beside it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin import __version__
from twin.durations import format_hours
from twin.errors import InputError
from twin.eventlog import EventLog
from twin.files import atomic_path
from twin.models import load_spec
from twin.runfolder import RUN_FILE, read_run
from twin.spec.model import LineSpec

SCENE_SUFFIXES = (".usda", ".usdc", ".usd")
DEFAULT_STEP_HOURS = 1 / 60
DEFAULT_SPEED_HOURS = 1.0  # simulated hours shown per second of playback


@dataclass(frozen=True)
class SceneSource:
    """A spec (static layout) or a run (spec, event log and run.json) to put in a scene."""

    label: str  # what the user named: a path or a model name
    spec: LineSpec
    log: EventLog | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def is_run(self) -> bool:
        return self.log is not None

    @property
    def scenario(self) -> str:
        return str(self.info.get("scenario") or Path(self.label).name)


@dataclass(frozen=True)
class ExportReport:
    path: Path
    bytes: int
    seconds: float
    units: int
    batches: int
    samples: int
    variants: list[str]
    start_code: float | None
    end_code: float | None
    written_assets: list[Path]


def load_source(arg: str | Path) -> SceneSource:
    """A run folder (a directory), else a spec file or built-in model name."""
    path = Path(arg)
    if not path.is_dir():
        return SceneSource(str(arg), load_spec(arg))
    info_path = path / RUN_FILE
    info: dict[str, Any] = {}
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{info_path}: not a run description ({err})") from None
        if not isinstance(info, dict):
            raise InputError(f"{info_path}: not a run description (expected a JSON object)")
    result = read_run(path)
    return SceneSource(str(arg), result.spec, result.log, info)


def export_scene(
    sources: list[SceneSource],
    out: Path,
    start_hours: float | None = None,
    end_hours: float | None = None,
    step_hours: float = DEFAULT_STEP_HOURS,
    replication: int = 0,
    speed_hours: float = DEFAULT_SPEED_HOURS,
    decorate: Any = None,
) -> ExportReport:
    """Write the scene of ``sources`` (one spec, or runs of one line) to ``out`` (.usda, .usdc or .usd).

    ``decorate(layer, line_paths)``, if given, adds to the layer before it is written (``line_paths``: the
    line prim's path in each scenario's variant, in the order of ``sources``)."""
    began = time.perf_counter()
    out = Path(out)
    _check_out(out)
    _check_sources(sources)
    if not step_hours > 0:
        raise InputError(f"--step must be a positive duration (got {format_hours(step_hours)})")
    if not speed_hours > 0:
        raise InputError(f"--speed must be a positive duration (got {format_hours(speed_hours)})")

    from connectors.usd.assets import choose_assets, write_procedural_assets
    from connectors.usd.scene import Scenario, author_scene
    from connectors.usd.schema import register_schema
    from connectors.usd.timeline import Grid, build_timeline

    register_schema()
    runs = [s for s in sources if s.is_run]
    if not runs and (start_hours is not None or end_hours is not None):
        raise InputError(f"{sources[0].label}: --from and --to choose part of a run; a spec has no run to animate")
    window = _window(runs, replication, start_hours, end_hours) if runs else None
    names = _variant_names(sources) if len(sources) > 1 else [sources[0].scenario]
    scenarios = []
    for source, name in zip(sources, names, strict=True):
        spec = source.spec
        choices = choose_assets(spec)
        sizes = {s.name: choices[s.name].size for s in spec.stations}
        timeline = None
        if source.log is not None and window is not None:
            grid = Grid.over(window[0], window[1], step_hours)
            log = source.log
            table = log.table[log.table["replication"] == replication]
            timeline = build_timeline(table, log.meta.stations, log.meta.units, grid, _quality_loss_events())
        provenance = _provenance(source, replication)
        scenarios.append(Scenario(name, spec, layout_plan(spec, sizes, timeline), choices, timeline, provenance))

    layer_data = _layer_data(sources, scenarios, replication, step_hours, speed_hours)
    fmt = "usda" if out.suffix == ".usda" else "usdc"
    layer = author_scene(scenarios, out.parent, layer_data, fmt)
    if window is not None:
        layer.startTimeCode, layer.endTimeCode = window[0] * 60.0, window[1] * 60.0
        layer.timeCodesPerSecond = speed_hours * 60.0
        layer.framesPerSecond = min(speed_hours * 60.0, 60.0)
    if decorate is not None:
        decorate(layer, _line_paths(layer, names))
    assets = write_procedural_assets([choice for sc in scenarios for choice in sc.assets.values()], out.parent)
    _export_atomically(layer, out)
    samples = sum(_count_samples(layer, spec_) for spec_ in _attribute_specs(layer))
    units = sum(sum(s.units for s in sc.spec.stations) for sc in scenarios)
    batches = sum(len(sc.timeline.batches) for sc in scenarios if sc.timeline)
    return ExportReport(
        out, out.stat().st_size, time.perf_counter() - began, units, batches, samples, names,
        window[0] * 60.0 if window else None, window[1] * 60.0 if window else None, assets,
    )  # fmt: skip


def layout_plan(spec: LineSpec, sizes: dict[str, Any], timeline: Any = None) -> Any:
    """Where everything stands (``placement.LinePlan``): buffers drawn with their capacity, or the places a
    run used at most; an unlimited buffer of a spec without a run gets ``SHOWN_SLOTS_UNLIMITED`` places."""
    from connectors.usd.placement import SHOWN_SLOTS_UNLIMITED, place_line

    slots = {"": timeline.buffer_slots.get("", 0) if timeline else 0}
    for station in spec.stations:
        used = timeline.buffer_slots.get(station.name, 0) if timeline else 0
        shown = station.buffer if station.buffer is not None else (used if timeline else SHOWN_SLOTS_UNLIMITED)
        slots[station.name] = max(shown, used)
    return place_line(spec, sizes, slots)


def _line_paths(layer: Any, names: list[str]) -> list[Any]:
    from pxr import Sdf

    line = next(iter(layer.GetPrimAtPath("/World").nameChildren))
    if len(names) == 1:
        return [line.path]
    return [Sdf.Path(f"{line.path}{{scenario={name}}}") for name in names]


def check_out(out: Path, option: str = "--out") -> None:
    """Refuse a scene path that is not a USD file name (InputError naming ``option``)."""
    _check_out(out, option)


def _check_out(out: Path, option: str = "--out") -> None:
    if out.suffix not in SCENE_SUFFIXES:
        raise InputError(f"{option} {out}: a USD scene ends in .usda (text), .usdc (binary) or .usd (binary)")
    if out.is_dir():
        raise InputError(f"{option} {out}: is a folder; give a file name ending in .usdc or .usda")


def _check_sources(sources: list[SceneSource]) -> None:
    if not sources:
        raise InputError("give a spec, a built-in model or one or more run folders")
    runs = [s for s in sources if s.is_run]
    if len(sources) > 1 and len(runs) != len(sources):
        specs = ", ".join(s.label for s in sources if not s.is_run)
        raise InputError(f"{specs}: not a run folder; several sources must all be run folders (one line, scenarios)")
    first = sources[0].spec
    for other in sources[1:]:
        if other.spec.name != first.name:
            raise InputError(
                f"{other.label}: a run of line {other.spec.name!r}, not {first.name!r} like {sources[0].label}; "
                "scenarios in one scene must be runs of the same line"
            )
        ours, theirs = [s.name for s in first.stations], [s.name for s in other.spec.stations]
        if ours != theirs:
            raise InputError(
                f"{other.label}: stations {', '.join(theirs)} differ from {', '.join(ours)} in {sources[0].label}; "
                "scenarios in one scene must be runs of the same line"
            )


def _window(runs: list[SceneSource], replication: int, start: float | None, end: float | None) -> tuple[float, float]:
    ends = []
    for run in runs:
        assert run.log is not None
        count = run.log.meta.replications
        if not 0 <= replication < count:
            raise InputError(f"{run.label}: --replication {replication}: the run has replications 0 to {count - 1}")
        ends.append(run.log.end_times().get(replication, run.log.meta.horizon))
    last = max(ends)
    start = 0.0 if start is None else start
    end = last if end is None else end
    if start < 0:
        raise InputError(f"--from {format_hours(start)}: must be >= 0")
    if end > last + 1e-9:
        raise InputError(f"--to {format_hours(end)}: after the end of the run ({format_hours(last)})")
    if end <= start:
        raise InputError(f"--to {format_hours(end)} must come after --from {format_hours(start)}")
    return start, end


def _variant_names(sources: list[SceneSource]) -> list[str]:
    from connectors.usd.names import UniqueNames

    scenarios = [s.scenario for s in sources]
    base = scenarios if len(set(scenarios)) == len(scenarios) else [Path(s.label).name for s in sources]
    names = UniqueNames()
    return [names(b) for b in base]


def _quality_loss_events() -> tuple[str, ...]:
    from twin import eventlog

    return tuple(getattr(eventlog, "QUALITY_LOSS_EVENTS", ()))


def _provenance(source: SceneSource, replication: int) -> dict[str, Any]:
    data: dict[str, Any] = {"specHash": source.spec.spec_hash, "line": source.spec.name, "source": source.label}
    if source.is_run:
        info = source.info
        seed = info.get("seed")  # null in a plant's run folder (`twin sync --out`): no seed made it
        data.update(
            runId=str(info.get("run_id", "")), scenario=source.scenario, seed=-1 if seed is None else int(seed),
            replication=replication, replications=int(info.get("replications", 0)),
            created=str(info.get("created", "")), twinVersion=str(info.get("twin_version", "")),
            overrides="; ".join(map(str, info.get("overrides", []))),
        )  # fmt: skip
    return data


def _layer_data(sources: list[SceneSource], scenarios: list[Any], replication: int, step: float,
                speed: float) -> dict[str, Any]:  # fmt: skip
    twin: dict[str, Any] = {"version": __version__, "line": sources[0].spec.name}
    if any(s.is_run for s in sources):
        twin["timeCodes"] = "minutes of simulated time since the start of the run"
        twin["step"] = format_hours(step)
        twin["playback"] = f"{format_hours(speed)} of simulated time per second"
        twin["replication"] = replication
    if len(scenarios) == 1:
        twin.update(scenarios[0].provenance)
    else:
        twin["scenarios"] = {sc.name: sc.provenance for sc in scenarios}
    return {"twin": twin}


def _export_atomically(layer: Any, out: Path) -> None:
    with atomic_path(out, suffix=out.suffix) as tmp:  # USD picks the format by the extension
        if not layer.Export(str(tmp)):
            raise InputError(f"--out {out}: could not be written")


def _attribute_specs(layer: Any) -> list[Any]:
    found = []

    def visit(path: Any) -> None:
        if path.IsPropertyPath():
            spec = layer.GetAttributeAtPath(path)
            if spec is not None:
                found.append(path)

    layer.Traverse(layer.pseudoRoot.path, visit)
    return found


def _count_samples(layer: Any, path: Any) -> int:
    return layer.GetNumTimeSamplesForPath(path)
