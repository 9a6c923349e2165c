"""A run folder packed into bytes, so that a worker can do the writing work and a client only store it.

    >>> packed = pack_run(result)          # on a Dask worker: Parquet, YAML and JSON encoded there
    >>> store.save(packed)                 # on the client: bytes to files, a catalog row, one rename

The files are those ``twin.runfolder.write_run`` writes, byte for byte: it writes them.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin.experiment import RunResult
from twin.runfolder import KPIS_FILE, RUN_FILE, write_run


@dataclass(frozen=True)
class PackedRun:
    """The files of a run folder (name -> bytes)."""

    files: dict[str, bytes]

    @property
    def info(self) -> dict[str, Any]:
        """The run's ``run.json``."""
        return json.loads(self.files[RUN_FILE])

    @property
    def summary(self) -> dict[str, Any]:
        """The run's KPI summary (``kpis.json``)."""
        return json.loads(self.files[KPIS_FILE])

    def write(self, target: Path) -> None:
        """Write the files into the folder ``target`` (which must exist)."""
        for name, data in self.files.items():
            (target / name).write_bytes(data)


def pack_run(result: RunResult) -> PackedRun:
    """Encode a run as its run-folder files."""
    with tempfile.TemporaryDirectory(prefix="twin-pack-") as tmp:
        folder = write_run(result, Path(tmp) / "run")
        return PackedRun({path.name: path.read_bytes() for path in sorted(folder.iterdir())})
