"""Author the scene of a line (and of its runs) into one ``Sdf.Layer``.

    >>> layer = author_scene([Scenario("baseline", spec, plan, assets, timeline)], scene_dir, metadata)

The prim tree, with kinds for Omniverse's model hierarchy (``group`` > ``assembly`` > ``component``)::

    /World                                   Xform, group, the default prim
      /LINE                                  Xform, assembly; a variant set `scenario` when several runs
        /Floor                               Cube
        /Queue                               Xform, component, TwinBufferAPI: released batches not yet in a station
        /STATION                             Xform, group: translate, rotateZ
          /Buffer                            Xform, component, TwinBufferAPI: twin:fill over time
            /Area, /Gauge/Bar                Cubes: floor marking, a bar as high as the buffer is full
          /unit_N                            Xform, component, TwinUnitAPI: twin:state, twin:batch, counters
            /Equipment                       references the equipment asset (kind subcomponent)
            /StatusPad                       Cube whose displayColor is the state's colour over time
            /StatusLook/Surface              Material (UsdPreviewSurface) bound to the pad: diffuse = state colour
        /Batches/batch_ID                    Xform, component, TwinBatchAPI: references the batch container,
                                             translate, visibility and twin:location over time
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pxr import Gf, Sdf, Vt

from connectors.usd.assets import ASSET_FOLDER, AssetChoice
from connectors.usd.authoring import attribute, author_held, author_interpolated, define, transform
from connectors.usd.equipment import BATCH
from connectors.usd.names import UniqueNames, prim_name
from connectors.usd.placement import LinePlan, StationPlan
from connectors.usd.timeline import BUFFER, DONE, QUEUED, UNIT, UNRELEASED, Timeline
from twin.palette import NO_STATE_COLOR, product_color, state_color
from twin.spec.model import LineSpec

T = Sdf.ValueTypeNames
PAD_MARGIN = 0.4  # metres of status pad around a unit's footprint
PAD_HEIGHT = 0.04
GAUGE_HEIGHT = 1.5  # metres of the fill bar of a full buffer
FLOOR_COLOR = (0.42, 0.44, 0.46)
STATUS_LOOK, SURFACE = "StatusLook", "Surface"  # a unit's state material and its UsdPreviewSurface shader


@dataclass(frozen=True)
class Scenario:
    """One variant of the scene: a spec laid out, and optionally a run's timeline."""

    name: str
    spec: LineSpec
    plan: LinePlan
    assets: dict[str, AssetChoice]
    timeline: Timeline | None = None
    provenance: dict[str, Any] | None = None


def author_scene(scenarios: list[Scenario], scene_dir: Path, layer_data: dict[str, Any], fmt: str) -> Sdf.Layer:
    """The scene as an anonymous layer (``fmt`` 'usda' or 'usdc'); several scenarios become variants."""
    layer = Sdf.Layer.CreateAnonymous(f"twin.{fmt}")
    line_name = prim_name(scenarios[0].spec.name)
    with Sdf.ChangeBlock():
        root = layer.pseudoRoot
        root.SetInfo("metersPerUnit", 1.0)
        root.SetInfo("upAxis", "Z")
        layer.defaultPrim = "World"
        layer.customLayerData = layer_data
        world = define(layer, "/World", "Xform", kind="group")
        line = define(layer, world.path.AppendChild(line_name), "Xform", kind="assembly")
        line.SetInfo("displayName", scenarios[0].spec.name)
        if len(scenarios) == 1:
            _author_line(layer, line.path, scenarios[0], scene_dir)
        else:
            variant_set = Sdf.VariantSetSpec(line, "scenario")
            line.SetInfo("variantSetNames", Sdf.StringListOp.Create(prependedItems=["scenario"]))
            names = UniqueNames()
            for scenario in scenarios:
                variant = Sdf.VariantSpec(variant_set, names(scenario.name))
                _author_line(layer, variant.primSpec.path, scenario, scene_dir)
            line.variantSelections["scenario"] = next(iter(variant_set.variants.keys()))
    return layer


