"""The log store: one DuckDB file holding every dataset of a project (see ``_core``)."""

from rmlite.data.store._core import (
    DEFAULT_DB,
    CheckReport,
    IngestReport,
    LogStore,
    default_path,
    duckdb_parquet_load,
    sql,
)

__all__ = [
    "DEFAULT_DB",
    "CheckReport",
    "IngestReport",
    "LogStore",
    "default_path",
    "duckdb_parquet_load",
    "sql",
]
