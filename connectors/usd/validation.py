"""Check a scene with every validator that ``pxr.UsdValidation`` registers.

    >>> problems = validate_scene("line.usdc")    # [] when the stage has no errors
    >>> problems = validate_scene(stage, include_warnings=True)     # an open Usd.Stage (e.g. a variant selected)

Each problem is one line: severity, validator, error name and message. A scene with a
``scenario`` variant set is checked once per variant (the line prefixed with ``[variant]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def validate_scene(scene: str | Path | Any, include_warnings: bool = False) -> list[str]:
    """Run all registered validators on a scene file or stage; the errors (and warnings) found, one line each."""
    from pxr import Usd, UsdValidation

    from connectors.usd.schema import register_schema

    register_schema()
    stage = Usd.Stage.Open(str(scene), Usd.Stage.LoadAll) if isinstance(scene, (str, Path)) else scene
    registry = UsdValidation.ValidationRegistry()
    context = UsdValidation.ValidationContext(registry.GetOrLoadAllValidators())
    line = next(iter(stage.GetDefaultPrim().GetChildren()), None) if stage.GetDefaultPrim() else None
    variants = (
        line.GetVariantSets().GetVariantSet("scenario")
        if line and line.GetVariantSets().HasVariantSet("scenario")
        else None
    )
    if variants is None:
        return _problems(context, stage, include_warnings)
    problems = []
    with Usd.EditContext(stage, stage.GetSessionLayer()):  # selections go to the session layer, not the file
        for name in variants.GetVariantNames():
            variants.SetVariantSelection(name)
            problems += [f"[{name}] {p}" for p in _problems(context, stage, include_warnings)]
        variants.ClearVariantSelection()
    return problems


def _problems(context: Any, stage: Any, include_warnings: bool) -> list[str]:
    from pxr import UsdValidation

    problems = []
    for error in context.Validate(stage):
        kind = error.GetType()
        if kind == UsdValidation.ValidationErrorType.Error or (
            include_warnings and kind == UsdValidation.ValidationErrorType.Warn
        ):
            validator = error.GetValidator()
            name = validator.GetMetadata().name if validator else "?"
            problems.append(f"{kind.displayName}: {name}: {error.GetName()}: {error.GetMessage()}")
    return problems


def omniverse_validator_available() -> bool:
    """Whether NVIDIA's Omniverse asset validator (``omniverse-asset-validator`` on PyPI) is installed."""
    import importlib.util

    return importlib.util.find_spec("omni.asset_validator") is not None


def validate_omniverse(scene: str | Path) -> list[str]:
    """The Omniverse asset validator's failures and errors on a scene file (every variant), one line each.

    Warnings and infos are left out. Raises ``ModuleNotFoundError`` when the validator is not installed.
    """
    import logging

    logging.getLogger("omni.asset_validator").setLevel(logging.WARNING)  # it logs its plug-in start-up at INFO
    import omni.asset_validator as oav

    results = oav.ValidationEngine(variants=True).validate(str(scene))
    serious = {oav.IssueSeverity.FAILURE, oav.IssueSeverity.ERROR}
    return [
        f"{issue.severity.name}: {issue.rule.__name__ if issue.rule else '?'}: {issue.message}"
        + (f" (at {issue.at})" if issue.at else "")
        for issue in results.issues()
        if issue.severity in serious
    ]
