"""Hyperparameter tuning with Optuna: search spaces, the cross-validated objective, studies."""

from __future__ import annotations

from rmlite.tuning.study import (
    DEFAULT_SPACES,
    SPEC_SPACE,
    Choice,
    Float,
    Int,
    TuneProgress,
    TuneResult,
    open_storage,
    parse_dimension,
    recover_dead_trials,
    resolve_storage,
    run_study,
    search_space,
    split_params,
    study_files,
    trial_history,
    tune,
    tune_dataset,
)

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
