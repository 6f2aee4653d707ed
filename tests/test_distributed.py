"""Training on a real Dask LocalCluster (2 worker processes, 1 thread each)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("distributed", reason="needs pip install 'rmlite[dask]'")

from rmlite import FeatureSpec, LogStore, load_model
from rmlite.distributed import (
    DaskRewardRegressor,
    WorkerLostError,
    _require_dask,
    connect,
    train_distributed,
)
from rmlite.pipeline import evaluate, train
from rmlite.testing import rollout

# Same data, same episode split: the hold-out R² of the cluster-trained model must be
# within this of the single-process model's (histogram bins are built from per-worker
# sketches, so the trees may differ slightly).
R2_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with connect(cluster="local:2", timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    store = LogStore(tmp_path_factory.mktemp("dask") / "store.duckdb")
    store.ingest(rollout("Pendulum-v1", episodes=16, seed=0, max_steps=100), dataset="pend")
    return store


@pytest.mark.parametrize("backend", ["lightgbm", "xgboost"])
def test_cluster_training_matches_one_machine(
    client: Any, store: LogStore, tmp_path: Path, backend: str
) -> None:
    params = {"backend": backend, "n_estimators": 150, "n_jobs": 1}
    out = tmp_path / backend
    dist = train_distributed(
        store, "pend", FeatureSpec(), params, client=client, out=out, timeout=120
    )
    single = train(store, "pend", FeatureSpec(), params)
    r2_dist, r2_single = dist["metrics"]["holdout"]["r2"], single.metrics["holdout"]["r2"]
    assert r2_single > 0.95 and abs(r2_dist - r2_single) < R2_TOLERANCE
    assert dist["workers"] == 2 and dist["partitions"] >= 2
    # The saved model is the usual folder: it loads and evaluates with its preprocessing.
    assert evaluate(store, out, "pend")["metrics"]["r2"] > 0.95
    row = store.runs().filter(run_id=dist["run_id"]).row(0, named=True)
    assert row["kind"] == "train-dask" and json.loads(row["params"])["dask_workers"] == 2


def test_dask_estimator_fits_dask_arrays_and_saves_locally(client: Any, tmp_path: Path) -> None:
    import dask.array as da

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 3)).astype(np.float32)
    y = (X[:, 0] - X[:, 1]).astype(np.float32)
    model = DaskRewardRegressor(client=client, n_estimators=60, random_state=0, timeout=120)
    model.fit(da.from_array(X, chunks=500), da.from_array(y, chunks=500))
    local_pred = model.predict(X)
    dask_pred = model.predict(da.from_array(X, chunks=500)).compute()
    np.testing.assert_allclose(local_pred, dask_pred, rtol=1e-6)
    assert np.corrcoef(local_pred, y)[0, 1] > 0.98
    loaded = load_model(model.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.predict(X), local_pred, rtol=1e-6)
    with pytest.raises(Exception, match="'backend' parameter of DaskRewardRegressor"):
        DaskRewardRegressor(client=client, backend="mlp").fit(X, y)


def test_a_worker_killed_mid_training_is_a_clear_error() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 8)).astype(np.float32)
    y = X.sum(axis=1)
    with connect(cluster="local:2", timeout=60) as own:
        import dask.array as da

        pids = own.run(os.getpid)
        victim = sorted(pids)[0]
        # Far more rounds than can finish before the kill.
        model = DaskRewardRegressor(client=own, n_estimators=100_000, timeout=90)
        killer = threading.Timer(4.0, os.kill, args=(pids[victim], signal.SIGKILL))
        killer.start()
        try:
            with pytest.raises(WorkerLostError, match="died or left during training"):
                model.fit(da.from_array(X, chunks=5000), da.from_array(y, chunks=5000))
        finally:
            killer.cancel()


def test_optuna_trials_run_on_the_dask_workers(client: Any, tmp_path: Path) -> None:
    from rmlite import RewardRegressor
    from rmlite.tuning import tune

    rng = np.random.default_rng(0)
    X = rng.normal(size=(900, 3)).astype(np.float32)
    y = X[:, 0] * 2
    result = tune(
        RewardRegressor(n_estimators=20, n_jobs=1),
        X,
        y,
        groups=np.repeat(np.arange(9), 100),
        n_trials=4,
        storage=str(tmp_path / "dask.journal"),
        client=client,
        refit=False,
    )
    assert result.n_complete + result.n_pruned + result.n_failed >= 4
    assert result.best_score > 0.8


def test_missing_dask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'rmlite\[dask\]'"):
        _require_dask()


@pytest.mark.slow
def test_train_command_on_a_local_cluster(tmp_path: Path) -> None:
    rollout("Pendulum-v1", episodes=8, seed=1, max_steps=60).write_parquet(tmp_path / "p.parquet")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rmlite.cli", *args, "--db", "s.duckdb"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )

    assert run("ingest", "p.parquet", "--dataset", "p").returncode == 0
    done = run(
        "train", "--dataset", "p", "--cluster", "local:2", "--n-estimators", "100", "--learning-rate", "0.2",
        "--n-jobs", "1", "--out", "m", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["workers"] == 2 and summary["metrics"]["holdout"]["r2"] > 0.5
    assert (tmp_path / "m" / "model.json").exists()
    bad = run("train", "--dataset", "p", "--cluster", "remote:2")
    assert bad.returncode == 2 and "local:N" in bad.stderr
