"""Opening the store's DuckDB file: the SQL files, the lock-retrying connect, raw SQL and versions."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from typing import Any, Protocol

import duckdb
import polars as pl

from rmlite._typing import PathLike
from rmlite.data import schema as S
from rmlite.data.store import _layout
from rmlite.exceptions import (
    DatasetNotFoundError,
    RmliteError,
    StoreFullError,
    StoreLockedError,
    StoreOpenError,
)

DEFAULT_DB = "rmlite.duckdb"
"""File name of the store when neither a path nor ``RMLITE_DB`` is given."""


def default_path() -> str:
    """The store path: ``$RMLITE_DB`` if set, else ``./rmlite.duckdb``."""
    return os.environ.get("RMLITE_DB") or DEFAULT_DB


@functools.cache
def sql(name: str) -> str:
    """The text of ``sql/<name>.sql``, shipped as the package ``rmlite.sql``."""
    return resources.files("rmlite.sql").joinpath(f"{name}.sql").read_text(encoding="utf-8")


_ALL_COLUMNS = (
    "SELECT episode_id, step, obs, action, reward, next_obs, terminated, truncated, "
    '"timestamp", extra'
)
"""The column list the transition reads (``read_transitions.sql`` and its kin) open with."""


def select_columns(query: str, columns: Sequence[str]) -> str:
    """A transition read narrowed to ``columns`` (episode and step always kept first).

    Column names come from the schema module only: anything else is refused here, so
    nothing a caller passes is formatted into the SQL.
    """
    unknown = [c for c in columns if c not in S.COLUMNS]
    if unknown:
        raise RmliteError(f"unknown column(s) {unknown}; transitions have {list(S.COLUMNS)}.")
    if _ALL_COLUMNS not in query:
        raise ValueError("select_columns: the query does not read every transition column.")
    keep = list(dict.fromkeys([S.EPISODE, S.STEP, *columns]))
    return query.replace(_ALL_COLUMNS, "SELECT " + ", ".join(f'"{c}"' for c in keep))


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


READ_MEMORY_LIMIT = "512MB"
"""DuckDB's memory limit while one pass reads a whole dataset (streamed features, the
fingerprint): such a scan needs a few row groups at a time, and without a limit DuckDB
keeps every block it read cached, up to 80% of RAM (1.6 GB of peak memory to fingerprint
10M transitions; 0.4 GB under this limit)."""


@contextlib.contextmanager
def read_budget(con: duckdb.DuckDBPyConnection, limit: str = READ_MEMORY_LIMIT) -> Iterator[None]:
    """Run a whole-dataset scan on ``con`` under DuckDB memory ``limit``."""
    _run(con, f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:
        _run(con, "RESET memory_limit")


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
    problem = _precheck(store.path, write)
    if problem is not None:
        raise problem
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
        except duckdb.Error as exc:
            error = open_error(store.path, exc, write)
            # Only a lock can clear by waiting; every other failure is reported at once.
            if not isinstance(error, StoreLockedError) or time.monotonic() > deadline:
                raise error from exc
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
            try:
                _run(con, sql("schema"))
            except duckdb.Error as exc:
                raise open_error(store.path, exc, write) from exc
            _layout.upgrade(con)
        yield con
    finally:
        con.close()


_DUCKDB_MAGIC = b"DUCK"  # bytes 8..12 of every DuckDB database file


def _precheck(path: str, write: bool) -> RmliteError | None:
    """What is wrong with the path before DuckDB is asked to open it, if anything."""
    if os.path.isdir(path):
        return StoreOpenError(
            f"{path}: is a folder, not a store file. Pass --db with a file path, for example "
            f"--db {os.path.join(path, DEFAULT_DB)}."
        )
    if os.path.exists(path):
        try:
            with open(path, "rb") as f:
                head = f.read(12)
        except OSError as exc:
            return StoreOpenError(
                f"{path}: cannot be read ({exc.strerror}). Check the file's permissions, or "
                f"pass --db with another store."
            )
        # A shorter head may be a store another process is creating right now: let
        # DuckDB decide (it reports a lock while that process holds it).
        if len(head) == 12 and head[8:12] != _DUCKDB_MAGIC:
            return StoreOpenError(
                f"{path}: not a DuckDB file, so not an rmlite store. Pass --db with the path "
                f"of a store (or of a new file to create one); rmlite does not overwrite it."
            )
    parent = os.path.dirname(os.path.abspath(path))
    if write and not os.path.exists(path) and not os.path.isdir(parent):
        return StoreOpenError(
            f"{path}: the folder {parent} does not exist. Create it (mkdir -p {parent}) "
            f"or pass --db with a path in an existing folder."
        )
    target = path if os.path.exists(path) else parent
    if write and not os.access(target, os.W_OK):
        read_only_fs = bool(os.statvfs(target).f_flag & os.ST_RDONLY)
        how = "on a read-only file system" if read_only_fs else "not writable by you"
        return StoreOpenError(
            f"{path}: the store is {how}. Commands that only read it still work; to write, "
            f"copy it somewhere writable (or fix the permissions) and pass --db with the copy."
        )
    return None


def precheck_write(store: Store) -> None:
    """Fail now, before any log is read, if the store file can never be opened to write."""
    if store._memory is None:
        problem = _precheck(store.path, write=True)
        if problem is not None:
            raise problem


def open_error(path: str, exc: BaseException, write: bool) -> RmliteError:
    """The rmlite error for a failure of DuckDB to open (or first write) the store file.

    Locks become :class:`StoreLockedError` (naming the holding process when DuckDB gives
    its PID); a full disk :class:`StoreFullError`; everything else :class:`StoreOpenError`
    with the cause and the fix.
    """
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    lower = text.lower()
    if "conflicting lock" in lower or "could not set lock" in lower:
        return StoreLockedError(_lock_message(path, text, write))
    if "no space left" in lower:
        return StoreFullError(
            f"{path}: the disk is full ({first}). Nothing was written; free some space "
            f"(or move the store with --db) and run the command again."
        )
    if "read-only file system" in lower or "permission denied" in lower:
        how = "on a read-only file system" if "read-only" in lower else "not writable by you"
        return StoreOpenError(
            f"{path}: the store is {how} ({first}). Commands that only read it still work; "
            f"to write, copy it somewhere writable and pass --db with the copy."
        )
    if "corrupt" in lower or "checksum" in lower or "could not read enough bytes" in lower:
        return StoreOpenError(
            f"{path}: the store file is damaged ({first}). rmlite cannot repair it: restore "
            f"it from a backup, or re-ingest the logs into a new store with --db."
        )
    if "not a valid duckdb database file" in lower:
        return StoreOpenError(
            f"{path}: not a DuckDB file, so not an rmlite store. Pass --db with the path of "
            f"a store (or of a new file to create one)."
        )
    if "no such file or directory" in lower:
        return StoreOpenError(
            f"{path}: the folder {os.path.dirname(os.path.abspath(path))} does not exist. "
            f"Create it or pass --db with a path in an existing folder."
        )
    if "is a directory" in lower:
        return StoreOpenError(f"{path}: is a folder, not a store file. Pass --db with a file path.")
    return StoreOpenError(
        f"{path}: DuckDB cannot open the store ({first}). Check the path given with --db."
    )


def _lock_message(path: str, text: str, write: bool) -> str:
    match = re.search(r"held in (.+?) \(PID (\d+)\)", text)
    holder = "another process"
    if match:
        pid = int(match.group(2))
        holder = f"process {pid} ({_command_line(pid) or match.group(1)})"
    # DuckDB adds the read-only hint only when the holder itself opened the file read-only.
    if write and "read-only mode" in text:
        return (
            f"{path}: {holder} has the store open for reading, so it cannot be written now. "
            f"Close that program's connection (a DuckDB shell, a notebook, a script) or stop "
            f"it, then run the command again; rmlite's own readers let go within seconds."
        )
    return (
        f"{path}: {holder} is writing the store. Retry when it has finished (rmlite waited "
        f"for it); if no such process should be running, stop it."
    )


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return ""
    text = " ".join(w.decode(errors="replace") for w in words if w)
    # A command line is anyone's text: no control characters reach the terminal.
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text[:120] + ("..." if len(text) > 120 else "")


@contextlib.contextmanager
def transaction(path: str, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One write transaction: committed when the block ends, rolled back on any exception.

    The error that leaves is the cause, not the noise of the rollback: a Ctrl+C that
    DuckDB turned into ``InterruptException`` (or that left the transaction aborted, so
    that later statements fail with "Current transaction is aborted") leaves as
    :class:`KeyboardInterrupt`; a full disk as :class:`StoreFullError`. A rollback that
    fails (the transaction already gone, the disk full) is ignored: closing the connection
    discards the transaction either way, and nothing of it was committed.
    """
    global commits
    _run(con, "BEGIN TRANSACTION")
    try:
        yield
        # DuckDB turns the COMMIT of a transaction that a failed statement aborted into a
        # silent rollback; a failure some cleanup suppressed would then report rows that
        # were never written. Ask first.
        try:
            _run(con, "SELECT 1")
        except duckdb.TransactionException as exc:
            raise RmliteError(
                f"{path}: a statement failed inside the write transaction "
                f"({_first_line(exc)}); it was rolled back and nothing was written. This is "
                f"a bug in rmlite: please report it."
            ) from exc
        # A Ctrl+C during COMMIT may be raised after DuckDB has committed: hold it until
        # the commit is counted, so that nobody is told "nothing was written" about a
        # write that landed.
        with _sigint_deferred() as deferred:
            _run(con, "COMMIT")
            commits += 1
        if deferred:
            raise KeyboardInterrupt
    except BaseException as exc:
        with contextlib.suppress(duckdb.Error):
            _run(con, "ROLLBACK")
        cause = _cause(path, exc)
        if cause is exc:
            raise
        raise cause from exc


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[list[int]]:
    """Record SIGINT instead of raising it inside the block; the list says if one came.

    Only in the main thread with Python's default handler in place (a program with its
    own handler keeps it).
    """
    received: list[int] = []
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield received
        return
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


