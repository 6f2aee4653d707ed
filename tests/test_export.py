"""ONNX export (rmlite.rl.export, rmlite.models.onnx_export): one graph, checked with onnxruntime.

Every graph is run on a fresh Pendulum-v1 rollout (not trained on, with a missing and an
infinite value) and compared with the model's own rewards: at most 1e-4 of the reward
scale apart.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from rmlite import (
    FeatureSpec,
    FittedStats,
    LogStore,
    RewardRegressor,
    load_model,
)
from rmlite.data.features import features_from_arrays
from rmlite.exceptions import SchemaError
from rmlite.pipeline import train
from rmlite.rl import RewardFunction, export_onnx
from rmlite.testing import rollout

CASES = {
    # Imputation with indicator columns and standard scaling, an ensemble's mean.
    "lightgbm": (
        FeatureSpec(
            next_obs=True, delta=True, scaling="standard", missing="mean", missing_indicator=True
        ),
        {"n_estimators": 20, "n_members": 2, "backend_params": {"num_leaves": 7}},
    ),
    # The step index and progress as inputs, robust scaling.
    "xgboost": (
        FeatureSpec(next_obs=True, delta=True, step=True, time_limit=60, scaling="robust"),
        {"n_estimators": 20, "backend_params": {"max_depth": 3}},
    ),
    # Input and target standardization inside the member, GELU, min-max scaling outside.
    "mlp": (
        FeatureSpec(next_obs=True, scaling="minmax", missing="median"),
        {"max_epochs": 3, "hidden_sizes": (16, 16), "activation": "gelu", "n_members": 2},
    ),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    store = LogStore(tmp_path_factory.mktemp("export") / "store.duckdb")
    store.ingest(rollout("Pendulum-v1", episodes=6, seed=0, max_steps=60), dataset="pend")
    return store


@pytest.fixture(scope="module")
def fresh() -> dict[str, np.ndarray]:
    """A rollout the models never saw, with one missing and one infinite value."""
    log = rollout("Pendulum-v1", episodes=2, seed=11, max_steps=60)
    arrays = {
        "obs": np.stack(log["obs"].to_numpy()).astype(np.float32),
        "action": np.stack(log["action"].to_numpy()).astype(np.float32),
        "next_obs": np.stack(log["next_obs"].to_numpy()).astype(np.float32),
        "step": log["step"].to_numpy().astype(np.float32),
    }
    arrays["obs"][4, 2] = np.nan
    arrays["next_obs"][9, 1] = np.inf
    return arrays


def _run(path: Path, arrays: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(["reward"], {n: arrays[n] for n in names})[0]


@pytest.mark.parametrize("backend", list(CASES))
def test_the_graph_gives_the_models_rewards(
    store: LogStore, fresh: dict[str, np.ndarray], tmp_path: Path, backend: str
) -> None:
    spec, params = CASES[backend]
    train(store, "pend", spec, {"backend": backend, **params}, out=tmp_path / "m", seed=0)
    path = export_onnx(tmp_path / "m")
    assert path == tmp_path / "m.onnx"  # beside the folder, not in it

    model = onnx.load(str(path))
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    expected_inputs = {"obs", "action", "next_obs"} | ({"step"} if spec.step else set())
    assert set(inputs) == expected_inputs
    assert all(t.elem_type == onnx.TensorProto.FLOAT for t in inputs.values())
    assert inputs["obs"].shape.dim[0].dim_param == "batch"  # any batch size
    assert (
        json.loads({p.key: p.value for p in model.metadata_props}["rmlite.feature_spec"])
        == spec.to_dict()
    )

    got = _run(path, fresh)
    expected = RewardFunction(tmp_path / "m", compiled=False)(
        fresh["obs"], fresh["action"], fresh["next_obs"], fresh["step"]
    )
    assert got.shape == expected.shape == (120,)
    assert np.isfinite(got).all()
    assert np.abs(got - expected).max() <= 1e-4 * np.std(expected)
    # A batch of one row runs through the same graph.
    one = {k: v[:1] for k, v in fresh.items()}
    assert abs(_run(path, one)[0] - expected[0]) <= 1e-4 * np.std(expected)


def test_a_return_model_exports_in_the_return_scale(
    store: LogStore, fresh: dict[str, np.ndarray], tmp_path: Path
) -> None:
    spec = FeatureSpec(next_obs=True, target="return", gamma=0.9, scaling="standard")
    model = train(store, "pend", spec, {"n_estimators": 20}, seed=0).model
    path = export_onnx(model, tmp_path / "return.onnx")
    stats = FittedStats.from_dict(model.feature_stats_)
    X = features_from_arrays(
        fresh["obs"], fresh["action"], fresh["next_obs"], fresh["step"], spec, stats
    )
    expected = stats.inverse_transform_target(model.predict(X))
    assert stats.target_scale > 1.5  # returns of 0.9 discounting: far from the raw scale
    assert np.abs(_run(path, fresh) - expected).max() <= 1e-4 * np.std(expected)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["lightgbm", "mlp"])
def test_an_event_model_gives_calibrated_probabilities(
    store: LogStore, fresh: dict[str, np.ndarray], tmp_path: Path, backend: str
) -> None:
    spec = FeatureSpec(next_obs=True, target="event", event_threshold=-1.0, missing="mean")
    params = {"backend": backend, "n_estimators": 20, "max_epochs": 3, "n_members": 2,
              "hidden_sizes": (16,), "class_weight": "balanced"}  # fmt: skip
    model = train(store, "pend", spec, params, seed=0).model
    # rare events: each member's calibration map is not a no-op
    assert all(tuple(c) != (1.0, 0.0) for c in model.calibration_)
    got = _run(export_onnx(model, tmp_path / "event.onnx"), fresh)
    expected = RewardFunction(model, compiled=False)(
        fresh["obs"], fresh["action"], fresh["next_obs"]
    )
    assert 0.0 < expected.min() < expected.max() < 1.0
    ok = np.isfinite(expected)
    assert np.abs(got[ok] - expected[ok]).max() <= 1e-4


def test_what_cannot_be_exported_is_refused_by_name(tmp_path: Path) -> None:
    X = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    lagged = RewardRegressor(n_estimators=5).fit(X, X[:, 0])
    lagged.feature_spec_ = FeatureSpec(lags=1).to_dict()  # as rmlite train leaves it
    lagged.feature_stats_ = FittedStats(["obs_0", "obs_1", "obs_2", "act_0"], 3, 1).to_dict()
    lagged.save(tmp_path / "lag")
    with pytest.raises(SchemaError, match=r"lag.*lags=1.*Train\s+with lags=0"):
        export_onnx(tmp_path / "lag")
    bare = RewardRegressor(n_estimators=5).fit(np.zeros((20, 4), np.float32), np.arange(20.0))
    with pytest.raises(SchemaError, match="no feature spec"):
        export_onnx(bare, tmp_path / "bare.onnx")
    with pytest.raises(SchemaError, match="pass out="):
        export_onnx(lagged)
    assert not list(tmp_path.glob("*.onnx"))


@pytest.mark.slow
def test_cli_export_checks_the_graph_on_a_dataset(store: LogStore, tmp_path: Path) -> None:
    spec, params = CASES["lightgbm"]
    train(store, "pend", spec, {"backend": "lightgbm", **params}, out=tmp_path / "m", seed=0)
    out = tmp_path / "reward.onnx"
    run = subprocess.run(
        [sys.executable, "-m", "rmlite.cli", "export", "--db", store.path, "--model",
         str(tmp_path / "m"), "--out", str(out), "--check-dataset", "pend", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["out"] == str(out) and out.is_file()
    assert result["check"]["rows_compared"] == 360
    assert result["check"]["relative_error"] <= 1e-4
    assert load_model(tmp_path / "m").fingerprint in out.read_bytes().decode(errors="replace")
