"""What the dashboard shows, read from the store without ever holding it.

DuckDB lets one process write a file, and while it writes no other process can open the
file, not even read-only. The dashboard lives for hours next to ``rmlite ingest`` and
``rmlite monitor``, so :class:`StoreReader` opens the store only for a moment (a short
lock timeout), closes it at once, and, when a writer holds it, keeps serving the last
data it read with a note saying from when. Everything it returns is JSON-ready.

Examples
--------
>>> to_jsonable({"r2": float("nan"), "n": 3})
{'r2': None, 'n': 3}
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from rmlite.dashboard import figures as F
from rmlite.data.store import LogStore
from rmlite.exceptions import RmliteError, StoreLockedError

SINCE = {"1h": 3600, "1d": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
"""Time ranges of the history charts (accuracy, drift over passes), in seconds back from
the newest monitor pass (so a shared link shows the same passes later)."""

LOCK_TIMEOUT = 0.3
"""Seconds one read keeps retrying while a writer holds the store (then: last good data)."""

MIN_CHECK_INTERVAL = 0.5
"""Version checks closer together than this reuse the last answer (many open tabs)."""

UNREADABLE = "__unreadable__"
"""Key of the stand-in :meth:`StoreReader.model_meta` gives for a model.json it cannot parse."""


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: NaN and infinities become None, times ISO text (to the second)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


def dumps(payload: Any) -> str:
    """Strict JSON (no NaN) of anything the dashboard serves or inlines."""
    return json.dumps(to_jsonable(payload), allow_nan=False, separators=(",", ":"))


def rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """A frame as JSON-ready rows."""
    return [to_jsonable(r) for r in frame.to_dicts()] if frame.height else []


def clock(timestamp: float) -> str:
    """Local wall-clock time, HH:MM:SS."""
    return time.strftime("%H:%M:%S", time.localtime(timestamp))


def resolve_model_path(model_path: str, store_path: str) -> str | None:
    """The folder a recorded ``model_path`` names, or None when it is not there.

    Paths are recorded as the training command got them, so a relative one is tried
    against the working directory and then against the store's folder.
    """
    candidates = [model_path]
    if not os.path.isabs(model_path):
        candidates.append(os.path.join(os.path.dirname(os.path.abspath(store_path)), model_path))
    for path in candidates:
        if os.path.isfile(os.path.join(path, "model.json")):
            return path
    return None


def read_model_meta(folder: str) -> dict[str, Any]:
    """``model.json`` of a model folder (curves, metrics, spec), as saved.

    Raises ``ValueError`` naming the file when it is not JSON, nests too deeply, or is not
    an object.
    """
    path = os.path.join(folder, "model.json")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    return meta


def meta_problem(meta: Mapping[str, Any]) -> str | None:
    """What is wrong with the fields the dashboard draws from a ``model.json`` (None: fine).

    The page shows a model's curves, metrics and target; a file edited by hand or written
    by something else must cost a note on that model, never the page.
    """

    def numbers(v: Any) -> bool:
        return isinstance(v, list) and all(
            (isinstance(x, int | float) and not isinstance(x, bool)) or x is None for x in v
        )

    curves = meta.get("curves")
    if curves is not None and not (
        isinstance(curves, list)
        and all(isinstance(c, dict) and all(numbers(v) for v in c.values()) for c in curves)
    ):
        return "'curves' is not a list of objects of number lists"
    metrics = meta.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, dict):
            return "'metrics' is not an object"
        for split in ("train", "holdout"):
            part = metrics.get(split)
            if part is not None and not isinstance(part, dict):
                return f"'metrics.{split}' is not an object"
    spec = meta.get("feature_spec")
    if spec is not None and not (
        isinstance(spec, dict) and isinstance(spec.get("target", ""), str | None)
    ):
        return "'feature_spec' is not an object with a text 'target'"
    return None


def overfitting_of(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The overfitting verdict on a saved model's curves and train / hold-out R²."""
    from rmlite.evaluation.overfit import overfitting

    curves = meta.get("curves") or []
    metrics = meta.get("metrics") or {}
    train_r2 = (metrics.get("train") or {}).get("r2")
    holdout_r2 = (metrics.get("holdout") or {}).get("r2")
    if not curves and train_r2 is None:
        return None
    return dict(
        overfitting(
            curves,
            train_r2=train_r2 if F._finite(train_r2) else None,
            holdout_r2=holdout_r2 if F._finite(holdout_r2) else None,
        )
    )


