"""Loading any saved rmlite model: reads ``model.json`` and hands the folder to its class's loader."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from rmlite._typing import PathLike
from rmlite.estimators._folder import META_FILE, read_member_files, read_model_meta
from rmlite.estimators.preference import PreferenceRewardModel, load_preference_model
from rmlite.estimators.reward import RewardClassifier, RewardRegressor, load_reward_model
from rmlite.exceptions import ModelFileError


def _stamp(folder: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(folder / META_FILE)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def load_model(path: PathLike) -> RewardRegressor | RewardClassifier | PreferenceRewardModel:
    """Load a model saved with ``save``: native boosters, ``weights_only`` torch, JSON.

    Every member file is checked against the manifest in ``model.json`` (size, SHA-256,
    a plain name inside the folder) before an engine reads it. A damaged, tampered or
    malformed folder raises :class:`~rmlite.exceptions.ModelFileError` naming the file
    and what is wrong. Folders saved before the manifest existed (format 1) still load,
    with a warning to save them again.
    """
    folder = Path(path)
    for attempt in range(3):
        stamp = _stamp(folder)
        meta = read_model_meta(folder)
        try:
            blobs = read_member_files(folder, meta)
            break
        except ModelFileError:
            # A save may have replaced model.json (and deleted the members it named)
            # between the two reads: read the new one. Damage stays damage.
            if attempt == 2 or _stamp(folder) == stamp:
                raise
    if meta["format_version"] < 2:
        warnings.warn(
            f"{folder}: saved by an older rmlite, without a manifest of its files, so "
            f"damage to them cannot be detected. Load and save it again to add one: "
            f"rmlite.load_model(path).save(path).",
            UserWarning,
            stacklevel=2,
        )
    try:
        if meta["estimator"] == "PreferenceRewardModel":
            return load_preference_model(folder, meta, blobs)
        return load_reward_model(folder, meta, blobs)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        # What the field checks cannot see: parameters out of range, engine files that
        # parse badly, weights that do not fit the network. Nothing was used yet.
        raise ModelFileError(
            f"{folder / META_FILE}: cannot rebuild the model ({exc}). The folder is damaged "
            f"or was edited: save or train the model again."
        ) from exc
