"""Hyper-parameter tuning with Optuna: episode-grouped CV, pruning, persistent studies.

:func:`tune` searches an estimator's parameters on a matrix; :func:`tune_dataset` (what
``rmlite tune`` runs) does the same on a dataset of the store, may search the feature
spec too, then refits the best trial on every training episode, scores it on held-out
episodes, saves it and records it in the ``runs`` table with its trial number.

How a trial is scored
    ``GroupKFold`` over episodes. Each fold trains on its other folds and reports its
    held-out loss as it goes: after boosting rounds (LightGBM, XGBoost) or epochs (MLP).
    For a regression target the loss is the MSE divided by the fold's target variance,
    ``1 - R²``, so trials stay comparable when the spec (``gamma``, ``next_obs``) is part
    of the search; for an event target it is the log loss. The trial's value is the mean
    over folds, lower is better. Intermediate values go to Optuna's pruner at step
    ``fold * rounds + round``, so a trial is compared with others at the same point of
    the same fold, and a bad one stops early.

Why the folds are cached
    Binning the rows into a LightGBM ``Dataset`` or XGBoost ``QuantileDMatrix`` is
    10-22 % of a fit here; :class:`~rmlite.models.folds.FoldCache` builds each fold's
    once per process and set of binning parameters, and every trial reuses them.

Studies
    Persist in a storage (SQLite for one process, Optuna's journal file for several
    processes on one host or a shared file system, a SQL server URL for several hosts)
    so a killed session resumes: ``n_trials`` is the total the study should reach, and
    trials left RUNNING by a dead process are marked FAILED on resume (Optuna's heartbeat
    recovery exists only on SQL storages; this works on all of them). A trial that raises
    is recorded as FAILED with its error and the study goes on.

This is the only module that imports optuna.

Examples
--------
>>> import numpy as np
>>> from rmlite import RewardRegressor
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(1200, 3)).astype(np.float32)
>>> y = X[:, 0] - X[:, 1] ** 2
>>> groups = np.repeat(np.arange(12), 100)
>>> result = tune(RewardRegressor(n_estimators=30, n_jobs=1, random_state=0), X, y,
...               groups=groups, n_trials=4, cv=3, seed=0)
>>> result.n_complete + result.n_pruned == 4, result.best_score > 0.8
(True, True)
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from rmlite._typing import PathLike
from rmlite.exceptions import ParameterError, RmliteError, SchemaError

if TYPE_CHECKING:
    import optuna

    from rmlite.data.features import FeatureSpec
    from rmlite.data.store import LogStore


# ------------------------------------------------------------------ search spaces


@dataclass(frozen=True)
class Float:
    """A float parameter drawn from ``[low, high]`` (log-uniform when ``log``)."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Int:
    """An int parameter drawn from ``[low, high]`` (log-uniform when ``log``)."""

    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class Choice:
    """A parameter drawn from a list of values."""

    choices: tuple[Any, ...]


Dimension = Float | Int | Choice
"""One dimension of a search space; any other value in a space is fixed, not searched."""

# What an experienced practitioner searches first. Learning rates and counts that span
# orders of magnitude are log-uniform. LightGBM's bagging_fraction acts only with
# bagging_freq > 0, hence the fixed 1.
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "lightgbm": {
        "learning_rate": Float(0.01, 0.3, log=True),
        "num_leaves": Int(8, 256, log=True),
        "min_child_samples": Int(5, 200, log=True),
        "lambda_l2": Float(1e-3, 10.0, log=True),
        "feature_fraction": Float(0.5, 1.0),
        "bagging_fraction": Float(0.5, 1.0),
        "bagging_freq": 1,
    },
    "xgboost": {
        "learning_rate": Float(0.01, 0.3, log=True),
        "max_depth": Int(3, 10),
        "min_child_weight": Float(0.5, 50.0, log=True),
        "reg_lambda": Float(1e-3, 10.0, log=True),
        "subsample": Float(0.5, 1.0),
        "colsample_bytree": Float(0.5, 1.0),
    },
    "mlp": {
        "learning_rate": Float(1e-4, 1e-2, log=True),
        "mlp_width": Choice((64, 128, 256, 512)),
        "mlp_depth": Int(1, 4),
        "dropout": Float(0.0, 0.3),
        "weight_decay": Float(1e-6, 1e-2, log=True),
    },
}
"""Default search space per backend; ``mlp_width`` x ``mlp_depth`` make ``hidden_sizes``."""

SPEC_SPACE: dict[str, Any] = {"gamma": Choice((0.9, 0.95, 0.99)), "next_obs": Choice((False, True))}
"""The feature spec's own choices that can join the search (``tune_dataset(search_spec=True)``)."""


