"""Judging reward models: metrics against ground truth, drift, overfitting, monitor passes.

- :mod:`~rmlite.evaluation.metrics` scores predictions against ground truth (regression
  errors, per-episode returns, event probabilities, calibration);
- :mod:`~rmlite.evaluation.drift` measures drift between two windows, column by column,
  and holds the :class:`Thresholds` that turn numbers into warnings and alerts;
- :mod:`~rmlite.evaluation.overfit` reads the overfitting verdict off learning curves;
- :mod:`~rmlite.evaluation.reference` saves and loads the reference window beside a model;
- :mod:`~rmlite.evaluation.frame` rebuilds a saved model's features from the store;
- :mod:`~rmlite.evaluation.explain` ranks a tree model's features by mean |SHAP| on its
  held-out episodes (``rmlite explain``);
- :mod:`~rmlite.evaluation.epic` compares reward functions up to shaping (EPIC);
- :mod:`~rmlite.evaluation.preference_metrics` judges preference-learned rewards against
  held-out pairs and the true rewards;
- :mod:`~rmlite.evaluation.teacher` labels segment pairs with a simulated teacher (B-Pref);
- :mod:`~rmlite.evaluation.monitor` scores windows of new episodes and records monitor
  passes in the store (its ``monitor`` function is not re-exported here, so that
  ``rmlite.evaluation.monitor`` stays the module).
"""

from __future__ import annotations

from rmlite.evaluation.drift import Thresholds, column_drift, dataset_drift, drift_table, psi
from rmlite.evaluation.frame import model_frame
from rmlite.evaluation.metrics import (
    calibration_curve,
    episode_sums,
    event_metrics,
    expected_calibration_error,
    regression_metrics,
)
from rmlite.evaluation.monitor import MonitorPass, WindowResult, evaluate_window, monitor_pass
from rmlite.evaluation.overfit import explain_overfitting, overfitting
from rmlite.evaluation.reference import (
    PREDICTION_COLUMN,
    REFERENCE_FILE,
    SPLIT_COLUMN,
    TARGET_COLUMN,
    load_reference,
    reference_sample,
    save_reference,
    target_predictions,
)

__all__ = [
    "PREDICTION_COLUMN",
    "REFERENCE_FILE",
    "SPLIT_COLUMN",
    "TARGET_COLUMN",
    "MonitorPass",
    "Thresholds",
    "WindowResult",
    "calibration_curve",
    "column_drift",
    "dataset_drift",
    "drift_table",
    "episode_sums",
    "evaluate_window",
    "event_metrics",
    "expected_calibration_error",
    "explain_overfitting",
    "load_reference",
    "model_frame",
    "monitor_pass",
    "overfitting",
    "psi",
    "reference_sample",
    "regression_metrics",
    "save_reference",
    "target_predictions",
]
