"""The transitions tables: ingest, reads, checks, features and partitioned exports of a dataset."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from rmlite._typing import PathLike
from rmlite.data import logs
from rmlite.data import schema as S
from rmlite.data.features import FeatureFrame, FeatureSpec, FittedStats, build_features
from rmlite.data.store import _episode_keys, _stream
from rmlite.data.store._connection import (
    Store,
    _run,
    has_tables,
    precheck_write,
    read_budget,
    require,
    select_columns,
    sql,
    transaction,
    unregister,
)
from rmlite.data.store._landing import (
    conflict_rejects,
    land_staged,
    quarantine,
    recheck_dims,
    record_ingest,
)
from rmlite.data.store._reports import CheckReport, IngestReport
from rmlite.exceptions import IngestError, ParameterError, RmliteError, SchemaError


def ingest(
    store: Store,
    source: logs.Source | Iterable[logs.Source],
    dataset: str,
    mapping: S.ColumnMapping | None = None,
    on_error: logs.OnError = "raise",
    progress: Callable[[str], None] | None = None,
    *,
    stream: bool | None = None,
    memory_limit: int | str | None = None,
    batch_rows: int | None = None,
) -> IngestReport:
    """The work of :meth:`LogStore.ingest`."""
    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    try:
        S.check_dataset_name(dataset)
    except SchemaError as exc:
        raise IngestError(str(exc)) from exc
    if on_error not in ("raise", "quarantine"):
        raise ValueError(
            f"The 'on_error' parameter must be 'raise' or 'quarantine'. Got {on_error!r} instead."
        )
    sources = (
        [source]
        if isinstance(source, str | os.PathLike | pl.DataFrame | pl.LazyFrame | pa.Table)
        else list(source)
    )
    budget = _stream.memory_budget(memory_limit)
    expected = _dims(store, dataset)
    if stream or (stream is None and _stream.should_stream(sources, budget)):
        report = _stream.ingest(store, sources, dataset, mapping, on_error, say, budget, batch_rows)
    else:
        say("reading and checking sources")
        log = logs.prepare(sources, mapping=mapping, on_error=on_error, expected_dims=expected)
        if expected is None and log.obs_dim == 0:
            raise IngestError(f"{', '.join(log.sources)}: obs vectors are empty.")

        say(f"landing {log.frame.height:,} transitions")
        with store.connect(write=True) as con, transaction(store.path, con):
            report = _land(con, dataset, log, on_error, say)
    report.seconds = time.perf_counter() - started
    say("done")
    return report


def _land(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    log: logs.PreparedLog,
    on_error: logs.OnError,
    say: Callable[[str], None],
) -> IngestReport:
    recheck_dims(con, dataset, log.sources, log.obs_dim, log.action_dim)
    ingest_id = int(_run(con, sql("next_ingest_id"))[0][0])
    keyed = _episode_keys.assign(con, dataset, log.frame)
    staged = logs.canonical_arrow(keyed, dataset, ingest_id)
    con.register("staged", staged)
    try:
        added, conflicts = land_staged(
            con, dataset, on_error, log.obs_dim, log.action_dim, log.action_discrete
        )
    finally:
        unregister(con, "staged")

    rejected = log.rejected
    if conflicts.height:
        rejected = pl.concat([rejected, conflict_rejects(conflicts)])
    if rejected.height:
        say(f"quarantining {rejected.height:,} rows")
        quarantine(con, ingest_id, dataset, rejected)
    duplicate = log.frame.height - added - conflicts.height
    report = IngestReport(
        dataset=dataset,
        sources=log.sources,
        ingest_id=ingest_id,
        rows_read=log.rows_read,
        rows_added=added,
        rows_duplicate=duplicate,
        rows_conflicting=conflicts.height,
        rows_rejected=log.rejected.height,
        episodes=log.frame[S.EPISODE].n_unique(),
        obs_dim=log.obs_dim,
        action_dim=log.action_dim,
        next_obs_derived=log.next_obs_derived,
        seconds=0.0,
        warnings=log.warnings,
    )
    record_ingest(con, report)
    return report


def _dims(store: Store, dataset: str) -> tuple[int, int] | None:
    precheck_write(store)
    if store._memory is None and not os.path.exists(store.path):
        return None
    with store.connect() as con:
        if not has_tables(con):
            return None
        rows = _run(con, sql("dataset_info"), {"dataset": dataset})
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


def datasets(store: Store) -> pl.DataFrame:
    """The work of :meth:`LogStore.datasets`."""
    with store.connect() as con:
        if not has_tables(con):
            return pl.DataFrame()
        return con.sql(sql("datasets")).pl()


def read_arrow(
    store: Store,
    dataset: str,
    columns: Sequence[str] | None = None,
    episodes: Sequence[Any] | None = None,
) -> pa.Table:
    """The work of :meth:`LogStore.read_arrow`."""
    with store.connect() as con:
        require(store, con, dataset)
        query = sql("read_transitions" if episodes is None else "read_episodes")
        if columns is not None:
            query = select_columns(query, columns)
        params: dict[str, Any] = {"dataset": dataset}
        if episodes is not None:
            params["episodes"] = _episode_keys.to_keys(con, dataset, episodes)
        return con.sql(query, params=params).to_arrow_table()


def read(
    store: Store, dataset: str, columns: Sequence[str] | None = None, *, keys: bool = False
) -> pl.DataFrame:
    """The work of :meth:`LogStore.read`."""
    frame = pl.from_arrow(read_arrow(store, dataset, columns))
    assert isinstance(frame, pl.DataFrame)
    return frame if keys else label_episodes(store, dataset, frame)


def episodes(store: Store, dataset: str, *, keys: bool = False) -> pl.DataFrame:
    """The work of :meth:`LogStore.episodes`."""
    with store.connect() as con:
        require(store, con, dataset)
        frame = con.sql(sql("episodes"), params={"dataset": dataset}).pl()
        return frame if keys else _episode_keys.label(con, dataset, frame)


def reward_histogram(store: Store, dataset: str, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The work of :meth:`LogStore.reward_histogram`."""
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
        raise ParameterError(f"The 'bins' parameter must be an int >= 1. Got {bins!r} instead.")
    with store.connect() as con:
        require(store, con, dataset)
        found = con.sql(sql("reward_histogram"), params={"dataset": dataset, "bins": bins}).pl()
    if not found.height:
        return np.array([], dtype=np.float64), np.array([], dtype=np.int64)
    lo, hi = float(found["lo"][0]), float(found["hi"][0])
    counts = np.zeros(bins if hi > lo else 1, dtype=np.int64)
    counts[found["bin"].to_numpy()] = found["count"].to_numpy()
    # The edges numpy.histogram_bin_edges gives: [lo - 0.5, lo + 0.5] for one value.
    edges = np.linspace(lo, hi, bins + 1) if hi > lo else np.array([lo - 0.5, lo + 0.5])
    return edges, counts


