"""Thin helpers over ``pxr.Sdf`` to author prims, attributes and time samples quickly.

    >>> layer = Sdf.Layer.CreateAnonymous(".usdc")
    >>> prim = define(layer, "/World", "Xform", kind="group")
    >>> attr = attribute(prim, "twin:state", Sdf.ValueTypeNames.Token)
    >>> author_held(layer, attr.path, codes, values)            # tokens, ints: no interpolation
    >>> author_interpolated(layer, path, codes, k, values)      # colours, positions: linear between samples

Everything goes through the layer (no ``Usd.Stage``), inside the caller's ``Sdf.ChangeBlock``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pxr import Sdf


def define(
    layer: Sdf.Layer,
    path: Sdf.Path | str,
    type_name: str,
    kind: str | None = None,
    api_schemas: Sequence[str] = (),
    specifier: Any = Sdf.SpecifierDef,
) -> Sdf.PrimSpec:
    """A prim spec at ``path`` (its parents must exist) with a type, a kind and applied API schemas."""
    path = Sdf.Path(path) if isinstance(path, str) else path
    spec = layer.GetPrimAtPath(path)
    if spec is None:
        parent = layer.GetPrimAtPath(path.GetParentPath()) if not path.GetParentPath().IsAbsoluteRootPath() else None
        owner = parent if parent is not None else layer
        spec = Sdf.PrimSpec(owner, path.name, specifier, type_name)
    if kind:
        spec.kind = kind
    if api_schemas:
        spec.SetInfo("apiSchemas", Sdf.TokenListOp.Create(prependedItems=list(api_schemas)))
    return spec


def attribute(
    prim: Sdf.PrimSpec,
    name: str,
    type_name: Sdf.ValueTypeName,
    default: Any = None,
    uniform: bool = False,
    custom: bool = False,
) -> Sdf.AttributeSpec:
    """An attribute spec with an optional default value."""
    variability = Sdf.VariabilityUniform if uniform else Sdf.VariabilityVarying
    spec = Sdf.AttributeSpec(prim, name, type_name, variability, custom)
    if default is not None:
        spec.default = default
    return spec


def transform(prim: Sdf.PrimSpec, translate: Sequence[float] | None = None, rotate_z: float | None = None,
              scale: Sequence[float] | None = None, rotate_x: float | None = None) -> None:  # fmt: skip
    """Static xform ops in the order translate, rotateZ, rotateX, scale (only those given)."""
    ops = []
    if translate is not None:
        attribute(prim, "xformOp:translate", Sdf.ValueTypeNames.Double3, tuple(float(v) for v in translate))
        ops.append("xformOp:translate")
    if rotate_z:
        attribute(prim, "xformOp:rotateZ", Sdf.ValueTypeNames.Float, float(rotate_z))
        ops.append("xformOp:rotateZ")
    if rotate_x:
        attribute(prim, "xformOp:rotateX", Sdf.ValueTypeNames.Float, float(rotate_x))
        ops.append("xformOp:rotateX")
    if scale is not None:
        attribute(prim, "xformOp:scale", Sdf.ValueTypeNames.Float3, tuple(float(v) for v in scale))
        ops.append("xformOp:scale")
    attribute(prim, "xformOpOrder", Sdf.ValueTypeNames.TokenArray, ops, uniform=True)


def author_held(layer: Sdf.Layer, path: Sdf.Path, codes: np.ndarray, values: Sequence[Any],
                convert: Callable[[Any], Any] | None = None) -> int:  # fmt: skip
    """One sample per change (tokens, integers: USD holds them until the next sample); repeats are skipped."""
    set_sample = layer.SetTimeSample
    count, previous = 0, object()
    for code, value in zip(codes.tolist(), values, strict=True):
        if value != previous:
            set_sample(path, code, convert(value) if convert else value)
            count += 1
            previous = value
    return count


def author_interpolated(layer: Sdf.Layer, path: Sdf.Path, codes_of: Callable[[np.ndarray], np.ndarray],
                        k: np.ndarray, values: Sequence[Any]) -> int:  # fmt: skip
    """Samples of a linearly interpolated attribute that hold exactly between changes.

    A change at grid index k[i] gets a sample at k[i] and, unless the previous change is at
    k[i] - 1, one at k[i] - 1 with the previous value, so that values blend only within one step.
    """
    set_sample = layer.SetTimeSample
    before = k - 1
    codes, codes_before = codes_of(k).tolist(), codes_of(before).tolist()
    count = 0
    for i, value in enumerate(values):
        if i and before[i] > k[i - 1]:
            set_sample(path, codes_before[i], values[i - 1])
            count += 1
        set_sample(path, codes[i], value)
        count += 1
    return count
