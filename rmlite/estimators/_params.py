"""Backends and parameter limits that every rmlite estimator shares."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

from sklearn.utils._param_validation import Interval, Options, StrOptions

BACKENDS = ("lightgbm", "xgboost", "mlp")


PARAMETER_CONSTRAINTS: dict[str, list[Any]] = {
    "backend": [StrOptions(set(BACKENDS))],
    "device": [StrOptions({"cpu", "cuda", "auto"})],
    "n_estimators": [Interval(Integral, 1, None, closed="left")],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "learning_rate": [Interval(Real, 0.0, None, closed="neither"), None],
    "early_stopping_rounds": [Interval(Integral, 1, None, closed="left"), None],
    "validation_fraction": [Interval(Real, 0.0, 1.0, closed="neither")],
    "n_members": [Interval(Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
    "n_jobs": [Interval(Integral, 1, None, closed="left"), Options(Integral, {-1}), None],
    "hidden_sizes": [tuple, list],
    "activation": [StrOptions({"relu", "gelu", "tanh", "silu", "elu"})],
    "dropout": [Interval(Real, 0.0, 1.0, closed="left")],
    "weight_decay": [Interval(Real, 0.0, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "backend_params": [dict, None],
}
"""Limits of the estimator parameters every rmlite model shares (scikit-learn's
``_parameter_constraints``); model classes add their own."""
