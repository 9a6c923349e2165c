"""Sweeps: many what-if points of one line, run on Dask (or in this process) into a run store.

    >>> from twin.sweep import grid_points, plan_sweep, SweepRunner, sweep_table
    >>> sweep = plan_sweep(spec, grid_points(["stations.press.units=1,2,3", "stations.m2.buffer=0..8"]),
    ...                    replications=10, seed=1)          # every point validated before anything runs
    >>> SweepRunner(sweep, RunStore(), workers=2).run()     # or scheduler="tcp://host:8786"; workers=0: in-process
    >>> sweep_table(sweep, RunStore(), rank="throughput_per_hour").head()

Modules: ``points`` (grid axes, scenario CSV), ``plan`` (validation, point keys, sweep id),
``tasks`` (what workers run), ``backends`` (in-process, local and remote Dask), ``runner``.
"""

from twin.sweep.backends import open_backend
from twin.sweep.plan import PlannedPoint, Sweep, plan_sweep
from twin.sweep.points import Point, combine, csv_points, grid_points
from twin.sweep.runner import SweepRunner, rank_order, sweep_table

__all__ = [
    "PlannedPoint",
    "Point",
    "Sweep",
    "SweepRunner",
    "combine",
    "csv_points",
    "grid_points",
    "open_backend",
    "plan_sweep",
    "rank_order",
    "sweep_table",
]
