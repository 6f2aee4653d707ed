"""The ``preferences`` table: judged pairs of segments, checked against the stored logs."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from rmlite.data import logs
from rmlite.data.store import _episode_keys
from rmlite.data.store._connection import (
    Store,
    _run,
    has_tables,
    require,
    sql,
    transaction,
    unregister,
)
from rmlite.exceptions import IngestError

PAIR_EPISODES = ("episode_a", "episode_b")


def ingest_preferences(
    store: Store,
    source: logs.Source | Iterable[logs.Source],
    dataset: str,
    *,
    on_error: logs.OnError = "raise",
    progress: Callable[[str], None] | None = None,
) -> Any:
    """The work of :meth:`LogStore.ingest_preferences`."""
    from rmlite.data.preference_log import PreferenceIngestReport, prepare_preferences

    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    sources = (
        [source]
        if isinstance(source, str | os.PathLike | pl.DataFrame | pl.LazyFrame | pa.Table)
        else list(source)
    )
    say("reading and checking preference pairs")
    prepared = prepare_preferences(sources, on_error=on_error)
    say(f"landing {prepared.frame.height:,} preference pairs")
    with store.connect(write=True) as con:
        require(store, con, dataset)
        with transaction(store.path, con):
            ingest_id = int(_run(con, sql("next_ingest_id"))[0][0])
            keyed, unknown = _episode_keys.pair_keys(con, dataset, prepared.frame, on_error)
            frame, rejected, conflicts = _stage_preferences(con, dataset, keyed, on_error)
            rejected = pl.concat([unknown, rejected])
            before = int(_run(con, sql("count_preferences"), {"dataset": dataset})[0][0])
            con.register("staged_preferences", frame.to_arrow())
            try:
                _run(con, sql("insert_preferences"), {"dataset": dataset, "ingest_id": ingest_id})
            finally:
                unregister(con, "staged_preferences")
            after = int(_run(con, sql("count_preferences"), {"dataset": dataset})[0][0])
            added = after - before
            rejected = pl.concat([prepared.rejected, rejected])
            if rejected.height:
                con.register("rejected_staged", rejected.to_arrow())
                try:
                    _run(
                        con,
                        sql("insert_rejected"),
                        {"ingest_id": ingest_id, "dataset": dataset},
                    )
                finally:
                    unregister(con, "rejected_staged")
    say("done")
    return PreferenceIngestReport(
        dataset=dataset,
        sources=prepared.sources,
        ingest_id=ingest_id,
        rows_read=prepared.rows_read,
        pairs_added=added,
        pairs_duplicate=frame.height - added,
        pairs_conflicting=conflicts,
        pairs_rejected=rejected.height - conflicts,
        seconds=time.perf_counter() - started,
        warnings=prepared.warnings,
    )


def _stage_preferences(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    frame: pl.DataFrame,
    on_error: logs.OnError,
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Check staged pairs against the store: segments in the logs, no conflicts.

    Returns the pairs to insert, the refused ones (source, row, reason, record) and
    how many of those were conflicts. In ``raise`` mode the first problem raises.
    """
    refused: list[pl.DataFrame] = []
    staged = frame.rename({logs.SOURCE: "source", logs.ROW: "source_row"})
    con.register("staged_preferences", staged.to_arrow())
    try:
        missing = _episode_keys.label(  # messages name episodes as the user does
            con,
            dataset,
            con.sql(sql("staged_preference_segments"), params={"dataset": dataset}).pl(),
        )
        if missing.height:
            missing = missing.with_columns(
                pl.format(
                    "segment {} (episode {}, steps [{}, {})) is not in dataset {}: {} of its "
                    "{} steps are stored",
                    pl.col("side"),
                    pl.col("episode_id"),
                    pl.col("start"),
                    pl.col("stop"),
                    pl.lit(repr(dataset)),
                    pl.col("steps"),
                    pl.col("stop") - pl.col("start"),
                ).alias("reason")
            ).unique(["source", "source_row"], keep="first", maintain_order=True)
            if on_error == "raise":
                first = missing.row(0, named=True)
                more = f" ({missing.height - 1} more)" if missing.height > 1 else ""
                raise IngestError(
                    f"{first['source']}: row {first['source_row']}: {first['reason']}{more}. "
                    f"Ingest the episodes first, or fix the step ranges (half-open, "
                    f"[start, stop)). Nothing was written."
                )
            refused.append(missing.select("source", "source_row", "reason"))
        conflicts = _episode_keys.label(
            con,
            dataset,
            con.sql(sql("staged_preference_conflicts"), params={"dataset": dataset}).pl(),
            PAIR_EPISODES,
        )
        if conflicts.height and on_error == "raise":
            first = conflicts.row(0, named=True)
            more = f" ({conflicts.height - 1} more)" if conflicts.height > 1 else ""
            raise IngestError(
                f"{first['source']}: row {first['source_row']}: the pair (episode "
                f"{first['episode_a']} steps [{first['start_a']}, {first['stop_a']}) vs "
                f"episode {first['episode_b']} steps [{first['start_b']}, {first['stop_b']})"
                f", annotator {first['annotator']!r}) is already stored in dataset "
                f"{dataset!r} with a different {first['differs']}{more}. Stored judgements "
                f"are never overwritten: give the new ones another annotator name, or "
                f"pass --on-error quarantine. Nothing was written."
            )
        if conflicts.height:
            refused.append(
                conflicts.select(
                    "source",
                    "source_row",
                    pl.format("conflict: stored with a different {}", pl.col("differs")).alias(
                        "reason"
                    ),
                )
            )
    finally:
        unregister(con, "staged_preferences")
    schema = {"source": pl.String, "row": pl.Int64, "reason": pl.String, "record": pl.String}
    if not refused:
        return frame, pl.DataFrame(schema=schema), 0
    bad = pl.concat([r.cast({"source_row": pl.Int64}) for r in refused]).unique(
        ["source", "source_row"], keep="first", maintain_order=True
    )
    record = pl.struct(pl.exclude(logs.SOURCE, logs.ROW)).struct.json_encode().alias("record")
    rejected = (
        bad.join(
            frame.select(logs.SOURCE, logs.ROW, record),
            left_on=["source", "source_row"],
            right_on=[logs.SOURCE, logs.ROW],
            how="left",
        )
        .select(pl.col("source"), pl.col("source_row").alias("row"), "reason", "record")
        .cast(schema)  # type: ignore[arg-type]
    )
    keep = frame.join(
        bad.select(pl.col("source").alias(logs.SOURCE), pl.col("source_row").alias(logs.ROW)),
        on=[logs.SOURCE, logs.ROW],
        how="anti",
    )
    return keep, rejected, conflicts.height


def preferences(store: Store, dataset: str, *, keys: bool = False) -> pl.DataFrame:
    """The work of :meth:`LogStore.preferences`."""
    with store.connect() as con:
        require(store, con, dataset)
        if not has_tables(con, "preferences"):
            return con.sql(
                "SELECT NULL::BIGINT AS episode_a, NULL::BIGINT AS start_a, "
                "NULL::BIGINT AS stop_a, NULL::BIGINT AS episode_b, NULL::BIGINT AS start_b, "
                "NULL::BIGINT AS stop_b, NULL::DOUBLE AS label, NULL::DOUBLE AS margin, "
                "NULL::VARCHAR AS annotator, NULL::TIMESTAMP AS timestamp, "
                "NULL::BIGINT AS ingest_id LIMIT 0"
            ).pl()
        pairs = con.sql(sql("read_preferences"), params={"dataset": dataset}).pl()
        return pairs if keys else _episode_keys.label(con, dataset, pairs, PAIR_EPISODES)
