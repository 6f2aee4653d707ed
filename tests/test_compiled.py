"""Compiled tree inference (rmlite.models.compiled): the same rewards as the boosters, cached.

Real Pendulum-v1 rollouts and small saved models; each model's trees compile once per
module (a second or two each with gcc).
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rmlite import FeatureSpec, LogStore, load_model
from rmlite.models import compiled
from rmlite.pipeline import train
from rmlite.pipeline.rewards import predict
from rmlite.rl import RewardFunction, relabel
from rmlite.testing import rollout

PARAMS = {
    "lightgbm": {"backend_params": {"num_leaves": 7}},
    "xgboost": {"backend_params": {"max_depth": 3}},
}


@pytest.fixture(autouse=True)
def compiled_on(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Compiled trees on (conftest switches them off for the rest of the suite)."""
    monkeypatch.setenv("RMLITE_COMPILED", "1")
    monkeypatch.setenv("RMLITE_CACHE", str(tmp_path_factory.getbasetemp() / "user-cache"))
    monkeypatch.setattr(compiled, "_warned", False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[LogStore, Path, pl.DataFrame]:
    """A store with 6 Pendulum episodes, and 2-member ensembles of both tree engines."""
    root = tmp_path_factory.mktemp("compiled")
    store = LogStore(root / "store.duckdb")
    store.ingest(rollout("Pendulum-v1", episodes=6, seed=0, max_steps=60), dataset="pend")
    spec = FeatureSpec(next_obs=True, delta=True, scaling="standard")
    for backend, extra in PARAMS.items():
        params = {"backend": backend, "n_estimators": 25, "n_members": 2, **extra}
        train(store, "pend", spec, params, out=root / backend, seed=0)
    fresh = rollout("Pendulum-v1", episodes=2, seed=7, max_steps=60)  # not trained on
    return store, root, fresh


def _arrays(log: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    obs = np.stack(log["obs"].to_numpy()).astype(np.float32)
    action = np.stack(log["action"].to_numpy()).astype(np.float32)
    next_obs = np.stack(log["next_obs"].to_numpy()).astype(np.float32)
    obs[3, 1] = np.nan  # a missing value: the compiled trees must route it as the booster does
    next_obs[5, 0] = np.inf
    return obs, action, next_obs


@pytest.mark.parametrize("backend", ["lightgbm", "xgboost"])
def test_compiled_rewards_match_the_booster(
    trained: tuple[LogStore, Path, pl.DataFrame], backend: str
) -> None:
    _, root, fresh = trained
    folder = root / backend
    meta_before = (folder / "model.json").read_bytes()
    fast = RewardFunction(folder, pessimism=1.0)  # the ensemble's lower confidence bound
    plain = RewardFunction(folder, pessimism=1.0, compiled=False)
    assert fast.compiled and not plain.compiled
    obs, action, next_obs = _arrays(fresh)
    expected = plain(obs, action, next_obs)
    scale = float(np.std(expected))
    assert np.abs(fast(obs, action, next_obs) - expected).max() <= 1e-5 * scale
    # One transition at a time, as a single-env wrapper asks.
    for i in (0, 3, 5, 60):
        one = fast(obs[i : i + 1], action[i : i + 1], next_obs[i : i + 1])
        assert abs(one[0] - expected[i]) <= 1e-5 * scale
    # The libraries sit in <model>/.compiled (one per member); the model's files are untouched.
    libraries = sorted((folder / ".compiled").glob(f"{backend}-*.so"))
    assert len(libraries) == 2
    assert (folder / "model.json").read_bytes() == meta_before


def test_the_cache_is_reused_and_keyed_by_the_trees(
    trained: tuple[LogStore, Path, pl.DataFrame],
) -> None:
    _, root, _ = trained
    folder = root / "lightgbm"
    RewardFunction(folder)  # compiled now or by the test above
    libraries = {p: p.stat().st_mtime_ns for p in (folder / ".compiled").glob("*.so")}
    again = RewardFunction(folder)
    assert again.compiled
    assert {p: p.stat().st_mtime_ns for p in (folder / ".compiled").glob("*.so")} == libraries
    model = load_model(folder)
    keys = {compiled.compile_key("lightgbm", compiled.booster_trees("lightgbm", m)[0])
            for m in model.members_}  # fmt: skip
    assert {p.name for p in libraries} == {f"lightgbm-{k}.so" for k in keys}
    # Fewer trees (early stopping's best iteration) are other trees: another key.
    member = model.members_[0]
    member.best_iteration = 10
    assert compiled.booster_trees("lightgbm", member)[0].count(b"Tree=") == 10
    assert (
        compiled.compile_key("lightgbm", compiled.booster_trees("lightgbm", member)[0]) not in keys
    )


def test_only_cached_never_compiles(
    trained: tuple[LogStore, Path, pl.DataFrame], tmp_path: Path
) -> None:
    _, root, _ = trained
    model = load_model(root / "xgboost")
    assert not model.use_compiled(tmp_path / "empty", only_cached=True)
    assert not (tmp_path / "empty").exists() or not any((tmp_path / "empty").iterdir())


def test_a_compiled_model_pickles(trained: tuple[LogStore, Path, pl.DataFrame]) -> None:
    _, root, _ = trained
    model = load_model(root / "xgboost")
    assert model.use_compiled(root / "xgboost" / ".compiled")
    X = np.random.default_rng(0).normal(size=(50, model.n_features_in_)).astype(np.float32)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


def test_without_a_compiler_the_booster_predicts_after_one_warning(
    trained: tuple[LogStore, Path, pl.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    _, root, fresh = trained
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("RMLITE_CACHE", str(tmp_path / "cache"))
    model = load_model(root / "lightgbm")
    with caplog.at_level(logging.WARNING, logger="rmlite"):
        first = RewardFunction(model)
        second = RewardFunction(model)
    assert not first.compiled and not second.compiled
    warnings = [r.getMessage() for r in caplog.records if "compiled tree" in r.getMessage()]
    assert len(warnings) == 1 and "no C compiler" in warnings[0]
    obs, action, next_obs = _arrays(fresh)
    np.testing.assert_array_equal(
        first(obs, action, next_obs), RewardFunction(model, compiled=False)(obs, action, next_obs)
    )
    assert not (tmp_path / "cache").exists()


def test_relabel_and_predict_use_the_cached_library(
    trained: tuple[LogStore, Path, pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, root, _ = trained
    folder = root / "lightgbm"
    RewardFunction(folder)  # makes sure the library is cached
    said: list[str] = []
    report = relabel(store, folder, "pend", "pend-compiled", progress=said.append)
    assert any("compiled trees" in m for m in said)
    fast = predict(store, folder, "pend")
    monkeypatch.setenv("RMLITE_COMPILED", "0")
    plain = predict(store, folder, "pend")
    scale = float(plain["prediction"].std())
    assert (fast["prediction"] - plain["prediction"]).abs().max() <= 1e-5 * scale
    relabeled = store.read("pend-compiled").sort("episode_id", "step")["reward"]
    assert (relabeled - plain.sort("episode_id", "step")["prediction"]).abs().max() <= 1e-5 * scale
    assert report.rows_predicted == len(plain)


@pytest.mark.slow
def test_event_probabilities_match_the_booster(
    trained: tuple[LogStore, Path, pl.DataFrame],
) -> None:
    store, root, fresh = trained
    spec = FeatureSpec(next_obs=True, target="event", event_threshold=-2.0)
    folder = root / "event"
    train(store, "pend", spec, {"n_estimators": 25, "class_weight": "balanced"}, out=folder)
    fast, plain = RewardFunction(folder), RewardFunction(folder, compiled=False)
    assert fast.compiled
    obs, action, next_obs = _arrays(fresh)
    p_fast, p_plain = fast(obs, action, next_obs), plain(obs, action, next_obs)
    assert 0.0 < p_plain.min() < p_plain.max() < 1.0
    assert np.abs(p_fast - p_plain).max() <= 1e-6


@pytest.mark.slow
def test_a_model_without_a_folder_compiles_into_the_user_cache(
    trained: tuple[LogStore, Path, pl.DataFrame], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, root, _ = trained
    monkeypatch.setenv("RMLITE_CACHE", str(tmp_path / "cache"))
    fn = RewardFunction(load_model(root / "lightgbm"))  # an object: no model folder to use
    assert fn.compiled
    assert compiled.user_cache_dir() == tmp_path / "cache" / "compiled"
    assert len(list(compiled.user_cache_dir().glob("lightgbm-*.so"))) == 2


def test_batch_jobs_compile_only_where_compiled_trees_win() -> None:
    assert compiled.batch_plan("lightgbm", 16) == "cached"
    assert compiled.batch_plan("lightgbm", compiled.COMPILE_MIN_ROWS) == "compile"
    # XGBoost's own predictor wins on big batches: those stay on the booster.
    assert compiled.batch_plan("xgboost", 16) == "cached"
    assert compiled.batch_plan("xgboost", 4096) == "no"
    assert compiled.batch_plan("mlp", 16) == "no"
