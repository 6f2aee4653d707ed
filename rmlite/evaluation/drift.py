"""Drift between a reference window (the training episodes) and a recent one, and its thresholds.

Per column: the population stability index, the two-sample Kolmogorov–Smirnov test and the
Wasserstein distance in reference standard deviations (:func:`drift_table`), judged by
:class:`Thresholds` (PSI 0.1 / 0.25 and Wasserstein 0.1, the defaults users of Evidently and
NannyML know); :func:`dataset_drift` says whether enough feature columns moved for an alert.

Those fixed numbers ignore the window's size: PSI is biased upward on small samples, and the
steps of one episode are correlated, so a window of 12 episodes from the very policy that
trained the model crosses PSI 0.1 on most features. :func:`bootstrap_limits` therefore
measures what same-distribution windows of that many episodes give, by resampling whole
episodes of the reference, and raises each column's thresholds to the tail of that
distribution (never below the fixed ones): the sample-size rule that monitor passes apply.
:func:`histogram_table` keeps reference-vs-current histograms for the dashboard.
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
    """Under the fixed rule only (a reference saved without episode ids, or ``bootstrap=0``):
    windows of fewer episodes report drift but never alert on it (capped at warn), since
    a window's effective sample size is nearer its episode count than its row count."""
    drift_share: float = 0.5
    """Share of the feature columns that must drift (warn or worse) for a dataset alert
    under the fixed rule (the sample-size rule sums PSI instead: :func:`dataset_limit`)."""
    bins: int = 10
    """Bins for PSI: quantiles of the reference window."""
    bootstrap: int = 200
    """Episode-bootstrap draws that calibrate the thresholds to a window's episode count
    (:func:`bootstrap_limits`); 0 turns the sample-size rule off (fixed thresholds only)."""
    warn_quantile: float = 0.95
    """A column warns when its PSI or Wasserstein passes this quantile of same-distribution
    windows of its size (and the fixed ``psi_warn`` / ``wasserstein``)."""
    alert_alpha: float = 0.01
    """Sample-size rule: the share of same-distribution windows allowed to raise a column
    alert (each of the n tested columns alerts beyond its 1 − alert_alpha / n quantile,
    Bonferroni); the dataset score gets half of it (its gamma tail is the less exact one:
    at alert_alpha, 3 of 40 same-policy windows of 20 Pendulum episodes alerted)."""
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
            "bootstrap": self.bootstrap == 0 or self.bootstrap >= 20,
            "warn_quantile": 0 < self.warn_quantile < 1,
            "alert_alpha": 0 < self.alert_alpha < 1,
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
                f"bootstrap 0 or >= 20, 0 < warn_quantile < 1, 0 < alert_alpha < 1, "
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


LIMIT_COLUMNS = ("psi_warn", "psi_alert", "psi_joint", "wasserstein_warn", "wasserstein_alert")
"""The thresholds a column was judged by, as :func:`drift_table` reports them:

- ``psi_warn`` / ``wasserstein_warn``: PSI or Wasserstein at or above warns;
- ``psi_alert``: PSI at or above alerts on its own;
- ``psi_joint`` with ``wasserstein_alert``: both at or above alerts.

Under the fixed rule they are ``Thresholds``' numbers (0.1, 0.25, 0.1, 0.1, 0.1); under the
sample-size rule each is the larger of that number and the bootstrap quantile."""


def fixed_limits(thresholds: Thresholds | None = None) -> dict[str, float]:
    """The fixed rule's limits (:data:`LIMIT_COLUMNS`), the floors of the sample-size rule."""
    t = thresholds or Thresholds()
    return {
        "psi_warn": t.psi_warn,
        "psi_alert": t.psi_alert,
        "psi_joint": t.psi_warn,
        "wasserstein_warn": t.wasserstein,
        "wasserstein_alert": t.wasserstein,
    }


