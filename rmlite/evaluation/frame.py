"""A saved model's features, rebuilt from the store exactly as its training features were."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from rmlite.data.features import FeatureFrame, FeatureSpec, FittedStats
from rmlite.data.store import LogStore
from rmlite.exceptions import SchemaError


def model_frame(
    store: LogStore,
    model: Any,
    dataset: str,
    require_target: bool,
    episodes: Sequence[int] | None = None,
) -> FeatureFrame:
    """Features of a dataset (or of some of its episodes) built exactly as the model's
    training features were."""
    from rmlite.data.features import build_features

    spec, stats = model_features(model)
    table = store.read_arrow(dataset, spec.columns_needed(), episodes=episodes)
    try:
        frame = build_features(table, spec, stats=stats, require_target=require_target)
    except SchemaError as exc:
        raise SchemaError(f"{dataset}: {exc}") from exc
    _check_names(model, frame, dataset)
    return frame


def model_frame_chunks(
    store: LogStore,
    model: Any,
    dataset: str,
    require_target: bool,
    chunk_rows: int | None = None,
) -> Iterator[FeatureFrame]:
    """:func:`model_frame` a chunk of whole episodes at a time, for datasets of any size."""
    spec, stats = model_features(model)
    for frame in store.feature_chunks(
        dataset, spec, stats, require_target=require_target, chunk_rows=chunk_rows
    ):
        _check_names(model, frame, dataset)
        yield frame


def model_features(model: Any) -> tuple[FeatureSpec, FittedStats]:
    """The feature spec and fitted statistics a model was trained with."""
    spec_dict = getattr(model, "feature_spec_", None)
    stats_dict = getattr(model, "feature_stats_", None)
    if spec_dict is None or stats_dict is None:
        raise SchemaError(
            "this model carries no feature spec (it was fitted on a matrix, not by rmlite "
            "train); build the features yourself and call model.predict(X)."
        )
    return FeatureSpec.from_dict(spec_dict), FittedStats.from_dict(stats_dict)


def _check_names(model: Any, frame: FeatureFrame, dataset: str) -> None:
    stats = frame.stats
    names = list(getattr(model, "feature_names_in_", [])) or stats.feature_names
    if frame.feature_names != names:
        missing = [n for n in names if n not in frame.feature_names]
        extra = [n for n in frame.feature_names if n not in names]
        raise SchemaError(
            f"{dataset}: features do not match the model's: missing {missing[:5]}, "
            f"unexpected {extra[:5]}"
            + ("" if missing or extra else " (same names, another order)")
            + ". Is the dataset's obs/action size the one the model was trained on?"
        )