def _author_line(layer: Sdf.Layer, line_path: Sdf.Path, scenario: Scenario, scene_dir: Path) -> None:
    spec, plan, timeline = scenario.spec, scenario.plan, scenario.timeline
    line = layer.GetPrimAtPath(line_path)
    attribute(line, "twin:line", T.String, spec.name, uniform=True, custom=True)
    attribute(line, "twin:specHash", T.String, spec.spec_hash, uniform=True, custom=True)
    if scenario.provenance:
        line.customData = {"twin": scenario.provenance}
    _author_floor(layer, line_path, plan)
    prim_names = station_prim_names(spec)
    _author_buffer(layer, line_path.AppendChild("Queue"), plan.entry, "", timeline, None)
    for station in spec.stations:
        station_plan = plan.stations[station.name]
        path = line_path.AppendChild(prim_names[station.name])
        prim = define(layer, path, "Xform", kind="group")
        prim.SetInfo("displayName", station.name)
        attribute(prim, "twin:station", T.Token, station.name, uniform=True, custom=True)
        transform(prim, translate=station_plan.origin, rotate_z=station_plan.rotation)
        _author_buffer(layer, path.AppendChild("Buffer"), station_plan, station.name, timeline, station.buffer)
        choice = scenario.assets[station.name]
        for unit in range(station.units):
            _author_unit(layer, path.AppendChild(f"unit_{unit}"), station_plan, station.name, unit,
                         station.equipment, choice, scene_dir, timeline)  # fmt: skip
    if timeline is not None:
        _author_batches(layer, line_path.AppendChild("Batches"), scenario)


def station_prim_names(spec: LineSpec) -> dict[str, str]:
    """Station name -> its prim's name under the line prim (distinct, never a reserved child's name)."""
    names = UniqueNames()
    for reserved in ("Floor", "Queue", "Batches"):
        names(reserved)
    return {station.name: names(station.name) for station in spec.stations}


def _author_floor(layer: Sdf.Layer, line_path: Sdf.Path, plan: LinePlan) -> None:
    xs, ys = [plan.exit_point[0], plan.entry.buffer_center[0]], [0.0]
    for st in plan.stations.values():
        for corner in ((-st.size[0] / 2, -st.size[1] / 2), (st.size[0] / 2, st.size[1] / 2)):
            for dx, dy in st.unit_offsets:
                x, y, _ = st.to_line((dx + corner[0], dy + corner[1], 0.0))
                xs.append(x)
                ys.append(y)
        for i in range(st.buffer_slots):
            x, y, _ = st.slot(i)
            xs.append(x)
            ys.append(y)
    margin = 3.0
    low, high = (min(xs) - margin, min(ys) - margin), (max(xs) + margin, max(ys) + margin)
    floor = define(layer, line_path.AppendChild("Floor"), "Cube")
    transform(floor, translate=((low[0] + high[0]) / 2, (low[1] + high[1]) / 2, -0.05),
              scale=((high[0] - low[0]) / 2, (high[1] - low[1]) / 2, 0.05))  # fmt: skip
    attribute(floor, "primvars:displayColor", T.Color3fArray, Vt.Vec3fArray([Gf.Vec3f(*FLOOR_COLOR)]))


def _author_buffer(layer: Sdf.Layer, path: Sdf.Path, plan: StationPlan, station: str, timeline: Timeline | None,
                   capacity: int | None) -> None:  # fmt: skip
    prim = define(layer, path, "Xform", kind="component", api_schemas=["TwinBufferAPI"])
    prim.SetInfo("displayName", f"{station} buffer" if station else "released, not yet in a station")
    attribute(prim, "twin:station", T.Token, station, uniform=True)
    attribute(prim, "twin:capacity", T.Int, -1 if capacity is None else capacity, uniform=True)
    center = (*plan.buffer_center, 0.0) if station else plan.to_line((*plan.buffer_center, 0.0))
    transform(prim, translate=center)
    length, width = plan.buffer_size
    area = define(layer, path.AppendChild("Area"), "Cube")
    transform(area, translate=(0, 0, 0.01), scale=(length / 2, width / 2, 0.01))
    attribute(area, "primvars:displayColor", T.Color3fArray, Vt.Vec3fArray([Gf.Vec3f(0.80, 0.82, 0.84)]))
    gauge = define(layer, path.AppendChild("Gauge"), "Xform")
    attribute(gauge, "xformOp:translate", T.Double3, (length / 2 + 0.3, width / 2 - 0.2, 0.0))
    scale = attribute(gauge, "xformOp:scale", T.Float3, (1.0, 1.0, 0.001))
    attribute(gauge, "xformOpOrder", T.TokenArray, ["xformOp:translate", "xformOp:scale"], uniform=True)
    bar = define(layer, gauge.path.AppendChild("Bar"), "Cube")
    transform(bar, translate=(0.0, 0.0, 1.0), scale=(0.12, 0.12, 1.0))
    attribute(bar, "primvars:displayColor", T.Color3fArray, Vt.Vec3fArray([Gf.Vec3f(0.20, 0.45, 0.80)]))
    fill = attribute(prim, "twin:fill", T.Int, 0)
    if timeline is None:
        return
    track = timeline.buffers[station]
    author_held(layer, fill.path, timeline.grid.codes(track.k), track.values.tolist())
    places = max(plan.buffer_slots, 1)
    heights = [Gf.Vec3f(1.0, 1.0, max(GAUGE_HEIGHT * int(v) / places / 2, 0.001)) for v in track.values]
    author_interpolated(layer, scale.path, timeline.grid.codes, track.k, heights)


