"""Hyperparameter tuning with Optuna: search spaces, the cross-validated objective, studies."""

from __future__ import annotations

from rmlite.tuning.spaces import (
    DEFAULT_SPACES,
    SPEC_SPACE,
    Choice,
    Float,
    Int,
    parse_dimension,
    search_space,
    split_params,
)
from rmlite.tuning.storage import (
    open_storage,
    recover_dead_trials,
    resolve_storage,
    study_files,
    trial_history,
)
from rmlite.tuning.study import TuneProgress, TuneResult, run_study, tune, tune_dataset

__all__ = [
    "DEFAULT_SPACES",
    "SPEC_SPACE",
    "Choice",
    "Float",
    "Int",
    "TuneProgress",
    "TuneResult",
    "open_storage",
    "parse_dimension",
    "recover_dead_trials",
    "resolve_storage",
    "run_study",
    "search_space",
    "split_params",
    "study_files",
    "trial_history",
    "tune",
    "tune_dataset",
]
