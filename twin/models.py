"""Specs by file path or by the name of a built-in plant model.

>>> load_spec("osd-tablet")                       # plant_models/osd_tablet.yaml
>>> load_spec("my_line.yaml", ["stations.press.units=2"])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import plant_models
from twin.errors import Problem, SpecError
from twin.spec.loader import load_spec as load_spec_file
from twin.spec.model import LineSpec


def resolve(name_or_path: str | Path) -> Path:
    """The file behind a spec argument: an existing path, or a built-in model's file."""
    path = Path(name_or_path)
    if path.exists():
        return path
    models = plant_models.available()
    if str(name_or_path) in models:
        return models[str(name_or_path)]
    hint = f"; built-in models: {', '.join(models)}" if models else ""
    raise SpecError([Problem(str(name_or_path), "", f"no such file or built-in model{hint}")])


def load_spec(name_or_path: str | Path, overrides: Sequence[str] = ()) -> LineSpec:
    """Load a spec by path or built-in model name, with ``--set`` style overrides."""
    return load_spec_file(resolve(name_or_path), overrides)
