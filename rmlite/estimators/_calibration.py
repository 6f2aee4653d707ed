"""Platt scaling: the calibration map of :class:`~rmlite.estimators.reward.RewardClassifier`.

A classifier trained with ``class_weight`` predicts the odds of a reweighted world, and a
model stopped after a few trees has not reached its optimum either; dividing the odds by
the class-weight factor (a prior-shift correction) is right only at the optimum. Platt
scaling fits ``p = σ(a·z + b)`` on the model's log-odds ``z`` over rows the model never
trained on (the validation episodes), so it corrects whatever the fit: a monotone map,
which keeps the ranking (AUC) and restores the mean (calibration in the large).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> z = rng.normal(size=5000)
>>> y = (rng.random(5000) < 1 / (1 + np.exp(-(0.5 * z - 2.0)))).astype(float)
>>> a, b = platt_scaling(z, y)
>>> round(a, 1), round(b, 1)
(0.5, -2.0)
"""

from __future__ import annotations

import numpy as np

IDENTITY = (1.0, 0.0)
"""The map that changes nothing: ``σ(1·z + 0) = σ(z)``."""


def platt_scaling(
    z: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, max_iter: int = 100
) -> tuple[float, float]:
    """Slope and intercept ``(a, b)`` of ``P(y=1 | z) = σ(a·z + b)``, fitted by Newton's method.

    Platt (1999) with his regularized targets: positives count as ``(N₊+1)/(N₊+2)`` and
    negatives as ``1/(N₋+2)``, so a validation split with few (or no) events still gives
    finite parameters rather than ``b → ±∞``.
    """
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(z) if weight is None else np.asarray(weight, dtype=np.float64)
    n_pos, n_neg = float(w[y == 1].sum()), float(w[y != 1].sum())
    t = np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    a, b = 0.0, float(np.log((n_pos + 1.0) / (n_neg + 1.0)))  # Platt's start: the prior

    def loss(a: float, b: float) -> float:
        # Cross-entropy of targets t against σ(f), f = a·z + b: Σ w [log(1 + e^f) − t·f].
        f = a * z + b
        return float(np.sum(w * (np.logaddexp(0.0, f) - t * f)))

    current = loss(a, b)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(a * z + b)))
        r = w * (p - t)  # ∂loss/∂f
        s = w * p * (1.0 - p) + 1e-12  # ∂²loss/∂f²
        grad = np.array([np.dot(r, z), r.sum()])
        hess = np.array([[np.dot(s, z * z), np.dot(s, z)], [np.dot(s, z), s.sum()]])
        hess[np.diag_indices(2)] += 1e-9 * (1.0 + np.abs(np.diag(hess)))
        step = np.linalg.solve(hess, grad)
        # Backtracking: halve the Newton step until the loss goes down.
        scale = 1.0
        while scale > 1e-8:
            a_new, b_new = a - scale * step[0], b - scale * step[1]
            new = loss(a_new, b_new)
            if new <= current:
                break
            scale /= 2.0
        else:
            break
        improved = current - new
        a, b, current = a_new, b_new, new
        if improved < 1e-10 * max(1.0, abs(current)):
            break
    return float(a), float(b)


def apply_platt(z: np.ndarray, a: float, b: float) -> np.ndarray:
    """Calibrated probabilities ``σ(a·z + b)``."""
    return np.asarray(1.0 / (1.0 + np.exp(-(a * np.asarray(z, dtype=np.float64) + b))))


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of probabilities, clipped away from 0 and 1 so they stay finite."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    return np.asarray(np.log(p) - np.log1p(-p))
