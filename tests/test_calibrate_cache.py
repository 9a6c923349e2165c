"""Calibration's compiled likelihoods are kept on disk (twin.jaxcache): a second process loads what the first one
compiled and fits the same numbers to the last bit; ``TWIN_JAX_CACHE=off`` keeps nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from twin.jaxcache import cache_folder, use_compilation_cache

ROOT = Path(__file__).resolve().parents[1]
HANG = 300  # seconds: a cap only a hang reaches

FIT = """
import json
import numpy as np
from twin.calibrate.fit import Durations, fit_family
rng = np.random.default_rng(5)
values = rng.gamma(4.0, 0.5, 120)
data = Durations(values, np.arange(120) % 17 == 0)  # a few censored: the survival function is compiled too
fits = {f: fit_family(data, f) for f in ("gamma",)}
print(json.dumps({f: [fit.loglik, {k: e.as_dict() for k, e in fit.params.items()}] for f, fit in fits.items()}))
"""


def fit_in_a_new_process(cache: str) -> dict:
    env = {**os.environ, "TWIN_JAX_CACHE": cache, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", FIT], capture_output=True, text=True, env=env, timeout=HANG)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_second_process_loads_the_compiled_fits_and_gets_the_same_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    folder = tmp_path / "cache"
    first = fit_in_a_new_process(str(folder))
    kept = sorted(p.name for p in folder.iterdir())
    assert kept, "nothing compiled was kept"
    second = fit_in_a_new_process(str(folder))
    assert second == first  # the same executables: the same numbers, bit for bit
    assert sorted(p.name for p in folder.iterdir()) == kept  # found there, not compiled and written again
    assert not (tmp_path / "xdg").exists()  # nothing kept anywhere else


def test_where_the_cache_is_and_that_it_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.delenv("TWIN_JAX_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder() == str(tmp_path / "xdg" / "twin" / "jax")
    monkeypatch.setenv("TWIN_JAX_CACHE", "off")
    assert cache_folder() is None and use_compilation_cache.__wrapped__() is None  # nothing set, nothing made
    assert not (tmp_path / "xdg").exists()
    monkeypatch.setenv("TWIN_JAX_CACHE", str(tmp_path / "file"))
    (tmp_path / "file").write_text("not a folder")
    assert use_compilation_cache.__wrapped__() is None  # a folder that cannot be made: no cache, no error
