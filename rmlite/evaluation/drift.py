"""Drift between a reference window (the training episodes) and a recent one, and its thresholds.

Per column: the population stability index, the two-sample Kolmogorov–Smirnov test and the
Wasserstein distance in reference standard deviations (:func:`drift_table`), judged by
:class:`Thresholds` (PSI 0.1 / 0.25 and Wasserstein 0.1, the defaults users of Evidently and
NannyML know); :func:`dataset_drift` says whether enough feature columns moved for an alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import polars as pl

from rmlite.exceptions import ParameterError

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
