"""rmlite: reward models from RL logs.

Logs go into a DuckDB store (:class:`LogStore`), become a float32 feature matrix
(:class:`FeatureSpec`, :class:`FeatureFrame`), and train reward models.

Imports are lazy so that ``import rmlite`` and ``rmlite --help`` stay instant: the heavy
libraries load only when the names that need them are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "LogStore": "rmlite.data.store",
    "IngestReport": "rmlite.data.store",
    "CheckReport": "rmlite.data.store",
    "FeatureSpec": "rmlite.data.feature_spec",
    "FeatureFrame": "rmlite.data.feature_spec",
    "FittedStats": "rmlite.data.feature_spec",
    "build_features": "rmlite.data.features",
    "return_to_go": "rmlite.data.features",
    "ColumnMapping": "rmlite.data.schema",
    "RmliteError": "rmlite.exceptions",
    "SchemaError": "rmlite.exceptions",
    "IngestError": "rmlite.exceptions",
    "ConflictError": "rmlite.exceptions",
    "DatasetNotFoundError": "rmlite.exceptions",
    "NotFittedError": "rmlite.exceptions",
    "ParameterError": "rmlite.exceptions",
    "RewardRegressor": "rmlite.estimators.reward",
    "RewardClassifier": "rmlite.estimators.reward",
    "load_model": "rmlite.estimators.loading",
    "tune": "rmlite.tuning",
    "DaskRewardRegressor": "rmlite.distributed",
    "PreferenceRewardModel": "rmlite.estimators.preference",
    "PreferencePairs": "rmlite.estimators.preference",
}

__all__ = [
    "CheckReport",
    "ColumnMapping",
    "ConflictError",
    "DaskRewardRegressor",
    "DatasetNotFoundError",
    "FeatureFrame",
    "FeatureSpec",
    "FittedStats",
    "IngestError",
    "IngestReport",
    "LogStore",
    "NotFittedError",
    "ParameterError",
    "PreferencePairs",
    "PreferenceRewardModel",
    "RewardClassifier",
    "RewardRegressor",
    "RmliteError",
    "SchemaError",
    "build_features",
    "load_model",
    "return_to_go",
    "tune",
]

if TYPE_CHECKING:
    from rmlite.data.feature_spec import FeatureFrame, FeatureSpec, FittedStats
    from rmlite.data.features import build_features, return_to_go
    from rmlite.data.schema import ColumnMapping
    from rmlite.data.store import CheckReport, IngestReport, LogStore
    from rmlite.distributed import DaskRewardRegressor
    from rmlite.estimators.loading import load_model
    from rmlite.estimators.preference import PreferencePairs, PreferenceRewardModel
    from rmlite.estimators.reward import RewardClassifier, RewardRegressor
    from rmlite.exceptions import (
        ConflictError,
        DatasetNotFoundError,
        IngestError,
        NotFittedError,
        ParameterError,
        RmliteError,
        SchemaError,
    )
    from rmlite.tuning import tune


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rmlite' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
