"""The reference window saved beside a model: the training sample that drift is measured against."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from rmlite._typing import PathLike
from rmlite.exceptions import ModelFileError, RmliteError

if TYPE_CHECKING:
    from rmlite.data.features import FeatureFrame


REFERENCE_FILE = "reference.parquet"
"""The reference window saved in a model folder (written by ``rmlite train``)."""

TARGET_COLUMN, PREDICTION_COLUMN, SPLIT_COLUMN = "__target", "__prediction", "__split"
EPISODE_COLUMN = "__episode"
"""The episode of each reference row: the sample-size drift rule resamples whole episodes.
Reference windows saved before it existed lack it (monitoring then uses the fixed rule)."""


def reference_sample(
    X: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    feature_names: Sequence[str],
    in_train: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    rows: int = 5000,
    seed: int = 0,
) -> pl.DataFrame:
    """A sample of the training window for later drift tests, as one small table.

    Up to ``rows`` training rows (features as the model sees them, the target and the
    prediction, both in reward units) with ``__split = "train"``, and up to ``rows``
    hold-out rows with ``__split = "holdout"``: residuals are compared with the hold-out's,
    since training residuals are optimistic. ``groups`` (each row's episode) is kept as
    ``__episode`` so that drift thresholds can resample whole episodes.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for split, mask in (("train", in_train), ("holdout", ~in_train)):
        index = np.flatnonzero(mask)
        if len(index) > rows:
            index = np.sort(rng.choice(index, size=rows, replace=False))
        part = pl.from_numpy(np.ascontiguousarray(X[index]), schema=list(feature_names))
        parts.append(
            part.with_columns(
                pl.Series(TARGET_COLUMN, np.asarray(y_true, dtype=np.float64)[index]),
                pl.Series(PREDICTION_COLUMN, np.asarray(y_pred, dtype=np.float64)[index]),
                pl.lit(split).alias(SPLIT_COLUMN),
                *(
                    [pl.Series(EPISODE_COLUMN, np.asarray(groups, dtype=np.int64)[index])]
                    if groups is not None
                    else []
                ),
            )
        )
    return pl.concat(parts)


def target_predictions(model: Any, frame: FeatureFrame) -> tuple[np.ndarray, np.ndarray]:
    """(logged target, prediction) per row of ``frame``, both in the target's own units.

    Rewards and returns come back unscaled (the scaling was training preprocessing); event
    models give the event probability. Missing targets stay NaN.
    """
    if frame.spec.target == "event":
        return frame.y.astype(np.float64), model.predict_proba(frame.X)[:, 1]
    inverse = frame.stats.inverse_transform_target
    return inverse(frame.y), inverse(model.predict(frame.X))


def save_reference(
    model: Any, frame: FeatureFrame, in_train: np.ndarray, folder: PathLike, seed: int = 0
) -> Path:
    """Save the training window's sample beside a model: what ``rmlite monitor`` compares
    new episodes with (:func:`reference_sample` of ``frame``, ``in_train`` its training rows)."""
    y_true, y_pred = target_predictions(model, frame)
    path = Path(folder) / REFERENCE_FILE
    reference_sample(
        frame.X, y_true, y_pred, frame.feature_names, in_train, groups=frame.groups, seed=seed
    ).write_parquet(path)
    return path


def load_reference(model_dir: PathLike) -> pl.DataFrame:
    """The reference window saved beside a model by ``rmlite train``."""
    path = Path(model_dir) / REFERENCE_FILE
    if not path.is_file():
        raise RmliteError(
            f"{model_dir}: no {REFERENCE_FILE} (the training window that drift is measured "
            f"against). Models trained with `rmlite train` (or rmlite.pipeline.train with "
            f"out=...) save one; retrain this model that way to monitor it."
        )
    try:
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ModelFileError(
            f"{path}: unreadable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}). "
            f"The file is damaged: train the model again with `rmlite train --out` to rewrite it."
        ) from exc
