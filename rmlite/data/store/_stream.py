"""Streaming ingest: logs of any size land with memory bounded by a budget, not by the file.

:class:`rmlite.data.logs.LogStream` reads each source in batches and runs the checks that
look at one row; each batch is appended to a temporary staging table inside the one
write transaction of the ingest. The checks and derivations that look across rows
(lengths against each source's and the dataset's, duplicate keys, steps numbered per
episode, next_obs from the following step, text ids to keys, conflicts with stored rows)
then run as DuckDB SQL over the staging table, which DuckDB spills to a temporary folder
beside the store when it outgrows ``memory_limit``. Nothing is committed before the end:
an error, a Ctrl+C or a killed process leaves the store as it was.

The result is the one the in-memory path (:func:`rmlite.data.logs.prepare`) gives: the
same stored rows, report fields and messages; only the ``record`` of a row refused by a
check across rows may be its canonical form rather than the source's record, which would
cost a second read of the source.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from rmlite.data import logs
from rmlite.data import schema as S
from rmlite.data.store import _episode_keys
from rmlite.data.store._connection import Store, _run, sql, transaction
from rmlite.data.store._landing import (
    conflict_rejects,
    land_staged,
    quarantine,
    recheck_dims,
    record_ingest,
)
from rmlite.data.store._reports import IngestReport
from rmlite.exceptions import IngestError, ParameterError

MIN_MEMORY = 1 << 30
"""The smallest default budget (1 GiB), whatever the machine."""

MAX_DEFAULT_MEMORY = 2 << 30
"""The largest default budget (2 GiB): a larger one buys little speed (2M rows of 17 obs
and 6 actions: 26.5 s at 1 GiB, 24.2 s at 2 GiB, 20.6 s at 6 GiB) for peaks of 0.84,
1.31 and 2.56 GiB."""

DEFAULT_MEMORY_FRACTION = 0.25
"""The default budget: this share of the machine's memory, between :data:`MIN_MEMORY` and
:data:`MAX_DEFAULT_MEMORY`."""

DUCKDB_SHARE = 0.6
"""The share of the budget given to DuckDB's ``memory_limit``; the rest is for Python's
baseline (about 300 MB with Polars and PyArrow loaded) and the batch being checked."""

STREAM_FRACTION = 1 / 16
"""Files larger together than this share of the budget stream on their own: the in-memory
path peaks at about 6x a Parquet file's size (1.7 GB for a 300 MB file)."""

_TEMP_TABLES = ("stream_raw", "stream_judged", "stream_params", "staged_ids", "staged")
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}


def memory_budget(memory_limit: int | str | None) -> int:
    """The ingest's memory budget in bytes.

    ``None``: :data:`DEFAULT_MEMORY_FRACTION` of the machine's memory, between 1 and 2 GiB;
    an int: bytes; text: a size such as ``"4GB"``, ``"512MiB"`` or ``"2e9"``.

    Examples
    --------
    >>> memory_budget("4GB"), memory_budget("512MiB"), memory_budget(10**9)
    (4000000000, 536870912, 1000000000)
    """
    if memory_limit is None:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return max(MIN_MEMORY, min(MAX_DEFAULT_MEMORY, int(total * DEFAULT_MEMORY_FRACTION)))
    if isinstance(memory_limit, int) and not isinstance(memory_limit, bool):
        value = memory_limit
    else:
        match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([A-Za-z]*)\s*", str(memory_limit))
        unit = match.group(2).lower() if match else None
        try:
            value = int(float(match.group(1)) * _UNITS[unit]) if match and unit is not None else -1
        except (ValueError, KeyError):
            value = -1
    if value < 32 * 10**6:
        raise ParameterError(
            f"The 'memory_limit' parameter (--memory-limit) must be a size of at least 32MB, "
            f"such as 4GB or 512MiB. Got {memory_limit!r} instead."
        )
    return value


