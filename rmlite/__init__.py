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
    "LogStore": "rmlite.store",
    "IngestReport": "rmlite.store",
    "CheckReport": "rmlite.store",
    "FeatureSpec": "rmlite.features",
    "FeatureFrame": "rmlite.features",
    "FittedStats": "rmlite.features",
    "build_features": "rmlite.features",
    "return_to_go": "rmlite.features",
    "ColumnMapping": "rmlite.schema",
    "RmliteError": "rmlite.exceptions",
    "SchemaError": "rmlite.exceptions",
    "IngestError": "rmlite.exceptions",
    "ConflictError": "rmlite.exceptions",
    "DatasetNotFoundError": "rmlite.exceptions",
    "NotFittedError": "rmlite.exceptions",
    "ParameterError": "rmlite.exceptions",
    "RewardRegressor": "rmlite.estimator",
    "RewardClassifier": "rmlite.estimator",
    "load_model": "rmlite.estimator",
    "tune": "rmlite.tuning",
    "DaskRewardRegressor": "rmlite.distributed",
    "PreferenceRewardModel": "rmlite.preferences",
    "PreferencePairs": "rmlite.preferences",
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
    from rmlite.distributed import DaskRewardRegressor
    from rmlite.estimator import RewardClassifier, RewardRegressor, load_model
    from rmlite.exceptions import (
        ConflictError,
        DatasetNotFoundError,
        IngestError,
        NotFittedError,
        ParameterError,
        RmliteError,
        SchemaError,
    )
    from rmlite.features import FeatureFrame, FeatureSpec, FittedStats, build_features, return_to_go
    from rmlite.preferences import PreferencePairs, PreferenceRewardModel
    from rmlite.schema import ColumnMapping
    from rmlite.store import CheckReport, IngestReport, LogStore
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
