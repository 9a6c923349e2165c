"""Procedural equipment assets: one small USD layer per equipment type, at a plausible real size.

    >>> kind = equipment_kind("coater")          # the catalogue entry (size, parts)
    >>> kind.size                                 # (length along the flow, width, height) in metres
    (3.2, 2.1, 2.4)
    >>> write_asset(kind, Path("scene/twin_assets/coater.usda"))

Each asset is a component model standing on the floor (z = 0), centred on its footprint, material
flowing along +x, in metres with z up, built from USD's implicit shapes (cube, cylinder, cone,
sphere). Sizes are typical catalogue footprints of equipment for the built-in models' batch sizes
(300 kg OSD batches, 25,000-vial sterile batches), rounded: engineering estimates, unsourced. An
unknown type gets the ``generic`` box. A user's own asset replaces any of them (see the spec's
``layout.assets``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from connectors.usd.names import prim_name
from twin.files import atomic_path

Vec3 = tuple[float, float, float]

STEEL: Vec3 = (0.74, 0.76, 0.79)
PANEL: Vec3 = (0.30, 0.33, 0.38)
GLASS: Vec3 = (0.62, 0.78, 0.86)
WHITE: Vec3 = (0.90, 0.90, 0.88)
FLOOR_MARK: Vec3 = (0.55, 0.58, 0.60)


@dataclass(frozen=True)
class Part:
    """One implicit shape: ``shape`` is cube, cylinder (along z), drum (cylinder along x), cone or sphere.

    ``center`` is its centre and ``size`` its full extent along x, y, z, in metres.
    """

    name: str
    shape: str
    center: Vec3
    size: Vec3
    color: Vec3 = STEEL


@dataclass(frozen=True)
class EquipmentKind:
    """An equipment type and the parts that draw it; its size is the parts' bounding box."""

    name: str
    parts: tuple[Part, ...]
    description: str

    @property
    def bounds(self) -> tuple[Vec3, Vec3]:
        low = tuple(min(p.center[i] - p.size[i] / 2 for p in self.parts) for i in range(3))
        high = tuple(max(p.center[i] + p.size[i] / 2 for p in self.parts) for i in range(3))
        return low, high  # type: ignore[return-value]

    @property
    def size(self) -> Vec3:
        """Length along the flow, width and height in metres."""
        low, high = self.bounds
        return (round(high[0] - low[0], 6), round(high[1] - low[1], 6), round(high[2] - low[2], 6))

    @property
    def file_name(self) -> str:
        return f"{prim_name(self.name)}.usda"


def _kind(name: str, description: str, *parts: Part) -> EquipmentKind:
    return EquipmentKind(name, parts, description)


