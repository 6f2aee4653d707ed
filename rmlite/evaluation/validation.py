"""Metrics against ground truth, drift, and overfitting: how a reward model is watched.

Regression (rewards, returns): RMSE, MAE, R², Spearman, and the error of each episode's
summed reward (what an agent actually optimizes). Events: AUC, log-loss, Brier score,
calibration curve and expected calibration error. (Preferences: pairwise accuracy and EPIC
live in :mod:`rmlite.estimators.preference`.)

Drift between a reference window (the training episodes) and a recent one: per column, the
population stability index, the two-sample Kolmogorov–Smirnov test and the Wasserstein
distance in reference standard deviations (:func:`drift_table`), judged by
:class:`Thresholds` (PSI 0.1 / 0.25 and Wasserstein 0.1, the defaults users of Evidently and
NannyML know). Overfitting: the ratio of hold-out to training loss at the end of the
learning curves, against Christiano et al.'s band (:func:`overfitting`).

Examples
--------
>>> import numpy as np
>>> m = regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.1, 1.9, 3.2, 3.9]),
...                        groups=np.array([0, 0, 1, 1]))
>>> round(m["r2"], 3), round(m["episode_return_mae"], 3)
(0.986, 0.05)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from rmlite._typing import PathLike
from rmlite.exceptions import ParameterError

if TYPE_CHECKING:
    from rmlite.data.features import FeatureFrame


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


# ------------------------------------------------------------------------ thresholds


@dataclass(frozen=True)
class Thresholds:
    """When a monitored number becomes a warning or an alert. Every field is configurable.

    Defaults follow the tools users already know: PSI 0.1 (moderate shift, warn) and 0.25
    (major shift, alert) as in Evidently, NannyML and credit-risk practice; a Wasserstein
    distance of 0.1 reference standard deviations as Evidently's numerical default; a
    dataset drifts when half of its features do (Evidently's share); validation loss kept
    within 1.1–1.5x the training loss (Christiano et al. 2017, "Deep RL from human
    preferences", who tuned regularization to stay in that band).
    """

    psi_warn: float = 0.1
    """PSI at or above this: a moderate shift (warn)."""
    psi_alert: float = 0.25
    """PSI at or above this: a major shift (alert)."""
    wasserstein: float = 0.1
    """Wasserstein distance, in reference standard deviations, at or above which a column
    has moved (warn; with PSI at or above ``psi_warn`` too, alert)."""
    ks_alpha: float = 0.05
    """KS p-value below this marks a column as drifted, but only where both windows hold at
    most ``ks_max_rows`` rows: consecutive steps of an episode are not independent draws,
    so on large windows the p-value flags differences too small to matter."""
    ks_max_rows: int = 1000
    """Largest window on which the KS p-value decides (Evidently switches at 1,000)."""
    min_episodes: int = 10
    """Windows of fewer episodes report drift but never alert on it (capped at warn):
    steps of one episode are strongly correlated, so a window's effective sample size is
    nearer its episode count than its row count."""
    drift_share: float = 0.5
    """Share of the feature columns that must drift (warn or worse) for a dataset alert."""
    bins: int = 10
    """Bins for PSI: quantiles of the reference window."""
    rmse_warn: float = 1.25
    """Window RMSE over the training hold-out's RMSE at or above this: warn."""
    rmse_alert: float = 1.5
    """... and at or above this: alert."""
    r2_drop: float = 0.05
    """R² below the training hold-out's by more than this: alert."""
    overfit_band: tuple[float, float] = (1.1, 1.5)
    """Hold-out (or validation) loss over training loss: below the band there is room to fit
    more, above it the model overfits."""
    overfit_min_gap: float = 0.01
    """Training R² minus hold-out R² at or above which a ratio above the band is an alarm."""
    overfit_min_rise: float = 0.05
    """Rise of the final hold-out loss over its minimum at or above which a ratio above the
    band is an alarm. (Below both, no alarm: the ratio of two tiny losses of a near-perfect
    fit says nothing.)"""

    def __post_init__(self) -> None:
        checks = {
            "psi_warn": 0 < self.psi_warn <= self.psi_alert,
            "psi_alert": self.psi_alert > 0,
            "wasserstein": self.wasserstein > 0,
            "ks_alpha": 0 < self.ks_alpha < 1,
            "ks_max_rows": self.ks_max_rows >= 0,
            "min_episodes": self.min_episodes >= 0,
            "drift_share": 0 < self.drift_share <= 1,
            "bins": self.bins >= 2,
            "rmse_warn": 1 <= self.rmse_warn <= self.rmse_alert,
            "r2_drop": self.r2_drop >= 0,
            "overfit_band": len(self.overfit_band) == 2
            and 1 <= self.overfit_band[0] <= self.overfit_band[1],
            "overfit_min_gap": self.overfit_min_gap >= 0,
            "overfit_min_rise": self.overfit_min_rise >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = {name: getattr(self, name) for name in bad}
            raise ParameterError(
                f"Thresholds: {values} out of range; expected 0 < psi_warn <= psi_alert, "
                f"wasserstein > 0, 0 < ks_alpha < 1, min_episodes >= 0, 0 < drift_share <= 1, bins >= 2, "
                f"1 <= rmse_warn <= rmse_alert, r2_drop >= 0, overfit_band (low, high) with "
                f"1 <= low <= high, overfit_min_gap >= 0, overfit_min_rise >= 0."
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Thresholds:
        """Thresholds from ``{"psi_alert": 0.3, ...}``; unknown names are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError(f"unknown threshold(s) {unknown}; known: {sorted(known)}.")
        clean = dict(values)
        if "overfit_band" in clean:
            clean["overfit_band"] = tuple(float(v) for v in clean["overfit_band"])
        return cls(**clean)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- drift


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``.

    PSI = Σ_b (c_b − r_b) · ln(c_b / r_b) over bins cut at the reference's quantiles, where
    r_b and c_b are the shares of each window in bin b (empty bins get 1e-4, as Evidently
    does). A column with few distinct values gets one bin per value.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=5000), rng.normal(size=5000)
    >>> psi(a, b) < 0.01, psi(a, b + 1.0) > 0.25
    (True, True)
    """
    reference = _finite(reference)
    current = _finite(current)
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    values = np.unique(reference)
    if len(values) <= bins:
        # Categories: each reference value, plus one bin for values it never took.
        ref_counts = _category_counts(reference, values)
        cur_counts = _category_counts(current, values)
    else:
        edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
        ref_counts = np.bincount(
            np.searchsorted(edges, reference, "right"), minlength=len(edges) + 1
        )
        cur_counts = np.bincount(np.searchsorted(edges, current, "right"), minlength=len(edges) + 1)
    r = np.maximum(ref_counts / len(reference), 1e-4)
    c = np.maximum(cur_counts / len(current), 1e-4)
    return float(np.sum((c - r) * np.log(c / r)))


def _category_counts(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    position = np.searchsorted(values, x)
    known = (position < len(values)) & (values[np.minimum(position, len(values) - 1)] == x)
    counts = np.bincount(position[known], minlength=len(values))
    return np.append(counts, np.count_nonzero(~known))


def _finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def column_drift(
    reference: np.ndarray, current: np.ndarray, thresholds: Thresholds | None = None
) -> dict[str, Any]:
    """PSI, KS statistic and p-value, normalized Wasserstein distance, and a severity.

    Severity: ``alert`` when PSI ≥ ``psi_alert``, or when PSI ≥ ``psi_warn`` and the
    Wasserstein distance ≥ ``wasserstein`` both; ``warn`` when one of PSI ≥ ``psi_warn``,
    Wasserstein ≥ ``wasserstein`` or (small windows only) KS p < ``ks_alpha``; else ``ok``.
    """
    from scipy.stats import ks_2samp, wasserstein_distance

    t = thresholds or Thresholds()
    ref, cur = _finite(reference), _finite(current)
    if len(ref) == 0 or len(cur) == 0:
        return {"psi": None, "ks": None, "ks_pvalue": None, "wasserstein": None, "severity": "ok"}
    p = psi(ref, cur, t.bins)
    small = max(len(ref), len(cur)) <= t.ks_max_rows
    # The exact KS distribution is only worth its cost (and only succeeds) on small windows.
    ks = ks_2samp(ref, cur, method="auto" if small else "asymp")
    scale = float(np.std(ref))
    w = float(wasserstein_distance(ref, cur))
    if scale > 0:
        w /= scale
    elif w > 0:
        w = float("inf")  # a constant column that moved
    moved = w >= t.wasserstein
    if p >= t.psi_alert or (p >= t.psi_warn and moved):
        severity = "alert"
    elif p >= t.psi_warn or moved or (small and ks.pvalue < t.ks_alpha):
        severity = "warn"
    else:
        severity = "ok"
    return {
        "psi": p,
        "ks": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "wasserstein": w,
        "severity": severity,
    }


def drift_table(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    kinds: Mapping[str, str] | None = None,
    thresholds: Thresholds | None = None,
) -> pl.DataFrame:
    """One row per column present in both windows: kind, name, PSI, KS, Wasserstein, severity.

    ``kinds`` maps a column to ``feature`` (the default), ``reward``, ``prediction`` or
    ``residual``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = {"x": rng.normal(size=3000), "y": rng.normal(size=3000)}
    >>> cur = {"x": rng.normal(size=3000), "y": rng.normal(loc=2.0, size=3000)}
    >>> drift_table(ref, cur)["severity"].to_list()
    ['ok', 'alert']
    """
    kinds = kinds or {}
    rows = [
        {
            "kind": kinds.get(name, "feature"),
            "name": name,
            **column_drift(reference[name], current[name], thresholds),
        }
        for name in reference
        if name in current
    ]
    schema = {
        "kind": pl.String,
        "name": pl.String,
        "psi": pl.Float64,
        "ks": pl.Float64,
        "ks_pvalue": pl.Float64,
        "wasserstein": pl.Float64,
        "severity": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def dataset_drift(table: pl.DataFrame, thresholds: Thresholds | None = None) -> dict[str, Any]:
    """Share of feature columns that drifted (warn or worse) and whether that is an alert."""
    t = thresholds or Thresholds()
    features = table.filter(pl.col("kind") == "feature")
    n = features.height
    drifted = features.filter(pl.col("severity") != "ok").height
    share = drifted / n if n else 0.0
    return {
        "features": n,
        "drifted": drifted,
        "share": share,
        "alert": n > 0 and share >= t.drift_share,
    }


# ---------------------------------------------------------------------- overfitting


def overfitting(
    curves: Sequence[Mapping[str, Sequence[float]]],
    *,
    train_r2: float | None = None,
    holdout_r2: float | None = None,
    band: tuple[float, float] = (1.1, 1.5),
    min_gap: float = 0.01,
    min_rise: float = 0.05,
) -> dict[str, Any]:
    """Is the model overfitting? Read off its learning curves and hold-out scores.

    ``ratio`` = final hold-out loss / final training loss, averaged over the ensemble's
    members (the ``"holdout"`` curve, else early stopping's ``"valid"``). Status: ``below
    band`` (ratio < band[0]: room to fit more), ``in band``, ``overfit`` (the alarm below),
    ``above band`` (ratio > band[1] without the alarm), or ``unknown`` without curves. ``rise`` = final hold-out loss / its minimum − 1: the
    hold-out loss climbing back while the training loss still falls.

    The alarm fires when the ratio is above the band and the overfitting costs something:
    the generalization gap ``train_r2 - holdout_r2`` is at least ``min_gap``, or the
    hold-out loss rose at least ``min_rise`` above its minimum. The ratio alone is not
    enough: a near-perfect fit of a deterministic reward has tiny losses whose ratio says
    nothing.

    Examples
    --------
    >>> curve = {"train": [1.0, 0.5, 0.1], "holdout": [1.1, 0.6, 0.4]}
    >>> report = overfitting([curve], train_r2=0.99, holdout_r2=0.9)
    >>> report["status"], report["alarm"], round(report["ratio"], 1)
    ('overfit', True, 4.0)
    """
    ratios, rises = [], []
    watched = None
    for curve in curves:
        train = list(curve.get("train") or [])
        for name in ("holdout", "valid"):
            held = list(curve.get(name) or [])
            if held and train:
                watched = watched or name
                ratios.append(held[-1] / train[-1] if train[-1] > 0 else float("inf"))
                rises.append(held[-1] / min(held) - 1.0 if min(held) > 0 else 0.0)
                break
    gap = None if train_r2 is None or holdout_r2 is None else float(train_r2 - holdout_r2)
    if not ratios:
        return {
            "status": "unknown",
            "alarm": False,
            "ratio": None,
            "gap": gap,
            "band": list(band),
            "rise": None,
            "curve": None,
            "message": "no training and hold-out learning curves were recorded for this model",
        }
    ratio = float(np.mean(ratios))
    rise = float(np.mean(rises))
    costly = rise >= min_rise or gap is None or gap >= min_gap
    alarm = ratio > band[1] and costly
    if alarm:
        status = "overfit"
    elif ratio > band[1]:
        status = "above band"
    elif ratio < band[0]:
        status = "below band"
    else:
        status = "in band"
    described = (
        f"{watched} loss is {ratio:.3g}x the training loss (band {band[0]}–{band[1]}), "
        f"{rise:.1%} above its minimum"
    )
    if gap is not None:
        described += f", R² gap {gap:.4f}"
    if alarm:
        message = f"overfitting: {described}. Regularize, use fewer trees/epochs or more data."
    elif status == "above band":
        message = (
            f"{described}: above the band, but the R² gap is under {min_gap} and the hold-out "
            f"loss rose less than {min_rise:.0%}, so no alarm."
        )
    else:
        message = f"{status}: {described}."
    return {
        "status": status,
        "alarm": bool(alarm),
        "ratio": ratio,
        "gap": gap,
        "band": list(band),
        "rise": rise,
        "curve": watched,
        "message": message,
    }


def explain_overfitting(report: Mapping[str, Any]) -> str:
    """An :func:`overfitting` report in one sentence a newcomer can read, verdict first.

    The loss ratio alone reads like an alarm on a healthy near-perfect fit (its losses
    are tiny, so their ratio is large): the sentence says whether the alarm fired and
    why, in terms of the R² on held-out against training episodes.

    Examples
    --------
    >>> curve = {"train": [1.0, 0.1, 0.01], "holdout": [1.0, 0.1, 0.052]}
    >>> explain_overfitting(overfitting([curve], train_r2=0.9995, holdout_r2=0.9990))
    'no overfitting alarm: the hold-out loss is 5.2x the training loss, but the hold-out R² is within 0.001 of the training R² and the hold-out loss is still at its lowest, so the model does as well on new episodes as on the ones it learned from.'
    >>> explain_overfitting(overfitting([curve], train_r2=0.99, holdout_r2=0.80))
    'overfitting alarm: the hold-out loss is 5.2x the training loss and the hold-out R² is 0.19 below the training R²: the model fits its training episodes better than new ones. Regularize, use fewer trees or epochs, or more data.'
    """
    ratio = report.get("ratio")
    if report.get("status") == "unknown" or ratio is None:
        return "not measured: no learning curves were recorded for this model."
    gap, rise = report.get("gap"), float(report.get("rise") or 0.0)
    low, high = report.get("band") or (1.1, 1.5)
    losses = f"the hold-out loss is {ratio:.2g}x the training loss"
    if gap is None:
        r2 = ""
    elif abs(gap) < 0.001:
        r2 = "the hold-out R² is within 0.001 of the training R²"
    elif gap > 0:
        r2 = f"the hold-out R² is {gap:.2g} below the training R²"
    else:
        r2 = f"the hold-out R² is {-gap:.2g} above the training R²"
    risen = (
        "the hold-out loss is still at its lowest"
        if rise < 0.005
        else f"the hold-out loss rose {rise:.0%} from its lowest"
    )
    if report.get("alarm"):
        why = r2 or risen
        return (
            f"overfitting alarm: {losses} and {why}: the model fits its training episodes "
            f"better than new ones. Regularize, use fewer trees or epochs, or more data."
        )
    if report.get("status") == "above band":
        nearly = "as well" if gap is not None and abs(gap) < 0.001 else "about as well"
        return (
            f"no overfitting alarm: {losses}, but {r2 + ' and ' if r2 else ''}{risen}, so the "
            f"model does {nearly} on new episodes as on the ones it learned from."
        )
    if report.get("status") == "below band":
        return (
            f"no overfitting: {losses} (under {low}x){', and ' + r2 if r2 else ''}; the "
            f"model may have room to fit more (more trees or epochs, a larger model)."
        )
    return f"no overfitting: {losses}, inside the usual {low}-{high}x{', and ' + r2 if r2 else ''}."


# ------------------------------------------------------------------ reference window

REFERENCE_FILE = "reference.parquet"
"""The reference window saved in a model folder (written by ``rmlite train``)."""

TARGET_COLUMN, PREDICTION_COLUMN, SPLIT_COLUMN = "__target", "__prediction", "__split"


def reference_sample(
    X: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    feature_names: Sequence[str],
    in_train: np.ndarray,
    *,
    rows: int = 5000,
    seed: int = 0,
) -> pl.DataFrame:
    """A sample of the training window for later drift tests, as one small table.

    Up to ``rows`` training rows (features as the model sees them, the target and the
    prediction, both in reward units) with ``__split = "train"``, and up to ``rows``
    hold-out rows with ``__split = "holdout"``: residuals are compared with the hold-out's,
    since training residuals are optimistic.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for split, mask in (("train", in_train), ("holdout", ~in_train)):
        index = np.flatnonzero(mask)
        if len(index) > rows:
            index = np.sort(rng.choice(index, size=rows, replace=False))
        part = pl.from_numpy(np.ascontiguousarray(X[index]), schema=list(feature_names))
        parts.append(
            part.with_columns(
                pl.Series(TARGET_COLUMN, np.asarray(y_true, dtype=np.float64)[index]),
                pl.Series(PREDICTION_COLUMN, np.asarray(y_pred, dtype=np.float64)[index]),
                pl.lit(split).alias(SPLIT_COLUMN),
            )
        )
    return pl.concat(parts)


def target_predictions(model: Any, frame: FeatureFrame) -> tuple[np.ndarray, np.ndarray]:
    """(logged target, prediction) per row of ``frame``, both in the target's own units.

    Rewards and returns come back unscaled (the scaling was training preprocessing); event
    models give the event probability. Missing targets stay NaN.
    """
    if frame.spec.target == "event":
        return frame.y.astype(np.float64), model.predict_proba(frame.X)[:, 1]
    inverse = frame.stats.inverse_transform_target
    return inverse(frame.y), inverse(model.predict(frame.X))


def save_reference(
    model: Any, frame: FeatureFrame, in_train: np.ndarray, folder: PathLike, seed: int = 0
) -> Path:
    """Save the training window's sample beside a model: what ``rmlite monitor`` compares
    new episodes with (:func:`reference_sample` of ``frame``, ``in_train`` its training rows)."""
    y_true, y_pred = target_predictions(model, frame)
    path = Path(folder) / REFERENCE_FILE
    reference_sample(
        frame.X, y_true, y_pred, frame.feature_names, in_train, seed=seed
    ).write_parquet(path)
    return path
