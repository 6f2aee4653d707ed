"""The main job, top-down: collect → ingest → check → features → fit → validate → save.

:func:`train` is what ``rmlite train`` runs: features from the store, a hold-out of whole
episodes, fit, metrics against the held-out ground truth, the saved model, and a row in
the store's ``runs`` table. :func:`evaluate` and :func:`predict` apply a saved model to a
dataset with exactly the preprocessing it was trained with. ``rmlite quickstart`` runs
the data path on the embedded default store.

Examples
--------
>>> import tempfile, os
>>> summary = quickstart(db=os.path.join(tempfile.mkdtemp(), "qs.duckdb"), episodes=4)
>>> summary["transitions"], summary["problems"]
(800, 'none')
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rmlite._typing import PathLike
from rmlite.data import schema as S
from rmlite.data.features import FeatureFrame, FeatureSpec, feature_names
from rmlite.data.store import LogStore, default_path
from rmlite.evaluation.frame import model_frame, model_frame_chunks
from rmlite.exceptions import ParameterError, SchemaError

QUICKSTART_ENV = "Pendulum-v1"
QUICKSTART_DATASET = "pendulum"
QUICKSTART_SPEC = {"next_obs": True, "target": "reward", "missing": "drop"}
"""Features of the quickstart model: obs, action and next_obs to the immediate reward."""
QUICKSTART_PARAMS: dict[str, Any] = {
    "backend": "lightgbm",
    "n_estimators": 100,
    "learning_rate": 0.2,
    "early_stopping_rounds": 10,
    "backend_params": {"num_leaves": 15},
}
"""The quickstart model: small trees (Pendulum's reward is smooth), so that predicting it
each step of a Gymnasium env stays cheap (see ``rmlite bench wrapper``)."""
QUICKSTART_MODEL_DIR = "rmlite-models/quickstart"
"""Where quickstart saves its model, relative to the store's folder."""


def quickstart(
    db: str | None = None,
    episodes: int = 40,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Collect Pendulum-v1, ingest, check, build features, train and validate; summarize.

    The model (LightGBM, :data:`QUICKSTART_PARAMS`) is trained on four fifths of the
    episodes and scored against the ground-truth rewards of the held-out fifth; it is
    saved in ``rmlite-models/quickstart`` beside the store, and a first monitor pass
    records its accuracy and drift on the held-out episodes (``rmlite quickstart`` then
    writes the HTML report beside the model). Running it twice is safe: the second ingest
    finds every transition already stored.
    """
    from rmlite.rl import collect_log

    say = progress or (lambda _m: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    store = LogStore(db or default_path())

    t = time.perf_counter()
    say(f"collecting {episodes} episodes of {QUICKSTART_ENV} (8 envs, random policy)")
    log = collect_log(QUICKSTART_ENV, episodes, seed=seed, num_envs=8, progress=say)
    timings["collect_s"] = time.perf_counter() - t

    t = time.perf_counter()
    report = store.ingest(log, dataset=QUICKSTART_DATASET, progress=say)
    timings["ingest_s"] = time.perf_counter() - t

    t = time.perf_counter()
    say("checking the log")
    check = store.check(QUICKSTART_DATASET)
    timings["check_s"] = time.perf_counter() - t

    # Hold out a fifth of the episodes (the split train() makes with the same seed);
    # statistics are fitted on the rest only.
    t = time.perf_counter()
    say("building features")
    episode_ids = store.episodes(QUICKSTART_DATASET)["episode_id"].to_numpy()
    train_eps, holdout = split_episodes(episode_ids, 0.2, seed)
    spec = FeatureSpec(**QUICKSTART_SPEC)  # type: ignore[arg-type]
    frame = store.features(QUICKSTART_DATASET, spec, train_episodes=train_eps)
    timings["features_s"] = time.perf_counter() - t

    t = time.perf_counter()
    model_dir = os.path.join(os.path.dirname(os.path.abspath(store.path)), QUICKSTART_MODEL_DIR)
    result = train(
        store,
        QUICKSTART_DATASET,
        spec,
        dict(QUICKSTART_PARAMS),
        holdout=0.2,
        seed=seed,
        out=model_dir,
        progress=say,
    )
    timings["train_s"] = time.perf_counter() - t

    # A first monitor pass over the held-out episodes: the dashboard and the report then
    # show accuracy and drift from the start (a re-run finds nothing new and adds nothing).
    t = time.perf_counter()
    say("monitoring the held-out episodes (accuracy, drift, overfitting)")
    from rmlite.evaluation.monitor import monitor_pass

    watched = monitor_pass(store, model_dir, QUICKSTART_DATASET, model=result.model)
    timings["monitor_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - started
    hold = result.metrics["holdout"]
    alerts = len(watched.window.alerts) if watched is not None else 0
    from rmlite.evaluation.overfit import explain_overfitting

    overfit = (
        explain_overfitting(watched.window.overfitting)
        if watched is not None
        else "not checked: no new episodes to monitor (the first run checked them)"
    )

    return {
        "store": store.path,
        "dataset": QUICKSTART_DATASET,
        "env": QUICKSTART_ENV,
        "episodes": len(episode_ids),
        "transitions": int(check.values["transitions"]),
        "added_now": report.rows_added,
        "already_stored": report.rows_duplicate,
        "problems": "; ".join(check.problems) or "none",
        "reward_range": f"[{check.values['reward_min']:.3f}, {check.values['reward_max']:.3f}]",
        "feature_rows": len(frame),
        "features": len(frame.feature_names),
        "train_episodes": len(train_eps),
        "holdout_episodes": len(holdout),
        "model": f"lightgbm, {_n_trees(result.model)} trees",
        "holdout_r2": round(float(hold["r2"]), 4),
        "holdout_rmse": round(float(hold["rmse"]), 4),
        "model_path": result.model_path,
        "run_id": result.run_id,
        "monitor_pass": watched.pass_id if watched is not None else None,
        "alerts": alerts,
        "overfitting": overfit,
        **{k: round(v, 3) for k, v in timings.items()},
    }


def _n_trees(model: Any) -> int:
    booster = model.members_[0]
    return int(getattr(booster, "best_iteration", 0) or booster.current_iteration())


# --------------------------------------------------------------------------- train


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    model: Any
    metrics: dict[str, Any]
    run_id: int
    model_path: str | None
    train_episodes: list[int]
    holdout_episodes: list[int]
    cv: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    streamed: bool = False
    """Whether the features were built on disk and the model trained from there."""
    warnings: list[str] = field(default_factory=list)
    """Why the metrics mean little, when they do: too little data
    (:func:`~rmlite.evaluation.metrics.data_size_warnings`) or a model worse than the mean
    (:func:`~rmlite.evaluation.metrics.skill_warnings`); also issued as Python warnings."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the model object)."""
        return {
            "run_id": self.run_id,
            "model_path": self.model_path,
            "metrics": self.metrics,
            "cv": self.cv,
            "train_episodes": len(self.train_episodes),
            "holdout_episodes": len(self.holdout_episodes),
            "timings": self.timings,
            "streamed": self.streamed,
            "params": self.model.get_params(),
            "warnings": self.warnings,
        }


def split_episodes(
    episodes: Sequence[int] | np.ndarray, holdout: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split episode ids into training and hold-out sets (at least one episode each)."""
    episodes = np.asarray(episodes)
    if len(episodes) < 2:
        raise SchemaError(
            f"an episode-grouped hold-out needs at least 2 episodes; the dataset has "
            f"{len(episodes)}. Ingest more episodes."
        )
    if not 0.0 < holdout < 1.0:
        raise SchemaError(
            f"The 'holdout' parameter must be a float in the range (0.0, 1.0). Got {holdout!r} instead."
        )
    rng = np.random.default_rng(seed)
    n_hold = min(len(episodes) - 1, max(1, round(len(episodes) * holdout)))
    held = rng.choice(episodes, size=n_hold, replace=False)
    return np.setdiff1d(episodes, held), np.sort(held)


def make_estimator(target: str, params: dict[str, Any]) -> Any:
    """A RewardClassifier for event targets, else a RewardRegressor."""
    from rmlite.estimators.reward import RewardClassifier, RewardRegressor

    cls = RewardClassifier if target == "event" else RewardRegressor
    return cls(**params)


def score(model: Any, frame: FeatureFrame, rows: np.ndarray | slice) -> dict[str, Any]:
    """Metrics of a model on some rows of a frame, in the target's own units."""
    from rmlite.evaluation.metrics import event_metrics, regression_metrics

    X, y, groups = frame.X[rows], frame.y[rows], frame.groups[rows]
    if frame.spec.target == "event":
        return event_metrics(y, model.predict_proba(X)[:, 1])
    stats = frame.stats
    y_true = stats.inverse_transform_target(y)
    y_pred = stats.inverse_transform_target(model.predict(X))
    # Summed per-episode error is meaningful for immediate rewards (it is the return).
    return regression_metrics(y_true, y_pred, groups if frame.spec.target == "reward" else None)


def train(
    store: LogStore,
    dataset: str,
    spec: FeatureSpec | None = None,
    params: dict[str, Any] | None = None,
    *,
    holdout: float = 0.2,
    cv: int = 0,
    seed: int = 0,
    out: PathLike | None = None,
    progress: Callable[[str], None] | None = None,
    stream: bool | None = None,
    chunk_rows: int | None = None,
) -> TrainResult:
    """Train a reward model on a dataset and validate it on held-out episodes.

    Parameters
    ----------
    store, dataset
        Where the transitions are.
    spec
        Features and target (default: obs and action → immediate reward).
    params
        Estimator parameters (``backend``, ``device``, ``n_estimators``, ...).
    holdout
        Share of episodes held out for the final metrics; never seen in training, and
        the preprocessing statistics are fitted without them.
    cv
        If > 1, also cross-validate on the training episodes with ``GroupKFold(cv)``.
    seed
        Seeds the episode split (and the model, unless ``params`` sets random_state).
    out
        Folder to save the model in; None saves nothing.
    stream
        Build the feature matrix on disk a chunk of episodes at a time and train from it
        (LightGBM through ``lightgbm.Sequence``, XGBoost's external memory, the MLP on
        shuffled chunks), so that memory holds the engine's own copy and a chunk, not the
        matrix. ``None`` (default) streams when the matrix would take more than a quarter
        of the memory available (:func:`should_stream`); on data that fits, both paths
        give the same model. The matrix file lives in a temporary folder (``TMPDIR``)
        removed at the end.
    chunk_rows
        Transitions per chunk when streaming (default 500,000).
    """
    say = progress or (lambda _m: None)
    spec = spec or FeatureSpec()
    spec.validate()
    params = {"random_state": seed, **(params or {})}
    unknown = sorted(set(params) - set(make_estimator(spec.target, {}).get_params()))
    if unknown:
        raise ParameterError(
            f"unknown estimator parameter(s) {unknown}; see RewardRegressor's docstring."
        )
    timings: dict[str, float] = {}
    started = time.perf_counter()

    episodes = store.episodes(dataset, keys=True)[S.EPISODE].to_numpy()
    info = store.datasets().filter(pl.col("dataset") == dataset).row(0, named=True)
    if info["rewards_missing"] == info["transitions"]:
        raise SchemaError(
            f"{dataset}: none of its {info['transitions']:,} transitions has a reward, so no "
            f"target can be built. Ingest rewards (--reward-col), or learn from preferences."
        )
    train_eps, hold_eps = split_episodes(episodes, holdout, seed)
    model = make_estimator(spec.target, params)
    model.check_params()  # bad parameters fail before any work

    if stream is None:
        stream = should_stream(info["transitions"], spec, info["obs_dim"], info["action_dim"])
    # The on-disk matrix of a streamed fit lives as long as this block: fitting, scoring
    # and saving the reference window all read it.
    with contextlib.ExitStack() as scratch:
        folder = None
        if stream:
            folder = scratch.enter_context(tempfile.TemporaryDirectory(prefix="rmlite-features-"))
        say("building features" + (" (streamed to disk)" if folder else ""))
        t = time.perf_counter()
        frame = store.features(
            dataset,
            spec,
            train_episodes=train_eps,
            stream_to=folder,
            chunk_rows=chunk_rows,
            progress=say if folder else None,
        )
        timings["features_s"] = time.perf_counter() - t
        in_train = np.isin(frame.groups, train_eps)
        if not in_train.any() or in_train.all():
            raise SchemaError(
                f"{dataset}: after dropping rows without a target or inputs, the training or the "
                f"hold-out episodes have no rows left; check the rewards or use missing='mean'."
            )

        cv_result = None
        if cv and cv > 1:
            say(f"cross-validating ({cv} episode-grouped folds)")
            cv_result = _cross_validate(model, frame, in_train, cv)

        say(f"fitting {params.get('backend', 'lightgbm')} on {int(in_train.sum()):,} rows")
        t = time.perf_counter()
        # The hold-out is watched while fitting (never fitted, never used to stop), so the
        # saved learning curves show overfitting the way the final metrics measure it.
        # Episode ids serve the fit only to split or resample; otherwise their copy (8 bytes
        # a row) would sit beside the engine's.
        X_fit, y_fit = frame.X[in_train], frame.y[in_train]
        groups_fit = frame.groups[in_train] if model._splits_rows() else None
        watched = (frame.X[~in_train], frame.y[~in_train])
        with _parked(frame, folder):
            model.fit(X_fit, y_fit, groups=groups_fit, eval_set=watched)
        del X_fit, y_fit, groups_fit, watched
        timings["fit_s"] = time.perf_counter() - t
        model.feature_spec_ = spec.to_dict()
        model.feature_stats_ = frame.stats.to_dict()
        # The FeatureSpec's names (obs_3, act_1, delta_3, ...), as scikit-learn sets them when
        # fitted on a data frame: explanations and importances read them.
        model.feature_names_in_ = np.asarray(frame.feature_names, dtype=object)

        say("scoring the hold-out episodes")
        metrics = {
            "holdout": score(model, frame, ~in_train),
            "train": score(model, frame, _train_sample(in_train, frame.groups, folder is not None)),
        }
        notes = quality_warnings(
            metrics["holdout"],
            spec.target,
            train_episodes=len(train_eps),
            train_rows=int(in_train.sum()),
            n_features=len(frame.feature_names),
            holdout_episodes=len(hold_eps),
        )
        model.data_fingerprint_ = store.fingerprint(dataset)
        model.metrics_ = metrics
        model.dataset_ = dataset
        model.train_episodes_ = [int(e) for e in train_eps]
        model_path = None
        if out is not None:
            from rmlite.evaluation.reference import save_reference

            model_path = str(model.save(out))
            save_reference(model, frame, in_train, model_path, seed)
        timings["total_s"] = time.perf_counter() - started
        run_id = store.record_run(
            {
                "kind": "train",
                "dataset": dataset,
                "target": spec.target,
                "backend": model.backend,
                "device": model.device_,
                "params": model.get_params(),
                "feature_spec": spec.to_dict(),
                "metrics": {**metrics, "cv": cv_result},
                "data_fingerprint": model.data_fingerprint_,
                "model_path": model_path,
                "duration_s": timings["total_s"],
            }
        )
        return TrainResult(
            model=model,
            metrics=metrics,
            run_id=run_id,
            model_path=model_path,
            train_episodes=[int(e) for e in train_eps],
            holdout_episodes=[int(e) for e in hold_eps],
            cv=cv_result,
            timings=timings,
            streamed=folder is not None,
            warnings=notes,
        )


_PARKED = ("y", "groups", "steps", "tail")
"""The arrays of a streamed frame that wait on disk while the engine fits."""


@contextlib.contextmanager
def _parked(frame: FeatureFrame, folder: str | None) -> Iterator[None]:
    """Hold a streamed frame's per-row arrays in the scratch folder while the engine fits.

    Scoring needs them whole afterwards, the fit not at all (it got its own copies of
    what it uses): on disk they leave the room to the engine's binned data, 28 bytes a
    row (0.8 GB at 30M transitions). In memory (``folder`` None) nothing moves.
    """
    if folder is None:
        yield
        return
    parked: dict[str, str] = {}
    try:
        for name in _PARKED:
            path = os.path.join(folder, f"{name}.npy")
            np.save(path, getattr(frame, name))
            parked[name] = path
            setattr(frame, name, np.empty(0, dtype=getattr(frame, name).dtype))
        yield
    finally:
        for name, path in parked.items():
            setattr(frame, name, np.load(path))
            os.remove(path)


def quality_warnings(
    holdout: dict[str, Any],
    target: str,
    *,
    train_episodes: int,
    train_rows: int,
    n_features: int,
    holdout_episodes: int,
) -> list[str]:
    """What makes a trained model's hold-out metrics mean little, each issued as a warning.

    Too little data (:class:`~rmlite.exceptions.SmallSampleWarning`: fewer than 10 training
    episodes, fewer than 10 training rows per feature, or fewer than 3 hold-out episodes)
    and a model worse than predicting the mean on the hold-out
    (:class:`~rmlite.exceptions.ModelQualityWarning`: R² below 0). ``train`` and
    :func:`rmlite.tuning.tune_dataset` call it; the messages are returned too, for the
    CLI's output.
    """
    from rmlite.evaluation.metrics import data_size_warnings, skill_warnings, warn_all
    from rmlite.exceptions import ModelQualityWarning, SmallSampleWarning

    small = data_size_warnings(train_episodes, train_rows, n_features, holdout_episodes)
    worse = skill_warnings(holdout, target)
    warn_all(small, SmallSampleWarning, stacklevel=4)
    warn_all(worse, ModelQualityWarning, stacklevel=4)
    return small + worse


def should_stream(transitions: int, spec: FeatureSpec, obs_dim: int, action_dim: int) -> bool:
    """Whether a dataset's feature matrix is too big to build in memory.

    True when ``transitions x features x 4`` bytes exceed a quarter of the memory
    available now (the in-memory path peaks near 2.6 times the matrix, and the engine
    needs its own copy), or the ``RMLITE_STREAM_BYTES`` threshold when that is set.

    Examples
    --------
    >>> should_stream(1_000, FeatureSpec(), 17, 6)
    False
    """
    width = len(feature_names(spec, obs_dim, action_dim))
    threshold = os.environ.get("RMLITE_STREAM_BYTES")
    limit = int(threshold) if threshold else available_memory() // 4
    return transitions * width * 4 > limit


def available_memory() -> int:
    """Bytes of memory available to this process now (Linux's MemAvailable; else total)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


TRAIN_METRIC_ROWS = 2_000_000
"""Training rows the training metrics of a streamed fit are measured on (at most)."""


def _train_sample(in_train: np.ndarray, groups: np.ndarray, streamed: bool) -> np.ndarray:
    """The training rows to score: all of them in memory; for a streamed fit every k-th
    training episode, whole, so that about :data:`TRAIN_METRIC_ROWS` rows are scored
    (metrics over hundreds of millions of rows would hold several float64 copies of them,
    and the training metrics only serve as the overfitting baseline). The hold-out is
    always scored whole.

    Examples
    --------
    >>> groups = np.repeat(np.arange(6), 2)
    >>> int(_train_sample(groups < 5, groups, streamed=False).sum())
    10
    """
    n_train = int(in_train.sum())
    if not streamed or n_train <= TRAIN_METRIC_ROWS:
        return in_train
    stride = -(-n_train // TRAIN_METRIC_ROWS)
    # Rows are in episode order: an episode's ordinal is the count of starts so far.
    starts = np.empty(len(groups), dtype=bool)
    starts[:1] = True
    np.not_equal(groups[1:], groups[:-1], out=starts[1:])
    ordinal = np.cumsum(starts) - 1
    return in_train & (ordinal % stride == 0)


def _cross_validate(
    model: Any, frame: FeatureFrame, rows: np.ndarray, folds: int
) -> dict[str, Any]:
    """GroupKFold over the training episodes: mean and spread of the fold scores."""
    from sklearn.base import clone
    from sklearn.model_selection import GroupKFold

    index = np.flatnonzero(rows)
    groups = frame.groups[index]
    if len(np.unique(groups)) < folds:
        raise SchemaError(
            f"--cv {folds} needs at least {folds} training episodes; there are "
            f"{len(np.unique(groups))}."
        )
    key = "auc" if frame.spec.target == "event" else "r2"
    scores = []
    for fit_idx, test_idx in GroupKFold(folds).split(index, groups=groups):
        fit_rows = index[fit_idx]
        fold_model = clone(model).fit(
            frame.X[fit_rows], frame.y[fit_rows], groups=frame.groups[fit_rows]
        )
        scores.append(score(fold_model, frame, index[test_idx])[key])
    return {
        "folds": folds,
        "metric": key,
        "scores": scores,
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores)),
    }


# -------------------------------------------------------------- evaluate, predict


def evaluate(store: LogStore, model_dir: PathLike, dataset: str) -> dict[str, Any]:
    """Metrics of a saved model on every transition of a dataset that has a target.

    ``warnings`` in the result says (and a :class:`~rmlite.exceptions.ModelQualityWarning`
    too) when the model predicts the dataset worse than the mean of its targets does.
    """
    from rmlite.estimators.loading import load_model
    from rmlite.evaluation.metrics import skill_warnings, warn_all
    from rmlite.exceptions import ModelQualityWarning

    model = load_model(model_dir)
    frame = model_frame(store, model, dataset, require_target=True)
    metrics = score(model, frame, slice(None))
    worse = skill_warnings(metrics, frame.spec.target, where=dataset)
    warn_all(worse, ModelQualityWarning)
    return {
        "model": str(model_dir),
        "dataset": dataset,
        "target": frame.spec.target,
        "metrics": metrics,
        "same_data_as_training": store.fingerprint(dataset)
        == getattr(model, "data_fingerprint_", None),
        "warnings": worse,
    }


def predict(
    store: LogStore,
    model_dir: PathLike,
    dataset: str,
    *,
    return_std: bool = False,
    chunk_rows: int | None = None,
) -> pl.DataFrame:
    """Predicted rewards (or returns, or event probabilities) per transition, with keys.

    The features are built and predicted a chunk of whole episodes at a time (see
    :func:`predict_chunks`), so only the predictions are held whole; for a dataset whose
    predictions themselves do not fit, write them with :func:`predict_to_file`.
    """
    parts = list(
        predict_chunks(store, model_dir, dataset, return_std=return_std, chunk_rows=chunk_rows)
    )
    return pl.concat(parts) if len(parts) > 1 else parts[0]


def predict_chunks(
    store: LogStore,
    model_dir: PathLike,
    dataset: str,
    *,
    return_std: bool = False,
    chunk_rows: int | None = None,
) -> Iterator[pl.DataFrame]:
    """Predictions per transition a chunk of whole episodes at a time, in episode order.

    Each chunk holds about ``chunk_rows`` transitions (default 500,000): episode id (as
    ingested), step, ``prediction`` (and ``prediction_std``).
    """
    from rmlite.estimators.loading import load_model
    from rmlite.estimators.reward import RewardClassifier, RewardRegressor

    model = load_model(model_dir)
    undecided = isinstance(model, RewardRegressor | RewardClassifier)
    for frame in model_frame_chunks(
        store, model, dataset, require_target=False, chunk_rows=chunk_rows
    ):
        if undecided:
            from rmlite.models.compiled import batch_plan

            # Compiled trees where they win on batches the size of the first chunk (the
            # whole dataset when it fits in one): cached, or worth compiling now.
            plan = batch_plan(model.backend, len(frame))
            if plan != "no":
                model.use_compiled(Path(model_dir) / ".compiled", only_cached=plan == "cached")
            undecided = False
        out: dict[str, Any] = {S.EPISODE: frame.groups, S.STEP: frame.steps}
        if frame.spec.target == "event":
            proba, std = model.predict_proba(frame.X, return_std=True)
            out["prediction"] = proba[:, 1]
        else:
            mean, std = model.predict(frame.X, return_std=True)  # type: ignore[call-arg]
            # Back to reward units: scaling was part of the training preprocessing.
            out["prediction"] = frame.stats.inverse_transform_target(mean)
            std = std * frame.stats.target_scale
        if return_std:
            out["prediction_std"] = std
        yield store.label_episodes(dataset, pl.DataFrame(out))  # the ids as ingested


def predict_to_file(
    store: LogStore,
    model_dir: PathLike,
    dataset: str,
    out: PathLike,
    *,
    return_std: bool = False,
    chunk_rows: int | None = None,
) -> dict[str, Any]:
    """Write :func:`predict_chunks` to Parquet (or ``.csv``) as they come; a summary back.

    The file appears whole or not at all: chunks go to ``<out>.partial``, renamed at the
    end.
    """
    import pyarrow.parquet as pq

    path = os.fspath(out)
    partial = path + ".partial"
    rows, total = 0, 0.0
    writer = None
    try:
        with open(partial, "wb") as fh:
            for chunk in predict_chunks(
                store, model_dir, dataset, return_std=return_std, chunk_rows=chunk_rows
            ):
                if path.endswith(".csv"):
                    chunk.write_csv(fh, include_header=rows == 0)
                else:
                    table = chunk.to_arrow()
                    if writer is None:
                        writer = pq.ParquetWriter(fh, table.schema)
                    writer.write_table(table)
                rows += chunk.height
                total += float(chunk["prediction"].cast(pl.Float64).sum() or 0.0)
            if writer is not None:
                writer.close()
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise
    return {"rows": rows, "out": path, "mean": total / rows if rows else 0.0}
