"""The log store: one DuckDB file holding every dataset of a project.

This is the only module that imports duckdb; every query it runs lives in ``sql/``. The
store is a normal DuckDB file, so users can open it with DuckDB directly.

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

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from rmlite._typing import PathLike
from rmlite.data import logs
from rmlite.data import schema as S
from rmlite.data.features import FeatureFrame, FeatureSpec, FittedStats, build_features
from rmlite.exceptions import (
    ConflictError,
    DatasetNotFoundError,
    IngestError,
    RmliteError,
    StoreLockedError,
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


@dataclass
class IngestReport:
    """What one ingest did. Counts are transitions."""

    dataset: str
    sources: list[str]
    ingest_id: int
    rows_read: int
    rows_added: int
    rows_duplicate: int
    rows_conflicting: int
    rows_rejected: int
    episodes: int
    obs_dim: int
    action_dim: int
    next_obs_derived: bool
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return asdict(self)

    def __str__(self) -> str:
        parts = [
            f"{self.dataset}: {self.rows_added:,} transitions added",
            f"{self.rows_duplicate:,} already stored",
        ]
        if self.rows_conflicting:
            parts.append(f"{self.rows_conflicting:,} conflicting (quarantined)")
        if self.rows_rejected:
            parts.append(f"{self.rows_rejected:,} rejected (see the 'rejected' table)")
        return ", ".join(parts) + f" from {len(self.sources)} source(s) in {self.seconds:.2f} s"


@dataclass
class CheckReport:
    """Findings of :meth:`LogStore.check`: numbering, episode ends, values."""

    dataset: str
    episodes: dict[str, Any]
    values: dict[str, Any]
    next_obs: dict[str, Any]

    @property
    def problems(self) -> list[str]:
        """Human-readable list of what looks wrong; empty when the log is clean."""
        e, v, n = self.episodes, self.values, self.next_obs
        out = []
        if e["episodes_with_step_gaps"]:
            out.append(
                f"{e['episodes_with_step_gaps']} episodes have gaps in step numbering "
                f"({e['missing_steps']} steps missing; e.g. episodes {e['example_gap_episodes']})"
            )
        if e["episodes_not_starting_at_0"]:
            out.append(f"{e['episodes_not_starting_at_0']} episodes do not start at step 0")
        if e["episodes_unfinished"]:
            out.append(
                f"{e['episodes_unfinished']} episodes end with neither terminated nor truncated "
                f"(e.g. {e['example_unfinished_episodes']})"
            )
        if e["episodes_done_mid_episode"]:
            out.append(
                f"{e['episodes_done_mid_episode']} episodes are terminated/truncated before "
                f"their last step"
            )
        if n["next_obs_mismatch"]:
            out.append(
                f"{n['next_obs_mismatch']} transitions have next_obs different from the next "
                f"step's obs (e.g. [episode, step] {n['example_mismatches']}): an off-by-one?"
            )
        for col in (
            "reward_nan",
            "reward_inf",
            "obs_nan",
            "obs_inf",
            "action_nan",
            "action_inf",
            "next_obs_nan",
            "next_obs_inf",
        ):
            if v[col]:
                out.append(f"{v[col]} {col.replace('_', ' ')} values")
        if v["reward_null"]:
            out.append(f"{v['reward_null']} transitions have no reward")
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary, with the problem list."""
        return {
            "dataset": self.dataset,
            "episodes": self.episodes,
            "values": self.values,
            "next_obs": self.next_obs,
            "problems": self.problems,
        }


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

    def __repr__(self) -> str:
        return f"LogStore({self.path!r})"

    # ------------------------------------------------------------------ connections

    @contextlib.contextmanager
    def connect(self, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file for one operation, retrying while another process holds it.

        A read-only open of a file that does not exist yet is an error that says so.
        """
        if self._memory is not None:
            yield self._memory
            return
        if not write and not os.path.exists(self.path):
            raise RmliteError(
                f"{self.path}: no store here yet. Ingest a log first (rmlite ingest ...) or "
                f"pass --db with the path of an existing store."
            )
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        while True:
            try:
                con = duckdb.connect(self.path, read_only=not write)
                break
            except duckdb.IOException as exc:  # held by another process
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise StoreLockedError(
                        f"{self.path}: cannot open the store ({str(exc).splitlines()[0]}). "
                        f"Another process is writing it; retry when it has finished."
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        try:
            if write:
                _run(con, sql("schema"))
            yield con
        finally:
            con.close()

    # ----------------------------------------------------------------------- ingest

    def ingest(
        self,
        source: logs.Source | Iterable[logs.Source],
        dataset: str,
        mapping: S.ColumnMapping | None = None,
        on_error: logs.OnError = "raise",
        progress: Callable[[str], None] | None = None,
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

        Returns
        -------
        IngestReport
            Counts of rows added, already stored, conflicting and rejected.
        """
        started = time.perf_counter()
        say = progress or (lambda _msg: None)
        if not isinstance(dataset, str) or not dataset.strip():
            raise IngestError(
                f"The dataset name must be a non-empty string. Got {dataset!r} instead."
            )
        sources = (
            [source]
            if isinstance(source, str | os.PathLike | pl.DataFrame | pl.LazyFrame | pa.Table)
            else list(source)
        )
        expected = self._dims(dataset)
        say("reading and checking sources")
        log = logs.prepare(sources, mapping=mapping, on_error=on_error, expected_dims=expected)
        if expected is None and log.obs_dim == 0:
            raise IngestError(f"{', '.join(log.sources)}: obs vectors are empty.")

        say(f"landing {log.frame.height:,} transitions")
        with self.connect(write=True) as con:
            _run(con, "BEGIN TRANSACTION")
            try:
                report = self._land(con, dataset, log, on_error, say)
                _run(con, "COMMIT")
            except BaseException:
                # KeyboardInterrupt too: nothing of this ingest may remain.
                _run(con, "ROLLBACK")
                raise
        report.seconds = time.perf_counter() - started
        say("done")
        return report

    def _land(
        self,
        con: duckdb.DuckDBPyConnection,
        dataset: str,
        log: logs.PreparedLog,
        on_error: logs.OnError,
        say: Callable[[str], None],
    ) -> IngestReport:
        ingest_id = int(_run(con, sql("next_ingest_id"))[0][0])
        staged = logs.canonical_arrow(log.frame, dataset, ingest_id)
        con.register("staged", staged)
        try:
            conflicts = con.sql(sql("staged_conflicts")).pl()
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
                    "obs_dim": log.obs_dim,
                    "action_dim": log.action_dim,
                    "action_discrete": log.action_discrete,
                },
            )
            before = self._count(con, dataset)
            _run(con, sql("insert_new"), {"dataset": dataset})
            added = self._count(con, dataset) - before
        finally:
            con.unregister("staged")

        rejected = log.rejected
        if conflicts.height:
            rejected = pl.concat(
                [
                    rejected,
                    conflicts.select(
                        pl.col("source"),
                        pl.col("source_row").alias("row"),
                        pl.format("conflict: stored with a different {}", pl.col("differs")).alias(
                            "reason"
                        ),
                        pl.col("record"),
                    ),
                ]
            )
        if rejected.height:
            say(f"quarantining {rejected.height:,} rows")
            con.register("rejected_staged", rejected.to_arrow())
            try:
                _run(con, sql("insert_rejected"), {"ingest_id": ingest_id, "dataset": dataset})
            finally:
                con.unregister("rejected_staged")
        duplicate = log.frame.height - added - conflicts.height
        _run(
            con,
            sql("insert_ingest"),
            {
                "ingest_id": ingest_id,
                "dataset": dataset,
                "sources": log.sources,
                "rows_read": log.rows_read,
                "rows_added": added,
                "rows_duplicate": duplicate,
                "rows_rejected": log.rejected.height,
                "rows_conflicting": conflicts.height,
            },
        )
        return IngestReport(
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

    @staticmethod
    def _count(con: duckdb.DuckDBPyConnection, dataset: str) -> int:
        return int(_run(con, "SELECT count(*) FROM transitions WHERE dataset = ?", [dataset])[0][0])

    def _dims(self, dataset: str) -> tuple[int, int] | None:
        if self._memory is None and not os.path.exists(self.path):
            return None
        with self.connect() as con:
            if not self._has_tables(con):
                return None
            rows = _run(con, sql("dataset_info"), {"dataset": dataset})
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    @staticmethod
    def _has_tables(con: duckdb.DuckDBPyConnection, table: str = "datasets") -> bool:
        rows = _run(
            con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
        )
        return bool(rows[0][0])

    # ------------------------------------------------------------------------ reads

    def datasets(self) -> pl.DataFrame:
        """One row per dataset: episodes, transitions, dimensions, missing rewards."""
        with self.connect() as con:
            if not self._has_tables(con):
                return pl.DataFrame()
            return con.sql(sql("datasets")).pl()

    def _require(self, con: duckdb.DuckDBPyConnection, dataset: str) -> None:
        if self._has_tables(con) and _run(con, sql("dataset_info"), {"dataset": dataset}):
            return
        names = (
            [r[0] for r in _run(con, "SELECT name FROM datasets ORDER BY name")]
            if self._has_tables(con)
            else []
        )
        hint = _did_you_mean(dataset, names)
        raise DatasetNotFoundError(
            f"{self.path}: no dataset {dataset!r}{hint}. The store holds: "
            f"{', '.join(map(repr, names)) or 'nothing yet'}."
        )

    def read_arrow(
        self,
        dataset: str,
        columns: Sequence[str] | None = None,
        episodes: Sequence[int] | None = None,
    ) -> pa.Table:
        """All transitions of a dataset (or of some of its episodes) as Arrow, sorted by
        (episode, step)."""
        with self.connect() as con:
            self._require(con, dataset)
            query = sql("read_transitions" if episodes is None else "read_episodes")
            if columns is not None:
                unknown = [c for c in columns if c not in S.COLUMNS]
                if unknown:
                    raise RmliteError(
                        f"unknown column(s) {unknown}; transitions have {list(S.COLUMNS)}."
                    )
                keep = list(dict.fromkeys([S.EPISODE, S.STEP, *columns]))
                query = query.replace(
                    "SELECT episode_id, step, obs, action, reward, next_obs, terminated, "
                    'truncated, "timestamp", extra',
                    "SELECT " + ", ".join(f'"{c}"' for c in keep),
                )
            params: dict[str, Any] = {"dataset": dataset}
            if episodes is not None:
                params["episodes"] = [int(e) for e in episodes]
            return con.sql(query, params=params).to_arrow_table()

    def read(self, dataset: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """All transitions of a dataset as a Polars frame, sorted by (episode, step)."""
        frame = pl.from_arrow(self.read_arrow(dataset, columns))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def episodes(self, dataset: str) -> pl.DataFrame:
        """One row per episode: length, first and last step, return, how it ended."""
        with self.connect() as con:
            self._require(con, dataset)
            return con.sql(sql("episodes"), params={"dataset": dataset}).pl()

    def rejected(self, dataset: str | None = None) -> pl.DataFrame:
        """Rows quarantined by earlier ingests, with the reason."""
        with self.connect() as con:
            if not self._has_tables(con):
                return pl.DataFrame()
            if dataset is None:
                return con.sql("SELECT * FROM rejected ORDER BY ingest_id, source, source_row").pl()
            return con.sql(
                "SELECT * FROM rejected WHERE dataset = $dataset "
                "ORDER BY ingest_id, source, source_row",
                params={"dataset": dataset},
            ).pl()

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
        with self.connect(write=write) as con:
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

    def fingerprint(self, dataset: str) -> str:
        """A hash of a dataset's content: equal exactly when the transitions are equal."""
        with self.connect() as con:
            self._require(con, dataset)
            n, content = con.sql(sql("fingerprint"), params={"dataset": dataset}).fetchall()[0]
        return f"{dataset}:{n}:{int(content):016x}"

    # ------------------------------------------------------------------- monitoring

    def episodes_since(self, dataset: str, ingest_id: int) -> pl.DataFrame:
        """Episodes with a transition from an ingest after ``ingest_id``: episode_id,
        first_ingest_id, last_ingest_id."""
        with self.connect() as con:
            self._require(con, dataset)
            return con.sql(
                sql("episodes_since"), params={"dataset": dataset, "since": int(ingest_id)}
            ).pl()

    def last_monitor_pass(self, dataset: str, model_fingerprint: str) -> int | None:
        """The newest ingest_id that a model's monitor passes over a dataset have covered."""
        with self.connect() as con:
            if not self._has_tables(con, "monitor_passes"):
                return None
            row = _run(
                con,
                sql("last_monitor_pass"),
                {"dataset": dataset, "model_fingerprint": model_fingerprint},
            )
            return None if row[0][0] is None else int(row[0][0])

    def record_monitor_pass(
        self,
        pass_row: Mapping[str, Any],
        metrics: pl.DataFrame,
        drift: pl.DataFrame,
        alerts: pl.DataFrame,
        samples: pl.DataFrame,
    ) -> int:
        """Write one monitor pass and its metrics, drift, alerts and samples; return pass_id.

        One transaction: a pass lands whole or not at all. ``pass_row`` keys: dataset,
        model_path, model_fingerprint, reference, first_ingest_id, last_ingest_id, episodes,
        rows, alerts, started_at. The frames have the columns the ``insert_*`` files select.
        """
        keys = {
            "dataset": pass_row["dataset"],
            "model_fingerprint": pass_row["model_fingerprint"],
        }
        staged = {
            "staged_metrics": (metrics, "insert_metrics"),
            "staged_drift": (drift, "insert_drift"),
            "staged_alerts": (alerts, "insert_alerts"),
            "staged_samples": (samples, "insert_monitor_samples"),
        }
        with self.connect(write=True) as con:
            # Registered outside the transaction: an aborted transaction refuses unregister.
            for name, (frame, _query) in staged.items():
                con.register(name, frame.to_arrow())
            try:
                _run(con, "BEGIN TRANSACTION")
                try:
                    pass_id = int(_run(con, sql("insert_monitor_pass"), dict(pass_row))[0][0])
                    for _frame, query in staged.values():
                        params: dict[str, Any] = {"pass_id": pass_id}
                        if query != "insert_monitor_samples":
                            params.update(keys)
                        _run(con, sql(query), params)
                    _run(con, "COMMIT")
                except BaseException:
                    _run(con, "ROLLBACK")
                    raise
            finally:
                for name in staged:
                    con.unregister(name)
        return pass_id

    def record_run(self, run: Mapping[str, Any]) -> int:
        """Append one row to the ``runs`` table; return its ``run_id``.

        Keys: kind, dataset, target, backend, device, params, feature_spec, metrics,
        data_fingerprint, model_path, trial_number, duration_s (dicts stored as JSON).
        """
        fields = (
            "kind", "dataset", "target", "backend", "device", "params", "feature_spec",
            "metrics", "data_fingerprint", "model_path", "trial_number", "duration_s",
        )  # fmt: skip
        values = {k: run.get(k) for k in fields}
        for k in ("params", "feature_spec", "metrics"):
            if values[k] is not None:
                values[k] = json.dumps(values[k], default=str)
        with self.connect(write=True) as con:
            return int(_run(con, sql("insert_run"), values)[0][0])

    def runs(self, dataset: str | None = None) -> pl.DataFrame:
        """Training runs recorded in the store, newest last."""
        with self.connect() as con:
            if not self._has_tables(con, "runs"):
                return pl.DataFrame()
            query = "SELECT * FROM runs" + (" WHERE dataset = $dataset" if dataset else "")
            params = {"dataset": dataset} if dataset else None
            return con.sql(query + " ORDER BY run_id", params=params).pl()

    # ------------------------------------------------------------------- monitoring

    # The id that grows with each write of a table: readers compare them to see changes.
    _VERSION_IDS = (
        ("ingests", "ingest_id"),
        ("runs", "run_id"),
        ("relabels", "relabel_id"),
        ("monitor_passes", "pass_id"),
    )

    MONITOR_TABLES = ("monitor_passes", "metrics", "drift", "alerts")
    """The tables ``rmlite monitor`` writes, as :meth:`monitoring` returns them."""

    def version(self) -> dict[str, int]:
        """The newest id of each append-only table (0 when empty or absent): a cheap
        read that changes whenever an ingest, a training run, a relabel or a monitor
        pass lands, so long-lived readers (the dashboard) know when to read again."""
        with self.connect() as con:
            out = {}
            for table, column in self._VERSION_IDS:
                if self._has_tables(con, table):
                    # Identifiers come from the constant above; nothing is user input.
                    row = _run(con, f"SELECT coalesce(max({column}), 0) FROM {table}")
                    out[column] = int(row[0][0])
                else:
                    out[column] = 0
            return out

    def monitoring(self, dataset: str | None = None) -> dict[str, pl.DataFrame]:
        """What monitor passes recorded, oldest first: one frame per table.

        Keys are :attr:`MONITOR_TABLES`; ``metrics``, ``drift`` and ``alerts`` carry
        their pass's ``model_path``. ``drift`` holds each model's latest pass only (it
        grows by passes × features; SQL on the ``drift`` table has the history).
        ``dataset=None`` reads every dataset. A store that no monitor pass has written yet
        gives empty frames. One read-only open.
        """
        with self.connect() as con:
            out = {}
            for table in self.MONITOR_TABLES:
                if self._has_tables(con, table) and self._has_tables(con, "monitor_passes"):
                    query = sql(f"monitor_{table.removeprefix('monitor_')}")
                    out[table] = con.sql(query, params={"dataset": dataset}).pl()
                else:
                    out[table] = pl.DataFrame()
            return out

    def monitor_samples(self, pass_id: int) -> pl.DataFrame:
        """The (episode_id, step, y_true, y_pred) sample a monitor pass kept."""
        with self.connect() as con:
            if not self._has_tables(con, "monitor_samples"):
                return pl.DataFrame(
                    schema={
                        "episode_id": pl.Int64,
                        "step": pl.Int64,
                        "y_true": pl.Float64,
                        "y_pred": pl.Float64,
                    }
                )
            return con.sql(sql("monitor_samples"), params={"pass_id": int(pass_id)}).pl()

    # ---------------------------------------------------------------------- relabel

    _RELABEL_FIELDS = (
        "source_dataset", "source_fingerprint", "target", "target_kind", "ingest_id",
        "model_path", "model_fingerprint", "feature_spec", "gamma", "pessimism", "rescale",
        "rows", "rows_predicted",
    )  # fmt: skip

    @staticmethod
    def _relabel_values(provenance: Mapping[str, Any]) -> dict[str, Any]:
        values = {k: provenance.get(k) for k in LogStore._RELABEL_FIELDS}
        for k in ("feature_spec", "rescale"):
            if values[k] is not None:
                values[k] = json.dumps(values[k], default=str)
        return values

    def relabel_into(
        self, source: str, target: str, predicted: pa.Table, provenance: Mapping[str, Any]
    ) -> tuple[int, int]:
        """Copy a dataset into a new one with rewards replaced; record the provenance.

        One transaction: the new dataset, its ``ingests`` row and its ``relabels`` row
        land together or not at all. ``source`` is only read. ``predicted`` holds
        ``episode_id``, ``step`` and ``reward``; transitions without a prediction get a
        NULL reward. Returns ``(relabel_id, rows copied)``.
        """
        with self.connect(write=True) as con:
            self._require(con, source)
            if _run(con, sql("dataset_info"), {"dataset": target}):
                raise IngestError(
                    f"{self.path}: dataset {target!r} already exists; a relabel writes a new "
                    f"dataset and never overwrites one. Choose another name for --out."
                )
            _run(con, "BEGIN TRANSACTION")
            try:
                info = _run(con, sql("dataset_info"), {"dataset": source})
                obs_dim, action_dim, discrete = info[0]
                ingest_id = int(_run(con, sql("next_ingest_id"))[0][0])
                _run(
                    con,
                    sql("upsert_dataset"),
                    {
                        "dataset": target,
                        "obs_dim": obs_dim,
                        "action_dim": action_dim,
                        "action_discrete": discrete,
                    },
                )
                con.register("predicted", predicted)
                try:
                    _run(
                        con,
                        sql("insert_relabeled"),
                        {"target": target, "source": source, "ingest_id": ingest_id},
                    )
                finally:
                    con.unregister("predicted")
                rows = self._count(con, target)
                _run(
                    con,
                    sql("insert_ingest"),
                    {
                        "ingest_id": ingest_id,
                        "dataset": target,
                        "sources": [f"relabel of {source}"],
                        "rows_read": rows,
                        "rows_added": rows,
                        "rows_duplicate": 0,
                        "rows_rejected": 0,
                        "rows_conflicting": 0,
                    },
                )
                values = self._relabel_values(
                    {**provenance, "ingest_id": ingest_id, "target": target, "rows": rows}
                )
                relabel_id = int(_run(con, sql("insert_relabel"), values)[0][0])
                _run(con, "COMMIT")
            except BaseException:
                _run(con, "ROLLBACK")
                raise
        return relabel_id, rows

    def record_relabel(self, provenance: Mapping[str, Any]) -> int:
        """Append one row to the ``relabels`` table (a relabel written to a file)."""
        with self.connect(write=True) as con:
            return int(_run(con, sql("insert_relabel"), self._relabel_values(provenance))[0][0])

    def relabels(self, dataset: str | None = None) -> pl.DataFrame:
        """Relabels recorded in the store (source, target, model, spec), oldest first."""
        with self.connect() as con:
            if not self._has_tables(con, "relabels"):
                return pl.DataFrame()
            query = "SELECT * FROM relabels" + (
                " WHERE source_dataset = $dataset OR target = $dataset" if dataset else ""
            )
            params = {"dataset": dataset} if dataset else None
            return con.sql(query + " ORDER BY relabel_id", params=params).pl()

    def export_partitions(self, dataset: str, folder: PathLike, buckets: int) -> list[str]:
        """Write a dataset as Parquet partitioned by episode bucket; return the files.

        Each episode lands whole in one bucket (``hash(episode_id) % buckets``), so
        per-episode features (next_obs, lags, return-to-go) can be built partition by
        partition on Dask workers without collecting the table anywhere.
        """
        if not isinstance(buckets, int) or buckets < 1:
            raise RmliteError(f"The 'buckets' parameter must be an int >= 1. Got {buckets!r}.")
        folder = os.fspath(folder)
        os.makedirs(os.path.dirname(os.path.abspath(folder)), exist_ok=True)
        with self.connect() as con:
            self._require(con, dataset)
            params = {"dataset": dataset, "buckets": buckets, "folder": folder}
            _run(con, sql("export_partitions"), params)
        return sorted(
            os.path.join(root, name)
            for root, _dirs, names in os.walk(folder)
            for name in names
            if name.endswith(".parquet")
        )

    # ------------------------------------------------------------------ preferences

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
        with self.connect(write=True) as con:
            self._require(con, dataset)
            _run(con, "BEGIN TRANSACTION")
            try:
                ingest_id = int(_run(con, sql("next_ingest_id"))[0][0])
                frame, rejected, conflicts = self._stage_preferences(
                    con, dataset, prepared.frame, on_error
                )
                before = int(_run(con, sql("count_preferences"), {"dataset": dataset})[0][0])
                con.register("staged_preferences", frame.to_arrow())
                try:
                    _run(
                        con, sql("insert_preferences"), {"dataset": dataset, "ingest_id": ingest_id}
                    )
                finally:
                    con.unregister("staged_preferences")
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
                        con.unregister("rejected_staged")
                _run(con, "COMMIT")
            except BaseException:
                _run(con, "ROLLBACK")
                raise
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
        )

    def _stage_preferences(
        self,
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
            missing = con.sql(sql("staged_preference_segments"), params={"dataset": dataset}).pl()
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
            conflicts = con.sql(
                sql("staged_preference_conflicts"), params={"dataset": dataset}
            ).pl()
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
            con.unregister("staged_preferences")
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

    def preferences(self, dataset: str) -> pl.DataFrame:
        """Every judged pair of a dataset (see :data:`rmlite.data.schema.PREFERENCE_COLUMNS`)."""
        with self.connect() as con:
            self._require(con, dataset)
            if not self._has_tables(con, "preferences"):
                return con.sql(
                    "SELECT NULL::BIGINT AS episode_a, NULL::BIGINT AS start_a, "
                    "NULL::BIGINT AS stop_a, NULL::BIGINT AS episode_b, NULL::BIGINT AS start_b, "
                    "NULL::BIGINT AS stop_b, NULL::DOUBLE AS label, NULL::DOUBLE AS margin, "
                    "NULL::VARCHAR AS annotator, NULL::TIMESTAMP AS timestamp, "
                    "NULL::BIGINT AS ingest_id LIMIT 0"
                ).pl()
            return con.sql(sql("read_preferences"), params={"dataset": dataset}).pl()

    # ------------------------------------------------------------------------ check

    def check(self, dataset: str, next_obs_tolerance: float = 1e-6) -> CheckReport:
        """Check a dataset's log: numbering, episode ends, next_obs, non-finite values."""
        with self.connect() as con:
            self._require(con, dataset)
            params = {"dataset": dataset}
            episodes = con.sql(sql("check_episodes"), params=params).pl().row(0, named=True)
            values = con.sql(sql("check_values"), params=params).pl().row(0, named=True)
            nxt = (
                con.sql(sql("check_next_obs"), params={**params, "tolerance": next_obs_tolerance})
                .pl()
                .row(0, named=True)
            )
        return CheckReport(dataset=dataset, episodes=episodes, values=values, next_obs=nxt)

    # --------------------------------------------------------------------- features

    def features(
        self,
        dataset: str,
        spec: FeatureSpec | None = None,
        *,
        train_episodes: Iterable[int] | None = None,
        stats: FittedStats | None = None,
    ) -> FeatureFrame:
        """Features and target of a dataset as one contiguous float32 matrix.

        Parameters
        ----------
        dataset
            The dataset to featurize.
        spec
            What to build (default: ``FeatureSpec()``, obs and action to reward).
        train_episodes
            Episodes whose rows fit the imputation and scaling statistics (default all).
        stats
            Statistics fitted earlier (for example on training episodes, applied now to
            hold-out ones); ``train_episodes`` is then ignored.
        """
        spec = spec or FeatureSpec()
        table = self.read_arrow(dataset, spec.columns_needed())
        return build_features(table, spec, train_episodes=train_episodes, stats=stats)


def _did_you_mean(name: str, options: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
