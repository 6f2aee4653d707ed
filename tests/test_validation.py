"""Drift statistics, overfitting verdicts, thresholds and calibration (rmlite.evaluation's
metrics, drift, overfit and reference modules)."""

from __future__ import annotations

import doctest

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmlite.evaluation import drift, metrics, overfit
from rmlite.evaluation.drift import (
    LIMIT_COLUMNS,
    Thresholds,
    column_drift,
    dataset_drift,
    drift_table,
    psi,
)
from rmlite.evaluation.metrics import calibration_curve, expected_calibration_error
from rmlite.evaluation.overfit import explain_overfitting, overfitting
from rmlite.evaluation.reference import (
    PREDICTION_COLUMN,
    SPLIT_COLUMN,
    TARGET_COLUMN,
    reference_sample,
)
from rmlite.exceptions import ParameterError


@pytest.mark.parametrize("module", [metrics, drift, overfit], ids=lambda m: m.__name__)
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# ------------------------------------------------------------------------------ PSI


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift(rng) -> None:
    a, b = rng.normal(size=20_000), rng.normal(size=20_000)
    assert psi(a, b) < 0.005
    assert 0.1 < psi(a, b + 0.5) < 0.25  # a moderate shift: between the usual thresholds
    assert psi(a, b + 1.5) > 0.25


def test_psi_matches_the_formula_on_hand_made_bins() -> None:
    # 4 distinct reference values → one bin per value; shares 0.25 each vs 0.1/0.2/0.3/0.4.
    ref = np.repeat([1.0, 2.0, 3.0, 4.0], 25)
    cur = np.repeat([1.0, 2.0, 3.0, 4.0], [10, 20, 30, 40])
    r, c = np.full(4, 0.25), np.array([0.1, 0.2, 0.3, 0.4])
    expected = float(np.sum((c - r) * np.log(c / r)))
    assert psi(ref, cur, bins=10) == pytest.approx(expected, rel=1e-9)


def test_psi_counts_values_the_reference_never_took() -> None:
    ref = np.repeat([0.0, 1.0], 50)
    assert psi(ref, np.repeat([0.0, 1.0], 50)) == pytest.approx(0.0)
    assert psi(ref, np.repeat([0.0, 1.0, 2.0], [40, 40, 20])) > 0.25


def test_psi_ignores_missing_values_and_is_nan_when_a_window_is_empty(rng) -> None:
    a = rng.normal(size=1000)
    with_nan = np.concatenate([a, [np.nan, np.inf]])
    assert psi(with_nan, a) == pytest.approx(0.0)
    assert np.isnan(psi(a, np.array([np.nan])))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300),
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300),
    st.integers(2, 20),
)
def test_psi_is_non_negative_and_zero_against_itself(
    a: list[float], b: list[float], bins: int
) -> None:
    x, y = np.array(a), np.array(b)
    assert psi(x, y, bins) >= 0.0
    assert psi(x, x, bins) == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- column severities


def test_column_drift_severities(rng) -> None:
    ref = rng.normal(size=5000)
    same = column_drift(ref, rng.normal(size=5000))
    assert same["severity"] == "ok" and same["wasserstein"] < 0.05
    moved = column_drift(ref, rng.normal(loc=0.3, size=5000))  # PSI ~0.09, W ~0.3
    assert moved["severity"] == "warn"
    far = column_drift(ref, rng.normal(loc=1.5, size=5000))
    assert far["severity"] == "alert" and far["psi"] > 0.25 and far["ks_pvalue"] < 1e-10
    assert far["wasserstein"] == pytest.approx(1.5, abs=0.1)  # in reference std


def test_ks_pvalue_decides_only_on_small_windows(rng) -> None:
    ref, cur = rng.normal(size=800), rng.normal(loc=0.2, size=800)
    loose = Thresholds(wasserstein=10.0, psi_warn=5.0, psi_alert=5.0)
    small = column_drift(ref, cur, loose)
    assert small["ks_pvalue"] < 0.05 and small["severity"] == "warn"
    large = column_drift(
        ref, cur, Thresholds(wasserstein=10.0, psi_warn=5.0, psi_alert=5.0, ks_max_rows=500)
    )
    assert large["severity"] == "ok"


def test_a_constant_column_that_moves_is_an_alert() -> None:
    out = column_drift(np.zeros(500), np.ones(500))
    assert out["wasserstein"] == np.inf and out["severity"] == "alert"


def test_drift_table_and_dataset_share(rng) -> None:
    ref = {f"x{i}": rng.normal(size=3000) for i in range(4)}
    cur = {name: values + (2.0 if name in ("x0", "x1") else 0.0) for name, values in ref.items()}
    cur = {name: values + rng.normal(scale=0.01, size=3000) for name, values in cur.items()}
    ref["reward"], cur["reward"] = rng.normal(size=3000), rng.normal(size=3000)
    table = drift_table(ref, cur, {"reward": "reward"})
    # Each row also carries the limits it was judged by (the sample-size drift rule).
    assert table.columns == [
        "kind", "name", "psi", "ks", "ks_pvalue", "wasserstein", "severity",
        *LIMIT_COLUMNS, "psi_expected",
    ]  # fmt: skip
    severity = dict(zip(table["name"], table["severity"], strict=True))
    assert severity == {"x0": "alert", "x1": "alert", "x2": "ok", "x3": "ok", "reward": "ok"}
    overall = dataset_drift(table)
    assert overall == {"features": 4, "drifted": 2, "share": 0.5, "alert": True}
    assert not dataset_drift(table, Thresholds(drift_share=0.75))["alert"]


