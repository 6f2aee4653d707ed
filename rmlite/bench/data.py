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
    from rmlite.data.store import duckdb_parquet_load

    t = time.perf_counter()
    n = duckdb_parquet_load(db, parquet)
    return {"seconds": time.perf_counter() - t, "rows": n, "peak_rss": _peak_rss_bytes()}


def _stage_ingest(db: str, parquet: str) -> dict[str, Any]:
    from rmlite.data.store import LogStore

    t = time.perf_counter()
    report = LogStore(db).ingest(parquet, dataset="bench")
    return {
        "seconds": time.perf_counter() - t,
        "rows": report.rows_added,
        "peak_rss": _peak_rss_bytes(),
    }


def _stage_features(db: str) -> dict[str, Any]:
    from rmlite.data.features import FeatureSpec
    from rmlite.data.store import LogStore

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
    from rmlite.estimators.reward import RewardRegressor
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

        try:
            return lgb.train(params, lgb.Dataset(X, label=y), rounds)
        except lgb.basic.LightGBMError:
            if params.get("device_type") != "cuda":
                raise
            # The pip wheel has no CUDA learner: the same OpenCL fallback as fit_gbm's.
            return lgb.train({**params, "device_type": "gpu"}, lgb.Dataset(X, label=y), rounds)
    import xgboost as xgb

    return xgb.train(params, xgb.QuantileDMatrix(X, label=y), rounds)


def _raw_predict(backend: str, booster: Any, X: np.ndarray) -> np.ndarray:
    if backend == "lightgbm":
        return np.asarray(booster.predict(X))
    return np.asarray(booster.inplace_predict(X))


# ----------------------------------------------------------------- bench wrapper


def _quickstart_model(episodes: int, seed: int) -> tuple[Any, dict[str, Any]]:
    """The quickstart reward model, trained in memory on ``episodes`` random Pendulum-v1 episodes."""
    from rmlite.data.features import FeatureSpec
    from rmlite.data.store import LogStore
    from rmlite.pipeline import (
        QUICKSTART_ENV,
        QUICKSTART_PARAMS,
        QUICKSTART_SPEC,
        _n_trees,
        train,
    )
    from rmlite.rl import collect_log

    store = LogStore(":memory:")
    store.ingest(collect_log(QUICKSTART_ENV, episodes, seed=seed), dataset="pendulum")
    spec = FeatureSpec(**QUICKSTART_SPEC)  # type: ignore[arg-type]
    result = train(store, "pendulum", spec, dict(QUICKSTART_PARAMS), seed=seed)
    return result.model, {
        "reward_model_r2": float(result.metrics["holdout"]["r2"]),
        "reward_model_trees": _n_trees(result.model),
        "reward_model_train_episodes": len(result.train_episodes),
    }


