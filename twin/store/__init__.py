"""The run store: every run in one folder, a catalog queryable with SQL, safe under concurrency.

    >>> from twin.store import RunStore
    >>> store = RunStore()                            # $TWIN_STORE, or ./twin-runs
    >>> run_id = store.save(result)
    >>> store.list(where="line = 'osd-tablet' AND oee > 0.4")[["run_id", "scenario", "oee"]]

See ``twin.store.store`` for the layout and the guarantees, ``twin.store.catalog`` for the columns.
"""

from twin.store.catalog import COLUMNS, KPI_COLUMNS
from twin.store.store import SCHEMA_VERSION, RunStore, StoreError, default_store_path, existing_store, point_key

__all__ = [
    "COLUMNS",
    "KPI_COLUMNS",
    "SCHEMA_VERSION",
    "RunStore",
    "StoreError",
    "default_store_path",
    "existing_store",
    "point_key",
]
