"""Gradient-boosting engines: LightGBM and XGBoost as plain functions.

The estimators in :mod:`rmlite.estimators.reward` pick one of these and delegate; the Dask and
tuning layers reuse the same functions (LightGBM's ``sklearn.py`` → ``engine.py`` split).
Each ``fit_*`` returns the native booster and the learning curves it recorded.

Examples
--------
>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)
>>> y = X[:, 0] * 2.0
>>> params = gbm_params("lightgbm", objective="regression", learning_rate=0.1,
...                     random_state=0, n_jobs=1, device="cpu")
>>> booster, curves = fit_gbm("lightgbm", X, y, params, num_boost_round=50)
>>> float(np.corrcoef(predict_gbm("lightgbm", booster, X), y)[0, 1]) > 0.99
True
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rmlite._typing import Float32Array
from rmlite.data.matrix_file import MatrixFile
from rmlite.exceptions import ParameterError
from rmlite.models.device import DeviceError

Backend = Literal["lightgbm", "xgboost"]
Objective = Literal["regression", "binary"]

# Native objective and metric names for each backend.
_OBJECTIVES: dict[str, dict[str, tuple[str, str]]] = {
    "lightgbm": {"regression": ("regression", "l2"), "binary": ("binary", "binary_logloss")},
    "xgboost": {
        "regression": ("reg:squarederror", "rmse"),
        "binary": ("binary:logistic", "logloss"),
    },
}


def gbm_params(
    backend: Backend,
    *,
    objective: Objective | str,
    learning_rate: float,
    random_state: int | None,
    n_jobs: int | None,
    device: str,
    extra: dict[str, Any] | None = None,
    rows: int | None = None,
) -> dict[str, Any]:
    """Native training parameters for one backend; ``extra`` (``backend_params``) wins.

    Threads: :func:`~rmlite.models.device.fit_threads` of ``n_jobs`` and the training
    ``rows`` (the default is one thread for a small fit, else the physical cores).
    """
    from rmlite.models.device import fit_threads

    native_objective, metric = _OBJECTIVES[backend].get(objective, (objective, ""))
    threads = fit_threads(n_jobs, rows)
    seed = 0 if random_state is None else int(random_state)
    if backend == "lightgbm":
        params: dict[str, Any] = {
            "objective": native_objective,
            "learning_rate": learning_rate,
            "num_threads": threads,
            "seed": seed,
            "verbosity": -1,
            # LightGBM's pip wheel has no CUDA learner; its OpenCL 'gpu' learner runs on
            # NVIDIA cards too. fit_gbm tries 'cuda' first and falls back to 'gpu'.
            "device_type": "cuda" if device == "cuda" else "cpu",
        }
        if metric:
            params["metric"] = metric
    else:
        params = {
            "objective": native_objective,
            "learning_rate": learning_rate,
            "nthread": threads,
            "seed": seed,
            "tree_method": "hist",
            "device": device,
            "verbosity": 0,
        }
        if metric:
            params["eval_metric"] = metric
    params.update(extra or {})
    return params


def fit_gbm(
    backend: Backend,
    X: Float32Array,
    y: np.ndarray,
    params: dict[str, Any],
    num_boost_round: int,
    *,
    sample_weight: np.ndarray | None = None,
    X_val: Float32Array | None = None,
    y_val: np.ndarray | None = None,
    w_val: np.ndarray | None = None,
    early_stopping_rounds: int | None = None,
    record_train: bool = False,
    objective_fn: Callable[..., Any] | None = None,
    on_iteration: Callable[[int, dict[str, float]], bool | None] | None = None,
    X_eval: Float32Array | None = None,
    y_eval: np.ndarray | None = None,
    native: Mapping[str, Any] | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    """Train one booster; return it and its learning curves.

    Parameters
    ----------
    backend
        ``"lightgbm"`` or ``"xgboost"``.
    X, y, sample_weight
        Training rows: a C-contiguous float32 matrix, targets, optional weights.
    params
        Native parameters (see :func:`gbm_params`).
    num_boost_round
        Maximum number of trees.
    X_val, y_val, w_val
        Validation rows (episodes not in training) for early stopping and curves.
    early_stopping_rounds
        Stop when the validation metric has not improved for this many rounds.
    record_train
        Also record the training metric per round (for overfitting curves).
    objective_fn
        A custom objective ``(preds, data) -> (grad, hess)`` (preference learning).
    on_iteration
        Called after each round with the latest metrics; returning True stops training
        (Optuna pruning).
    X_eval, y_eval
        Rows only watched, never used to stop (a hold-out's learning curve, ``"holdout"``).
    native
        The native parameters the user gave (``backend_params``): when the engine refuses
        to train, the :class:`~rmlite.exceptions.ParameterError` names them.

    Returns
    -------
    booster, curves
        The native booster (``best_iteration`` set when early stopping ran) and
        ``{"train": [...], "valid": [...], "holdout": [...]}`` metric values per round
        (empty lists for the sets not given): the mean squared error for regression, the
        log-loss for events, whatever the backend.
    """
    watch = None if X_eval is None or y_eval is None else (X_eval, y_eval)
    fit = {"lightgbm": _fit_lightgbm, "xgboost": _fit_xgboost}.get(backend)
    if fit is None:
        raise ValueError(f"unknown gradient-boosting backend {backend!r}")
    try:
        return fit(
            X,
            y,
            params,
            num_boost_round,
            sample_weight,
            X_val,
            y_val,
            w_val,
            early_stopping_rounds,
            record_train,
            objective_fn,
            on_iteration,
            watch,
        )
    except DeviceError:
        raise
    except Exception as exc:
        # LightGBMError, XGBoostError (a ValueError) and the engines' own ValueErrors.
        if not native or not (isinstance(exc, ValueError) or type(exc).__name__ == "LightGBMError"):
            raise
        given = ", ".join(f"{k}={v!r}" for k, v in native.items())
        raise ParameterError(
            f"{backend} refused to train with the native parameters {given} "
            f"({_first_line(exc)}). Fix or drop these --param values."
        ) from exc


def _fit_lightgbm(
    X: Float32Array,
    y: np.ndarray,
    params: dict[str, Any],
    num_boost_round: int,
    sample_weight: np.ndarray | None,
    X_val: Float32Array | None,
    y_val: np.ndarray | None,
    w_val: np.ndarray | None,
    early_stopping_rounds: int | None,
    record_train: bool,
    objective_fn: Callable[..., Any] | None,
    on_iteration: Callable[[int, dict[str, float]], bool | None] | None,
    watch: tuple[Float32Array, np.ndarray] | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    import lightgbm as lgb

    params = dict(params)
    if objective_fn is not None:
        params["objective"] = objective_fn
    if isinstance(X, MatrixFile) and not {"force_col_wise", "force_row_wise"} & set(params):
        # Left to choose, LightGBM times both layouts on the first round, holding a
        # row-wise copy of the binned data beside the column-wise one: 0.3 GB more at
        # 8M rows of 40 features. A streamed fit is the one that cannot spare it.
        params["force_col_wise"] = True
    train_set = lgb.Dataset(_lgb_data(X), label=y, weight=sample_weight, free_raw_data=True)
    valid_sets, valid_names = [], []
    if record_train:
        valid_sets.append(train_set)
        valid_names.append("train")
    if watch is not None:
        valid_sets.append(lgb.Dataset(_lgb_data(watch[0]), label=watch[1], reference=train_set))
        valid_names.append("holdout")
    if X_val is not None and y_val is not None:
        valid_sets.append(
            lgb.Dataset(_lgb_data(X_val), label=y_val, weight=w_val, reference=train_set)
        )
        valid_names.append("valid")
    evals: dict[str, dict[str, list[float]]] = {}
    callbacks: list[Any] = [lgb.record_evaluation(evals)] if valid_sets else []
    if early_stopping_rounds and "valid" in valid_names:
        callbacks.append(_lgb_early_stopping(early_stopping_rounds))
    if on_iteration is not None:
        callbacks.append(_lgb_hook(on_iteration))

    def train(p: dict[str, Any]) -> Any:
        return lgb.train(
            p,
            train_set,
            num_boost_round,
            valid_sets=valid_sets,
            valid_names=valid_names,
            callbacks=callbacks,
        )

    try:
        booster = train(params)
    except lgb.basic.LightGBMError as exc:
        if params.get("device_type") != "cuda" or "CUDA" not in str(exc):
            raise
        try:  # this build has no CUDA learner: its OpenCL learner runs on NVIDIA cards too
            booster = train({**params, "device_type": "gpu"})
        except lgb.basic.LightGBMError as exc2:
            raise DeviceError(
                f"LightGBM cannot use the GPU: {str(exc).splitlines()[0]}; its OpenCL learner "
                f"failed too ({str(exc2).splitlines()[0]}). Install a CUDA build of LightGBM "
                f"(pip install lightgbm --config-settings=cmake.define.USE_CUDA=ON) or use "
                f"device='cpu'."
            ) from exc2
    # The booster keeps its Datasets (the binned copy of every row) for as long as it
    # lives; predicting and saving need none of it.
    booster.free_dataset()
    return booster, {name: _first_metric(evals.get(name, {})) for name in CURVES}


CURVES = ("train", "valid", "holdout")
"""Learning curves recorded per round: training rows, the early-stopping validation
episodes, and watched hold-out episodes (never used to stop)."""


def _lgb_early_stopping(rounds: int) -> Callable[[Any], None]:
    """Early stopping on the first metric of the ``valid`` set alone.

    LightGBM's own callback stops on every non-training set; a watched hold-out must not
    decide when to stop, or its learning curve would no longer be a hold-out's.
    """
    import lightgbm as lgb

    best: dict[str, Any] = {"score": math.inf, "iteration": 0, "results": None}

    def callback(env: Any) -> None:
        for name, _metric, value, higher_better in env.evaluation_result_list:
            if name != "valid":
                continue
            score = -value if higher_better else value
            if score < best["score"]:
                best.update(
                    score=score, iteration=env.iteration, results=env.evaluation_result_list
                )
            last = env.iteration == env.end_iteration - 1
            if env.iteration - best["iteration"] >= rounds or last:
                raise lgb.callback.EarlyStopException(best["iteration"], best["results"])
            return

    callback.order = 30  # type: ignore[attr-defined]  # after record_evaluation
    return callback


def _lgb_hook(
    on_iteration: Callable[[int, dict[str, float]], bool | None],
) -> Callable[[Any], None]:
    import lightgbm as lgb

    def hook(env: Any) -> None:
        latest = {
            f"{name}-{metric}": value for name, metric, value, _ in env.evaluation_result_list
        }
        if on_iteration(env.iteration, latest):
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    hook.order = 30  # type: ignore[attr-defined]  # after record_evaluation
    return hook


def _fit_xgboost(
    X: Float32Array,
    y: np.ndarray,
    params: dict[str, Any],
    num_boost_round: int,
    sample_weight: np.ndarray | None,
    X_val: Float32Array | None,
    y_val: np.ndarray | None,
    w_val: np.ndarray | None,
    early_stopping_rounds: int | None,
    record_train: bool,
    objective_fn: Callable[..., Any] | None,
    on_iteration: Callable[[int, dict[str, float]], bool | None] | None,
    watch: tuple[Float32Array, np.ndarray] | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    import xgboost as xgb

    if params.get("device") == "cuda" and not xgb.build_info().get("USE_CUDA", False):
        # Such a build warns and trains on the CPU: asking for CUDA must never do that.
        raise DeviceError(
            "this XGBoost build has no CUDA support (xgboost-cpu?), so device='cuda' would "
            "silently train on the CPU. pip install xgboost (the CUDA-enabled wheel), or use "
            "device='cpu'."
        )
    # QuantileDMatrix bins once, straight from the float32 matrix: less memory than DMatrix.
    # A matrix on disk goes through XGBoost's external memory instead (pages on disk).
    with contextlib.ExitStack() as stack:
        train_set = _xgb_matrix(stack, X, y, sample_weight, params)
        evals: list[tuple[Any, str]] = []
        if record_train:
            evals.append((train_set, "train"))
        if watch is not None:
            evals.append(
                (_xgb_matrix(stack, watch[0], watch[1], None, params, ref=train_set), "holdout")
            )
        # XGBoost's early stopping watches the last set: "valid" stays last.
        if X_val is not None and y_val is not None:
            evals.append((_xgb_matrix(stack, X_val, y_val, w_val, params, ref=train_set), "valid"))
        return _train_xgboost(
            xgb,
            params,
            train_set,
            num_boost_round,
            evals,
            objective_fn,
            on_iteration,
            early_stopping_rounds,
        )


def _train_xgboost(
    xgb: Any,
    params: dict[str, Any],
    train_set: Any,
    num_boost_round: int,
    evals: list[tuple[Any, str]],
    objective_fn: Callable[..., Any] | None,
    on_iteration: Callable[[int, dict[str, float]], bool | None] | None,
    early_stopping_rounds: int | None,
) -> tuple[Any, dict[str, list[float]]]:
    """``xgb.train`` with rmlite's callbacks; the learning curves as :data:`CURVES` names them."""
    history: dict[str, dict[str, list[float]]] = {}
    callbacks: list[Any] = []
    if on_iteration is not None:
        callbacks.append(_XgbHook(on_iteration))
    booster = xgb.train(
        params,
        train_set,
        num_boost_round,
        evals=evals,
        obj=objective_fn,
        evals_result=history,
        early_stopping_rounds=early_stopping_rounds
        if any(n == "valid" for _, n in evals)
        else None,
        verbose_eval=False,
        callbacks=callbacks,
    )
    return booster, {name: _first_metric(history.get(name, {})) for name in CURVES}


# ------------------------------------------------------------- matrices on disk


def _lgb_data(X: Any) -> Any:
    """LightGBM's input for X: the array itself, or a ``lightgbm.Sequence`` over a
    :class:`MatrixFile`, so that only LightGBM's binned copy (a byte per value) is held."""
    if not isinstance(X, MatrixFile):
        return X
    import lightgbm as lgb

    class _Rows(lgb.Sequence):
        """Row access to the file, with the last chunk read kept: LightGBM samples rows
        for its bins one by one, in increasing order, then reads batches of rows."""

        def __init__(self, matrix: MatrixFile) -> None:
            self.matrix = matrix
            self.batch_size = matrix.chunk_rows()
            self._cached: tuple[int, Float32Array] = (-1, np.empty((0, 0), np.float32))

        def __len__(self) -> int:
            return len(self.matrix)

        def __getitem__(self, idx: Any) -> Any:
            if isinstance(idx, int | np.integer):
                start = (int(idx) // self.batch_size) * self.batch_size
                if self._cached[0] != start:
                    self._cached = (start, self.matrix.read(start, start + self.batch_size))
                # Sampled rows feed LightGBM's bin boundaries, which it takes as float64.
                return self._cached[1][int(idx) - start].astype(np.float64)
            if isinstance(idx, slice):
                return self.matrix[idx]
            return self.matrix.take(np.asarray(idx)).to_numpy()

    return _Rows(X)


def _xgb_matrix(
    stack: contextlib.ExitStack,
    X: Any,
    y: np.ndarray,
    weight: np.ndarray | None,
    params: Mapping[str, Any],
    ref: Any = None,
) -> Any:
    """A ``QuantileDMatrix`` of an array, or an ``ExtMemQuantileDMatrix`` streamed from a
    :class:`MatrixFile` (XGBoost's external memory: its pages go to a temporary folder)."""
    import xgboost as xgb

    if not isinstance(X, MatrixFile):
        return xgb.QuantileDMatrix(X, label=y, weight=weight, ref=ref)
    cache = stack.enter_context(tempfile.TemporaryDirectory(prefix="rmlite-xgb-"))
    chunk = X.chunk_rows()

    class _Chunks(xgb.DataIter):
        def __init__(self) -> None:
            self._lo = 0
            super().__init__(cache_prefix=os.path.join(cache, "pages"))

        def next(self, input_data: Callable[..., None]) -> bool:
            if self._lo >= len(X):
                return False
            hi = min(self._lo + chunk, len(X))
            input_data(
                data=X.read(self._lo, hi),
                label=y[self._lo : hi],
                weight=None if weight is None else weight[self._lo : hi],
            )
            self._lo = hi
            return True

        def reset(self) -> None:
            self._lo = 0

    kwargs: dict[str, Any] = {"ref": ref}
    if "max_bin" in params:
        kwargs["max_bin"] = params["max_bin"]
    return xgb.ExtMemQuantileDMatrix(_Chunks(), **kwargs)


class _XgbHook:
    """XGBoost callback that reports metrics and stops when asked (Optuna pruning)."""

    def __new__(cls, on_iteration: Callable[[int, dict[str, float]], bool | None]) -> Any:
        import xgboost as xgb

        class Hook(xgb.callback.TrainingCallback):
            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                latest = {
                    f"{data}-{metric}": values[-1]
                    for data, metrics in evals_log.items()
                    for metric, values in metrics.items()
                }
                return bool(on_iteration(epoch, latest))

        return Hook()


def _first_metric(metrics: Mapping[str, Sequence[float]]) -> list[float]:
    # Curves are in one unit for every backend: the mean squared error for regression
    # (LightGBM's "l2"; XGBoost reports "rmse", squared here), the log-loss for events.
    for name, values in metrics.items():
        return [float(v) ** 2 if name == "rmse" else float(v) for v in values]
    return []


def best_iteration(backend: Backend, booster: Any) -> int | None:
    """Number of trees to predict with (early stopping's best), or None for all."""
    best = getattr(booster, "best_iteration", None)
    if best is None or best <= 0:
        return None
    return int(best) if backend == "lightgbm" else int(best) + 1


def predict_gbm(
    backend: Backend, booster: Any, X: Float32Array, *, raw: bool = False, n_jobs: int | None = None
) -> np.ndarray:
    """Predictions of a booster (probabilities for binary objectives unless ``raw``)."""
    n_trees = best_iteration(backend, booster)
    if backend == "lightgbm":
        kwargs: dict[str, Any] = {"raw_score": raw}
        if n_trees is not None:
            kwargs["num_iteration"] = n_trees
        if n_jobs:
            kwargs["num_threads"] = n_jobs
        return np.asarray(booster.predict(X, **kwargs))
    iteration_range = (0, n_trees) if n_trees is not None else (0, 0)
    # inplace_predict skips building a DMatrix: the fastest path for a dense matrix.
    return np.asarray(
        booster.inplace_predict(
            X, iteration_range=iteration_range, predict_type="margin" if raw else "value"
        )
    )


IMPORTANCE_TYPES = ("gain", "split")
"""``importance_type`` values: ``"gain"`` is the total loss reduction of a feature's splits
(LightGBM ``gain``, XGBoost ``total_gain``); ``"split"`` the number of splits on it
(LightGBM ``split``, XGBoost ``weight``)."""


def gbm_importance(
    backend: Backend, booster: Any, n_features: int, importance_type: str = "gain"
) -> np.ndarray:
    """Per-feature importance of one booster's kept trees (early stopping's best).

    Unnormalized, as LightGBM's ``feature_importance``: total gain or split counts, zero
    for features no tree uses.
    """
    if importance_type not in IMPORTANCE_TYPES:
        raise ValueError(
            f"importance_type must be one of {list(IMPORTANCE_TYPES)}; got {importance_type!r}."
        )
    n_trees = best_iteration(backend, booster)
    if backend == "lightgbm":
        values = booster.feature_importance(importance_type=importance_type, iteration=n_trees)
        return np.asarray(values, dtype=np.float64)
    kept = booster[:n_trees] if n_trees is not None else booster
    native = "total_gain" if importance_type == "gain" else "weight"
    out = np.zeros(n_features, dtype=np.float64)
    # XGBoost names unnamed features f0, f1, ... and leaves out those no tree splits on.
    for name, value in kept.get_score(importance_type=native).items():
        out[int(name[1:])] = float(value)
    return out


def gbm_contributions(
    backend: Backend, booster: Any, X: Float32Array, *, n_jobs: int | None = None
) -> np.ndarray:
    """SHAP values of one booster (TreeSHAP, the engines' own): shape (n, d + 1).

    Column ``j < d`` is feature ``j``'s contribution, the last column the expected value
    (the bias); each row sums to the raw prediction (the margin, log-odds for events).
    """
    n_trees = best_iteration(backend, booster)
    if backend == "lightgbm":
        kwargs: dict[str, Any] = {"pred_contrib": True}
        if n_trees is not None:
            kwargs["num_iteration"] = n_trees
        if n_jobs:
            kwargs["num_threads"] = n_jobs
        return np.asarray(booster.predict(X, **kwargs), dtype=np.float64)
    import xgboost as xgb

    iteration_range = (0, n_trees) if n_trees is not None else (0, 0)
    matrix = xgb.DMatrix(X, nthread=n_jobs or -1)
    return np.asarray(
        booster.predict(matrix, pred_contribs=True, iteration_range=iteration_range),
        dtype=np.float64,
    )


def n_rounds(backend: Backend, booster: Any) -> int:
    """Boosting rounds the booster ran (all of them, past early stopping's best too)."""
    if backend == "lightgbm":
        return int(booster.current_iteration())
    return int(booster.num_boosted_rounds())


class LightGBMRowPredictor:
    """LightGBM predictions for small batches through its single-row fast path.

    ``Booster.predict`` builds a new C++ predictor on every call; for the 16 rows of one
    vector-env step that setup, on caches the env's own stepping has just evicted, costs
    more than the tree walks. ``LGBM_BoosterPredictForMatSingleRowFastInit`` configures
    the predictor once; each row is then one C call (measured inside a 16-env Pendulum-v1
    loop: 24 µs less per step for 100 trees). Used for batches of at most
    :attr:`max_rows` rows; larger batches go through ``Booster.predict``, which is faster
    there. Results are bit-identical to ``Booster.predict``.

    Examples
    --------
    >>> import lightgbm as lgb
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3)).astype(np.float32)
    >>> booster = lgb.train({"verbose": -1}, lgb.Dataset(X, X[:, 0]), 20)
    >>> fast, batch = LightGBMRowPredictor(booster, 3), X[:16].copy()
    >>> bool(np.array_equal(fast(batch), booster.predict(batch)))
    True
    """

    max_rows = 64

    def __init__(
        self, booster: Any, n_features: int, num_iteration: int | None = None, raw: bool = False
    ) -> None:
        import ctypes

        from lightgbm.basic import _LIB, _c_str, _safe_call

        self.booster = booster  # keeps the booster (and its C handle) alive
        self.n_features = int(n_features)
        self._lib = _LIB
        handle = ctypes.c_void_p()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(1 if raw else 0),  # C_API_PREDICT_RAW_SCORE or _NORMAL
                ctypes.c_int(0),
                ctypes.c_int(-1 if num_iteration is None else int(num_iteration)),
                ctypes.c_int(0),  # C_API_DTYPE_FLOAT32
                ctypes.c_int32(self.n_features),
                _c_str("num_threads=1"),
                ctypes.byref(handle),
            )
        )
        self._config = handle
        self._predict_row = _LIB.LGBM_BoosterPredictForMatSingleRowFast
        self._predict_row.argtypes = [ctypes.c_void_p] * 4
        self._predict_row.restype = ctypes.c_int
        self._out_len = ctypes.c_int64()
        self._out_len_ptr = ctypes.addressof(self._out_len)

    def __call__(self, X: Float32Array) -> np.ndarray:
        if X.dtype != np.float32 or not X.flags.c_contiguous or X.shape[1] != self.n_features:
            raise ValueError(
                f"LightGBMRowPredictor takes a C-contiguous float32 matrix of "
                f"{self.n_features} columns; got {X.dtype} of shape {X.shape}."
            )
        out = np.empty(len(X), dtype=np.float64)
        row, stride = X.ctypes.data, X.strides[0]
        dst = out.ctypes.data
        handle, length = self._config.value, self._out_len_ptr
        # One C call per row, each a few hundred tree nodes: a loop over at most max_rows.
        for i in range(len(X)):
            if self._predict_row(handle, row + i * stride, length, dst + 8 * i) != 0:
                from lightgbm.basic import _safe_call

                _safe_call(-1)
        return out

    def __del__(self) -> None:
        config = getattr(self, "_config", None)
        if config is not None and config.value:
            self._lib.LGBM_FastConfigFree(config)
            config.value = None


