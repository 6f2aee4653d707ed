"""Gradient boosting on a Dask cluster: ``lightgbm.dask`` and ``xgboost.dask``.

The distributed twins of :func:`rmlite.models.gbm.fit_gbm`: same native parameters (from
:func:`~rmlite.models.gbm.gbm_params`), same native booster out, so a model trained on a
cluster saves and loads exactly like one trained on one machine (LightGBM's ``dask.py``
pattern: the engine does the distribution, the booster is local afterwards).

Only :mod:`rmlite.distributed` calls this module; it needs ``rmlite[dask]``.
"""

from __future__ import annotations

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
) -> Any:
    """Train one booster on dask arrays ``X`` (float32, row chunks) and ``y``; return it.

    The booster is the engine's own (``lightgbm.Booster``, ``xgboost.Booster``), local to
    the caller once training ends.
    """
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
        model.fit(X, y)
        return model.booster_
    if backend == "xgboost":
        import xgboost.dask as xgb_dask  # XGBoost 3: the dask module must be imported explicitly

        # Without nthread, each worker uses its own thread count: a client-side count
        # would oversubscribe the workers' cores and stall every allreduce.
        native = {k: v for k, v in params.items() if k not in ("nthread", "n_jobs")}
        dtrain = xgb_dask.DaskQuantileDMatrix(client, X, y)
        output = xgb_dask.train(client, native, dtrain, num_boost_round, evals=[])
        return output["booster"]
    raise ValueError(f"unknown gradient-boosting backend {backend!r}")


def predict_gbm_dask(backend: Backend, booster: Any, X: Any) -> Any:
    """Predictions of a booster on a dask array, computed block by block on the workers."""
    return X.map_blocks(
        partial(predict_gbm, backend, booster), drop_axis=1, dtype=np.float64, meta=np.array(())
    )