def _author_unit(
    layer: Sdf.Layer, path: Sdf.Path, plan: StationPlan, station: str, unit: int, equipment: str | None,
    choice: AssetChoice, scene_dir: Path, timeline: Timeline | None,
) -> None:  # fmt: skip
    prim = define(layer, path, "Xform", kind="component", api_schemas=["TwinUnitAPI"])
    prim.SetInfo("displayName", f"{station} #{unit}")
    dx, dy = plan.unit_offsets[unit]
    transform(prim, translate=(dx, dy, 0.0))
    attribute(prim, "twin:station", T.Token, station, uniform=True)
    attribute(prim, "twin:unit", T.Int, unit, uniform=True)
    attribute(prim, "twin:equipment", T.Token, equipment or "", uniform=True)
    attribute(prim, "twin:loadPoint", T.Point3d, Gf.Vec3d(*plan.load_point(unit)), uniform=True)
    equipment_prim = define(layer, path.AppendChild("Equipment"), "", kind="subcomponent")
    equipment_prim.referenceList.Prepend(Sdf.Reference(choice.reference(scene_dir)))
    if choice.procedural is None:
        transform(equipment_prim, translate=choice.offset, rotate_x=choice.rotate_x,
                  scale=(choice.scale,) * 3 if choice.scale != 1.0 else None)  # fmt: skip
    length, width = choice.size[0] + 2 * PAD_MARGIN, choice.size[1] + 2 * PAD_MARGIN
    pad = define(layer, path.AppendChild("StatusPad"), "Cube")
    transform(pad, translate=(0.0, 0.0, PAD_HEIGHT / 2), scale=(length / 2, width / 2, PAD_HEIGHT / 2))
    color = attribute(pad, "primvars:displayColor", T.Color3fArray, Vt.Vec3fArray([Gf.Vec3f(*NO_STATE_COLOR)]))
    diffuse = author_status_look(layer, path, pad)
    state = attribute(prim, "twin:state", T.Token)
    batch = attribute(prim, "twin:batch", T.Int64)
    product = attribute(prim, "twin:product", T.Token)
    good = attribute(prim, "twin:goodCount", T.Int64)
    done = attribute(prim, "twin:batchesDone", T.Int)
    if timeline is None:
        return
    grid, tracks = timeline.grid, timeline.units[(station, unit)]
    author_held(layer, state.path, grid.codes(tracks.state.k), tracks.state.values.tolist())
    colors = {s: Vt.Vec3fArray([Gf.Vec3f(*state_color(s or None))]) for s in set(tracks.state.values)}
    author_interpolated(layer, color.path, grid.codes, tracks.state.k, [colors[s] for s in tracks.state.values])
    author_interpolated(layer, diffuse.path, grid.codes, tracks.state.k, [colors[s][0] for s in tracks.state.values])
    author_held(layer, batch.path, grid.codes(tracks.batch.k), tracks.batch.values.tolist())
    author_held(layer, product.path, grid.codes(tracks.product.k), tracks.product.values.tolist())
    author_held(layer, good.path, grid.codes(tracks.good_count.k), tracks.good_count.values.tolist())
    author_held(layer, done.path, grid.codes(tracks.batches_done.k), tracks.batches_done.values.tolist())


