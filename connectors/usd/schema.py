"""The ``twin:`` applied API schemas (TwinUnitAPI, TwinBufferAPI, TwinBatchAPI), registered with USD.

    >>> register_schema()                 # before the first stage is opened in this process
    True

They are codeless schemas: ``schema/plugInfo.json`` and ``schema/generatedSchema.usda`` describe
them, so USD knows their attributes, types and documentation without compiled code. Other USD
tools (usdview, Omniverse) see them when ``PXR_PLUGINPATH_NAME`` includes ``SCHEMA_DIR``. USD reads
schemas once per process, when the schema registry is first used; registering later has no effect
(and the scenes still open: an unknown applied schema is only a name to USD).
"""

from __future__ import annotations

from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
API_SCHEMAS = ("TwinUnitAPI", "TwinBufferAPI", "TwinBatchAPI")


def register_schema() -> bool:
    """Register the twin schemas with USD's plug-in registry; True if USD knows them now."""
    from pxr import Plug, Usd

    Plug.Registry().RegisterPlugins(str(SCHEMA_DIR))
    registry = Usd.SchemaRegistry()
    return all(registry.FindAppliedAPIPrimDefinition(name) is not None for name in API_SCHEMAS)
