"""``rmlite bench tune``: tuning with and without pruning; Dask training against one process."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _synthetic_episodes(
    rows: int, features: int, episode_length: int = 200, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A reward-like target with interactions and noise, rows grouped into episodes."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    y = (
        np.sin(X[:, 0]) * X[:, 1]
        - 0.5 * X[:, 2] ** 2
        + np.where(X[:, 3] > 0, X[:, 4], -X[:, 5 % features])
        + 0.3 * rng.normal(size=rows)
    ).astype(np.float32)
    return X, y, np.arange(rows) // episode_length


def _dask_fit_seconds(
    X: np.ndarray, y: np.ndarray, workers: int, n_estimators: int
) -> dict[str, float]:
    import dask.array as da

    from rmlite.distributed import DaskRewardRegressor, connect

    with connect(cluster=f"local:{workers}") as client:
        chunks = max(1, len(X) // (2 * workers))
        Xd, yd = da.from_array(X, chunks=(chunks, X.shape[1])), da.from_array(y, chunks=chunks)
        Xd, yd = client.persist(Xd), client.persist(yd)
        model = DaskRewardRegressor(
            client=client, n_estimators=n_estimators, random_state=0, timeout=1800
        )
        started = time.perf_counter()
        model.fit(Xd, yd)
        seconds = time.perf_counter() - started
    return {"dask_fit_seconds": seconds}


def bench_tune(
    rows: int = 200_000,
    features: int = 20,
    budget: float = 120.0,
    n_estimators: int = 200,
    dask_workers: int = 2,
    n_jobs: int = 1,
    log: Callable[[str], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Tuning throughput with and without pruning; Dask training against one process.

    Two tuning sessions of ``budget`` seconds each on the same synthetic episodes (3
    episode-grouped folds, LightGBM, ``n_estimators`` rounds per fold): trials finished per
    minute and the best CV R² reached (``n_jobs`` threads per trial). Then the same data trained once in this process
    and once on a ``dask_workers``-worker LocalCluster (1 thread each), fit time only.
    ``progress`` is told each stage as it starts; ``result["targets"]`` maps each printed
    target to whether it was met.
    """
    from rmlite.estimators.reward import RewardRegressor
    from rmlite.tuning import tune

    say = log or (lambda _m: None)
    stage = progress or (lambda _m: None)
    X, y, groups = _synthetic_episodes(rows, features)
    result: dict[str, Any] = {"rows": rows, "features": features, "budget_s": budget}
    say(f"tuning LightGBM on {rows:,} rows x {features} features, {budget:.0f} s per session")
    for pruning in (True, False):
        key = "pruning" if pruning else "no_pruning"
        stage(f"tuning {'with' if pruning else 'without'} pruning for {budget:.0f} s")
        started = time.perf_counter()
        tuned = tune(
            RewardRegressor(n_estimators=n_estimators, n_jobs=n_jobs, random_state=0),
            X,
            y,
            groups=groups,
            n_trials=None,
            timeout=budget,
            pruning=pruning,
            seed=0,
            refit=False,
        )
        minutes = (time.perf_counter() - started) / 60
        finished = tuned.n_complete + tuned.n_pruned + tuned.n_failed
        result[f"{key}_trials"] = finished
        result[f"{key}_pruned"] = tuned.n_pruned
        result[f"{key}_trials_per_min"] = finished / minutes
        result[f"{key}_best_cv_r2"] = tuned.best_score
        say(
            f"  {key:10s} {finished} trials ({tuned.n_pruned} pruned) = "
            f"{finished / minutes:.1f}/min, best CV R2 {tuned.best_score:.4f}"
        )
    result["pruning_speedup"] = (
        result["pruning_trials_per_min"] / result["no_pruning_trials_per_min"]
    )
    if dask_workers:
        # One process with as many threads as the cluster has workers (1 thread each).
        single = RewardRegressor(n_estimators=n_estimators, n_jobs=dask_workers, random_state=0)
        stage(f"one-process fit, then {dask_workers} Dask workers")
        started = time.perf_counter()
        single.fit(X, y)
        result["single_fit_seconds"] = time.perf_counter() - started
        result.update(_dask_fit_seconds(X, y, dask_workers, n_estimators))
        result["dask_workers"] = dask_workers
        result["dask_over_single_ratio"] = result["dask_fit_seconds"] / result["single_fit_seconds"]
        say(
            f"  fit {n_estimators} trees: one process {result['single_fit_seconds']:.2f} s, "
            f"Dask {dask_workers} workers {result['dask_fit_seconds']:.2f} s "
            f"(ratio {result['dask_over_single_ratio']:.2f}; on {os.cpu_count()} cores this "
            f"is the cost of distribution, not a speed-up)"
        )
    result["targets"] = {"pruning at least doubles trials/min": result["pruning_speedup"] >= 2.0}
    for name, ok in result["targets"].items():
        say(f"  {'PASS' if ok else 'MISS'}  {name} (x{result['pruning_speedup']:.2f})")
    return result
