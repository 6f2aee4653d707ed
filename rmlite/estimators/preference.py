"""Learning rewards from preferences between segments (Bradley–Terry).

When ground-truth rewards are missing or untrusted, judgements "segment A is better than
segment B" still say a lot about the reward. :class:`PreferenceRewardModel` learns a
per-step reward r̂(s, a, s') whose segment sums explain them,
P(A ≻ B) = σ(Σ_A r̂ − Σ_B r̂), with boosted trees (a custom objective) or the torch MLP;
the math lives in :mod:`rmlite.models.preference`.

Also here: simulated teachers for benchmarks (:func:`synthetic_preferences`, B-Pref's
oracle), pairwise metrics, an episode-grouped split of pairs, EPIC distance between
reward functions (:func:`epic_distance`), and the store-level jobs behind
``rmlite prefs train / evaluate`` (:func:`train_preferences`,
:func:`evaluate_preferences`).

Examples
--------
>>> import numpy as np
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
from collections.abc import Callable
from dataclasses import dataclass, field
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
from rmlite.data import schema as S
from rmlite.data.features import FeatureFrame, FeatureSpec, FittedStats, build_features
from rmlite.data.store import LogStore
from rmlite.estimators.reward import PARAMETER_CONSTRAINTS
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
                from rmlite.models.gbm import check_backend_params

                check_backend_params(self.backend, list(self.backend_params))  # type: ignore[arg-type]
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
        from rmlite.estimators.reward import write_model_folder

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

        from rmlite.estimators.reward import _jsonable

        check_is_fitted(self, "members_")
        payload = json.dumps(
            [_jsonable(self.get_params()), getattr(self, "data_fingerprint_", None)],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def load_preference_model(folder: Path, meta: dict[str, Any]) -> PreferenceRewardModel:
    """Rebuild a saved :class:`PreferenceRewardModel` (called by :func:`rmlite.load_model`)."""
    params = dict(meta["params"])
    params["hidden_sizes"] = tuple(params.get("hidden_sizes", (64, 64)))
    model = PreferenceRewardModel(**params)
    model.n_features_in_ = int(meta["n_features_in"])
    if meta.get("feature_names"):
        model.feature_names_in_ = np.asarray(meta["feature_names"], dtype=object)
    model.device_ = meta.get("device_used", "cpu")
    if model.device_ == "cuda":
        model.device_ = resolve_device("auto")
    model.members_ = []
    for member in meta["members"]:
        if model.backend == "mlp":
            from rmlite.models.mlp import mlp_from_files

            model.members_.append(mlp_from_files(folder, member["name"], member["mlp"]))
        else:
            from rmlite.models.gbm import load_booster

            if not (folder / member["file"]).is_file():
                raise RmliteError(f"{folder}: member file {member['file']!r} is missing.")
            model.members_.append(load_booster(model.backend, folder, member["file"], None))  # type: ignore[arg-type]
    model.curves_ = meta.get("curves", [])
    model.fit_seconds_ = meta.get("fit_seconds", 0.0)
    for key in (
        "feature_spec",
        "feature_stats",
        "data_fingerprint",
        "metrics",
        "dataset",
        "train_episodes",
    ):
        if meta.get(key) is not None:
            setattr(model, f"{key}_", meta[key])
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


def return_correlations(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation of predicted and true segment returns."""
    from scipy.stats import pearsonr, spearmanr

    ok = np.isfinite(pred) & np.isfinite(true)
    if ok.sum() < 3 or np.std(true[ok]) == 0 or np.std(pred[ok]) == 0:
        return {"pearson": float("nan"), "spearman": float("nan")}
    return {
        "pearson": float(pearsonr(pred[ok], true[ok]).statistic),
        "spearman": float(spearmanr(pred[ok], true[ok]).statistic),
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


# ------------------------------------------------------------ simulated teachers


def synthetic_preferences(
    episode: np.ndarray,
    step: np.ndarray,
    reward: np.ndarray,
    n_pairs: int,
    segment_length: int,
    *,
    noise: float = 0.0,
    temperature: float = 0.0,
    tie_threshold: float = 0.0,
    seed: int = 0,
    annotator: str = "synthetic",
) -> pl.DataFrame:
    """Pairs of random segments labeled by a Bradley–Terry oracle over the true rewards.

    B-Pref's simulated teachers (Lee et al. 2021): segments of ``segment_length``
    consecutive steps are drawn uniformly from the logged episodes; the oracle prefers
    the larger true return, stochastically when ``temperature`` τ > 0
    (P(A ≻ B) = σ((R_A − R_B) / τ), the "Stoc" teacher with rationality β = 1/τ),
    labels pairs whose returns differ by at most ``tie_threshold`` as ties (0.5, the
    "Equal" teacher), then flips each strict label with probability ``noise`` (the
    "Mistake" teacher).

    Parameters
    ----------
    episode, step, reward
        Per-step keys and true rewards, sorted by (episode, step).
    n_pairs, segment_length
        How many pairs, and steps per segment.
    noise
        Flip rate in [0, 0.5].
    temperature
        τ >= 0; 0 is the deterministic teacher.
    tie_threshold
        Largest |R_A − R_B| labeled as a tie.
    seed
        Seeds the draws.
    annotator
        Name stored with the judgements.

    Returns
    -------
    polars.DataFrame
        Columns of the ``preferences`` table (without ``dataset``), ready for
        :meth:`rmlite.LogStore.ingest_preferences`.

    Examples
    --------
    >>> episode, step = np.repeat([0, 1], 50), np.tile(np.arange(50), 2)
    >>> prefs = synthetic_preferences(episode, step, step / 50.0, n_pairs=5, segment_length=10)
    >>> prefs.columns[:7]
    ['episode_a', 'start_a', 'stop_a', 'episode_b', 'start_b', 'stop_b', 'label']
    >>> bool((prefs["stop_a"] - prefs["start_a"] == 10).all())
    True
    """
    for name, value, low, high in (
        ("noise", noise, 0.0, 0.5),
        ("temperature", temperature, 0.0, np.inf),
        ("tie_threshold", tie_threshold, 0.0, np.inf),
    ):
        if not (isinstance(value, int | float) and low <= value <= high):
            interval = f"[{low}, {high}]" if np.isfinite(high) else f"[{low}, inf)"
            raise ParameterError(
                f"The '{name}' parameter of synthetic_preferences must be a float in the range "
                f"{interval}. Got {value!r} instead."
            )
    for name, ivalue in (("n_pairs", n_pairs), ("segment_length", segment_length)):
        if not (isinstance(ivalue, int | np.integer) and ivalue >= 1):
            raise ParameterError(
                f"The '{name}' parameter of synthetic_preferences must be an int >= 1. "
                f"Got {ivalue!r} instead."
            )
    episode = np.asarray(episode, dtype=np.int64)
    step = np.asarray(step, dtype=np.int64)
    reward = np.asarray(reward, dtype=np.float64)
    L = int(segment_length)
    n = len(step)
    # A row can start a segment when the row L − 1 below is the same episode, the steps in
    # between are consecutive, and every reward in the segment is known.
    known = np.concatenate([[0], np.cumsum(~np.isfinite(reward))])
    end = np.arange(n) + L - 1
    valid = end < n
    idx = np.flatnonzero(valid)
    ok = (episode[idx + L - 1] == episode[idx]) & (step[idx + L - 1] - step[idx] == L - 1)
    ok &= known[idx + L] - known[idx] == 0
    starts = idx[ok]
    if len(starts) == 0:
        raise SchemaError(
            f"no segment of {L} consecutive steps with known rewards exists in these "
            f"episodes; lower --segment-length (the longest episode has "
            f"{int(np.bincount(np.unique(episode, return_inverse=True)[1]).max()) if n else 0} steps)."
        )
    rng = np.random.default_rng(seed)
    a = starts[rng.integers(0, len(starts), size=n_pairs)]
    b = starts[rng.integers(0, len(starts), size=n_pairs)]
    c = np.concatenate([[0.0], np.cumsum(np.nan_to_num(reward))])
    diff = (c[a + L] - c[a]) - (c[b + L] - c[b])
    if temperature > 0:
        from rmlite.models.preference import bt_probability

        label = (rng.random(n_pairs) < bt_probability(diff / temperature)).astype(np.float64)
    else:
        label = np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
    label = np.where(np.abs(diff) <= tie_threshold, 0.5, label) if tie_threshold > 0 else label
    flip = (rng.random(n_pairs) < noise) & (label != 0.5)
    label = np.where(flip, 1.0 - label, label)
    return pl.DataFrame(
        {
            "episode_a": episode[a],
            "start_a": step[a],
            "stop_a": step[a] + L,
            "episode_b": episode[b],
            "start_b": step[b],
            "stop_b": step[b] + L,
            "label": label,
            "margin": pl.Series([None] * n_pairs, dtype=pl.Float64),
            "annotator": [annotator] * n_pairs,
        }
    )


# --------------------------------------------------------------------------- EPIC

RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``reward(obs, action, next_obs) -> r``, vectorized over rows."""


def canonicalize(
    reward: RewardFn,
    obs: np.ndarray,
    action: np.ndarray,
    next_obs: np.ndarray,
    states: np.ndarray,
    actions: np.ndarray,
    gamma: float,
) -> Float64Array:
    """EPIC's canonically shaped reward C(R) at the transitions (obs, action, next_obs).

    Gleave et al. 2021, Definition 4.1, with S, S' ~ D_S and A ~ D_A drawn independently:

        C(R)(s, a, s') = R(s, a, s') + E[γ R(s', A, S') − R(s, A, S') − γ R(S, A, S')]

    The expectations are means over the sample ``states`` (for S and S': the same
    sample, shifted by one, so that they are independent draws) and ``actions``. C(R) no
    longer changes when R gains a potential shaping γΦ(s') − Φ(s) or a constant.
    """
    m, k = len(obs), len(states)
    S_next = np.roll(states, 1, axis=0)  # S' paired with S: a different draw for each j

    def mean_from(s: np.ndarray) -> Float64Array:
        # E_{A, S'}[R(s, A, S')] for every row s: k evaluations per row, in one batch.
        rows = np.repeat(s, k, axis=0)
        values = reward(rows, np.tile(actions, (len(s), 1)), np.tile(S_next, (len(s), 1)))
        return np.asarray(values, dtype=np.float64).reshape(len(s), k).mean(axis=1)

    r = np.asarray(reward(obs, action, next_obs), dtype=np.float64)
    const = float(np.mean(reward(states, actions, S_next)))
    assert r.shape == (m,)
    return r + gamma * mean_from(next_obs) - mean_from(obs) - gamma * const


def epic_distance(
    reward_a: RewardFn,
    reward_b: RewardFn,
    obs: np.ndarray,
    action: np.ndarray,
    next_obs: np.ndarray,
    *,
    gamma: float = 0.99,
    n_samples: int = 1000,
    n_canonical: int = 64,
    seed: int = 0,
) -> float:
    """EPIC distance between two reward functions on logged transitions (Gleave et al. 2021).

    Both rewards are canonicalized (:func:`canonicalize`) with the same samples of the
    coverage distribution (the logged transitions; states and actions drawn from them
    independently), then compared with the Pearson distance sqrt((1 − ρ) / 2). The
    distance is 0 for rewards that differ only by potential shaping and positive
    rescaling (and constants), 1 for a reward and its negation.

    Parameters
    ----------
    reward_a, reward_b
        ``reward(obs, action, next_obs) -> r`` over rows.
    obs, action, next_obs
        Logged transitions (rows), the coverage distribution.
    gamma
        Discount of the shaping EPIC is invariant to.
    n_samples
        Transitions at which the canonical rewards are compared.
    n_canonical
        Samples of S, A, S' per expectation in the canonicalization.
    seed
        Seeds the samples.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s, a, s2 = rng.normal(size=(500, 2)), rng.normal(size=(500, 1)), rng.normal(size=(500, 2))
    >>> R = lambda s, a, s2: s[:, 0] - a[:, 0] ** 2
    >>> shaped = lambda s, a, s2: 3 * R(s, a, s2) + 0.99 * s2[:, 1] ** 2 - s[:, 1] ** 2
    >>> round(epic_distance(R, shaped, s, a, s2), 6)
    0.0
    >>> round(epic_distance(R, lambda s, a, s2: -R(s, a, s2), s, a, s2), 6)
    1.0
    """
    obs, action, next_obs = (np.asarray(v, dtype=np.float64) for v in (obs, action, next_obs))
    obs, action, next_obs = (v.reshape(len(v), -1) for v in (obs, action, next_obs))
    rng = np.random.default_rng(seed)
    n = len(obs)
    if n == 0:
        raise SchemaError("epic_distance needs logged transitions; got none.")
    at = rng.choice(n, size=min(n_samples, n), replace=False)
    pool = np.concatenate([obs, next_obs])
    states = pool[rng.integers(0, len(pool), size=n_canonical)]
    actions = action[rng.integers(0, n, size=n_canonical)]
    ca = canonicalize(reward_a, obs[at], action[at], next_obs[at], states, actions, gamma)
    cb = canonicalize(reward_b, obs[at], action[at], next_obs[at], states, actions, gamma)
    if np.std(ca) == 0 or np.std(cb) == 0:
        return float("nan")
    rho = float(np.clip(np.corrcoef(ca, cb)[0, 1], -1.0, 1.0))
    return float(np.sqrt((1.0 - rho) / 2.0))


def model_reward_fn(model: Any, spec: FeatureSpec, stats: FittedStats) -> RewardFn:
    """A fitted model as ``reward(obs, action, next_obs)``, features built as in training.

    Refuses specs whose features are not a function of (s, a, s') (step, progress, lags).
    """
    if spec.step or spec.time_limit is not None or spec.lags:
        raise SchemaError(
            "EPIC compares rewards of (s, a, s'); this model also reads the step index or "
            "earlier steps (FeatureSpec step/time_limit/lags), which resampled transitions "
            "do not have."
        )

    def reward(obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        m = len(obs)
        table = pl.DataFrame(
            {
                S.EPISODE: np.arange(m, dtype=np.int64),
                S.STEP: np.zeros(m, dtype=np.int64),
                S.OBS: np.asarray(obs, dtype=np.float32),
                S.ACTION: np.asarray(action, dtype=np.float32),
                S.NEXT_OBS: np.asarray(next_obs, dtype=np.float32),
                S.REWARD: np.full(m, np.nan),
                S.TERMINATED: np.zeros(m, dtype=bool),
                S.TRUNCATED: np.zeros(m, dtype=bool),
            }
        ).with_columns(
            pl.col(S.OBS).arr.to_list(),
            pl.col(S.ACTION).arr.to_list(),
            pl.col(S.NEXT_OBS).arr.to_list(),
        )
        frame = build_features(table, spec, stats=stats, require_target=False)
        if len(frame) != m:
            raise SchemaError("EPIC: some resampled transitions have missing inputs.")
        return np.asarray(model.predict(frame.X), dtype=np.float64)

    return reward


# -------------------------------------------------------------- store-level jobs


@dataclass
class PreferenceData:
    """Features of a dataset and its judged pairs located in them."""

    frame: FeatureFrame
    pairs: PreferencePairs
    episode_a: Int64Array
    episode_b: Int64Array
    dropped: int
    true_reward: Float64Array
    """The logged reward of each row (NaN where unknown)."""
    transitions: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    """(obs, action, next_obs, reward) of every logged transition with all four known:
    the coverage distribution of EPIC."""


def preference_data(
    store: LogStore,
    dataset: str,
    spec: FeatureSpec | None = None,
    *,
    train_episodes: Any = None,
    stats: FittedStats | None = None,
) -> PreferenceData:
    """Per-step features of a dataset and its stored pairs as row ranges of them."""
    spec = spec or FeatureSpec()
    prefs = store.preferences(dataset, keys=True)
    if prefs.height == 0:
        raise SchemaError(
            f"dataset {dataset!r} has no preference pairs; ingest some with rmlite prefs "
            f"ingest, or simulate them with rmlite prefs synth --dataset {dataset}."
        )
    table = store.read_arrow(dataset, spec.columns_needed())
    frame = build_features(
        table, spec, train_episodes=train_episodes, stats=stats, require_target=False
    )
    pairs, kept = PreferencePairs.from_segments(frame.groups, frame.steps, prefs, return_kept=True)
    if len(pairs) == 0:
        raise SchemaError(
            f"none of the {prefs.height} preference pairs of {dataset!r} has all its steps in "
            f"the feature rows (rows with missing inputs are dropped); try missing='mean'."
        )
    # The logged rewards of the kept rows, for ground-truth metrics (y is the unscaled
    # reward: preference specs use target='reward' and no scaling).
    true_reward = frame.stats.inverse_transform_target(frame.y.astype(np.float64))
    return PreferenceData(
        frame=frame,
        pairs=pairs,
        episode_a=prefs["episode_a"].to_numpy()[kept].astype(np.int64),
        episode_b=prefs["episode_b"].to_numpy()[kept].astype(np.int64),
        dropped=int((~kept).sum()),
        true_reward=true_reward,
    )


def preference_metrics(
    model: PreferenceRewardModel,
    data: PreferenceData,
    test: np.ndarray,
    *,
    epic: bool = True,
    epic_samples: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics of a model on the pairs ``test``: pairwise and, with true rewards, more.

    Pairwise accuracy and log-loss of the model and, where every step of the test pairs
    has a logged reward, of the true reward on the same labels; Pearson and Spearman
    correlation between predicted and true segment returns; and EPIC distance between
    the learned and the true reward on the dataset's logged transitions (the true reward
    is known only there, so EPIC evaluates a LightGBM regression of it, whose in-sample
    R² is reported as ``epic_true_reward_r2``).
    """
    pairs = data.pairs.subset(test)
    r_hat = model.predict(data.frame.X)
    ra, rb = pairs.returns(r_hat)
    out: dict[str, Any] = {"model": pairwise_metrics(ra - rb, pairs.label, model.label_noise)}
    ta, tb = pairs.returns(data.true_reward)
    has_truth = bool(np.isfinite(ta).all() and np.isfinite(tb).all() and len(pairs))
    if has_truth:
        out["true_reward"] = pairwise_metrics(ta - tb, pairs.label)
        out["segment_returns"] = return_correlations(np.r_[ra, rb], np.r_[ta, tb])
        if epic:
            out["epic"] = _epic_against_truth(model, data, epic_samples, seed)
    return out


def _epic_against_truth(
    model: PreferenceRewardModel, data: PreferenceData, samples: int, seed: int
) -> dict[str, Any]:
    from rmlite.estimators.reward import RewardRegressor

    try:
        learned = model_reward_fn(model, data.frame.spec, data.frame.stats)
    except SchemaError as exc:
        return {"distance": None, "note": str(exc)}
    if data.transitions is None or len(data.transitions[0]) == 0:
        return {"distance": None, "note": "no logged transition has a next_obs and a reward"}
    obs, action, next_obs, reward = data.transitions
    # The true reward is known only at logged transitions, and EPIC evaluates it at
    # resampled (s, A, S') too: use a regression of it on (s, a, s') as its stand-in.
    X_truth = np.hstack([obs, action, next_obs]).astype(np.float32)
    surrogate = RewardRegressor(
        n_estimators=300, learning_rate=0.1, random_state=seed, n_jobs=model.n_jobs
    )
    surrogate.fit(X_truth, reward)

    def truth(o: np.ndarray, a: np.ndarray, o2: np.ndarray) -> np.ndarray:
        return np.asarray(surrogate.predict(np.hstack([o, a, o2]).astype(np.float32)))

    distance = epic_distance(learned, truth, obs, action, next_obs, n_samples=samples, seed=seed)
    return {
        "distance": distance,
        "true_reward_r2": float(surrogate.score(X_truth, reward)),
        "transitions": len(obs),
    }


@dataclass
class PreferenceTrainResult:
    """What :func:`train_preferences` produced."""

    model: PreferenceRewardModel
    metrics: dict[str, Any]
    run_id: int | None
    model_path: str | None
    train_pairs: int
    test_pairs: int
    dropped_pairs: int
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the model object)."""
        return {
            "run_id": self.run_id,
            "model_path": self.model_path,
            "backend": self.model.backend,
            "metrics": self.metrics,
            "train_pairs": self.train_pairs,
            "test_pairs": self.test_pairs,
            "dropped_pairs": self.dropped_pairs,
            "timings": self.timings,
            "params": self.model.get_params(),
        }


def train_preferences(
    store: LogStore,
    dataset: str,
    spec: FeatureSpec | None = None,
    params: dict[str, Any] | None = None,
    *,
    holdout: float = 0.2,
    seed: int = 0,
    out: PathLike | None = None,
    epic: bool = True,
    record: bool = True,
    progress: Callable[[str], None] | None = None,
) -> PreferenceTrainResult:
    """Fit a :class:`PreferenceRewardModel` on a dataset's pairs; score held-out pairs.

    Pairs are split by episode (:func:`split_pairs`): the test pairs' episodes are never
    seen in training, and the feature statistics are fitted on training episodes only.
    The saved model carries its feature spec and statistics, so ``rmlite predict``,
    relabeling and the Gymnasium wrapper use it like any other rmlite model.
    """
    say = progress or (lambda _m: None)
    spec = spec or FeatureSpec()
    spec.validate()
    if spec.target != "reward" or spec.scaling != "none":
        raise ParameterError(
            "a preference model learns a per-step reward from pairs: use FeatureSpec with "
            f"target='reward' and scaling='none'. Got target={spec.target!r}, "
            f"scaling={spec.scaling!r}."
        )
    params = {"random_state": seed, **(params or {})}
    unknown = sorted(set(params) - set(PreferenceRewardModel().get_params()))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {unknown} of PreferenceRewardModel; see its docstring."
        )
    model = PreferenceRewardModel(**params)
    model.check_params()
    started = time.perf_counter()
    timings: dict[str, float] = {}

    say("reading preference pairs and building features")
    prefs = store.preferences(dataset, keys=True)
    if prefs.height == 0:
        raise SchemaError(
            f"dataset {dataset!r} has no preference pairs; ingest some with rmlite prefs "
            f"ingest, or simulate them with rmlite prefs synth --dataset {dataset}."
        )
    train_mask, test_mask = split_pairs(
        prefs["episode_a"].to_numpy(), prefs["episode_b"].to_numpy(), holdout, seed
    )
    train_eps = np.unique(
        np.concatenate(
            [prefs["episode_a"].to_numpy()[train_mask], prefs["episode_b"].to_numpy()[train_mask]]
        )
    )
    all_eps = store.episodes(dataset, keys=True)[S.EPISODE].to_numpy()
    held = np.unique(
        np.concatenate(
            [prefs["episode_a"].to_numpy()[test_mask], prefs["episode_b"].to_numpy()[test_mask]]
        )
    )
    fit_eps = np.setdiff1d(all_eps, held) if len(train_eps) else all_eps
    t = time.perf_counter()
    data = _load(store, dataset, spec, train_episodes=fit_eps)
    timings["features_s"] = time.perf_counter() - t
    in_held_a, in_held_b = np.isin(data.episode_a, held), np.isin(data.episode_b, held)
    train, test = ~in_held_a & ~in_held_b, in_held_a & in_held_b
    if not train.any():
        raise SchemaError(
            f"{dataset}: no preference pair is left for training after holding out "
            f"{len(held)} episodes; lower --holdout or add pairs."
        )

    say(f"fitting {model.backend} on {int(train.sum()):,} pairs")
    t = time.perf_counter()
    model.fit(data.frame.X, data.pairs.subset(train), groups=data.frame.groups)
    timings["fit_s"] = time.perf_counter() - t

    metrics: dict[str, Any] = {"train": preference_metrics(model, data, train, epic=False)}
    if test.any():
        say(f"scoring {int(test.sum()):,} held-out pairs")
        t = time.perf_counter()
        metrics["holdout"] = preference_metrics(model, data, test, epic=epic, seed=seed)
        timings["evaluate_s"] = time.perf_counter() - t
    model.feature_spec_ = spec.to_dict()
    model.feature_stats_ = data.frame.stats.to_dict()
    model.data_fingerprint_ = store.fingerprint(dataset)
    model.metrics_ = metrics
    model.dataset_ = dataset
    model.train_episodes_ = [int(e) for e in fit_eps]
    model_path = str(model.save(out)) if out is not None else None
    if model_path is not None:  # the training window that `rmlite monitor` compares with
        from rmlite.evaluation.validation import save_reference

        save_reference(model, data.frame, np.isin(data.frame.groups, fit_eps), model_path, seed)
    timings["total_s"] = time.perf_counter() - started
    run_id = None
    if record:
        run_id = store.record_run(
            {
                "kind": "prefs-train",
                "dataset": dataset,
                "target": "preferences",
                "backend": model.backend,
                "device": model.device_,
                "params": model.get_params(),
                "feature_spec": spec.to_dict(),
                "metrics": metrics,
                "data_fingerprint": model.data_fingerprint_,
                "model_path": model_path,
                "duration_s": timings["total_s"],
            }
        )
    return PreferenceTrainResult(
        model=model,
        metrics=metrics,
        run_id=run_id,
        model_path=model_path,
        train_pairs=int(train.sum()),
        test_pairs=int(test.sum()),
        dropped_pairs=data.dropped + int((~train & ~test).sum()),
        timings=timings,
    )


def evaluate_preferences(
    store: LogStore,
    model_dir: PathLike,
    dataset: str,
    *,
    epic: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics of a saved preference model on a dataset's pairs.

    On the dataset it was trained on, only pairs whose episodes the model never saw
    count (held out); on another dataset, every pair.
    """
    from rmlite.estimators.reward import load_model

    model = load_model(model_dir)
    if not isinstance(model, PreferenceRewardModel):
        raise SchemaError(
            f"{model_dir}: a {type(model).__name__}, not a preference model; use rmlite "
            f"evaluate for reward regressors."
        )
    spec_dict, stats_dict = (
        getattr(model, "feature_spec_", None),
        getattr(model, "feature_stats_", None),
    )
    if spec_dict is None or stats_dict is None:
        raise SchemaError(
            f"{model_dir}: the model carries no feature spec; train it with rmlite prefs train."
        )
    spec, stats = FeatureSpec.from_dict(spec_dict), FittedStats.from_dict(stats_dict)
    data = _load(store, dataset, spec, stats=stats)
    test = np.ones(len(data.pairs), dtype=bool)
    same = getattr(model, "dataset_", None) == dataset
    if same:
        seen = np.asarray(getattr(model, "train_episodes_", []) or [], dtype=np.int64)
        test = ~np.isin(data.episode_a, seen) & ~np.isin(data.episode_b, seen)
    if not test.any():
        raise SchemaError(
            f"{dataset}: every preference pair touches an episode the model was trained on; "
            f"evaluate on new episodes or another dataset."
        )
    return {
        "model": str(model_dir),
        "dataset": dataset,
        "backend": model.backend,
        "pairs": int(test.sum()),
        "held_out_only": same,
        "dropped_pairs": data.dropped,
        "metrics": preference_metrics(model, data, test, epic=epic, seed=seed),
    }


def _load(
    store: LogStore,
    dataset: str,
    spec: FeatureSpec,
    *,
    train_episodes: Any = None,
    stats: FittedStats | None = None,
) -> PreferenceData:
    """:func:`preference_data` plus the raw transitions EPIC needs."""
    from rmlite.data.features import vectors

    data = preference_data(store, dataset, spec, train_episodes=train_episodes, stats=stats)
    table = store.read_arrow(dataset, [S.OBS, S.ACTION, S.NEXT_OBS, S.REWARD])
    obs_dim = data.frame.stats.obs_dim
    act_dim = data.frame.stats.action_dim
    obs = vectors(table.column(S.OBS), obs_dim)
    action = vectors(table.column(S.ACTION), act_dim)
    next_obs = vectors(table.column(S.NEXT_OBS), obs_dim)
    reward = table.column(S.REWARD).to_numpy(zero_copy_only=False).astype(np.float64)
    ok = np.isfinite(next_obs).all(axis=1) & np.isfinite(reward)
    ok &= np.isfinite(obs).all(axis=1) & np.isfinite(action).all(axis=1)
    data.transitions = (obs[ok], action[ok], next_obs[ok], reward[ok])
    return data
