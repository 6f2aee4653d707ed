"""Training beyond one machine on Dask: partitioned data in, the same saved model out.

:func:`train_distributed` is ``rmlite train --scheduler tcp://host:8786`` (or
``--cluster local:N``): the store exports the dataset as Parquet partitioned by episode
bucket, each Dask worker reads its partitions and builds their features (episodes stay
whole, so next_obs, lags and return-to-go are exact), and LightGBM or XGBoost trains
through ``lightgbm.dask`` / ``xgboost.dask``. The client never collects the table: it
holds episode ids, and at the end the hold-out targets and predictions (two vectors).

The preprocessing statistics (imputation values, target scaling, bootstrap value) are
fitted over the training episodes of every partition: each worker reduces its partition's
training rows to a :class:`~rmlite.data.features.StatsPart`, the parts merge pairwise on
the workers (a tree reduction), and the client finishes the one left (:func:`fit_stats`):
the statistics one process fits, up to float64 summation order.

The partitions go to a folder every worker can read (a shared file system) or to an
fsspec URL (``s3://``, ``gs://``, ``file://``), uploaded after a local export
(:func:`export_partitions`).

:class:`DaskRewardRegressor` is the estimator for dask arrays (LightGBM's ``dask.py``
pattern): ``fit`` on a cluster, ``to_local()`` for a plain :class:`RewardRegressor`,
``save`` writes the usual model folder. It takes episode ``groups``, ``sample_weight``,
early stopping on held-out episodes and ensembles of episode resamples; the MLP trains on
one machine (torch DDP needs a process group that Dask does not set up).

A worker lost during training is an :class:`~rmlite.exceptions.RmliteError` that names
it, raised within seconds, never a hang. One distributed training runs per cluster at a
time (a Dask lock), as both engines have hang reports otherwise.

This is the only module that imports dask; it needs ``pip install 'rmlite[dask]'``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import operator
import os
import posixpath
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from rmlite._typing import PathLike
from rmlite.estimators.reward import RewardRegressor
from rmlite.exceptions import ParameterError, RmliteError, SchemaError

if TYPE_CHECKING:
    from rmlite.data.features import FeatureSpec
    from rmlite.data.store import LogStore

_INSTALL = "pip install 'rmlite[dask]'"


class WorkerLostError(RmliteError):
    """A Dask worker died (or left) while it held part of a training job."""


def _require_dask() -> Any:
    try:
        import dask.array  # noqa: F401  (lightgbm.dask and xgboost.dask need it)
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"distributed training needs dask.distributed and dask.array: {_INSTALL}"
        ) from exc
    return distributed


@contextlib.contextmanager
def connect(
    scheduler: str | None = None, cluster: str | None = None, timeout: float = 60.0
) -> Iterator[Any]:
    """A Dask client for ``scheduler`` (an address) or ``cluster`` (``local:N``); closed after.

    ``local:N`` starts a ``LocalCluster`` of N worker processes with one thread each (in
    a script, only under ``if __name__ == "__main__":``).
    """
    distributed = _require_dask()
    if (scheduler is None) == (cluster is None):
        raise ParameterError("Pass exactly one of 'scheduler' (tcp://host:8786) or 'cluster'.")
    local = None
    if cluster is not None:
        kind, _, n = cluster.partition(":")
        if kind != "local" or not n.isdigit() or int(n) < 1:
            raise ParameterError(
                f"The 'cluster' parameter must look like local:N (N worker processes). "
                f"Got {cluster!r} instead."
            )
        local = distributed.LocalCluster(
            n_workers=int(n),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        )
        scheduler = local.scheduler_address
    try:
        client = distributed.Client(scheduler, timeout=timeout)
    except OSError as exc:
        if local is not None:
            local.close()
        raise RmliteError(
            f"cannot reach the Dask scheduler at {scheduler} within {timeout:.0f} s: {exc}. "
            f"Is it running (dask scheduler), and is the address right?"
        ) from exc
    try:
        yield client
    finally:
        client.close(timeout=30)
        if local is not None:
            local.close(timeout=30)


# ------------------------------------------------------------------ worker watch


def _workers(client: Any) -> set[str]:
    return set(client.scheduler_info(n_workers=-1)["workers"])


def watch(
    client: Any,
    job: Callable[[], Any],
    *,
    timeout: float | None = None,
    poll: Callable[[], None] | None = None,
    what: str = "training",
) -> Any:
    """Run ``job()`` while watching the cluster; raise :class:`WorkerLostError` on a loss.

    The job runs in a daemon thread (a job stuck on a dead peer cannot keep the process
    alive); every half second the scheduler's worker list is compared with the one at the
    start.
    """
    before = _workers(client)
    if not before:
        raise RmliteError(f"the Dask cluster at {client.scheduler.address} has no workers.")
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = job()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"rmlite-{what}", daemon=True)
    thread.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    while thread.is_alive():
        thread.join(0.5)
        if poll is not None:
            poll()
        if not thread.is_alive():
            break
        try:
            lost = before - _workers(client)
        except Exception as exc:  # the scheduler itself is gone
            raise WorkerLostError(f"lost the Dask scheduler during {what}: {exc}") from exc
        if lost:
            raise WorkerLostError(
                f"Dask worker(s) {sorted(lost)} died or left during {what}; the job cannot "
                f"finish without them. Check the workers' memory and logs, then run it again."
            )
        if deadline is not None and time.monotonic() > deadline:
            raise RmliteError(f"{what} on Dask did not finish within {timeout:.0f} s.")
    if "error" in box:
        error = box["error"]
        lost = before - _workers(client)
        if lost:
            raise WorkerLostError(
                f"Dask worker(s) {sorted(lost)} died or left during {what}: {error}"
            ) from error
        raise error
    return box.get("value")


def run_on_workers(
    client: Any,
    func: Callable[[Any], None],
    args: Sequence[Any],
    *,
    poll: Callable[[], None] | None = None,
    timeout: float | None = None,
) -> None:
    """Run ``func(args[i])`` once on each worker of the cluster (Optuna trial loops)."""
    distributed = _require_dask()
    workers = sorted(_workers(client))
    futures = [
        client.submit(func, a, workers=[w], allow_other_workers=False, pure=False)
        for w, a in zip(workers, args, strict=False)
    ]

    def job() -> None:
        distributed.wait(futures)
        for f in futures:
            f.result()

    try:
        watch(client, job, timeout=timeout, poll=poll, what="tuning")
    finally:
        client.cancel([f for f in futures if not f.done()])


@contextlib.contextmanager
def _one_training(client: Any, timeout: float) -> Iterator[None]:
    distributed = _require_dask()
    with client.as_current():
        lock = distributed.Lock("rmlite-training")
    if not lock.acquire(timeout=timeout):
        raise RmliteError(
            f"another rmlite training holds this Dask cluster (waited {timeout:.0f} s); one "
            f"distributed training runs per cluster at a time."
        )
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            lock.release()


# ------------------------------------------------------------------- estimator

_MLP_ON_ONE_MACHINE = (
    "The 'backend' parameter of {who} must be 'lightgbm' or 'xgboost'. Got 'mlp' instead. "
    "The MLP trains on one machine (torch DDP needs a process group that Dask does not "
    "set up): train it without --cluster/--scheduler (with --stream for logs larger than "
    "memory), or use a tree backend on the cluster."
)


def _times_drawn(groups: np.ndarray, episodes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """How often each row's episode was drawn: ``counts[i]`` for ``episodes[i]`` (sorted),
    0 for an episode not in ``episodes``."""
    if len(episodes) == 0:
        return np.zeros(len(groups), dtype=np.float64)
    at = np.minimum(np.searchsorted(episodes, groups), len(episodes) - 1)
    return np.where(episodes[at] == groups, counts[at], 0).astype(np.float64)


def _in(groups: np.ndarray, episodes: np.ndarray) -> np.ndarray:
    return np.isin(groups, episodes)


class DaskRewardRegressor(RewardRegressor):
    """:class:`~rmlite.RewardRegressor` trained on a Dask cluster (LightGBM or XGBoost).

    Same parameters plus ``client`` (a ``dask.distributed.Client``; default: the current
    one) and ``timeout`` (seconds). ``fit`` takes dask arrays (row chunks; NumPy is
    wrapped); ``predict`` takes NumPy (computed here) or dask arrays (computed on the
    workers). ``to_local()`` returns a plain :class:`~rmlite.RewardRegressor`; ``save``
    writes the same model folder.

    What ``fit`` supports, as :class:`~rmlite.RewardRegressor` does:

    - ``groups``: episode ids, a dask array aligned with X. Needed for early stopping and
      ensembles, which split and resample whole episodes (rows without groups are
      refused there rather than split at random: a split that cuts episodes leaks).
    - ``sample_weight``: non-negative row weights, a dask array aligned with X.
    - ``early_stopping_rounds``: ``validation_fraction`` of the episodes are held out of
      each member's training and watched; training keeps the best round. XGBoost stops
      itself (its validation loss is reduced across the workers); LightGBM grows every
      round and the best is chosen after (see :mod:`rmlite.models.gbm_dask`).
    - ``n_members > 1``: members trained one after another, each on a bootstrap resample
      of the training episodes, drawn as :class:`~rmlite.RewardRegressor` draws them
      (same seed, same episodes). A drawn episode enters once, weighted by how often it
      was drawn: the gradient sums of repeating its rows, without copying them across
      the cluster.
    - ``eval_set=(X, y)``: rows whose loss per round is recorded (``curves_``), never used
      to stop.

    ``backend='mlp'`` is refused: see the README's "Scaling out".
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **RewardRegressor._parameter_constraints,
        "client": "no_validation",  # type: ignore[dict-item]
        "timeout": [float, int, None],
    }

    def __init__(
        self,
        backend: str = "lightgbm",
        device: str = "cpu",
        *,
        client: Any = None,
        timeout: float | None = None,
        n_estimators: int = 500,
        max_epochs: int = 100,
        learning_rate: float | None = None,
        early_stopping_rounds: int | None = None,
        validation_fraction: float = 0.1,
        n_members: int = 1,
        random_state: int | None = None,
        n_jobs: int | None = None,
        hidden_sizes: tuple[int, ...] = (256, 256),
        activation: str = "relu",
        dropout: float = 0.0,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        backend_params: dict[str, Any] | None = None,
        importance_type: str = "gain",
    ) -> None:
        super().__init__(
            backend,
            device,
            n_estimators=n_estimators,
            max_epochs=max_epochs,
            learning_rate=learning_rate,
            early_stopping_rounds=early_stopping_rounds,
            validation_fraction=validation_fraction,
            n_members=n_members,
            random_state=random_state,
            n_jobs=n_jobs,
            hidden_sizes=hidden_sizes,
            activation=activation,
            dropout=dropout,
            weight_decay=weight_decay,
            batch_size=batch_size,
            backend_params=backend_params,
            importance_type=importance_type,
        )
        self.client = client
        self.timeout = timeout

    def fit(
        self,
        X: Any,
        y: Any,
        groups: Any = None,
        sample_weight: Any = None,
        eval_set: tuple[Any, Any] | None = None,
    ) -> DaskRewardRegressor:
        """Fit on dask arrays (row chunks); see the class docstring for the options."""
        distributed = _require_dask()
        self.check_params()
        if self.backend == "mlp":
            raise ParameterError(_MLP_ON_ONE_MACHINE.format(who="DaskRewardRegressor"))
        import dask.array as da

        X = X if isinstance(X, da.Array) else da.from_array(np.asarray(X, dtype=np.float32))
        if X.ndim != 2:
            raise SchemaError(f"X must be a 2-d dask array; got {X.ndim} dimensions.")
        X = X.astype(np.float32)
        y = _aligned(y, X, "y", np.float32)
        g = None if groups is None else _aligned(groups, X, "groups", np.int64)
        w = None if sample_weight is None else _aligned(sample_weight, X, "sample_weight", None)
        by_episode = self._splits_rows()
        if by_episode and g is None:
            wanted = (
                "early_stopping_rounds" if self.early_stopping_rounds is not None else "n_members"
            )
            raise ParameterError(
                f"DaskRewardRegressor with {wanted}={getattr(self, wanted)!r} splits and "
                f"resamples whole episodes: pass groups= (episode ids, a dask array aligned "
                f"with X), or set early_stopping_rounds=None and n_members=1."
            )
        holdout = self._dask_eval_set(eval_set, X)
        client = self.client or distributed.default_client()

        # One pass over the cluster for every check and the episode list.
        checks: dict[str, Any] = {}
        if w is not None:
            checks["w_finite"] = da.isfinite(w).all()
            checks["w_negative"] = (w < 0).any()
            checks["w_positive"] = (w > 0).any()
        if by_episode and g is not None:
            checks["episodes"] = da.unique(g)
        checked = dict(zip(checks, client.compute(list(checks.values()), sync=True), strict=True))
        if w is not None:
            if not checked["w_finite"] or checked["w_negative"]:
                raise ParameterError(
                    "sample_weight must hold finite, non-negative weights, one per row of X; "
                    "it has NaN, infinite or negative values. Fix or drop those rows."
                )
            if not checked["w_positive"]:
                raise ValueError("sample_weight is zero for every sample: nothing to learn from.")
        episodes = np.asarray(checked.get("episodes", np.empty(0, np.int64)))

        from rmlite.estimators.reward import _LEARNING_RATE
        from rmlite.models.device import resolve_device
        from rmlite.models.gbm import gbm_params
        from rmlite.models.gbm_dask import fit_gbm_dask

        self.device_ = resolve_device(self.device)
        rng = np.random.default_rng(
            self.random_state if isinstance(self.random_state, int | np.integer) else None
        )
        started = time.perf_counter()
        members: list[Any] = []
        curves: list[dict[str, list[float]]] = []
        with _one_training(client, timeout=self.timeout or 600.0):
            for member in range(self.n_members):
                X_fit, y_fit, w_fit, valid = X, y, w, None
                if by_episode:
                    assert g is not None
                    X_fit, y_fit, w_fit, valid = self._member_data(rng, X, y, g, w, episodes)
                seed = None if self.random_state is None else int(self.random_state) + member
                params = gbm_params(
                    self.backend,  # type: ignore[arg-type]
                    objective=self._objective,
                    learning_rate=float(self.learning_rate or _LEARNING_RATE[self.backend]),
                    random_state=seed,
                    n_jobs=self.n_jobs,
                    device=self.device_,
                    extra=dict(self.backend_params or {}),
                )

                job = functools.partial(
                    fit_gbm_dask,
                    client,
                    self.backend,  # type: ignore[arg-type]
                    X_fit,
                    y_fit,
                    params,
                    int(self.n_estimators),
                    sample_weight=w_fit,
                    valid=valid,
                    early_stopping_rounds=self.early_stopping_rounds,
                    watch=holdout,
                )
                booster, member_curves = watch(client, job, timeout=self.timeout)
                members.append(booster)
                curves.append(member_curves)
        self.members_ = members
        self.curves_ = curves
        self.n_features_in_ = int(X.shape[1])
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _member_data(
        self,
        rng: np.random.Generator,
        X: Any,
        y: Any,
        g: Any,
        w: Any,
        episodes: np.ndarray,
    ) -> tuple[Any, Any, Any, tuple[Any, Any, Any] | None]:
        """One member's training rows (and weights) and its validation rows.

        The draws are :class:`~rmlite.RewardRegressor`'s (``_validation_split`` then
        ``_member_rows``), in the same order, so a seed picks the same episodes.
        """
        fit_eps, valid = episodes, None
        if self.early_stopping_rounds is not None:
            if len(episodes) < 2:
                raise SchemaError(
                    "early stopping needs a validation split of whole episodes, but groups "
                    "holds a single episode; pass more episodes or set "
                    "early_stopping_rounds=None."
                )
            n_val = max(1, round(len(episodes) * self.validation_fraction))
            val_eps = np.sort(rng.choice(episodes, size=n_val, replace=False))
            fit_eps = np.setdiff1d(episodes, val_eps)
            in_val = g.map_blocks(_in, val_eps, dtype=bool)
            valid = (X[in_val], y[in_val], None if w is None else w[in_val])
        counts = np.ones(len(fit_eps), dtype=np.int64)
        if self.n_members > 1:
            drawn = rng.integers(0, len(fit_eps), size=len(fit_eps))
            counts = np.bincount(drawn, minlength=len(fit_eps))
        times = g.map_blocks(_times_drawn, fit_eps, counts, dtype=np.float64)
        keep = times > 0
        weight = None
        if self.n_members > 1:
            weight = times[keep] if w is None else times[keep] * w[keep]
        elif w is not None:
            weight = w[keep]
        return X[keep], y[keep], weight, valid

    def _dask_eval_set(self, eval_set: tuple[Any, Any] | None, X: Any) -> tuple[Any, Any] | None:
        if eval_set is None:
            return None
        import dask.array as da

        if not isinstance(eval_set, tuple | list) or len(eval_set) != 2:
            raise ParameterError("eval_set must be a pair (X_holdout, y_holdout).")
        X_eval = eval_set[0]
        if not isinstance(X_eval, da.Array):
            X_eval = da.from_array(np.asarray(X_eval, dtype=np.float32))
        if X_eval.ndim != 2 or X_eval.shape[1] != X.shape[1]:
            raise ParameterError(
                f"eval_set: X must have {X.shape[1]} columns like X; got shape {X_eval.shape}."
            )
        X_eval = X_eval.astype(np.float32)
        return X_eval, _aligned(eval_set[1], X_eval, "eval_set's y", np.float32)

    def predict(
        self,
        X: Any,
        return_std: bool = False,
        check_input: bool = True,
        pred_contrib: bool = False,
    ) -> Any:
        """Predictions: a dask array for a dask array, else NumPy (as RewardRegressor).

        For a dask array, the mean over members (and their spread with ``return_std``),
        computed block by block on the workers.
        """
        import dask.array as da

        if isinstance(X, da.Array):
            from rmlite.models.gbm_dask import predict_gbm_dask

            if pred_contrib:
                raise ParameterError(
                    "pred_contrib=True needs NumPy input (to_local().predict(X, "
                    "pred_contrib=True)); got a dask array."
                )
            if X.ndim != 2 or X.shape[1] != self.n_features_in_:
                raise SchemaError(
                    f"X has shape {X.shape}, but DaskRewardRegressor is expecting "
                    f"{self.n_features_in_} features as input."
                )
            X = X.astype(np.float32)
            preds = da.stack(
                [predict_gbm_dask(self.backend, m, X) for m in self.members_]  # type: ignore[arg-type]
            )
            mean = preds.mean(axis=0)
            return (mean, preds.std(axis=0)) if return_std else mean
        return super().predict(
            X, return_std=return_std, check_input=check_input, pred_contrib=pred_contrib
        )

    def to_local(self) -> RewardRegressor:
        """The same model as a plain :class:`~rmlite.RewardRegressor` (no client)."""
        params = self.get_params(deep=False)
        params.pop("client")
        params.pop("timeout")
        local = RewardRegressor(**params)
        for name, value in vars(self).items():
            if name.endswith("_") and not name.startswith("_"):
                setattr(local, name, value)
        return local

    def save(self, path: PathLike) -> Path:
        """Write the usual model folder (loads as a :class:`~rmlite.RewardRegressor`)."""
        return self.to_local().save(path)


