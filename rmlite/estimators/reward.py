"""Reward models as scikit-learn estimators: LightGBM, XGBoost or a torch MLP.

The estimators validate, split for early stopping (by episode when ``groups`` are given),
resample episodes for ensembles, and delegate the learning to the engine functions in
:mod:`rmlite.models`. They work in ``Pipeline``, ``cross_validate`` with ``GroupKFold``,
``GridSearchCV`` and ``clone``; saved models load without unpickling.

Examples
--------
>>> import numpy as np
>>> from rmlite.estimators.reward import RewardRegressor
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(2000, 4)).astype(np.float32)
>>> y = X[:, 0] - 0.5 * X[:, 1] ** 2
>>> model = RewardRegressor(backend="lightgbm", n_estimators=200, random_state=0).fit(X, y)
>>> round(model.score(X, y), 2) >= 0.98
True
>>> mean, std = RewardRegressor(n_members=3, n_estimators=50, random_state=0).fit(X, y).predict(X[:2], return_std=True)
>>> mean.shape, bool((std >= 0).all())
((2,), True)
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import (
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import (
    _check_n_features,
    _check_sample_weight,
    _get_feature_names,
    check_array,
    check_is_fitted,
    validate_data,
)

from rmlite._typing import PathLike
from rmlite.data.matrix_file import MatrixFile
from rmlite.estimators._calibration import IDENTITY, apply_platt, logit, platt_scaling
from rmlite.estimators._folder import _jsonable, restore_fitted, write_model_folder
from rmlite.estimators._params import PARAMETER_CONSTRAINTS
from rmlite.exceptions import ParameterError, RmliteError, SchemaError
from rmlite.models.device import fit_threads, resolve_device

_PLATT_MIN_CLASS = 10
"""Fewest validation events (and non-events) that Platt scaling is fitted on."""

_LEARNING_RATE = {"lightgbm": 0.05, "xgboost": 0.05, "mlp": 1e-3}
_CURVE_METRIC = {"regression": "l2", "binary": "binary_logloss"}


class _RewardModel(BaseEstimator):
    """Shared machinery of :class:`RewardRegressor` and :class:`RewardClassifier`."""

    _objective = "regression"

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **PARAMETER_CONSTRAINTS,
        "importance_type": [StrOptions({"gain", "split"})],
    }

    def __init__(
        self,
        backend: str = "lightgbm",
        device: str = "cpu",
        *,
        n_estimators: int = 500,
        max_epochs: int = 100,
        learning_rate: float | None = None,
        early_stopping_rounds: int | None = None,
        validation_fraction: float = 0.1,
        n_members: int = 1,
        random_state: int | None = None,
        n_jobs: int | None = None,
        hidden_sizes: tuple[int, ...] = (256, 256),
        activation: str = "relu",
        dropout: float = 0.0,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        backend_params: dict[str, Any] | None = None,
        importance_type: str = "gain",
    ) -> None:
        self.backend = backend
        self.device = device
        self.n_estimators = n_estimators
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.n_members = n_members
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.backend_params = backend_params
        self.importance_type = importance_type

    # ------------------------------------------------------------------ tags

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.backend != "mlp"
        tags.non_deterministic = self.random_state is None and self.backend == "mlp"
        return tags

    # ------------------------------------------------------------------- fit

    def check_params(self) -> None:
        """Validate every parameter (backend-native ones too) without fitting.

        Raises :class:`~rmlite.exceptions.ParameterError` naming the parameter, so a bad
        value fails before any data is read.
        """
        try:
            # Called directly rather than through _validate_params, which a global
            # scikit-learn setting (skip_parameter_validation) can switch off.
            validate_parameter_constraints(
                self._parameter_constraints,
                self.get_params(deep=False),
                caller_name=type(self).__name__,
            )
            self._check_backend_params()
            resolve_device(self.device)
        except RmliteError:
            raise  # already ours (a DeviceError, say)
        except ValueError as exc:
            raise ParameterError(str(exc)) from exc

    def _fit(
        self,
        X: Any,
        y: Any,
        groups: Any = None,
        sample_weight: Any = None,
        eval_set: tuple[Any, Any] | None = None,
    ) -> _RewardModel:
        self.check_params()
        if isinstance(X, MatrixFile):
            # A matrix on disk (the streaming path): checked a chunk at a time by the
            # engines as they read it; here only its shape and the targets.
            y = self._check_streamed(X, y)
        else:
            X, y = validate_data(
                self,
                X,
                y,
                dtype=np.float32,
                order="C",
                ensure_all_finite="allow-nan" if self.backend != "mlp" else True,
                y_numeric=self._objective == "regression",
            )
        y = self._encode_target(y)
        weight = None
        if sample_weight is not None:
            weight = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
            if not weight.any():
                raise ValueError("sample_weight is zero for every sample: nothing to learn from.")
        groups_arr = None if groups is None else np.asarray(groups)
        if groups_arr is not None and len(groups_arr) != len(y):
            raise SchemaError(
                f"groups has {len(groups_arr)} entries but X has {len(y)} rows; pass one episode "
                f"id per row."
            )
        watch = self._check_eval_set(eval_set, X.shape[1])
        self.device_ = resolve_device(self.device)
        rng = np.random.default_rng(
            self.random_state if isinstance(self.random_state, int | np.integer) else None
        )
        started = time.perf_counter()
        self.members_: list[Any] = []
        self.curves_: list[dict[str, list[float]]] = []
        for member in range(self.n_members):
            # Without a split or a resample every row is fitted in order: no index to hold
            # while the engine fits, 8 bytes a row (190 MB at 24M training rows).
            fit_idx: np.ndarray | None = None
            val_idx: np.ndarray | None = None
            if self._splits_rows():
                # Validation episodes first, so that resampling never puts them in training.
                fit_idx, val_idx = self._validation_split(rng, np.arange(len(y)), groups_arr)
                fit_idx = self._member_rows(rng, fit_idx, groups_arr)
            model, curves = self._fit_member(X, y, weight, fit_idx, val_idx, member, watch)
            self.members_.append(model)
            self.curves_.append(curves)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _check_streamed(self, X: MatrixFile, y: Any) -> np.ndarray:
        """Shape and target checks of a :class:`MatrixFile` X; sets ``n_features_in_``."""
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise SchemaError(
                f"y must hold one target per row of X ({len(X):,} rows); got shape {y.shape}."
            )
        if len(X) < 2 or X.n_cols < 1:
            raise SchemaError(f"X ({X!r}) must have at least 2 rows and 1 column.")
        if self._objective == "regression" and not np.isfinite(y).all():
            raise SchemaError("y holds NaN or infinite targets; drop those rows.")
        self.n_features_in_ = X.n_cols
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return y

    def _check_eval_set(
        self, eval_set: tuple[Any, Any] | None, n_features: int
    ) -> tuple[Any, np.ndarray] | None:
        """Validate ``eval_set=(X, y)``: rows watched for a learning curve, never fitted."""
        if eval_set is None:
            return None
        if not isinstance(eval_set, tuple | list) or len(eval_set) != 2:
            raise ParameterError("eval_set must be a pair (X_holdout, y_holdout).")
        X_eval = (
            eval_set[0]
            if isinstance(eval_set[0], MatrixFile)
            else np.ascontiguousarray(np.asarray(eval_set[0], dtype=np.float32))
        )
        y_eval = self._encode_eval_target(np.asarray(eval_set[1]).ravel())
        if X_eval.ndim != 2 or X_eval.shape[1] != n_features or len(X_eval) != len(y_eval):
            raise ParameterError(
                f"eval_set: X must have {n_features} columns like X, and one target per row; "
                f"got X of shape {X_eval.shape} and {len(y_eval)} targets."
            )
        return X_eval, y_eval.astype(np.float64)

    def _encode_eval_target(self, y: np.ndarray) -> np.ndarray:
        return y.astype(np.float64)

    def _check_backend_params(self) -> None:
        if self.backend_params and self.backend != "mlp":
            from rmlite.models.gbm import check_backend_params, check_backend_values

            check_backend_params(self.backend, list(self.backend_params))  # type: ignore[arg-type]
            check_backend_values(self.backend, self.backend_params)  # type: ignore[arg-type]
        if self.backend_params and self.backend == "mlp":
            from rmlite.models.mlp import MLPConfig

            known = set(MLPConfig.__dataclass_fields__)
            unknown = sorted(set(self.backend_params) - known)
            if unknown:
                hint = _did_you_mean(unknown[0], sorted(known))
                raise ValueError(
                    f"backend_params {unknown} are not parameters of the MLP backend{hint}; "
                    f"known: {sorted(known)}."
                )

    def _encode_target(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float32)

    def _member_rows(
        self, rng: np.random.Generator, rows: np.ndarray, groups: np.ndarray | None
    ) -> np.ndarray:
        """Rows of one ensemble member: all ``rows``, or a bootstrap resample of their episodes."""
        if self.n_members == 1:
            return rows
        if groups is None:
            return rows[rng.integers(0, len(rows), size=len(rows))]
        episodes, inverse = np.unique(groups[rows], return_inverse=True)
        drawn = rng.integers(0, len(episodes), size=len(episodes))
        counts = np.bincount(drawn, minlength=len(episodes))
        # Each row repeats as often as its episode was drawn: episodes stay whole.
        return np.repeat(rows, counts[inverse])

    def _validation_split(
        self, rng: np.random.Generator, rows: np.ndarray, groups: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Hold out a fraction of the episodes (rows without groups) for early stopping
        (and, for weighted classifiers, calibration)."""
        if not self._uses_validation():
            return rows, None
        if groups is not None:
            episodes = np.unique(groups[rows])
            if len(episodes) < 2:
                raise SchemaError(
                    f"{self._validation_purpose()} needs a validation split of whole episodes, "
                    f"but groups holds a single episode; pass more episodes or set "
                    f"early_stopping_rounds=None."
                )
            n_val = max(1, round(len(episodes) * self.validation_fraction))
            val_episodes = rng.choice(episodes, size=n_val, replace=False)
            in_val = np.isin(groups[rows], val_episodes)
        else:
            in_val = rng.random(len(rows)) < self.validation_fraction
            if in_val.all() or not in_val.any():
                in_val[: max(1, len(rows) // 10)] = True
                in_val[-1] = False
        return rows[~in_val], rows[in_val]

    def _uses_validation(self) -> bool:
        """Whether fit holds validation episodes out of each member's training rows."""
        return self.early_stopping_rounds is not None

    def _splits_rows(self) -> bool:
        """Whether fit splits or resamples the rows (by episode, given groups): a validation
        split or an ensemble's bootstrap; otherwise it fits every row, and groups go unused."""
        return self._uses_validation() or self.n_members > 1

    def _validation_purpose(self) -> str:
        return "early stopping"

    def _fit_member(
        self,
        X: np.ndarray,
        y: np.ndarray,
        weight: np.ndarray | None,
        fit_idx: np.ndarray | None,
        val_idx: np.ndarray | None,
        member: int,
        watch: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[Any, dict[str, list[float]]]:
        lr = self.learning_rate if self.learning_rate is not None else _LEARNING_RATE[self.backend]
        seed = None if self.random_state is None else int(self.random_state) + member
        if (
            isinstance(X, MatrixFile)
            and fit_idx is not None
            and bool(np.any(fit_idx[1:] < fit_idx[:-1]))
        ):
            # A view of a file reads its rows in order; a resample's rows are a multiset.
            fit_idx = np.sort(fit_idx)
        X_fit = X if fit_idx is None else X[fit_idx]
        y_fit = y if fit_idx is None else y[fit_idx]
        w_fit = weight if weight is None or fit_idx is None else weight[fit_idx]
        X_val = y_val = w_val = None
        if val_idx is not None:
            X_val, y_val = X[val_idx], y[val_idx]
            w_val = None if weight is None else weight[val_idx]
        if self.backend == "mlp":
            from rmlite.models.mlp import MLPConfig, fit_mlp

            config = MLPConfig(
                hidden_sizes=tuple(int(h) for h in self.hidden_sizes),
                activation=self.activation,
                dropout=float(self.dropout),
                weight_decay=float(self.weight_decay),
                learning_rate=float(lr),
                batch_size=int(self.batch_size),
                max_epochs=int(self.max_epochs),
                early_stopping_rounds=self.early_stopping_rounds,
                loss="bce" if self._objective == "binary" else "mse",
                device=self.device_,
                random_state=seed,
                n_threads=fit_threads(self.n_jobs, len(X_fit)),
                **(self.backend_params or {}),
            )
            model = fit_mlp(
                X_fit,
                y_fit,
                config,
                X_val=X_val,
                y_val=y_val,
                sample_weight=w_fit,
                X_eval=None if watch is None else watch[0],
                y_eval=None if watch is None else watch[1],
            )
            return model, {
                "train": list(model.history["train_loss"]),
                "valid": list(model.history["val_loss"]),
                "holdout": list(model.history.get("eval_loss", [])),
            }
        from rmlite.models.gbm import fit_gbm, gbm_params

        params = gbm_params(
            self.backend,  # type: ignore[arg-type]
            objective=self._objective,
            learning_rate=float(lr),
            random_state=seed,
            n_jobs=self.n_jobs,
            device=self.device_,
            extra=self._gbm_extra(w_fit, y_fit),
            rows=len(X_fit),
        )
        return fit_gbm(
            self.backend,  # type: ignore[arg-type]
            X_fit,
            y_fit,
            params,
            int(self.n_estimators),
            sample_weight=w_fit,
            X_val=X_val,
            y_val=y_val,
            w_val=w_val,
            early_stopping_rounds=self.early_stopping_rounds,
            record_train=val_idx is not None or watch is not None,
            X_eval=None if watch is None else watch[0],
            y_eval=None if watch is None else watch[1],
            native=self.backend_params,
        )

    def _gbm_extra(self, weight: np.ndarray | None, y: np.ndarray) -> dict[str, Any]:
        return dict(self.backend_params or {})

    # --------------------------------------------------------------- predict

    def _member_predictions(self, X: Any, check_input: bool = True) -> np.ndarray:
        """(n_members, n_rows) raw-scale predictions (probabilities for events).

        ``check_input=False`` skips scikit-learn's validation (about 0.1 ms a call, more
        than predicting a small batch) for a C-contiguous float32 matrix of the fitted
        width that rmlite built itself, as the per-step Gymnasium wrappers do.
        """
        check_is_fitted(self, "members_")
        if isinstance(X, MatrixFile):
            if X.n_cols != self.n_features_in_:
                raise SchemaError(
                    f"X has {X.n_cols} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input."
                )
            # A chunk at a time: the predictions (a float64 per row and member) are all
            # that is held whole.
            parts = [
                self._member_predictions(chunk, check_input=False) for chunk in X.iter_chunks()
            ]
            return np.concatenate(parts, axis=1) if parts else np.empty((len(self.members_), 0))
        if check_input:
            X = self._check_predict_input(X)
        out = np.empty((len(self.members_), X.shape[0]), dtype=np.float64)
        compiled = getattr(self, "_compiled", None)
        if (
            compiled is not None
            and compiled[0] is self.members_  # not refitted since
            and X.shape[0] <= compiled[1][0].max_rows  # where compiled trees win
        ):
            for i, trees in enumerate(compiled[1]):
                out[i] = trees(X, n_jobs=self.n_jobs)
            return out
        for i, model in enumerate(self.members_):
            if self.backend == "mlp":
                out[i] = model.predict(X)
            else:
                from rmlite.models.gbm import predict_gbm

                out[i] = predict_gbm(self.backend, model, X, n_jobs=self.n_jobs)  # type: ignore[arg-type]
        return out

    def use_compiled(self, cache_dir: PathLike | None = None, *, only_cached: bool = False) -> bool:
        """Predict through compiled trees (Treelite + TL2cgen) from now on; True if it could.

        Tree backends only; results equal the boosters' within float32 rounding. The
        libraries are cached by content in ``cache_dir`` (rmlite uses ``<model>/.compiled``
        for saved models) or the user cache (:func:`rmlite.models.compiled.user_cache_dir`).
        Compiling takes seconds once per model; ``only_cached`` never compiles. Without
        the compiler (``pip install 'rmlite[fast]'``) it logs one warning and returns False:
        predictions keep using the boosters. Refitting drops the compiled trees.
        """
        check_is_fitted(self, "members_")
        if self.backend == "mlp":
            return False
        from rmlite.models.compiled import compile_members

        trees = compile_members(
            self.backend, self.members_, self.n_features_in_, cache_dir, only_cached=only_cached
        )
        if trees is None:
            return False
        self._compiled = (self.members_, trees)
        return True

    def _check_predict_input(self, X: Any) -> np.ndarray:
        """Validate X for predicting: the fitted width, float32, C order; names if it has any."""
        finite: Any = "allow-nan" if self.backend != "mlp" else True
        if (
            getattr(self, "feature_spec_", None) is not None
            and getattr(self, "feature_names_in_", None) is not None
            and _get_feature_names(X) is None
        ):
            # A model trained by rmlite train is named after its FeatureSpec, and applied to
            # the matrix that spec builds (model_frame): always in the fitted order, so a
            # plain matrix is not the "fitted with feature names" mistake sklearn warns of.
            X = check_array(X, dtype=np.float32, order="C", ensure_all_finite=finite)
            _check_n_features(self, X, reset=False)
            return np.asarray(X)
        self._check_columns(X)
        return np.asarray(
            validate_data(
                self, X, reset=False, dtype=np.float32, order="C", ensure_all_finite=finite
            )
        )

    # ------------------------------------------------------------ explaining

    @property
    def feature_importances_(self) -> np.ndarray:
        """Per-feature importance of the tree backends, the mean over ensemble members.

        ``importance_type="gain"`` (the default): the total loss reduction of the splits on
        each feature (LightGBM ``gain``, XGBoost ``total_gain``), in the training loss's
        units; ``"split"``: how many splits use it. Not normalized (as LightGBM's), only the
        trees kept by early stopping count. The MLP has none (an AttributeError, as for
        scikit-learn estimators without it): use ``sklearn.inspection.permutation_importance``.
        """
        check_is_fitted(self, "members_")
        if self.backend == "mlp":
            raise AttributeError(
                f"{type(self).__name__}(backend='mlp') has no feature_importances_ (it has no "
                f"trees); use sklearn.inspection.permutation_importance."
            )
        from rmlite.models.gbm import gbm_importance

        per_member = [
            gbm_importance(self.backend, booster, self.n_features_in_, self.importance_type)  # type: ignore[arg-type]
            for booster in self.members_
        ]
        return np.asarray(np.mean(per_member, axis=0))

    @property
    def booster_(self) -> Any:
        """The native booster of a one-member tree model (``lightgbm.Booster`` /
        ``xgboost.Booster``), for tools that take one: ``shap.TreeExplainer(model.booster_)``.

        Its SHAP values are in the model's target units (scaled, when the feature spec
        scales the target), and for events in log-odds before calibration. Ensembles have
        one booster per member (``members_``): explain them with
        ``predict(X, pred_contrib=True)``.
        """
        check_is_fitted(self, "members_")
        if self.backend == "mlp":
            raise AttributeError(
                f"{type(self).__name__}(backend='mlp') has no booster_; explain it with "
                f"shap.Explainer(model.predict, X_background) instead."
            )
        if len(self.members_) != 1:
            raise AttributeError(
                f"{type(self).__name__} has {len(self.members_)} members, one booster each "
                f"(members_); no single booster_ stands for their mean. Use "
                f"model.predict(X, pred_contrib=True) for the ensemble's SHAP values."
            )
        return self.members_[0]

    def get_booster(self) -> Any:
        """The native booster (XGBoost's sklearn name for :attr:`booster_`)."""
        return self.booster_

    @property
    def n_iter_(self) -> int | list[int]:
        """Boosting rounds (tree backends) or epochs (MLP) each member ran; a list for
        ensembles. With early stopping it includes the rounds past the best one."""
        check_is_fitted(self, "members_")
        curves = self.curves_ or [{}] * len(self.members_)
        # The learning curves count every round run; LightGBM keeps only the trees up to
        # the best one in its booster.
        counts = [
            max((len(v) for v in c.values()), default=0) or self._member_rounds(m)
            for m, c in zip(self.members_, curves, strict=True)
        ]
        return counts[0] if len(counts) == 1 else counts

    @property
    def best_iteration_(self) -> int | list[int]:
        """Rounds (epochs) kept by early stopping: trees predicted with, or the epoch whose
        weights were restored, counted from 1; a list for ensembles. Only where early
        stopping ran (``early_stopping_rounds`` set)."""
        check_is_fitted(self, "members_")
        if self.early_stopping_rounds is None:
            raise AttributeError(
                f"{type(self).__name__} was fitted without early stopping "
                f"(early_stopping_rounds=None): every round is kept, see n_iter_."
            )
        best = [self._member_best(m) for m in self.members_]
        return best[0] if len(best) == 1 else best

    @property
    def evals_result_(self) -> dict[str, dict[str, list[float]]] | list[dict[str, Any]]:
        """Metric per round on each watched set, LightGBM's layout:
        ``{"train"|"valid"|"holdout": {metric: [...]}}`` (a list for ensembles).

        ``valid`` is the early-stopping split, ``holdout`` the ``eval_set``. The metric is
        the same on every backend: ``l2`` (mean squared error) for rewards,
        ``binary_logloss`` for events.
        """
        check_is_fitted(self, "members_")
        metric = _CURVE_METRIC[self._objective]
        results = [
            {name: {metric: list(values)} for name, values in curves.items() if values}
            for curves in self.curves_
        ]
        if not any(results):
            raise AttributeError(
                f"{type(self).__name__} recorded no learning curve: set early_stopping_rounds "
                f"or pass eval_set=(X, y) to fit."
            )
        return results[0] if len(results) == 1 else results

    def _member_rounds(self, member: Any) -> int:
        if self.backend == "mlp":
            return len(member.history["train_loss"])
        from rmlite.models.gbm import n_rounds

        return n_rounds(self.backend, member)  # type: ignore[arg-type]

    def _member_best(self, member: Any) -> int:
        if self.backend == "mlp":
            return int(member.best_epoch) + 1
        from rmlite.models.gbm import best_iteration

        return best_iteration(self.backend, member) or self._member_rounds(member)  # type: ignore[arg-type]

    def _contributions(self, X: Any) -> np.ndarray:
        """Mean SHAP values over the members, shape (n, d + 1), bias last."""
        check_is_fitted(self, "members_")
        if self.backend == "mlp":
            raise ParameterError(
                f"pred_contrib=True needs a tree backend (TreeSHAP); this "
                f"{type(self).__name__} has backend='mlp'. Explain it with "
                f"shap.Explainer(model.predict, X_background) instead."
            )
        from rmlite.models.gbm import gbm_contributions

        X = self._check_predict_input(X)
        total = np.zeros((X.shape[0], X.shape[1] + 1), dtype=np.float64)
        for booster in self.members_:
            total += gbm_contributions(self.backend, booster, X, n_jobs=self.n_jobs)  # type: ignore[arg-type]
        # SHAP values are additive: the mean of the members' values explains the mean.
        return total / len(self.members_)

    def _check_columns(self, X: Any) -> None:
        """Name the missing, unexpected or reordered columns of a data frame."""
        names = _get_feature_names(X)
        expected = getattr(self, "feature_names_in_", None)
        if names is None or expected is None:
            return
        got, want = [str(n) for n in names], [str(n) for n in expected]
        if got == want:
            return
        missing = [n for n in want if n not in got]
        extra = [n for n in got if n not in want]
        if missing or extra:
            raise SchemaError(
                f"X's columns are not the ones the model was fitted on: missing {missing[:10]}, "
                f"unexpected {extra[:10]}."
            )
        moved = [n for n, w in zip(got, want, strict=True) if n != w]
        raise SchemaError(
            f"X has the model's columns in another order ({moved[:10]} moved); select them "
            f"in the fitted order, e.g. X.select(model.feature_names_in_)."
        )

    # ------------------------------------------------------------ persistence

    def save(self, path: PathLike) -> Path:
        """Write the model to a folder: native boosters or a ``state_dict``, plus JSON.

        The folder holds ``model.json`` (parameters, feature names, feature spec and
        preprocessing statistics when attached, package versions, data fingerprint) and
        one file per ensemble member. :func:`load_model` reads it without unpickling.
        """
        return write_model_folder(
            self,
            path,
            {
                "classes": _jsonable(getattr(self, "classes_", None)),
                "calibration": _jsonable(getattr(self, "calibration_", None)),
            },
        )

    @property
    def fingerprint(self) -> str:
        """A short hash of the saved model's parameters and training data."""
        check_is_fitted(self, "members_")
        payload = json.dumps(
            [
                _jsonable(self.get_params()),
                getattr(self, "data_fingerprint_", None),
                self.n_features_in_,
            ],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class RewardRegressor(RegressorMixin, _RewardModel):
    """Reward or return-to-go regressor on LightGBM, XGBoost or a torch MLP.

    Parameters
    ----------
    backend
        ``"lightgbm"`` (default), ``"xgboost"`` or ``"mlp"``.
    device
        ``"cpu"``, ``"cuda"`` (an error where no GPU exists) or ``"auto"``.
    n_estimators
        Boosting rounds (tree backends).
    max_epochs
        Training epochs (MLP).
    learning_rate
        Step size; default 0.05 for trees, 1e-3 for the MLP.
    early_stopping_rounds
        Stop when the validation loss has not improved for this many rounds/epochs. The
        validation split takes ``validation_fraction`` of the **episodes** when ``groups``
        reach ``fit`` (also through metadata routing), else of the rows.
    validation_fraction
        Share of episodes (or rows) held out for early stopping.
    n_members
        Ensemble size; members >1 train on bootstrap resamples of episodes, and
        ``predict(X, return_std=True)`` returns their mean and spread.
    random_state
        Seed for splits, resampling and the engines.
    n_jobs
        CPU threads of a fit: -1 all cores, an int that many. Default: one thread below
        20,000 training rows, else the physical cores (see
        :func:`rmlite.models.device.fit_threads`: a small fit on many threads of a busy
        machine ran 15-30x slower than on one).
    hidden_sizes, activation, dropout, weight_decay, batch_size
        MLP architecture and training (AdamW).
    backend_params
        Native parameters passed to the engine (``num_leaves``, ``max_depth``, ...).
    importance_type
        What :attr:`feature_importances_` measures on the tree backends: ``"gain"``
        (default; total loss reduction of a feature's splits) or ``"split"`` (their number).

    Fitted models also have ``n_iter_``, ``best_iteration_`` (with early stopping) and
    ``evals_result_``; ``predict(X, pred_contrib=True)`` gives SHAP values, and
    ``booster_`` the native booster of a one-member tree model (for ``shap.TreeExplainer``).
    """

    def fit(
        self,
        X: Any,
        y: Any,
        groups: Any = None,
        sample_weight: Any = None,
        eval_set: tuple[Any, Any] | None = None,
    ) -> RewardRegressor:
        """Fit the model; ``groups`` are episode ids (for early stopping and resampling).

        ``eval_set=(X_holdout, y_holdout)`` is watched, never fitted nor used to stop: its
        loss per round lands in ``curves_[i]["holdout"]`` beside ``"train"`` (the curves
        that :func:`rmlite.evaluation.overfit.overfitting` reads).
        """
        self._fit(X, y, groups=groups, sample_weight=sample_weight, eval_set=eval_set)
        return self

    def predict(
        self,
        X: Any,
        return_std: bool = False,
        check_input: bool = True,
        pred_contrib: bool = False,
    ) -> Any:
        """Predicted rewards; with ``return_std``, also the ensemble members' spread.

        ``check_input=False`` skips input validation (as in scikit-learn's trees): only
        for a float32 C-contiguous matrix of the fitted width.

        ``pred_contrib=True`` returns SHAP values instead (LightGBM's ``pred_contrib``,
        XGBoost's ``pred_contribs``; tree backends): shape ``(n, n_features + 1)``, one
        column per feature and the expected value (bias) last, the mean over ensemble
        members; each row sums to ``predict(X)``. They are in the units the model was
        fitted in: with a scaled target (``FeatureSpec(scaling=...)``) multiply by
        ``target_scale`` (and add ``target_center`` to the bias) for reward units, as
        :func:`rmlite.evaluation.explain.explain` does.
        """
        if pred_contrib:
            if return_std:
                raise ParameterError("pred_contrib=True and return_std=True do not combine.")
            return self._contributions(X)
        preds = self._member_predictions(X, check_input=check_input)
        mean = preds.mean(axis=0)
        if return_std:
            return mean, preds.std(axis=0)
        return mean

    def predict_pessimistic(self, X: Any, k: float = 1.0) -> np.ndarray:
        """Lower-confidence reward ``mean - k * std`` over ensemble members (offline RL)."""
        mean, std = self.predict(X, return_std=True)
        return np.asarray(mean - k * std)


class RewardClassifier(ClassifierMixin, _RewardModel):
    """Sparse reward events (for example success, or reward > threshold) as a binary classifier.

    Same parameters as :class:`RewardRegressor`, plus ``class_weight``: ``"balanced"``
    (or ``{label: weight}``) weighs the rare events up during training, so the model
    attends to them: ``predict`` (the weighted model's decision at 0.5) finds more of them,
    as with scikit-learn's ``class_weight``. ``predict_proba`` stays calibrated: each member
    holds ``validation_fraction`` of the episodes out of its training (its early-stopping
    split) and fits Platt scaling on them, ``σ(a·z + b)`` over the model's log-odds ``z``
    (``calibration_``, saved with the model). Platt scaling corrects whatever the fit, an
    under-fitted model of few trees too, where dividing the odds by the weight would not.
    Without ``class_weight`` nothing is calibrated (log-loss training is), and ``predict``
    is ``predict_proba >= 0.5``.
    """

    _objective = "binary"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_RewardModel._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    # scikit-learn reads an estimator's parameters from its __init__ signature, so the
    # shared parameters are spelled out again here rather than passed as **kwargs.
    def __init__(
        self,
        backend: str = "lightgbm",
        device: str = "cpu",
        *,
        class_weight: str | None = None,
        n_estimators: int = 500,
        max_epochs: int = 100,
        learning_rate: float | None = None,
        early_stopping_rounds: int | None = None,
        validation_fraction: float = 0.1,
        n_members: int = 1,
        random_state: int | None = None,
        n_jobs: int | None = None,
        hidden_sizes: tuple[int, ...] = (256, 256),
        activation: str = "relu",
        dropout: float = 0.0,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        backend_params: dict[str, Any] | None = None,
        importance_type: str = "gain",
    ) -> None:
        super().__init__(
            backend,
            device,
            n_estimators=n_estimators,
            max_epochs=max_epochs,
            learning_rate=learning_rate,
            early_stopping_rounds=early_stopping_rounds,
            validation_fraction=validation_fraction,
            n_members=n_members,
            random_state=random_state,
            n_jobs=n_jobs,
            hidden_sizes=hidden_sizes,
            activation=activation,
            dropout=dropout,
            weight_decay=weight_decay,
            batch_size=batch_size,
            backend_params=backend_params,
            importance_type=importance_type,
        )
        self.class_weight = class_weight

    def fit(
        self,
        X: Any,
        y: Any,
        groups: Any = None,
        sample_weight: Any = None,
        eval_set: tuple[Any, Any] | None = None,
    ) -> RewardClassifier:
        """Fit on 0/1 (or two-valued) event labels; ``eval_set`` as in RewardRegressor."""
        self.calibration_: list[tuple[float, float]] = []
        self._fit(X, y, groups=groups, sample_weight=sample_weight, eval_set=eval_set)
        return self

    def _encode_target(self, y: np.ndarray) -> np.ndarray:
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind != "binary":
            raise SchemaError(
                f"Only binary classification is supported. The type of the target is {kind!r}: "
                f"RewardClassifier learns binary events. Threshold the reward into an event "
                f"(FeatureSpec(target='event')), or use RewardRegressor."
            )
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise SchemaError(
                "RewardClassifier needs both classes in y; it holds only one class. For an "
                "event target, pick an event_threshold that some rewards exceed."
            )
        return encoded.astype(np.float32)

    def _encode_eval_target(self, y: np.ndarray) -> np.ndarray:
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ParameterError(
                f"eval_set: label {y[unknown][0].item()!r} is not one of the classes in y "
                f"{self.classes_.tolist()}."
            )
        return np.searchsorted(self.classes_, y).astype(np.float64)

    def _class_weights(self, encoded: np.ndarray) -> tuple[float, float]:
        """Training weights of the negative and the positive class."""
        if self.class_weight is None:
            return 1.0, 1.0
        if self.class_weight == "balanced":
            n_pos = max(1, int(encoded.sum()))
            return 1.0, (len(encoded) - n_pos) / n_pos
        weights: dict[Any, float] = dict(self.class_weight)  # type: ignore[arg-type]
        return float(weights.get(self.classes_[0], 1.0)), float(weights.get(self.classes_[1], 1.0))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _uses_validation(self) -> bool:
        # Weighted models are calibrated on episodes they did not train on.
        return self.early_stopping_rounds is not None or self.class_weight is not None

    def _validation_purpose(self) -> str:
        return "early stopping" if self.class_weight is None else "class_weight's calibration"

    def _fit_member(
        self,
        X: np.ndarray,
        y: np.ndarray,
        weight: np.ndarray | None,
        fit_idx: np.ndarray | None,
        val_idx: np.ndarray | None,
        member: int,
        watch: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[Any, dict[str, list[float]]]:
        user_weight = weight
        if self.class_weight is not None:
            w_neg, w_pos = self._class_weights(y)
            base = np.ones(len(y)) if weight is None else weight
            weight = base * np.where(y == 1, w_pos, w_neg)
        model, curves = super()._fit_member(X, y, weight, fit_idx, val_idx, member, watch)
        calibration = IDENTITY
        if self.class_weight is not None and val_idx is not None:
            y_val = y[val_idx]
            n_pos = int((y_val == 1).sum())
            if min(n_pos, len(y_val) - n_pos) < _PLATT_MIN_CLASS:
                # Too few events (or non-events) to fit a slope: Platt's fit would flatten
                # every probability to the prior. Undo the class weights' odds shift
                # instead, which keeps the ranking.
                calibration = (1.0, -float(np.log(w_pos / w_neg)))
            else:
                # Platt scaling on the validation episodes (never trained on), with the
                # user's weights but not the class weights: the world as it is.
                z = logit(self._predict_member(model, X[val_idx]))
                w_val = None if user_weight is None else user_weight[val_idx]
                calibration = platt_scaling(z, y_val, w_val)
        self.calibration_.append(calibration)
        return model, curves

    def _predict_member(self, model: Any, X: Any) -> np.ndarray:
        if isinstance(X, MatrixFile):
            return np.concatenate([self._predict_member(model, c) for c in X.iter_chunks()])
        if self.backend == "mlp":
            return np.asarray(model.predict(X))
        from rmlite.models.gbm import predict_gbm

        return predict_gbm(self.backend, model, X, n_jobs=self.n_jobs)  # type: ignore[arg-type]

    def _calibrated(self, p: np.ndarray) -> np.ndarray:
        """Each member's probabilities through its calibration map."""
        calibration = getattr(self, "calibration_", None) or [IDENTITY] * len(p)
        if all(tuple(c) == IDENTITY for c in calibration):
            return p
        return np.vstack(
            [apply_platt(logit(row), a, b) for row, (a, b) in zip(p, calibration, strict=True)]
        )

    def predict_proba(self, X: Any, return_std: bool = False, check_input: bool = True) -> Any:
        """Calibrated event probabilities, shape (n, 2); with ``return_std``, the spread.

        ``check_input=False`` skips input validation, as in :meth:`RewardRegressor.predict`.
        """
        p = self._calibrated(self._member_predictions(X, check_input=check_input))
        mean = p.mean(axis=0)
        proba = np.column_stack([1.0 - mean, mean])
        if return_std:
            return proba, p.std(axis=0)
        return proba

    def predict(self, X: Any, pred_contrib: bool = False) -> np.ndarray:
        """Most likely class: the trained model's probability at 0.5, before calibration.

        Without ``class_weight`` that is ``predict_proba(X)[:, 1] >= 0.5``; with it, the
        weighted model's decision, which favours the rare class as the weights ask.
        ``pred_contrib=True`` returns SHAP values of the log-odds before calibration
        (tree backends; see :meth:`RewardRegressor.predict`).
        """
        if pred_contrib:
            return self._contributions(X)
        p = self._member_predictions(X).mean(axis=0)
        return np.asarray(self.classes_[(p >= 0.5).astype(int)])


# ---------------------------------------------------------------------- loading


def load_reward_model(
    folder: Path, meta: dict[str, Any], blobs: dict[str, bytes]
) -> RewardRegressor | RewardClassifier:
    """Rebuild a saved :class:`RewardRegressor` or :class:`RewardClassifier` (called by
    :func:`rmlite.load_model`, which checked ``meta`` and read the member files' bytes
    ``blobs``): native boosters, ``weights_only`` torch, JSON."""
    classes = {"RewardRegressor": RewardRegressor, "RewardClassifier": RewardClassifier}
    cls = classes[meta["estimator"]]
    params = dict(meta["params"])
    params["hidden_sizes"] = tuple(params.get("hidden_sizes", (256, 256)))
    model = cls(**params)
    validate_parameter_constraints(
        model._parameter_constraints, model.get_params(deep=False), caller_name=cls.__name__
    )
    restore_fitted(model, folder, meta, blobs)
    if meta.get("classes") is not None:
        model.classes_ = np.asarray(meta["classes"])
    if isinstance(model, RewardClassifier):
        if meta.get("calibration") is not None:
            model.calibration_ = [(float(a), float(b)) for a, b in meta["calibration"]]
        else:
            # Saved before Platt scaling: the prior-shift correction σ(z − log factor).
            shift = -float(np.log(float(meta.get("odds_factor") or 1.0)))
            model.calibration_ = [(1.0, shift)] * len(model.members_)
    return model


# ----------------------------------------------------------------------- helpers


def _did_you_mean(name: str, options: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
