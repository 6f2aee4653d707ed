"""A saved reward model as one ONNX file that any runtime can call per step.

:func:`export_onnx` writes a graph from the raw ``obs``, ``action`` and ``next_obs``
vectors (float32, any batch size; ``step`` as well when the features read it) to the
``reward`` in the logged scale, with the model's whole feature recipe (concatenation,
next_obs, delta, imputation, indicators), every ensemble member (their mean) and the
inverse target scaling inside. The graph is built in :mod:`rmlite.models.onnx_export`.

Examples
--------
>>> import numpy as np, onnxruntime as ort, tempfile
>>> from rmlite import FeatureSpec, LogStore
>>> from rmlite.pipeline import train
>>> from rmlite.testing import rollout
>>> store = LogStore(":memory:")
>>> _ = store.ingest(rollout("Pendulum-v1", episodes=4, max_steps=50), dataset="pend")
>>> model = train(store, "pend", FeatureSpec(next_obs=True), {"n_estimators": 20}).model
>>> path = export_onnx(model, tempfile.mkdtemp() + "/reward.onnx")
>>> session = ort.InferenceSession(str(path))
>>> obs = np.zeros((2, 3), np.float32)
>>> session.run(None, {"obs": obs, "action": np.zeros((2, 1), np.float32),
...                    "next_obs": obs})[0].shape
(2,)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmlite._typing import PathLike
from rmlite.data.feature_spec import FeatureSpec, FittedStats
from rmlite.exceptions import SchemaError

if TYPE_CHECKING:
    from rmlite.estimators.reward import RewardClassifier, RewardRegressor

FORMATS = ("onnx",)
"""Formats :func:`export_onnx` and ``rmlite export`` write."""


def export_onnx(
    model: RewardRegressor | RewardClassifier | PathLike,
    out: PathLike | None = None,
) -> Path:
    """Write a reward model as one ONNX graph; return the file written.

    Parameters
    ----------
    model
        A model trained by ``rmlite train`` (it carries its feature spec), or its folder.
    out
        The ``.onnx`` file; default: beside the model folder, ``<folder>.onnx`` (the
        folder itself keeps only what training wrote). Needed for a model object.

    The graph's inputs are ``obs`` (batch, obs_dim), ``action`` (batch, action_dim) and
    ``next_obs`` (batch, obs_dim), all float32 (``next_obs`` is read only if the features
    use it), plus ``step`` (batch,) float32 when the features use the step index; its
    output ``reward`` (batch,) is in the logged scale (the discounted return for a
    return-to-go model, the event probability for an event model). Refused with a clear
    error: models with lags (they need each episode's history), preference models (not
    exported yet), models fitted on a bare matrix (no feature spec).
    """
    from rmlite.estimators.loading import load_model
    from rmlite.estimators.reward import RewardClassifier, RewardRegressor
    from rmlite.models.onnx_export import reward_graph

    folder = None
    if isinstance(model, str | os.PathLike):
        folder = Path(model)
        model = load_model(folder)
    if out is None:
        if folder is None:
            raise SchemaError("export_onnx: pass out= (the .onnx file) when giving a model object.")
        out = folder.parent / f"{folder.resolve().name}.onnx"
    name = str(folder) if folder is not None else type(model).__name__
    if not isinstance(model, RewardRegressor | RewardClassifier):
        raise SchemaError(
            f"{name}: a {type(model).__name__} cannot be exported to ONNX yet; rmlite exports "
            f"RewardRegressor models (rmlite train)."
        )
    spec_dict = getattr(model, "feature_spec_", None)
    stats_dict = getattr(model, "feature_stats_", None)
    if spec_dict is None or stats_dict is None:
        raise SchemaError(
            f"{name}: the model carries no feature spec (it was fitted on a bare matrix), so "
            f"the graph cannot rebuild its features from obs/action/next_obs; train it with "
            f"rmlite train or rmlite.pipeline.train."
        )
    spec, stats = FeatureSpec.from_dict(spec_dict), FittedStats.from_dict(stats_dict)
    if spec.lags:
        raise SchemaError(
            f"{name}: the model reads FeatureSpec(lags={spec.lags}), which needs each "
            f"episode's history; an ONNX graph of single transitions cannot rebuild it. Train "
            f"with lags=0 to export."
        )
    graph = reward_graph(
        model.backend,
        list(model.members_),
        int(model.n_features_in_),
        spec,
        stats,
        metadata=_metadata(model, spec, stats),
        calibration=(
            [
                (float(a), float(b))
                for a, b in (model.calibration_ or [(1.0, 0.0)] * len(model.members_))
            ]
            if isinstance(model, RewardClassifier)
            else None
        ),
    )
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(graph.SerializeToString())
    os.replace(tmp, path)  # a reader never sees half a file
    return path


def _metadata(model: Any, spec: FeatureSpec, stats: FittedStats) -> dict[str, Any]:
    return {
        "rmlite.model_fingerprint": str(model.fingerprint),
        "rmlite.backend": model.backend,
        "rmlite.n_members": len(model.members_),
        "rmlite.target": spec.target,
        "rmlite.feature_spec": spec.to_dict(),
        "rmlite.obs_dim": stats.obs_dim,
        "rmlite.action_dim": stats.action_dim,
        "rmlite.feature_names": stats.feature_names,
    }


def check_onnx(
    model: RewardRegressor | RewardClassifier | PathLike,
    path: PathLike,
    obs: Any,
    action: Any,
    next_obs: Any | None = None,
    step: Any | None = None,
) -> dict[str, Any]:
    """Run an exported graph with onnxruntime and compare it with ``model.predict``.

    Returns the rows compared, the largest absolute difference, the reward scale (the
    standard deviation of the model's predictions, at least 1e-12) and their ratio
    (``relative_error``: rmlite's tests hold it under 1e-4). Rows whose features the
    model cannot score (NaN into an MLP) must be NaN in the graph too.
    """
    import numpy as np

    from rmlite.data.features import features_from_arrays
    from rmlite.estimators.loading import load_model

    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError(
            "checking an ONNX export needs onnxruntime: pip install 'rmlite[onnx]'."
        ) from exc
    est: Any = load_model(model) if isinstance(model, str | os.PathLike) else model
    spec = FeatureSpec.from_dict(est.feature_spec_)
    stats = FittedStats.from_dict(est.feature_stats_)
    obs = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
    action = np.asarray(action, dtype=np.float32).reshape(len(obs), -1)
    next_obs = obs if next_obs is None else np.asarray(next_obs, np.float32).reshape(obs.shape)
    steps = np.zeros(len(obs), np.float32) if step is None else np.asarray(step, np.float32)
    X = features_from_arrays(obs, action, next_obs, steps, spec, stats)
    ok = np.isfinite(X).all(axis=1) if est.backend == "mlp" else np.ones(len(X), bool)
    expected = np.full(len(X), np.nan)
    if ok.any() and hasattr(est, "predict_proba"):  # an event model: probabilities
        expected[ok] = est.predict_proba(np.ascontiguousarray(X[ok]))[:, 1]
    elif ok.any():
        raw = est.predict(np.ascontiguousarray(X[ok]))
        expected[ok] = stats.inverse_transform_target(raw)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    feeds = {"obs": obs, "action": action, "next_obs": next_obs}
    if "step" in names:
        feeds["step"] = steps
    got = session.run(["reward"], {k: v for k, v in feeds.items() if k in names})[0]
    both = ok & np.isfinite(got)
    error = float(np.abs(got[both] - expected[both]).max()) if both.any() else 0.0
    scale = max(float(np.std(expected[ok])) if ok.any() else 0.0, 1e-12)
    return {
        "rows": len(X),
        "rows_compared": int(both.sum()),
        "nan_rows_agree": bool(np.array_equal(np.isnan(got[~ok]), np.ones((~ok).sum(), bool))),
        "max_abs_error": error,
        "reward_scale": scale,
        "relative_error": error / scale,
    }
