"""``rmlite bench data``: ingest and features against DuckDB's own load and pandas.

Each stage runs in a fresh child process, so its peak memory (VmHWM) is its own,
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


def peak_rss_bytes() -> int:
    """This process's peak resident size: VmHWM where Linux has it. ``ru_maxrss`` carries
    the parent's peak across ``execve``, so a stage started by a big process (a spawned
    pool worker, a subprocess) would report the parent's."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


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
    from rmlite.data.store import duckdb_parquet_load

    t = time.perf_counter()
    n = duckdb_parquet_load(db, parquet)
    return {"seconds": time.perf_counter() - t, "rows": n, "peak_rss": peak_rss_bytes()}


def _stage_ingest(db: str, parquet: str) -> dict[str, Any]:
    from rmlite.data.store import LogStore

    t = time.perf_counter()
    report = LogStore(db).ingest(parquet, dataset="bench")
    return {
        "seconds": time.perf_counter() - t,
        "rows": report.rows_added,
        "peak_rss": peak_rss_bytes(),
    }


def _stage_features(db: str) -> dict[str, Any]:
    from rmlite.data.features import FeatureSpec
    from rmlite.data.store import LogStore

    base = peak_rss_bytes()
    t = time.perf_counter()
    frame = LogStore(db).features("bench", FeatureSpec(**BENCH_SPEC))  # type: ignore[arg-type]
    seconds = time.perf_counter() - t
    return {
        "seconds": seconds,
        "rows": len(frame),
        "features": frame.X.shape[1],
        "matrix_bytes": frame.X.nbytes,
        "peak_rss": peak_rss_bytes(),
        "rss_before": base,
        "checksum": float(np.float64(frame.X[:, -1].sum()) + np.float64(frame.y.sum())),
    }


def _stage_transform(db: str) -> dict[str, Any]:
    """The transform alone, from an Arrow table already in memory (like pandas' input)."""
    from rmlite.data.features import FeatureSpec, build_features
    from rmlite.data.store import LogStore

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

    from rmlite.data.features import vectors
    from rmlite.data.store import LogStore

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
    return {"cold": times[0], "warm": times[1], "peak_rss": peak_rss_bytes()}


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

    from rmlite.data.features import return_to_go

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


# ------------------------------------------------------------------- ingest at scale


# -------------------------------------------------------------------------- driver


def bench_data(
    rows: int = 1_000_000,
    episode_length: int = 1000,
    workdir: str | None = None,
    reference: bool = True,
    log: Callable[[str], None] | None = print,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the data-path benchmark; print and return its results.

    ``progress`` is told each stage as it starts; ``result["targets"]`` maps each printed
    target to whether it was met.
    """
    say = log or (lambda _m: None)
    stage = progress or (lambda _m: None)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="rmlite-bench-") as tmp:
        parquet = os.path.join(tmp, "log.parquet")
        say(f"bench data: {rows:,} rows, 17 obs, 6 actions, episodes of {episode_length}")
        stage(f"[1/6] writing a {rows:,}-row log to Parquet")
        _child(_stage_write, parquet, rows, episode_length)
        stage("[2/6] DuckDB's own load (baseline)")
        duck = _child(_stage_duckdb, os.path.join(tmp, "duckdb.duckdb"), parquet)
        store = os.path.join(tmp, "store.duckdb")
        stage("[3/6] LogStore.ingest")
        ing = _child(_stage_ingest, store, parquet)
        stage("[4/6] features from the store")
        feat = _child(_stage_features, store)
        stage("[5/6] features from memory, cold and warm")
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
            stage("[6/6] the pandas reference and return-to-go exactness")
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
