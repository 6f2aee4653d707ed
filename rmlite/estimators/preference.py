"""Learning rewards from preferences between segments (Bradley–Terry).

When ground-truth rewards are missing or untrusted, judgements "segment A is better than
segment B" still say a lot about the reward. :class:`PreferenceRewardModel` learns a
per-step reward r̂(s, a, s') whose segment sums explain them,
P(A ≻ B) = σ(Σ_A r̂ − Σ_B r̂), with boosted trees (a custom objective) or the torch MLP;
the math lives in :mod:`rmlite.models.preference`.

Also here: the pairs the model reads (:class:`PreferencePairs`) and an episode-grouped
split of pairs (:func:`split_pairs`). Simulated teachers live in
:mod:`rmlite.evaluation.teacher`, EPIC in :mod:`rmlite.evaluation.epic`, pairwise
metrics in :mod:`rmlite.evaluation.preference_metrics`, and the store-level jobs behind
``rmlite prefs train / evaluate`` in :mod:`rmlite.pipeline.preferences`.

Examples
--------
>>> import numpy as np
>>> from rmlite.evaluation.teacher import synthetic_preferences
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(2000, 2)).astype(np.float32)
>>> reward = X[:, 0] - X[:, 1] ** 2
>>> episode, step = np.repeat(np.arange(20), 100), np.tile(np.arange(100), 20)
>>> prefs = synthetic_preferences(episode, step, reward, n_pairs=600, segment_length=10, seed=0)
>>> pairs = PreferencePairs.from_segments(episode, step, prefs)
>>> model = PreferenceRewardModel(backend="mlp", max_epochs=20, random_state=0).fit(X, pairs)
>>> bool(np.corrcoef(model.predict(X), reward)[0, 1] > 0.9)
True
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import (
    Interval,
    validate_parameter_constraints,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from rmlite._typing import Float64Array, Int64Array, PathLike
from rmlite.estimators._folder import _jsonable, restore_fitted, write_model_folder
from rmlite.estimators._params import PARAMETER_CONSTRAINTS
from rmlite.exceptions import ParameterError, RmliteError, SchemaError
from rmlite.models.device import resolve_device

_LEARNING_RATE = {"lightgbm": 0.3, "xgboost": 0.3, "mlp": 1e-3}
# Tree defaults that generalize from pairs: preferences give one bit per pair, so trees
# overfit single steps quickly. Small randomized trees (extremely randomized splits,
# bagging) average into a smoother reward; measured on Pendulum-v1 in the tests.
_TREE_DEFAULTS: dict[str, dict[str, Any]] = {
    "lightgbm": {
        "num_leaves": 15,
        "min_data_in_leaf": 200,
        "extra_trees": True,
        "bagging_fraction": 0.5,
        "bagging_freq": 1,
    },
    "xgboost": {"max_depth": 4, "subsample": 0.5, "min_child_weight": 1.0},
}


# --------------------------------------------------------------------------- pairs


@dataclass
class PreferencePairs:
    """Judged pairs of segments, as row ranges of a per-step feature matrix.

    Segment A of pair k is the rows ``start_a[k] <= row < stop_a[k]`` of ``X`` (so the
    steps of one segment must be consecutive rows, as in a :class:`FeatureFrame`, which is
    sorted by episode and step); segment B likewise.

    Attributes
    ----------
    start_a, stop_a, start_b, stop_b
        Half-open row ranges of the two segments.
    label
        P(A ≻ B) as judged, in [0, 1] (1 = A, 0 = B, 0.5 = tie, or a soft label).
    margin
        Optional non-negative margin per pair (NaN or None: no margin).
    """

    start_a: Int64Array
    stop_a: Int64Array
    start_b: Int64Array
    stop_b: Int64Array
    label: Float64Array
    margin: Float64Array | None = None

    def __post_init__(self) -> None:
        for name in ("start_a", "stop_a", "start_b", "stop_b"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        self.label = np.asarray(self.label, dtype=np.float64)
        if self.margin is not None:
            self.margin = np.nan_to_num(np.asarray(self.margin, dtype=np.float64), nan=0.0)
        n = len(self.label)
        if any(len(getattr(self, f)) != n for f in ("start_a", "stop_a", "start_b", "stop_b")):
            raise SchemaError("PreferencePairs: every array needs one entry per pair.")
        if n and not (
            np.isfinite(self.label).all() and (self.label >= 0).all() and (self.label <= 1).all()
        ):
            raise SchemaError(
                "PreferencePairs: labels must be in [0, 1] (1 = A preferred, 0 = B, 0.5 = tie); "
                f"got values in [{np.nanmin(self.label)}, {np.nanmax(self.label)}]."
            )
        if self.margin is not None and (self.margin < 0).any():
            raise SchemaError("PreferencePairs: margins must be >= 0.")

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, index: np.ndarray) -> PreferencePairs:
        """The pairs at ``index`` (a boolean mask or integer positions)."""
        return PreferencePairs(
            self.start_a[index],
            self.stop_a[index],
            self.start_b[index],
            self.stop_b[index],
            self.label[index],
            None if self.margin is None else self.margin[index],
        )

    def membership(self, n_steps: int) -> Any:
        """The pairs × steps matrix (+1 on A's rows, −1 on B's); see the engine."""
        from rmlite.models.preference import membership

        return membership(self.start_a, self.stop_a, self.start_b, self.stop_b, n_steps)

    def returns(self, reward: np.ndarray) -> tuple[Float64Array, Float64Array]:
        """Summed ``reward`` over segment A and over segment B of every pair."""
        c = np.concatenate([[0.0], np.cumsum(np.asarray(reward, dtype=np.float64))])
        return c[self.stop_a] - c[self.start_a], c[self.stop_b] - c[self.start_b]

    @classmethod
    def from_segments(
        cls,
        episode: np.ndarray,
        step: np.ndarray,
        prefs: pl.DataFrame,
        *,
        return_kept: bool = False,
    ) -> Any:
        """Pairs located by (episode, step range), as in the ``preferences`` table.

        ``episode`` and ``step`` give the key of every row of the feature matrix, sorted
        by (episode, step) (``frame.groups`` and ``frame.steps``). Pairs whose segments
        are not all present as consecutive rows (rows dropped for missing inputs, say) are
        left out; with ``return_kept`` the boolean mask of kept pairs comes back too.
        """
        episode = np.asarray(episode, dtype=np.int64)
        step = np.asarray(step, dtype=np.int64)
        # One sortable key per row: rows are sorted by (episode, step).
        key = episode.astype(np.float64) * (2.0**31) + step
        n = len(key)

        def rows(
            ep_col: str, start_col: str, stop_col: str
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            ep = prefs[ep_col].to_numpy().astype(np.int64)
            start = prefs[start_col].to_numpy().astype(np.int64)
            stop = prefs[stop_col].to_numpy().astype(np.int64)
            first = np.searchsorted(key, ep * (2.0**31) + start)
            last = np.searchsorted(key, ep * (2.0**31) + stop - 1)
            ok = (first < n) & (last < n)
            f, lst = np.minimum(first, n - 1), np.minimum(last, n - 1)
            ok &= (episode[f] == ep) & (step[f] == start) & (episode[lst] == ep)
            ok &= (step[lst] == stop - 1) & (lst - f == stop - 1 - start)
            return f, lst + 1, ok

        sa, ea, ok_a = rows("episode_a", "start_a", "stop_a")
        sb, eb, ok_b = rows("episode_b", "start_b", "stop_b")
        kept = ok_a & ok_b
        margin = (
            prefs["margin"].to_numpy().astype(np.float64) if "margin" in prefs.columns else None
        )
        pairs = cls(
            sa[kept],
            ea[kept],
            sb[kept],
            eb[kept],
            prefs["label"].to_numpy().astype(np.float64)[kept],
            None if margin is None else margin[kept],
        )
        return (pairs, kept) if return_kept else pairs


# ----------------------------------------------------------------------- estimator


class PreferenceRewardModel(BaseEstimator):
    """A per-step reward learned from preferences between segments (Bradley–Terry).

    Fits r̂(x) on per-step features so that P(A ≻ B) = σ(Σ_A r̂ − Σ_B r̂) explains the
    judged pairs, with LightGBM or XGBoost through a custom objective (each step's
    gradient and hessian come from the log-likelihood of the pairs its segment is in;
    derivation in :func:`rmlite.models.preference.bt_objective`) or the torch MLP on the
    same loss. Learned rewards are identified up to a positive scale (and, for
    equal-length segments, a constant, which ``centering`` pins near 0).

    Parameters
    ----------
    backend
        ``"lightgbm"`` (default), ``"xgboost"`` or ``"mlp"``.
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    n_estimators
        Boosting rounds (trees).
    max_epochs
        Passes over the pairs (MLP).
    learning_rate
        Default 0.3 for trees (their per-step hessian is a conservative majorizer), 1e-3
        for the MLP.
    label_noise
        ε in [0, 0.5]: the chance that a judgement is a coin flip; the likelihood uses
        (1 − ε) σ(z) + ε/2 (Christiano et al. 2017 use 0.1 for human labels).
    margin_scale
        Multiplies the pairs' margins (0 ignores them).
    centering
        λ of the penalty λ · mean(r̂)² per pair.
    n_members
        Ensemble size: members train on bootstrap resamples of the pairs (and, for
        trees, other seeds); ``predict(X, return_std=True)`` returns their spread.
    early_stopping_rounds, validation_fraction
        MLP: hold out this share of the pairs (of whole episodes when ``groups`` reach
        ``fit``) and stop when their loss has not improved for this many epochs.
    random_state, n_jobs
        Seed; CPU threads.
    hidden_sizes, activation, dropout, weight_decay
        MLP architecture and AdamW's weight decay.
    batch_size
        Pairs per MLP mini-batch.
    backend_params
        Native tree parameters (override rmlite's defaults: small randomized trees).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.linspace(-1, 1, 400, dtype=np.float32).reshape(-1, 1)
    >>> pairs = PreferencePairs(start_a=[0, 300], stop_a=[10, 310], start_b=[200, 50],
    ...                         stop_b=[210, 60], label=[0.0, 1.0])
    >>> model = PreferenceRewardModel(n_estimators=20, random_state=0,
    ...                               backend_params={"min_data_in_leaf": 5}).fit(X, pairs)
    >>> bool(model.predict(X[[350]])[0] > model.predict(X[[5]])[0])
    True
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **PARAMETER_CONSTRAINTS,
        "label_noise": [Interval(Real, 0.0, 0.5, closed="both")],
        "margin_scale": [Interval(Real, 0.0, None, closed="left")],
        "centering": [Interval(Real, 0.0, None, closed="left")],
    }

    def __init__(
        self,
        backend: str = "lightgbm",
        device: str = "cpu",
        *,
        n_estimators: int = 1000,
        max_epochs: int = 40,
        learning_rate: float | None = None,
        label_noise: float = 0.0,
        margin_scale: float = 1.0,
        centering: float = 1e-3,
        n_members: int = 1,
        early_stopping_rounds: int | None = None,
        validation_fraction: float = 0.1,
        random_state: int | None = None,
        n_jobs: int | None = None,
        hidden_sizes: tuple[int, ...] = (64, 64),
        activation: str = "relu",
        dropout: float = 0.0,
        weight_decay: float = 1e-4,
        batch_size: int = 32,
        backend_params: dict[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        self.device = device
        self.n_estimators = n_estimators
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.label_noise = label_noise
        self.margin_scale = margin_scale
        self.centering = centering
        self.n_members = n_members
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.backend_params = backend_params

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.backend != "mlp"
        tags.target_tags.required = True
        return tags

    def check_params(self) -> None:
        """Validate every parameter without fitting; raise :class:`ParameterError`."""
        try:
            validate_parameter_constraints(
                self._parameter_constraints,
                self.get_params(deep=False),
                caller_name=type(self).__name__,
            )
            if self.backend_params and self.backend != "mlp":
                from rmlite.models.gbm import check_backend_params, check_backend_values

                check_backend_params(self.backend, list(self.backend_params))  # type: ignore[arg-type]
                check_backend_values(self.backend, self.backend_params)  # type: ignore[arg-type]
            if self.backend_params and self.backend == "mlp":
                raise ValueError(
                    "backend_params are native tree parameters; the MLP backend takes "
                    "hidden_sizes, activation, dropout and weight_decay instead."
                )
            resolve_device(self.device)
        except RmliteError:
            raise
        except ValueError as exc:
            raise ParameterError(str(exc)) from exc

    # ------------------------------------------------------------------ fit

    def fit(self, X: Any, pairs: PreferencePairs, groups: Any = None) -> PreferenceRewardModel:
        """Fit per-step rewards to judged pairs.

        Parameters
        ----------
        X
            Per-step features, one row per step (a FeatureFrame's ``X``).
        pairs
            The judged pairs, as row ranges of ``X`` (:class:`PreferencePairs`).
        groups
            Episode id of each row: the MLP's validation pairs are then whole episodes.
        """
        self.check_params()
        if not isinstance(pairs, PreferencePairs):
            raise SchemaError(
                f"PreferenceRewardModel.fit expects pairs as PreferencePairs (row ranges of X "
                f"and labels); got {type(pairs).__name__}. Build them with "
                f"PreferencePairs.from_segments(frame.groups, frame.steps, store.preferences(...))."
            )
        X = validate_data(
            self,
            X,
            dtype=np.float32,
            order="C",
            ensure_all_finite="allow-nan" if self.backend != "mlp" else True,
        )
        if len(pairs) == 0:
            raise SchemaError("PreferenceRewardModel.fit was given no preference pairs.")
        n = X.shape[0]
        if max(pairs.stop_a.max(), pairs.stop_b.max()) > n:
            raise SchemaError(
                f"the pairs' segments reach row {max(pairs.stop_a.max(), pairs.stop_b.max())}, "
                f"but X has {n} rows."
            )
        groups_arr = None if groups is None else np.asarray(groups)
        if groups_arr is not None and len(groups_arr) != n:
            raise SchemaError(f"groups has {len(groups_arr)} entries but X has {n} rows.")
        self.device_ = resolve_device(self.device)
        rng = np.random.default_rng(
            self.random_state if isinstance(self.random_state, int | np.integer) else None
        )
        started = time.perf_counter()
        self.members_: list[Any] = []
        self.curves_: list[dict[str, list[float]]] = []
        for member in range(self.n_members):
            index = np.arange(len(pairs))
            val = None
            if self.backend == "mlp" and self.early_stopping_rounds is not None:
                index, val = _validation_pairs(rng, pairs, groups_arr, self.validation_fraction)
            if self.n_members > 1:
                index = index[rng.integers(0, len(index), size=len(index))]
            model, curves = self._fit_member(X, pairs, index, val, member)
            self.members_.append(model)
            self.curves_.append(curves)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _problem(self, pairs: PreferencePairs, n_steps: int) -> Any:
        from rmlite.models.preference import BTProblem

        margin = None
        if pairs.margin is not None and self.margin_scale > 0:
            margin = pairs.margin * float(self.margin_scale)
        return BTProblem(
            M=pairs.membership(n_steps),
            y=pairs.label,
            margin=margin,
            label_noise=float(self.label_noise),
            centering=float(self.centering),
        )

    def _fit_member(
        self,
        X: np.ndarray,
        pairs: PreferencePairs,
        index: np.ndarray,
        val: np.ndarray | None,
        member: int,
    ) -> tuple[Any, dict[str, list[float]]]:
        lr = self.learning_rate if self.learning_rate is not None else _LEARNING_RATE[self.backend]
        seed = None if self.random_state is None else int(self.random_state) + member
        problem = self._problem(pairs.subset(index), X.shape[0])
        if self.backend == "mlp":
            from rmlite.models.mlp import MLPConfig
            from rmlite.models.preference import fit_bt_mlp

            config = MLPConfig(
                hidden_sizes=tuple(int(h) for h in self.hidden_sizes),
                activation=self.activation,
                dropout=float(self.dropout),
                weight_decay=float(self.weight_decay),
                learning_rate=float(lr),
                max_epochs=int(self.max_epochs),
                early_stopping_rounds=self.early_stopping_rounds,
                device=self.device_,
                random_state=seed,
                n_threads=None if self.n_jobs in (None, -1) else int(self.n_jobs),
            )
            val_problem = None if val is None else self._problem(pairs.subset(val), X.shape[0])
            model = fit_bt_mlp(
                X,
                problem,
                config,
                X_val=X if val_problem is not None else None,
                val_problem=val_problem,
                batch_pairs=int(self.batch_size),
            )
            return model, {
                "train": list(model.history["train_loss"]),
                "valid": list(model.history["val_loss"]),
            }
        from rmlite.models.gbm import fit_gbm, gbm_params
        from rmlite.models.preference import tree_objective

        defaults = dict(_TREE_DEFAULTS[self.backend])
        if self.backend == "lightgbm":
            # 200 steps per leaf suits thousands of steps; small logs need smaller leaves.
            defaults["min_data_in_leaf"] = min(200, max(20, X.shape[0] // 40))
        params = gbm_params(
            self.backend,  # type: ignore[arg-type]
            objective="regression",
            learning_rate=float(lr),
            random_state=seed,
            n_jobs=self.n_jobs,
            device=self.device_,
            extra={**defaults, **(self.backend_params or {})},
        )
        # The custom objective replaces the native one; its metric would be meaningless.
        params.pop("metric", None)
        params.pop("eval_metric", None)
        if self.backend == "xgboost":
            params["base_score"] = 0.0
        booster, _ = fit_gbm(
            self.backend,  # type: ignore[arg-type]
            X,
            np.zeros(X.shape[0], dtype=np.float32),
            params,
            int(self.n_estimators),
            objective_fn=tree_objective(problem),
            native=self.backend_params,
        )
        return booster, {"train": [], "valid": []}

    # -------------------------------------------------------------- predict

    def _member_predictions(self, X: Any, check_input: bool = True) -> np.ndarray:
        check_is_fitted(self, "members_")
        if check_input:
            X = validate_data(
                self,
                X,
                reset=False,
                dtype=np.float32,
                order="C",
                ensure_all_finite="allow-nan" if self.backend != "mlp" else True,
            )
        out = np.empty((len(self.members_), X.shape[0]), dtype=np.float64)
        for i, model in enumerate(self.members_):
            if self.backend == "mlp":
                out[i] = model.predict(X)
            else:
                from rmlite.models.gbm import predict_gbm

                out[i] = predict_gbm(self.backend, model, X, raw=True, n_jobs=self.n_jobs)  # type: ignore[arg-type]
        return out

    def predict(self, X: Any, return_std: bool = False, check_input: bool = True) -> Any:
        """Predicted reward per step; with ``return_std``, also the members' spread."""
        preds = self._member_predictions(X, check_input)
        mean = preds.mean(axis=0)
        if return_std:
            return mean, preds.std(axis=0)
        return mean

    def predict_pessimistic(self, X: Any, k: float = 1.0) -> np.ndarray:
        """Lower-confidence reward ``mean - k * std`` over ensemble members."""
        mean, std = self.predict(X, return_std=True)
        return np.asarray(mean - k * std)

    def predict_preference(self, X: Any, pairs: PreferencePairs) -> Float64Array:
        """P(A ≻ B) for each pair under the learned reward (with the label noise)."""
        from rmlite.models.preference import bt_probability

        # Margins shape training only: a prediction compares the returns themselves.
        ra, rb = pairs.returns(self.predict(X))
        return bt_probability(ra - rb, float(self.label_noise))

    def score(self, X: Any, pairs: PreferencePairs) -> float:
        """Pairwise accuracy on the pairs with a strict preference."""
        r = self.predict(X)
        ra, rb = pairs.returns(r)
        return float(pairwise_metrics(ra - rb, pairs.label)["accuracy"])

    # ---------------------------------------------------------- persistence

    def save(self, path: PathLike) -> Path:
        """Write the model to a folder (native boosters or a ``state_dict``, plus JSON).

        Loads with :func:`rmlite.load_model`, like every rmlite model.
        """
        return write_model_folder(
            self,
            path,
            {
                "dataset": getattr(self, "dataset_", None),
                "train_episodes": getattr(self, "train_episodes_", None),
            },
        )

    @property
    def fingerprint(self) -> str:
        """A short hash of the model's parameters and training data."""
        import hashlib

        check_is_fitted(self, "members_")
        payload = json.dumps(
            [_jsonable(self.get_params()), getattr(self, "data_fingerprint_", None)],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def load_preference_model(
    folder: Path, meta: dict[str, Any], blobs: dict[str, bytes]
) -> PreferenceRewardModel:
    """Rebuild a saved :class:`PreferenceRewardModel` (called by :func:`rmlite.load_model`,
    which checked ``meta`` and read the member files' bytes ``blobs``)."""
    params = dict(meta["params"])
    params["hidden_sizes"] = tuple(params.get("hidden_sizes", (64, 64)))
    model = PreferenceRewardModel(**params)
    validate_parameter_constraints(
        model._parameter_constraints,
        model.get_params(deep=False),
        caller_name="PreferenceRewardModel",
    )
    # Trees predict with every round (best_iteration None), as they were fitted.
    for member in meta["members"]:
        member.pop("best_iteration", None)
    restore_fitted(model, folder, meta, blobs)
    return model


def _validation_pairs(
    rng: np.random.Generator,
    pairs: PreferencePairs,
    groups: np.ndarray | None,
    fraction: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation pair positions; by whole episodes when groups are known."""
    if groups is not None:
        ep_a, ep_b = groups[pairs.start_a], groups[pairs.start_b]
        train, test = split_pairs(ep_a, ep_b, fraction, int(rng.integers(2**31)))
        if train.any() and test.any():
            return np.flatnonzero(train), np.flatnonzero(test)
    in_val = rng.random(len(pairs)) < fraction
    if in_val.all() or not in_val.any():
        in_val[:] = False
        in_val[: max(1, len(pairs) // 10)] = True
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


# ------------------------------------------------------------------------ metrics


def pairwise_metrics(z: np.ndarray, label: np.ndarray, label_noise: float = 0.0) -> dict[str, Any]:
    """Accuracy and log-loss of predicted return differences ``z = R̂_A − R̂_B``.

    Accuracy counts pairs with a strict preference (label ≠ 0.5), a prediction being
    right when z has the label's side (z = 0 counts as half right). Log-loss uses the
    Bradley–Terry probability (with ``label_noise``) against the labels, soft ones too.

    Examples
    --------
    >>> m = pairwise_metrics(np.array([2.0, -1.0, 0.5]), np.array([1.0, 0.0, 0.0]))
    >>> round(m["accuracy"], 3), m["pairs"]
    (0.667, 3)
    """
    from rmlite.models.preference import bt_probability

    z = np.asarray(z, dtype=np.float64)
    label = np.asarray(label, dtype=np.float64)
    strict = label != 0.5
    side = np.sign(label[strict] - 0.5)
    hit = np.where(z[strict] == 0, 0.5, (np.sign(z[strict]) == side).astype(np.float64))
    p = np.clip(bt_probability(z, label_noise), 1e-12, 1 - 1e-12)
    log_loss = -np.mean(label * np.log(p) + (1 - label) * np.log1p(-p)) if len(z) else np.nan
    return {
        "pairs": len(z),
        "strict_pairs": int(strict.sum()),
        "accuracy": float(hit.mean()) if strict.any() else float("nan"),
        "log_loss": float(log_loss),
    }


def split_pairs(
    episode_a: np.ndarray, episode_b: np.ndarray, holdout: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test masks of pairs, split by episode.

    A share ``holdout`` of the episodes is held out; test pairs have both segments in
    held-out episodes, training pairs neither, and pairs that straddle are dropped: no
    test segment's episode is ever seen in training.

    Examples
    --------
    >>> train, test = split_pairs(np.array([0, 1, 2, 3]), np.array([1, 0, 3, 2]), 0.5, seed=0)
    >>> bool((train & test).any()), int(train.sum() + test.sum()) <= 4
    (False, True)
    """
    if not 0.0 < holdout < 1.0:
        raise ParameterError(
            f"The 'holdout' parameter must be a float in the range (0.0, 1.0). Got {holdout!r} instead."
        )
    episodes = np.unique(np.concatenate([episode_a, episode_b]))
    if len(episodes) < 2:
        raise SchemaError(
            f"an episode-grouped split of pairs needs segments from at least 2 episodes; "
            f"they come from {len(episodes)}."
        )
    rng = np.random.default_rng(seed)
    n_hold = min(len(episodes) - 1, max(1, round(len(episodes) * holdout)))
    held = rng.choice(episodes, size=n_hold, replace=False)
    in_a, in_b = np.isin(episode_a, held), np.isin(episode_b, held)
    return ~in_a & ~in_b, in_a & in_b
