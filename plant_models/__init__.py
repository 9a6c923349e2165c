"""Built-in pharmaceutical lines, each a YAML spec whose numbers carry their sources.

>>> available()           # {"osd-tablet": Path(...), "sterile-fill-finish": Path(...)}
"""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).parent


def available() -> dict[str, Path]:
    """Model name (file stem with dashes) -> spec file."""
    return {p.stem.replace("_", "-"): p for p in sorted(MODELS_DIR.glob("*.yaml"))}
