"""Landing staged transitions: the steps both ingest paths share, inside their transaction.

The in-memory path registers its prepared Arrow table as ``staged``; the streaming path
builds a temporary table of that name. From there the dimension re-check, conflicts,
insertion, quarantine and the ``ingests`` row are the same.
"""

from __future__ import annotations

import duckdb
import polars as pl

from rmlite.data import logs
from rmlite.data.store import _episode_keys, _layout
from rmlite.data.store._connection import _run, count, sql, unregister
from rmlite.data.store._reports import IngestReport
from rmlite.exceptions import ConflictError, IngestError


def recheck_dims(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    sources: list[str],
    obs_dim: int,
    action_dim: int,
) -> None:
    """Refuse a log whose sizes differ from the dataset's, inside the write transaction.

    The sizes were read before the write lock: another ingest may have created the
    dataset since. Checked again here, where nobody else can write.
    """
    stored = _run(con, sql("dataset_info"), {"dataset": dataset})
    if stored and (int(stored[0][0]), int(stored[0][1])) != (obs_dim, action_dim):
        have_obs, have_action = int(stored[0][0]), int(stored[0][1])
        raise IngestError(
            f"{', '.join(sources)}: dataset {dataset!r} has obs of {have_obs} and actions "
            f"of {have_action} values (another ingest created it while this one was reading); "
            f"this log has obs of {obs_dim} and actions of {action_dim}. Ingest it "
            f"into another dataset. Nothing was written."
        )


def land_staged(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    on_error: logs.OnError,
    obs_dim: int,
    action_dim: int,
    action_discrete: bool,
) -> tuple[int, pl.DataFrame]:
    """Insert the rows of the table or view ``staged`` that the store does not hold yet.

    Returns the rows added and the conflicts (stored keys with other values), which
    refuse the ingest in ``raise`` mode.
    """
    conflicts = _episode_keys.label(con, dataset, con.sql(sql("staged_conflicts")).pl())
    if conflicts.height and on_error == "raise":
        first = conflicts.row(0, named=True)
        more = f" ({conflicts.height - 1} more)" if conflicts.height > 1 else ""
        raise ConflictError(
            f"{first['source']}: row {first['source_row']}: episode {first['episode_id']} "
            f"step {first['step']} is already stored in dataset {dataset!r} with a "
            f"different {first['differs']}{more}. Stored rows are never overwritten: "
            f"ingest into another dataset, fix the log, or pass --on-error quarantine. "
            f"Nothing was written."
        )
    _run(
        con,
        sql("upsert_dataset"),
        {
            "dataset": dataset,
            "obs_dim": obs_dim,
            "action_dim": action_dim,
            "action_discrete": action_discrete,
        },
    )
    before = count(con, dataset)
    _run(con, sql("insert_new"), {"dataset": dataset})
    added = count(con, dataset) - before
    _layout.ensure_view(con, dataset)
    return added, conflicts


def conflict_rejects(conflicts: pl.DataFrame) -> pl.DataFrame:
    """Conflicts as rows of the ``rejected`` table (source, row, reason, record)."""
    return conflicts.select(
        pl.col("source"),
        pl.col("source_row").alias("row"),
        pl.format("conflict: stored with a different {}", pl.col("differs")).alias("reason"),
        pl.col("record"),
    )


def quarantine(
    con: duckdb.DuckDBPyConnection, ingest_id: int, dataset: str, rejected: pl.DataFrame
) -> None:
    """Write refused rows (source, row, reason, record) to the ``rejected`` table."""
    con.register("rejected_staged", rejected.to_arrow())
    try:
        _run(con, sql("insert_rejected"), {"ingest_id": ingest_id, "dataset": dataset})
    finally:
        unregister(con, "rejected_staged")


def record_ingest(con: duckdb.DuckDBPyConnection, report: IngestReport) -> None:
    """Write the ``ingests`` row of a report."""
    _run(
        con,
        sql("insert_ingest"),
        {
            "ingest_id": report.ingest_id,
            "dataset": report.dataset,
            "sources": report.sources,
            "rows_read": report.rows_read,
            "rows_added": report.rows_added,
            "rows_duplicate": report.rows_duplicate,
            "rows_rejected": report.rows_rejected,
            "rows_conflicting": report.rows_conflicting,
        },
    )
