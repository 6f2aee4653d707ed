"""Monitor passes on real Pendulum-v1 logs, in a real DuckDB file (rmlite.evaluation.monitor)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import warnings
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from rmlite import LogStore
from rmlite.estimators.loading import load_model
from rmlite.evaluation.drift import Thresholds
from rmlite.evaluation.monitor import evaluate_window, monitor, monitor_pass
from rmlite.evaluation.reference import REFERENCE_FILE
from rmlite.exceptions import RmliteError, SchemaError, SmallSampleWarning
from rmlite.pipeline import train
from rmlite.testing import rollout

TRAIN_EPISODES = 40


def pump(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another policy: full torque along the angular velocity (swings the pendulum up)."""
    return np.array([np.clip(2.0 * np.sign(obs[2]) + rng.normal(0, 0.3), -2, 2)], np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store with 40 random-policy Pendulum episodes and a LightGBM model trained on 80%."""
    folder = tmp_path_factory.mktemp("monitoring")
    store = LogStore(folder / "store.duckdb")
    store.ingest(rollout("Pendulum-v1", episodes=TRAIN_EPISODES, seed=0), dataset="pendulum")
    train(store, "pendulum", params={"n_estimators": 200}, out=folder / "model")
    return folder / "store.duckdb", folder / "model"


@pytest.fixture
def copy(trained: tuple[Path, Path], tmp_path: Path) -> tuple[LogStore, Path]:
    """A private copy of the trained store and model (tests write passes into it)."""
    db, model = trained
    shutil.copy(db, tmp_path / "store.duckdb")
    shutil.copytree(model, tmp_path / "model")
    return LogStore(tmp_path / "store.duckdb"), tmp_path / "model"


def add(store: LogStore, dataset: str, log: pl.DataFrame, offset: int = 0) -> None:
    store.ingest(log.with_columns(pl.col("episode_id") + offset), dataset=dataset)


def test_training_saves_what_monitoring_needs(trained: tuple[Path, Path]) -> None:
    _, folder = trained
    meta = json.loads((folder / "model.json").read_text())
    assert meta["dataset"] == "pendulum"
    assert len(meta["train_episodes"]) == TRAIN_EPISODES * 4 // 5
    curve = meta["curves"][0]
    # The hold-out is watched every round (never fitted): its curve is as long as training's.
    assert len(curve["train"]) == len(curve["holdout"]) == 200 and curve["valid"] == []
    assert curve["holdout"][-1] < 0.05 * curve["holdout"][0]
    reference = pl.read_parquet(folder / REFERENCE_FILE)
    assert set(reference["__split"]) == {"train", "holdout"}
    assert {"obs_0", "obs_1", "obs_2", "act_0", "__target", "__prediction"} <= set(
        reference.columns
    )
    # Episode ids: the drift limits resample whole episodes of the reference.
    train_eps = reference.filter(pl.col("__split") == "train")["__episode"].unique()
    assert sorted(train_eps) == sorted(meta["train_episodes"])


def test_first_pass_scores_the_holdout_then_only_new_episodes(copy) -> None:
    store, model = copy
    first = monitor_pass(store, model, "pendulum")
    assert first is not None
    held = set(store.episodes("pendulum")["episode_id"]) - set(load_model(model).train_episodes_)
    assert set(first.window.episodes) == held and first.window.rows == 200 * len(held)
    assert first.window.metrics["r2"] > 0.99

    assert monitor_pass(store, model, "pendulum") is None  # nothing new: nothing written
    assert store.sql("SELECT count(*) AS n FROM monitor_passes")["n"][0] == 1

    add(store, "pendulum", rollout("Pendulum-v1", episodes=3, seed=5), offset=1000)
    second = monitor_pass(store, model, "pendulum")
    assert second is not None and second.window.episodes == [1000, 1001, 1002]
    assert second.first_ingest_id == second.last_ingest_id == 2

    passes = store.sql("SELECT * FROM monitor_passes ORDER BY pass_id")
    assert passes["episodes"].to_list() == [len(held), 3]
    assert passes["model_fingerprint"].n_unique() == 1
    metrics = store.sql("SELECT pass_id, value FROM metrics WHERE metric = 'r2' ORDER BY pass_id")
    assert metrics["pass_id"].to_list() == [first.pass_id, second.pass_id]
    assert metrics["value"][1] == pytest.approx(second.window.metrics["r2"])
    drift = store.sql(
        "SELECT kind, name FROM drift WHERE pass_id = $p", params={"p": second.pass_id}
    )
    assert set(drift["kind"]) == {"feature", "reward", "prediction", "residual"}
    samples = store.sql("SELECT * FROM monitor_samples WHERE pass_id = 2")
    assert samples.height == 600
    assert np.corrcoef(samples["y_true"], samples["y_pred"])[0, 1] > 0.99


def test_quiet_on_a_fresh_log_from_the_same_policy(copy) -> None:
    store, model = copy
    add(store, "fresh", rollout("Pendulum-v1", episodes=20, seed=7))
    result = monitor_pass(store, model, "fresh")
    assert result is not None
    assert result.window.alerts == [], result.window.alerts
    assert result.window.drift.filter(pl.col("severity") == "alert").height == 0
    assert store.sql("SELECT count(*) AS n FROM alerts")["n"][0] == 0


def test_catches_changed_dynamics(copy) -> None:
    # Gravity 15 instead of 10: the same reward function, other states.
    store, model = copy
    add(store, "gravity", rollout("Pendulum-v1", episodes=20, seed=8, g=15.0))
    result = monitor_pass(store, model, "gravity")
    assert result is not None
    alerted = set(result.window.drift.filter(pl.col("severity") == "alert")["name"])
    assert {"obs_0", "obs_2"} <= alerted and "act_0" not in alerted
    assert result.window.dataset_drift["alert"]
    # The reward function did not change, and the model still predicts it.
    assert not [a for a in result.window.alerts if a["source"] == "accuracy"]
    rows = store.sql("SELECT name FROM drift WHERE severity = 'alert' AND kind = 'feature'")
    assert {"obs_0", "obs_2"} <= set(rows["name"])
    # Large windows are sampled for the drift tests; the verdict holds on a sample.
    sampled = evaluate_window(store, model, "gravity", drift_rows=1500)
    assert sampled.rows == 4000 and sampled.metrics == result.window.metrics
    assert {"obs_0", "obs_2"} <= set(sampled.drift.filter(pl.col("severity") == "alert")["name"])


def test_catches_a_changed_policy_and_the_accuracy_it_costs(copy, caplog) -> None:
    store, model = copy
    add(store, "pump", rollout("Pendulum-v1", episodes=20, seed=9, policy=pump))
    with caplog.at_level(logging.WARNING, logger="rmlite.monitor"):
        result = monitor_pass(store, model, "pump")
    assert result is not None
    sources = {(a["source"], a["name"]) for a in result.window.alerts}
    assert {("accuracy", "rmse"), ("drift", "act_0"), ("drift", "residual")} <= sources
    assert any("RMSE" in r.getMessage() for r in caplog.records)
    stored = store.sql("SELECT source, name, severity FROM alerts")
    assert stored.height == len(result.window.alerts)
    assert set(stored["severity"]) == {"alert"}


def test_small_windows_are_judged_by_their_size(copy) -> None:
    # 3 episodes of another policy: the sample-size rule raises its limits for so few
    # episodes, yet the swing-up policy's actions are far beyond them. The fixed rule
    # (bootstrap=0) has no such limits and caps windows under min_episodes at warn.
    store, model = copy
    add(store, "few", rollout("Pendulum-v1", episodes=3, seed=9, policy=pump))
    result = monitor_pass(store, model, "few")
    assert result is not None
    drift = result.window.drift
    assert "act_0" in set(drift.filter(pl.col("severity") == "alert")["name"])
    assert drift.filter(pl.col("name") == "obs_0")["psi_alert"][0] > 0.25  # raised for 3
    assert result.window.warnings == []  # the sample-size rule accounts for 3 episodes
    with pytest.warns(SmallSampleWarning, match=r"window of 3 episode\(s\) judged by fixed"):
        fixed = evaluate_window(store, model, "few", thresholds=Thresholds(bootstrap=0))
    assert set(fixed.drift["severity"]) <= {"ok", "warn"} and "warn" in set(fixed.drift["severity"])
    assert fixed.to_dict()["warnings"] == fixed.warnings and len(fixed.warnings) == 1
    assert not [a for a in fixed.alerts if a["source"] == "drift"]
    window = evaluate_window(
        store, model, "few", thresholds=Thresholds(bootstrap=0, min_episodes=1)
    )
    assert [a for a in window.alerts if a["source"] == "drift"]


def test_monitor_loop_picks_up_an_ingest_between_passes(copy) -> None:
    store, model = copy
    seen: list[int | None] = []

    def between(result) -> None:
        seen.append(None if result is None else len(result.window.episodes))
        if len(seen) == 1:
            add(store, "pendulum", rollout("Pendulum-v1", episodes=2, seed=11), offset=5000)

    done = monitor(store, model, "pendulum", every=0.01, passes=3, on_pass=between)
    assert seen == [8, 2, None]
    assert [len(p.window.episodes) for p in done] == [8, 2]


@pytest.mark.slow  # 20-120 s of subprocesses on 2 busy cores; the default run stays short
def test_overfitting_alarm_fires_on_an_overfit_model_only(tmp_path: Path) -> None:
    # Noisy rewards (σ = 0.25): a deliberately overfit model memorizes the noise, and its
    # hold-out loss climbs back from its minimum; the default model does not.
    log = rollout("Pendulum-v1", episodes=30, seed=0)
    noise = np.random.default_rng(0).normal(0, 0.25, log.height)
    store = LogStore(tmp_path / "store.duckdb")
    store.ingest(log.with_columns(pl.col("reward") + noise), dataset="noisy")
    overfit = {
        "n_estimators": 600,
        "learning_rate": 0.5,
        "backend_params": {"num_leaves": 255, "min_data_in_leaf": 1, "lambda_l2": 0.0},
    }
    train(store, "noisy", out=tmp_path / "default")
    train(store, "noisy", params=overfit, out=tmp_path / "overfit")
    quiet = monitor_pass(store, tmp_path / "default", "noisy")
    loud = monitor_pass(store, tmp_path / "overfit", "noisy")
    assert quiet is not None and loud is not None
    assert not quiet.window.overfitting["alarm"], quiet.window.overfitting["message"]
    assert quiet.window.overfitting["rise"] < 0.02
    assert loud.window.overfitting["alarm"] and loud.window.overfitting["status"] == "overfit"
    assert loud.window.overfitting["rise"] > 3 * quiet.window.overfitting["rise"]
    alarms = store.sql("SELECT pass_id FROM alerts WHERE source = 'overfitting'")
    assert alarms["pass_id"].to_list() == [loud.pass_id]


def test_bad_inputs_name_the_problem_and_write_nothing(copy, snapshot, same_tables) -> None:
    store, model = copy
    before = snapshot(store)
    (model / REFERENCE_FILE).rename(model / "elsewhere.parquet")
    with pytest.raises(RmliteError, match=r"no reference\.parquet .* retrain"):
        monitor_pass(store, model, "pendulum")
    (model / "elsewhere.parquet").rename(model / REFERENCE_FILE)
    store.ingest(rollout("Walker2d-v5", episodes=2, seed=0, max_steps=20), dataset="walker")
    before = snapshot(store)
    with pytest.raises(
        SchemaError,
        match=r"walker: .*expect obs of 3 and actions of 1 values; this table has obs of 17",
    ):
        monitor_pass(store, model, "walker")
    with pytest.raises(RmliteError, match=r"unknown dataset|no dataset"):
        monitor_pass(store, model, "nope")
    same_tables(before, snapshot(store))


def test_a_pass_lands_whole_or_not_at_all(copy, snapshot, same_tables) -> None:
    store, model = copy
    monitor_pass(store, model, "pendulum")
    before = snapshot(store)
    broken_drift = pl.DataFrame({"kind": ["feature"], "name": ["obs_0"]})  # columns missing
    alerts = pl.DataFrame(
        schema={"severity": pl.String, "source": pl.String, "name": pl.String, "message": pl.String}
    )
    samples = pl.DataFrame(
        schema={
            "episode_id": pl.Int64,
            "step": pl.Int64,
            "y_true": pl.Float64,
            "y_pred": pl.Float64,
        }
    )
    with pytest.raises(duckdb.Error, match=r"psi"):
        store.record_monitor_pass(
            {
                "dataset": "pendulum",
                "model_path": str(model),
                "model_fingerprint": "x",
                "reference": "test",
                "first_ingest_id": 1,
                "last_ingest_id": 1,
                "episodes": 1,
                "rows": 1,
                "alerts": 0,
                "started_at": datetime(2026, 1, 1),
            },
            pl.DataFrame({"metric": ["r2"], "value": [1.0]}),
            broken_drift,
            alerts,
            samples,
        )
    same_tables(before, snapshot(store))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rmlite.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_a_reference_of_few_episodes_is_said_to_judge_nothing(tmp_path: Path) -> None:
    # A model trained on 4 episodes keeps 3 in its reference: too few to resample, so the
    # fixed limits judge the window, and most features "drift" on one episode by chance.
    store = LogStore(tmp_path / "store.duckdb")
    store.ingest(rollout("Pendulum-v1", episodes=5, seed=0, max_steps=60), dataset="pend")
    with pytest.warns(SmallSampleWarning):  # the training set is small too
        train(store, "pend", params={"n_estimators": 20}, out=tmp_path / "model")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = monitor_pass(store, tmp_path / "model", "pend")
    assert result is not None and len(result.window.episodes) == 1
    said = [str(w.message) for w in caught if issubclass(w.category, SmallSampleWarning)]
    assert said == result.window.warnings and len(said) == 2
    assert "reference of 4 training episodes (fewer than 5)" in said[0]
    assert "window of 1 episode(s) judged by fixed limits" in result.window.warnings[1]


@pytest.mark.slow  # 20-120 s of subprocesses on 2 busy cores; the default run stays short
def test_cli_monitor(copy) -> None:
    store, model = copy
    base = ("monitor", "--db", store.path, "--model", str(model), "--dataset", "pendulum")
    first = run_cli(*base, "--json")
    assert first.returncode == 0, first.stderr
    payload = json.loads(first.stdout)
    assert payload["pass_id"] == 1 and payload["metrics"]["r2"] > 0.99
    again = run_cli(*base)
    assert again.returncode == 0 and "no new episodes" in again.stdout
    bad = run_cli(*base, "--threshold", "psi_alert=high")
    assert bad.returncode == 2 and "'high' is not a number" in bad.stderr
    unknown = run_cli(*base, "--threshold", "psi=1")
    assert unknown.returncode == 2 and "unknown threshold(s) ['psi']" in unknown.stderr
    rows = store.sql("SELECT count(*) AS n FROM monitor_passes")
    assert rows["n"][0] == 1
    # --fail-on: exit status 3 when a pass raised an alert (a swing-up policy does).
    add(store, "pump", rollout("Pendulum-v1", episodes=12, seed=9, policy=pump))
    pump_args = ("monitor", "--db", store.path, "--model", str(model), "--dataset", "pump")
    failed = run_cli(*pump_args, "--fail-on", "alert")
    assert failed.returncode == 3, failed.stderr
    assert "[accuracy] alert: RMSE" in failed.stderr  # alerts are logged as they are raised


def test_a_window_without_rewards_still_reports_drift(copy) -> None:
    # Logs often arrive without rewards (that is why a reward model exists): the pass then
    # has no accuracy metrics, but feature and prediction drift are still measured.
    store, model = copy
    log = rollout("Pendulum-v1", episodes=12, seed=9, policy=pump)
    store.ingest(log.with_columns(pl.lit(None, dtype=pl.Float64).alias("reward")), dataset="blind")
    result = monitor_pass(store, model, "blind")
    assert result is not None and result.window.metrics == {}
    kinds = set(result.window.drift["kind"])
    assert kinds == {"feature", "prediction"}
    assert {"act_0", "obs_2"} <= set(
        result.window.drift.filter(pl.col("severity") == "alert")["name"]
    )
    assert result.window.sample["y_true"].null_count() == result.window.sample.height
    stored = store.sql(
        "SELECT count(*) AS n FROM metrics WHERE pass_id = $p", params={"p": result.pass_id}
    )
    assert stored["n"][0] == 0
