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