def search_space(backend: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The default space of a backend with ``overrides`` applied.

    An override is a :class:`Float`, :class:`Int` or :class:`Choice` (searched), an Optuna
    distribution, ``None`` (drop the default dimension), or any other value (fixed).

    Examples
    --------
    >>> space = search_space("lightgbm", {"num_leaves": Int(8, 64), "lambda_l2": None})
    >>> space["num_leaves"], "lambda_l2" in space
    (Int(low=8, high=64, log=False), False)
    """
    if backend not in DEFAULT_SPACES:
        raise ParameterError(
            f"The 'backend' parameter must be one of {sorted(DEFAULT_SPACES)}. Got {backend!r}."
        )
    space = dict(DEFAULT_SPACES[backend])
    for name, value in (overrides or {}).items():
        if value is None:
            space.pop(name, None)
        else:
            space[name] = _from_optuna(value)
    return space


_search_space = search_space  # tune()'s parameter of the same name shadows it


def parse_dimension(text: str) -> Any:
    """A search-space value from the command line.

    ``float:LOW:HIGH[:log]``, ``int:LOW:HIGH[:log]``, ``A,B,C`` (a choice), ``none``
    (drop the dimension) or one value (fixed). Values are JSON where they parse as JSON.

    Examples
    --------
    >>> parse_dimension("float:0.01:0.3:log"), parse_dimension("31,63,127")
    (Float(low=0.01, high=0.3, log=True), Choice(choices=(31, 63, 127)))
    >>> parse_dimension("7")
    7
    """
    import json

    def value(raw: str) -> Any:
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw

    kind, _, rest = text.partition(":")
    if kind in ("float", "int") and rest:
        parts = rest.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise ParameterError(
                f"search-space value {text!r}: expected {kind}:LOW:HIGH or {kind}:LOW:HIGH:log."
            )
        log = len(parts) == 3
        try:
            if kind == "float":
                return Float(float(parts[0]), float(parts[1]), log)
            return Int(int(parts[0]), int(parts[1]), log)
        except ValueError as exc:
            raise ParameterError(f"search-space value {text!r}: {exc}") from exc
    if text.lower() == "none":
        return None
    if "," in text:
        return Choice(tuple(value(v) for v in text.split(",")))
    return value(text)


def _from_optuna(value: Any) -> Any:
    module = type(value).__module__ or ""
    if not module.startswith("optuna"):
        return value
    name = type(value).__name__
    if name == "FloatDistribution":
        return Float(value.low, value.high, value.log)
    if name == "IntDistribution":
        return Int(value.low, value.high, value.log)
    if name == "CategoricalDistribution":
        return Choice(tuple(value.choices))
    raise ParameterError(f"search space: unsupported Optuna distribution {name}.")


def _suggest(trial: optuna.Trial, space: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, dim in space.items():
        if isinstance(dim, Float):
            out[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
        elif isinstance(dim, Int):
            out[name] = trial.suggest_int(name, dim.low, dim.high, log=dim.log)
        elif isinstance(dim, Choice):
            out[name] = trial.suggest_categorical(name, list(dim.choices))
        else:
            out[name] = dim
    return out


_SPEC_FIELDS = frozenset(
    {
        "obs", "action", "next_obs", "delta", "step", "time_limit", "lags", "gamma",
        "truncation", "tail_tolerance", "event_threshold", "missing", "missing_indicator",
        "scaling",
    }
)  # fmt: skip


def split_params(
    base: Mapping[str, Any], values: Mapping[str, Any], estimator_params: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Estimator parameters and feature-spec overrides of one point of a search space.

    Estimator parameters (``learning_rate``, ``dropout``, ...) are set directly,
    ``mlp_width``/``mlp_depth`` become ``hidden_sizes``, spec fields go to the spec, and
    anything else is a native engine parameter in ``backend_params``.

    Examples
    --------
    >>> split_params({"backend": "mlp"}, {"mlp_width": 64, "mlp_depth": 2, "gamma": 0.9},
    ...              ["backend", "hidden_sizes"])
    ({'backend': 'mlp', 'hidden_sizes': (64, 64)}, {'gamma': 0.9})
    """
    params = dict(base)
    native = dict(params.get("backend_params") or {})
    spec: dict[str, Any] = {}
    width, depth = values.get("mlp_width"), values.get("mlp_depth")
    for name, value in values.items():
        if name in ("mlp_width", "mlp_depth"):
            continue
        if name in _SPEC_FIELDS:
            spec[name] = value
        elif name in estimator_params:
            params[name] = value
        else:
            native[name] = value
    if width is not None or depth is not None:
        current = tuple(params.get("hidden_sizes") or (256, 256))
        w = int(width) if width is not None else (current[0] if current else 256)
        d = int(depth) if depth is not None else len(current)
        params["hidden_sizes"] = (w,) * d
    if native:
        params["backend_params"] = native
    return params, spec


# ----------------------------------------------------------------------- storages


def resolve_storage(storage: str | None, store_path: str | None, workers: int = 1) -> str:
    """Where a study lives, as ``sqlite:///PATH``, ``journal:PATH``, a SQL URL or ``:memory:``.

    Without ``storage``: beside the store, ``<store>.optuna.db`` (SQLite) for one worker
    and ``<store>.optuna.journal`` (Optuna's journal file, safe for parallel processes)
    for several, or when that journal already exists. A path ending in ``.journal`` or
    ``.log`` is a journal file; any other path a SQLite file.

    Examples
    --------
    >>> resolve_storage(None, "/data/project.duckdb")
    'sqlite:////data/project.duckdb.optuna.db'
    >>> resolve_storage(None, "/data/project.duckdb", workers=4)
    'journal:/data/project.duckdb.optuna.journal'
    """
    if storage is None:
        if store_path is None or store_path == ":memory:":
            return ":memory:"
        journal = os.path.abspath(store_path) + ".optuna.journal"
        if workers > 1 or os.path.exists(journal):
            return f"journal:{journal}"
        return f"sqlite:///{os.path.abspath(store_path)}.optuna.db"
    if storage == ":memory:" or "://" in storage or storage.startswith("journal:"):
        resolved = storage
    elif storage.endswith((".journal", ".log")):
        resolved = f"journal:{os.path.abspath(storage)}"
    else:
        resolved = f"sqlite:///{os.path.abspath(storage)}"
    if workers > 1 and (resolved == ":memory:" or resolved.startswith("sqlite:")):
        raise ParameterError(
            f"The 'storage' parameter {storage!r} cannot be shared by {workers} worker "
            f"processes: SQLite locks under parallel writers and memory is per process. Use a "
            f"journal file (--storage study.journal) or a SQL server URL."
        )
    return resolved


def open_storage(storage: str) -> Any:
    """The Optuna storage object of a :func:`resolve_storage` string."""
    optuna = _optuna()
    if storage == ":memory:":
        return optuna.storages.InMemoryStorage()
    if storage.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(storage[len("journal:") :]))
    return optuna.storages.RDBStorage(storage)


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - optuna is a core dependency
        raise ImportError(
            "tuning needs optuna: pip install 'rmlite' (or pip install optuna)."
        ) from exc
    return optuna


