"""Scores of a reward model against ground truth: regression errors, event probabilities, calibration.

Regression (rewards, returns): RMSE, MAE, R², Spearman, and the error of each episode's
summed reward (what an agent actually optimizes). Events: AUC, log-loss, Brier score,
calibration curve and expected calibration error. (Preferences: pairwise accuracy and EPIC
live in :mod:`rmlite.evaluation.preference_metrics` and :mod:`rmlite.evaluation.epic`.)

Examples
--------
>>> import numpy as np
>>> m = regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.1, 1.9, 3.2, 3.9]),
...                        groups=np.array([0, 0, 1, 1]))
>>> round(m["r2"], 3), round(m["episode_return_mae"], 3)
(0.986, 0.05)
"""

from __future__ import annotations

from typing import Any

import numpy as np


def regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray | None = None
) -> dict[str, Any]:
    """RMSE, MAE, R², Spearman; with ``groups``, per-episode summed-reward errors."""
    from scipy.stats import spearmanr

    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    err = y_pred - y_true
    var = float(np.var(y_true))
    out: dict[str, Any] = {
        "n": len(y_true),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": float(1.0 - np.mean(err**2) / var) if var > 0 else float("nan"),
        "spearman": float(spearmanr(y_true, y_pred).statistic) if len(y_true) > 1 else float("nan"),
    }
    if groups is not None:
        true_ret, pred_ret = episode_sums(y_true, groups), episode_sums(y_pred, groups)
        ret_err = pred_ret - true_ret
        out["episodes"] = len(true_ret)
        out["episode_return_mae"] = float(np.mean(np.abs(ret_err)))
        scale = float(np.mean(np.abs(true_ret)))
        out["episode_return_relative_error"] = (
            float(np.mean(np.abs(ret_err)) / scale) if scale > 0 else float("nan")
        )
        if len(true_ret) > 1:
            out["episode_return_spearman"] = float(spearmanr(true_ret, pred_ret).statistic)
    return out


