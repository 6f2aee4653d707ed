"""The main job: train → validate on held-out episodes → save → evaluate / predict."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rmlite import FeatureSpec, LogStore
from rmlite.estimators.loading import load_model
from rmlite.estimators.reward import RewardClassifier
from rmlite.exceptions import ParameterError, SchemaError
from rmlite.pipeline import evaluate, predict, split_episodes, train
from rmlite.testing import rollout


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    store = LogStore(tmp_path_factory.mktemp("pipe") / "store.duckdb")
    store.ingest(rollout("Pendulum-v1", episodes=20, seed=0, max_steps=100), dataset="pend")
    store.ingest(rollout("Pendulum-v1", episodes=5, seed=7, max_steps=100), dataset="pend-new")
    return store


def test_split_episodes_is_disjoint_and_seeded() -> None:
    train_eps, hold = split_episodes(np.arange(10), 0.3, seed=1)
    assert len(hold) == 3 and not set(train_eps) & set(hold) and len(train_eps) + len(hold) == 10
    assert np.array_equal(split_episodes(np.arange(10), 0.3, seed=1)[1], hold)
    with pytest.raises(SchemaError, match="at least 2 episodes"):
        split_episodes(np.arange(1), 0.2, 0)
    with pytest.raises(SchemaError, match="'holdout' parameter"):
        split_episodes(np.arange(5), 1.5, 0)


def test_train_validates_on_holdout_saves_and_records(store: LogStore, tmp_path: Path) -> None:
    runs_before = store.runs().height
    result = train(store, "pend", FeatureSpec(), {"n_estimators": 300}, out=tmp_path / "m", seed=3)
    assert result.metrics["holdout"]["r2"] > 0.99
    assert not set(result.train_episodes) & set(result.holdout_episodes)
    runs = store.runs()
    assert runs.height == runs_before + 1
    row = runs.row(-1, named=True)
    assert (
        row["run_id"] == result.run_id and row["backend"] == "lightgbm" and row["kind"] == "train"
    )
    assert row["data_fingerprint"] == store.fingerprint("pend")
    assert '"holdout"' in row["metrics"] and row["model_path"] == str(tmp_path / "m")

    model = load_model(tmp_path / "m")
    assert model.feature_spec_ == FeatureSpec().to_dict()
    # Evaluate on new episodes, with exactly the training preprocessing.
    report = evaluate(store, tmp_path / "m", "pend-new")
    assert report["metrics"]["r2"] > 0.99 and report["same_data_as_training"] is False
    assert evaluate(store, tmp_path / "m", "pend")["same_data_as_training"] is True

    preds = predict(store, tmp_path / "m", "pend-new", return_std=True)
    truth = store.read("pend-new", ["reward"])
    joined = preds.join(truth, on=["episode_id", "step"])
    assert joined.height == truth.height == 500
    assert np.corrcoef(joined["prediction"], joined["reward"])[0, 1] > 0.99
    assert (joined["prediction_std"] == 0).all()  # a single member has no spread


def test_return_target_metrics_are_in_reward_units(store: LogStore) -> None:
    spec = FeatureSpec(target="return", gamma=0.9, scaling="standard")
    result = train(store, "pend", spec, {"n_estimators": 200})
    frame = store.features("pend", spec, train_episodes=result.train_episodes)
    held = np.isin(frame.groups, result.holdout_episodes)
    y_true = frame.stats.inverse_transform_target(frame.y[held])
    y_pred = frame.stats.inverse_transform_target(result.model.predict(frame.X[held]))
    rmse = float(np.sqrt(np.mean((y_true - y_pred) ** 2)))
    assert result.metrics["holdout"]["rmse"] == pytest.approx(rmse, rel=1e-4)
    assert frame.stats.target_scale > 1  # returns of Pendulum span tens of reward units


def test_event_target_trains_a_calibrated_classifier(store: LogStore) -> None:
    spec = FeatureSpec(target="event", event_threshold=-4.0)  # about a third of the steps
    result = train(
        store, "pend", spec, {"n_estimators": 200, "class_weight": "balanced"}, holdout=0.4
    )
    assert isinstance(result.model, RewardClassifier)
    hold = result.metrics["holdout"]
    assert hold["auc"] > 0.97 and hold["ece"] < 0.05


def test_bad_parameters_fail_before_anything_is_written(store: LogStore, tmp_path: Path) -> None:
    before = store.runs().height
    with pytest.raises(ParameterError, match="'n_estimators' parameter of RewardRegressor"):
        train(store, "pend", FeatureSpec(), {"n_estimators": 0}, out=tmp_path / "bad")
    with pytest.raises(ParameterError, match=r"unknown estimator parameter\(s\) \['trees'\]"):
        train(store, "pend", FeatureSpec(), {"trees": 5}, out=tmp_path / "bad")
    with pytest.raises(ParameterError, match="did you mean 'num_leaves'"):
        train(
            store, "pend", FeatureSpec(), {"backend_params": {"num_leafs": 4}}, out=tmp_path / "bad"
        )
    assert store.runs().height == before and not (tmp_path / "bad").exists()


def test_predict_refuses_a_dataset_of_another_shape(store: LogStore, tmp_path: Path) -> None:
    train(store, "pend", FeatureSpec(), {"n_estimators": 20}, out=tmp_path / "m")
    other = LogStore(tmp_path / "walker.duckdb")
    other.ingest(rollout("Walker2d-v5", episodes=3, seed=0, max_steps=20), dataset="walker")
    with pytest.raises(
        SchemaError,
        match="expect obs of 3 and actions of 1 values; this table has obs of 17 and actions of 6",
    ):
        predict(other, tmp_path / "m", "walker")


def test_fingerprint_follows_content(tmp_path: Path) -> None:
    s = LogStore(tmp_path / "f.duckdb")
    log = rollout("Pendulum-v1", episodes=2, seed=0, max_steps=10)
    s.ingest(log.head(10), dataset="d")
    first = s.fingerprint("d")
    s.ingest(log.head(10), dataset="d")
    assert s.fingerprint("d") == first
    s.ingest(log.tail(10), dataset="d")
    assert s.fingerprint("d") != first
    other = LogStore(tmp_path / "g.duckdb")
    other.ingest(pl.concat([log.tail(10), log.head(10)]), dataset="d")
    assert other.fingerprint("d") == s.fingerprint("d")  # order-independent


def test_targets_the_dataset_cannot_support_are_clear_errors(tmp_path: Path) -> None:
    s = LogStore(tmp_path / "t.duckdb")
    log = rollout("Pendulum-v1", episodes=4, seed=0, max_steps=30)
    s.ingest(log.with_columns(pl.lit(None, pl.Float64).alias("reward")), dataset="no-rewards")
    s.ingest(log, dataset="pend")
    with pytest.raises(SchemaError, match="no-rewards: none of its 120 transitions has a reward"):
        train(s, "no-rewards")
    with pytest.raises(SchemaError, match="needs both classes in y; it holds only one class"):
        train(s, "pend", FeatureSpec(target="event", event_threshold=100.0))
    assert s.runs().height == 0


def _noise_log(episodes: int, seed: int = 0) -> pl.DataFrame:
    """Pendulum transitions whose rewards are noise: nothing for a model to learn."""
    log = rollout("Pendulum-v1", episodes=episodes, seed=seed, max_steps=40)
    noise = np.random.default_rng(seed).normal(size=log.height)
    return log.with_columns(pl.Series("reward", noise))


def test_a_good_model_on_enough_data_trains_without_warnings(
    store: LogStore, tmp_path: Path
) -> None:
    from rmlite.exceptions import RmliteWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", RmliteWarning)  # any rmlite warning fails the test
        result = train(store, "pend", FeatureSpec(), {"n_estimators": 100}, out=tmp_path / "m")
        report = evaluate(store, tmp_path / "m", "pend-new")
    assert result.metrics["holdout"]["r2"] > 0.9 and result.warnings == []
    assert result.to_dict()["warnings"] == [] and report["warnings"] == []


def test_too_little_data_and_a_model_worse_than_the_mean_are_said(tmp_path: Path) -> None:
    from rmlite.exceptions import ModelQualityWarning, SmallSampleWarning

    store = LogStore(tmp_path / "s.duckdb")
    store.ingest(_noise_log(5), dataset="noise")
    store.ingest(_noise_log(5, seed=1), dataset="noise-new")
    spec = FeatureSpec(next_obs=True, delta=True)  # 10 features, 160 training rows
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(store, "noise", spec, {"n_estimators": 200}, out=tmp_path / "m")
    issued = [(w.category, str(w.message)) for w in caught]
    assert [c for c, _ in issued] == [SmallSampleWarning, SmallSampleWarning, ModelQualityWarning]
    assert [m for _, m in issued] == result.warnings
    assert all(w.filename == __file__ for w in caught)  # they point at the caller's line
    assert result.metrics["holdout"]["r2"] < 0
    joined = "\n".join(result.warnings)
    assert "fewer than 10" in joined and "per feature" not in joined  # 16 rows per feature
    assert "hold-out holds 1 episode(s)" in joined and "below 0" in joined
    with pytest.warns(ModelQualityWarning, match="the noise-new transitions worse than their"):
        report = evaluate(store, tmp_path / "m", "noise-new")
    assert report["metrics"]["r2"] < 0 and "below 0" in report["warnings"][0]


def test_rows_per_feature_rule() -> None:
    from rmlite.evaluation.metrics import data_size_warnings, skill_warnings

    assert data_size_warnings(10, 570, 57, holdout_episodes=3) == []
    (line,) = data_size_warnings(10, 569, 57, holdout_episodes=3)
    assert line.startswith("trained on 569 rows for 57 features (9.98 per feature, fewer than 10)")
    assert skill_warnings({"r2": 0.0}, "reward") == []
    assert skill_warnings({"event_rate": 0.1, "brier": 0.05}, "event") == []
    (event,) = skill_warnings({"event_rate": 0.1, "brier": 0.2}, "event")
    assert "above 0.09" in event
