"""Optuna studies that read well in optuna-dashboard: metric names, study attributes,
learning curves numbered by round, tidy trial attributes, the pruners, dead-trial
recovery through public Optuna API. Real SQLite and journal storages in tmp dirs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rmlite import FeatureSpec, LogStore, RewardClassifier, RewardRegressor
from rmlite.exceptions import ParameterError
from rmlite.testing import rollout
from rmlite.tuning import (
    Float,
    open_storage,
    recover_dead_trials,
    resolve_storage,
    tune,
    tune_dataset,
)

FAST = {"n_estimators": 30, "n_jobs": 1}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    store = LogStore(tmp_path_factory.mktemp("studies") / "store.duckdb")
    store.ingest(rollout("Pendulum-v1", episodes=6, seed=0, max_steps=40), dataset="pend")
    return store


@pytest.fixture(scope="module")
def matrix() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 4)).astype(np.float32)
    y = X[:, 0] - X[:, 1] ** 2 + 0.1 * rng.normal(size=1500)
    return X, y.astype(np.float32), np.repeat(np.arange(15), 100)


def load(storage: str, name: str):  # type: ignore[no-untyped-def]
    import optuna

    return optuna.load_study(study_name=name, storage=open_storage(storage))


def test_a_dataset_study_names_its_metric_and_what_it_tunes(
    store: LogStore, tmp_path: Path
) -> None:
    storage = str(tmp_path / "studies.db")
    spec = FeatureSpec(next_obs=True)
    tune_dataset(store, "pend", spec, FAST, n_trials=2, cv=3, storage=storage, study_name="s")
    study = load(resolve_storage(storage, None), "s")
    assert study.metric_names == ["1 - R²"]
    attrs = study.user_attrs
    assert attrs["dataset"] == "pend" and attrs["store"] == store.path
    assert attrs["feature_spec"] == spec.to_dict() and attrs["folds"] == 3
    assert (
        attrs["fixed_params"]["n_estimators"] == 30 and "learning_rate" not in attrs["fixed_params"]
    )
    assert attrs["metric"] == "1 - R²" and attrs["pruner"] == "median"

    for t in study.get_trials():
        # One attribute for the worker, none of host/pid/heartbeat beside the results.
        assert not {"host", "pid", "heartbeat"} & set(t.user_attrs)
        assert set(t.user_attrs["worker"]) == {"host", "pid", "heartbeat"}
        # Intermediate values: fold 0's learning curve, numbered by boosting round.
        steps = sorted(t.intermediate_values)
        assert t.user_attrs["curve_fold"] == 0
        assert steps[0] >= 1 and steps[-1] <= 30 and len(steps) <= 10
        curves = t.user_attrs["fold_curves"]
        assert [r for r, _ in curves["0"]][: len(steps)] == steps
        assert [v for _, v in curves["0"]][: len(steps)] == pytest.approx(
            [t.intermediate_values[s] for s in steps]
        )
        if t.state.name == "COMPLETE":
            assert steps[-1] == 30 and set(curves) == {"0", "1", "2"}
            assert t.value == pytest.approx(np.mean(t.user_attrs["fold_values"]))
            assert t.value == pytest.approx(np.mean([c[-1][1] for c in curves.values()]))

    # Resuming the study for another spec would mix values that do not compare.
    with pytest.raises(
        ParameterError,
        match=r"was made for feature_spec next_obs=True; this session asks for next_obs=False.*--study",
    ):
        tune_dataset(store, "pend", FeatureSpec(), FAST, n_trials=4, cv=3, storage=storage,
                     study_name="s")  # fmt: skip
    assert len(load(resolve_storage(storage, None), "s").trials) == 2


def test_an_event_study_minimizes_log_loss(matrix, tmp_path: Path) -> None:
    X, y, groups = matrix
    storage = str(tmp_path / "events.journal")
    tune(RewardClassifier(**FAST), X, (y > 0).astype(np.float32), groups=groups, n_trials=2,
         storage=storage, study_name="e", refit=False)  # fmt: skip
    study = load(resolve_storage(storage, None), "e")
    assert study.metric_names == ["log loss"]
    assert study.user_attrs["rows"] == 1500 and study.user_attrs["features"] == 4


def test_hyperband_prunes_on_the_round_curve(matrix) -> None:
    X, y, groups = matrix
    result = tune(RewardRegressor(**FAST, random_state=0), X, y, groups=groups, n_trials=12,
                  cv=3, seed=1, pruning="hyperband", refit=False,
                  search_space={"learning_rate": Float(1e-4, 0.5, log=True)})  # fmt: skip
    assert result.n_pruned >= 1 and result.n_complete >= 1 and result.best_score > 0.9


def test_wilcoxon_compares_fold_by_fold(matrix, tmp_path: Path) -> None:
    X, y, groups = matrix
    storage = str(tmp_path / "w.journal")
    result = tune(RewardRegressor(**FAST, random_state=0), X, y, groups=groups, n_trials=6,
                  cv=5, seed=1, pruning="wilcoxon", refit=False, storage=storage,
                  study_name="w", search_space={"learning_rate": Float(1e-4, 0.5, log=True)})  # fmt: skip
    assert result.n_pruned >= 1 and result.best_score > 0.8
    study = load(resolve_storage(storage, None), "w")
    assert study.user_attrs["intermediate_values"].startswith("hold-out loss of each fold")
    for t in study.get_trials():
        # Steps are fold numbers; a complete trial reports all five, a pruned one stops early.
        assert set(t.intermediate_values) <= set(range(5))
        if t.state.name == "COMPLETE":
            assert sorted(t.intermediate_values) == [0, 1, 2, 3, 4]
            assert t.value == pytest.approx(np.mean(list(t.intermediate_values.values())))
        elif t.state.name == "PRUNED":
            assert len(t.intermediate_values) == 4  # the first fold where p < 0.1 is reachable
            assert t.user_attrs["pruned_in_fold"] in range(5)

    with pytest.raises(ParameterError, match=r"cv=3 it can never prune.*cv >= 5"):
        tune(RewardRegressor(**FAST), X, y, groups=groups, n_trials=1, cv=3, pruning="wilcoxon")
    with pytest.raises(ParameterError, match=r"'pruning' parameter .* Got 'meadian'"):
        tune(RewardRegressor(**FAST), X, y, groups=groups, n_trials=1, pruning="meadian")


def test_dead_trials_fail_through_public_optuna_api(tmp_path: Path) -> None:
    import optuna

    storage_url = resolve_storage(str(tmp_path / "dead.journal"), None)
    storage = open_storage(storage_url)
    study = optuna.create_study(storage=storage, study_name="d")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    import socket

    host = socket.gethostname()
    new_style = study.ask()
    new_style.set_user_attr("worker", {"host": host, "pid": gone.pid, "heartbeat": 0.0})
    old_style = study.ask()  # a study written before the `worker` attribute
    old_style.set_user_attr("host", host)
    old_style.set_user_attr("pid", gone.pid)
    alive = study.ask()
    alive.set_user_attr("worker", {"host": host, "pid": 1, "heartbeat": 4e12})
    dead = recover_dead_trials(study, storage=storage)
    assert dead == [new_style.number, old_style.number]
    trials = load(storage_url, "d").get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "RUNNING"]
    assert all(f"process {gone.pid}" in t.user_attrs["error"] for t in trials[:2])
    assert recover_dead_trials(study, storage=storage) == []  # idempotent


def test_cli_pruner_flag(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rmlite.cli", "tune", "--db", str(tmp_path / "none.duckdb"),
         "--dataset", "x", "--pruner", "wilcxon"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2 and "invalid choice: 'wilcxon'" in out.stderr
