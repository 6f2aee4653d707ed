"""Gradient boosting on a Dask cluster: ``lightgbm.dask`` and ``xgboost.dask``.

The distributed twins of :func:`rmlite.models.gbm.fit_gbm`: same native parameters (from
:func:`~rmlite.models.gbm.gbm_params`), same native booster out, so a model trained on a
cluster saves and loads exactly like one trained on one machine (LightGBM's ``dask.py``
pattern: the engine does the distribution, the booster is local afterwards).

Early stopping differs between the engines. ``xgboost.dask`` evaluates a validation set
across all workers (an allreduce), so its own ``early_stopping_rounds`` is used.
``lightgbm.dask`` evaluates each worker's share of a validation set on that worker alone,
so a stopping callback could stop the workers at different rounds (and hang the
network); rmlite grows every round, then computes the validation loss of each round on
the workers (:func:`round_losses`) and keeps the trees up to the best round, exactly the
round :func:`rmlite.models.gbm._lgb_early_stopping` picks on one machine.

Only :mod:`rmlite.distributed` calls this module; it needs ``rmlite[dask]``.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np

from rmlite.models.gbm import Backend, predict_gbm

# LightGBM's network waits this many minutes for a lost peer before it gives up (its
# default is 120); rmlite watches the workers itself and reports a loss sooner.
_LGB_NETWORK_TIMEOUT_MIN = 2


def fit_gbm_dask(
    client: Any,
    backend: Backend,
    X: Any,
    y: Any,
    params: dict[str, Any],
    num_boost_round: int,
    *,
    sample_weight: Any = None,
    valid: tuple[Any, Any, Any] | None = None,
    early_stopping_rounds: int | None = None,
    watch: tuple[Any, Any] | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    """Train one booster on dask arrays ``X`` (float32, row chunks) and ``y``.

    Parameters
    ----------
    client
        The ``dask.distributed.Client`` to train on.
    backend, params, num_boost_round
        As in :func:`rmlite.models.gbm.fit_gbm`.
    sample_weight
        A dask array of row weights aligned with ``X``, or None.
    valid
        ``(X_val, y_val, w_val)`` dask arrays (``w_val`` may be None): the early-stopping
        validation rows.
    early_stopping_rounds
        Stop when the validation loss has not improved for this many rounds.
    watch
        ``(X_eval, y_eval)`` dask arrays whose loss per round is recorded (never used to
        stop): the hold-out learning curve.

    Returns
    -------
    booster, curves
        The engine's own booster (``lightgbm.Booster``, ``xgboost.Booster``), local to
        the caller, with ``best_iteration`` set when early stopping ran; and the loss per
        round of ``valid`` and ``holdout`` (mean squared error, as
        :data:`rmlite.models.gbm.CURVES` names them; no ``train`` curve on a cluster).
    """
    curves: dict[str, list[float]] = {"train": [], "valid": [], "holdout": []}
    if backend == "lightgbm":
        import lightgbm.dask as lgb_dask

        native = dict(params)
        # Each worker uses its own thread count (LightGBM's dask module sets it).
        native.pop("num_threads", None)
        seed = native.pop("seed", None)
        native.pop("verbosity", None)
        model = lgb_dask.DaskLGBMRegressor(
            client=client,
            n_estimators=num_boost_round,
            random_state=seed,
            verbose=-1,
            time_out=_LGB_NETWORK_TIMEOUT_MIN,
            **native,
        )
        model.fit(X, y, sample_weight=sample_weight)
        booster = model.booster_
        if valid is not None:
            losses = round_losses(client, booster, *valid)
            best, stop = _best_round(losses, early_stopping_rounds)
            curves["valid"] = losses[:stop].tolist()
            # As lgb.train after early stopping: the booster keeps the trees up to the best.
            import lightgbm as lgb

            booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
            booster.best_iteration = best
        if watch is not None:
            losses = round_losses(client, model.booster_, watch[0], watch[1], None)
            curves["holdout"] = losses[: len(curves["valid"]) or None].tolist()
        return booster, curves
    if backend == "xgboost":
        import xgboost.dask as xgb_dask  # XGBoost 3: the dask module must be imported explicitly

        # Without nthread, each worker uses its own thread count: a client-side count
        # would oversubscribe the workers' cores and stall every allreduce.
        native = {k: v for k, v in params.items() if k not in ("nthread", "n_jobs")}
        dtrain = xgb_dask.DaskQuantileDMatrix(client, X, y, weight=sample_weight)
        evals: list[tuple[Any, str]] = []
        if watch is not None:
            evals.append((xgb_dask.DaskDMatrix(client, watch[0], watch[1]), "holdout"))
        if valid is not None:
            # Last in the list: XGBoost stops on the last evaluation set.
            X_val, y_val, w_val = valid
            evals.append((xgb_dask.DaskDMatrix(client, X_val, y_val, weight=w_val), "valid"))
        output = xgb_dask.train(
            client,
            native,
            dtrain,
            num_boost_round,
            evals=evals,
            early_stopping_rounds=early_stopping_rounds if valid is not None else None,
            verbose_eval=False,
        )
        for name, metrics in output["history"].items():
            for metric, values in metrics.items():
                # One unit on every backend: the mean squared error (rmse squared).
                curves[name] = [float(v) ** 2 if metric == "rmse" else float(v) for v in values]
                break
        return output["booster"], curves
    raise ValueError(f"unknown gradient-boosting backend {backend!r}")


def round_losses(client: Any, booster: Any, X: Any, y: Any, w: Any) -> np.ndarray:
    """Weighted mean squared error of a LightGBM booster after each round, on dask arrays.

    Each block's predictions are accumulated one tree at a time (LightGBM folds the
    initial score into the first tree, so the sum over trees is the prediction); the
    per-round sums of squared errors and weights of the blocks are added on the client.
    """
    import dask

    xs = X.rechunk({1: -1}).to_delayed().ravel()
    ys = y.to_delayed().ravel()
    ws = [None] * len(xs) if w is None else list(w.to_delayed().ravel())
    parts = [
        dask.delayed(_block_round_sse)(booster, xb, yb, wb)
        for xb, yb, wb in zip(xs, ys, ws, strict=True)
    ]
    sums = np.sum(client.gather(client.compute(parts)), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(sums[:, 0] / sums[:, 1], dtype=np.float64)


def _block_round_sse(
    booster: Any, X: np.ndarray, y: np.ndarray, w: np.ndarray | None
) -> np.ndarray:
    """(rounds, 2): squared error and weight sums of one block after each round."""
    n_rounds = booster.num_trees()  # one tree per round for a regression objective
    out = np.zeros((n_rounds, 2), dtype=np.float64)
    if len(y) == 0:
        return out
    weight = np.ones(len(y)) if w is None else np.asarray(w, dtype=np.float64)
    pred = np.zeros(len(y), dtype=np.float64)
    target = np.asarray(y, dtype=np.float64)
    for i in range(n_rounds):
        pred += booster.predict(X, start_iteration=i, num_iteration=1)
        out[i, 0] = float(weight @ np.square(target - pred))
    out[:, 1] = weight.sum()
    return out


def _best_round(losses: np.ndarray, rounds: int | None) -> tuple[int, int]:
    """(best round counted from 1, rounds run) as early stopping on ``losses`` decides.

    The rule of :func:`rmlite.models.gbm._lgb_early_stopping`: the first lowest loss,
    stopping once ``rounds`` rounds have passed without a new one.
    """
    best, best_score = 0, math.inf
    for i, value in enumerate(losses.tolist()):
        if value < best_score:
            best, best_score = i, value
        if rounds is not None and i - best >= rounds:
            return best + 1, i + 1
    return best + 1, len(losses)


def predict_gbm_dask(backend: Backend, booster: Any, X: Any) -> Any:
    """Predictions of a booster on a dask array, computed block by block on the workers."""
    return X.map_blocks(
        partial(predict_gbm, backend, booster), drop_axis=1, dtype=np.float64, meta=np.array(())
    )
