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
import polars as pl
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
from rmlite.exceptions import ParameterError
from rmlite.pipeline import evaluate, split_episodes, train
from rmlite.testing import rollout, synthetic_log

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
    assert dist["warnings"] == single.warnings == []  # 13 training episodes, 3 held out
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


@pytest.mark.slow  # 20-120 s of subprocesses on 2 busy cores; the default run stays short
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
        "--n-jobs", "1", "--out", "m", "--json", "--parts-dir", (tmp_path / "shared").as_uri(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["workers"] == 2 and summary["metrics"]["holdout"]["r2"] > 0.5
    assert "trained on 6 episode(s), fewer than 10" in summary["warnings"][0]  # 8 in all
    assert (tmp_path / "m" / "model.json").exists()
    bad = run("train", "--dataset", "p", "--cluster", "remote:2")
    assert bad.returncode == 2 and "local:N" in bad.stderr
    assert len(list((tmp_path / "shared").rglob("*.parquet"))) == summary["partitions"]
    alone = run("train", "--dataset", "p", "--parts-dir", "file:///tmp/parts")
    assert alone.returncode == 2 and "--parts-dir is where a Dask training" in alone.stderr
    streamed = run("train", "--dataset", "p", "--cluster", "local:2", "--stream")
    assert streamed.returncode == 2 and "--stream is the one-machine path" in streamed.stderr


# ------------------------------------------------ statistics over every partition


@pytest.fixture(scope="module")
def holes(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    """Pendulum with every 7th observation missing (NaN) and episodes far apart in scale,
    so that one partition's statistics differ from all training episodes' ones."""
    log = rollout("Pendulum-v1", episodes=24, seed=3, max_steps=50)
    scale = (1.0 + pl.col("episode_id") % 5).cast(pl.Float32)
    log = log.with_columns(
        pl.when(pl.col("step") % 7 == 3)
        .then(pl.col("obs").list.eval(pl.element() * float("nan")))
        .otherwise(pl.col("obs").list.eval(pl.element()) * scale)
        .alias("obs"),
        pl.col("reward") * scale,
    )
    store = LogStore(tmp_path_factory.mktemp("holes") / "store.duckdb")
    store.ingest(log, dataset="holes")
    return store


def test_statistics_are_fitted_over_every_partition(client: Any, holes: LogStore) -> None:
    spec = FeatureSpec(missing="mean", missing_indicator=True, scaling="standard")
    dist = train_distributed(
        holes, "holes", spec, {"n_estimators": 10, "n_jobs": 1}, client=client, partitions=5,
        seed=1, timeout=120,
    )  # fmt: skip
    train_eps, _ = split_episodes(
        holes.episodes("holes", keys=True)["episode_id"].to_numpy(), 0.2, 1
    )
    single = holes.features("holes", spec, train_episodes=train_eps).stats.to_dict()
    fitted = dist["model"].feature_stats_
    assert dist["partitions"] == 5
    assert fitted["feature_names"] == single["feature_names"]
    assert fitted["train_rows"] == single["train_rows"]
    assert any(name.endswith("_missing") for name in fitted["feature_names"])
    np.testing.assert_allclose(fitted["fill_values"], single["fill_values"], rtol=1e-9)
    for key in ("target_center", "target_scale"):
        assert fitted[key] == pytest.approx(single[key], rel=1e-9)


def test_partitions_go_through_an_fsspec_url(client: Any, store: LogStore, tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "pend-parts"
    shared.mkdir(parents=True)
    (shared / "stale.parquet").write_bytes(b"not parquet")  # an old export is replaced
    params = {"n_estimators": 40, "n_jobs": 1}
    dist = train_distributed(
        store, "pend", FeatureSpec(), params, client=client,
        parts_dir=shared.as_uri(), partitions=3, out=tmp_path / "m", timeout=120,
    )  # fmt: skip
    written = sorted(shared.rglob("*.parquet"))
    assert len(written) == 3 and not (shared / "stale.parquet").exists()
    assert dist["partitions"] == 3 and dist["metrics"]["holdout"]["r2"] > 0.8
    assert evaluate(store, tmp_path / "m", "pend")["metrics"]["r2"] > 0.8


@pytest.mark.slow
def test_early_stopping_and_ensembles_through_the_main_job(client: Any, store: LogStore) -> None:
    # Episodes reach fit as groups; the hold-out is watched, as on one machine.
    params = {"n_estimators": 80, "n_jobs": 1, "early_stopping_rounds": 5, "n_members": 2}
    dist = train_distributed(store, "pend", FeatureSpec(), params, client=client, timeout=180)
    model = dist["model"]
    assert len(model.members_) == 2 and dist["metrics"]["holdout"]["r2"] > 0.8
    assert all(c["valid"] and c["holdout"] for c in model.curves_)


# --------------------------------------------------- the estimator's fit options


def _episodes_data(n_eps: int = 40, length: int = 100) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_eps * length, 4)).astype(np.float32)
    y = (X[:, 0] - 0.5 * X[:, 1] ** 2 + 0.3 * rng.normal(size=len(X))).astype(np.float32)
    return X, y, np.repeat(np.arange(n_eps, dtype=np.int64), length)


@pytest.mark.parametrize("backend", ["lightgbm", "xgboost"])
def test_early_stopping_keeps_the_best_round_on_held_out_episodes(
    client: Any, backend: str
) -> None:
    import dask.array as da

    X, y, g = _episodes_data()
    model = DaskRewardRegressor(
        backend, client=client, n_estimators=400, learning_rate=0.3, early_stopping_rounds=10,
        validation_fraction=0.2, random_state=0, timeout=120,
    )  # fmt: skip
    chunks = 1000
    model.fit(
        da.from_array(X, chunks=chunks), da.from_array(y, chunks=chunks),
        groups=da.from_array(g, chunks=chunks),
    )  # fmt: skip
    valid = np.asarray(model.curves_[0]["valid"])
    best = model.best_iteration_
    assert best == int(np.argmin(valid)) + 1 and model.n_iter_ == len(valid) < 400
    assert len(valid) - best <= 10
    # The validation episodes are RewardRegressor's draw for the same seed, and the curve
    # is the kept model's loss on them.
    episodes = np.unique(g)
    val = np.random.default_rng(0).choice(episodes, size=8, replace=False)
    rows = np.isin(g, val)
    loss = np.mean((model.predict(X[rows]) - y[rows].astype(np.float64)) ** 2)
    assert loss == pytest.approx(valid[best - 1], rel=1e-4)


def test_sample_weights_decide_what_is_learned(client: Any) -> None:
    import dask.array as da

    X, _, g = _episodes_data(20)
    y = np.where(g % 2 == 0, X[:, 0], -X[:, 0]).astype(np.float32)
    weight = (g % 2 == 0).astype(np.float64)  # the odd episodes do not count
    model = DaskRewardRegressor(client=client, n_estimators=60, random_state=0, timeout=120)
    model.fit(da.from_array(X, chunks=500), da.from_array(y, chunks=500), sample_weight=weight)
    assert np.corrcoef(model.predict(X), X[:, 0])[0, 1] > 0.95
    with pytest.raises(ParameterError, match="sample_weight must hold finite, non-negative"):
        model.fit(X, y, sample_weight=-weight)
    with pytest.raises(ValueError, match="sample_weight is zero for every sample"):
        model.fit(X, y, sample_weight=np.zeros(len(y)))


def test_an_ensemble_resamples_episodes_and_spreads(client: Any) -> None:
    import dask.array as da

    X, y, g = _episodes_data(30)
    model = DaskRewardRegressor(
        client=client, n_estimators=40, n_members=3, random_state=0, timeout=120
    )
    dX = da.from_array(X, chunks=1000)
    model.fit(dX, da.from_array(y, chunks=1000), groups=da.from_array(g, chunks=1000))
    assert len(model.members_) == 3
    mean, std = model.predict(X, return_std=True)
    dask_mean, dask_std = model.predict(dX, return_std=True)
    np.testing.assert_allclose(dask_mean.compute(), mean, rtol=1e-6)
    np.testing.assert_allclose(dask_std.compute(), std, rtol=1e-6, atol=1e-9)
    assert std.mean() > 1e-3 and np.corrcoef(mean, y)[0, 1] > 0.9
    with pytest.raises(ParameterError, match=r"n_members=3 splits and resamples whole episodes"):
        model.fit(X, y)
    stopping = DaskRewardRegressor(client=client, early_stopping_rounds=5)
    with pytest.raises(ParameterError, match="pass groups="):
        stopping.fit(X, y)


def test_the_mlp_is_refused_with_what_to_use_instead(client: Any, store: LogStore) -> None:
    with pytest.raises(ParameterError, match="The MLP trains on one machine"):
        train_distributed(store, "pend", FeatureSpec(), {"backend": "mlp"}, client=client)


@pytest.mark.slow
def test_a_synthetic_log_on_the_cluster_matches_one_process(client: Any, tmp_path: Path) -> None:
    store = LogStore(tmp_path / "synth.duckdb")
    store.ingest(synthetic_log(60_000, episode_length=500, seed=2), dataset="synth")
    params = {"n_estimators": 100, "n_jobs": 1}
    dist = train_distributed(store, "synth", FeatureSpec(), params, client=client, timeout=300)
    single = train(store, "synth", FeatureSpec(), params)
    r2_dist, r2_single = dist["metrics"]["holdout"]["r2"], single.metrics["holdout"]["r2"]
    assert r2_single > 0.5 and abs(r2_dist - r2_single) < 0.002


@pytest.mark.slow
def test_dask_parity_bench_reports_both_r2_and_times(tmp_path: Path) -> None:
    from rmlite.bench.scale import dask_parity

    result = dask_parity(20_000, tmp_path / "parity", n_estimators=30)
    assert result["rows"] == 20_000 and result["workers"] == 2
    assert result["r2_single"] > 0.5 and result["r2_diff"] == pytest.approx(
        abs(result["r2_dask"] - result["r2_single"])
    )
    assert result["within_tolerance"] == (result["r2_diff"] <= 0.002)
    assert min(result["single_s"], result["dask_s"], result["ingest_s"]) > 0
    assert {"export_s", "stats_s", "features_s", "fit_s"} <= set(result["dask_timings"])