CATALOGUE: dict[str, EquipmentKind] = {
    k.name: k
    for k in (
        _kind("dispensary", "downflow weighing booth",
              Part("Booth", "cube", (0, 0.9, 1.4), (3.0, 0.7, 2.8), WHITE),
              Part("Table", "cube", (0, -0.2, 0.45), (1.6, 0.9, 0.9)),
              Part("Scale", "cube", (-0.9, -0.6, 0.05), (1.0, 1.0, 0.1), PANEL)),
        _kind("granulator", "high-shear granulator, 600 L bowl",
              Part("Base", "cube", (0, 0, 0.5), (2.6, 1.6, 1.0), PANEL),
              Part("Bowl", "cylinder", (0.3, 0, 1.5), (1.3, 1.3, 1.0)),
              Part("Lid", "sphere", (0.3, 0, 2.0), (1.3, 1.3, 0.6)),
              Part("Motor", "cube", (-0.9, 0, 1.4), (0.6, 0.6, 0.8))),
        _kind("dryer", "fluid-bed dryer, 300 kg",
              Part("Container", "cone", (0, 0, 0.9), (1.4, 1.4, 1.4)),
              Part("Chamber", "cylinder", (0, 0, 2.7), (1.8, 1.8, 2.2)),
              Part("Filter", "cylinder", (0, 0, 4.3), (2.2, 2.2, 1.0)),
              Part("Control", "cube", (-1.0, 0.8, 0.9), (0.3, 0.6, 1.8), PANEL)),
        _kind("mill", "cone mill",
              Part("Stand", "cube", (0, 0, 0.5), (1.0, 0.9, 1.0), PANEL),
              Part("Cone", "cone", (0, 0, 1.3), (0.7, 0.7, 0.6)),
              Part("Hopper", "cylinder", (0, 0, 1.7), (0.8, 0.8, 0.2))),
        _kind("blender", "IBC bin blender",
              Part("Plinth", "cube", (0, 0, 0.05), (3.0, 2.4, 0.1), PANEL),
              Part("PostUpstream", "cube", (-1.25, 0, 1.5), (0.5, 0.6, 3.0), PANEL),
              Part("PostDownstream", "cube", (1.25, 0, 1.5), (0.5, 0.6, 3.0), PANEL),
              Part("Bin", "cube", (0, 0, 1.9), (1.3, 1.3, 1.4)),
              Part("Outlet", "cone", (0, 0, 0.9), (0.8, 0.8, 0.6))),
        _kind("press", "rotary tablet press, 60 stations",
              Part("Cabinet", "cube", (0, 0, 0.5), (1.3, 1.2, 1.0), PANEL),
              Part("Turret", "cube", (0, 0, 1.35), (1.1, 1.0, 0.7), GLASS),
              Part("Top", "cube", (0, 0, 1.85), (1.3, 1.2, 0.3), PANEL),
              Part("Hopper", "cone", (0, 0, 2.0), (0.4, 0.4, 0.3))),
        _kind("coater", "perforated-pan film coater, 400 kg",
              Part("Cabinet", "cube", (0, 0, 1.2), (3.2, 2.0, 2.4), WHITE),
              Part("Pan", "drum", (0.3, -1.0, 1.2), (1.6, 0.2, 1.6)),
              Part("Panel", "cube", (-1.3, -1.05, 1.4), (0.4, 0.1, 0.8), PANEL)),
        _kind("packager", "blister line with cartoner",
              Part("Base", "cube", (-0.8, 0, 0.5), (6.4, 1.4, 1.0), PANEL),
              Part("Guard", "cube", (-0.8, 0, 1.5), (6.4, 1.4, 1.0), GLASS),
              Part("Cartoner", "cube", (3.2, 0, 0.9), (1.6, 1.8, 1.8), WHITE)),
        _kind("compounding-vessel", "jacketed compounding vessel, 1,000 L",
              Part("Vessel", "cylinder", (0, 0, 1.45), (1.3, 1.3, 1.5)),
              Part("Dome", "sphere", (0, 0, 2.2), (1.3, 1.3, 0.5)),
              Part("Agitator", "cylinder", (0, 0, 2.6), (0.3, 0.3, 0.4), PANEL),
              Part("Legs", "cube", (0, 0, 0.35), (1.1, 1.1, 0.7), PANEL)),
        _kind("filter-skid", "sterile filtration skid",
              Part("Frame", "cube", (0, 0, 0.4), (1.5, 1.0, 0.8), PANEL),
              Part("HousingA", "cylinder", (-0.35, 0, 1.3), (0.35, 0.35, 1.0)),
              Part("HousingB", "cylinder", (0.35, 0, 1.3), (0.35, 0.35, 1.0))),
        _kind("filler", "aseptic vial filling line in an isolator",
              Part("Base", "cube", (0, 0, 0.5), (6.0, 2.0, 1.0), PANEL),
              Part("Isolator", "cube", (0, 0, 1.75), (5.6, 1.8, 1.5), GLASS)),
        _kind("lyophilizer", "production freeze dryer, about 20 m2 of shelves",
              Part("Chamber", "cube", (0.4, 0, 1.6), (3.0, 2.6, 3.2), WHITE),
              Part("Condenser", "drum", (-1.6, 0, 1.2), (1.3, 1.6, 1.6)),
              Part("Door", "cube", (1.95, 0, 1.6), (0.1, 2.0, 2.6), STEEL)),
        _kind("capper", "vial capper under RABS",
              Part("Base", "cube", (0, 0, 0.5), (2.0, 1.2, 1.0), PANEL),
              Part("Rabs", "cube", (0, 0, 1.5), (1.9, 1.1, 1.0), GLASS)),
        _kind("inspector", "automated visual inspection machine",
              Part("Cabinet", "cube", (0, 0, 0.6), (4.0, 2.0, 1.2), WHITE),
              Part("Hood", "cube", (0, 0, 1.7), (3.6, 1.6, 1.0), GLASS)),
        _kind("generic", "equipment of an unknown type",
              Part("Body", "cube", (0, 0, 1.0), (2.0, 1.5, 2.0))),
        _kind("batch", "batch container (IBC bin or vial trolley)",
              Part("Body", "cube", (0, 0, 1.0), (1.2, 1.2, 1.2)),
              Part("Outlet", "cone", (0, 0, 0.2), (0.5, 0.5, 0.4), STEEL)),
    )
}  # fmt: skip

