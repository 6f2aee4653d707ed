"""Cross-validation folds whose engine datasets are built once and reused across trials.

Binning the training rows (LightGBM's ``Dataset``, XGBoost's ``QuantileDMatrix``) is
10-22 % of a fit on reward-model data, and it depends only on the rows and the binning
parameters, not on the learning rate or the tree shape. A tuning session fits the same
folds dozens of times, so :class:`FoldCache` builds each fold's datasets once per set of
binning parameters and every trial trains on them.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(600, 3)).astype(np.float32)
>>> y = (X[:, 0] * 2.0).astype(np.float32)
>>> groups = np.repeat(np.arange(6), 100)
>>> cache = FoldCache("lightgbm", X, y, groups, n_folds=3)
>>> params = {"objective": "regression", "metric": "l2", "learning_rate": 0.2,
...           "num_threads": 1, "seed": 0, "verbosity": -1}
>>> for num_leaves in (7, 15, 31):   # three trials
...     losses = [fit_fold(cache, k, {**params, "num_leaves": num_leaves}, 20)[-1]
...               for k in range(3)]
>>> cache.constructions   # one per fold, however many trials ran
3
>>> max(losses) < 0.1 * float(y.var())
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from rmlite._typing import Float32Array

Backend = Literal["lightgbm", "xgboost"]

# Parameters fixed when a dataset is binned: a trial that changes one needs new datasets.
BINNING_PARAMS: dict[str, tuple[str, ...]] = {
    "lightgbm": ("max_bin", "min_data_in_bin", "bin_construct_sample_cnt", "use_missing"),
    "xgboost": ("max_bin",),
}

OnIteration = Callable[[int, float], bool | None]
"""``on_iteration(iteration, validation_loss)``; returning True stops the fit (pruning)."""


def episode_folds(groups: np.ndarray, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``GroupKFold`` row indices: each episode is in exactly one test fold."""
    from sklearn.model_selection import GroupKFold

    return list(GroupKFold(n_folds).split(np.zeros(len(groups)), groups=groups))


class FoldCache:
    """Episode-grouped folds of one matrix, with engine datasets built on first use.

    Parameters
    ----------
    backend
        ``"lightgbm"`` or ``"xgboost"``.
    X, y, groups
        Rows, targets and episode ids; folds never split an episode.
    n_folds
        Number of ``GroupKFold`` folds.
    sample_weight
        Optional weight per row.
    """

    total_constructions = 0
    """Datasets built by every cache of this process (tests check that trials reuse them)."""

    def __init__(
        self,
        backend: Backend,
        X: Float32Array,
        y: np.ndarray,
        groups: np.ndarray,
        n_folds: int,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        self.backend = backend
        self.X, self.y, self.w = X, y, sample_weight
        self.folds = episode_folds(groups, n_folds)
        self.constructions = 0
        """How many fold datasets were built (tests check that trials reuse them)."""
        self._built: dict[tuple[int, tuple[Any, ...]], tuple[Any, Any]] = {}

    def datasets(self, fold: int, params: dict[str, Any]) -> tuple[Any, Any]:
        """The (train, validation) engine datasets of a fold for these binning parameters."""
        binning = tuple((k, params[k]) for k in BINNING_PARAMS[self.backend] if k in params)
        key = (fold, binning)
        if key not in self._built:
            fit_idx, val_idx = self.folds[fold]
            self._built[key] = self._build(fit_idx, val_idx, dict(binning), params)
            self.constructions += 1
            FoldCache.total_constructions += 1
        return self._built[key]

    def _build(
        self,
        fit_idx: np.ndarray,
        val_idx: np.ndarray,
        binning: dict[str, Any],
        params: dict[str, Any],
    ) -> tuple[Any, Any]:
        w_fit = None if self.w is None else self.w[fit_idx]
        w_val = None if self.w is None else self.w[val_idx]
        X_fit, X_val = self.X[fit_idx], self.X[val_idx]
        if self.backend == "lightgbm":
            import lightgbm as lgb

            # feature_pre_filter=False: otherwise LightGBM refuses a later trial with a
            # smaller min_child_samples than the first one on the same Dataset.
            ds_params = {
                **binning,
                "feature_pre_filter": False,
                "verbosity": -1,
                "seed": params.get("seed", 0),
                "num_threads": params.get("num_threads", 0),
            }
            train = lgb.Dataset(
                X_fit, label=self.y[fit_idx], weight=w_fit, params=ds_params, free_raw_data=True
            ).construct()
            valid = lgb.Dataset(
                X_val, label=self.y[val_idx], weight=w_val, params=ds_params, reference=train
            ).construct()
            return train, valid
        import xgboost as xgb

        nthread = params.get("nthread")
        train_x = xgb.QuantileDMatrix(
            X_fit, label=self.y[fit_idx], weight=w_fit, nthread=nthread, **binning
        )
        valid_x = xgb.QuantileDMatrix(
            X_val, label=self.y[val_idx], weight=w_val, ref=train_x, nthread=nthread, **binning
        )
        return train_x, valid_x


def fit_fold(
    cache: FoldCache,
    fold: int,
    params: dict[str, Any],
    num_boost_round: int,
    on_iteration: OnIteration | None = None,
) -> list[float]:
    """Train on one fold's cached datasets; return the validation loss per round.

    The loss is the first metric of ``params`` on the fold's held-out episodes (LightGBM
    ``l2`` or ``binary_logloss``; XGBoost ``rmse`` squared to an MSE, or ``logloss``).
    """
    train, valid = cache.datasets(fold, params)
    curve: list[float] = []
    if cache.backend == "lightgbm":
        import lightgbm as lgb

        def lgb_hook(env: Any) -> None:
            value = float(env.evaluation_result_list[0][2])
            curve.append(value)
            if on_iteration is not None and on_iteration(env.iteration, value):
                raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

        lgb.train(
            {**params, "feature_pre_filter": False},
            train,
            num_boost_round,
            valid_sets=[valid],
            valid_names=["valid"],
            callbacks=[lgb_hook],
        )
        return curve
    import xgboost as xgb

    squared = params.get("eval_metric") == "rmse"

    class Hook(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            # xgb.train names the metric 'valid-rmse' here; the sklearn API would say
            # 'validation_0-rmse' (Optuna's XGBoostPruningCallback needs the exact key).
            value = float(next(iter(evals_log["valid"].values()))[-1])
            value = value * value if squared else value
            curve.append(value)
            return bool(on_iteration is not None and on_iteration(epoch, value))

    xgb.train(
        params,
        train,
        num_boost_round,
        evals=[(valid, "valid")],
        verbose_eval=False,
        callbacks=[Hook()],
    )
    return curve