def store_problem(path: str) -> str | None:
    """Why a store file cannot be opened, when the reason is not a writer (None: busy).

    DuckDB reports every failure to open a file the same way; the dashboard must tell
    "another process is writing it" (wait) from "it is missing or damaged" (act).
    """
    if not os.path.exists(path):
        return f"{path}: the store file is missing (moved or deleted?)"
    if os.path.isdir(path):
        return f"{path}: a folder, not a store file"
    try:
        with open(path, "rb") as f:
            header = f.read(12)
            if len(header) < 12 or header[8:12] != b"DUCK":
                return f"{path}: not a DuckDB store (no DuckDB header): damaged or another kind of file"
            try:  # a writer holds DuckDB's lock on the whole file; a shared lock then fails
                fcntl.lockf(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return None
            fcntl.lockf(f.fileno(), fcntl.LOCK_UN)
    except OSError as exc:
        return f"{path}: cannot read the store file ({exc.strerror})"
    return f"{path}: no process is writing the store, yet DuckDB cannot open it: damaged?"


@dataclass
class Snapshot:
    """Everything read from the store in one refresh."""

    version: str
    read_at: float
    datasets: pl.DataFrame
    runs: pl.DataFrame
    monitoring: dict[str, pl.DataFrame]
    samples: dict[int, pl.DataFrame] = field(default_factory=dict)
    history: dict[tuple[int, ...], pl.DataFrame] = field(default_factory=dict)
    histograms: dict[int, pl.DataFrame] = field(default_factory=dict)


class StoreReader:
    """Reads a store for the dashboard: briefly, read-only, last good data on lock.

    Thread-safe: requests run in Starlette's thread pool and share one reader.
    """

    def __init__(self, path: str, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.path = path
        self.store = LogStore(path, lock_timeout=lock_timeout)
        self._lock = threading.RLock()
        self._snapshot: Snapshot | None = None
        self._checked_at = 0.0
        self._last_version: str | None = None
        self._busy: str | None = None
        self._error: str | None = None
        self._unlocked_failures = 0
        self._models: dict[tuple[str, float], dict[str, Any]] = {}
        self._trials: tuple[tuple[Any, ...], list[dict[str, Any]]] | None = None
        self._cache: dict[tuple[Any, ...], Any] = {}

    # ------------------------------------------------------------------ versions

    def _study_stamp(self) -> tuple[Any, ...]:
        from rmlite.tuning import study_files

        return tuple((p, os.stat(p).st_mtime_ns) for p in study_files(self.path))

    def check(self) -> dict[str, Any]:
        """``{"version", "busy", "error"}``: the store's version now (one brief open)."""
        with self._lock:
            now = time.time()
            if now - self._checked_at >= MIN_CHECK_INTERVAL or self._last_version is None:
                self._checked_at = now
                try:
                    ids = self.store.version()
                    self._last_version = "-".join(str(v) for v in ids.values()) + (
                        f"-{hash(self._study_stamp()) & 0xFFFFFFFF:x}"
                    )
                    self._busy = self._error = None
                    self._unlocked_failures = 0
                except StoreLockedError as exc:
                    problem = store_problem(self.path)
                    # No lock seen may be a writer that just finished: only a second
                    # failure in a row with no writer calls the file damaged.
                    self._unlocked_failures = self._unlocked_failures + 1 if problem else 0
                    if problem is None or (
                        problem.endswith("damaged?") and self._unlocked_failures < 2
                    ):
                        self._busy, self._error = self._busy_note(), None
                    else:
                        cause = str(exc.__cause__ or exc).strip().splitlines()[0]
                        self._busy, self._error = None, f"{problem} ({cause})"
                except Exception as exc:  # a damaged file: say so, keep serving
                    self._busy = None
                    self._error = store_problem(self.path) or f"cannot read the store: {exc}"
            return {
                "version": self._last_version or "",
                "busy": self._busy,
                "error": self._error,
            }

    def _busy_note(self) -> str:
        if self._snapshot is None:
            return "store busy: another process is writing it; the data will appear when it is done"
        return f"store busy, showing data from {clock(self._snapshot.read_at)}"

    def snapshot(self) -> Snapshot | None:
        """The store's content, re-read only when its version changed."""
        with self._lock:
            state = self.check()
            if self._busy or self._error:
                return self._snapshot
            if self._snapshot is not None and self._snapshot.version == state["version"]:
                return self._snapshot
            try:
                snap = Snapshot(
                    version=state["version"],
                    read_at=time.time(),
                    datasets=self.store.datasets(),
                    runs=self.store.runs(),
                    monitoring=self.store.monitoring(),
                )
            except StoreLockedError:
                self._busy = self._busy_note()
                return self._snapshot
            except Exception as exc:  # damaged past its header: say so, keep serving
                self._error = store_problem(self.path) or f"cannot read the store: {exc}"
                return self._snapshot
            self._snapshot = snap
            return snap

    def samples(self, snap: Snapshot, pass_id: int) -> pl.DataFrame | None:
        """A pass's predicted-vs-true sample (passes never change: cached per pass)."""
        with self._lock:
            if pass_id not in snap.samples:
                try:
                    snap.samples[pass_id] = self.store.monitor_samples(pass_id)
                except StoreLockedError:
                    self._busy = self._busy_note()
                    return None
            return snap.samples[pass_id]

    def drift_history(self, snap: Snapshot, pass_ids: Sequence[int]) -> pl.DataFrame | None:
        """Drift rows of some passes (the heat-map's), cached per snapshot and pass set."""
        key = tuple(pass_ids)
        with self._lock:
            if key not in snap.history:
                try:
                    snap.history[key] = self.store.drift_history(key)
                except StoreLockedError:
                    self._busy = self._busy_note()
                    return None
            return snap.history[key]

    def histograms(self, snap: Snapshot, pass_id: int) -> pl.DataFrame | None:
        """A pass's reference-vs-current histograms (cached per pass)."""
        with self._lock:
            if pass_id not in snap.histograms:
                try:
                    snap.histograms[pass_id] = self.store.drift_histograms(pass_id)
                except StoreLockedError:
                    self._busy = self._busy_note()
                    return None
            return snap.histograms[pass_id]

    def cached(self, key: tuple[Any, ...], read: Callable[[LogStore], Any]) -> Any:
        """``read(store)``, kept until the store's version changes (None while a writer
        holds the store: the caller shows what it has, the busy note says why).

        For the views that cost a model load or a full column (the model and dataset
        pages); errors other than a lock propagate, so the caller can say what failed.
        """
        snap = self.snapshot()
        if snap is None:
            return None
        with self._lock:
            full = (snap.version, *key)
            if full not in self._cache:
                try:
                    value = read(self.store)
                except StoreLockedError:
                    self._busy = self._busy_note()
                    return None
                if len(self._cache) >= 16:  # a few pages' worth; the oldest goes first
                    self._cache.pop(next(iter(self._cache)))
                self._cache[full] = value
            return self._cache[full]

    def model_meta(self, model_path: str) -> dict[str, Any] | None:
        """``model.json`` of a recorded model folder, cached until the file changes."""
        folder = resolve_model_path(model_path, self.path)
        if folder is None:
            return None
        try:
            key = (folder, os.stat(os.path.join(folder, "model.json")).st_mtime)
        except OSError:
            return None
        with self._lock:
            if key not in self._models:
                try:
                    self._models[key] = read_model_meta(folder)
                except OSError:
                    return None
                except ValueError as exc:  # shown as a note on this model (build_payload)
                    self._models[key] = {UNREADABLE: str(exc)}
            return self._models[key]

    def trials(self) -> list[dict[str, Any]]:
        """Trial history of the studies beside the store, cached until a file changes."""
        stamp = self._study_stamp()
        with self._lock:
            if self._trials is None or self._trials[0] != stamp:
                from rmlite.tuning import trial_history

                try:
                    history = trial_history(self.path) if stamp else []
                except Exception as exc:  # a study being written; keep what was shown
                    if self._trials is not None:
                        return self._trials[1]
                    raise RmliteError(f"cannot read the tuning studies: {exc}") from exc
                self._trials = (stamp, history)
            return self._trials[1]

    # ------------------------------------------------------------------- payload

    def payload(
        self, dataset: str | None = None, model: str | None = None, since: str | None = None
    ) -> dict[str, Any]:
        """The page's data for a dataset (None: all) and a model folder (None: latest);
        ``since`` (a key of :data:`SINCE`) limits the history charts."""
        snap = self.snapshot()
        state = {"busy": self._busy, "error": self._error}
        if snap is None:
            return {
                "store": self.path,
                "version": self._last_version or "",
                **state,
                "datasets": [],
                "runs": [],
                "models": [],
                "alerts": [],
                "selected": {"dataset": None, "model": None},
                "figures": empty_figures(),
            }
        try:
            history = self.trials()
        except RmliteError as exc:
            history, state["error"] = [], str(exc)
        body = build_payload(
            snap.datasets,
            snap.runs,
            snap.monitoring,
            dataset=dataset,
            model=model,
            sample_for=lambda pass_id: self.samples(snap, pass_id),
            meta_for=self.model_meta,
            trials=history,
            store_path=self.path,
            history_for=lambda ids: self.drift_history(snap, ids),
            histograms_for=lambda pass_id: self.histograms(snap, pass_id),
            since=since,
        )
        return {
            "store": self.path,
            "version": snap.version,
            "read_at": clock(snap.read_at),
            **state,
            **body,
            # After the payload's own busy check (a sample read may have hit a writer).
            "busy": self._busy,
        }


# ------------------------------------------------------------------ the payload


def _target(meta: Mapping[str, Any] | None) -> str | None:
    """The model's target (reward, return, event) from its model.json, when known."""
    spec = (meta or {}).get("feature_spec") or {}
    return spec.get("target")


def empty_figures() -> dict[str, Any]:
    return {
        "accuracy": F.accuracy([]),
        "scatter": F.scatter([]),
        "residuals": F.residuals([]),
        "curves": F.empty("Learning curves", "no model yet: rmlite train --out DIR"),
        "drift": F.drift([]),
        "drift_history": F.drift_history([]),
        "drift_histograms": F.drift_histograms([]),
        "trials": F.trials([]),
    }


def canonical(model_path: str, store_path: str) -> str:
    """The real path of the folder a recorded ``model_path`` names (as is when missing)."""
    found = resolve_model_path(model_path, store_path)
    return os.path.realpath(found) if found is not None else model_path


def canonical_paths(frame: pl.DataFrame, store_path: str) -> pl.DataFrame:
    """``frame`` with its ``model_path`` column made :func:`canonical`."""
    if not frame.height or "model_path" not in frame.columns:
        return frame
    paths = frame["model_path"].drop_nulls().unique().to_list()
    mapping = {p: canonical(p, store_path) for p in paths}
    return frame.with_columns(pl.col("model_path").replace(mapping))


def short_path(path: str | None, store_path: str) -> str | None:
    """A model folder relative to the store's folder when it lies inside it."""
    if path is None:
        return None
    base = os.path.dirname(os.path.abspath(store_path))
    if os.path.isabs(path) and os.path.commonpath([base, path]) == base:
        return os.path.relpath(path, base)
    return path


def model_options(
    runs: pl.DataFrame, passes: pl.DataFrame, store_path: str = ""
) -> list[dict[str, Any]]:
    """Model folders the store knows (trained or monitored), newest first, labelled."""
    out: dict[str, dict[str, Any]] = {}
    if runs.height and "model_path" in runs.columns:
        for r in (
            runs.filter(pl.col("model_path").is_not_null()).sort("run_id").iter_rows(named=True)
        ):
            out[r["model_path"]] = {
                "path": r["model_path"],
                "label": f"{short_path(r['model_path'], store_path)} (run {r['run_id']}: "
                f"{r['backend']}, {r['target']}, "
                f"{r['dataset']})",
                "dataset": r["dataset"],
                "order": (to_jsonable(r["created_at"]) or "", r["run_id"]),
            }
    if passes.height:
        for r in passes.filter(pl.col("model_path").is_not_null()).iter_rows(named=True):
            out.setdefault(
                r["model_path"],
                {
                    "path": r["model_path"],
                    "label": f"{short_path(r['model_path'], store_path)} "
                    f"(monitored on {r['dataset']})",
                    "dataset": r["dataset"],
                    "order": (to_jsonable(r["finished_at"]) or "", 0),
                },
            )
    options = sorted(out.values(), key=lambda o: o["order"], reverse=True)
    return [{k: v for k, v in o.items() if k != "order"} for o in options]


def model_choice(snap: Snapshot, model: str | None) -> str | None:
    """The requested model if the store knows it, else the newest one (monitored first)."""
    options = [o["path"] for o in model_options(snap.runs, snap.monitoring["monitor_passes"])]
    if model in options:
        return model
    passes = snap.monitoring["monitor_passes"]
    if passes.height:
        known = passes.filter(pl.col("model_path").is_not_null())
        if known.height:
            return str(known.sort("pass_id")["model_path"][-1])
    return options[0] if options else None


def latest_pass(passes: pl.DataFrame, dataset: str | None, model: str | None) -> int | None:
    """The newest monitor pass of a model (on a dataset, when one is chosen)."""
    if not passes.height or model is None:
        return None
    chosen = passes.filter(pl.col("model_path") == model)
    if dataset is not None:
        chosen = chosen.filter(pl.col("dataset") == dataset)
    return int(chosen["pass_id"].max()) if chosen.height else None  # type: ignore[arg-type]


def _recorded_paths(runs: pl.DataFrame, monitoring: Mapping[str, pl.DataFrame]) -> set[str]:
    """Every ``model_path`` the store recorded, as recorded."""
    out: set[str] = set()
    for frame in (runs, monitoring.get("monitor_passes", pl.DataFrame())):
        if frame.height and "model_path" in frame.columns:
            out.update(frame["model_path"].drop_nulls().to_list())
    return out


def model_pass_ids(
    passes: pl.DataFrame,
    dataset: str | None,
    model: str | None,
    limit: int = F.DRIFT_HISTORY_PASSES,
) -> list[int]:
    """The newest ``limit`` monitor passes of a model (on a dataset, when one is chosen),
    oldest first: the drift-over-time heat-map's columns."""
    if not passes.height or model is None:
        return []
    chosen = _of(passes, dataset, model)
    return sorted(int(p) for p in chosen["pass_id"].sort().tail(limit).to_list())


def _since(passes: pl.DataFrame, since: str | None) -> str | None:
    """The start of a :data:`SINCE` range as the store's time text (None: everything)."""
    if since not in SINCE or not passes.height or "finished_at" not in passes.columns:
        return None
    newest = passes["finished_at"].max()
    if not isinstance(newest, dt.datetime):
        return None
    start = newest - dt.timedelta(seconds=SINCE[since])
    return str(to_jsonable(start))


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _frame(frame: pl.DataFrame | None) -> pl.DataFrame:
    return frame if frame is not None else pl.DataFrame()


def drift_figures(
    drift_rows: Sequence[Mapping[str, Any]],
    *,
    history_rows: Sequence[Mapping[str, Any]] = (),
    histogram_rows: Sequence[Mapping[str, Any]] = (),
    where: str = "",
    title: str = "Drift per feature",
) -> dict[str, Any]:
    """The drift charts of a pass: bars (top-k, and all of them when there are more),
    the heat-map over passes and the histograms of the most drifted columns."""
    figures = {
        "drift": F.drift(drift_rows, title=f"{title}{where}"),
        "drift_history": F.drift_history(history_rows),
        "drift_histograms": F.drift_histograms(
            histogram_rows, drift_rows, title=f"Reference vs current{where}"
        ),
    }
    if len(F.by_severity(drift_rows)) > F.DRIFT_TOP:
        figures["drift_all"] = F.drift(drift_rows, title=f"{title}{where}", top=None)
        figures["drift_history_all"] = F.drift_history(history_rows, top=None)
    return figures


def unique_alerts(alerts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each alert once: the same words raised by several passes (the report's window and
    the monitor passes over the same episodes, or an overfitting alarm every pass repeats)
    become one row listing the passes.

    >>> a = {"severity": "alert", "source": "drift", "name": "x", "message": "m"}
    >>> [r["pass_id"] for r in unique_alerts([{**a, "pass_id": "this report"}, {**a, "pass_id": 2}])]
    ['this report, 2']
    """
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for alert in alerts:
        key = tuple(alert.get(k) for k in ("severity", "source", "name", "message"))
        if key in merged:
            first = merged[key]
            first["pass_id"] = f"{first['pass_id']}, {alert.get('pass_id')}"
        else:
            merged[key] = dict(alert)
    return list(merged.values())


def _of(frame: pl.DataFrame, dataset: str | None, model: str | None) -> pl.DataFrame:
    if not frame.height:
        return frame
    if dataset is not None:
        frame = frame.filter(pl.col("dataset") == dataset)
    if model is not None and "model_path" in frame.columns:
        frame = frame.filter(pl.col("model_path") == model)
    return frame


def _run_rows(runs: pl.DataFrame, dataset: str | None, store_path: str) -> list[dict[str, Any]]:
    if not runs.height:
        return []
    out = []
    for r in (
        _of(runs, dataset, None).sort("run_id", descending=True).head(50).iter_rows(named=True)
    ):
        metrics = json_object(r.get("metrics")).get("holdout") or {}
        key = "auc" if r.get("target") == "event" else "r2"
        out.append(
            {
                "run_id": r["run_id"],
                "kind": r["kind"],
                "dataset": r["dataset"],
                "target": r["target"],
                "backend": r["backend"],
                "metric": key,
                "holdout": to_jsonable(metrics.get(key)),
                "model_path": short_path(r["model_path"], store_path),
                "created_at": to_jsonable(r["created_at"]),
            }
        )
    return out


def json_object(value: Any) -> dict[str, Any]:
    """A JSON column's object (DuckDB hands JSON back as text); {} for anything else."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value:
        try:
            loaded = json.loads(value)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return {}


def holdout_points(
    runs: pl.DataFrame, model: str | None, dataset: str | None
) -> list[dict[str, Any]]:
    """Training-time hold-out metrics of the runs that wrote a model folder."""
    if not runs.height or model is None:
        return []
    chosen = _of(runs, dataset, model)
    return [
        {
            "run_id": r["run_id"],
            "created_at": to_jsonable(r["created_at"]),
            "metrics": to_jsonable(json_object(r.get("metrics")).get("holdout") or {}),
        }
        for r in chosen.iter_rows(named=True)
    ]


def build_payload(
    datasets: pl.DataFrame,
    runs: pl.DataFrame,
    monitoring: Mapping[str, pl.DataFrame],
    *,
    dataset: str | None,
    model: str | None,
    sample_for: Callable[[int], pl.DataFrame | None],
    meta_for: Callable[[str], Mapping[str, Any] | None],
    trials: Sequence[Mapping[str, Any]],
    store_path: str,
    window: Mapping[str, Any] | None = None,
    keep_model: bool = False,
    history_for: Callable[[Sequence[int]], pl.DataFrame | None] | None = None,
    histograms_for: Callable[[int], pl.DataFrame | None] | None = None,
    since: str | None = None,
) -> dict[str, Any]:
    """Tables and figures for one dataset (None: all) and one model folder.

    Shared by the live app and the report (which adds ``window``, the metrics of the
    episodes it scored). ``sample_for(pass_id)`` gives the predicted-vs-true sample of a
    monitor pass and ``meta_for(model_path)`` a model's ``model.json`` (None: missing).
    ``keep_model``: draw ``model`` even when no run or pass of the store names it.
    ``history_for(pass_ids)`` gives the drift rows of those passes (the drift-over-time
    heat-map reads the model's newest :data:`~rmlite.dashboard.figures.DRIFT_HISTORY_PASSES`)
    and ``histograms_for(pass_id)`` a pass's reference-vs-current histograms.
    """
    # Training records the folder as given (often relative), monitoring resolves it: one
    # model must be one choice, so every model_path becomes the folder's real path.
    recorded = _recorded_paths(runs, monitoring)
    runs = canonical_paths(runs, store_path)
    monitoring = {k: canonical_paths(v, store_path) for k, v in monitoring.items()}
    # A requested path is looked up on disk only when the store recorded it (or the
    # caller vouches for it): the page must not tell whether a model.json exists at any
    # path a query names, so "missing" and "not recorded" get the same answer.
    if model is not None and (keep_model or model in recorded):
        model = canonical(model, store_path)
    passes = monitoring.get("monitor_passes", pl.DataFrame())
    names = datasets["dataset"].to_list() if datasets.height else []
    notes = []
    if dataset is not None and dataset not in names:
        notes.append(f"no dataset named {dataset!r} in this store; showing every dataset")
        dataset = None
    options = model_options(runs, passes, store_path)
    paths = [o["path"] for o in options]
    if model is not None and model not in paths and not keep_model:
        if model:
            notes.append(f"no model {model!r} recorded in this store; showing the newest")
        model = None
    if model is None:
        snap = Snapshot("", 0.0, datasets, runs, dict(monitoring))
        model = model_choice(snap, None)

    metric_rows = rows(_of(monitoring.get("metrics", pl.DataFrame()), dataset, model))
    pass_id = latest_pass(passes, dataset, model)
    start = _since(passes, since)
    if start is not None:
        metric_rows = [r for r in metric_rows if str(r.get("created_at") or "") >= start]
    drift_frame = monitoring.get("drift", pl.DataFrame())
    drift_rows = (
        rows(drift_frame.filter(pl.col("pass_id") == pass_id))
        if pass_id is not None and drift_frame.height
        else []
    )
    alerts = monitoring.get("alerts", pl.DataFrame())
    alert_rows = (
        rows(_of(alerts, dataset, None).sort("pass_id", descending=True).head(30))
        if alerts.height
        else []
    )
    history_ids = model_pass_ids(
        passes if start is None else passes.filter(pl.col("started_at") >= _time(start)),
        dataset,
        model,
    )
    model_meta = meta_for(model) if model else None
    overfit, problem = None, None
    if model_meta is not None:
        problem = model_meta[UNREADABLE] if UNREADABLE in model_meta else meta_problem(model_meta)
        if problem is None:
            try:
                overfit = overfitting_of(model_meta)
            except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
                problem = str(exc)
        if problem is not None:
            notes.append(
                f"model {short_path(model, store_path)}: its model.json has an unexpected "
                f"shape ({problem}); its learning curves and overfitting are not shown"
            )
            model_meta, overfit = None, None
    sample = sample_for(pass_id) if pass_id is not None else None
    sample_rows = rows(sample) if sample is not None else []
    where = f" · pass {pass_id}" if pass_id is not None else ""
    figures = {
        "accuracy": F.accuracy(metric_rows, holdout_points(runs, model, dataset), window),
        "scatter": (
            F.calibration(sample_rows, title=f"Calibration{where}")
            if _target(model_meta) == "event"
            else F.scatter(sample_rows, title=f"Predicted vs true{where}")
        ),
        "residuals": F.residuals(sample_rows, title=f"Residuals (predicted − true){where}"),
        "curves": (
            F.learning_curves(model_meta.get("curves") or [], overfit)
            if model_meta
            else F.empty(
                "Learning curves",
                "this model's model.json has an unexpected shape (see the note)"
                if problem is not None
                else "no model folder found for this run"
                if model
                else "no model yet: rmlite train --out DIR",
            )
        ),
        **drift_figures(
            drift_rows,
            history_rows=rows(_frame(history_for(history_ids) if history_for else None)),
            histogram_rows=rows(
                _frame(histograms_for(pass_id) if histograms_for and pass_id is not None else None)
            ),
            where=where,
        ),
        "trials": F.trials(trials),
    }
    dataset_rows = (
        rows(datasets.select("dataset", "transitions", "episodes", "updated_at"))
        if datasets.height
        else []
    )
    alert_count = sum(1 for a in alert_rows if a.get("pass_id") == pass_id) if pass_id else 0
    alert_rows = unique_alerts(alert_rows)
    kpis = [
        {"label": "datasets", "value": len(dataset_rows)},
        {"label": "transitions", "value": sum(int(r["transitions"] or 0) for r in dataset_rows)},
        {"label": "training runs", "value": runs.height},
        {"label": "monitor passes", "value": passes.height},
        {"label": "alerts in the latest pass", "value": alert_count, "bad": alert_count > 0},
    ]
    if overfit:
        kpis.append(
            {
                "label": "overfitting",
                "value": overfit.get("status"),
                "bad": bool(overfit.get("alarm")),
            }
        )
    return {
        "kpis": kpis,
        "datasets": dataset_rows,
        "runs": _run_rows(runs, dataset, store_path),
        "models": options,
        "alerts": alert_rows,
        "overfitting": to_jsonable(overfit),
        "passes": passes.height,
        "selected": {"dataset": dataset, "model": model, "pass_id": pass_id},
        "notes": notes,
        "figures": figures,
    }
