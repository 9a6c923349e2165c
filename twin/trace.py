"""A batch's history up and down its genealogy tree, from an event log.

>>> t = trace(log, batch=6, replication=0)
>>> t.ancestors      # {6: [1, 2], 1: [0], 2: [0]}: parents of each batch above it
>>> t.descendants    # {6: []}: children of each batch below it
>>> t.history(0)     # rows of batch 0, in time order
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from twin.errors import InputError
from twin.eventlog import EventLog, genealogy


@dataclass(frozen=True)
class Trace:
    batch: int
    replication: int
    ancestors: dict[int, list[int]]  # batch -> its parents, for the batch and every ancestor
    descendants: dict[int, list[int]]  # batch -> its children, for the batch and every descendant
    rows: pd.DataFrame  # every row of the batches in the tree

    def history(self, batch: int) -> pd.DataFrame:
        """The rows of one batch of the tree, in time order."""
        return self.rows[self.rows["batch"] == batch]

    @property
    def related(self) -> list[int]:
        """Every batch of the tree: ancestors, the batch, descendants."""
        return sorted({*self.ancestors, *self.descendants})


def trace(log: EventLog, batch: int, replication: int = 0) -> Trace:
    """Trace ``batch`` of ``replication``; raises ``InputError`` if the log has no such batch."""
    table = log.table[log.table["replication"] == replication]
    if table.empty:
        reps = sorted(log.table["replication"].unique().tolist())
        raise InputError(f"no replication {replication} in this run (replications: {reps})")
    if not (table["batch"] == batch).any():
        raise InputError(f"no batch {batch} in replication {replication} (batches 0..{int(table['batch'].max())})")
    links = genealogy(table)
    parents = links.groupby("child")["parent"].apply(list).to_dict()
    children = links.groupby("parent")["child"].apply(list).to_dict()
    ancestors: dict[int, list[int]] = {}
    todo = [batch]
    while todo:
        current = todo.pop()
        ancestors[current] = sorted(parents.get(current, []))
        todo.extend(p for p in ancestors[current] if p not in ancestors)
    descendants: dict[int, list[int]] = {}
    todo = [batch]
    while todo:
        current = todo.pop()
        descendants[current] = sorted(children.get(current, []))
        todo.extend(c for c in descendants[current] if c not in descendants)
    members = {*ancestors, *descendants}
    rows = table[table["batch"].isin(members)].reset_index(drop=True)
    return Trace(batch, replication, ancestors, descendants, rows)
