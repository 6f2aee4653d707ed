"""Benchmarks users can run: ``rmlite bench data``.

Each stage runs in a fresh child process, so its peak memory (``ru_maxrss``) is its own,
and every speed is reported as a ratio against a baseline measured in the same run:
these machines are noisy, absolute numbers are not comparable between runs.

Stages of ``bench data`` on a synthetic MuJoCo-shaped log (17 obs, 6 actions, episodes of
1,000 steps):

1. write the log to Parquet (setup, not timed against anything);
2. DuckDB's own ``CREATE TABLE AS SELECT * FROM read_parquet(...)`` (baseline);
3. ``LogStore.ingest`` of the same file (reading, validation, de-duplication, key);
4. featurize from the store (return-to-go, next_obs, delta, one lag, standard scaling);
5. the same features with a straightforward pandas groupby implementation (reference);
6. exactness of both return-to-go implementations on a 100,000-step episode.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

BENCH_SPEC = {
    "next_obs": True,
    "delta": True,
    "lags": 1,
    "target": "return",
    "gamma": 0.99,
    "scaling": "standard",
}
"""The feature spec ``bench data`` measures (and the pandas reference reproduces)."""


def _peak_rss_bytes() -> int:
    # Linux reports ru_maxrss in KiB.
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _child(target: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run one stage in a fresh interpreter and return its result dict."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(target, args)


# ---------------------------------------------------------------------------- stages


def _stage_write(path: str, rows: int, episode_length: int) -> dict[str, Any]:
    from rmlite.testing import synthetic_log

    synthetic_log(rows=rows, episode_length=episode_length).write_parquet(path)
    return {"bytes": os.path.getsize(path)}


def _stage_duckdb(db: str, parquet: str) -> dict[str, Any]:
    from rmlite.store import duckdb_parquet_load

    t = time.perf_counter()
    n = duckdb_parquet_load(db, parquet)
    return {"seconds": time.perf_counter() - t, "rows": n, "peak_rss": _peak_rss_bytes()}


def _stage_ingest(db: str, parquet: str) -> dict[str, Any]:
    from rmlite.store import LogStore

    t = time.perf_counter()
    report = LogStore(db).ingest(parquet, dataset="bench")
    return {
        "seconds": time.perf_counter() - t,
        "rows": report.rows_added,
        "peak_rss": _peak_rss_bytes(),
    }


def _stage_features(db: str) -> dict[str, Any]:
    from rmlite.features import FeatureSpec
    from rmlite.store import LogStore

    base = _peak_rss_bytes()
    t = time.perf_counter()
    frame = LogStore(db).features("bench", FeatureSpec(**BENCH_SPEC))  # type: ignore[arg-type]
    seconds = time.perf_counter() - t
    return {
        "seconds": seconds,
        "rows": len(frame),
        "features": frame.X.shape[1],
        "matrix_bytes": frame.X.nbytes,
        "peak_rss": _peak_rss_bytes(),
        "rss_before": base,
        "checksum": float(np.float64(frame.X[:, -1].sum()) + np.float64(frame.y.sum())),
    }


def _stage_transform(db: str) -> dict[str, Any]:
    """The transform alone, from an Arrow table already in memory (like pandas' input)."""
    from rmlite.features import FeatureSpec, build_features
    from rmlite.store import LogStore

    spec = FeatureSpec(**BENCH_SPEC)  # type: ignore[arg-type]
    table = LogStore(db).read_arrow("bench", spec.columns_needed())
    times = []
    for _ in range(2):  # first call cold (fresh pages), second warm
        t = time.perf_counter()
        frame = build_features(table, spec)
        times.append(time.perf_counter() - t)
        del frame
    return {"cold": times[0], "warm": times[1]}


def _stage_pandas(db: str) -> dict[str, Any]:
    """A straightforward pandas implementation of BENCH_SPEC, from flat columns in memory."""
    import pandas as pd

    from rmlite.features import vectors
    from rmlite.store import LogStore

    table = LogStore(db).read_arrow("bench")
    obs = vectors(table.column("obs"), 17)
    act = vectors(table.column("action"), 6)
    nxt = vectors(table.column("next_obs"), 17)
    df = pd.DataFrame(
        {
            "episode_id": table.column("episode_id").to_numpy(),
            "step": table.column("step").to_numpy(),
            "reward": table.column("reward").to_numpy(),
            **{f"obs_{i}": obs[:, i] for i in range(17)},
            **{f"act_{i}": act[:, i] for i in range(6)},
            **{f"next_obs_{i}": nxt[:, i] for i in range(17)},
        }
    )
    del table, obs, act, nxt
    times = []
    for _ in range(2):  # first call cold (fresh pages), second warm
        t = time.perf_counter()
        X, y = pandas_features(df, gamma=BENCH_SPEC["gamma"])  # type: ignore[arg-type]
        times.append(time.perf_counter() - t)
        del X, y
    return {"cold": times[0], "warm": times[1], "peak_rss": _peak_rss_bytes()}


def pandas_features(df: Any, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """The reference: groupby shifts and a closed-form discounted return-to-go.

    G_t = sum_{k>=t} gamma^(k-t) r_k = (sum_{k>=t} gamma^k r_k) / gamma^t, computed with
    reversed group cumulative sums, which is how the closed form is usually written.
    """
    obs_cols = [c for c in df.columns if c.startswith("obs_")]
    act_cols = [c for c in df.columns if c.startswith("act_")]
    nxt_cols = [c for c in df.columns if c.startswith("next_obs_")]
    g = df.groupby("episode_id", sort=False)
    pos = g.cumcount()
    disc = np.power(gamma, pos.to_numpy(dtype=np.float64))
    weighted = pd_series(df["reward"].to_numpy() * disc, df.index)
    tail_sum = weighted[::-1].groupby(df["episode_id"][::-1], sort=False).cumsum()[::-1]
    ret = tail_sum.to_numpy() / disc
    lag = g[obs_cols + act_cols].shift(1)
    first = g[obs_cols + act_cols].transform("first")
    lag = lag.fillna(first)
    delta = df[nxt_cols].to_numpy() - df[obs_cols].to_numpy()
    X = np.concatenate(
        [
            df[obs_cols + act_cols + nxt_cols].to_numpy(np.float32),
            delta.astype(np.float32),
            lag.to_numpy(np.float32),
        ],
        axis=1,
    )
    y = ((ret - ret.mean()) / ret.std()).astype(np.float32)
    return np.ascontiguousarray(X), y


def pd_series(values: np.ndarray, index: Any) -> Any:
    import pandas as pd

    return pd.Series(values, index=index)


def _stage_exactness(length: int, gamma: float) -> dict[str, Any]:
    """Max relative error of both return-to-go methods on one long episode."""
    import pandas as pd

    from rmlite.features import return_to_go

    rng = np.random.default_rng(0)
    reward = rng.normal(size=length)
    episode = np.zeros(length, dtype=np.int64)
    exact = np.empty(length)
    acc = 0.0
    for t in range(length - 1, -1, -1):  # the definition, as a plain loop
        acc = reward[t] + gamma * acc
        exact[t] = acc
    ours = return_to_go(reward, episode, gamma)
    df = pd.DataFrame({"episode_id": episode, "reward": reward})
    disc = np.power(gamma, np.arange(length, dtype=np.float64))
    weighted = pd.Series(reward * disc)
    closed = weighted[::-1].groupby(df["episode_id"][::-1]).cumsum()[::-1].to_numpy() / disc
    scale = np.abs(exact).max()
    with np.errstate(invalid="ignore"):
        pandas_err = (
            np.nanmax(np.abs(closed - exact)) / scale if np.isfinite(closed).any() else np.inf
        )
    return {
        "rmlite_max_rel_error": float(np.abs(ours - exact).max() / scale),
        "pandas_max_rel_error": float(pandas_err),
        "pandas_non_finite": int((~np.isfinite(closed)).sum()),
    }


# -------------------------------------------------------------------------- driver


def bench_data(
    rows: int = 1_000_000,
    episode_length: int = 1000,
    workdir: str | None = None,
    reference: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Run the data-path benchmark; print and return its results."""
    say = log or (lambda _m: None)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="rmlite-bench-") as tmp:
        parquet = os.path.join(tmp, "log.parquet")
        say(f"bench data: {rows:,} rows, 17 obs, 6 actions, episodes of {episode_length}")
        _child(_stage_write, parquet, rows, episode_length)
        duck = _child(_stage_duckdb, os.path.join(tmp, "duckdb.duckdb"), parquet)
        store = os.path.join(tmp, "store.duckdb")
        ing = _child(_stage_ingest, store, parquet)
        feat = _child(_stage_features, store)
        trans = _child(_stage_transform, store)
        result: dict[str, Any] = {
            "rows": rows,
            "ingest_rows_per_s": rows / ing["seconds"],
            "duckdb_load_rows_per_s": rows / duck["seconds"],
            "ingest_vs_duckdb_time_ratio": ing["seconds"] / duck["seconds"],
            "ingest_seconds": ing["seconds"],
            "duckdb_seconds": duck["seconds"],
            "featurize_rows_per_s": rows / feat["seconds"],
            "featurize_seconds": feat["seconds"],
            "transform_cold_seconds": trans["cold"],
            "transform_warm_seconds": trans["warm"],
            "features": feat["features"],
            "matrix_gib": feat["matrix_bytes"] / 2**30,
            "featurize_peak_rss_gib": feat["peak_rss"] / 2**30,
            "featurize_peak_rss_over_matrix": feat["peak_rss"] / feat["matrix_bytes"],
            "ingest_peak_rss_gib": ing["peak_rss"] / 2**30,
        }
        if reference:
            try:
                pand = _child(_stage_pandas, store)
            except ImportError:
                say("pandas is not installed (pip install 'rmlite[bench]'): no reference")
            else:
                result["pandas_cold_seconds"] = pand["cold"]
                result["pandas_warm_seconds"] = pand["warm"]
                result["speedup_vs_pandas_cold"] = pand["cold"] / trans["cold"]
                result["speedup_vs_pandas_warm"] = pand["warm"] / trans["warm"]
                result["speedup_vs_pandas_end_to_end"] = pand["cold"] / feat["seconds"]
                # gamma 0.99 over 100,000 steps: gamma^t underflows past t ~ 74,000.
                result.update(_child(_stage_exactness, 100_000, 0.99))
    for key, value in result.items():
        say(f"  {key:34s} {value:,.4g}" if isinstance(value, float) else f"  {key:34s} {value:,}")
    targets = [
        ("ingest within 2x of DuckDB's own load", result["ingest_vs_duckdb_time_ratio"] <= 2.0),
        ("featurize peak RSS under 3x the matrix", result["featurize_peak_rss_over_matrix"] < 3.0),
    ]
    if "speedup_vs_pandas_warm" in result:
        targets.append(
            ("featurize >= 3x faster than pandas (warm)", result["speedup_vs_pandas_warm"] >= 3.0)
        )
        targets.append(
            ("exact where pandas' closed form is not", result["rmlite_max_rel_error"] < 1e-9)
        )
    for name, ok in targets:
        say(f"  {'PASS' if ok else 'MISS'}  {name}")
    result["targets"] = {name: ok for name, ok in targets}
    return result


if __name__ == "__main__":  # pragma: no cover
    bench_data(rows=int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)


# --------------------------------------------------------------------------- models


def _synthetic_matrix(rows: int, features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A float32 (rows, features) matrix and a nonlinear target with noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    y = (
        np.sin(X[:, 0]) + X[:, 1] * X[:, 2] - 0.5 * X[:, 3] ** 2 + 0.1 * rng.normal(size=rows)
    ).astype(np.float32)
    return X, y


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def bench_models(
    rows: int = 1_000_000,
    features: int = 40,
    n_estimators: int = 100,
    mlp_epochs: int = 1,
    repeat: int = 1,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """RewardRegressor against the raw engines with identical parameters, same run.

    Fit time ratio (target at most 1.10x), predict throughput ratio (at least 0.9x), MLP
    training samples/s and inference rows/s; CUDA rows where a GPU is present.
    """
    from rmlite.estimator import RewardRegressor
    from rmlite.models.device import cuda_device_count
    from rmlite.models.gbm import gbm_params

    say = log or (lambda _m: None)
    X, y = _synthetic_matrix(rows, features)
    say(f"bench models: {rows:,} rows x {features} float32 features, {n_estimators} trees")
    result: dict[str, Any] = {"rows": rows, "features": features, "n_estimators": n_estimators}
    devices = ["cpu"] + (["cuda"] if cuda_device_count() > 0 else [])
    for device in devices:
        for backend in ("lightgbm", "xgboost"):
            params = gbm_params(
                backend,
                objective="regression",
                learning_rate=0.1,
                random_state=0,
                n_jobs=None,
                device=device,
            )
            raw_fit, booster = _timed(
                partial(_raw_fit, backend, params, X, y, n_estimators), repeat
            )
            model = RewardRegressor(
                backend=backend,
                device=device,
                n_estimators=n_estimators,
                learning_rate=0.1,
                random_state=0,
            )
            our_fit, _ = _timed(partial(model.fit, X, y), repeat)
            raw_pred, _ = _timed(partial(_raw_predict, backend, booster, X), repeat)
            our_pred, _ = _timed(partial(model.predict, X), repeat)
            key = f"{backend}_{device}"
            result[f"{key}_fit_seconds"] = our_fit
            result[f"{key}_raw_fit_seconds"] = raw_fit
            result[f"{key}_fit_ratio"] = our_fit / raw_fit
            result[f"{key}_predict_rows_per_s"] = rows / our_pred
            result[f"{key}_predict_throughput_ratio"] = raw_pred / our_pred
        mlp = RewardRegressor(backend="mlp", device=device, max_epochs=mlp_epochs, random_state=0)
        mlp_fit, _ = _timed(partial(mlp.fit, X, y), 1)
        mlp_pred, _ = _timed(partial(mlp.predict, X), repeat)
        result[f"mlp_{device}_train_samples_per_s"] = rows * mlp_epochs / mlp_fit
        result[f"mlp_{device}_predict_rows_per_s"] = rows / mlp_pred
    if "lightgbm_cuda_fit_seconds" in result:
        for backend in ("lightgbm", "xgboost", "mlp"):
            if backend == "mlp":
                result["mlp_cuda_train_speedup"] = (
                    result["mlp_cuda_train_samples_per_s"] / result["mlp_cpu_train_samples_per_s"]
                )
            else:
                result[f"{backend}_cuda_fit_speedup"] = (
                    result[f"{backend}_cpu_fit_seconds"] / result[f"{backend}_cuda_fit_seconds"]
                )
    for k, v in result.items():
        say(f"  {k:40s} {v:,.4g}" if isinstance(v, float) else f"  {k:40s} {v:,}")
    targets = {}
    for device in devices:
        for backend in ("lightgbm", "xgboost"):
            targets[f"{backend} {device} fit within 1.10x of raw"] = (
                result[f"{backend}_{device}_fit_ratio"] <= 1.10
            )
            targets[f"{backend} {device} predict >= 0.9x raw throughput"] = (
                result[f"{backend}_{device}_predict_throughput_ratio"] >= 0.9
            )
    for name, ok in targets.items():
        say(f"  {'PASS' if ok else 'MISS'}  {name}")
    result["targets"] = targets
    return result


def _raw_fit(
    backend: str, params: dict[str, Any], X: np.ndarray, y: np.ndarray, rounds: int
) -> Any:
    if backend == "lightgbm":
        import lightgbm as lgb

        return lgb.train(params, lgb.Dataset(X, label=y), rounds)
    import xgboost as xgb

    return xgb.train(params, xgb.QuantileDMatrix(X, label=y), rounds)


def _raw_predict(backend: str, booster: Any, X: np.ndarray) -> np.ndarray:
    if backend == "lightgbm":
        return np.asarray(booster.predict(X))
    return np.asarray(booster.inplace_predict(X))