def _aligned(values: Any, X: Any, name: str, dtype: Any) -> Any:
    """``values`` (NumPy or dask) as a 1-d dask array chunked like X's rows."""
    import dask.array as da

    arr = values if isinstance(values, da.Array) else da.from_array(np.asarray(values))
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise SchemaError(f"{name} must be 1-d, one value per row of X; got shape {arr.shape}.")
    if dtype is not None:
        arr = arr.astype(dtype)
    n, m = arr.shape[0], X.shape[0]
    if not (math.isnan(n) or math.isnan(m)) and n != m:
        raise SchemaError(
            f"{name} has {n:,} entries but X has {m:,} rows; pass one value per row of X."
        )
    if arr.chunks[0] != X.chunks[0] and not any(math.isnan(c) for c in X.chunks[0]):
        arr = arr.rechunk({0: X.chunks[0]})
    return arr


# -------------------------------------------------------------- the main job


def _is_url(path: PathLike) -> bool:
    """Whether a partition folder is an fsspec URL (``s3://``, ``gs://``, ``file://``...)."""
    return "://" in os.fspath(path)


def _read_partition(
    files: Sequence[str], columns: Sequence[str], storage_options: dict[str, Any] | None = None
) -> Any:
    """One partition's transitions as Arrow, sorted by (episode, step).

    Files named by an fsspec URL are read through fsspec (s3fs, gcsfs... must be installed
    on the workers, with credentials there or in ``storage_options``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for f in files:
        if _is_url(f):
            import fsspec

            fs, path = fsspec.core.url_to_fs(f, **(storage_options or {}))
            tables.append(pq.read_table(path, columns=list(columns), filesystem=fs))
        else:
            tables.append(pq.read_table(f, columns=list(columns)))
    table = pa.concat_tables(tables)
    return table.sort_by([("episode_id", "ascending"), ("step", "ascending")])


_Part = tuple[Any, list[str], int, int] | None
"""A partition's sufficient statistics: (StatsPart, feature names, obs_dim, act_dim), or
None for a partition with no row left to build features from."""


def _stats_part(
    files: Sequence[str],
    spec: dict[str, Any],
    train: np.ndarray,
    median_step: int,
    quantile_step: int,
    storage_options: dict[str, Any] | None,
) -> _Part:
    """The training rows' :class:`~rmlite.data.features.StatsPart` of one partition."""
    from rmlite.data.features import FeatureSpec, StatsPart, build_raw

    fs = FeatureSpec.from_dict(spec)
    table = _read_partition(files, fs.columns_needed(), storage_options)
    try:
        raw = build_raw(table, fs)
    except SchemaError as exc:
        if "no transition is left" in str(exc):
            return None  # every row lacks the target or inputs: other partitions may not
        raise
    in_train = np.isin(raw.groups, train)
    part = (
        StatsPart.of(raw, in_train, fs, median_step=median_step, quantile_step=quantile_step)
        if in_train.any()
        else StatsPart()
    )
    return part, raw.names, raw.obs_dim, raw.act_dim


