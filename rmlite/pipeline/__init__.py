"""The jobs, top-down: ingest, features, fit, validate, save (and the quickstart); the same for preference pairs."""

from __future__ import annotations

from rmlite.evaluation.frame import model_frame
from rmlite.pipeline.preferences import (
    PreferenceTrainResult,
    evaluate_preferences,
    preference_data,
    train_preferences,
)
from rmlite.pipeline.rewards import (
    QUICKSTART_DATASET,
    QUICKSTART_ENV,
    QUICKSTART_MODEL_DIR,
    QUICKSTART_PARAMS,
    QUICKSTART_SPEC,
    TrainResult,
    evaluate,
    make_estimator,
    predict,
    predict_chunks,
    predict_to_file,
    quality_warnings,
    quickstart,
    score,
    split_episodes,
    train,
)

__all__ = [
    "QUICKSTART_DATASET",
    "QUICKSTART_ENV",
    "QUICKSTART_MODEL_DIR",
    "QUICKSTART_PARAMS",
    "QUICKSTART_SPEC",
    "PreferenceTrainResult",
    "TrainResult",
    "evaluate",
    "evaluate_preferences",
    "make_estimator",
    "model_frame",
    "predict",
    "predict_chunks",
    "predict_to_file",
    "preference_data",
    "quality_warnings",
    "quickstart",
    "score",
    "split_episodes",
    "train",
    "train_preferences",
]