def recover_dead_trials(study: optuna.Study, stale_after: float = 600.0) -> list[int]:
    """Mark trials left RUNNING by dead processes as FAILED; return their numbers.

    A trial records its host, process id and a heartbeat time. It is dead when its
    process no longer exists on this host, or when its heartbeat is older than
    ``stale_after`` seconds (a process on another machine).
    """
    optuna = _optuna()
    running = optuna.trial.TrialState.RUNNING
    host, now, dead = socket.gethostname(), time.time(), []
    for trial in study.get_trials(deepcopy=False, states=(running,)):
        attrs = trial.user_attrs
        pid = attrs.get("pid")
        if attrs.get("host") == host and pid == os.getpid():
            continue
        gone = attrs.get("host") == host and pid is not None and not _alive(int(pid))
        stale = now - float(attrs.get("heartbeat", now)) > stale_after
        if gone or stale:
            why = f"process {pid} on {attrs.get('host')} died" if gone else "no heartbeat"
            trial_id = trial._trial_id
            study._storage.set_trial_user_attr(
                trial_id, "error", f"{why}; marked failed when the study resumed"
            )
            study._storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
            dead.append(trial.number)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (killed, not yet reaped) still answers kill(pid, 0).
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[-1][:1] != "Z"
    return True


def study_files(store_path: str) -> list[str]:
    """The study storages kept beside a store that exist: SQLite file, then journal."""
    base = os.path.abspath(store_path)
    return [p for p in (base + ".optuna.db", base + ".optuna.journal") if os.path.exists(p)]


def trial_history(store_path: str) -> list[dict[str, Any]]:
    """Every trial of every study kept beside a store, in trial order per study.

    Reads ``<store>.optuna.db`` (SQLite) and ``<store>.optuna.journal`` where they exist;
    a store without studies gives an empty list. Each trial is a dict: ``storage``,
    ``study``, ``number``, ``state`` (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``,
    ``WAITING``), ``value`` (the minimized objective: ``1 - R²`` or the log loss; None
    unless complete), ``cv_r2`` (the mean fold R² of regression trials, else None),
    ``params``, ``error`` (why a trial failed), ``started_at`` and ``finished_at`` (ISO
    text or None) and ``duration_s``.

    Examples
    --------
    >>> trial_history("/nonexistent/project.duckdb")
    []
    """
    files = study_files(store_path)
    if not files:
        return []
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: list[dict[str, Any]] = []
    for path in files:
        storage = f"sqlite:///{path}" if path.endswith(".db") else f"journal:{path}"
        storage_obj = open_storage(storage)
        for name in optuna.study.get_all_study_names(storage=storage_obj):
            study = optuna.load_study(study_name=name, storage=storage_obj)
            for t in study.get_trials(deepcopy=False):
                value = t.value if t.state == optuna.trial.TrialState.COMPLETE else None
                out.append(
                    {
                        "storage": storage,
                        "study": name,
                        "number": t.number,
                        "state": t.state.name,
                        "value": value,
                        "cv_r2": t.user_attrs.get("cv_r2") if value is not None else None,
                        "params": dict(t.params),
                        "error": t.user_attrs.get("error"),
                        "started_at": t.datetime_start.isoformat() if t.datetime_start else None,
                        "finished_at": (
                            t.datetime_complete.isoformat() if t.datetime_complete else None
                        ),
                        "duration_s": t.duration.total_seconds() if t.duration else None,
                    }
                )
    return out