def bench_wrapper(
    num_envs: int = 16,
    steps: int = 1000,
    repeats: int = 5,
    episodes: int = 40,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Per-step time of a Pendulum-v1 vector env with and without the learned reward.

    The quickstart model (LightGBM) predicts the rewards of all ``num_envs`` sub-envs in
    one batch each step. Both envs take the same actions; the timings alternate between
    them ``repeats`` times and the medians are compared (these machines are noisy).
    Target: the wrapper adds at most 50% to the step time.
    """
    import gymnasium as gym

    from rmlite.rl.gym import LearnedRewardVector

    say = log or (lambda _m: None)
    say(f"training the quickstart reward model on {episodes} Pendulum-v1 episodes")
    model, info = _quickstart_model(episodes, seed)

    def make() -> Any:
        return gym.vector.SyncVectorEnv([lambda: gym.make("Pendulum-v1")] * num_envs)

    envs = {"plain": make(), "learned": LearnedRewardVector(make(), model)}
    actions = np.random.default_rng(seed).uniform(-2, 2, (steps, num_envs, 1)).astype(np.float32)

    def per_step(env: Any) -> float:
        env.reset(seed=seed)
        t = time.perf_counter()
        for a in actions:
            env.step(a)
        return (time.perf_counter() - t) / steps

    times: dict[str, list[float]] = {"plain": [], "learned": []}
    per_step(envs["plain"]), per_step(envs["learned"])  # warm caches and imports
    for r in range(repeats):
        for name, env in envs.items():
            times[name].append(per_step(env))
        say(
            f"  round {r + 1}/{repeats}: plain {times['plain'][-1] * 1e6:.0f} us/step, "
            f"learned reward {times['learned'][-1] * 1e6:.0f} us/step"
        )
    plain, learned = float(np.median(times["plain"])), float(np.median(times["learned"]))
    ratio = learned / plain
    result = {
        "env": "Pendulum-v1",
        "num_envs": num_envs,
        "steps": steps,
        "repeats": repeats,
        **info,
        "plain_us_per_step": plain * 1e6,
        "learned_us_per_step": learned * 1e6,
        "ratio": ratio,
        "overhead_pct": 100 * (ratio - 1),
        "predict_us_per_env_step": (learned - plain) * 1e6 / num_envs,
        "target_ratio": 1.5,
        "meets_target": ratio <= 1.5,
        "load_average_1min": os.getloadavg()[0],  # timings on a busy machine mean little
    }
    say(
        f"{num_envs} envs: {plain * 1e6:.0f} us/step plain, {learned * 1e6:.0f} us/step with "
        f"the learned reward ({info['reward_model_trees']} trees): x{ratio:.2f} "
        f"({'PASS' if ratio <= 1.5 else 'MISS'} target x1.50)"
    )
    return result


# ------------------------------------------------------------------ bench policy


def _evaluate_policy(act: Callable[[np.ndarray], Any], episodes: int, seed: int) -> float:
    """Mean true return of a policy on Pendulum-v1 over fixed evaluation seeds."""
    import gymnasium as gym

    env = gym.make("Pendulum-v1")
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + 10_000 + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def bench_policy(
    budget: int = 20_000,
    algo: str = "sac",
    episodes: int = 40,
    eval_episodes: int = 10,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Is the learned reward useful? Agents trained on it and on the true reward, compared.

    Trains the quickstart reward model on ``episodes`` random Pendulum-v1 episodes, then
    two agents (stable-baselines3 SAC or TD3, same hyper-parameters, seed and ``budget``
    env steps): one on :class:`rmlite.rl.gym.LearnedReward`, one on the true reward. Both
    are evaluated on the **true** reward. Score: 100 (R - R_random) / (R_true_agent -
    R_random); target >= 90.
    """
    try:
        import stable_baselines3 as sb3
    except ImportError as exc:
        raise ImportError(
            "rmlite bench policy trains agents with stable-baselines3: pip install "
            "'rmlite[agents]' (install torch's CPU build first)."
        ) from exc
    import gymnasium as gym

    from rmlite.rl.gym import LearnedReward

    if algo not in ("sac", "td3"):
        raise ValueError(f"--algo must be 'sac' or 'td3'. Got {algo!r} instead.")
    say = log or (lambda _m: None)
    started = time.perf_counter()
    say(f"training the quickstart reward model on {episodes} random Pendulum-v1 episodes")
    model, info = _quickstart_model(episodes, seed)
    rng = np.random.default_rng(seed)
    # Pendulum's torque bounds: [-2, 2].
    r_random = _evaluate_policy(
        lambda _o: rng.uniform(-2.0, 2.0, size=1).astype(np.float32), eval_episodes, seed
    )
    say(f"random policy: true return {r_random:.1f}")

    from rmlite.models.mlp import _torch_threads

    def agent(env: Any, name: str) -> tuple[float, float]:
        cls = sb3.SAC if algo == "sac" else sb3.TD3
        t = time.perf_counter()
        learner = cls("MlpPolicy", env, learning_rate=1e-3, seed=seed, verbose=0, device="cpu")
        # One torch thread: batches of 256 through 256x256 layers gain little from more, and
        # threads that wait on each other on a busy machine make an update many times slower.
        with _torch_threads(1):
            learner.learn(total_timesteps=budget)
        seconds = time.perf_counter() - t
        ret = _evaluate_policy(
            lambda o: learner.predict(o, deterministic=True)[0], eval_episodes, seed
        )
        say(
            f"{algo} on the {name} reward ({budget:,} steps, {seconds:.0f} s): true return {ret:.1f}"
        )
        return ret, seconds

    r_true, s_true = agent(gym.make("Pendulum-v1"), "true")
    r_learned, s_learned = agent(LearnedReward(gym.make("Pendulum-v1"), model), "learned")
    score = 100 * (r_learned - r_random) / (r_true - r_random)
    say(f"normalized score of the learned-reward agent: {score:.1f} (target >= 90)")
    return {
        "env": "Pendulum-v1",
        "algo": algo,
        "budget_steps": budget,
        "eval_episodes": eval_episodes,
        "seed": seed,
        **info,
        "return_random": r_random,
        "return_true_reward_agent": r_true,
        "return_learned_reward_agent": r_learned,
        "normalized_score": score,
        "target": 90.0,
        "meets_target": score >= 90.0,
        "seconds_true_agent": s_true,
        "seconds_learned_agent": s_learned,
        "seconds_total": time.perf_counter() - started,
    }


# ---------------------------------------------------------------------- preferences


def bench_prefs(
    pairs: int = 20_000,
    episodes: int = 200,
    segment_length: int = 25,
    noise: float = 0.1,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Training time and held-out accuracy of the three preference backends, same pairs.

    Rolls out Pendulum-v1, simulates ``pairs`` judgements with a B-Pref teacher (flip
    rate ``noise``), splits them by episode, and trains LightGBM, XGBoost and the MLP
    on the same training pairs; the true reward's accuracy on the same held-out labels is
    the ceiling.
    """
    from rmlite.data.features import FeatureSpec, build_features
    from rmlite.estimators.preference import (
        PreferencePairs,
        PreferenceRewardModel,
        pairwise_metrics,
        split_pairs,
    )
    from rmlite.evaluation.preference_metrics import return_correlations
    from rmlite.evaluation.teacher import synthetic_preferences
    from rmlite.testing import rollout

    say = log or (lambda _m: None)
    log_frame = rollout("Pendulum-v1", episodes=episodes, seed=seed)
    frame = build_features(log_frame.to_arrow(), FeatureSpec(), require_target=False)
    reward = frame.y.astype(np.float64)
    prefs = synthetic_preferences(
        frame.groups, frame.steps, reward, pairs, segment_length, noise=noise, seed=seed
    )
    all_pairs = PreferencePairs.from_segments(frame.groups, frame.steps, prefs)
    train, test = split_pairs(
        prefs["episode_a"].to_numpy(), prefs["episode_b"].to_numpy(), 0.2, seed
    )
    held = all_pairs.subset(test)
    ta, tb = held.returns(reward)
    result: dict[str, Any] = {
        "pairs": pairs,
        "train_pairs": int(train.sum()),
        "test_pairs": int(test.sum()),
        "steps": len(frame),
        "segment_length": segment_length,
        "noise": noise,
        "true_reward_accuracy": pairwise_metrics(ta - tb, held.label)["accuracy"],
    }
    say(
        f"bench prefs: Pendulum-v1, {len(frame):,} steps, {pairs:,} pairs of {segment_length} "
        f"steps ({result['train_pairs']:,} train / {result['test_pairs']:,} held out), "
        f"flip rate {noise}"
    )
    for backend in ("lightgbm", "xgboost", "mlp"):
        model = PreferenceRewardModel(backend=backend, label_noise=noise, random_state=seed)
        t = time.perf_counter()
        model.fit(frame.X, all_pairs.subset(train))
        seconds = time.perf_counter() - t
        ra, rb = held.returns(model.predict(frame.X))
        result[f"{backend}_fit_seconds"] = seconds
        result[f"{backend}_accuracy"] = pairwise_metrics(ra - rb, held.label)["accuracy"]
        result[f"{backend}_pearson"] = return_correlations(np.r_[ra, rb], np.r_[ta, tb])["pearson"]
    for k, v in result.items():
        say(f"  {k:40s} {v:,.4g}" if isinstance(v, float) else f"  {k:40s} {v:,}")
    return result


# ---------------------------------------------------------------------------- tune


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
) -> dict[str, Any]:
    """Tuning throughput with and without pruning; Dask training against one process.

    Two tuning sessions of ``budget`` seconds each on the same synthetic episodes (3
    episode-grouped folds, LightGBM, ``n_estimators`` rounds per fold): trials finished per
    minute and the best CV R² reached (``n_jobs`` threads per trial). Then the same data trained once in this process
    and once on a ``dask_workers``-worker LocalCluster (1 thread each), fit time only.
    """
    from rmlite.estimators.reward import RewardRegressor
    from rmlite.tuning import tune

    say = log or (lambda _m: None)
    X, y, groups = _synthetic_episodes(rows, features)
    result: dict[str, Any] = {"rows": rows, "features": features, "budget_s": budget}
    say(f"tuning LightGBM on {rows:,} rows x {features} features, {budget:.0f} s per session")
    for pruning in (True, False):
        key = "pruning" if pruning else "no_pruning"
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
    return result
