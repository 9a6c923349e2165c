"""Preloaded into the workers of a local Dask cluster: they leave Ctrl-C to the sweep.

Ctrl-C in a terminal sends SIGINT to every process of the terminal's foreground group, local
workers included. The sweep's own process handles it (it stops the cluster and says how far the
sweep got), so a worker ignores it instead of printing a traceback.
"""

from __future__ import annotations

import signal
from typing import Any


def dask_setup(worker: Any) -> None:
    """Dask calls this in each worker process as it starts."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