def booster_file(backend: Backend, name: str) -> str:
    """File name of a saved booster: LightGBM text, XGBoost UBJSON."""
    return f"{name}.txt" if backend == "lightgbm" else f"{name}.ubj"


def save_booster(backend: Backend, booster: Any, folder: Path, name: str) -> str:
    """Write a booster in its native format; return the file name."""
    filename = booster_file(backend, name)
    booster.save_model(str(folder / filename))
    return filename


def load_booster(
    backend: Backend, folder: Path, filename: str, best: int | None, data: bytes | None = None
) -> Any:
    """Read a booster written by :func:`save_booster` (no unpickling).

    ``data``: the file's bytes, already read and checked by the caller (the model folder's
    manifest), so the engine parses exactly what was checked. An engine that cannot parse
    them raises ``ValueError`` naming the file.
    """
    path = str(folder / filename)
    if backend == "lightgbm":
        import lightgbm as lgb

        try:
            if data is None:
                booster = lgb.Booster(model_file=path)
            else:
                booster = lgb.Booster(model_str=data.decode("utf-8"))
        except (lgb.basic.LightGBMError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"{path}: LightGBM cannot read this booster ({_first_line(exc)})"
            ) from exc
        booster.best_iteration = best or 0
        return booster
    import xgboost as xgb

    xgb_booster = xgb.Booster()
    try:
        xgb_booster.load_model(path if data is None else bytearray(data))
    except xgb.core.XGBoostError as exc:
        raise ValueError(f"{path}: XGBoost cannot read this booster ({_first_line(exc)})") from exc
    if best:
        xgb_booster.set_attr(best_iteration=str(best - 1))
    return xgb_booster


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_UNIT = ("a float in the range (0, 1]", lambda v: 0 < v <= 1)
_NONNEG = ("a float >= 0", lambda v: v >= 0)
_POSITIVE = ("a float > 0", lambda v: v > 0)
_NATIVE_LIMITS: dict[str, dict[str, tuple[type, str, Callable[[Any], bool]]]] = {
    # Canonical names; aliases are mapped to these first (LightGBM's own alias table).
    "lightgbm": {
        "num_iterations": (int, "an int >= 1", lambda v: v >= 1),
        "learning_rate": (float, *_POSITIVE),
        "num_leaves": (int, "an int in the range [2, 131072]", lambda v: 2 <= v <= 131072),
        "max_depth": (int, "an int (<= 0: no limit)", lambda v: True),
        "min_data_in_leaf": (int, "an int >= 0", lambda v: v >= 0),
        "min_sum_hessian_in_leaf": (float, *_NONNEG),
        "bagging_fraction": (float, *_UNIT),
        "bagging_freq": (int, "an int (<= 0: no bagging)", lambda v: True),
        "feature_fraction": (float, *_UNIT),
        "feature_fraction_bynode": (float, *_UNIT),
        "lambda_l1": (float, *_NONNEG),
        "lambda_l2": (float, *_NONNEG),
        "min_gain_to_split": (float, *_NONNEG),
        "max_bin": (int, "an int >= 2", lambda v: v >= 2),
        "min_data_in_bin": (int, "an int >= 1", lambda v: v >= 1),
        "path_smooth": (float, *_NONNEG),
        "drop_rate": (float, "a float in the range [0, 1]", lambda v: 0 <= v <= 1),
        "skip_drop": (float, "a float in the range [0, 1]", lambda v: 0 <= v <= 1),
    },
    "xgboost": {
        "learning_rate": (float, *_NONNEG),
        "eta": (float, *_NONNEG),
        "max_depth": (int, "an int >= 0", lambda v: v >= 0),
        "max_leaves": (int, "an int >= 0", lambda v: v >= 0),
        "min_child_weight": (float, *_NONNEG),
        "subsample": (float, *_UNIT),
        "colsample_bytree": (float, *_UNIT),
        "colsample_bylevel": (float, *_UNIT),
        "colsample_bynode": (float, *_UNIT),
        "lambda": (float, *_NONNEG),
        "reg_lambda": (float, *_NONNEG),
        "alpha": (float, *_NONNEG),
        "reg_alpha": (float, *_NONNEG),
        "gamma": (float, *_NONNEG),
        "min_split_loss": (float, *_NONNEG),
        "max_bin": (int, "an int >= 2", lambda v: v >= 2),
        "max_delta_step": (float, *_NONNEG),
    },
}


