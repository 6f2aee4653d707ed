"""Watch a reward model against ground truth as new episodes arrive: accuracy, drift, overfitting.

A *window* is a set of episodes scored by a saved model: its metrics against the logged
rewards, drift of every feature, of the rewards, of the predictions and of the residuals
against the model's reference window (a sample of its training episodes that ``rmlite
train`` saves beside the model), and the overfitting verdict read off its learning curves.
A *monitor pass* scores the episodes ingested since the previous pass and writes the result
to the store's ``monitor_passes``, ``metrics``, ``drift``, ``alerts`` and
``monitor_samples`` tables (one transaction), where SQL and the dashboard read them.

It rebuilds a model's features with :func:`~rmlite.evaluation.frame.model_frame`, and
:mod:`rmlite.pipeline`'s quickstart runs one pass.

Examples
--------
>>> import tempfile
>>> from rmlite.pipeline import train
>>> from rmlite.data.store import LogStore
>>> from rmlite.testing import rollout
>>> store, folder = LogStore(":memory:"), tempfile.mkdtemp() + "/model"
>>> _ = store.ingest(rollout("Pendulum-v1", episodes=12, seed=0), dataset="pendulum")
>>> _ = train(store, "pendulum", params={"n_estimators": 50}, out=folder)
>>> first = monitor_pass(store, folder, "pendulum")  # the 20% hold-out episodes
>>> len(first.window.episodes), first.window.metrics["r2"] > 0.9
(2, True)
>>> monitor_pass(store, folder, "pendulum") is None  # nothing new since
True
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from rmlite._typing import PathLike
from rmlite.data import schema as S
from rmlite.data.store import LogStore
from rmlite.evaluation.drift import (
    HISTOGRAM_SCHEMA,
    Thresholds,
    bootstrap_limits,
    dataset_drift,
    dataset_limit,
    dataset_score,
    drift_table,
    histogram_table,
)
from rmlite.evaluation.frame import model_frame
from rmlite.evaluation.metrics import event_metrics, regression_metrics, warn_all
from rmlite.evaluation.overfit import overfitting
from rmlite.evaluation.reference import (
    EPISODE_COLUMN,
    PREDICTION_COLUMN,
    REFERENCE_FILE,
    SPLIT_COLUMN,
    TARGET_COLUMN,
    load_reference,
    target_predictions,
)
from rmlite.exceptions import SchemaError, SmallSampleWarning

log = logging.getLogger("rmlite.monitor")

SAMPLE_ROWS = 2000
"""Predicted-vs-true rows kept per pass for the dashboard's scatter plot."""

DRIFT_ROWS = 100_000
"""Window rows the drift tests see at most (a seeded sample beyond that): the reference
holds at most 5,000 rows per split, so more window rows add no resolution, only time."""


