"""The :class:`LogStore` face: one class whose methods hand each table family's work to its module."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from rmlite._typing import PathLike
from rmlite.data import logs
from rmlite.data import schema as S
from rmlite.data.features import FeatureFrame, FeatureSpec, FittedStats
from rmlite.data.store import (
    _connection,
    _layout,
    _monitor,
    _preferences,
    _relabels,
    _runs,
    _sql,
    _transitions,
)
from rmlite.data.store._connection import _run, default_path, sql
from rmlite.data.store._reports import CheckReport, IngestReport


class LogStore:
    """A project's logs in one DuckDB file.

    Parameters
    ----------
    path
        The DuckDB file; created on first write. Default: ``$RMLITE_DB`` or
        ``./rmlite.duckdb``. ``":memory:"`` keeps everything in this process.
    lock_timeout
        Seconds to keep retrying while another process holds the file for writing.
    """

    def __init__(self, path: PathLike | None = None, *, lock_timeout: float = 30.0) -> None:
        self.path = os.fspath(path) if path is not None else default_path()
        self.lock_timeout = lock_timeout
        self._memory: duckdb.DuckDBPyConnection | None = None
        if self.path == ":memory:":
            self._memory = duckdb.connect(":memory:")
            _run(self._memory, sql("schema"))
            _layout.upgrade(self._memory)

    def __repr__(self) -> str:
        return f"LogStore({self.path!r})"

    MONITOR_TABLES = _monitor.MONITOR_TABLES
    """The tables ``rmlite monitor`` writes, as :meth:`monitoring` returns them."""

    # ------------------------------------------------------------------ connections

    @contextlib.contextmanager
    def connect(self, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file for one operation, retrying while another process holds it.

        A read-only open of a file that does not exist yet is an error that says so.
        """
        with _connection.connect(self, write) as con:
            yield con

    def ingest(
        self,
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
        """Land logs in the store, whole or not at all.

        Parameters
        ----------
        source
            A file, glob, folder, Polars or PyArrow table, or a list of them. Files may be
            Parquet, CSV, JSON Lines or Arrow IPC.
        dataset
            The dataset to add to; created if new.
        mapping
            Where the canonical columns are in the source (found by name when omitted).
        on_error
            ``"raise"`` (default): any bad row or conflicting key refuses the whole ingest
            and leaves the store as it was. ``"quarantine"``: good rows land, bad rows and
            conflicts go to the ``rejected`` table with the reason.
        progress
            Called with a short message at each stage.
        stream
            ``True``: read the sources in batches and check them in DuckDB, so that memory
            stays within ``memory_limit`` whatever their size; ``False``: read each source
            whole (quicker for small logs). ``None`` (default): stream when the files
            together are larger than a sixteenth of ``memory_limit``. Both land the same
            rows; a row the streaming path refuses for a reason found across rows (a
            duplicate key, a length unlike the others) is quarantined with its canonical
            record rather than the source's.
        memory_limit
            The memory budget of a streaming ingest, in bytes or as text (``"4GB"``):
            DuckDB gets most of it as its ``memory_limit`` and spills to ``<store>.tmp/``
            beyond it; the batches are sized from it. Default: a quarter of the machine's
            memory, between 1 and 2 GiB.
        batch_rows
            Rows per batch when streaming (default: sized from ``memory_limit``).

        Returns
        -------
        IngestReport
            Counts of rows added, already stored, conflicting and rejected.
        """
        return _transitions.ingest(
            self,
            source,
            dataset,
            mapping,
            on_error,
            progress,
            stream=stream,
            memory_limit=memory_limit,
            batch_rows=batch_rows,
        )

    def datasets(self) -> pl.DataFrame:
        """One row per dataset: episodes, transitions, dimensions, missing rewards."""
        return _transitions.datasets(self)

    def read_arrow(
        self,
        dataset: str,
        columns: Sequence[str] | None = None,
        episodes: Sequence[Any] | None = None,
    ) -> pa.Table:
        """All transitions of a dataset (or of some of its episodes) as Arrow, sorted by
        (episode, step). ``episode_id`` holds integer keys (the ids themselves unless the
        dataset has text ids: see :meth:`episode_keys`); ``episodes`` may name either."""
        return _transitions.read_arrow(self, dataset, columns, episodes)

    def read(
        self, dataset: str, columns: Sequence[str] | None = None, *, keys: bool = False
    ) -> pl.DataFrame:
        """All transitions of a dataset as a Polars frame, sorted by (episode, step).

        ``episode_id`` holds the ids as ingested (text ids included); ``keys=True`` gives
        the integer keys that :meth:`read_arrow` and feature frames' ``groups`` hold.
        """
        return _transitions.read(self, dataset, columns, keys=keys)

    def episodes(self, dataset: str, *, keys: bool = False) -> pl.DataFrame:
        """One row per episode: length, first and last step, return, how it ended.

        ``episode_id`` holds the ids as ingested; for a dataset with text ids
        (``"run-a/ep-17"``) ``keys=True`` gives the integer keys instead, in the same order.
        """
        return _transitions.episodes(self, dataset, keys=keys)

    def reward_histogram(self, dataset: str, bins: int = 30) -> tuple[np.ndarray, np.ndarray]:
        """(edges, counts) of a dataset's finite rewards in ``bins`` equal-width bins.

        Counted in DuckDB, so only the counts leave the store, whatever the dataset's size;
        the bins are :func:`numpy.histogram`'s over [min, max] (one bin of width 1 around
        the value when every reward is equal). Empty arrays when no reward is finite.
        """
        return _transitions.reward_histogram(self, dataset, bins)

    def episode_keys(self, dataset: str, episodes: Iterable[Any]) -> list[int]:
        """The integer keys of episodes named by their ids as ingested (text or integer).

        Feature frames' ``groups`` and :meth:`read_arrow` hold these keys; for datasets with
        integer ids a key is the id. An id the dataset does not hold is an error.
        """
        return _transitions.episode_keys(self, dataset, episodes)

    def label_episodes(
        self, dataset: str, frame: pl.DataFrame, columns: Sequence[str] = (S.EPISODE,)
    ) -> pl.DataFrame:
        """``frame`` with the integer episode keys in ``columns`` replaced by the ids as
        ingested (unchanged for datasets with integer ids)."""
        return _transitions.label_episodes(self, dataset, frame, columns)

    def rejected(self, dataset: str | None = None) -> pl.DataFrame:
        """Rows quarantined by earlier ingests, with the reason."""
        return _transitions.rejected(self, dataset)

    def sql(
        self,
        query: str,
        params: Mapping[str, Any] | Sequence[Any] | None = None,
        *,
        write: bool = False,
    ) -> pl.DataFrame:
        """Run SQL on the store and return the result as a Polars frame.

        The store opens read-only unless ``write=True``, so an analysis query cannot
        change it by accident. Values belong in ``params`` (``$name`` or ``?``), never
        formatted into the query.
        """
        return _connection.run_sql(self, query, params, write=write)

    def export(
        self,
        query: str,
        path: PathLike,
        *,
        format: str | None = None,
        params: Mapping[str, Any] | Sequence[Any] | None = None,
    ) -> int:
        """Write a query's result to a file with DuckDB's own ``COPY``; return the rows.

        The result streams to the file, whatever its size. ``format``: ``"parquet"``,
        ``"csv"``, ``"tsv"`` or ``"json"`` (one object per line); by default the one that
        ``path``'s ending means (``.parquet``, ``.csv``, ``.tsv``, ``.json``/``.jsonl``);
        any other ending is an error. In CSV, lists and structs are written as JSON text.
        The store is opened read-only.
        """
        return _sql.export(self, query, os.fspath(path), format, params)

    def preview(
        self,
        query: str,
        rows: int | None = 40,
        *,
        params: Mapping[str, Any] | Sequence[Any] | None = None,
    ) -> tuple[pl.DataFrame, int]:
        """The first ``rows`` rows of a query's result (all of them for ``None``) and how
        many rows it has, in one streamed pass; the store is opened read-only."""
        return _sql.preview(self, query, rows, params)

    def fingerprint(self, dataset: str) -> str:
        """A hash of a dataset's content: equal exactly when the transitions are equal."""
        return _transitions.fingerprint(self, dataset)

    def episodes_since(self, dataset: str, ingest_id: int) -> pl.DataFrame:
        """Episodes with a transition from an ingest after ``ingest_id``: episode_id,
        first_ingest_id, last_ingest_id."""
        return _transitions.episodes_since(self, dataset, ingest_id)

    def last_monitor_pass(self, dataset: str, model_fingerprint: str) -> int | None:
        """The newest ingest_id that a model's monitor passes over a dataset have covered."""
        return _monitor.last_monitor_pass(self, dataset, model_fingerprint)

    def record_monitor_pass(
        self,
        pass_row: Mapping[str, Any],
        metrics: pl.DataFrame,
        drift: pl.DataFrame,
        alerts: pl.DataFrame,
        samples: pl.DataFrame,
        histograms: pl.DataFrame | None = None,
    ) -> int:
        """Write one monitor pass and its metrics, drift, alerts, samples and (optionally)
        reference-vs-current histograms; return pass_id.

        One transaction: a pass lands whole or not at all. ``pass_row`` keys: dataset,
        model_path, model_fingerprint, reference, first_ingest_id, last_ingest_id, episodes,
        rows, alerts, started_at. The frames have the columns the ``insert_*`` files select.
        """
        return _monitor.record_monitor_pass(
            self, pass_row, metrics, drift, alerts, samples, histograms
        )

    def record_run(self, run: Mapping[str, Any]) -> int:
        """Append one row to the ``runs`` table; return its ``run_id``.

        Keys: kind, dataset, target, backend, device, params, feature_spec, metrics,
        data_fingerprint, model_path, trial_number, duration_s (dicts stored as JSON).
        """
        return _runs.record_run(self, run)

    def runs(self, dataset: str | None = None) -> pl.DataFrame:
        """Training runs recorded in the store, newest last."""
        return _runs.runs(self, dataset)

    def version(self) -> dict[str, int]:
        """The newest id of each append-only table (0 when empty or absent): a cheap
        read that changes whenever an ingest, a training run, a relabel or a monitor
        pass lands, so long-lived readers (the dashboard) know when to read again."""
        return _connection.version(self)

    def monitoring(self, dataset: str | None = None) -> dict[str, pl.DataFrame]:
        """What monitor passes recorded, oldest first: one frame per table.

        Keys are :attr:`MONITOR_TABLES`; ``metrics``, ``drift`` and ``alerts`` carry
        their pass's ``model_path``. ``drift`` holds each model's latest pass only (it
        grows by passes × features; SQL on the ``drift`` table has the history).
        ``dataset=None`` reads every dataset. A store that no monitor pass has written yet
        gives empty frames. One read-only open.
        """
        return _monitor.monitoring(self, dataset)

    def monitor_samples(self, pass_id: int) -> pl.DataFrame:
        """The (episode_id, step, y_true, y_pred) sample a monitor pass kept."""
        return _monitor.monitor_samples(self, pass_id)

    def drift_history(self, pass_ids: Sequence[int]) -> pl.DataFrame:
        """Every drift row of the given monitor passes, oldest pass first (empty frame when
        none): the dashboard's drift-over-time view. One read-only open."""
        return _monitor.drift_history(self, pass_ids)

    def drift_histograms(self, pass_id: int) -> pl.DataFrame:
        """The (kind, name, edges, reference, current) histograms a monitor pass kept."""
        return _monitor.drift_histograms(self, pass_id)

    def relabel_into(
        self, source: str, target: str, predicted: pa.Table, provenance: Mapping[str, Any]
    ) -> tuple[int, int]:
        """Copy a dataset into a new one with rewards replaced; record the provenance.

        One transaction: the new dataset, its ``ingests`` row and its ``relabels`` row
        land together or not at all. ``source`` is only read. ``predicted`` holds
        ``episode_id``, ``step`` and ``reward``; transitions without a prediction get a
        NULL reward. Returns ``(relabel_id, rows copied)``.
        """
        return _relabels.relabel_into(self, source, target, predicted, provenance)

    def record_relabel(self, provenance: Mapping[str, Any]) -> int:
        """Append one row to the ``relabels`` table (a relabel written to a file)."""
        return _relabels.record_relabel(self, provenance)

    def relabels(self, dataset: str | None = None) -> pl.DataFrame:
        """Relabels recorded in the store (source, target, model, spec), oldest first."""
        return _relabels.relabels(self, dataset)

    def export_partitions(self, dataset: str, folder: PathLike, buckets: int) -> list[str]:
        """Write a dataset as Parquet partitioned by episode bucket; return the files.

        Each episode lands whole in one bucket (``hash(episode_id) % buckets``), so
        per-episode features (next_obs, lags, return-to-go) can be built partition by
        partition on Dask workers without collecting the table anywhere.
        """
        return _transitions.export_partitions(self, dataset, folder, buckets)

    def ingest_preferences(
        self,
        source: logs.Source | Iterable[logs.Source],
        dataset: str,
        *,
        on_error: logs.OnError = "raise",
        progress: Callable[[str], None] | None = None,
    ) -> Any:
        """Ingest judged pairs of segments into the ``preferences`` table, whole or not at all.

        Parameters
        ----------
        source
            A file, glob, folder, Polars or PyArrow table, or a list of them, with the
            columns of :data:`rmlite.data.schema.PREFERENCE_COLUMNS` (``dataset`` excepted).
        dataset
            The dataset whose episodes the segments come from; it must exist, and every
            segment's steps must be stored in it.
        on_error
            ``"raise"`` (default): a bad row, a segment not in the logs or a conflicting
            judgement refuses the whole ingest and leaves the store as it was.
            ``"quarantine"``: good pairs land, the others go to the ``rejected`` table.
        progress
            Called with a short message at each stage.

        Returns
        -------
        PreferenceIngestReport
            Pairs added, already stored, conflicting and rejected.
        """
        return _preferences.ingest_preferences(
            self, source, dataset, on_error=on_error, progress=progress
        )

    def preferences(self, dataset: str, *, keys: bool = False) -> pl.DataFrame:
        """Every judged pair of a dataset (see :data:`rmlite.data.schema.PREFERENCE_COLUMNS`).

        ``episode_a``/``episode_b`` hold the ids as ingested; ``keys=True`` gives integer
        keys, as feature frames' ``groups`` hold them.
        """
        return _preferences.preferences(self, dataset, keys=keys)

    def check(self, dataset: str, next_obs_tolerance: float = 1e-6) -> CheckReport:
        """Check a dataset's log: numbering, episode ends, next_obs, non-finite values."""
        return _transitions.check(self, dataset, next_obs_tolerance)

    def feature_chunks(
        self,
        dataset: str,
        spec: FeatureSpec,
        stats: FittedStats,
        *,
        require_target: bool = True,
        chunk_rows: int | None = None,
    ) -> Iterator[FeatureFrame]:
        """Features of a dataset with fitted statistics, a chunk of whole episodes at a time.

        For applying a model to a dataset of any size (predict, relabel, evaluate): each
        chunk is a :class:`FeatureFrame` of about ``chunk_rows`` transitions (default
        500,000), in episode order, equal to the matching rows of :meth:`features` with
        ``stats``. The store stays open read-only while the iterator runs.
        """
        from rmlite.data.store._feature_stream import DEFAULT_CHUNK_ROWS, feature_chunks

        return feature_chunks(
            self,
            dataset,
            spec,
            stats,
            require_target=require_target,
            chunk_rows=DEFAULT_CHUNK_ROWS if chunk_rows is None else chunk_rows,
        )

    def features(
        self,
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
        """Features and target of a dataset as one contiguous float32 matrix.

        With ``stream_to``, for datasets whose matrix does not fit in memory, the matrix
        is built a chunk of whole episodes at a time into ``stream_to/X.f32`` and ``X``
        is a :class:`~rmlite.data.matrix_file.MatrixFile` (the estimators train and
        predict on it chunk by chunk). The features are the same as in memory; see
        :class:`~rmlite.data.features.StatsPart` for how exact the fitted statistics are.

        Parameters
        ----------
        dataset
            The dataset to featurize.
        spec
            What to build (default: ``FeatureSpec()``, obs and action to reward).
        train_episodes
            Episodes whose rows fit the imputation and scaling statistics (default all),
            by their ids as ingested (text ids too) or their integer keys.
        stats
            Statistics fitted earlier (for example on training episodes, applied now to
            hold-out ones); ``train_episodes`` is then ignored.
        require_target
            Drop rows without a target (``False`` keeps them with ``y = NaN``, to predict).
        stream_to
            A folder for the on-disk matrix (the caller removes it when done).
        chunk_rows
            Transitions per chunk when streaming (default 500,000).
        progress
            Called with a short message per chunk when streaming.
        """
        return _transitions.features(
            self,
            dataset,
            spec,
            train_episodes=train_episodes,
            stats=stats,
            require_target=require_target,
            stream_to=stream_to,
            chunk_rows=chunk_rows,
            progress=progress,
        )