def _binning(reference: np.ndarray, bins: int) -> tuple[bool, np.ndarray]:
    """(categorical, cuts): one bin per value when the reference takes at most ``bins``
    values (plus one for values it never took), else bins cut at its quantiles."""
    values = np.unique(reference)
    if len(values) <= bins:
        return True, values
    return False, np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))


def _bin_index(categorical: bool, cuts: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The bin of each value of ``x``, in ``0 .. len(cuts)`` (``len(cuts) + 1`` bins)."""
    if not categorical:
        return np.searchsorted(cuts, x, "right")
    position = np.searchsorted(cuts, x)
    known = (position < len(cuts)) & (cuts[np.minimum(position, len(cuts) - 1)] == x)
    return np.where(known, position, len(cuts))


def _psi_from_shares(r: np.ndarray, c: np.ndarray) -> np.ndarray:
    # Empty bins get a share of 1e-4, as Evidently does (the log would be infinite).
    r, c = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
    return np.sum((c - r) * np.log(c / r), axis=-1)


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
    categorical, cuts = _binning(reference, bins)
    n_bins = len(cuts) + 1
    ref_counts = np.bincount(_bin_index(categorical, cuts, reference), minlength=n_bins)
    cur_counts = np.bincount(_bin_index(categorical, cuts, current), minlength=n_bins)
    return float(_psi_from_shares(ref_counts / len(reference), cur_counts / len(current)))


def _finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def severity(p: float, w: float, limits: Mapping[str, float], ks_drifted: bool = False) -> str:
    """``alert`` when PSI ≥ ``psi_alert``, or PSI ≥ ``psi_joint`` with Wasserstein ≥
    ``wasserstein_alert``; ``warn`` when PSI ≥ ``psi_warn``, Wasserstein ≥
    ``wasserstein_warn`` or ``ks_drifted``; else ``ok``."""
    if p >= limits["psi_alert"] or (p >= limits["psi_joint"] and w >= limits["wasserstein_alert"]):
        return "alert"
    if p >= limits["psi_warn"] or w >= limits["wasserstein_warn"] or ks_drifted:
        return "warn"
    return "ok"


def column_drift(
    reference: np.ndarray,
    current: np.ndarray,
    thresholds: Thresholds | None = None,
    limits: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """PSI, KS statistic and p-value, normalized Wasserstein distance, a severity and the
    limits it was judged by (:data:`LIMIT_COLUMNS`).

    Without ``limits`` (the fixed rule): ``alert`` when PSI ≥ ``psi_alert``, or when PSI ≥
    ``psi_warn`` and the Wasserstein distance ≥ ``wasserstein`` both; ``warn`` when one of
    PSI ≥ ``psi_warn``, Wasserstein ≥ ``wasserstein`` or (small windows only) KS p <
    ``ks_alpha``; else ``ok``. With ``limits`` (from :func:`bootstrap_limits`, which already
    account for the window's size) the KS p-value does not vote: consecutive steps are not
    the independent draws it assumes.
    """
    from scipy.stats import ks_2samp, wasserstein_distance

    t = thresholds or Thresholds()
    calibrated = limits is not None
    applied: dict[str, Any] = {**fixed_limits(t), "psi_expected": None}
    applied.update(limits or {})
    ref, cur = _finite(reference), _finite(current)
    if len(ref) == 0 or len(cur) == 0:
        return {
            "psi": None,
            "ks": None,
            "ks_pvalue": None,
            "wasserstein": None,
            "severity": "ok",
            **applied,
        }
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
    ks_drifted = not calibrated and small and bool(ks.pvalue < t.ks_alpha)
    return {
        "psi": p,
        "ks": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "wasserstein": w,
        "severity": severity(p, w, applied, ks_drifted),
        **applied,
    }


DRIFT_SCHEMA: dict[str, Any] = {
    "kind": pl.String,
    "name": pl.String,
    "psi": pl.Float64,
    "ks": pl.Float64,
    "ks_pvalue": pl.Float64,
    "wasserstein": pl.Float64,
    "severity": pl.String,
    **dict.fromkeys(LIMIT_COLUMNS, pl.Float64),
    "psi_expected": pl.Float64,
}
"""Columns of :func:`drift_table` (and of the store's ``drift`` table, less its keys)."""


def drift_table(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    kinds: Mapping[str, str] | None = None,
    thresholds: Thresholds | None = None,
    limits: Mapping[str, Mapping[str, float]] | None = None,
) -> pl.DataFrame:
    """One row per column present in both windows: kind, name, PSI, KS, Wasserstein,
    severity and the limits applied (:data:`LIMIT_COLUMNS`).

    ``kinds`` maps a column to ``feature`` (the default), ``reward``, ``prediction`` or
    ``residual``. ``limits`` maps a column to its sample-size limits
    (:func:`bootstrap_limits`); columns without any are judged by the fixed rule.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = {"x": rng.normal(size=3000), "y": rng.normal(size=3000)}
    >>> cur = {"x": rng.normal(size=3000), "y": rng.normal(loc=2.0, size=3000)}
    >>> drift_table(ref, cur)["severity"].to_list()
    ['ok', 'alert']
    """
    kinds = kinds or {}
    limits = limits or {}
    rows = [
        {
            "kind": kinds.get(name, "feature"),
            "name": name,
            **column_drift(reference[name], current[name], thresholds, limits.get(name)),
        }
        for name in reference
        if name in current
    ]
    return pl.DataFrame(rows, schema=DRIFT_SCHEMA)


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


# ------------------------------------------------------------ the sample-size rule


GRID = 256
"""Points of the grid on which bootstrap draws' Wasserstein distances are integrated."""


def _tail(draws: np.ndarray, level: float) -> float:
    """The ``level`` quantile of a non-negative statistic from its bootstrap draws, read off
    the gamma distribution with their mean and variance: smooth in ``level`` and defined
    beyond the 1 − 1/B that B draws resolve (the alert levels lie there). PSI of sampling
    noise is a scaled χ², itself a gamma."""
    from scipy.stats import gamma

    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return float("inf")
    mean, var = float(draws.mean()), float(draws.var(ddof=1))
    if mean <= 0 or var <= 0:
        return mean
    return float(gamma.ppf(level, mean * mean / var, scale=var / mean))


def bootstrap_limits(
    reference: Mapping[str, np.ndarray],
    episodes: np.ndarray,
    window_episodes: int,
    thresholds: Thresholds | None = None,
    *,
    columns: int | None = None,
    seed: int = 0,
    draw_scores: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, float]]:
    """Per-column drift limits (:data:`LIMIT_COLUMNS`) for a window of ``window_episodes``
    episodes, from episode-bootstrap resamples of the reference.

    Each of ``thresholds.bootstrap`` draws takes ``window_episodes`` whole episodes of the
    reference with replacement (steps within an episode are correlated, so they move
    together) and measures PSI and the normalized Wasserstein distance of the pooled rows
    against the whole reference, with the same bins as :func:`psi`. A column warns beyond
    the ``warn_quantile`` of its draws, and alerts beyond the 1 − alert_alpha / ``columns``
    quantile (``columns``: how many columns the window tests, default those given): so at
    most about ``alert_alpha`` of same-distribution windows raise a column alert (and half
    as many the dataset alert, :func:`dataset_limit`). Every limit is
    at least the fixed one (:func:`fixed_limits`): a large window never alerts below PSI
    0.1 / 0.25.

    A draw compared with the reference it came from lacks one noise a fresh window has:
    the reference's own (it is a finite sample of n_ref episodes, a fixed offset from the
    population). Its expected size is added to each quantile: PSI grows as 1/n, so by the
    draws' mean PSI times n_window / n_ref; the Wasserstein distance as 1/√n, so by its mean
    times √(1 + n_window / n_ref) − 1. (Scaling the draws down to n_window · n_ref /
    (n_window + n_ref) episodes instead doubled the thresholds against fresh windows
    measured on Pendulum-v1: that treats the offset as fresh noise in every window.)

    Each column also gets ``psi_expected``, the PSI a fresh window of that size has on
    average; ``draw_scores``, when given, receives each column's PSI per draw in those
    units (the same draws for every column): what calibrates the dataset-level alert
    (:func:`dataset_limit`).

    Vectorized over draws: a draw is a weight per reference row (its episode's
    multiplicity), so bin shares are one matrix product and the Wasserstein distance the
    area between two cumulative sums.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> episodes = np.repeat(np.arange(40), 50)  # 40 episodes of 50 correlated steps
    >>> x = np.repeat(rng.normal(size=40), 50) + rng.normal(size=2000)
    >>> small = bootstrap_limits({"x": x}, episodes, 5)["x"]
    >>> large = bootstrap_limits({"x": x}, episodes, 200)["x"]
    >>> small["psi_alert"] > large["psi_alert"] >= 0.25
    True
    """
    t = thresholds or Thresholds()
    floors = fixed_limits(t)
    episodes = np.asarray(episodes)
    ids, row_episode = np.unique(episodes, return_inverse=True)
    m = max(int(window_episodes), 1)
    reference_share = m / len(ids)
    rng = np.random.default_rng(seed)
    draws = max(t.bootstrap, 20)
    multiplicity = rng.multinomial(m, np.full(len(ids), 1 / len(ids)), size=draws).astype(float)
    n_episodes = len(ids)
    alert_level = 1 - t.alert_alpha / max(columns or len(reference), 1)
    out: dict[str, dict[str, float]] = {}
    for name, values in reference.items():
        x = np.asarray(values, dtype=np.float64).ravel()
        finite = np.isfinite(x)
        x, episode = x[finite], row_episode[finite]
        if len(x) < 2:
            continue

        def per_episode(
            group: np.ndarray, groups: int, episode: np.ndarray = episode
        ) -> np.ndarray:
            # Rows of each episode in each group: a draw's counts are then one product.
            flat = np.bincount(episode * groups + group, minlength=n_episodes * groups)
            return flat.reshape(n_episodes, groups).astype(float)

        # PSI: the draw's bin shares against the reference's.
        categorical, cuts = _binning(x, t.bins)
        bins = per_episode(_bin_index(categorical, cuts, x), len(cuts) + 1)
        counts = multiplicity @ bins
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        psis = _psi_from_shares(bins.sum(axis=0) / len(x), shares)
        # Wasserstein-1 = ∫ |F_draw − F_ref| dx, on a grid of GRID groups of consecutive
        # sorted reference values (the draws only reweight whole episodes).
        order = np.argsort(x, kind="stable")
        groups = min(GRID, len(x))
        group = np.empty(len(x), dtype=np.int64)
        group[order] = np.arange(len(x)) * groups // len(x)
        starts = np.searchsorted(group[order], np.arange(groups))
        step = np.diff(x[order][starts])
        cells = per_episode(group, groups)
        cumulative = np.cumsum(multiplicity @ cells, axis=1)
        f_draw = (cumulative / np.maximum(cumulative[:, -1:], 1.0))[:, :-1]
        f_ref = (np.cumsum(cells.sum(axis=0)) / len(x))[:-1]
        scale = float(np.std(x))
        dists = np.abs(f_draw - f_ref) @ step / (scale if scale > 0 else 1.0)
        psi_offset = float(psis.mean()) * reference_share
        w_offset = float(dists.mean()) * (float(np.sqrt(1 + reference_share)) - 1)
        psi_warn, psi_alert = (_tail(psis, q) + psi_offset for q in (t.warn_quantile, alert_level))
        w_warn, w_alert = (_tail(dists, q) + w_offset for q in (t.warn_quantile, alert_level))
        expected = float(psis.mean()) * (1 + reference_share)
        if draw_scores is not None:
            draw_scores[name] = psis / expected if expected > 0 else np.zeros_like(psis)
        out[name] = {
            "psi_warn": max(floors["psi_warn"], psi_warn),
            "psi_alert": max(floors["psi_alert"], psi_alert),
            "psi_joint": max(floors["psi_joint"], psi_alert),
            "wasserstein_warn": max(floors["wasserstein_warn"], w_warn),
            "wasserstein_alert": max(floors["wasserstein_alert"], w_alert),
            "psi_expected": expected,
        }
    return out


def dataset_score(table: pl.DataFrame) -> float:
    """Σ over feature columns of PSI / ``psi_expected``: how far the window moved, all
    features together, in units of what same-size windows of the reference move."""
    features = table.filter(
        (pl.col("kind") == "feature") & (pl.col("psi_expected") > 0) & pl.col("psi").is_finite()
    )
    return float((features["psi"] / features["psi_expected"]).sum())


def dataset_limit(
    draw_scores: Mapping[str, np.ndarray],
    thresholds: Thresholds | None = None,
    reference_share: float = 0.0,
) -> float:
    """The dataset score (:func:`dataset_score`) that only ``alert_alpha`` / 2 of
    same-distribution windows reach, from the per-draw scores of :func:`bootstrap_limits`
    (``reference_share``: window episodes over reference episodes; the reference's own
    noise is added to the quantile as in :func:`bootstrap_limits`).

    A shift of the dynamics moves several features a little: each stays within its own
    limits on a small window while their sum does not (gravity 15 on 20 Pendulum episodes:
    alerted on 90% of windows by the sum, on 60% by single columns, measured).
    """
    t = thresholds or Thresholds()
    if not draw_scores:
        return float("inf")
    scores = np.sum(np.vstack(list(draw_scores.values())), axis=0)
    return _tail(scores, 1 - t.alert_alpha / 2) + float(scores.mean()) * reference_share


# --------------------------------------------------------------------- histograms


HISTOGRAM_SCHEMA: dict[str, Any] = {
    "kind": pl.String,
    "name": pl.String,
    "edges": pl.List(pl.Float64),
    "reference": pl.List(pl.Float64),
    "current": pl.List(pl.Float64),
}
"""Columns of :func:`histogram_table` (and of the store's ``drift_histograms`` table)."""


def histogram_table(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    kinds: Mapping[str, str] | None = None,
    bins: int = 20,
) -> pl.DataFrame:
    """Reference and current shares per bin of every column present in both windows.

    ``bins`` equal-width bins between the 0.5th and 99.5th percentiles of the two windows
    together (values beyond fall in the end bins), so both histograms share their edges
    and an outlier does not squeeze the rest into one bar.

    Examples
    --------
    >>> h = histogram_table({"x": np.arange(100.0)}, {"x": np.arange(50.0)}, bins=4)
    >>> len(h["edges"][0]), h["current"][0].to_list()
    (5, [0.5, 0.5, 0.0, 0.0])
    """
    kinds = kinds or {}
    rows = []
    for name in reference:
        if name not in current:
            continue
        ref, cur = _finite(reference[name]), _finite(current[name])
        if len(ref) == 0 or len(cur) == 0:
            continue
        low, high = np.quantile(np.concatenate([ref, cur]), [0.005, 0.995])
        if not high > low:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, bins + 1)

        def shares(x: np.ndarray, edges: np.ndarray = edges) -> list[float]:
            index = np.clip(np.searchsorted(edges, x, "right") - 1, 0, bins - 1)
            return (np.bincount(index, minlength=bins) / len(x)).tolist()

        rows.append(
            {
                "kind": kinds.get(name, "feature"),
                "name": name,
                "edges": edges.tolist(),
                "reference": shares(ref),
                "current": shares(cur),
            }
        )
    return pl.DataFrame(rows, schema=HISTOGRAM_SCHEMA)