def batch_rows_for(budget: int) -> int:
    """Rows per batch: a batch and its checked copy stay within a tenth of the budget
    for rows of up to about 2 KB (17 obs and 6 actions take about 250 bytes)."""
    return int(min(131_072, max(2_048, budget // 10 // 2_000)))


def should_stream(sources: Sequence[logs.Source], budget: int) -> bool:
    """Whether files this large should stream: in-memory tables never need to."""
    size = 0
    for src in logs.expand_sources(sources):
        if isinstance(src, str | os.PathLike):
            with contextlib.suppress(OSError):
                size += os.path.getsize(src)
    return size > budget * STREAM_FRACTION


@contextlib.contextmanager
def memory_settings(store: Store, con: duckdb.DuckDBPyConnection, budget: int) -> Iterator[None]:
    """DuckDB's ``memory_limit`` (its share of the budget) and ``temp_directory`` (a
    folder beside the store, ``<store>.tmp``, removed afterwards) on the write connection."""
    limit = f"{max(32 << 20, int(budget * DUCKDB_SHARE)) >> 20}MB"
    folder = None if store._memory is not None else f"{store.path}.tmp"
    created = folder is not None and not os.path.exists(folder)
    _run(con, f"SET memory_limit = '{limit}'")
    _run(con, "SET enable_progress_bar = false")  # stdout belongs to the CLI (--json)
    if folder is not None:
        # The value is our own path, not user SQL; DuckDB cannot bind it in SET.
        _run(con, "SET temp_directory = '" + folder.replace("'", "''") + "'")
    try:
        yield
    finally:
        with contextlib.suppress(duckdb.Error):
            _run(con, "RESET memory_limit")
            _run(con, "RESET enable_progress_bar")
            _run(con, "RESET temp_directory")
        if created and folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def ingest(
    store: Store,
    sources: Sequence[logs.Source],
    dataset: str,
    mapping: S.ColumnMapping | None,
    on_error: logs.OnError,
    say: Callable[[str], None],
    budget: int,
    batch_rows: int | None = None,
) -> IngestReport:
    """The streaming work of :meth:`LogStore.ingest` (the report's ``seconds`` left at 0)."""
    stream = logs.LogStream(
        sources,
        mapping=mapping,
        batch_rows=batch_rows or batch_rows_for(budget),
    )
    # The store is open for writing while the sources are read: a store this ingest
    # creates and then fails to fill is removed again, as the in-memory path (which reads
    # first) never creates it.
    fresh = store._memory is None and not os.path.exists(store.path)
    try:
        with (
            store.connect(write=True) as con,
            memory_settings(store, con, budget),
            transaction(store.path, con),
        ):
            try:
                # Under the write lock now: the dataset's sizes as they are, not as they
                # were when the ingest started (another ingest may have created it).
                stream.expected_dims = _stored_dims(con, dataset)
                return _land(con, dataset, stream, on_error, say)
            finally:
                # A file store's connection closes, taking its temp tables; the in-memory
                # store's stays open for the next call.
                with contextlib.suppress(duckdb.Error):
                    _drop_temp_tables(con)
    except BaseException:
        if fresh:
            for path in (store.path, f"{store.path}.wal"):
                with contextlib.suppress(OSError):
                    os.remove(path)
        raise


def _drop_temp_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Drop this ingest's temp tables and view, each by its kind: a DROP of the wrong
    kind fails, and a failed statement aborts the transaction the rows land in."""
    kinds = dict(
        _run(
            con,
            "SELECT table_name, table_type FROM information_schema.tables "
            "WHERE table_catalog = 'temp'",
        )
    )
    for name in reversed(_TEMP_TABLES):
        if name in kinds:
            kind = "VIEW" if kinds[name] == "VIEW" else "TABLE"
            _run(con, f"DROP {kind} temp.{name}")


def _stored_dims(con: duckdb.DuckDBPyConnection, dataset: str) -> tuple[int, int] | None:
    rows = _run(con, sql("dataset_info"), {"dataset": dataset})
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


def _land(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    stream: logs.LogStream,
    on_error: logs.OnError,
    say: Callable[[str], None],
) -> IngestReport:
    say("reading and checking sources")
    for i, batch in enumerate(stream):
        _append(con, batch, first=i == 0)
        say(f"staged {stream.rows_read:,} rows")
    obs_modes, action_modes = stream.modes()
    obs_dim, action_dim = stream.expected_dims or stream.log_modes()
    _run(
        con,
        sql("stream_judge"),
        {
            "obs_modes": obs_modes,
            "action_modes": action_modes,
            "obs_dim": obs_dim,
            "action_dim": action_dim,
        },
    )
    _run(con, "DROP TABLE temp.stream_raw")
    bad, good, with_next, episodes = _run(con, sql("stream_counts"))[0]
    if bad and on_error == "raise":
        source, row, reason = _run(con, sql("stream_first_bad"))[0]
        more = f" ({bad - 1} more bad rows)" if bad > 1 else ""
        raise IngestError(
            f"{source}: row {row}: {reason}{more}. Fix the log, map other columns, or pass "
            f"--on-error quarantine to land the good rows and keep the bad ones in the "
            f"'rejected' table. Nothing was written."
        )
    if good == 0:
        raise IngestError(
            f"{', '.join(stream.names)}: no valid rows remain ({stream.rows_read} read, all "
            f"rejected). Nothing was written."
        )
    if stream.expected_dims is None and obs_dim == 0:
        raise IngestError(f"{', '.join(stream.names)}: obs vectors are empty.")

    recheck_dims(con, dataset, stream.names, obs_dim, action_dim)
    ingest_id = int(_run(con, sql("next_ingest_id"))[0][0])
    derive = with_next == 0
    say(f"landing {good:,} transitions")
    params: dict[str, Any] = {"dataset": dataset, "ingest_id": ingest_id}
    _episode_keys.check_kind(con, dataset, bool(stream.text_ids), _first_episode(con))
    if stream.text_ids:
        _run(con, sql("stream_episode_ids"))
        _run(con, sql("insert_episode_keys"), {"dataset": dataset})
    staged = "stream_staged" + ("_text" if stream.text_ids else "") + ("_derive" if derive else "")
    as_judged = staged == "stream_staged"
    if as_judged:  # rows land as judged: a view over them
        _run(con, sql("stream_params"), params)
        _run(con, sql(staged))
    else:  # rows rekeyed or completed: one copy, and the judged rows go
        _run(con, sql(staged), params)
    if bad:
        say(f"quarantining {bad:,} rows")
        _run(con, sql("stream_insert_rejected"), {"ingest_id": ingest_id, "dataset": dataset})
    if not as_judged:
        _run(con, "DROP TABLE temp.stream_judged")

    infinite = {c: (n, source, row) for c, n, source, row in _run(con, sql("stream_infinities"))}
    warnings = [
        logs.infinity_warning(col, *infinite[col]) for col in S.VECTOR_COLUMNS if col in infinite
    ]
    if not stream.has_flags:
        warnings.append(logs.NO_FLAGS_WARNING)
    added, conflicts = land_staged(
        con, dataset, on_error, obs_dim, action_dim, stream.action_discrete
    )
    if conflicts.height:
        quarantine(con, ingest_id, dataset, conflict_rejects(conflicts))
    report = IngestReport(
        dataset=dataset,
        sources=stream.names,
        ingest_id=ingest_id,
        rows_read=stream.rows_read,
        rows_added=added,
        rows_duplicate=good - added - conflicts.height,
        rows_conflicting=conflicts.height,
        rows_rejected=bad,
        episodes=episodes,
        obs_dim=obs_dim,
        action_dim=action_dim,
        next_obs_derived=derive,
        seconds=0.0,
        warnings=warnings,
    )
    record_ingest(con, report)
    return report


def _first_episode(con: duckdb.DuckDBPyConnection) -> Any:
    """The first landing episode id in key order (the example an error names)."""
    return _run(con, "SELECT min(episode_id) FROM stream_judged WHERE reason IS NULL")[0][0]


def _append(con: duckdb.DuckDBPyConnection, batch: pa.Table, first: bool) -> None:
    # Not con.register: inside a transaction, a dropped view's catalog entry stays alive
    # until COMMIT (for a rollback), and with it the Arrow batch it holds, so every batch
    # of the ingest stayed resident (about 250 bytes a row, 0.5 GB more at 2M rows). A
    # relation's view lives only as long as its query.
    batch_rel = con.from_arrow(batch)
    for name in ("stream_create", "stream_append") if first else ("stream_append",):
        done = batch_rel.query("stream_batch", sql(name))
        if done is not None:  # the row count; fetched, as an unfinished result blocks
            done.fetchall()
