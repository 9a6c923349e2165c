"""Which USD asset draws each station's equipment: the user's (from the spec's layout) or a procedural one.

    >>> choices = choose_assets(spec)                 # checks the user's assets exist and open
    >>> choices["coating"].size                        # metres: length along the flow, width, height
    >>> write_procedural_assets(choices.values(), Path("scene"))     # into scene/twin_assets/

A station's asset is ``extensions.layout.stations.NAME.asset``, else ``extensions.layout.assets[EQUIPMENT]``, else the
procedural asset of its equipment type (``connectors.usd.equipment``). Relative paths are taken from
the current directory. A user's asset must have a default prim; it is scaled to metres by its
``metersPerUnit``, turned z-up if it is y-up, and moved so that its footprint is centred on the
unit's place with its lowest point on the floor.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from connectors.usd.equipment import EquipmentKind, equipment_kind, write_asset
from twin.errors import InputError
from twin.spec.model import LineSpec

Vec3 = tuple[float, float, float]

ASSET_FOLDER = "twin_assets"


@dataclass(frozen=True)
class AssetChoice:
    """The asset of one station's units and how to place it on a unit."""

    path: Path  # the user's file, or where the procedural asset is written (relative to the scene's folder)
    procedural: EquipmentKind | None
    size: Vec3
    scale: float = 1.0
    rotate_x: float = 0.0
    offset: Vec3 = (0.0, 0.0, 0.0)

    def reference(self, scene_dir: Path) -> str:
        """The asset path as the scene refers to it: relative to the scene's folder where possible."""
        if self.procedural is not None:
            return f"./{ASSET_FOLDER}/{self.procedural.file_name}"
        try:
            rel = os.path.relpath(self.path.resolve(), scene_dir.resolve())
        except ValueError:  # another drive
            return self.path.resolve().as_posix()
        return rel.replace(os.sep, "/") if rel.startswith("..") else "./" + rel.replace(os.sep, "/")


def choose_assets(spec: LineSpec) -> dict[str, AssetChoice]:
    """The asset of every station; raises ``InputError`` for a user asset that is missing or unusable."""
    layout = spec.extension("layout")
    choices: dict[str, AssetChoice] = {}
    checked: dict[Path, AssetChoice] = {}
    for station in spec.stations:
        placed = layout.stations.get(station.name) if layout else None
        field, user_path = None, None
        if placed is not None and placed.asset:
            field, user_path = f"extensions.layout.stations.{station.name}.asset", placed.asset
        elif layout and station.equipment and station.equipment in layout.assets:
            field, user_path = f"extensions.layout.assets.{station.equipment}", layout.assets[station.equipment]
        if user_path is None:
            kind = equipment_kind(station.equipment)
            choices[station.name] = AssetChoice(Path(ASSET_FOLDER) / kind.file_name, kind, kind.size)
            continue
        path = Path(user_path).expanduser()
        if path not in checked:
            checked[path] = _user_asset(path, field or "")
        choices[station.name] = checked[path]
    return choices


def _user_asset(path: Path, field: str) -> AssetChoice:
    from pxr import Gf, Sdf, Usd, UsdGeom

    if not path.is_file():
        raise InputError(f"{field}: USD asset {str(path)!r} does not exist")
    try:
        layer = Sdf.Layer.FindOrOpen(str(path))
    except Exception as err:  # pxr raises Tf.ErrorException with the parser's message
        raise InputError(f"{field}: {str(path)!r} is not a readable USD file ({_first_line(err)})") from None
    if layer is None:
        raise InputError(f"{field}: {str(path)!r} is not a readable USD file")
    stage = Usd.Stage.Open(layer)
    root = stage.GetDefaultPrim()
    if not root:
        raise InputError(f"{field}: {str(path)!r} has no default prim, so the scene cannot refer to it")
    scale = UsdGeom.GetStageMetersPerUnit(stage)
    rotate_x = 90.0 if UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y else 0.0
    cache = UsdGeom.BBoxCache(Usd.TimeCode.Default(), [UsdGeom.Tokens.default_, UsdGeom.Tokens.render])
    box = cache.ComputeUntransformedBound(root).ComputeAlignedRange()
    if box.IsEmpty():
        raise InputError(f"{field}: {str(path)!r} has no geometry under its default prim {root.GetPath()}")
    to_metres = Gf.Matrix4d().SetScale(scale) * Gf.Matrix4d().SetRotate(Gf.Rotation(Gf.Vec3d(1, 0, 0), rotate_x))
    corners = [to_metres.Transform(box.GetCorner(i)) for i in range(8)]
    low = [min(c[i] for c in corners) for i in range(3)]
    high = [max(c[i] for c in corners) for i in range(3)]
    size = (high[0] - low[0], high[1] - low[1], high[2] - low[2])
    offset = (-(low[0] + high[0]) / 2, -(low[1] + high[1]) / 2, -low[2])
    return AssetChoice(path, None, size, scale, rotate_x, offset)


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else err.__class__.__name__


def write_procedural_assets(choices: Iterable[AssetChoice], scene_dir: Path) -> list[Path]:
    """Write the procedural assets the scene uses (and the batch container) beside the scene."""
    from connectors.usd.equipment import BATCH

    kinds = {c.procedural.name: c.procedural for c in choices if c.procedural is not None}
    kinds[BATCH.name] = BATCH
    written = []
    for kind in kinds.values():
        target = scene_dir / ASSET_FOLDER / kind.file_name
        write_asset(kind, target)
        written.append(target)
    return written
