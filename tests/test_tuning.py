"""Tuning with Optuna: search spaces, pruning, cached folds, persistent and shared studies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rmlite import FeatureSpec, LogStore, RewardRegressor, load_model
from rmlite.exceptions import ParameterError
from rmlite.models.folds import FoldCache
from rmlite.testing import rollout
from rmlite.tuning import (
    Choice,
    Float,
    Int,
    open_storage,
    parse_dimension,
    resolve_storage,
    search_space,
    tune,
    tune_dataset,
)

FAST = {"n_estimators": 30, "n_jobs": 1}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    store = LogStore(tmp_path_factory.mktemp("tune") / "store.duckdb")
    store.ingest(rollout("Pendulum-v1", episodes=12, seed=0, max_steps=60), dataset="pend")
    return store


@pytest.fixture(scope="module")
def matrix() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 4)).astype(np.float32)
    y = X[:, 0] - X[:, 1] ** 2 + 0.1 * rng.normal(size=1500)
    return X, y.astype(np.float32), np.repeat(np.arange(15), 100)


def trials(storage: str, name: str) -> list:
    import optuna

    return optuna.load_study(study_name=name, storage=open_storage(storage)).get_trials()


def test_search_spaces_and_command_line_dimensions() -> None:
    space = search_space("lightgbm", {"num_leaves": Int(4, 16), "lambda_l2": None, "max_bin": 63})
    assert space["num_leaves"] == Int(4, 16) and "lambda_l2" not in space
    assert space["learning_rate"] == Float(0.01, 0.3, log=True) and space["max_bin"] == 63
    assert {"mlp_width", "mlp_depth", "dropout", "weight_decay"} <= set(search_space("mlp"))
    assert parse_dimension("int:8:256:log") == Int(8, 256, log=True)
    assert parse_dimension("true,false") == Choice((True, False))
    with pytest.raises(ParameterError, match="expected float:LOW:HIGH"):
        parse_dimension("float:1:2:3")
    with pytest.raises(ParameterError, match="'backend' parameter"):
        search_space("catboost")
    with pytest.raises(ParameterError, match="cannot be shared by 2 worker"):
        resolve_storage("study.db", None, workers=2)
    with pytest.raises(ParameterError, match="'n_members' parameter must be 1"):
        tune(RewardRegressor(n_members=2), np.zeros((4, 1)), np.zeros(4), groups=[0, 1, 2, 3])


def test_pruning_prunes_and_folds_are_built_once(matrix) -> None:
    X, y, groups = matrix
    built = FoldCache.total_constructions
    result = tune(
        RewardRegressor(**FAST, random_state=0),
        X,
        y,
        groups=groups,
        n_trials=14,
        cv=3,
        seed=1,
        # A wide learning-rate range makes some trials clearly bad early on.
        search_space={"learning_rate": Float(1e-4, 0.5, log=True)},
    )
    assert result.n_complete + result.n_pruned + result.n_failed == 14
    assert result.n_pruned >= 1 and result.n_failed == 0
    # Three folds, one LightGBM Dataset each, reused by all 14 trials.
    assert FoldCache.total_constructions - built == 3
    assert result.best_score > 0.9 and result.model.score(X, y) > 0.9


def test_binning_parameters_get_their_own_datasets(matrix) -> None:
    X, y, groups = matrix
    built = FoldCache.total_constructions
    tune(
        RewardRegressor(backend="xgboost", **FAST),
        X,
        y,
        groups=groups,
        n_trials=4,
        cv=2,
        pruning=False,
        search_space={"max_bin": Choice((32, 64))},
        refit=False,
    )
    assert FoldCache.total_constructions - built <= 4  # 2 folds x at most 2 binnings


def test_failed_trials_are_recorded_and_the_study_goes_on(matrix, tmp_path: Path) -> None:
    X, y, groups = matrix
    storage = str(tmp_path / "study.journal")
    result = tune(
        RewardRegressor(**FAST),
        X,
        y,
        groups=groups,
        n_trials=6,
        storage=storage,
        study_name="fails",
        pruning=False,
        search_space={"num_leaves": Choice((1, 15))},  # LightGBM refuses num_leaves=1
        refit=False,
    )
    assert result.n_failed >= 1 and result.n_complete >= 1
    assert result.n_complete + result.n_failed == 6
    failed = [t for t in trials(resolve_storage(storage, None), "fails") if t.state.name == "FAIL"]
    assert all("num_leaves" in t.user_attrs["error"] for t in failed)
    assert any("num_leaves" in e for e in result.errors)


def test_tune_dataset_refits_records_and_resumes(store: LogStore, tmp_path: Path) -> None:
    out = tmp_path / "best"
    result = tune_dataset(store, "pend", FeatureSpec(), FAST, n_trials=4, out=out, seed=0)
    storage = f"sqlite:///{store.path}.optuna.db"
    assert result.storage == storage and os.path.exists(f"{store.path}.optuna.db")
    row = store.runs().filter(run_id=result.run_id).row(0, named=True)
    assert row["kind"] == "tune" and row["trial_number"] == result.best_trial
    assert json.loads(row["metrics"])["holdout"]["r2"] == result.metrics["holdout"]["r2"]
    assert result.metrics["holdout"]["r2"] > 0.8
    assert (
        load_model(out).get_params()["backend_params"]["num_leaves"]
        == (result.best_params["num_leaves"])
    )
    # Resuming: n_trials is the total the study should hold, so only 2 more run.
    again = tune_dataset(store, "pend", FeatureSpec(), FAST, n_trials=6, seed=0)
    assert again.study_name == result.study_name
    assert len(trials(storage, result.study_name)) == 6


def test_mlp_epochs_report_and_the_spec_joins_the_search(store: LogStore) -> None:
    result = tune_dataset(
        store,
        "pend",
        FeatureSpec(target="return", gamma=0.9, scaling="standard"),
        {"backend": "mlp", "max_epochs": 3, "batch_size": 128, "n_jobs": 1},
        n_trials=3,
        storage=":memory:",
        search_spec=True,
        search_space={"mlp_width": Choice((16, 32)), "mlp_depth": Int(1, 2)},
    )
    assert {"gamma", "next_obs", "mlp_width"} <= set(result.best_params)
    row = store.runs().filter(run_id=result.run_id).row(0, named=True)
    spec = json.loads(row["feature_spec"])
    assert spec["gamma"] == result.best_params["gamma"]
    assert spec["next_obs"] == result.best_params["next_obs"]


def test_parallel_workers_share_one_journal_study(store: LogStore, tmp_path: Path) -> None:
    storage = str(tmp_path / "shared.journal")
    result = tune_dataset(
        store, "pend", FeatureSpec(), FAST, n_trials=6, storage=storage, workers=2, seed=0
    )
    done = trials(resolve_storage(storage, None), result.study_name)
    assert len(done) >= 6 and not [t for t in done if t.state.name == "RUNNING"]
    assert len({t.user_attrs["worker"]["pid"] for t in done}) == 2  # both processes ran trials


def rmlite_cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rmlite.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# 36 s of subprocess tuning: -m slow; test_tune_dataset_refits_records_and_resumes keeps
# resuming in the default set.
@pytest.mark.slow
def test_a_killed_session_resumes_through_the_cli(tmp_path: Path) -> None:
    rollout("Pendulum-v1", episodes=10, seed=3, max_steps=60).write_parquet(tmp_path / "p.parquet")
    ingest = rmlite_cli("ingest", "p.parquet", "--dataset", "p", "--db", "s.duckdb", cwd=tmp_path)
    assert ingest.wait(timeout=120) == 0
    storage = str(tmp_path / "s.journal")
    args = ["tune", "--db", "s.duckdb", "--dataset", "p", "--storage", storage, "--n-jobs", "1"]
    # Trials of 200 rounds last long enough to be caught running.
    first = rmlite_cli(*args, "--n-trials", "100", "--n-estimators", "200", cwd=tmp_path)
    name, running = "p-reward-lightgbm", []
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            time.sleep(0.3)
            if os.path.exists(storage):
                states = [t.state.name for t in trials(resolve_storage(storage, None), name)]
                running = [s for s in states if s == "RUNNING"]
                if "COMPLETE" in states and running:
                    break
        else:
            pytest.fail("the first session never had a complete and a running trial")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finished = len(trials(resolve_storage(storage, None), name)) - len(running)
    second = rmlite_cli(
        *args, "--n-trials", str(finished + 3), "--n-estimators", "20", "--json", cwd=tmp_path
    )
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err
    summary = json.loads(out)
    assert summary["recovered"] and summary["run_id"] >= 1
    after = trials(resolve_storage(storage, None), name)
    assert not [t for t in after if t.state.name == "RUNNING"]
    assert len(after) == finished + 3 + (len(after) - finished - 3)  # no trial lost
    assert summary["n_complete"] + summary["n_pruned"] + summary["n_failed"] == len(after)
    dead = [t for t in after if t.number in summary["recovered"]]
    assert all(t.state.name == "FAIL" and "died" in t.user_attrs["error"] for t in dead)
    assert len(after) >= finished + 3


def test_import_rmlite_stays_light() -> None:
    code = (
        "import sys, rmlite, rmlite.cli; rmlite.cli.build_parser(); "
        "print(sorted(m for m in ('optuna', 'dask', 'distributed', 'torch', 'lightgbm') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_trial_history_reads_both_storages_beside_the_store(tmp_path: Path) -> None:
    import optuna

    from rmlite.tuning import trial_history

    db = tmp_path / "project.duckdb"
    assert trial_history(str(db)) == []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -1.0, 1.0)
        if trial.number == 2:
            raise optuna.TrialPruned()
        trial.set_user_attr("cv_r2", 1.0 - x**2)
        return x**2

    for storage, name, n in (
        (resolve_storage(None, str(db)), "walker-reward-lightgbm", 3),
        (resolve_storage(None, str(db), workers=2), "walker-reward-xgboost", 2),
    ):
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(study_name=name, storage=open_storage(storage))
        study.optimize(objective, n_trials=n)

    history = trial_history(str(db))
    assert [(t["study"], t["number"]) for t in history] == [
        ("walker-reward-lightgbm", 0),
        ("walker-reward-lightgbm", 1),
        ("walker-reward-lightgbm", 2),
        ("walker-reward-xgboost", 0),
        ("walker-reward-xgboost", 1),
    ]
    assert [t["state"] for t in history[:3]] == ["COMPLETE", "COMPLETE", "PRUNED"]
    first = history[0]
    assert first["storage"].startswith("sqlite:///") and history[-1]["storage"].startswith(
        "journal:"
    )
    assert first["cv_r2"] == pytest.approx(1.0 - first["value"])
    assert set(first["params"]) == {"x"} and first["duration_s"] >= 0
    assert history[2]["value"] is None and history[2]["cv_r2"] is None
    json.dumps(history)  # the dashboard serves it as it is
