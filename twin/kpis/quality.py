"""Quality and release KPIs of one replication: losses, hold-time violations, quarantine and QC.

Quarantine runs from a batch's ``quarantine`` row to its ``approve`` or QC ``reject`` row (the QC
time); its release lead time runs from the release of its earliest ancestor to its approval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.kpis.columns import EVENT, Columns
from twin.kpis.flow import _first, after, lookup


@dataclass(frozen=True)
class Quality:
    rejected_batches: int  # at stations and by QC, in the window
    lost_units: float  # scrapped from batches and in rejected batches, in the window
    hold_violations: int
    released_per_hour: float  # batches approved by QC
    release_lead_times: np.ndarray  # hours from release of the earliest ancestor, for batches approved in the window
    qc_times: np.ndarray  # hours from quarantine to approval, for batches approved in the window
    quarantine: float  # time-average batches in quarantine (waiting for or under QC)
    quarantine_max: int
    qc_rejected: int


def quality(cols: Columns, origin: tuple[np.ndarray, np.ndarray], start: float, end: float) -> Quality:
    """Quality and QC figures over the window (start, end]."""
    length = end - start
    window = (cols.time > start) & (cols.time <= end)
    rejected = window & (cols.event == EVENT["reject"])
    scrapped = window & (cols.event == EVENT["scrap"])
    approved = cols.event == EVENT["approve"]
    qc_rejected = (cols.event == EVENT["reject"]) & (cols.station < 0)
    entered = cols.event == EVENT["quarantine"]

    in_time = cols.time[entered]
    out_batch = np.concatenate((cols.batch[approved], cols.batch[qc_rejected]))
    out_time = lookup(*_first(out_batch, np.concatenate((cols.time[approved], cols.time[qc_rejected]))),
                      cols.batch[entered], np.inf)  # fmt: skip
    overlap = np.clip(np.minimum(out_time, end) - np.maximum(in_time, start), 0, None)
    events = np.concatenate((in_time, out_time[np.isfinite(out_time)]))
    steps = np.concatenate((np.ones(len(in_time)), -np.ones(int(np.isfinite(out_time).sum()))))
    order = np.lexsort((steps, events))  # leave before enter at equal times
    level = np.cumsum(steps[order])
    level = level[(events[order] > start) & (events[order] <= end)]

    approved_in_window = approved & window
    lead = after(cols.time[approved_in_window], lookup(*origin, cols.batch[approved_in_window], np.nan))
    qc_time = after(
        cols.time[approved_in_window], lookup(cols.batch[entered], in_time, cols.batch[approved_in_window], np.nan)
    )
    return Quality(
        rejected_batches=int(rejected.sum()),
        lost_units=float(np.nansum(cols.quantity[rejected]) + np.nansum(cols.quantity[scrapped])),
        hold_violations=int((window & (cols.event == EVENT["hold_violation"])).sum()),
        released_per_hour=float(approved_in_window.sum() / length),
        release_lead_times=lead[~np.isnan(lead)],
        qc_times=qc_time[~np.isnan(qc_time)],
        quarantine=float(overlap.sum() / length),
        quarantine_max=int(level.max()) if len(level) else 0,
        qc_rejected=int((qc_rejected & window).sum()),
    )
