"""Shared helpers: compact line specs and the confidence-interval oracle of the reference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

from twin.spec.model import LineSpec
from twin.stats import interval

ROOT = Path(__file__).resolve().parents[1]

# Hypothesis draws the same examples on every run (CI included), so that a run's verdict depends on the code, not on
# the luck of the draw; TWIN_HYPOTHESIS=explore draws new ones each run, to look for cases no run has tried yet.
settings.register_profile("fixed", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("TWIN_HYPOTHESIS") == "explore" else "fixed")

# The suite's JAX kernels evaluate a few lanes each: compiled without LLVM's optimisations and XLA's CPU fusion
# emitters (kernel.compiler_options) they compile in less CPU time (the same results, to the last bit on a flow line,
# tests/test_optimizer.py checks it; on the tablet line some sums differ in their last bit). Set here, so that the
# `twin` processes the tests start inherit it; TWIN_KERNEL_COMPILE=default tests the optimised kernels.
os.environ.setdefault("TWIN_KERNEL_COMPILE", "fast")


@pytest.fixture
def optimised_kernels(monkeypatch: pytest.MonkeyPatch) -> Any:
    """This test's JAX kernels compiled with LLVM's optimisations (``TWIN_KERNEL_COMPILE=default``, also for the
    ``twin`` processes it starts): for a test whose kernels run over many lanes (a search, an exhaustive one), where
    running 3-4x slower costs more than the cheaper compile saves. The kernels are compiled afresh on both sides
    (the setting is read when a kernel is compiled)."""
    from optimizers import kernel

    monkeypatch.setenv("TWIN_KERNEL_COMPILE", "default")
    kernel.compiled_kernel.cache_clear()
    kernel.gradient_kernel.cache_clear()
    yield
    kernel.compiled_kernel.cache_clear()
    kernel.gradient_kernel.cache_clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the suite for its parallel run (``make test``: pytest-xdist, ``--dist loadfile``: each file's tests run
    in order on one worker, which builds the file's shared fixtures once). Files with a test marked ``slow`` go
    first, so the workers end together rather than one running a long file alone at the end; the order within a
    file stays as written."""
    slow_files = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow_files)


def serial_line(
    means: list[float],
    buffers: list[int | None] | None = None,
    dist: str = "exponential",
    horizon: float = 1000.0,
    warmup: float = 100.0,
    units: list[int] | None = None,
    **extra: Any,
) -> LineSpec:
    """A saturated serial line; ``buffers[j]`` is the buffer in front of station j (None = unlimited)."""
    buffers = buffers or [None] * len(means)
    units = units or [1] * len(means)
    stations = []
    for j, (mean, buf, c) in enumerate(zip(means, buffers, units, strict=True)):
        pt = {"dist": "exponential", "mean": mean} if dist == "exponential" else {"dist": "constant", "value": mean}
        station: dict[str, Any] = {"name": f"s{j + 1}", "units": c, "process_time": pt}
        if buf is not None:
            station["buffer"] = buf
        stations.append(station)
    return LineSpec.from_dict(
        {"name": "test-line", "horizon": horizon, "warmup": warmup, "stations": stations, **extra}
    )


def assert_exact_in_ci(samples: Any, exact: float, max_relative_half_width: float, confidence: float = 0.99) -> None:
    """The reference's rule: ``exact`` lies inside the 99% CI, and the CI is narrow enough to mean something."""
    ci = interval(np.asarray(samples, dtype=float), confidence)
    assert ci.contains(exact), (
        f"exact {exact} outside {confidence:.0%} CI [{ci.low:.6g}, {ci.high:.6g}] (mean {ci.mean:.6g})"
    )
    assert ci.half_width <= max_relative_half_width * abs(exact), (
        f"CI half-width {ci.half_width:.4g} too wide to test {exact} (limit {max_relative_half_width:.1%})"
    )


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real ``twin`` console script."""
    exe = Path(sys.executable).parent / "twin"
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout, env=env)


@pytest.fixture
def two_station_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "two.yaml"
    path.write_text(
        """\
name: two-station
time_unit: h
horizon: 1000 h
warmup: 100 h
products:
  - {name: A, batch_size: 300000}
  - {name: B, batch_size: 200000}
release:
  mode: plan
  repeat: true
  plan: [{product: A, batches: 3}, {product: B, batches: 2}]
stations:
  - name: m1
    process_time: {dist: exponential, mean: 1 h}
    failures: {mtbf: {dist: exponential, mean: 100 h}, mttr: {dist: exponential, mean: 10 h}, basis: operating}
    setup: {A->B: 2 h, B->A: 90 min}
  - name: m2
    process_time: {A: {dist: exponential, mean: 1 h}, B: 45 min}
    buffer: 2
""",
        encoding="utf-8",
    )
    return path
