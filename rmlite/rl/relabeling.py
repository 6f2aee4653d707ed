"""Learned rewards: a saved model as a per-step reward, and relabelling datasets with it.

- :class:`RewardFunction` turns a saved reward model into a per-step reward: features
  exactly as training built them, predictions back in reward units. The Gymnasium
  wrappers in :mod:`rmlite.rl.gym` and :func:`relabel` both use it.
- :func:`relabel` writes predicted rewards into a new dataset (or a Parquet file) and
  records where they came from; the source dataset is only read.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa

from rmlite._typing import PathLike
from rmlite.data import schema as S
from rmlite.data.features import (
    FeatureSpec,
    FittedStats,
)
from rmlite.data.step_features import StepFeaturizer
from rmlite.data.store import LogStore
from rmlite.exceptions import ParameterError, SchemaError
from rmlite.models.compiled import batch_plan

if TYPE_CHECKING:
    from rmlite.estimators.reward import RewardClassifier, RewardRegressor


class RewardFunction:
    """A saved reward model used as a per-step reward.

    Features are built exactly as training built them, from the model's saved feature spec
    and fitted statistics: per step by :class:`rmlite.data.step_features.StepFeaturizer`
    (equal to :func:`~rmlite.data.features.features_from_arrays`), whole datasets by
    :func:`~rmlite.data.features.build_features`. Predictions come back in reward units.
    Event models give the event probability. Return-to-go models are refused: a
    discounted return is not a per-step reward.

    Parameters
    ----------
    model
        A model trained by ``rmlite train`` / :func:`rmlite.pipeline.train`, or its folder.
    pessimism
        ``k`` of the lower-confidence reward ``mean - k * std`` over ensemble members
        (needs ``n_members > 1``); 0 uses the mean.
    n_jobs
        CPU threads per prediction. 1 (default) suits per-step batches of a few rows:
        threads gain little there, and next to an agent that trains in the same process
        they wait on each other (a 16-row LightGBM batch was 5x slower with 2 threads
        than with 1 on a busy 2-core machine). None keeps the model's own setting.
    compiled
        Predict LightGBM and XGBoost models through compiled trees (Treelite + TL2cgen,
        the ``fast`` extra): 4-30x faster per step, equal within float32 rounding. The
        first use compiles for a few seconds and caches the library in
        ``<model>/.compiled/`` (or the user cache, see README "Fast inference"). Without
        the compiler it logs one warning and uses the booster.
    """

    def __init__(
        self,
        model: RewardRegressor | RewardClassifier | PathLike,
        pessimism: float = 0.0,
        n_jobs: int | None = 1,
        compiled: bool = True,
    ) -> None:
        import copy

        from rmlite.estimators.loading import load_model

        self.path: str | None = None
        if isinstance(model, str | os.PathLike):
            self.path = os.fspath(model)
            model = load_model(model)
        spec_dict = getattr(model, "feature_spec_", None)
        stats_dict = getattr(model, "feature_stats_", None)
        if spec_dict is None or stats_dict is None:
            raise SchemaError(
                "this model carries no feature spec (it was fitted on a matrix, not by rmlite "
                "train), so its features cannot be rebuilt; train it with rmlite train or "
                "rmlite.pipeline.train."
            )
        model = copy.copy(model)  # shares the fitted members; the caller's model is unchanged
        if n_jobs is not None:
            model.n_jobs = n_jobs
        self.model = model
        self.spec = FeatureSpec.from_dict(spec_dict)
        self.stats = FittedStats.from_dict(stats_dict)
        if self.spec.target == "return":
            raise SchemaError(
                f"the model predicts the discounted return-to-go (target='return', gamma="
                f"{self.spec.gamma}), not a per-step reward: it cannot relabel rewards or "
                f"wrap an env. Train one with target='reward' (or 'event'); rmlite predict "
                f"gives its return predictions."
            )
        if not (isinstance(pessimism, int | float) and pessimism >= 0.0):
            raise ParameterError(
                f"The 'pessimism' parameter must be a float >= 0. Got {pessimism!r} instead."
            )
        if pessimism > 0 and int(getattr(model, "n_members", 1)) < 2:
            raise ParameterError(
                f"pessimism={pessimism} needs an ensemble (n_members > 1) to estimate a spread; "
                f"this model has one member. Train with --n-members 5, or use pessimism 0."
            )
        self.pessimism = float(pessimism)
        self.event = self.spec.target == "event"
        self.single = int(getattr(model, "n_members", 1)) == 1
        # Per-step batches of a tree regressor skip Booster.predict's per-call setup:
        # compiled trees, else LightGBM's single-row predictor.
        self._rows: list[Any] | None = None
        self._featurize: StepFeaturizer | None = None  # built by the first per-step call
        self.compiled = False
        if compiled:
            self.use_compiled()
        from rmlite.estimators.reward import RewardRegressor

        if self.compiled and isinstance(model, RewardRegressor):
            self._rows = list(model._compiled[1])
            for trees in self._rows:
                trees.n_jobs = model.n_jobs
        elif isinstance(model, RewardRegressor) and model.backend == "lightgbm":
            from rmlite.models.gbm import LightGBMRowPredictor, best_iteration

            self._rows = [
                LightGBMRowPredictor(m, model.n_features_in_, best_iteration("lightgbm", m))
                for m in model.members_
            ]

    def use_compiled(self, only_cached: bool = False) -> bool:
        """Switch to compiled trees (see ``compiled``); True if the model now uses them."""
        from rmlite.estimators.reward import RewardClassifier, RewardRegressor

        if not self.compiled and isinstance(self.model, RewardRegressor | RewardClassifier):
            cache = Path(self.path) / ".compiled" if self.path is not None else None
            self.compiled = self.model.use_compiled(cache, only_cached=only_cached)
        return self.compiled

    @property
    def fingerprint(self) -> str:
        """The model's fingerprint (parameters and training data)."""
        return str(self.model.fingerprint)

    def check_per_step(self) -> None:
        """Raise unless features of single transitions suffice (no lags)."""
        if self.spec.lags:
            raise SchemaError(
                f"the model was trained with FeatureSpec(lags={self.spec.lags}); the per-step "
                f"reward needs each episode's history for that. Train with lags=0 to wrap an env."
            )

    def predict_matrix(
        self, X: np.ndarray, check_input: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rewards (mean - pessimism * std) and the members' spread, in reward units."""
        if self.event:
            proba, std = self.model.predict_proba(X, return_std=True, check_input=check_input)
            return np.asarray(proba[:, 1] - self.pessimism * std, dtype=np.float64), std
        if self.single:  # no spread to compute (it costs as much as a small batch's features)
            mean = self.model.predict(X, check_input=check_input)  # type: ignore[call-arg]
            return self.stats.inverse_transform_target(mean), np.zeros(len(mean))
        mean, std = self.model.predict(X, return_std=True, check_input=check_input)  # type: ignore[call-arg]
        # Scaling (standard, min-max, ...) was part of the training preprocessing: undo it.
        reward = self.stats.inverse_transform_target(mean - self.pessimism * std)
        return reward, np.asarray(std) * self.stats.target_scale

    def __call__(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        next_obs: np.ndarray | None = None,
        step: np.ndarray | None = None,
    ) -> np.ndarray:
        """Rewards of a batch of transitions, one per row (float64)."""
        if self._featurize is None:  # checks the spec and statistics once, not every step
            self._featurize = StepFeaturizer(self.spec, self.stats)
        X = self._featurize(obs, action, next_obs, step)
        if self._rows is not None and len(X) <= self._rows[0].max_rows:
            if self.single:
                return self.stats.inverse_transform_target(self._rows[0](X))
            preds = np.stack([predict(X) for predict in self._rows])
            return self.stats.inverse_transform_target(
                preds.mean(axis=0) - self.pessimism * preds.std(axis=0)
            )
        # X is rmlite's own float32 C-contiguous matrix of the model's width: skip the
        # per-call scikit-learn validation, which costs more than a small batch's prediction.
        return self.predict_matrix(X, check_input=False)[0]


# ------------------------------------------------------------------------- relabel


@dataclass
class RelabelReport:
    """What :func:`relabel` wrote and where its rewards came from."""

    source: str
    target: str
    target_kind: str
    relabel_id: int
    rows: int
    rows_predicted: int
    reward_mean: float
    reward_min: float
    reward_max: float
    seconds: float
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.source} -> {self.target}: {self.rows_predicted:,} of {self.rows:,} "
            f"transitions relabeled (reward mean {self.reward_mean:.4g}, range "
            f"[{self.reward_min:.4g}, {self.reward_max:.4g}]) in {self.seconds:.2f} s; "
            f"relabel {self.relabel_id}"
        )


