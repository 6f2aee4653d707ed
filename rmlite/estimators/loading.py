"""Loading any saved rmlite model: reads ``model.json`` and hands the folder to its class's loader."""

from __future__ import annotations

from pathlib import Path

from rmlite._typing import PathLike
from rmlite.estimators._folder import read_model_meta
from rmlite.estimators.preference import PreferenceRewardModel, load_preference_model
from rmlite.estimators.reward import RewardClassifier, RewardRegressor, load_reward_model


def load_model(path: PathLike) -> RewardRegressor | RewardClassifier | PreferenceRewardModel:
    """Load a model saved with ``save``: native boosters, ``weights_only`` torch, JSON.

    Errors name the folder and what is missing or unexpected.
    """
    folder = Path(path)
    meta = read_model_meta(folder)
    if meta.get("estimator") == "PreferenceRewardModel":
        return load_preference_model(folder, meta)
    return load_reward_model(folder, meta)