# ----------------------------------------------------------------------- objective


class _Data:
    """Rows to tune on: a matrix, or a dataset of the store whose spec may be searched."""

    def __init__(
        self,
        X: np.ndarray | None = None,
        y: np.ndarray | None = None,
        groups: np.ndarray | None = None,
        *,
        store_path: str | None = None,
        dataset: str | None = None,
        spec: dict[str, Any] | None = None,
        train_episodes: np.ndarray | None = None,
    ) -> None:
        self.X, self.y, self.groups = X, y, groups
        self.store_path, self.dataset, self.spec = store_path, dataset, spec
        self.train_episodes = train_episodes

    def get(self, overrides: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.X is not None:
            if overrides:
                raise ParameterError(
                    f"search-space entries {sorted(overrides)} are feature-spec fields; they "
                    f"need a dataset (tune_dataset / rmlite tune), not a matrix."
                )
            assert self.y is not None and self.groups is not None
            return self.X, self.y, self.groups
        from rmlite.data.features import FeatureSpec
        from rmlite.data.store import LogStore

        assert self.spec is not None and self.dataset is not None
        spec = FeatureSpec.from_dict({**self.spec, **overrides})
        store = LogStore(self.store_path)
        frame = store.features(self.dataset, spec, train_episodes=self.train_episodes)
        keep = np.isin(frame.groups, np.asarray(self.train_episodes))
        return frame.X[keep], frame.y[keep], frame.groups[keep]


class _Objective:
    """One trial: sample a point, cross-validate it by episode, report as it goes.

    Picklable, so worker processes and Dask workers run the same objective.
    """

    def __init__(
        self,
        data: _Data,
        base: dict[str, Any],
        objective: str,
        space: dict[str, Any],
        cv: int,
        estimator_params: list[str],
    ) -> None:
        self.data, self.base, self.objective = data, base, objective
        self.space, self.cv, self.estimator_params = space, cv, estimator_params
        self._folds: dict[Any, Any] = {}
        self._heartbeat = 0.0

    # A fold cache per spec variant (and per process: rebuilt after pickling).
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_folds": {}}

    def rows(self, spec_overrides: Mapping[str, Any]) -> Any:
        key = tuple(sorted(spec_overrides.items()))
        if key not in self._folds:
            X, y, groups = self.data.get(spec_overrides)
            if len(np.unique(groups)) < self.cv:
                raise SchemaError(
                    f"The 'cv' parameter asks for {self.cv} episode-grouped folds but the "
                    f"training rows hold {len(np.unique(groups))} episodes."
                )
            self._folds[key] = (X, y, groups, {})
        return self._folds[key]

    def __call__(self, trial: optuna.Trial) -> float:
        optuna = _optuna()
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("heartbeat", time.time())
        values = _suggest(trial, self.space)
        params, spec_overrides = split_params(self.base, values, self.estimator_params)
        try:
            losses, r2 = self._cross_validate(trial, params, spec_overrides)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            # Recorded on the trial, which Optuna marks FAILED; the study goes on.
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
            raise
        if r2 is not None:
            trial.set_user_attr("cv_r2", r2)
        trial.set_user_attr("fold_values", losses)
        return float(np.mean(losses))

    def _report(self, trial: optuna.Trial, step: int, value: float) -> bool:
        if not math.isfinite(value):
            return False
        trial.report(value, step)
        now = time.monotonic()
        if now - self._heartbeat > 15.0:
            self._heartbeat = now
            trial.set_user_attr("heartbeat", time.time())
        return bool(trial.should_prune())

    def _cross_validate(
        self, trial: optuna.Trial, params: dict[str, Any], spec_overrides: dict[str, Any]
    ) -> tuple[list[float], float | None]:
        optuna = _optuna()
        from rmlite.estimators.reward import _LEARNING_RATE
        from rmlite.models.folds import episode_folds

        X, y, groups, caches = self.rows(spec_overrides)
        backend = params.get("backend", "lightgbm")
        regression = self.objective == "regression"
        rounds = int(params.get("max_epochs" if backend == "mlp" else "n_estimators", 100))
        # About ten reports per fold: each one is a write to the storage (a commit in SQLite).
        every = 1 if backend == "mlp" else max(1, rounds // 10)
        lr = params.get("learning_rate") or _LEARNING_RATE[backend]
        losses: list[float] = []
        pruned = False
        folds = episode_folds(groups, self.cv)
        for k, (fit_idx, val_idx) in enumerate(folds):
            scale = float(np.var(y[val_idx])) if regression else 1.0
            scale = scale if scale > 0 else 1.0

            def hook(i: int, loss: float | None, k: int = k, scale: float = scale) -> bool:
                nonlocal pruned
                if loss is None or ((i + 1) % every and i + 1 != rounds):
                    return False
                pruned = self._report(trial, k * rounds + i, loss / scale)
                return pruned

            if backend == "mlp":
                curve = self._fit_mlp(params, X, y, fit_idx, val_idx, float(lr), hook)
            else:
                from rmlite.models.folds import FoldCache, fit_fold
                from rmlite.models.gbm import gbm_params

                if "cache" not in caches:
                    caches["cache"] = FoldCache(backend, X, y, groups, self.cv)
                native = gbm_params(
                    backend,
                    objective=self.objective,
                    learning_rate=float(lr),
                    random_state=params.get("random_state"),
                    n_jobs=params.get("n_jobs"),
                    device="cpu" if params.get("device", "cpu") == "cpu" else "cuda",
                    extra=params.get("backend_params"),
                )
                curve = fit_fold(caches["cache"], k, native, rounds, hook)
            if pruned:
                raise optuna.TrialPruned(f"pruned in fold {k}")
            losses.append(float(curve[-1]) / scale)
        r2 = float(1.0 - np.mean(losses)) if regression else None
        return losses, r2

    def _fit_mlp(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        fit_idx: np.ndarray,
        val_idx: np.ndarray,
        lr: float,
        hook: Callable[[int, float | None], bool],
    ) -> list[float]:
        from rmlite.models.mlp import MLPConfig, fit_mlp

        n_jobs = params.get("n_jobs")
        config = MLPConfig(
            hidden_sizes=tuple(int(h) for h in params.get("hidden_sizes", (256, 256))),
            activation=params.get("activation", "relu"),
            dropout=float(params.get("dropout", 0.0)),
            weight_decay=float(params.get("weight_decay", 1e-4)),
            learning_rate=lr,
            batch_size=int(params.get("batch_size", 256)),
            max_epochs=int(params.get("max_epochs", 100)),
            early_stopping_rounds=None,  # the held-out fold scores the trial: no selection on it
            loss="bce" if self.objective == "binary" else "mse",
            device="cpu" if params.get("device", "cpu") == "cpu" else "cuda",
            random_state=params.get("random_state"),
            n_threads=os.cpu_count() if n_jobs == -1 else n_jobs,
            **(params.get("backend_params") or {}),
        )
        model = fit_mlp(
            X[fit_idx],
            y[fit_idx],
            config,
            X_val=X[val_idx],
            y_val=y[val_idx],
            on_epoch=lambda epoch, _train, val: hook(epoch, val),
        )
        return list(model.history["val_loss"])


# -------------------------------------------------------------------- the session


@dataclass
class TuneProgress:
    """Where a tuning session stands, passed to the ``progress`` callback."""

    complete: int
    pruned: int
    failed: int
    running: int
    target: int | None
    best_value: float | None
    best_score: float | None
    metric: str


@dataclass
class TuneResult:
    """What a tuning session found (and, after a refit, produced)."""

    study_name: str
    storage: str
    metric: str
    """``r2`` (mean episode-grouped CV R², higher is better) or ``log_loss`` (lower)."""
    best_score: float
    best_value: float
    """The objective Optuna minimized: ``1 - r2`` or the log loss."""
    best_params: dict[str, Any]
    best_trial: int
    n_complete: int
    n_pruned: int
    n_failed: int
    recovered: list[int] = field(default_factory=list)
    """Trials left RUNNING by a dead process, marked FAILED when this session started."""
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    model: Any = None
    run_id: int | None = None
    model_path: str | None = None
    metrics: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the model object)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}


