"""Training beyond one machine on Dask: partitioned data in, the same saved model out.

:func:`train_distributed` is ``rmlite train --scheduler tcp://host:8786`` (or
``--cluster local:N``): the store exports the dataset as Parquet partitioned by episode
bucket, each Dask worker reads its partitions and builds their features (episodes stay
whole, so next_obs, lags and return-to-go are exact), and LightGBM or XGBoost trains
through ``lightgbm.dask`` / ``xgboost.dask``. The client never collects the table: it
holds episode ids, and at the end the hold-out targets and predictions (two vectors).

The preprocessing statistics (imputation values, target scaling) are fitted on the
training episodes of one partition: episodes are hashed into partitions, so that is a
random sample of the training episodes, and with the defaults (``missing="drop"``,
``scaling="none"``) nothing is estimated at all.

:class:`DaskRewardRegressor` is the estimator for dask arrays (LightGBM's ``dask.py``
pattern): ``fit`` on a cluster, ``to_local()`` for a plain :class:`RewardRegressor`,
``save`` writes the usual model folder.

A worker lost during training is an :class:`~rmlite.exceptions.RmliteError` that names
it, raised within seconds, never a hang. One distributed training runs per cluster at a
time (a Dask lock), as both engines have hang reports otherwise.

This is the only module that imports dask; it needs ``pip install 'rmlite[dask]'``.
"""

from __future__ import annotations

import contextlib
import operator
import os
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