def label_episodes(
    store: Store, dataset: str, frame: pl.DataFrame, columns: Sequence[str] = (S.EPISODE,)
) -> pl.DataFrame:
    """The work of :meth:`LogStore.label_episodes`."""
    with store.connect() as con:
        return _episode_keys.label(con, dataset, frame, columns)


def episode_keys(store: Store, dataset: str, episodes: Iterable[Any]) -> list[int]:
    """The work of :meth:`LogStore.episode_keys`."""
    with store.connect() as con:
        require(store, con, dataset)
        return _episode_keys.to_keys(con, dataset, episodes)


def rejected(store: Store, dataset: str | None = None) -> pl.DataFrame:
    """The work of :meth:`LogStore.rejected`."""
    with store.connect() as con:
        if not has_tables(con):
            return pl.DataFrame()
        if dataset is None:
            return con.sql("SELECT * FROM rejected ORDER BY ingest_id, source, source_row").pl()
        return con.sql(
            "SELECT * FROM rejected WHERE dataset = $dataset "
            "ORDER BY ingest_id, source, source_row",
            params={"dataset": dataset},
        ).pl()


def fingerprint(store: Store, dataset: str) -> str:
    """The work of :meth:`LogStore.fingerprint`."""
    with store.connect() as con, read_budget(con):
        require(store, con, dataset)
        n, content = con.sql(sql("fingerprint"), params={"dataset": dataset}).fetchall()[0]
    return f"{dataset}:{n}:{int(content):016x}"


def episodes_since(store: Store, dataset: str, ingest_id: int) -> pl.DataFrame:
    """The work of :meth:`LogStore.episodes_since`."""
    with store.connect() as con:
        require(store, con, dataset)
        return con.sql(
            sql("episodes_since"), params={"dataset": dataset, "since": int(ingest_id)}
        ).pl()


def check(store: Store, dataset: str, next_obs_tolerance: float = 1e-6) -> CheckReport:
    """The work of :meth:`LogStore.check`."""
    with store.connect() as con:
        require(store, con, dataset)
        params = {"dataset": dataset}
        episodes = con.sql(sql("check_episodes"), params=params).pl().row(0, named=True)
        values = con.sql(sql("check_values"), params=params).pl().row(0, named=True)
        nxt = (
            con.sql(sql("check_next_obs"), params={**params, "tolerance": next_obs_tolerance})
            .pl()
            .row(0, named=True)
        )
    return CheckReport(dataset=dataset, episodes=episodes, values=values, next_obs=nxt)


def features(
    store: Store,
    dataset: str,
    spec: FeatureSpec | None = None,
    *,
    train_episodes: Iterable[Any] | None = None,
    stats: FittedStats | None = None,
    require_target: bool = True,
    stream_to: PathLike | None = None,
    chunk_rows: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> FeatureFrame:
    """The work of :meth:`LogStore.features`."""
    spec = spec or FeatureSpec()
    if train_episodes is not None and stats is None:
        train_episodes = episode_keys(store, dataset, train_episodes)
    if stream_to is not None:
        from rmlite.data.store._feature_stream import DEFAULT_CHUNK_ROWS, stream_features

        return stream_features(
            store,
            dataset,
            spec,
            stream_to,
            train_episodes=train_episodes,
            stats=stats,
            require_target=require_target,
            chunk_rows=DEFAULT_CHUNK_ROWS if chunk_rows is None else chunk_rows,
            progress=progress,
        )
    table = read_arrow(store, dataset, spec.columns_needed())
    try:
        return build_features(
            table,
            spec,
            train_episodes=train_episodes,
            stats=stats,
            require_target=require_target,
        )
    except SchemaError as exc:
        raise SchemaError(f"dataset {dataset!r}: {exc}") from exc


def export_partitions(store: Store, dataset: str, folder: PathLike, buckets: int) -> list[str]:
    """The work of :meth:`LogStore.export_partitions`."""
    if not isinstance(buckets, int) or buckets < 1:
        raise RmliteError(f"The 'buckets' parameter must be an int >= 1. Got {buckets!r}.")
    folder = os.fspath(folder)
    os.makedirs(os.path.dirname(os.path.abspath(folder)), exist_ok=True)
    with store.connect() as con:
        require(store, con, dataset)
        params = {"dataset": dataset, "buckets": buckets, "folder": folder}
        _run(con, sql("export_partitions"), params)
    return sorted(
        os.path.join(root, name)
        for root, _dirs, names in os.walk(folder)
        for name in names
        if name.endswith(".parquet")
    )
