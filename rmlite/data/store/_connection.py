"""Opening the store's DuckDB file: the SQL files, the lock-retrying connect, raw SQL and versions."""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from typing import Any, Protocol

import duckdb
import polars as pl

from rmlite._typing import PathLike
from rmlite.data.store import _layout
from rmlite.exceptions import DatasetNotFoundError, RmliteError, StoreLockedError

DEFAULT_DB = "rmlite.duckdb"
"""File name of the store when neither a path nor ``RMLITE_DB`` is given."""


def default_path() -> str:
    """The store path: ``$RMLITE_DB`` if set, else ``./rmlite.duckdb``."""
    return os.environ.get("RMLITE_DB") or DEFAULT_DB


@functools.cache
def sql(name: str) -> str:
    """The text of ``sql/<name>.sql``, shipped as the package ``rmlite.sql``."""
    return resources.files("rmlite.sql").joinpath(f"{name}.sql").read_text(encoding="utf-8")


def _run(
    con: duckdb.DuckDBPyConnection,
    query: str,
    params: Mapping[str, Any] | Sequence[Any] | None = None,
) -> list[tuple[Any, ...]]:
    """Execute and fetch everything: in DuckDB 2 an unfinished result blocks the connection."""
    return (
        con.execute(query, params).fetchall()
        if params is not None
        else con.execute(query).fetchall()
    )


class Store(Protocol):
    """What the table families need of a :class:`LogStore`: its path and its connections."""

    path: str
    lock_timeout: float
    _memory: duckdb.DuckDBPyConnection | None

    def connect(
        self, write: bool = False
    ) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]: ...


@contextlib.contextmanager
def connect(store: Store, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """The work of :meth:`LogStore.connect`."""
    if store._memory is not None:
        yield store._memory
        return
    if not write and not os.path.exists(store.path):
        raise RmliteError(
            f"{store.path}: no store here yet. Ingest a log first (rmlite ingest ...) or "
            f"pass --db with the path of an existing store."
        )
    deadline = time.monotonic() + store.lock_timeout
    delay = 0.02
    while True:
        try:
            if write and not os.path.exists(store.path):
                # The storage version is the file's, fixed when it is created.
                con = duckdb.connect(
                    store.path, config={"storage_compatibility_version": _layout.STORAGE_VERSION}
                )
            else:
                con = duckdb.connect(store.path, read_only=not write)
            break
        except duckdb.IOException as exc:  # held by another process
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise StoreLockedError(
                    f"{store.path}: cannot open the store ({str(exc).splitlines()[0]}). "
                    f"Another process is writing it; retry when it has finished."
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    if not write and _layout.needs_upgrade(con):
        # A store written by an older rmlite: upgrade it once (renamed columns, views)
        # on a brief write open, so every read finds today's names.
        con.close()
        with connect(store, write=True):
            pass
        with connect(store, write=False) as con:
            yield con
        return
    try:
        # Bookkeeping times are written in UTC; TIMESTAMPTZ values read back in UTC too.
        _run(con, "SET TimeZone = 'UTC'")
        if write:
            _run(con, sql("schema"))
            _layout.upgrade(con)
        yield con
    finally:
        con.close()


def has_tables(con: duckdb.DuckDBPyConnection, table: str = "datasets") -> bool:
    rows = _run(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table])
    return bool(rows[0][0])


def count(con: duckdb.DuckDBPyConnection, dataset: str) -> int:
    return int(_run(con, "SELECT count(*) FROM transitions WHERE dataset = ?", [dataset])[0][0])


def require(store: Store, con: duckdb.DuckDBPyConnection, dataset: str) -> None:
    if has_tables(con) and _run(con, sql("dataset_info"), {"dataset": dataset}):
        return
    names = (
        [r[0] for r in _run(con, "SELECT dataset FROM datasets ORDER BY dataset")]
        if has_tables(con)
        else []
    )
    hint = _did_you_mean(dataset, names)
    raise DatasetNotFoundError(
        f"{store.path}: no dataset {dataset!r}{hint}. The store holds: "
        f"{', '.join(map(repr, names)) or 'nothing yet'}."
    )


def _did_you_mean(name: str, options: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def run_sql(
    store: Store,
    query: str,
    params: Mapping[str, Any] | Sequence[Any] | None = None,
    *,
    write: bool = False,
) -> pl.DataFrame:
    """The work of :meth:`LogStore.sql`."""
    with store.connect(write=write) as con:
        try:
            rel = con.sql(query, params=params) if params else con.sql(query)
        except duckdb.Error as exc:
            raise RmliteError(f"SQL error: {str(exc).strip()}") from exc
        if rel is None:
            return pl.DataFrame()
        try:
            return rel.pl()
        except duckdb.InvalidInputException:  # a statement with no result set
            return pl.DataFrame()


# The id that grows with each write of a table: readers compare them to see changes.
VERSION_IDS = (
    ("ingests", "ingest_id"),
    ("runs", "run_id"),
    ("relabels", "relabel_id"),
    ("monitor_passes", "pass_id"),
)


def version(store: Store) -> dict[str, int]:
    """The work of :meth:`LogStore.version`."""
    with store.connect() as con:
        out = {}
        for table, column in VERSION_IDS:
            if has_tables(con, table):
                # Identifiers come from the constant above; nothing is user input.
                row = _run(con, f"SELECT coalesce(max({column}), 0) FROM {table}")
                out[column] = int(row[0][0])
            else:
                out[column] = 0
        return out


def duckdb_parquet_load(db_path: PathLike, parquet_path: PathLike, table: str = "raw") -> int:
    """DuckDB's own load of a Parquet file (``CREATE TABLE AS SELECT * FROM read_parquet``).

    The baseline that ``rmlite bench data`` measures ingest against: no validation, no
    de-duplication, no key. Returns the number of rows loaded.
    """
    con = duckdb.connect(os.fspath(db_path))
    try:
        con.execute(
            f'CREATE TABLE "{table}" AS SELECT * FROM read_parquet($path)',
            {"path": os.fspath(parquet_path)},
        ).fetchall()
        return int(con.sql(f'SELECT count(*) FROM "{table}"').fetchall()[0][0])
    finally:
        con.close()
