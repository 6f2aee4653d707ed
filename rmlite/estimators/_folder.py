"""The rmlite model folder: ``model.json`` plus one native file per ensemble member, written and checked here."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from rmlite._typing import PathLike
from rmlite.exceptions import RmliteError

MODEL_FORMAT = "rmlite-model"
MODEL_FORMAT_VERSION = 1


def write_model_folder(model: Any, path: PathLike, extra: dict[str, Any]) -> Path:
    """Write any fitted rmlite model: one native file per ensemble member, plus model.json.

    ``model`` has ``backend``, ``members_``, ``device_``, ``curves_``, ``fit_seconds_``,
    ``n_features_in_`` and scikit-learn's ``get_params``; ``extra`` adds the keys of its
    own class. Every model class saves through here, so :func:`rmlite.load_model` reads them all.
    """
    check_is_fitted(model, "members_")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    members: list[dict[str, Any]] = []
    for i, member in enumerate(model.members_):
        name = f"member_{i}"
        if model.backend == "mlp":
            from rmlite.models.mlp import mlp_to_files

            members.append({"name": name, "mlp": mlp_to_files(member, folder, name)})
        else:
            from rmlite.models.gbm import best_iteration, save_booster

            members.append(
                {
                    "name": name,
                    "file": save_booster(model.backend, member, folder, name),
                    "best_iteration": best_iteration(model.backend, member),
                }
            )
    meta: dict[str, Any] = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "estimator": type(model).__name__,
        "params": _jsonable(model.get_params()),
        "n_features_in": int(model.n_features_in_),
        "feature_names": [str(c) for c in getattr(model, "feature_names_in_", [])] or None,
        "device_used": model.device_,
        "members": members,
        "curves": model.curves_,
        "fit_seconds": model.fit_seconds_,
        "feature_spec": getattr(model, "feature_spec_", None),
        "feature_stats": getattr(model, "feature_stats_", None),
        "data_fingerprint": getattr(model, "data_fingerprint_", None),
        "metrics": getattr(model, "metrics_", None),
        "dataset": getattr(model, "dataset_", None),
        "train_episodes": getattr(model, "train_episodes_", None),
        **extra,
        "versions": _versions(model.backend),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (folder / "model.json").write_text(json.dumps(meta, indent=2, default=_json_default))
    return folder


def read_model_meta(folder: Path) -> dict[str, Any]:
    """The checked ``model.json`` of a model folder; errors name the folder and what is wrong."""
    meta_path = folder / "model.json"
    if not meta_path.is_file():
        raise RmliteError(f"{folder}: not an rmlite model folder (no model.json).")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise RmliteError(f"{meta_path}: unreadable model metadata ({exc}).") from exc
    if meta.get("format") != MODEL_FORMAT or meta.get("format_version") != MODEL_FORMAT_VERSION:
        raise RmliteError(
            f"{meta_path}: format {meta.get('format')!r} version {meta.get('format_version')!r}; "
            f"this rmlite reads {MODEL_FORMAT!r} version {MODEL_FORMAT_VERSION}."
        )
    return meta


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return _jsonable(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot save {type(value).__name__} in model.json")


def _versions(backend: str) -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for package in (
        "rmlite",
        "numpy",
        "scikit-learn",
        "polars",
        "duckdb",
        backend if backend != "mlp" else "torch",
    ):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            continue
    return out
