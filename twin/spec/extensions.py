"""Plug-in settings of a spec: the ``extensions:`` map, validated by each plug-in, outside ``spec_hash``.

    extensions:
      layout: {aisle: 3, stations: {coating: {position: [42, 0]}}}   # connectors.usd (3-D scenes)
      optimize: {vary: [{path: stations.*.buffer, range: 0..10}]}    # optimizers (twin optimize)

Each key names a plug-in registered in the ``twin.spec_extensions`` entry-point group, whose value is
a pydantic model (``module:Class``) that validates the block; the core knows no plug-in by name and
loads one only when a spec uses its block. The model is validated with the spec's validation
context (its station, product and calendar names), and its problems are reported at
``extensions.NAME.FIELD`` with the file's line like any other field. A block does not change what
the engine simulates, so ``spec_hash`` leaves the whole map out: moving a 3-D asset or narrowing a
search space keeps the run store's key.

A top-level block named as a plug-in (``layout:``, ``optimize:``, the spec format before
extensions) is read as ``extensions.NAME`` with a one-line deprecation warning.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

GROUP = "twin.spec_extensions"


class ExtensionDeprecation(UserWarning):
    """A spec uses an old form of a plug-in block; shown to users as one line."""


@cache
def installed() -> dict[str, Any]:
    """The registered plug-in blocks: name -> entry point (reads package metadata, imports nothing)."""
    from importlib.metadata import entry_points

    return {e.name: e for e in entry_points(group=GROUP)}


def model_of(name: str) -> type[BaseModel]:
    """The pydantic model that validates the block ``name``; ``KeyError`` if no plug-in registers it."""
    return _load(name)


@cache
def _load(name: str) -> type[BaseModel]:
    model = installed()[name].load()
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"entry point {GROUP}:{name} is not a pydantic model")
    return model


def validate_blocks(blocks: Mapping[str, Any], context: dict[str, Any] | None) -> tuple[dict[str, Any], list]:
    """Validate each block with its plug-in: (validated models by name, [(location, message), ...]).

    A block set to None (an override that removes it) is dropped. Locations are relative to
    ``extensions`` (``("layout", "stations")``).
    """
    from twin.spec.loader import clean_loc, pydantic_message

    known = installed()
    out: dict[str, Any] = {}
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for name, block in blocks.items():
        if block is None:
            continue
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            listing = ", ".join(sorted(known)) or "none installed"
            problems.append(((name,), f"no plug-in reads an extension {name!r}{hint}; extensions: {listing}"))
            continue
        try:
            model = model_of(name)
        except Exception as err:  # a broken plug-in is the user's installation problem, said in one line
            problems.append(((name,), f"the plug-in cannot be loaded ({err.__class__.__name__}: {err})"))
            continue
        try:
            out[name] = model.model_validate(block, context=context)
        except ValidationError as err:
            for error in err.errors(include_url=False):
                problems.append(((name, *clean_loc(error["loc"])), pydantic_message(error, model)))
    return out, problems


def lift_deprecated(
    data: dict[str, Any], fields: Mapping[str, Any], source: str | None = None, warn: bool = True
) -> dict[str, Any]:
    """``data`` with top-level plug-in blocks (not spec fields) moved under ``extensions``.

    Each block moved is an ``ExtensionDeprecation`` warning (unless ``warn`` is false). A block given
    both ways is left in place (validation then reports it as an unknown field).
    """
    old = [k for k in data if isinstance(k, str) and k not in fields and k in installed()]
    extensions = data.get("extensions")
    if not old or not (extensions is None or isinstance(extensions, dict)):
        return data
    moved = [k for k in old if k not in (extensions or {})]
    if not moved:
        return data
    out = {k: v for k, v in data.items() if k not in moved}
    out["extensions"] = {**(extensions or {}), **{k: data[k] for k in moved}}
    for name in moved if warn else ():
        warnings.warn(
            f"{source + ': ' if source else ''}a top-level '{name}:' block is deprecated: "
            f"write it as 'extensions: {{{name}: ...}}'",
            ExtensionDeprecation,
            stacklevel=3,
        )
    return out


def with_extension_schemas(schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of ``LineSpec`` with each installed plug-in's block under ``extensions`` (for editors)."""
    defs = schema.setdefault("$defs", {})
    blocks: dict[str, Any] = {}
    for name in sorted(installed()):
        try:
            sub = model_of(name).model_json_schema(ref_template="#/$defs/{model}")
        except Exception:  # a broken plug-in: its block stays free-form in the schema
            continue
        for key, value in sub.pop("$defs", {}).items():
            if key in defs and defs[key] != value:
                raise ValueError(f"plug-in {name!r} defines a schema {key!r} that the spec already has")
            defs[key] = value
        blocks[name] = sub
    extensions = schema["properties"]["extensions"]
    extensions.pop("patternProperties", None)
    extensions["properties"] = blocks
    extensions["additionalProperties"] = False
    return schema