def check_backend_values(backend: Backend, params: Mapping[str, Any]) -> None:
    """Refuse native parameter values outside the engine's limits, naming the parameter.

    The engines check these only when training starts, after the data was read, and
    LightGBM's message names its C++ source file rather than the value given. Limits are
    those of the engines' documentation; parameters not listed here are left to the engine
    (:func:`fit_gbm` then names the native parameters if it refuses them).
    """
    limits = _NATIVE_LIMITS[backend]
    canonical: dict[str, str] = {}
    if backend == "lightgbm":
        import lightgbm as lgb

        for name, aliases in lgb.basic._ConfigAliases._get_all_param_aliases().items():
            canonical.update(dict.fromkeys(aliases, name))
    for key, value in params.items():
        limit = limits.get(canonical.get(key, key))
        if limit is None:
            continue
        kind, expected, ok = limit
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if kind is int and number and float(value).is_integer():
            value_ok = ok(int(value))
        elif kind is float and number and math.isfinite(value):
            value_ok = ok(float(value))
        else:
            value_ok = False
        if not value_ok:
            raise ValueError(
                f"The native {backend} parameter {key!r} (--param {key}=...) must be "
                f"{expected}. Got {value!r} instead."
            )


def check_backend_params(backend: Backend, names: Sequence[str]) -> None:
    """Refuse native parameter names the engine does not know, with a suggestion.

    Both engines only warn about an unknown parameter and train without it, so a typo
    (``num_leafs``) would silently change nothing.
    """
    import difflib

    if not names:
        return
    if backend == "lightgbm":
        import lightgbm as lgb

        aliases = lgb.basic._ConfigAliases._get_all_param_aliases()
        canonical = sorted(aliases)
        known = set(aliases) | {a for group in aliases.values() for a in group}
        unknown = [n for n in names if n not in known]
    else:
        import json
        import warnings

        import xgboost as xgb

        # XGBoost reports unused parameters when it trains: train one tiny round to ask.
        probe = xgb.DMatrix(np.zeros((4, 1), dtype=np.float32), label=np.zeros(4))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # A known parameter may refuse the probe value 1: not our question here.
            # XGBoost's log callback and verbosity are per thread, and a Dask client in the
            # same process can leave them off: re-register and raise verbosity for the probe.
            register = getattr(xgb.core, "_register_log_callback", None)
            if register is not None:
                register(xgb.core._LIB)
            with contextlib.suppress(xgb.core.XGBoostError), xgb.config_context(verbosity=1):
                probe_params = {"nthread": 1, "verbosity": 1, "validate_parameters": True}
                xgb.train({**dict.fromkeys(names, 1), **probe_params}, probe, 1)
        text = " ".join(str(w.message) for w in caught)
        unknown = [n for n in names if f'"{n}"' in text and "not used" in text]
        config = json.loads(xgb.train({"nthread": 1}, probe, 1).save_config())
        canonical = sorted(_leaf_keys(config))
    if unknown:
        close = difflib.get_close_matches(unknown[0], canonical, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"backend_params {unknown} are not {backend} parameters{hint}. See the {backend} "
            f"documentation for its parameter names."
        )


def _leaf_keys(tree: dict[str, Any]) -> set[str]:
    keys: set[str] = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            keys |= _leaf_keys(value)
        elif not isinstance(value, list):
            keys.add(key)
    return keys
