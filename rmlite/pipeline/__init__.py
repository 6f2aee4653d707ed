"""The main job, top-down: ingest, features, fit, validate, save (and the quickstart)."""

from __future__ import annotations

from rmlite.evaluation.frame import model_frame
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
    "TrainResult",
    "evaluate",
    "make_estimator",
    "model_frame",
    "predict",
    "quickstart",
    "score",
    "split_episodes",
    "train",
]