def _counts(study: Any) -> dict[str, int]:
    optuna = _optuna()
    states = [t.state for t in study.get_trials(deepcopy=False)]
    s = optuna.trial.TrialState
    return {
        "complete": states.count(s.COMPLETE),
        "pruned": states.count(s.PRUNED),
        "failed": states.count(s.FAIL),
        "running": states.count(s.RUNNING),
    }


def _make_pruner(pruning: bool | Any, rounds: int) -> Any:
    optuna = _optuna()
    if pruning is True:
        # Compare with trials at the same step of the same fold; leave the first rounds
        # of the first fold alone (every model is bad after two trees).
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, rounds // 10))
    if pruning is False or pruning is None:
        return optuna.pruners.NopPruner()
    return pruning


def _optimize(
    objective: _Objective,
    storage: str,
    study_name: str,
    n_trials: int | None,
    timeout: float | None,
    pruning: Any,
    rounds: int,
    seed: int | None,
    parallel: bool,
    verbose: bool,
    callbacks: Sequence[Callable[..., None]] = (),
) -> None:
    """One worker's loop: until the study holds ``n_trials`` finished trials or time is up."""
    optuna = _optuna()
    if not verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study_name,
        storage=open_storage(storage) if isinstance(storage, str) else storage,
        sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=parallel),
        pruner=_make_pruner(pruning, rounds),
    )
    finished = (
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.FAIL,
    )
    done = len(study.get_trials(deepcopy=False, states=finished))
    if n_trials is not None and done >= n_trials:
        return
    cbs = list(callbacks)
    if n_trials is not None:
        cbs.append(optuna.study.MaxTrialsCallback(n_trials, states=finished))
    study.optimize(
        objective,
        n_trials=None if n_trials is None else n_trials - done,
        timeout=timeout,
        catch=(Exception,),
        callbacks=cbs,
    )