def test_drift_table_skips_columns_missing_from_a_window(rng) -> None:
    table = drift_table(
        {"a": rng.normal(size=10), "b": rng.normal(size=10)}, {"a": rng.normal(size=10)}
    )
    assert table["name"].to_list() == ["a"]
    assert drift_table({}, {}).height == 0


# -------------------------------------------------------------------- thresholds


def test_thresholds_reject_bad_values_by_name() -> None:
    with pytest.raises(ParameterError, match=r"'psi_warn': 0.5.*psi_warn <= psi_alert"):
        Thresholds(psi_warn=0.5, psi_alert=0.25)
    with pytest.raises(ParameterError, match=r"'overfit_band': \(2.0, 1.5\)"):
        Thresholds(overfit_band=(2.0, 1.5))
    with pytest.raises(ParameterError, match=r"unknown threshold\(s\) \['psi'\]"):
        Thresholds.from_dict({"psi": 0.3})
    t = Thresholds.from_dict({"psi_alert": 0.3, "overfit_band": [1.2, 2]})
    assert t.psi_alert == 0.3 and t.overfit_band == (1.2, 2.0)
    assert Thresholds.from_dict(t.to_dict()) == t


# ------------------------------------------------------------------- overfitting


def test_overfitting_without_curves_is_unknown() -> None:
    report = overfitting([{"train": [], "valid": [], "holdout": []}])
    assert report["status"] == "unknown" and not report["alarm"]


@pytest.mark.parametrize(
    ("train", "holdout", "gap", "status", "alarm"),
    [
        ([1.0, 0.5], [1.0, 0.52], 0.001, "below band", False),
        ([1.0, 0.5], [1.0, 0.6], 0.01, "in band", False),
        ([1.0, 0.1], [1.0, 0.3], 0.05, "overfit", True),  # ratio 3, big gap
        ([1.0, 1e-6], [1.0, 1e-4], 0.0001, "above band", False),  # tiny losses, falling
        ([1.0, 1e-6], [1.0, 1e-4, 2e-4], 0.0001, "overfit", True),  # hold-out loss doubled
    ],
)
def test_overfitting_band_and_alarm(
    train: list[float], holdout: list[float], gap: float, status: str, alarm: bool
) -> None:
    report = overfitting([{"train": train, "holdout": holdout}], train_r2=1.0, holdout_r2=1.0 - gap)
    assert report["status"] == status
    assert report["alarm"] is alarm
    assert report["ratio"] == pytest.approx(holdout[-1] / train[-1])
    assert ("overfitting:" in report["message"]) is alarm
    # The sentence a newcomer reads (rmlite quickstart): the verdict comes first.
    plain = explain_overfitting(report)
    assert plain.startswith("overfitting alarm" if alarm else "no overfitting"), plain
    assert f"{report['ratio']:.2g}x the training loss" in plain
    if status == "above band":
        assert "within 0.001 of the training R²" in plain and "still at its lowest" in plain


def test_overfitting_reads_the_holdout_before_the_validation_curve() -> None:
    curve = {"train": [1.0, 0.5], "valid": [1.0, 5.0], "holdout": [1.0, 0.6]}
    report = overfitting([curve])
    assert report["curve"] == "holdout" and report["ratio"] == pytest.approx(1.2)
    assert overfitting([{"train": [1.0, 0.5], "valid": [1.0, 5.0]}])["curve"] == "valid"


# ------------------------------------------------------------------- calibration


def test_calibration_curve_of_a_calibrated_model(rng) -> None:
    p = rng.uniform(size=50_000)
    y = rng.uniform(size=50_000) < p
    curve = calibration_curve(y, p)
    assert len(curve["predicted"]) == 10 and sum(curve["count"]) == 50_000
    assert np.allclose(curve["predicted"], curve["observed"], atol=0.02)
    assert expected_calibration_error(y.astype(int), p) < 0.02


def test_reference_sample_keeps_both_splits(rng) -> None:
    X = rng.normal(size=(300, 2)).astype(np.float32)
    in_train = np.arange(300) < 200
    sample = reference_sample(X, X[:, 0] * 2, X[:, 0], ["a", "b"], in_train, rows=50)
    counts = dict(sample.group_by(SPLIT_COLUMN).len().iter_rows())
    assert counts == {"train": 50, "holdout": 50}
    assert sample.columns == ["a", "b", TARGET_COLUMN, PREDICTION_COLUMN, SPLIT_COLUMN]
    train = sample.filter(pl.col(SPLIT_COLUMN) == "train")
    assert np.allclose(train[TARGET_COLUMN], 2 * train["a"])