def relabel(
    store: LogStore,
    model: RewardRegressor | RewardClassifier | PathLike,
    dataset: str,
    out: PathLike,
    *,
    pessimism: float = 0.0,
    rescale: tuple[float, float] | None = None,
    progress: Callable[[str], None] | None = None,
) -> RelabelReport:
    """Write predicted rewards for every transition of a dataset, with provenance.

    Parameters
    ----------
    store, dataset
        Where the transitions are; the dataset is only read, its rewards stay as they are.
    model
        A model trained on a per-step target (reward or event), or its folder.
    out
        A new dataset name (the transitions are copied with the reward replaced), or a
        ``.parquet`` file (the same columns plus ``original_reward``; the provenance is
        also in the file's metadata under ``rmlite.relabel``).
    pessimism
        ``k`` of ``mean - k * std`` over ensemble members (offline RL's pessimism).
    rescale
        ``(low, high)``: map the predictions linearly onto this range (the map is
        recorded).

    Every relabel adds a row to the store's ``relabels`` table: the source and its
    fingerprint, the model's fingerprint and folder, the feature spec, gamma, pessimism,
    rescaling, counts and time. Transitions whose features cannot be built (a missing
    ``next_obs`` for a model that reads it) get a NULL reward, counted in the report.
    """
    say = progress or (lambda _m: None)
    started = time.perf_counter()
    # One big batch: all cores. Compiled trees where they win on such a batch: cached, or
    # compiled when the dataset repays it (compiled.batch_plan, README "Fast inference").
    fn = RewardFunction(model, pessimism=pessimism, n_jobs=None, compiled=False)
    if rescale is not None and not (len(rescale) == 2 and rescale[0] < rescale[1]):
        raise ParameterError(
            f"The 'rescale' parameter must be (low, high) with low < high. Got {rescale!r} instead."
        )
    out_s = os.fspath(out)
    to_file = out_s.endswith(".parquet")
    if not to_file and out_s == dataset:
        raise ParameterError(
            f"--out {out_s!r} is the source dataset; a relabel writes a new dataset and leaves "
            f"the source untouched. Choose another name."
        )

    say(f"building features of {dataset}")
    source_fingerprint = store.fingerprint(dataset)
    names = [str(n) for n in getattr(fn.model, "feature_names_in_", [])] or fn.stats.feature_names
    # A chunk of whole episodes at a time: only the predicted rewards are held whole,
    # never the feature matrix, whatever the dataset's size.
    groups: list[np.ndarray] = []
    steps: list[np.ndarray] = []
    rewards: list[np.ndarray] = []
    for frame in store.feature_chunks(dataset, fn.spec, fn.stats, require_target=False):
        if frame.feature_names != names:
            raise SchemaError(
                f"{dataset}: features {frame.feature_names[:6]}... do not match the model's "
                f"{names[:6]}...: is the dataset's obs/action size the one the model was "
                f"trained on?"
            )
        if not rewards:
            # Compiled trees where they win on batches the size of this first chunk (the
            # whole dataset when it fits in one): cached, or compiled when it repays.
            plan = batch_plan(str(getattr(fn.model, "backend", "")), len(frame))
            if plan != "no":
                fn.use_compiled(only_cached=plan == "cached")
        say(f"predicting {len(frame):,} rewards" + (" (compiled trees)" if fn.compiled else ""))
        groups.append(frame.groups)
        steps.append(frame.steps)
        rewards.append(fn.predict_matrix(frame.X)[0])
    reward = np.concatenate(rewards)
    n_predicted = len(reward)
    rescale_info = None
    if rescale is not None:
        low, high = float(rescale[0]), float(rescale[1])
        r_min, r_max = float(reward.min()), float(reward.max())
        a = (high - low) / (r_max - r_min) if r_max > r_min else 0.0
        b = low - a * r_min if r_max > r_min else (low + high) / 2
        reward = a * reward + b
        rescale_info = {"low": low, "high": high, "a": a, "b": b}
    predicted = pa.table(
        {
            S.EPISODE: pa.array(np.concatenate(groups), pa.int64()),
            S.STEP: pa.array(np.concatenate(steps), pa.int64()),
            S.REWARD: pa.array(reward, pa.float64()),
        }
    )
    provenance: dict[str, Any] = {
        "source_dataset": dataset,
        "source_fingerprint": source_fingerprint,
        "model_path": os.path.abspath(fn.path) if fn.path else None,
        "model_fingerprint": fn.fingerprint,
        "feature_spec": fn.spec.to_dict(),
        "gamma": fn.spec.gamma,
        "pessimism": fn.pessimism,
        "rescale": rescale_info,
        "rows_predicted": n_predicted,
    }
    if to_file:
        say(f"writing {out_s}")
        full = store.read(dataset, keys=True)
        pred = pl.from_arrow(predicted)
        assert isinstance(pred, pl.DataFrame)
        joined = store.label_episodes(  # the file shows the episode ids as ingested
            dataset,
            full.rename({S.REWARD: "original_reward"})
            .join(pred, on=[S.EPISODE, S.STEP], how="left", maintain_order="left")
            .select(*[c for c in S.COLUMNS if c != S.DATASET], "original_reward"),
        )
        provenance.update(target=os.path.abspath(out_s), target_kind="parquet", rows=joined.height)
        arrow = joined.to_arrow()
        meta = {b"rmlite.relabel": json.dumps({**provenance, "created_at": _now()}).encode()}
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **meta})
        import pyarrow.parquet as pq

        Path(out_s).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(arrow, out_s)
        relabel_id = store.record_relabel(provenance)
        rows = joined.height
    else:
        say(f"writing dataset {out_s}")
        provenance["target_kind"] = "dataset"
        relabel_id, rows = store.relabel_into(dataset, out_s, predicted, provenance)
        provenance.update(target=out_s, rows=rows)
    return RelabelReport(
        source=dataset,
        target=provenance["target"] if to_file else out_s,
        target_kind="parquet" if to_file else "dataset",
        relabel_id=relabel_id,
        rows=rows,
        rows_predicted=n_predicted,
        reward_mean=float(reward.mean()),
        reward_min=float(reward.min()),
        reward_max=float(reward.max()),
        seconds=time.perf_counter() - started,
        provenance=provenance,
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
