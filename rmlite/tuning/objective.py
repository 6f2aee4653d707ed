"""The cross-validated objective: one Optuna trial scored by episode-grouped folds.

How a trial is scored
    ``GroupKFold`` over episodes. Each fold trains on its other folds and reports its
    held-out loss as it goes: after boosting rounds (LightGBM, XGBoost) or epochs (MLP).
    For a regression target the loss is the MSE divided by the fold's target variance,
    ``1 - R²``, so trials stay comparable when the spec (``gamma``, ``next_obs``) is part
    of the search; for an event target it is the log loss. The trial's value is the mean
    over folds, lower is better.

What the pruner sees (Optuna's intermediate values)
    With a curve pruner (median, Hyperband) the intermediate values are the learning
    curve of fold 0: its held-out loss after each boosting round or epoch, at step =
    round (1-based), about ten points per trial. Every trial trains the same fold 0 first,
    so the pruner compares trials on the same episodes after the same number of rounds,
    and optuna-dashboard draws one clean curve per trial. The folds run one after another,
    so the mean over folds at a round is known only when the last fold reaches it: too
    late to prune; and Optuna keeps one value per step, so the other folds cannot report
    at the same steps (the former steps ``fold * rounds + round`` drew a saw-tooth). The
    other folds' curves are kept in the trial attribute ``fold_curves``; the trial's
    attribute ``curve_fold`` says which fold the intermediate values are.
    With the Wilcoxon pruner the intermediate values are the folds' final losses, at step
    = fold: it pairs a trial's folds with the best trial's and stops when a signed-rank
    test says it is worse; the fold order is shuffled per trial, as its docs advise.

Trial attributes
    ``fold_values`` (each fold's loss, by fold), ``fold_curves``, ``curve_fold``,
    ``cv_r2`` (regression), ``pruned_in_fold`` (pruned trials), ``error`` (failed
    trials), and ``worker``: the host, process id and heartbeat time that let a resumed
    study tell a dead worker's trial from a running one, kept in one attribute.

Why the folds are cached
    Binning the rows into a LightGBM ``Dataset`` or XGBoost ``QuantileDMatrix`` is
    10-22 % of a fit here; :class:`~rmlite.models.folds.FoldCache` builds each fold's
    once per process and set of binning parameters, and every trial reuses them.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from rmlite.exceptions import ParameterError, SchemaError
from rmlite.tuning.spaces import _suggest, split_params
from rmlite.tuning.storage import _optuna

if TYPE_CHECKING:
    import optuna


class _Data:
    """Rows to tune on: a matrix, or a dataset of the store whose spec may be searched."""

    def __init__(
        self,
        X: np.ndarray | None = None,
        y: np.ndarray | None = None,
        groups: np.ndarray | None = None,
        *,
        store_path: str | None = None,
        dataset: str | None = None,
        spec: dict[str, Any] | None = None,
        train_episodes: np.ndarray | None = None,
    ) -> None:
        self.X, self.y, self.groups = X, y, groups
        self.store_path, self.dataset, self.spec = store_path, dataset, spec
        self.train_episodes = train_episodes

    def get(self, overrides: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.X is not None:
            if overrides:
                raise ParameterError(
                    f"search-space entries {sorted(overrides)} are feature-spec fields; they "
                    f"need a dataset (tune_dataset / rmlite tune), not a matrix."
                )
            assert self.y is not None and self.groups is not None
            return self.X, self.y, self.groups
        from rmlite.data.features import FeatureSpec
        from rmlite.data.store import LogStore

        assert self.spec is not None and self.dataset is not None
        spec = FeatureSpec.from_dict({**self.spec, **overrides})
        store = LogStore(self.store_path)
        frame = store.features(self.dataset, spec, train_episodes=self.train_episodes)
        keep = np.isin(frame.groups, np.asarray(self.train_episodes))
        return frame.X[keep], frame.y[keep], frame.groups[keep]


class _Objective:
    """One trial: sample a point, cross-validate it by episode, report as it goes.

    Picklable, so worker processes and Dask workers run the same objective.
    """

    def __init__(
        self,
        data: _Data,
        base: dict[str, Any],
        objective: str,
        space: dict[str, Any],
        cv: int,
        estimator_params: list[str],
    ) -> None:
        self.data, self.base, self.objective = data, base, objective
        self.space, self.cv, self.estimator_params = space, cv, estimator_params
        self._folds: dict[Any, Any] = {}
        self._heartbeat = 0.0
        self.report_by = "round"
        """``"round"``: fold 0's learning curve (curve pruners); ``"fold"``: each fold's loss."""

    # A fold cache per spec variant (and per process: rebuilt after pickling).
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_folds": {}}

    def rows(self, spec_overrides: Mapping[str, Any]) -> Any:
        key = tuple(sorted(spec_overrides.items()))
        if key not in self._folds:
            X, y, groups = self.data.get(spec_overrides)
            if len(np.unique(groups)) < self.cv:
                raise SchemaError(
                    f"The 'cv' parameter asks for {self.cv} episode-grouped folds but the "
                    f"training rows hold {len(np.unique(groups))} episodes."
                )
            self._folds[key] = (X, y, groups, {})
        return self._folds[key]

    def __call__(self, trial: optuna.Trial) -> float:
        optuna = _optuna()
        self._beat(trial)
        values = _suggest(trial, self.space)
        params, spec_overrides = split_params(self.base, values, self.estimator_params)
        try:
            losses, r2 = self._cross_validate(trial, params, spec_overrides)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            # Recorded on the trial, which Optuna marks FAILED; the study goes on.
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
            raise
        if r2 is not None:
            trial.set_user_attr("cv_r2", r2)
        return float(np.mean(losses))

    def _beat(self, trial: optuna.Trial) -> None:
        # Who runs the trial, and when it last said so: read by recover_dead_trials.
        self._heartbeat = time.monotonic()
        trial.set_user_attr(
            "worker", {"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time()}
        )

    def _report(self, trial: optuna.Trial, step: int, value: float, ask: bool = True) -> bool:
        if not math.isfinite(value):
            return False
        trial.report(value, step)
        return ask and bool(trial.should_prune())

    def _cross_validate(
        self, trial: optuna.Trial, params: dict[str, Any], spec_overrides: dict[str, Any]
    ) -> tuple[list[float], float | None]:
        optuna = _optuna()
        from rmlite.estimators.reward import _LEARNING_RATE
        from rmlite.models.folds import episode_folds

        X, y, groups, caches = self.rows(spec_overrides)
        backend = params.get("backend", "lightgbm")
        regression = self.objective == "regression"
        rounds = int(params.get("max_epochs" if backend == "mlp" else "n_estimators", 100))
        # About ten reports per fold: each one is a write to the storage (a commit in SQLite).
        every = 1 if backend == "mlp" else max(1, rounds // 10)
        lr = params.get("learning_rate") or _LEARNING_RATE[backend]
        by_fold = self.report_by == "fold"
        folds = episode_folds(groups, self.cv)
        order = list(range(len(folds)))
        if by_fold:  # Wilcoxon pairs folds by step: any order works, and a shuffled one is fairer
            order = [int(k) for k in np.random.default_rng(trial.number).permutation(order)]
        trial.set_user_attr("curve_fold", None if by_fold else order[0])
        values: dict[int, float] = {}
        curves: dict[str, list[list[float]]] = {}
        pruned = False
        for k in order:
            fit_idx, val_idx = folds[k]
            scale = float(np.var(y[val_idx])) if regression else 1.0
            scale = scale if scale > 0 else 1.0
            curve_k = curves.setdefault(str(k), [])

            def hook(i: int, loss: float | None, k: int = k, scale: float = scale,
                     curve_k: list[list[float]] = curve_k) -> bool:  # fmt: skip
                nonlocal pruned
                if loss is None or ((i + 1) % every and i + 1 != rounds):
                    return False
                curve_k.append([i + 1, loss / scale])
                if time.monotonic() - self._heartbeat > 15.0:
                    self._beat(trial)
                if by_fold or k != order[0]:
                    return False
                pruned = self._report(trial, i + 1, loss / scale)  # step = round, 1-based
                return pruned

            if backend == "mlp":
                curve = self._fit_mlp(params, X, y, fit_idx, val_idx, float(lr), hook)
            else:
                from rmlite.models.folds import FoldCache, fit_fold
                from rmlite.models.gbm import gbm_params

                if "cache" not in caches:
                    caches["cache"] = FoldCache(backend, X, y, groups, self.cv)
                native = gbm_params(
                    backend,
                    objective=self.objective,
                    learning_rate=float(lr),
                    random_state=params.get("random_state"),
                    n_jobs=params.get("n_jobs"),
                    device="cpu" if params.get("device", "cpu") == "cpu" else "cuda",
                    extra=params.get("backend_params"),
                )
                curve = fit_fold(caches["cache"], k, native, rounds, hook)
            if not pruned:
                values[k] = float(curve[-1]) / scale
                # step = fold; after the last fold the trial is done: report, do not prune
                pruned = by_fold and self._report(trial, k, values[k], ask=k != order[-1])
            trial.set_user_attr("fold_curves", curves)
            trial.set_user_attr("fold_values", [values.get(j) for j in range(len(folds))])
            if pruned:
                trial.set_user_attr("pruned_in_fold", k)
                raise optuna.TrialPruned(f"pruned in fold {k}")
        losses = [values[k] for k in range(len(folds))]
        r2 = float(1.0 - np.mean(losses)) if regression else None
        return losses, r2

    def _fit_mlp(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        fit_idx: np.ndarray,
        val_idx: np.ndarray,
        lr: float,
        hook: Callable[[int, float | None], bool],
    ) -> list[float]:
        from rmlite.models.mlp import MLPConfig, fit_mlp

        n_jobs = params.get("n_jobs")
        config = MLPConfig(
            hidden_sizes=tuple(int(h) for h in params.get("hidden_sizes", (256, 256))),
            activation=params.get("activation", "relu"),
            dropout=float(params.get("dropout", 0.0)),
            weight_decay=float(params.get("weight_decay", 1e-4)),
            learning_rate=lr,
            batch_size=int(params.get("batch_size", 256)),
            max_epochs=int(params.get("max_epochs", 100)),
            early_stopping_rounds=None,  # the held-out fold scores the trial: no selection on it
            loss="bce" if self.objective == "binary" else "mse",
            device="cpu" if params.get("device", "cpu") == "cpu" else "cuda",
            random_state=params.get("random_state"),
            n_threads=os.cpu_count() if n_jobs == -1 else n_jobs,
            **(params.get("backend_params") or {}),
        )
        model = fit_mlp(
            X[fit_idx],
            y[fit_idx],
            config,
            X_val=X[val_idx],
            y_val=y[val_idx],
            on_epoch=lambda epoch, _train, val: hook(epoch, val),
        )
        return list(model.history["val_loss"])
