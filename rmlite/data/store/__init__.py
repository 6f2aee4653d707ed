"""The log store: one DuckDB file holding every dataset of a project.

This is the only package that imports duckdb; every query it runs lives in ``sql/``. The
store is a normal DuckDB file, so users can open it with DuckDB directly. :class:`LogStore`
is its one face; the work of each table family sits in a private module behind it:
``_connection`` (opening the file, raw SQL, versions), ``_transitions`` (ingest, reads,
checks, features), ``_runs``, ``_monitor``, ``_relabels`` and ``_preferences``.

Connections are opened per operation and closed right after: DuckDB lets one process
write a file at a time, and a store object that held its file open would lock every other
process (the dashboard, a monitor, a second ingest) out for as long as it lived.

Examples
--------
>>> import polars as pl, tempfile, os
>>> from rmlite import LogStore
>>> log = pl.DataFrame({"episode_id": [0, 0], "step": [0, 1], "obs": [[0.0], [1.0]],
...                     "action": [[1.0], [0.0]], "reward": [0.5, 1.0],
...                     "terminated": [False, True]})
>>> store = LogStore(os.path.join(tempfile.mkdtemp(), "demo.duckdb"))
>>> store.ingest(log, dataset="demo").rows_added
2
>>> store.ingest(log, dataset="demo").rows_duplicate   # idempotent
2
>>> store.sql("SELECT count(*) AS n FROM transitions")["n"][0]
2
"""

from rmlite.data.store._connection import DEFAULT_DB, default_path, duckdb_parquet_load, sql
from rmlite.data.store._core import LogStore
from rmlite.data.store._reports import CheckReport, IngestReport

__all__ = [
    "DEFAULT_DB",
    "CheckReport",
    "IngestReport",
    "LogStore",
    "default_path",
    "duckdb_parquet_load",
    "sql",
]
