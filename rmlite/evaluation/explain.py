"""Which features a reward model leans on: mean |SHAP| on the episodes it never trained on.

:func:`explain` is what ``rmlite explain`` prints and ``rmlite report`` draws: the saved
model's features are rebuilt from the store exactly as in training
(:func:`~rmlite.evaluation.frame.model_frame`), on the dataset's episodes the model did
not train on (its hold-out, when the dataset is the one it was trained on), and the tree
boosters' own TreeSHAP (``predict(X, pred_contrib=True)``) attributes each prediction to
the features. A feature's importance is its mean absolute SHAP value: how far, on average,
it moves a prediction away from the expected value.

Examples
--------
>>> import os, tempfile
>>> from rmlite.data.features import FeatureSpec
>>> from rmlite.data.store import LogStore
>>> from rmlite.pipeline import train
>>> from rmlite.testing import rollout
>>> folder = tempfile.mkdtemp()
>>> store = LogStore(os.path.join(folder, "x.duckdb"))
>>> _ = store.ingest(rollout("Pendulum-v1", episodes=10), dataset="pendulum")
>>> _ = train(store, "pendulum", FeatureSpec(next_obs=True), {"n_estimators": 50},
...           out=os.path.join(folder, "model"))
>>> table = explain(store, os.path.join(folder, "model"), "pendulum", top=3)
>>> table.columns
['rank', 'feature', 'mean_abs_shap', 'mean_shap', 'share']
>>> table.height
3
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from rmlite._typing import PathLike
from rmlite.data.features import FeatureFrame
from rmlite.data.store import LogStore
from rmlite.evaluation.frame import model_frame
from rmlite.exceptions import ParameterError, SchemaError

MAX_ROWS = 20_000
"""Rows explained at most (a seeded sample beyond): TreeSHAP costs a tree walk per row and
feature subset, and the mean |SHAP| of 20,000 rows is stable to a few percent."""


def explain(
    store: LogStore,
    model_dir: PathLike,
    dataset: str,
    top: int | None = 20,
    *,
    episodes: Sequence[int] | None = None,
    max_rows: int = MAX_ROWS,
    seed: int = 0,
    model: Any = None,
) -> pl.DataFrame:
    """The ``top`` features of a saved tree model by mean |SHAP| on held-out episodes.

    Parameters
    ----------
    store, model_dir, dataset
        Where the episodes and the model are.
    top
        How many features to keep (None: all), most important first.
    episodes
        The episodes to explain (default: the dataset's episodes the model did not train
        on, as ``rmlite report`` and ``rmlite monitor`` score).
    max_rows, seed
        At most ``max_rows`` rows are explained, a seeded sample of the episodes' rows.
    model
        The loaded model, when the caller has it already.

    Returns
    -------
    polars.DataFrame
        ``rank``, ``feature`` (the FeatureSpec's names: ``obs_3``, ``act_1``,
        ``next_obs_3``, ``delta_3``, ...), ``mean_abs_shap`` and ``mean_shap`` in reward
        units (a scaled target is scaled back) or in log-odds for event models (before
        calibration), and ``share`` of the summed mean |SHAP|.
    """
    from rmlite.estimators.loading import load_model
    from rmlite.estimators.reward import RewardClassifier, RewardRegressor
    from rmlite.evaluation.monitor import default_episodes

    if top is not None and top < 1:
        raise ParameterError(f"top must be a positive number of features; got {top}.")
    model = model if model is not None else load_model(model_dir)
    if not isinstance(model, RewardRegressor | RewardClassifier) or model.backend == "mlp":
        kind = getattr(model, "backend", type(model).__name__)
        raise ParameterError(
            f"{model_dir}: SHAP values come from the tree boosters (LightGBM, XGBoost); this "
            f"model is {type(model).__name__} ({kind}). For the MLP use "
            f"sklearn.inspection.permutation_importance or shap.Explainer(model.predict, X)."
        )
    if episodes is None:
        episodes = default_episodes(store, model, dataset)
    if not len(episodes):
        raise SchemaError(
            f"{dataset}: no episodes to explain (all of them trained the model). Ingest new "
            f"episodes, or pass the episodes to explain."
        )
    frame = model_frame(store, model, dataset, require_target=False, episodes=list(episodes))
    return shap_table(model, frame, top, max_rows=max_rows, seed=seed)


def shap_table(
    model: Any,
    frame: FeatureFrame,
    top: int | None = 20,
    *,
    max_rows: int = MAX_ROWS,
    seed: int = 0,
) -> pl.DataFrame:
    """Mean |SHAP| per feature of ``model`` on ``frame``'s rows (see :func:`explain`)."""
    rows = np.arange(len(frame))
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))
    X = frame.X[rows]
    contributions = model.predict(X, pred_contrib=True)[:, :-1]  # the bias is no feature
    if frame.spec.target != "event":
        # predict = Σ contributions + bias in the fitted (scaled) units, and
        # reward = scale · predict + center: each contribution scales linearly.
        contributions = contributions * frame.stats.target_scale
    mean_abs = np.abs(contributions).mean(axis=0)
    total = float(mean_abs.sum())
    table = pl.DataFrame(
        {
            "feature": list(frame.feature_names),
            "mean_abs_shap": mean_abs,
            "mean_shap": contributions.mean(axis=0),
            "share": mean_abs / total if total > 0 else np.zeros_like(mean_abs),
        }
    ).sort("mean_abs_shap", descending=True, maintain_order=True)
    table = table.with_row_index("rank", offset=1).with_columns(pl.col("rank").cast(pl.Int64))
    return table.head(top) if top is not None else table