def _worker_main(args: tuple[Any, ...]) -> None:
    _optimize(*args)


def run_study(
    objective: _Objective,
    *,
    storage: str,
    study_name: str,
    n_trials: int | None,
    timeout: float | None,
    pruning: Any = True,
    workers: int = 1,
    client: Any = None,
    seed: int | None = 0,
    verbose: bool = False,
    progress: Callable[[TuneProgress], None] | None = None,
) -> tuple[Any, list[int]]:
    """Run a study to its target with 1 process, ``workers`` processes or Dask workers."""
    optuna = _optuna()
    if not verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    if n_trials is None and timeout is None:
        raise ParameterError("Pass n_trials or timeout (or both): a study needs an end.")
    if n_trials is not None and n_trials < 1:
        raise ParameterError(f"The 'n_trials' parameter must be >= 1. Got {n_trials!r}.")
    if workers < 1:
        raise ParameterError(f"The 'workers' parameter must be >= 1. Got {workers!r}.")
    if storage.startswith("sqlite:"):
        folder = os.path.dirname(storage[len("sqlite:///") :])
        if folder:
            os.makedirs(folder, exist_ok=True)
    storage_obj = open_storage(storage)
    study = optuna.create_study(
        storage=storage_obj, study_name=study_name, direction="minimize", load_if_exists=True
    )
    if study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise ParameterError(
            f"study {study_name!r} in {storage} maximizes; rmlite's studies minimize. Pass "
            f"another study name."
        )
    recovered = recover_dead_trials(study)
    rounds = int(
        objective.base.get(
            "max_epochs" if objective.base.get("backend") == "mlp" else "n_estimators", 100
        )
    )
    metric = "r2" if objective.objective == "regression" else "log_loss"

    def report(study: Any, _trial: Any = None) -> None:
        if progress is None:
            return
        counts = _counts(study)
        best = _best_value(study)
        progress(
            TuneProgress(
                **counts,
                target=n_trials,
                best_value=best,
                best_score=None if best is None else _score(best, metric),
                metric=metric,
            )
        )

    report(study)
    memory = storage == ":memory:"
    job = (objective, storage_obj if memory else storage, study_name, n_trials, timeout, pruning,
           rounds)  # fmt: skip
    if client is not None:
        _run_on_dask(client, job, seed, verbose, study, report, timeout)
    elif workers == 1:
        _optimize(*job, seed, False, verbose, [report])
    else:
        ctx = mp.get_context("spawn")
        procs = [
            ctx.Process(
                target=_worker_main,
                args=((*job, None if seed is None else seed + i, True, verbose),),
                daemon=True,
            )
            for i in range(workers)
        ]
        for p in procs:
            p.start()
        try:
            while any(p.is_alive() for p in procs):
                report(study)
                for p in procs:
                    p.join(timeout=1.0 / len(procs))
        finally:
            for p in procs:  # interrupted: the workers' RUNNING trials are recovered next time
                if p.is_alive():
                    p.terminate()
                    p.join(5)
        report(study)
    return study, recovered


def _run_on_dask(
    client: Any,
    job: tuple[Any, ...],
    seed: int | None,
    verbose: bool,
    study: Any,
    report: Callable[[Any], None],
    timeout: float | None,
) -> None:
    if job[1] == ":memory:" or not isinstance(job[1], str):
        raise ParameterError(
            "Optuna trials on Dask workers need a storage every worker can reach: a journal "
            "file on a shared file system or a SQL server URL, not memory."
        )
    from rmlite.distributed import run_on_workers

    run_on_workers(
        client,
        _worker_main,
        [(*job, None if seed is None else seed + i, True, verbose) for i in range(1000)],
        poll=lambda: report(study),
        timeout=None if timeout is None else timeout + 120.0,
    )
    report(study)


def _best_value(study: Any) -> float | None:
    try:
        return float(study.best_value)
    except ValueError:  # no complete trial yet
        return None


def _score(value: float, metric: str) -> float:
    return 1.0 - value if metric == "r2" else value