def _merge_parts(a: _Part, b: _Part) -> _Part:
    if a is None or b is None:
        return a if b is None else b
    return a[0].merge(b[0]), a[1], a[2], a[3]


def _tree_reduce(client: Any, futures: list[Any], merge: Callable[[Any, Any], Any]) -> Any:
    """Merge futures pairwise, round after round, on the workers; the last one's future."""
    while len(futures) > 1:
        merged = [
            client.submit(merge, futures[i], futures[i + 1], pure=False)
            for i in range(0, len(futures) - 1, 2)
        ]
        futures = merged + futures[len(futures) - len(futures) % 2 :]
    return futures[0]


def fit_stats(
    client: Any,
    groups: Sequence[Sequence[str]],
    spec: FeatureSpec,
    train_episodes: np.ndarray,
    train_rows: int,
    *,
    storage_options: dict[str, Any] | None = None,
    timeout: float | None = None,
) -> Any:
    """Preprocessing statistics over the training rows of every partition (a tree reduction).

    Each worker reduces its partitions' training rows to a
    :class:`~rmlite.data.features.StatsPart` (sums, counts, Chan's variance terms,
    systematic samples for medians and quartiles); the parts merge pairwise on the workers
    and the client finishes one. The result equals what
    :meth:`~rmlite.LogStore.features` fits in memory on the same training episodes (means,
    standard/min-max scaling and the bootstrap value up to float64 summation order;
    medians and quartiles exactly while the training rows are below 1M and 4M, above
    that from a systematic sample of the same size, taken per partition).

    ``train_rows``: the training episodes' transitions (an upper bound is fine), from
    which the sampling steps are taken as the in-memory path takes them.
    """
    from rmlite.data.features import _MEDIAN_ROWS, _QUANTILE_ROWS

    spec_dict = spec.to_dict()
    median_step = max(1, train_rows // _MEDIAN_ROWS)
    quantile_step = max(1, train_rows // _QUANTILE_ROWS)
    parts = [
        client.submit(
            _stats_part,
            files,
            spec_dict,
            train_episodes,
            median_step,
            quantile_step,
            storage_options,
            pure=False,
        )
        for files in groups
    ]
    merged: _Part = _tree_reduce(client, parts, _merge_parts).result(timeout=timeout)
    if merged is None or merged[0].rows == 0:
        raise SchemaError(
            "no training row is left to fit the preprocessing statistics on: every training "
            "episode's rows lack the target or inputs. Check rewards, or use missing='mean'."
        )
    part, names, obs_dim, act_dim = merged
    return part.finish(spec, names, obs_dim, act_dim)


def _partition_features(
    files: Sequence[str],
    spec: dict[str, Any],
    stats: dict[str, Any],
    train: np.ndarray,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from rmlite.data.features import FeatureSpec, FittedStats, build_features

    fs = FeatureSpec.from_dict(spec)
    table = _read_partition(files, fs.columns_needed(), storage_options)
    try:
        frame = build_features(table, fs, stats=FittedStats.from_dict(stats))
    except SchemaError as exc:
        if "no transition is left" not in str(exc):
            raise
        d = len(stats["feature_names"])
        empty = np.empty((0, d), dtype=np.float32)
        return {
            "X_train": empty,
            "y_train": np.empty(0, np.float32),
            "g_train": np.empty(0, np.int64),
            "X_hold": empty,
            "y_hold": np.empty(0, np.float32),
            "g_hold": np.empty(0, np.int64),
            "n_train": 0,
            "n_hold": 0,
            "d": d,
        }
    in_train = np.isin(frame.groups, train)
    return {
        "X_train": np.ascontiguousarray(frame.X[in_train]),
        "y_train": frame.y[in_train],
        "g_train": frame.groups[in_train],
        "X_hold": np.ascontiguousarray(frame.X[~in_train]),
        "y_hold": frame.y[~in_train],
        "g_hold": frame.groups[~in_train],
        "n_train": int(in_train.sum()),
        "n_hold": int((~in_train).sum()),
        "d": int(frame.X.shape[1]),
    }


def _shape(part: dict[str, Any]) -> tuple[int, int, int]:
    return part["n_train"], part["n_hold"], part["d"]


def _stack(
    parts: list[Any], shapes: list[tuple[int, int, int]], which: str
) -> tuple[Any, Any, Any]:
    """X, y and episode ids of the train or hold-out rows of every partition, as dask
    arrays whose chunks are the partitions (they stay on the workers that built them)."""
    import dask
    import dask.array as da

    index = 0 if which == "train" else 1
    xs, ys, gs = [], [], []
    for part, shape in zip(parts, shapes, strict=True):
        n, d = shape[index], shape[2]
        if n == 0:
            continue

        def get(key: str, part: Any = part) -> Any:
            return dask.delayed(operator.getitem)(part, key)

        xs.append(da.from_delayed(get(f"X_{which}"), shape=(n, d), dtype=np.float32))
        ys.append(da.from_delayed(get(f"y_{which}"), shape=(n,), dtype=np.float32))
        gs.append(da.from_delayed(get(f"g_{which}"), shape=(n,), dtype=np.int64))
    if not xs:
        raise SchemaError(f"no {which} rows in any partition; check the hold-out share.")
    return da.concatenate(xs), da.concatenate(ys), da.concatenate(gs)


def export_partitions(
    store: LogStore,
    dataset: str,
    folder: PathLike,
    buckets: int,
    storage_options: dict[str, Any] | None = None,
) -> list[str]:
    """Export a dataset as Parquet partitioned by episode bucket where the workers read it.

    ``folder`` is a path (every worker must see it: a shared file system) or an fsspec URL
    (``s3://bucket/prefix``, ``gs://...``, ``file:///shared/path``): the store writes the
    partitions to a local temporary folder, then they are uploaded with fsspec (the
    folder's old content is replaced). Returns the files (URLs for a URL).
    """
    import shutil

    if not _is_url(folder):
        local = Path(folder)
        if local.exists():
            shutil.rmtree(local)
        return store.export_partitions(dataset, local, buckets)
    import fsspec

    fs, root = fsspec.core.url_to_fs(os.fspath(folder), **(storage_options or {}))
    root = root.rstrip("/")
    stage = Path(tempfile.mkdtemp(prefix="rmlite-parts-"))
    try:
        files = store.export_partitions(dataset, stage / "parts", buckets)
        if fs.exists(root):
            fs.rm(root, recursive=True)
        remote = []
        for f in files:
            target = f"{root}/{Path(f).relative_to(stage / 'parts').as_posix()}"
            fs.makedirs(posixpath.dirname(target), exist_ok=True)
            fs.put_file(f, target)
            remote.append(fs.unstrip_protocol(target))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return remote


def train_distributed(
    store: LogStore,
    dataset: str,
    spec: FeatureSpec | None = None,
    params: dict[str, Any] | None = None,
    *,
    client: Any,
    holdout: float = 0.2,
    seed: int = 0,
    out: PathLike | None = None,
    partitions: int | None = None,
    parts_dir: PathLike | None = None,
    storage_options: dict[str, Any] | None = None,
    timeout: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train a reward model on a Dask cluster; validate on held-out episodes; save; record.

    Parameters
    ----------
    store, dataset, spec, params, holdout, seed, out
        As in :func:`rmlite.pipeline.train` (the same episode split for the same seed,
        the same preprocessing statistics, early stopping and ensembles by episode).
    client
        A ``dask.distributed.Client`` (see :func:`connect`).
    partitions
        Episode buckets to export (default: 2 per worker).
    parts_dir
        Where the partitioned Parquet goes; every worker must be able to read it: a path
        on a shared file system, or an fsspec URL (``s3://bucket/prefix``,
        ``file:///shared/path``; see :func:`export_partitions`). Default:
        ``<store>.parts/<dataset>`` beside the store.
    storage_options
        fsspec options for a URL ``parts_dir`` (credentials, endpoint), used by the client
        and the workers.
    timeout
        Seconds before training on the cluster is abandoned with an error.

    Returns
    -------
    dict
        ``run_id``, ``model_path``, ``metrics`` (hold-out), ``timings``, ``workers``,
        ``partitions``, and the fitted ``model`` (a :class:`~rmlite.RewardRegressor`).
    """
    from rmlite.data import schema as S
    from rmlite.data.features import FeatureSpec
    from rmlite.evaluation.metrics import regression_metrics
    from rmlite.pipeline import quality_warnings, split_episodes

    _require_dask()
    say = progress or (lambda _m: None)
    spec = spec or FeatureSpec()
    spec.validate()
    if spec.target == "event":
        raise ParameterError(
            "distributed training supports reward and return targets (regression); train "
            "event models on one machine."
        )
    params = {"random_state": seed, **(params or {})}
    model = DaskRewardRegressor(client=client, timeout=timeout, **params)
    model.check_params()
    if model.backend == "mlp":
        raise ParameterError(_MLP_ON_ONE_MACHINE.format(who="distributed training"))
    timings: dict[str, float] = {}
    started = time.perf_counter()
    episodes = store.episodes(dataset, keys=True)
    keys = episodes[S.EPISODE].to_numpy()
    train_eps, hold_eps = split_episodes(keys, holdout, seed)
    train_rows = int(episodes.filter(episodes[S.EPISODE].is_in(train_eps))["length"].sum())
    n_workers = len(_workers(client))
    buckets = partitions or max(2, 2 * n_workers)
    if parts_dir is not None:
        folder: PathLike = parts_dir
    elif store.path == ":memory:":
        folder = Path(tempfile.mkdtemp(prefix="rmlite-parts-")) / dataset
    else:
        folder = Path(f"{store.path}.parts") / dataset

    say(f"exporting {dataset} as {buckets} episode-bucket partitions to {folder}")
    t = time.perf_counter()
    files = export_partitions(store, dataset, folder, buckets, storage_options)
    by_bucket: dict[str, list[str]] = {}
    for f in files:
        by_bucket.setdefault(posixpath.dirname(f), []).append(f)
    groups = [sorted(v) for _, v in sorted(by_bucket.items())]
    timings["export_s"] = time.perf_counter() - t

    say(f"fitting preprocessing statistics over {len(groups)} partitions")
    t = time.perf_counter()
    train_arr = np.asarray(train_eps)
    fitted = fit_stats(
        client,
        groups,
        spec,
        train_arr,
        train_rows,
        storage_options=storage_options,
        timeout=timeout,
    )
    stats = fitted.to_dict()
    timings["stats_s"] = time.perf_counter() - t

    say(f"building features on {n_workers} workers")
    t = time.perf_counter()
    spec_dict = spec.to_dict()
    parts = [
        client.submit(
            _partition_features, g, spec_dict, stats, train_arr, storage_options, pure=False
        )
        for g in groups
    ]
    shapes = [tuple(s) for s in client.gather([client.submit(_shape, p) for p in parts])]
    X_train, y_train, g_train = _stack(parts, shapes, "train")
    X_hold, y_hold, g_hold = _stack(parts, shapes, "hold")
    timings["features_s"] = time.perf_counter() - t

    say(f"training {model.backend} on {int(X_train.shape[0]):,} rows across the cluster")
    t = time.perf_counter()
    # As on one machine: episodes group the early-stopping split and the resamples, and
    # the hold-out is watched (never fitted, never used to stop) for its learning curve.
    model.fit(X_train, y_train, groups=g_train, eval_set=(X_hold, y_hold))
    timings["fit_s"] = time.perf_counter() - t

    say("scoring the hold-out episodes")
    import dask

    pred, truth, ep = dask.compute(model.predict(X_hold), y_hold, g_hold)
    y_true = fitted.inverse_transform_target(truth)
    y_pred = fitted.inverse_transform_target(pred)
    hold_metrics = regression_metrics(y_true, y_pred, ep if spec.target == "reward" else None)
    metrics = {"holdout": hold_metrics}
    notes = quality_warnings(
        hold_metrics,
        spec.target,
        train_episodes=len(train_eps),
        train_rows=int(X_train.shape[0]),
        n_features=len(fitted.feature_names),
        holdout_episodes=len(hold_eps),
    )
    local = model.to_local()
    local.feature_spec_ = spec_dict
    local.feature_stats_ = stats
    local.feature_names_in_ = np.asarray(fitted.feature_names, dtype=object)
    local.data_fingerprint_ = store.fingerprint(dataset)
    local.metrics_ = metrics
    local.dataset_ = dataset
    local.train_episodes_ = [int(e) for e in train_eps]
    model_path = str(local.save(out)) if out is not None else None
    timings["total_s"] = time.perf_counter() - started
    run_params = {**local.get_params(), "dask_workers": n_workers, "partitions": len(groups)}
    run_id = store.record_run(
        {
            "kind": "train-dask",
            "dataset": dataset,
            "target": spec.target,
            "backend": local.backend,
            "device": local.device_,
            "params": run_params,
            "feature_spec": spec_dict,
            "metrics": metrics,
            "data_fingerprint": local.data_fingerprint_,
            "model_path": model_path,
            "duration_s": timings["total_s"],
        }
    )
    return {
        "run_id": run_id,
        "model_path": model_path,
        "metrics": metrics,
        "timings": timings,
        "workers": n_workers,
        "partitions": len(groups),
        "train_episodes": len(train_eps),
        "holdout_episodes": len(hold_eps),
        "warnings": notes,
        "model": local,
    }
