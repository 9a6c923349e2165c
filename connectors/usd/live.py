"""A live USD scene of a line: its layout written once, and a small sublayer rewritten with the state now.

    >>> scene = LiveScene(spec, Path("live"), interval_s=2.0)
    >>> scene.start()                    # live/scene.usda, live/layout.usdc, live/twin_assets/, live/live.usda
    >>> scene.line.set_state(("coating", 0), 12.5, "down")    # or LineNow.apply_rows / TagFeed.on_value
    >>> scene.close()                    # the last state written, the writer thread joined

Files in the folder::

    scene.usda    the stage to open: metres, Z up, default prim /World; sublayers live.usda over layout.usdc
    layout.usdc   the line as ``twin export-usd SPEC`` draws it (stations, units, buffers, state materials)
    live.usda     overs on the layout: per unit twin:state, twin:batch/twin:batchId, twin:product,
                  twin:since, twin:timeInState (hours), twin:recentStates/twin:recentTimes (the last changes),
                  the status pad's colour and its material's diffuse colour; per buffer twin:fill,
                  twin:batches and the gauge; the batches on units and in buffers (/World/LINE/Batches);
                  line KPIs as twin:kpi:NAME; twin:plantHours, twin:plantTime, twin:originUnixSeconds,
                  twin:sequence (rewrites so far), twin:written (wall clock, UTC)
    twin_assets/  the procedural equipment and the batch container

``live.usda`` is replaced in one rename (never seen half-written) at most every ``interval_s``
seconds, and only when something changed; a change is written at once when the last write is
older than the interval. Readers call ``Sdf.Layer.Reload`` on it (usdview: File > Reload All
Layers; Omniverse: the layer reloads itself when the file changes). In shadow mode the line prim has
a variant set ``view`` (``plant``, ``twin``), each station ``twin:drift:*`` attributes and a
``DriftFlag`` cube coloured by its OEE's relative drift (``DRIFT_COLORS``), and each batch the
latest forecast (``twin:forecast:leaveP5/P50/P95``, ``releaseP50``..., plant hours) as its ghost.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.usd.live_state import QUEUE, LineNow
from twin.errors import InputError
from twin.files import atomic_path
from twin.spec.model import LineSpec

log = logging.getLogger(__name__)

SCENE_FILE, LAYOUT_FILE, LIVE_FILE = "scene.usda", "layout.usdc", "live.usda"
DEFAULT_INTERVAL_S = 2.0
DRIFT_FLAG_HEIGHT = 2.6  # metres: the drift flag floats over the station's buffer
DRIFT_COLORS = ((0.05, (0.18, 0.62, 0.26)), (0.15, (0.95, 0.75, 0.1)), (math.inf, (0.85, 0.15, 0.15)))
"""Relative drift of a station's OEE (twin vs plant) up to each limit -> the flag's colour: green, amber, red."""


class LiveScene:
    """The live scene of ``spec`` in ``folder``; ``line`` is the state it shows (``live_state.LineNow``)."""

    def __init__(self, spec: LineSpec, folder: Path, interval_s: float = DEFAULT_INTERVAL_S,
                 twin: LineNow | None = None):  # fmt: skip
        if not (interval_s > 0 and math.isfinite(interval_s)):
            raise InputError(f"--usd-interval {interval_s:g}: must be a positive number of seconds")
        self.spec, self.folder, self.interval_s = spec, Path(folder), interval_s
        self.line = LineNow(spec, on_change=self._wake)
        self.twin = twin  # the shadow twin's state (a variant of the scene), if any
        if twin is not None:
            twin.on_change = self._wake
        self.sequence = 0  # rewrites of live.usda so far
        self.forecasts_seen = 0
        self.write_seconds: list[float] = []  # time each rewrite took (benchmarks)
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._written_version = -1
        self._plan: Any = None
        self.failed: str | None = None

    # ------------------------------------------------------------------------------------------ files

    def start(self) -> None:
        """Write the layout, the stage and a first live layer; start the writer thread."""
        from pxr import Sdf

        from connectors.usd.assets import choose_assets
        from connectors.usd.export import SceneSource, export_scene, layout_plan

        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise InputError(f"--live-usd {folder}: is a file; give a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"--live-usd {folder}: cannot be created ({err.strerror})") from None
        choices = choose_assets(self.spec)
        self._plan = layout_plan(self.spec, {s.name: choices[s.name].size for s in self.spec.stations})
        export_scene([SceneSource(self.spec.name, self.spec)], folder / LAYOUT_FILE)
        root = Sdf.Layer.CreateAnonymous("scene.usda")
        root.pseudoRoot.SetInfo("metersPerUnit", 1.0)
        root.pseudoRoot.SetInfo("upAxis", "Z")
        root.defaultPrim = "World"
        root.subLayerPaths.append(f"./{LIVE_FILE}")
        root.subLayerPaths.append(f"./{LAYOUT_FILE}")
        root.customLayerData = {"twin": {"line": self.spec.name, "live": f"{LIVE_FILE} is rewritten as the line runs"}}
        self.write_now()  # the live layer exists before the stage that names it
        with atomic_path(folder / SCENE_FILE, suffix=".usda") as tmp:
            if not root.Export(str(tmp)):
                raise InputError(f"--live-usd {folder}: could not write {SCENE_FILE}")
        self._thread = threading.Thread(target=self._loop, name="live-usd", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what changed since the last rewrite and stop the writer thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _dirty(self) -> bool:
        version = self.line.version + (self.twin.version if self.twin is not None else 0)
        return version != self._written_version

    def _loop(self) -> None:
        last = time.monotonic()
        while True:
            with self._cond:
                while not self._closing and not self._dirty():
                    self._cond.wait()
                closing = self._closing
            wait = last + self.interval_s - time.monotonic()
            if wait > 0 and not closing:
                with self._cond:
                    self._cond.wait_for(lambda: self._closing, timeout=wait)
            if self._dirty():
                try:
                    self.write_now()
                except Exception as err:  # a full disk must not stop the feed: say it, try again later
                    if self.failed is None:
                        log.warning("%s: could not write the live layer (%s)", self.folder / LIVE_FILE, err)
                    self.failed = str(err)
            last = time.monotonic()
            if closing:
                return

    def write_now(self) -> Path:
        """Rewrite ``live.usda`` with the state now (in one rename)."""
        began = time.perf_counter()
        with self.line.lock:
            version = self.line.version + (self.twin.version if self.twin is not None else 0)
            self.sequence += 1
            layer = self.author()
        target = self.folder / LIVE_FILE
        with atomic_path(target, suffix=".usda") as tmp:
            if not layer.Export(str(tmp)):
                raise OSError(f"could not write {target}")
        self._written_version = version
        self.write_seconds.append(time.perf_counter() - began)
        return target

    # ------------------------------------------------------------------------------------------ authoring

    def author(self) -> Any:
        """The live layer (an anonymous ``Sdf.Layer``) of the state now; the caller holds ``line.lock``."""
        from pxr import Sdf

        from connectors.usd.authoring import attribute, define
        from connectors.usd.names import prim_name

        T = Sdf.ValueTypeNames
        line, spec = self.line, self.spec
        layer = Sdf.Layer.CreateAnonymous("live.usda")
        written = datetime.now(UTC).isoformat(timespec="milliseconds")
        plant_time = (
            datetime.fromtimestamp(line.origin_us / 1e6 + line.now * 3600, UTC).isoformat(timespec="milliseconds")
            if line.origin_us is not None
            else ""
        )
        with Sdf.ChangeBlock():
            layer.customLayerData = {"twin": {"line": spec.name, "sequence": self.sequence, "written": written}}
            world = define(layer, "/World", "", specifier=Sdf.SpecifierOver)
            prim = define(layer, world.path.AppendChild(prim_name(spec.name)), "", specifier=Sdf.SpecifierOver)
            attribute(prim, "twin:plantHours", T.Double, float(line.now), custom=True)
            attribute(prim, "twin:plantTime", T.String, plant_time, custom=True)
            if line.origin_us is not None:  # plant time 0 (a plant feed's first value) as Unix seconds
                attribute(prim, "twin:originUnixSeconds", T.Double, line.origin_us / 1e6, custom=True)
            attribute(prim, "twin:sequence", T.Int64, self.sequence, custom=True)
            attribute(prim, "twin:written", T.String, written, custom=True)
            if self.twin is None:
                self._author_line(layer, prim.path, line, line.kpis)
            else:
                views = Sdf.VariantSetSpec(prim, "view")
                prim.SetInfo("variantSetNames", Sdf.StringListOp.Create(prependedItems=["view"]))
                plant = Sdf.VariantSpec(views, "plant")
                self._author_line(layer, plant.primSpec.path, line, line.kpis)
                with self.twin.lock:
                    twin_view = Sdf.VariantSpec(views, "twin")
                    self._author_line(layer, twin_view.primSpec.path, self.twin, line.twin_kpis or {})
                prim.variantSelections["view"] = "plant"
                self._author_drift(layer, prim.path, line.drift or {})
        return layer

    def _author_line(self, layer: Any, path: Any, line: LineNow, kpis: dict[str, Any]) -> None:
        from pxr import Gf, Sdf, Vt

        from connectors.usd.authoring import attribute, define
        from connectors.usd.scene import GAUGE_HEIGHT, STATUS_LOOK, SURFACE, station_prim_names
        from twin.palette import state_color

        T = Sdf.ValueTypeNames
        over = Sdf.SpecifierOver
        line_prim = layer.GetPrimAtPath(path)
        for name, value in sorted(_kpi_means(kpis).items()):
            attribute(line_prim, f"twin:kpi:{name}", T.Double, value, custom=True)
        if line.forecast:
            attribute(line_prim, "twin:forecast:at", T.Double, float(line.forecast.get("at", 0.0)), custom=True)
            attribute(line_prim, "twin:forecast:horizon", T.Double, float(line.forecast.get("horizon", 0.0)),
                      custom=True)  # fmt: skip
        names = station_prim_names(self.spec)
        plan = self._plan
        for area, batches in line.buffers.items():
            buffer_path = path.AppendChild("Queue") if area == QUEUE else path.AppendChild(names[area])
            if area != QUEUE:
                define(layer, buffer_path, "", specifier=over)
                buffer_path = buffer_path.AppendChild("Buffer")
            buffer = define(layer, buffer_path, "", specifier=over)
            attribute(buffer, "twin:fill", T.Int, len(batches))
            attribute(buffer, "twin:batches", T.StringArray, list(batches), custom=True)
            places = max((plan.entry if area == QUEUE else plan.stations[area]).buffer_slots, 1)
            gauge = define(layer, buffer_path.AppendChild("Gauge"), "", specifier=over)
            attribute(gauge, "xformOp:scale", T.Float3, Gf.Vec3f(1.0, 1.0, max(GAUGE_HEIGHT * len(batches) / places / 2,
                                                                                0.001)))  # fmt: skip
        for (station, u), unit in line.units.items():
            unit_path = path.AppendChild(names[station]).AppendChild(f"unit_{u}")
            prim = define(layer, unit_path, "", specifier=over)
            batch = unit.batch or ""
            attribute(prim, "twin:state", T.Token, unit.state or "")
            attribute(prim, "twin:batch", T.Int64, int(batch) if batch.isdigit() else -1)
            attribute(prim, "twin:batchId", T.String, batch, custom=True)
            attribute(prim, "twin:product", T.Token, unit.product or "")
            attribute(prim, "twin:batchesDone", T.Int, unit.batches_done)
            attribute(prim, "twin:since", T.Double, unit.since, custom=True)
            attribute(prim, "twin:timeInState", T.Double, max(line.now - unit.since, 0.0) if unit.state else 0.0,
                      custom=True)  # fmt: skip
            attribute(prim, "twin:recentStates", T.TokenArray, [s for _, s in unit.recent], custom=True)
            attribute(prim, "twin:recentTimes", T.DoubleArray, [t for t, _ in unit.recent], custom=True)
            color = Gf.Vec3f(*state_color(unit.state))
            pad = define(layer, unit_path.AppendChild("StatusPad"), "", specifier=over)
            attribute(pad, "primvars:displayColor", T.Color3fArray, Vt.Vec3fArray([color]))
            look = define(layer, unit_path.AppendChild(STATUS_LOOK), "", specifier=over)
            shader = define(layer, look.path.AppendChild(SURFACE), "", specifier=over)
            attribute(shader, "inputs:diffuseColor", T.Color3f, color)
        self._author_batches(layer, path.AppendChild("Batches"), line)

    def _author_batches(self, layer: Any, path: Any, line: LineNow) -> None:
        from pxr import Gf, Sdf, Vt

        from connectors.usd.assets import ASSET_FOLDER
        from connectors.usd.authoring import attribute, define
        from connectors.usd.equipment import BATCH
        from connectors.usd.names import UniqueNames
        from twin.palette import product_color

        T = Sdf.ValueTypeNames
        plan = self._plan
        define(layer, path, "Xform", kind="group")
        products = [p.name for p in self.spec.products]
        names = UniqueNames()
        for batch, where in sorted(line.where.items()):
            if where[0] == "buffer":
                area_plan = plan.entry if where[1] == QUEUE else plan.stations[where[1]]
                place = line.buffers[where[1]].index(batch)
                position = area_plan.slot(place)
                location = "queued" if where[1] == QUEUE else f"{where[1]}/buffer"
            else:
                position = plan.stations[where[1]].load_point(where[2])
                location = f"{where[1]}/{where[2]}"
            prim = define(layer, path.AppendChild(names(f"batch_{batch}")), "Xform", kind="component",
                          api_schemas=["TwinBatchAPI"])  # fmt: skip
            prim.referenceList.Prepend(Sdf.Reference(f"./{ASSET_FOLDER}/{BATCH.file_name}"))
            product = line.products.get(batch, "")
            attribute(prim, "twin:batch", T.Int64, int(batch) if batch.isdigit() else -1, uniform=True)
            attribute(prim, "twin:batchId", T.String, batch, uniform=True, custom=True)
            attribute(prim, "twin:product", T.Token, product, uniform=True)
            attribute(prim, "twin:location", T.Token, location)
            attribute(prim, "xformOp:translate", T.Double3, Gf.Vec3d(*position))
            attribute(prim, "xformOpOrder", T.TokenArray, ["xformOp:translate"], uniform=True)
            self._author_ghost(prim, batch, line)
            index = products.index(product) if product in products else len(products)
            body = define(layer, prim.path.AppendChild("Body"), "", specifier=Sdf.SpecifierOver)
            attribute(body, "primvars:displayColor", T.Color3fArray, Vt.Vec3fArray([Gf.Vec3f(*product_color(index))]))

    def _author_ghost(self, prim: Any, batch: str, line: LineNow) -> None:
        """The forecast of ``batch``: when it leaves the line and is released (p5, p50, p95; plant hours, and the
        p50 as a UTC time where the plant's clock is known); -1 where the forecast sees it after its horizon."""
        from pxr import Sdf

        from connectors.usd.authoring import attribute

        forecast = line.forecast
        if not forecast:
            return
        T = Sdf.ValueTypeNames
        at = float(forecast.get("at", 0.0))
        for key, name in (("batches", "leave"), ("released", "release")):
            quantiles = (forecast.get(key) or {}).get(batch)
            if not quantiles:
                continue
            for q in ("p5", "p50", "p95"):
                value = quantiles.get(q)
                hours = -1.0 if value is None else at + float(value)
                attribute(prim, f"twin:forecast:{name}{q.upper()}", T.Double, hours, custom=True)
            if quantiles.get("p50") is not None and line.origin_us is not None:
                when = datetime.fromtimestamp(line.origin_us / 1e6 + (at + quantiles["p50"]) * 3600, UTC)
                attribute(prim, f"twin:forecast:{name}Time", T.String, when.isoformat(timespec="minutes"),
                          custom=True)  # fmt: skip

    def _author_drift(self, layer: Any, path: Any, drift: dict[str, Any]) -> None:
        """Line drift (twin - plant, per KPI) on the line prim; a station's factors on the station prim."""
        from pxr import Gf, Sdf, Vt

        from connectors.usd.authoring import attribute, define, transform
        from connectors.usd.scene import station_prim_names

        T = Sdf.ValueTypeNames
        names = station_prim_names(self.spec)
        line_prim = layer.GetPrimAtPath(path)
        for key, value in sorted(drift.items()):
            delta = value.get("drift") if isinstance(value, dict) else None
            if delta is None or not math.isfinite(float(delta)):
                continue
            station, _, factor = key.partition(".")
            if factor and station in names:
                prim = define(layer, path.AppendChild(names[station]), "", specifier=Sdf.SpecifierOver)
                attribute(prim, f"twin:drift:{_identifier(factor)}", T.Double, float(delta), custom=True)
            else:
                attribute(line_prim, f"twin:drift:{_identifier(key)}", T.Double, float(delta), custom=True)
        for station, prim_name_ in names.items():  # a flag over each station: how far the twin is from the plant
            relative = (drift.get(f"{station}.oee") or {}).get("relative")
            if relative is None or not math.isfinite(float(relative)):
                continue
            flag = define(layer, path.AppendChild(prim_name_).AppendChild("DriftFlag"), "Cube")
            center = self._plan.stations[station].buffer_center
            transform(flag, translate=(center[0], center[1], DRIFT_FLAG_HEIGHT), scale=(0.25, 0.25, 0.25))
            attribute(flag, "twin:drift:oeeRelative", T.Double, float(relative), custom=True)
            color = next(c for limit, c in DRIFT_COLORS if abs(float(relative)) <= limit)
            attribute(flag, "primvars:displayColor", T.Color3fArray, Vt.Vec3fArray([Gf.Vec3f(*color)]))


def _identifier(text: str) -> str:
    from connectors.usd.names import prim_name

    return prim_name(text)


def _kpi_means(summary: dict[str, Any]) -> dict[str, float]:
    """``{"oee": {"mean": 0.61, ...}, ...}`` -> ``{"oee": 0.61}`` (finite numbers only)."""
    out = {}
    for key, value in summary.items():
        mean = value.get("mean") if isinstance(value, dict) else value
        with contextlib.suppress(TypeError, ValueError):
            if isinstance(mean, int | float) and not isinstance(mean, bool) and math.isfinite(float(mean)):
                out[_identifier(key)] = float(mean)
    return out


class ServerObserver:
    """Hands a ``TwinServer``'s run (``twin serve``) to a live scene: ``server.observer = ServerObserver(scene)``."""

    def __init__(self, scene: LiveScene):
        self.scene = scene

    def rows(self, rows: Any) -> None:
        self.scene.line.apply_rows(rows)

    def kpis(self, summary: dict[str, Any]) -> None:
        self.scene.line.set_kpis(summary)

    def new_run(self) -> None:
        self.scene.line.reset()


def plant_feed(scene: LiveScene, tags: Any) -> Any:
    """The ``on_value`` callback of ``twin sync`` that keeps ``scene`` up to date from a tag map's tags."""
    from connectors.usd.live_state import TagFeed

    return TagFeed(scene.line, tags).on_value


def report_kpis(scene: LiveScene, snapshot: dict[str, Any], sync: Any = None) -> None:
    """A KPI snapshot of ``twin sync`` (plant, twin, drift) into the scene; in shadow mode also the shadow
    twin's new rows (the ``twin`` view) and the latest forecast (the batches' ghosts)."""
    shadow = getattr(sync, "shadow", None)
    if shadow is not None and scene.twin is not None:
        rows = shadow.take(f"usd-scene-{id(scene)}")  # a reader of the shadow: its rows kept until taken
        if len(rows):
            scene.twin.apply_rows(rows)
    made = int((snapshot.get("forecasts") or {}).get("made") or 0)
    if sync is not None and made > scene.forecasts_seen:
        from connectors.opcua.historian import Historian

        reader = Historian(sync.options.historian, readonly=True)
        try:
            stored = reader.forecasts()
        finally:
            reader.close()
        if len(stored):
            scene.line.set_forecast(stored["predicted"].iloc[-1])
        scene.forecasts_seen = made
    scene.line.set_kpis(snapshot.get("plant"), snapshot.get("twin"), snapshot.get("drift"))