def _summary(study: Any, storage: str, metric: str, recovered: list[int]) -> TuneResult:
    optuna = _optuna()
    counts = _counts(study)
    errors = [
        f"trial {t.number}: {t.user_attrs.get('error', 'failed')}"
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    ]
    if counts["complete"] == 0:
        first = f" First error: {errors[0]}" if errors else ""
        raise RmliteError(
            f"study {study.study_name!r} has no complete trial ({counts['pruned']} pruned, "
            f"{counts['failed']} failed).{first}"
        )
    best = study.best_trial
    return TuneResult(
        study_name=study.study_name,
        storage=storage,
        metric=metric,
        best_score=_score(float(best.value), metric),
        best_value=float(best.value),
        best_params=dict(best.params),
        best_trial=best.number,
        n_complete=counts["complete"],
        n_pruned=counts["pruned"],
        n_failed=counts["failed"],
        recovered=recovered,
        errors=errors[:20],
    )


def _check_estimator(estimator: Any) -> tuple[dict[str, Any], str]:
    from rmlite.estimators.reward import RewardClassifier, RewardRegressor

    if not isinstance(estimator, RewardRegressor | RewardClassifier):
        raise ParameterError(
            f"The 'estimator' parameter must be a RewardRegressor or RewardClassifier. "
            f"Got {type(estimator).__name__} instead."
        )
    estimator.check_params()
    if estimator.n_members != 1:
        raise ParameterError(
            "The 'n_members' parameter must be 1 while tuning (tune one model, then fit an "
            f"ensemble with the best parameters). Got {estimator.n_members}."
        )
    objective = "binary" if isinstance(estimator, RewardClassifier) else "regression"
    return estimator.get_params(deep=False), objective


def tune(
    estimator: Any,
    X: Any,
    y: Any,
    *,
    groups: Any,
    n_trials: int | None = 20,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    search_space: Mapping[str, Any] | None = None,
    cv: int = 3,
    pruning: bool | Any = True,
    workers: int = 1,
    client: Any = None,
    seed: int | None = 0,
    refit: bool = True,
    verbose: bool = False,
    progress: Callable[[TuneProgress], None] | None = None,
) -> TuneResult:
    """Tune an estimator's parameters by episode-grouped cross-validation with Optuna.

    Parameters
    ----------
    estimator
        A :class:`~rmlite.RewardRegressor` or :class:`~rmlite.RewardClassifier`: its
        backend and parameters are the starting point; the search space overrides them.
    X, y, groups
        Rows, targets and episode ids (folds never split an episode).
    n_trials
        Finished trials (complete, pruned or failed) the study should hold: a resumed
        study runs only the rest.
    timeout
        Seconds for this session (each worker), or None.
    storage
        Where the study lives: None (in memory), ``sqlite:///PATH``, a ``.journal`` file
        (several processes), a SQL server URL (several hosts). See :func:`resolve_storage`.
    study_name
        Name of the study in the storage (default ``rmlite-<backend>``); an existing one
        is resumed.
    search_space
        Overrides of :data:`DEFAULT_SPACES` (see :func:`search_space`).
    cv
        Episode-grouped folds per trial.
    pruning
        True: Optuna's median pruner; False: none; or an Optuna pruner.
    workers
        Processes running trials in parallel (needs a journal or SQL storage).
    client
        A ``dask.distributed.Client``: trials run on its workers instead.
    seed
        Seeds the sampler (worker ``i`` uses ``seed + i``).
    refit
        Fit the best parameters on all rows into ``result.model``.
    verbose
        Keep Optuna's per-trial log lines.
    progress
        Called with a :class:`TuneProgress` after every trial.
    """
    base, objective_kind = _check_estimator(estimator)
    if cv < 2:
        raise ParameterError(f"The 'cv' parameter must be an int >= 2. Got {cv!r}.")
    X_arr = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
    y_arr = np.asarray(y, dtype=np.float32)
    groups_arr = np.asarray(groups)
    if not (len(X_arr) == len(y_arr) == len(groups_arr)):
        raise SchemaError(
            f"X, y and groups must have one entry per row; got {len(X_arr)}, {len(y_arr)} and "
            f"{len(groups_arr)}."
        )
    space = _search_space(base["backend"], search_space)
    objective = _Objective(
        _Data(X_arr, y_arr, groups_arr), base, objective_kind, space, cv, list(base)
    )
    resolved = resolve_storage(storage, None, workers)
    name = study_name or f"rmlite-{base['backend']}"
    started = time.perf_counter()
    study, recovered = run_study(
        objective,
        storage=resolved,
        study_name=name,
        n_trials=n_trials,
        timeout=timeout,
        pruning=pruning,
        workers=workers,
        client=client,
        seed=seed,
        verbose=verbose,
        progress=progress,
    )
    metric = "r2" if objective_kind == "regression" else "log_loss"
    result = _summary(study, resolved, metric, recovered)
    if refit:
        params, _ = split_params(base, study.best_trial.params | _fixed(space), list(base))
        from sklearn.base import clone

        result.model = clone(estimator).set_params(**params).fit(X_arr, y_arr, groups=groups_arr)
    result.seconds = time.perf_counter() - started
    return result