@dataclass
class WindowResult:
    """A model scored on a window of episodes, compared with its reference window."""

    dataset: str
    model_path: str
    model_fingerprint: str
    target: str
    reference: str
    """What the window was compared with, in words."""
    episodes: list[int]
    rows: int
    metrics: dict[str, float]
    """Against the logged ground truth (empty when the window has no rewards)."""
    drift: pl.DataFrame
    """kind, name, psi, ks, ks_pvalue, wasserstein, severity and the limits applied
    (:data:`~rmlite.evaluation.drift.LIMIT_COLUMNS`): one row per tested column."""
    dataset_drift: dict[str, Any]
    """features, drifted, share, alert, episodes, and ``rule``: how the limits were set."""
    sample: pl.DataFrame
    """episode_id, step, y_true, y_pred: up to :data:`SAMPLE_ROWS` rows."""
    alerts: list[dict[str, Any]]
    """severity, source (accuracy | drift | overfitting), name, message."""
    overfitting: dict[str, Any]
    curves: list[dict[str, list[float]]]
    thresholds: Thresholds = field(default_factory=Thresholds)
    histograms: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=HISTOGRAM_SCHEMA))
    """kind, name, edges, reference, current: per-column histograms of both windows."""
    warnings: list[str] = field(default_factory=list)
    """Why the drift verdicts mean little, when they do (:func:`sample_warnings`)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "model_path": self.model_path,
            "model_fingerprint": self.model_fingerprint,
            "target": self.target,
            "reference": self.reference,
            "episodes": len(self.episodes),
            "rows": self.rows,
            "metrics": self.metrics,
            "dataset_drift": self.dataset_drift,
            "drift": self.drift.to_dicts(),
            "alerts": self.alerts,
            "overfitting": self.overfitting,
            "thresholds": self.thresholds.to_dict(),
            "warnings": self.warnings,
        }


@dataclass
class MonitorPass:
    """One pass written to the store."""

    pass_id: int
    window: WindowResult
    first_ingest_id: int
    last_ingest_id: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "pass_id": self.pass_id,
            "first_ingest_id": self.first_ingest_id,
            "last_ingest_id": self.last_ingest_id,
            "seconds": self.seconds,
            **self.window.to_dict(),
        }


# ------------------------------------------------------------------------- windows


def default_episodes(store: LogStore, model: Any, dataset: str) -> list[int]:
    """The dataset's episodes, less the model's training episodes when it was trained on it."""
    episodes = store.episodes(dataset, keys=True)[S.EPISODE].to_list()
    if getattr(model, "dataset_", None) == dataset:
        trained = set(getattr(model, "train_episodes_", None) or [])
        episodes = [e for e in episodes if e not in trained]
    return episodes


def evaluate_window(
    store: LogStore,
    model_dir: PathLike,
    dataset: str,
    episodes: Sequence[int] | None = None,
    thresholds: Thresholds | None = None,
    *,
    model: Any = None,
    sample_rows: int = SAMPLE_ROWS,
    drift_rows: int = DRIFT_ROWS,
    seed: int = 0,
) -> WindowResult:
    """Score a saved model on some episodes of a dataset and compare with its reference.

    Parameters
    ----------
    store, model_dir, dataset
        Where the episodes and the model are.
    episodes
        Which episodes form the window (default: all but the model's training episodes).
    thresholds
        When numbers become warnings and alerts (:class:`~rmlite.evaluation.drift.Thresholds`).
    model
        The loaded model, when the caller has it already.
    sample_rows, drift_rows
        Rows kept for the predicted-vs-true sample; rows the drift tests see at most.
    """
    from rmlite.estimators.loading import load_model

    t = thresholds or Thresholds()
    model = model if model is not None else load_model(model_dir)
    reference = load_reference(model_dir)
    if episodes is None:
        episodes = default_episodes(store, model, dataset)
    episodes = [int(e) for e in episodes]
    if not episodes:
        raise SchemaError(
            f"{dataset}: no episodes to evaluate (all of them trained the model). Ingest new "
            f"episodes, or pass the episodes to score."
        )
    frame = model_frame(store, model, dataset, require_target=False, episodes=episodes)
    spec = frame.spec
    from rmlite.estimators.preference import PreferenceRewardModel

    # A reward learned from preferences is defined up to shift and scale: it is judged by
    # rank agreement with the logged rewards, never by its errors.
    learned_from_preferences = isinstance(model, PreferenceRewardModel)
    event = spec.target == "event"
    y_true, y_pred = target_predictions(model, frame)
    known = np.isfinite(y_true)

    metrics: dict[str, float] = {}
    if known.sum() > 1:
        raw = (
            event_metrics(y_true[known], y_pred[known])
            if event
            else regression_metrics(
                y_true[known],
                y_pred[known],
                frame.groups[known] if spec.target == "reward" else None,
            )
        )
        metrics = {k: float(v) for k, v in raw.items() if isinstance(v, int | float)}
        if learned_from_preferences:
            ranks = ("n", "episodes", "spearman", "episode_return_spearman")
            metrics = {k: v for k, v in metrics.items() if k in ranks}

    ref_train = reference.filter(pl.col(SPLIT_COLUMN) == "train")
    ref_hold = reference.filter(pl.col(SPLIT_COLUMN) == "holdout")
    rng = np.random.default_rng(seed)
    tested = np.arange(len(y_pred))
    if len(tested) > drift_rows:
        tested = np.sort(rng.choice(tested, size=drift_rows, replace=False))
    X_t, pred_t, true_t, known_t = frame.X[tested], y_pred[tested], y_true[tested], known[tested]
    current: dict[str, np.ndarray] = {n: X_t[:, i] for i, n in enumerate(frame.feature_names)}
    ref_cols: dict[str, np.ndarray] = {n: ref_train[n].to_numpy() for n in frame.feature_names}
    kinds = dict.fromkeys(frame.feature_names, "feature")
    ref_cols["prediction"] = ref_train[PREDICTION_COLUMN].to_numpy()
    current["prediction"] = pred_t
    kinds["prediction"] = "prediction"
    if known.any():
        ref_cols["reward"] = ref_train[TARGET_COLUMN].to_numpy()
        current["reward"] = true_t[known_t]
        kinds["reward"] = "reward"
        if ref_hold.height and not event and not learned_from_preferences:
            residual = ref_hold[PREDICTION_COLUMN] - ref_hold[TARGET_COLUMN]
            ref_cols["residual"] = residual.to_numpy()
            current["residual"] = (pred_t - true_t)[known_t]
            kinds["residual"] = "residual"
    groups = {name: "holdout" if name == "residual" else "train" for name in ref_cols}
    limits, together, rule = drift_limits(
        model_dir,
        {"train": ref_train, "holdout": ref_hold},
        ref_cols,
        groups,
        kinds,
        len(episodes),
        t,
    )
    drift = drift_table(ref_cols, current, kinds, t, limits)
    if len(episodes) < t.min_episodes:
        # Columns under the fixed rule (all of them, or those whose reference split has
        # too few episodes to resample) never alert on a small window.
        fixed = [n for n in ref_cols if limits is None or n not in limits]
        drift = drift.with_columns(
            pl.when((pl.col("severity") == "alert") & pl.col("name").is_in(fixed))
            .then(pl.lit("warn"))
            .otherwise(pl.col("severity"))
            .alias("severity")
        )
    overall = dataset_drift(drift, t)
    overall["episodes"] = len(episodes)
    if limits is None:
        overall["alert"] = overall["alert"] and len(episodes) >= t.min_episodes
    else:
        overall["score"] = dataset_score(drift)
        overall["score_limit"] = together
        overall["alert"] = overall["score"] >= together
    overall["rule"] = rule
    histograms = histogram_table(ref_cols, current, kinds)
    features_resampled = limits is not None and all(
        name in limits for name, kind in kinds.items() if kind == "feature"
    )
    small = sample_warnings(
        ref_train[EPISODE_COLUMN].n_unique() if EPISODE_COLUMN in ref_train.columns else None,
        len(episodes),
        resampled=features_resampled,
        drifted=overall["drifted"],
        features=overall["features"],
        t=t,
    )
    warn_all(small, SmallSampleWarning)

    holdout = (getattr(model, "metrics_", None) or {}).get("holdout") or {}
    train_metrics = (getattr(model, "metrics_", None) or {}).get("train") or {}
    fit = overfitting(
        getattr(model, "curves_", []) or [],
        train_r2=train_metrics.get("r2"),
        holdout_r2=holdout.get("r2"),
        band=t.overfit_band,
        min_gap=t.overfit_min_gap,
        min_rise=t.overfit_min_rise,
    )
    alerts = _alerts(metrics, holdout, drift, overall, fit, t, event)

    keep = np.arange(len(y_pred))
    if len(keep) > sample_rows:
        keep = np.sort(rng.choice(keep, size=sample_rows, replace=False))
    sample = pl.DataFrame(
        {
            "episode_id": frame.groups[keep].astype(np.int64),
            "step": frame.steps[keep].astype(np.int64),
            "y_true": np.where(known[keep], y_true[keep], np.nan),
            "y_pred": y_pred[keep].astype(np.float64),
        }
    ).with_columns(pl.col("y_true").fill_nan(None))
    trained_on = getattr(model, "dataset_", None)
    return WindowResult(
        dataset=dataset,
        model_path=str(model_dir),
        model_fingerprint=model.fingerprint,
        target=spec.target,
        reference=f"{ref_train.height:,} sampled training rows"
        + (f" of {trained_on!r}" if trained_on else ""),
        episodes=episodes,
        rows=len(y_pred),
        metrics=metrics,
        drift=drift,
        dataset_drift=overall,
        sample=sample,
        alerts=alerts,
        overfitting=fit,
        curves=getattr(model, "curves_", []) or [],
        thresholds=t,
        histograms=histograms,
        warnings=small,
    )


def sample_warnings(
    reference_episodes: int | None,
    window_episodes: int,
    *,
    resampled: bool,
    drifted: int,
    features: int,
    t: Thresholds,
) -> list[str]:
    """Why a window's drift verdicts mean little (empty: they mean what they say).

    Two cases. The reference's training split holds fewer than
    :data:`MIN_RESAMPLED_EPISODES` episodes: no resampling can say how much same-policy
    windows vary, so the features are judged by the fixed limits. And a window of fewer than
    ``t.min_episodes`` episodes judged by the fixed limits: PSI on a few correlated
    episodes is biased upward, so many features "drift" by chance (they only warn). Under
    the sample-size rule a small window is accounted for, and nothing is said.

    Examples
    --------
    >>> sample_warnings(32, 8, resampled=True, drifted=0, features=57, t=Thresholds())
    []
    >>> for line in sample_warnings(4, 1, resampled=False, drifted=57, features=57,
    ...                             t=Thresholds()):
    ...     print(line[:59])
    drift not judged against a reference of 4 training episodes
    57/57 features drifted on a window of 1 episode(s) judged b
    """
    out: list[str] = []
    if reference_episodes is not None and reference_episodes < MIN_RESAMPLED_EPISODES:
        out.append(
            f"drift not judged against a reference of {reference_episodes} training episodes "
            f"(fewer than {MIN_RESAMPLED_EPISODES}): too few to tell drift from how episodes "
            f"vary, so fixed limits apply, which small samples cross by chance; retrain the "
            f"model on more episodes (at least 10)"
        )
    if not resampled and window_episodes < t.min_episodes:
        out.append(
            f"{drifted}/{features} features drifted on a window of {window_episodes} "
            f"episode(s) judged by fixed limits (fewer than min_episodes={t.min_episodes}): "
            f"PSI on so few episodes is biased upward, so these drift verdicts only warn and "
            f"mean little; monitor windows of at least {t.min_episodes} episodes"
        )
    return out


_LIMITS: OrderedDict[tuple[Any, ...], tuple[dict[str, dict[str, float]], float]] = OrderedDict()
"""Sample-size limits already computed, per model reference, window size and thresholds."""

_LIMITS_KEPT = 256

MIN_RESAMPLED_EPISODES = 5
"""A reference split with fewer episodes (a hold-out of 2) says too little about how
episodes vary: its columns keep the fixed limits. (Measured: a 2-episode hold-out made
the residual alert on every same-policy window of 5 episodes.)"""


def drift_limits(
    model_dir: PathLike,
    reference: dict[str, pl.DataFrame],
    columns: dict[str, np.ndarray],
    groups: dict[str, str],
    kinds: dict[str, str],
    window_episodes: int,
    t: Thresholds,
) -> tuple[dict[str, dict[str, float]] | None, float, str]:
    """(limits per column, the dataset score's limit, the rule in words) for a window of
    ``window_episodes``.

    The sample-size rule (:func:`~rmlite.evaluation.drift.bootstrap_limits`) for each
    column, resampling the episodes of its reference split (``groups``: ``train`` or
    ``holdout``); computed once per model, window size and thresholds, then kept in memory.
    ``None`` (the fixed rule) when ``t.bootstrap`` is 0 or the reference has no episode
    ids (models saved before they were kept).
    """
    if t.bootstrap == 0:
        return None, float("inf"), "fixed thresholds (bootstrap=0)"
    if any(EPISODE_COLUMN not in frame.columns for frame in reference.values() if frame.height):
        return (
            None,
            float("inf"),
            (
                f"fixed thresholds: this model's {REFERENCE_FILE} has no episode ids (saved by an "
                f"older rmlite); retrain it for thresholds that know the window's size"
            ),
        )
    path = Path(model_dir) / REFERENCE_FILE
    stamp = os.stat(path).st_mtime_ns if path.is_file() else 0
    key = (
        os.path.realpath(model_dir),
        stamp,
        int(window_episodes),
        tuple(sorted(t.to_dict().items(), key=lambda kv: kv[0])),
        tuple(columns),
    )
    sizes = {
        split: frame[EPISODE_COLUMN].n_unique()
        for split, frame in reference.items()
        if frame.height
    }
    rule = (
        f"sample-size rule: {t.bootstrap} draws of {window_episodes} episodes from the "
        + " and the ".join(f"{n} {split}" for split, n in sizes.items())
        + " episodes of the reference"
        + "".join(
            f"; {split} columns keep the fixed limits ({n} episodes are too few to resample)"
            for split, n in sizes.items()
            if n < MIN_RESAMPLED_EPISODES
        )
    )
    if key in _LIMITS:
        _LIMITS.move_to_end(key)
        return (*_LIMITS[key], rule)
    limits: dict[str, dict[str, float]] = {}
    scores: dict[str, np.ndarray] = {}
    for split, frame in reference.items():
        names = [n for n in columns if groups.get(n) == split]
        if not names or sizes.get(split, 0) < MIN_RESAMPLED_EPISODES:
            continue  # too few episodes to stand for the population: the fixed rule
        limits.update(
            bootstrap_limits(
                {n: columns[n] for n in names},
                frame[EPISODE_COLUMN].to_numpy(),
                window_episodes,
                t,
                columns=len(columns),
                draw_scores=scores,
            )
        )
    features = {n: f for n, f in scores.items() if kinds.get(n) == "feature"}
    share = window_episodes / max(sizes.get("train", 1), 1)
    together = dataset_limit(features, t, share)
    _LIMITS[key] = (limits, together)
    while len(_LIMITS) > _LIMITS_KEPT:
        _LIMITS.popitem(last=False)
    return limits, together, rule


def _alerts(
    metrics: dict[str, float],
    holdout: dict[str, Any],
    drift: pl.DataFrame,
    overall: dict[str, Any],
    fit: dict[str, Any],
    t: Thresholds,
    event: bool,
) -> list[dict[str, Any]]:
    """What crossed a threshold, one message each."""
    alerts: list[dict[str, Any]] = []

    def add(severity: str, source: str, name: str | None, message: str) -> None:
        alerts.append({"severity": severity, "source": source, "name": name, "message": message})

    if not event and metrics.get("rmse") is not None and holdout.get("rmse"):
        ratio = metrics["rmse"] / float(holdout["rmse"])
        if ratio >= t.rmse_warn:
            add(
                "alert" if ratio >= t.rmse_alert else "warn",
                "accuracy",
                "rmse",
                f"RMSE {metrics['rmse']:.4g} is {ratio:.2f}x the training hold-out's "
                f"{float(holdout['rmse']):.4g} (warn at {t.rmse_warn}x, alert at {t.rmse_alert}x)",
            )
        if holdout.get("r2") is not None and metrics.get("r2") is not None:
            drop = float(holdout["r2"]) - metrics["r2"]
            if drop > t.r2_drop:
                add(
                    "alert",
                    "accuracy",
                    "r2",
                    f"R² {metrics['r2']:.4f} is {drop:.3f} below the training hold-out's "
                    f"{float(holdout['r2']):.4f} (alert above {t.r2_drop})",
                )
    if event and metrics.get("auc") is not None and holdout.get("auc"):
        drop = float(holdout["auc"]) - metrics["auc"]
        if drop > t.r2_drop:
            add("alert", "accuracy", "auc", f"AUC fell by {drop:.3f} from {holdout['auc']:.4f}")
    for row in drift.filter(pl.col("severity") == "alert").iter_rows(named=True):
        add(
            "alert",
            "drift",
            row["name"],
            f"{row['kind']} {row['name']!r} drifted: PSI {row['psi']:.3f}, Wasserstein "
            f"{row['wasserstein']:.3f} reference std (alert: PSI >= {row['psi_alert']:.3g}, "
            f"or PSI >= {row['psi_joint']:.3g} with Wasserstein >= "
            f"{row['wasserstein_alert']:.3g})",
        )
    if overall["alert"] and "score" in overall:
        add(
            "alert",
            "drift",
            "dataset",
            f"the features moved together: PSI summed over {overall['features']} features is "
            f"{overall['score']:.1f}x what a same-size window of the reference gives on "
            f"average (alert at {overall['score_limit']:.1f}x, reached by "
            f"{t.alert_alpha / 2:.1%} of such windows); {overall['drifted']} features warn",
        )
    elif overall["alert"]:
        add(
            "alert",
            "drift",
            "dataset",
            f"{overall['drifted']} of {overall['features']} features drifted "
            f"(share {overall['share']:.2f}, alert at {t.drift_share})",
        )
    if fit["alarm"]:
        add("alert", "overfitting", "learning_curves", fit["message"])
    return alerts


# -------------------------------------------------------------------------- passes


def monitor_pass(
    store: LogStore,
    model_dir: PathLike,
    dataset: str,
    thresholds: Thresholds | None = None,
    *,
    model: Any = None,
) -> MonitorPass | None:
    """Score the episodes ingested since the model's last pass over ``dataset``; record it.

    The first pass scores every episode but the model's training episodes. An episode that
    grew in a later ingest is scored again, whole. Returns None (and writes nothing) when no
    episode is new. Alerts are logged on the ``rmlite.monitor`` logger as warnings.
    """
    from rmlite.estimators.loading import load_model

    started = datetime.now(UTC).replace(tzinfo=None)  # UTC, like the store's own times
    clock = time.perf_counter()
    model = model if model is not None else load_model(model_dir)
    fingerprint = model.fingerprint
    last = store.last_monitor_pass(dataset, fingerprint)
    new = store.episodes_since(dataset, -1 if last is None else last)
    episodes = new[S.EPISODE].to_list()
    if last is None:  # the first pass: every episode the model did not train on
        unseen = set(default_episodes(store, model, dataset))
        episodes = [e for e in episodes if e in unseen]
        new = new.filter(pl.col(S.EPISODE).is_in(episodes))
    if not episodes:
        return None
    window = evaluate_window(store, model_dir, dataset, episodes, thresholds, model=model)
    first_ingest, last_ingest = int(new["first_ingest_id"].min()), int(new["last_ingest_id"].max())  # type: ignore[arg-type]
    metrics = pl.DataFrame(
        {"metric": list(window.metrics), "value": list(window.metrics.values())},
        schema={"metric": pl.String, "value": pl.Float64},
    )
    alerts = pl.DataFrame(
        window.alerts,
        schema={
            "severity": pl.String,
            "source": pl.String,
            "name": pl.String,
            "message": pl.String,
        },
    )
    pass_id = store.record_monitor_pass(
        {
            "dataset": dataset,
            "model_path": str(Path(model_dir).resolve()),
            "model_fingerprint": fingerprint,
            "reference": window.reference,
            "first_ingest_id": first_ingest,
            "last_ingest_id": last_ingest,
            "episodes": len(episodes),
            "rows": window.rows,
            "alerts": len(window.alerts),
            "started_at": started,
        },
        metrics,
        window.drift,
        alerts,
        window.sample,
        window.histograms,
    )
    for alert in window.alerts:
        log.warning("%s [%s] %s: %s", dataset, alert["source"], alert["severity"], alert["message"])
    return MonitorPass(
        pass_id=pass_id,
        window=window,
        first_ingest_id=first_ingest,
        last_ingest_id=last_ingest,
        seconds=time.perf_counter() - clock,
    )


def monitor(
    store: LogStore,
    model_dir: PathLike,
    dataset: str,
    thresholds: Thresholds | None = None,
    *,
    every: float | None = None,
    passes: int | None = None,
    on_pass: Callable[[MonitorPass | None], None] | None = None,
) -> list[MonitorPass]:
    """Run monitor passes: once, or every ``every`` seconds (``passes`` of them, or forever).

    The model is loaded once. Between passes nothing holds the store, so ``rmlite ingest``
    can write to it from another process.
    """
    from rmlite.estimators.loading import load_model

    model = load_model(model_dir)
    done: list[MonitorPass] = []
    count = 0
    while True:
        result = monitor_pass(store, model_dir, dataset, thresholds, model=model)
        if result is not None:
            done.append(result)
        if on_pass is not None:
            on_pass(result)
        count += 1
        if every is None or (passes is not None and count >= passes):
            return done
        time.sleep(every)