commits = 0
"""Write transactions this process has committed: the CLI reads it to tell a Ctrl+C
that changed nothing from one that came after the command's write had landed."""


def _cause(path: str, exc: BaseException) -> BaseException:
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 20:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for e in chain:
        if isinstance(e, KeyboardInterrupt):
            return e
        # DuckDB reports a Ctrl+C inside a query as InterruptException, or (while it scans
        # a registered Arrow table) as a plain RuntimeError("Query interrupted"), or
        # (while it reads that table's schema) as an InvalidInputException whose text
        # names the KeyboardInterrupt raised in Python.
        text = str(e).lower()
        if (
            isinstance(e, duckdb.InterruptException)
            or (isinstance(e, RuntimeError) and "query interrupted" in text)
            or (isinstance(e, duckdb.Error) and "keyboardinterrupt" in text)
        ):
            return KeyboardInterrupt()
    for e in chain:
        if isinstance(e, StoreFullError):
            return e
        if "no space left" in str(e).lower() or getattr(e, "errno", None) == errno.ENOSPC:
            return StoreFullError(
                f"{path}: the disk ran full while writing the store ({_first_line(e)}). The "
                f"write was rolled back and the store is as it was; free some space (or move "
                f"the store with --db) and run the command again."
            )
    return exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def unregister(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop a registered Arrow view; an aborted transaction refuses it, which is harmless
    (the view dies with the connection) and must not hide the error that aborted it."""
    with contextlib.suppress(duckdb.Error):
        con.unregister(name)


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