BATCH = CATALOGUE["batch"]
GENERIC = CATALOGUE["generic"]


def equipment_kind(equipment: str | None) -> EquipmentKind:
    """The catalogue entry of an equipment type (``generic`` for None or an unknown type)."""
    if equipment is None:
        return GENERIC
    return CATALOGUE.get(equipment.strip().lower(), GENERIC)


def write_asset(kind: EquipmentKind, path: Path) -> None:
    """Write the asset layer of ``kind`` at ``path`` (.usda), atomically (temporary file, then rename)."""
    from pxr import Gf, Kind, Sdf, Usd, UsdGeom

    layer = Sdf.Layer.CreateAnonymous(".usda")
    stage = Usd.Stage.Open(layer)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    root = UsdGeom.Xform.Define(stage, f"/{prim_name(kind.name)}")
    stage.SetDefaultPrim(root.GetPrim())
    Usd.ModelAPI(root).SetKind(Kind.Tokens.component)
    Usd.ModelAPI(root).SetAssetName(kind.name)
    root.GetPrim().SetDocumentation(f"{kind.description}; {kind.size[0]} x {kind.size[1]} x {kind.size[2]} m")
    length, width, height = kind.size
    UsdGeom.ModelAPI(root).SetExtentsHint(
        [Gf.Vec3f(-length / 2, -width / 2, 0), Gf.Vec3f(length / 2, width / 2, height)]
    )
    low, high = kind.bounds
    shift = (-(low[0] + high[0]) / 2, -(low[1] + high[1]) / 2, -low[2])  # footprint centred, standing on z = 0
    for part in kind.parts:
        path_ = root.GetPath().AppendChild(part.name)
        shape = part.shape
        if shape == "cube":
            gprim = UsdGeom.Cube.Define(stage, path_)  # size 2: scale by half extents
        elif shape in ("cylinder", "drum"):
            gprim = UsdGeom.Cylinder.Define(stage, path_)
            gprim.CreateAxisAttr(UsdGeom.Tokens.x if shape == "drum" else UsdGeom.Tokens.z)
        elif shape == "cone":
            gprim = UsdGeom.Cone.Define(stage, path_)
            gprim.CreateAxisAttr(UsdGeom.Tokens.z)
        elif shape == "sphere":
            gprim = UsdGeom.Sphere.Define(stage, path_)
        else:  # pragma: no cover - the catalogue above names only these shapes
            raise ValueError(f"unknown shape {shape!r}")
        gprim.AddTranslateOp().Set(Gf.Vec3d(*(c + d for c, d in zip(part.center, shift, strict=True))))
        if shape == "cone":  # apex down, as hoppers and outlets narrow
            gprim.AddRotateXOp().Set(180.0)
        gprim.AddScaleOp().Set(Gf.Vec3f(*(s / 2 for s in part.size)))
        gprim.CreateDisplayColorAttr([Gf.Vec3f(*part.color)])
    _export_atomically(layer, path)


def _export_atomically(layer: object, path: Path) -> None:
    with atomic_path(path, suffix=path.suffix) as tmp:  # USD picks the format by the extension
        if not layer.Export(str(tmp)):  # type: ignore[attr-defined]
            raise OSError(f"cannot write {path}")
