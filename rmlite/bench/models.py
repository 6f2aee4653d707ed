"""``rmlite bench models``: RewardRegressor against the raw engines, and MLP throughput."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np


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
    compiled: bool = True,
    compiled_batches: tuple[int, ...] = (1, 16, 4096, 1_000_000),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """RewardRegressor against the raw engines with identical parameters, same run.

    Fit time ratio (target at most 1.10x), predict throughput ratio (at least 0.9x), MLP
    training samples/s and inference rows/s; CUDA rows where a GPU is present. With
    ``compiled`` (and the ``fast`` extra), compiled trees against the raw booster's
    predict at each batch size of ``compiled_batches`` (one thread each; compile time too).
    ``progress`` is told each stage as it starts; ``result["targets"]`` maps each
    printed target to whether it was met.
    """
    from rmlite.estimators.reward import RewardRegressor
    from rmlite.models.device import cuda_device_count
    from rmlite.models.gbm import gbm_params

    say = log or (lambda _m: None)
    stage = progress or (lambda _m: None)
    stage(f"building a {rows:,} x {features} matrix")
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
            stage(f"{backend} {device}: raw {backend}.train, {n_estimators} trees")
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
            stage(f"{backend} {device}: RewardRegressor.fit, {n_estimators} trees")
            our_fit, _ = _timed(partial(model.fit, X, y), repeat)
            stage(f"{backend} {device}: predict {rows:,} rows, raw and RewardRegressor")
            raw_pred, _ = _timed(partial(_raw_predict, backend, booster, X), repeat)
            our_pred, _ = _timed(partial(model.predict, X), repeat)
            key = f"{backend}_{device}"
            result[f"{key}_fit_seconds"] = our_fit
            result[f"{key}_raw_fit_seconds"] = raw_fit
            result[f"{key}_fit_ratio"] = our_fit / raw_fit
            result[f"{key}_predict_rows_per_s"] = rows / our_pred
            result[f"{key}_predict_throughput_ratio"] = raw_pred / our_pred
        stage(f"mlp {device}: {mlp_epochs} epoch(s) and predict")
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
    if compiled:
        result.update(_bench_compiled(X, y, n_estimators, compiled_batches, say, stage))
    for k, v in result.items():
        if isinstance(v, float):
            say(f"  {k:40s} {v:,.4g}")
        else:
            say(f"  {k:40s} {v:,}" if isinstance(v, int) else f"  {k:40s} {v}")
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


def _bench_compiled(
    X: np.ndarray,
    y: np.ndarray,
    n_estimators: int,
    batches: tuple[int, ...],
    say: Callable[[str], None],
    stage: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Compiled trees (Treelite + TL2cgen) against ``Booster.predict``, one thread each.

    Small batches are timed over many calls (the best of several rounds): they are what a
    vector env asks for every step. Batches beyond the matrix's rows repeat its rows.
    """
    import tempfile

    from rmlite.models.compiled import compile_booster, why_not_compiled
    from rmlite.models.gbm import gbm_params

    reason = why_not_compiled()
    if reason:
        say(f"  compiled trees skipped: {reason}")
        return {"compiled_skipped": reason}
    out: dict[str, Any] = {}
    fit_rows = min(len(X), 200_000)
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as cache:
        for backend in ("lightgbm", "xgboost"):
            params = gbm_params(
                backend, objective="regression", learning_rate=0.1, random_state=0,
                n_jobs=1, device="cpu",
            )  # fmt: skip
            stage(f"compiled {backend}: fit and compile")
            booster = _raw_fit(backend, params, X[:fit_rows], y[:fit_rows], n_estimators)
            t = time.perf_counter()
            trees = compile_booster(backend, booster, X.shape[1], cache)
            assert trees is not None
            out[f"compiled_{backend}_compile_seconds"] = time.perf_counter() - t
            for n in batches:
                stage(f"compiled {backend}: batch {n:,}")
                rows = rng.integers(0, len(X), n) if n > len(X) else np.arange(n)
                batch = np.ascontiguousarray(X[rows])
                calls = max(1, min(2000, 20_000 // n))
                raw = _per_call(partial(_raw_predict_1, backend, booster, batch), calls)
                fast = _per_call(partial(trees, batch, n_jobs=1), calls)
                diff = float(
                    np.abs(trees(batch, n_jobs=1) - _raw_predict_1(backend, booster, batch)).max()
                )
                out[f"compiled_{backend}_batch{n}_us"] = fast * 1e6
                out[f"compiled_{backend}_batch{n}_raw_us"] = raw * 1e6
                out[f"compiled_{backend}_batch{n}_speedup"] = raw / fast
                out[f"compiled_{backend}_batch{n}_max_abs_diff"] = diff
                say(
                    f"  compiled {backend} batch {n:>9,}: {fast * 1e6:11,.1f} us vs booster "
                    f"{raw * 1e6:11,.1f} us  x{raw / fast:.1f}  (max |diff| {diff:.2g})"
                )
    return out


def _per_call(fn: Callable[[], Any], calls: int, rounds: int = 3) -> float:
    """Best-of-``rounds`` mean seconds per call over ``calls`` calls."""
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t) / calls)
    return best


def _raw_predict_1(backend: str, booster: Any, X: np.ndarray) -> np.ndarray:
    """The raw booster's prediction on one thread (LightGBM's num_threads; XGBoost's nthread)."""
    if backend == "lightgbm":
        return np.asarray(booster.predict(X, num_threads=1))
    return np.asarray(booster.inplace_predict(X))
