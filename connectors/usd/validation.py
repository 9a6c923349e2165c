"""Check a scene with every validator that ``pxr.UsdValidation`` registers.

    >>> problems = validate_scene("line.usdc")    # [] when the stage has no errors
    >>> problems = validate_scene("line.usdc", include_warnings=True)

Each problem is one line: severity, validator, error name and message.
"""

from __future__ import annotations

from pathlib import Path


def validate_scene(path: str | Path, include_warnings: bool = False) -> list[str]:
    """Open ``path`` and run all registered validators; the errors (and warnings) found, one line each."""
    from pxr import Usd, UsdValidation

    from connectors.usd.schema import register_schema

    register_schema()
    stage = Usd.Stage.Open(str(path), Usd.Stage.LoadAll)
    registry = UsdValidation.ValidationRegistry()
    context = UsdValidation.ValidationContext(registry.GetOrLoadAllValidators())
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