class DaskRewardRegressor(RewardRegressor):
    """:class:`~rmlite.RewardRegressor` trained on a Dask cluster (LightGBM or XGBoost).

    Same parameters plus ``client`` (a ``dask.distributed.Client``; default: the current
    one). ``fit`` takes dask arrays (row chunks); ``predict`` takes NumPy (computed here)
    or dask arrays (computed on the workers). ``to_local()`` returns a plain
    :class:`~rmlite.RewardRegressor`; ``save`` writes the same model folder.
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
        """Fit on dask arrays; ``groups``, ``sample_weight`` and ``eval_set`` are not
        supported here."""
        distributed = _require_dask()
        self.check_params()
        if self.backend == "mlp":
            raise ParameterError(
                "The 'backend' parameter of DaskRewardRegressor must be 'lightgbm' or "
                "'xgboost' (the MLP trains on one machine). Got 'mlp' instead."
            )
        if self.n_members != 1 or self.early_stopping_rounds is not None:
            raise ParameterError(
                "DaskRewardRegressor trains one booster without early stopping: set "
                "n_members=1 and early_stopping_rounds=None."
            )
        if groups is not None or sample_weight is not None or eval_set is not None:
            raise ParameterError(
                "DaskRewardRegressor.fit takes no 'groups', 'sample_weight' or 'eval_set' (yet)."
            )
        import dask.array as da

        if not isinstance(X, da.Array) or not isinstance(y, da.Array):
            X, y = da.from_array(np.asarray(X, dtype=np.float32)), da.from_array(np.asarray(y))
        if X.ndim != 2:
            raise SchemaError(f"X must be a 2-d dask array; got {X.ndim} dimensions.")
        client = self.client or distributed.default_client()
        from rmlite.estimators.reward import _LEARNING_RATE
        from rmlite.models.device import resolve_device
        from rmlite.models.gbm import gbm_params
        from rmlite.models.gbm_dask import fit_gbm_dask

        self.device_ = resolve_device(self.device)
        params = gbm_params(
            self.backend,  # type: ignore[arg-type]
            objective=self._objective,
            learning_rate=float(self.learning_rate or _LEARNING_RATE[self.backend]),
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            device=self.device_,
            extra=dict(self.backend_params or {}),
        )
        started = time.perf_counter()
        with _one_training(client, timeout=self.timeout or 600.0):
            booster = watch(
                client,
                lambda: fit_gbm_dask(
                    client,
                    self.backend,  # type: ignore[arg-type]
                    X,
                    y.astype(np.float32),
                    params,
                    int(self.n_estimators),
                ),
                timeout=self.timeout,
            )
        self.members_ = [booster]
        self.curves_ = [{"train": [], "valid": []}]
        self.n_features_in_ = int(X.shape[1])
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def predict(
        self,
        X: Any,
        return_std: bool = False,
        check_input: bool = True,
        pred_contrib: bool = False,
    ) -> Any:
        """Predictions: a dask array for a dask array, else NumPy (as RewardRegressor)."""
        import dask.array as da

        if isinstance(X, da.Array):
            from rmlite.models.gbm_dask import predict_gbm_dask

            if return_std:
                return predict_gbm_dask(self.backend, self.members_[0], X), da.zeros(  # type: ignore[arg-type]
                    X.shape[0], chunks=X.chunks[0]
                )
            return predict_gbm_dask(self.backend, self.members_[0], X)  # type: ignore[arg-type]
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


# -------------------------------------------------------------- the main job


def _read_partition(files: Sequence[str], columns: Sequence[str]) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables([pq.read_table(f, columns=list(columns)) for f in files])
    return table.sort_by([("episode_id", "ascending"), ("step", "ascending")])


def _fit_stats(files: Sequence[str], spec: dict[str, Any], train: np.ndarray) -> dict[str, Any]:
    from rmlite.data.features import FeatureSpec, build_features

    fs = FeatureSpec.from_dict(spec)
    table = _read_partition(files, fs.columns_needed())
    episodes = np.asarray(table.column("episode_id"))
    own = np.intersect1d(np.unique(episodes), train)
    frame = build_features(table, fs, train_episodes=own if len(own) else None)
    return frame.stats.to_dict()


def _partition_features(
    files: Sequence[str], spec: dict[str, Any], stats: dict[str, Any], train: np.ndarray
) -> dict[str, Any]:
    from rmlite.data.features import FeatureSpec, FittedStats, build_features

    fs = FeatureSpec.from_dict(spec)
    table = _read_partition(files, fs.columns_needed())
    frame = build_features(table, fs, stats=FittedStats.from_dict(stats))
    in_train = np.isin(frame.groups, train)
    return {
        "X_train": np.ascontiguousarray(frame.X[in_train]),
        "y_train": frame.y[in_train],
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
    client: Any, parts: list[Any], shapes: list[tuple[int, int, int]], which: str
) -> tuple[Any, Any]:
    import dask
    import dask.array as da

    index = 0 if which == "train" else 1
    xs, ys = [], []
    for part, shape in zip(parts, shapes, strict=True):
        n, d = shape[index], shape[2]
        if n == 0:
            continue
        xs.append(
            da.from_delayed(
                dask.delayed(operator.getitem)(part, f"X_{which}"), shape=(n, d), dtype=np.float32
            )
        )
        ys.append(
            da.from_delayed(
                dask.delayed(operator.getitem)(part, f"y_{which}"), shape=(n,), dtype=np.float32
            )
        )
    if not xs:
        raise SchemaError(f"no {which} rows in any partition; check the hold-out share.")
    return da.concatenate(xs), da.concatenate(ys)


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
    timeout: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train a reward model on a Dask cluster; validate on held-out episodes; save; record.

    Parameters
    ----------
    store, dataset, spec, params, holdout, seed, out
        As in :func:`rmlite.pipeline.train` (the same episode split for the same seed).
    client
        A ``dask.distributed.Client`` (see :func:`connect`).
    partitions
        Episode buckets to export (default: 2 per worker).
    parts_dir
        Where the partitioned Parquet goes; every worker must be able to read it (a shared
        file system on a real cluster). Default: ``<store>.parts/<dataset>`` beside the
        store.
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
    from rmlite.evaluation.metrics import event_metrics, regression_metrics
    from rmlite.pipeline import split_episodes

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
    if model.backend == "mlp" or model.n_members != 1 or model.early_stopping_rounds:
        raise ParameterError(
            "distributed training runs LightGBM or XGBoost, one member, no early stopping: "
            "pass --backend lightgbm|xgboost without --n-members or --early-stopping-rounds."
        )
    timings: dict[str, float] = {}
    started = time.perf_counter()
    episodes = store.episodes(dataset, keys=True)[S.EPISODE].to_numpy()
    train_eps, hold_eps = split_episodes(episodes, holdout, seed)
    n_workers = len(_workers(client))
    buckets = partitions or max(2, 2 * n_workers)
    folder = Path(parts_dir) if parts_dir else Path(f"{store.path}.parts") / dataset
    if store.path == ":memory:" and parts_dir is None:
        folder = Path(tempfile.mkdtemp(prefix="rmlite-parts-")) / dataset

    say(f"exporting {dataset} as {buckets} episode-bucket partitions to {folder}")
    t = time.perf_counter()
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    files = store.export_partitions(dataset, folder, buckets)
    by_bucket: dict[str, list[str]] = {}
    for f in files:
        by_bucket.setdefault(os.path.dirname(f), []).append(f)
    groups = [sorted(v) for _, v in sorted(by_bucket.items())]
    timings["export_s"] = time.perf_counter() - t

    say(f"building features on {n_workers} workers")
    t = time.perf_counter()
    spec_dict = spec.to_dict()
    train_arr = np.asarray(train_eps)
    stats = client.submit(_fit_stats, groups[0], spec_dict, train_arr, pure=False).result(
        timeout=timeout
    )
    parts = [
        client.submit(_partition_features, g, spec_dict, stats, train_arr, pure=False)
        for g in groups
    ]
    shapes = [tuple(s) for s in client.gather([client.submit(_shape, p) for p in parts])]
    X_train, y_train = _stack(client, parts, shapes, "train")
    X_hold, y_hold = _stack(client, parts, shapes, "hold")
    timings["features_s"] = time.perf_counter() - t

    say(f"training {model.backend} on {int(X_train.shape[0]):,} rows across the cluster")
    t = time.perf_counter()
    model.fit(X_train, y_train)
    timings["fit_s"] = time.perf_counter() - t

    say("scoring the hold-out episodes")
    import dask
    import dask.array as da

    g_hold = da.concatenate(
        [
            da.from_delayed(
                dask.delayed(operator.getitem)(p, "g_hold"), shape=(s[1],), dtype=np.int64
            )
            for p, s in zip(parts, shapes, strict=True)
            if s[1]
        ]
    )
    pred, truth, ep = dask.compute(model.predict(X_hold), y_hold, g_hold)
    from rmlite.data.features import FittedStats

    fitted = FittedStats.from_dict(stats)
    y_true = fitted.inverse_transform_target(truth)
    y_pred = fitted.inverse_transform_target(pred)
    hold_metrics = (
        event_metrics(y_true, y_pred)
        if spec.target == "event"
        else regression_metrics(y_true, y_pred, ep if spec.target == "reward" else None)
    )
    metrics = {"holdout": hold_metrics}
    local = model.to_local()
    local.feature_spec_ = spec_dict
    local.feature_stats_ = stats
    local.data_fingerprint_ = store.fingerprint(dataset)
    local.metrics_ = metrics
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
        "model": local,
    }