def episode_sums(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Sum of ``values`` per episode, in the order of sorted episode ids."""
    _, inverse = np.unique(groups, return_inverse=True)
    return np.bincount(inverse, weights=values)


def event_metrics(y_true: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """AUC, log-loss, Brier score and expected calibration error of event probabilities."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    y_true = np.asarray(y_true).astype(int)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1 - 1e-15)
    both = len(np.unique(y_true)) == 2
    return {
        "n": len(y_true),
        "event_rate": float(y_true.mean()),
        "auc": float(roc_auc_score(y_true, p)) if both else float("nan"),
        "log_loss": float(log_loss(y_true, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, p)),
        "ece": expected_calibration_error(y_true, p, n_bins),
    }


def expected_calibration_error(y_true: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE (Naeini et al. 2015): bin-size-weighted |mean predicted − observed rate|."""
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    predicted = np.bincount(bins, weights=p, minlength=n_bins)
    observed = np.bincount(bins, weights=y_true, minlength=n_bins)
    used = count > 0
    gap = np.abs(predicted[used] - observed[used]) / count[used]
    return float(np.sum(gap * count[used]) / len(p))


def calibration_curve(
    y_true: np.ndarray, p: np.ndarray, n_bins: int = 10
) -> dict[str, list[float]]:
    """Reliability diagram: mean predicted probability and observed rate per equal-width bin.

    Empty bins are left out. A calibrated model's points lie on the diagonal.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    used = count > 0
    return {
        "predicted": (np.bincount(bins, weights=p, minlength=n_bins)[used] / count[used]).tolist(),
        "observed": (
            np.bincount(bins, weights=y_true, minlength=n_bins)[used] / count[used]
        ).tolist(),
        "count": count[used].astype(float).tolist(),
    }


# ------------------------------------------------------- results that mean little

MIN_TRAIN_EPISODES = 10
"""Fewer training episodes than this: a model's hold-out metrics say little. Episodes, not
rows, are the independent draws (steps of an episode are correlated), and with a
fifth held out, 10 training episodes leave a hold-out of 2-3."""
MIN_ROWS_PER_FEATURE = 10
"""Fewer training rows per feature than this: the model can fit noise in every feature
(the common rule of thumb of 10 observations per parameter, taken per input column)."""
MIN_HOLDOUT_EPISODES = 3
"""Hold-out metrics over fewer episodes than this are one noisy draw."""


def data_size_warnings(
    train_episodes: int, train_rows: int, n_features: int, holdout_episodes: int | None = None
) -> list[str]:
    """Why a model's training set is too small for its metrics to mean much (empty: it is not).

    The rule: at least :data:`MIN_TRAIN_EPISODES` training episodes, at least
    :data:`MIN_ROWS_PER_FEATURE` training rows per feature, and at least
    :data:`MIN_HOLDOUT_EPISODES` hold-out episodes.

    Examples
    --------
    >>> data_size_warnings(32, 1_000, 23, holdout_episodes=8)
    []
    >>> print(data_size_warnings(4, 141, 57)[1])  # doctest: +ELLIPSIS
    trained on 141 rows for 57 features (2.47 per feature, fewer than 10): ...
    """
    out: list[str] = []
    fix = "ingest more episodes (rmlite collect, rmlite ingest)"
    if train_episodes < MIN_TRAIN_EPISODES:
        out.append(
            f"trained on {train_episodes} episode(s), fewer than {MIN_TRAIN_EPISODES}: too few "
            f"for the model or its hold-out metrics to mean much; {fix}"
        )
    per_feature = train_rows / max(n_features, 1)
    if per_feature < MIN_ROWS_PER_FEATURE:
        out.append(
            f"trained on {train_rows:,} rows for {n_features} features ({per_feature:.3g} per "
            f"feature, fewer than {MIN_ROWS_PER_FEATURE}): the model can fit noise in every "
            f"feature; {fix}, or use fewer features (no --next-obs/--delta/--lags)"
        )
    if holdout_episodes is not None and holdout_episodes < MIN_HOLDOUT_EPISODES:
        out.append(
            f"the hold-out holds {holdout_episodes} episode(s), fewer than "
            f"{MIN_HOLDOUT_EPISODES}: its metrics are one noisy draw; {fix}, or raise --holdout"
        )
    return out


def skill_warnings(metrics: dict[str, Any], target: str, where: str = "hold-out") -> list[str]:
    """Why a model predicts ``where`` worse than the mean would (empty: it does not).

    Regression: R² below 0 (the mean of the true values scores 0). Events: a Brier score
    above ``rate x (1 - rate)``, the score of always predicting the event rate.

    Examples
    --------
    >>> skill_warnings({"r2": 0.8}, "reward")
    []
    >>> print(skill_warnings({"r2": -2.24}, "return")[0])  # doctest: +ELLIPSIS
    hold-out R² is -2.24, below 0: the model predicts ... worse than their mean return does; ...
    """
    fix = (
        "train on more episodes, or a simpler model (fewer trees or epochs, shallower trees, "
        "a lower learning rate)"
    )
    if target == "event":
        rate, brier = metrics.get("event_rate"), metrics.get("brier")
        if rate is None or brier is None or not np.isfinite(brier):
            return []
        if brier > rate * (1 - rate):
            return [
                f"{where} Brier score is {brier:.4g}, above {rate * (1 - rate):.4g} (always "
                f"predicting the event rate {rate:.3g}): the model's probabilities are worse "
                f"than no model; {fix}"
            ]
        return []
    r2 = metrics.get("r2")
    if r2 is None or not np.isfinite(r2) or r2 >= 0:
        return []
    what = {"reward": "reward", "return": "return"}.get(target, target)
    return [
        f"{where} R² is {r2:.3g}, below 0: the model predicts the {where} transitions worse "
        f"than their mean {what} does; {fix}"
    ]


def warn_all(messages: list[str], category: type[Warning], stacklevel: int = 3) -> None:
    """Issue each message as a Python warning of ``category`` (callers also return them)."""
    import warnings

    for message in messages:
        warnings.warn(message, category, stacklevel=stacklevel)