def _fixed(space: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in space.items() if not isinstance(v, Float | Int | Choice)}


def tune_dataset(
    store: LogStore,
    dataset: str,
    spec: FeatureSpec | None = None,
    params: dict[str, Any] | None = None,
    *,
    n_trials: int | None = 20,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    search_space: Mapping[str, Any] | None = None,
    search_spec: bool = False,
    cv: int = 3,
    pruning: bool | Any = True,
    workers: int = 1,
    client: Any = None,
    holdout: float = 0.2,
    seed: int = 0,
    out: PathLike | None = None,
    verbose: bool = False,
    progress: Callable[[TuneProgress], None] | None = None,
) -> TuneResult:
    """Tune a reward model on a dataset; refit, score on the hold-out, save and record it.

    The hold-out episodes (the same split as :func:`rmlite.pipeline.train` with this
    ``seed``) never reach a trial. The study lives beside the store unless ``storage``
    says otherwise (see :func:`resolve_storage`), named ``<dataset>-<target>-<backend>``
    by default. ``search_spec=True`` adds :data:`SPEC_SPACE` (``gamma`` for a return
    target, ``next_obs``) to the search. Other arguments are those of :func:`tune`.
    """
    from rmlite.data import schema as S
    from rmlite.data.features import FeatureSpec
    from rmlite.pipeline import make_estimator, score, split_episodes

    spec = spec or FeatureSpec()
    spec.validate()
    params = {"random_state": seed, **(params or {})}
    estimator = make_estimator(spec.target, params)
    base, objective_kind = _check_estimator(estimator)
    if cv < 2:
        raise ParameterError(f"The 'cv' parameter must be an int >= 2. Got {cv!r}.")
    overrides = dict(search_space or {})
    if search_spec:
        spec_space = dict(SPEC_SPACE)
        if spec.target != "return":
            spec_space.pop("gamma")
        overrides = {**spec_space, **overrides}
    space = _search_space(base["backend"], overrides)

    episodes = store.episodes(dataset)[S.EPISODE].to_numpy()
    train_eps, _hold = split_episodes(episodes, holdout, seed)
    data = _Data(
        store_path=store.path, dataset=dataset, spec=spec.to_dict(), train_episodes=train_eps
    )
    objective = _Objective(data, base, objective_kind, space, cv, list(base))
    objective.rows({})  # bad data fails here, before any trial
    resolved = resolve_storage(storage, store.path, workers)
    name = study_name or f"{dataset}-{spec.target}-{base['backend']}"
    started = time.perf_counter()
    study, recovered = run_study(
        objective,
        storage=resolved,
        study_name=name,
        n_trials=n_trials,
        timeout=timeout,
        pruning=pruning,
        workers=workers,
        client=client,
        seed=seed,
        verbose=verbose,
        progress=progress,
    )
    metric = "r2" if objective_kind == "regression" else "log_loss"
    result = _summary(study, resolved, metric, recovered)

    # Refit the best trial on every training episode; score on the hold-out.
    best_params, spec_overrides = split_params(
        base, study.best_trial.params | _fixed(space), list(base)
    )
    best_spec = FeatureSpec.from_dict({**spec.to_dict(), **spec_overrides})
    frame = store.features(dataset, best_spec, train_episodes=train_eps)
    in_train = np.isin(frame.groups, train_eps)
    model = make_estimator(best_spec.target, best_params)
    model.fit(frame.X[in_train], frame.y[in_train], groups=frame.groups[in_train])
    metrics = {
        "holdout": score(model, frame, ~in_train),
        "train": score(model, frame, in_train),
        "cv": {"metric": metric, "value": result.best_score, "folds": cv},
        "study": {"name": name, "storage": resolved, "trial": result.best_trial},
    }
    model.feature_spec_ = best_spec.to_dict()
    model.feature_stats_ = frame.stats.to_dict()
    model.data_fingerprint_ = store.fingerprint(dataset)
    model.metrics_ = metrics
    model.dataset_ = dataset
    model_path = str(model.save(out)) if out is not None else None
    result.seconds = time.perf_counter() - started
    result.run_id = store.record_run(
        {
            "kind": "tune",
            "dataset": dataset,
            "target": best_spec.target,
            "backend": model.backend,
            "device": model.device_,
            "params": model.get_params(),
            "feature_spec": best_spec.to_dict(),
            "metrics": metrics,
            "data_fingerprint": model.data_fingerprint_,
            "model_path": model_path,
            "trial_number": result.best_trial,
            "duration_s": result.seconds,
        }
    )
    result.model, result.model_path = model, model_path
    result.metrics = {"holdout": metrics["holdout"], "train": metrics["train"]}
    return result
