"""JAX's compiled functions kept on disk, so that a second command compiles nothing it compiled before.

    >>> use_compilation_cache()          # once per process, before the first jitted call
    '/home/me/.cache/twin/jax'

The folder is ``$TWIN_JAX_CACHE``, else ``$XDG_CACHE_HOME/twin/jax`` (``~/.cache/twin/jax``);
``TWIN_JAX_CACHE=off`` turns the cache off, and a folder that cannot be made (a read-only home) leaves it off:
every function is compiled, as without a cache. A cached function is the same executable, so its results are
the same to the last bit. Calibration's likelihoods use it (``twin.calibrate.fit``): a first ``twin calibrate``
compiles a dozen functions for a few seconds, a later one loads them.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

MIN_COMPILE_SECONDS = 0.0  # every compiled function is kept: loading one costs milliseconds, compiling ~0.2 s


def cache_folder() -> str | None:
    """The folder compiled functions are kept in (None: ``TWIN_JAX_CACHE=off``)."""
    folder = os.environ.get("TWIN_JAX_CACHE")
    if folder == "off":
        return None
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        folder = str(Path(base) / "twin" / "jax")
    return folder


@functools.cache
def use_compilation_cache() -> str | None:
    """Keep this process's compiled JAX functions in ``cache_folder()``; the folder used (None: off)."""
    folder = cache_folder()
    if folder is None:
        return None
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