def author_status_look(layer: Sdf.Layer, unit_path: Sdf.Path, pad: Sdf.PrimSpec) -> Sdf.AttributeSpec:
    """A UsdPreviewSurface material ``unit_N/StatusLook`` bound to the status pad; its diffuse colour (returned)
    is the state's colour, so that renderers that ignore display colours show the state too."""
    material = define(layer, unit_path.AppendChild(STATUS_LOOK), "Material")
    shader = define(layer, material.path.AppendChild(SURFACE), "Shader")
    attribute(shader, "info:id", T.Token, "UsdPreviewSurface", uniform=True)
    diffuse = attribute(shader, "inputs:diffuseColor", T.Color3f, Gf.Vec3f(*NO_STATE_COLOR))
    attribute(shader, "inputs:roughness", T.Float, 0.6)
    surface = attribute(shader, "outputs:surface", T.Token)
    out = attribute(material, "outputs:surface", T.Token)
    out.connectionPathList.Prepend(surface.path.StripAllVariantSelections())  # inside a variant: the composed path
    pad.SetInfo("apiSchemas", Sdf.TokenListOp.Create(prependedItems=["MaterialBindingAPI"]))
    binding = Sdf.RelationshipSpec(pad, "material:binding", custom=False)
    binding.targetPathList.Prepend(material.path.StripAllVariantSelections())
    return diffuse


def _author_batches(layer: Sdf.Layer, path: Sdf.Path, scenario: Scenario) -> None:
    timeline, plan = scenario.timeline, scenario.plan
    assert timeline is not None
    define(layer, path, "Xform", kind="group")
    products = [p.name for p in scenario.spec.products]
    reference = Sdf.Reference(f"./{ASSET_FOLDER}/{BATCH.file_name}")
    body_colors = {p: Vt.Vec3fArray([Gf.Vec3f(*product_color(i))]) for i, p in enumerate(products)}
    for batch_id, track in sorted(timeline.batches.items()):
        prim = define(layer, path.AppendChild(f"batch_{batch_id}"), "Xform", kind="component",
                      api_schemas=["TwinBatchAPI"])  # fmt: skip
        prim.referenceList.Prepend(reference)
        attribute(prim, "twin:batch", T.Int64, batch_id, uniform=True)
        attribute(prim, "twin:product", T.Token, track.product, uniform=True)
        body = define(layer, prim.path.AppendChild("Body"), "", specifier=Sdf.SpecifierOver)
        attribute(body, "primvars:displayColor", T.Color3fArray,
                  body_colors.get(track.product, Vt.Vec3fArray([Gf.Vec3f(*product_color(len(products)))])))  # fmt: skip
        translate = attribute(prim, "xformOp:translate", T.Double3)
        attribute(prim, "xformOpOrder", T.TokenArray, ["xformOp:translate"], uniform=True)
        visibility = attribute(prim, "visibility", T.Token)
        location = attribute(prim, "twin:location", T.Token)
        values = track.location.values
        positions = [Gf.Vec3d(*_position(plan, where)) for where in values]
        author_interpolated(layer, translate.path, timeline.grid.codes, track.location.k, positions)
        codes = timeline.grid.codes(track.location.k)
        hidden = [where[0] in (UNRELEASED, DONE) for where in values]
        author_held(layer, visibility.path, codes, ["invisible" if h else "inherited" for h in hidden])
        author_held(layer, location.path, codes, [location_token(where) for where in values])


def _position(plan: LinePlan, where: tuple) -> tuple[float, float, float]:
    if where[0] == UNRELEASED:
        return plan.entry.slot(0)
    if where[0] == QUEUED:
        return plan.entry.slot(where[1])
    if where[0] == BUFFER:
        return plan.stations[where[1]].slot(where[2])
    if where[0] == UNIT:
        return plan.stations[where[1]].load_point(where[2])
    return plan.exit_point


def location_token(where: tuple) -> str:
    """``('buffer', 'coating', 1)`` -> ``'coating/buffer'``; ``('unit', 'coating', 0)`` -> ``'coating/0'``."""
    if where[0] == BUFFER:
        return f"{where[1]}/buffer"
    if where[0] == UNIT:
        return f"{where[1]}/{where[2]}"
    return where[0]
