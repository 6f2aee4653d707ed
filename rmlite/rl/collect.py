"""Closing the RL loop: collect logs from Gymnasium, relabel datasets, Minari in and out.

- :func:`collect` rolls out a Gymnasium env (vectorized) and ingests the transitions;
  :func:`collect_log` returns them without a store.
- :class:`RewardFunction` turns a saved reward model into a per-step reward: features
  exactly as training built them, predictions back in reward units. The Gymnasium
  wrappers in :mod:`rmlite.rl.gym` and :func:`relabel` both use it.
- :func:`relabel` writes predicted rewards into a new dataset (or a Parquet file) and
  records where they came from; the source dataset is only read.
- :func:`import_minari` / :func:`export_minari` move datasets between the store and local
  Minari datasets (nothing is downloaded).

Examples
--------
>>> import os, tempfile
>>> from rmlite import LogStore
>>> store = LogStore(os.path.join(tempfile.mkdtemp(), "rl.duckdb"))
>>> report = collect(store, "Pendulum-v1", episodes=3, dataset="pend", max_steps=20)
>>> report.transitions, report.ingest.rows_added
(60, 60)
>>> collect(store, "Pendulum-v1", episodes=3, dataset="pend", max_steps=20).ingest.rows_added
0
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa

from rmlite._typing import PathLike
from rmlite.data import schema as S
from rmlite.data.features import (
    FeatureSpec,
    FittedStats,
    build_features,
    features_from_arrays,
    vectors,
)
from rmlite.data.store import IngestReport, LogStore
from rmlite.exceptions import ParameterError, RmliteError, SchemaError

if TYPE_CHECKING:
    from rmlite.estimators.reward import RewardClassifier, RewardRegressor

BatchPolicy = Callable[[np.ndarray, np.random.Generator], Any]
"""``policy(obs_batch, rng) -> actions``: one action per row of the observation batch."""

Vectorization = Literal["sync", "async"]


# ------------------------------------------------------------------------- collect


@dataclass
class CollectReport:
    """What :func:`collect` did: the rollout and the ingest that landed it."""

    env: str
    episodes: int
    transitions: int
    num_envs: int
    mean_return: float
    episodes_terminated: int
    episodes_truncated: int
    collect_seconds: float
    ingest: IngestReport

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        out = asdict(self)
        out["ingest"] = self.ingest.to_dict()
        return out

    def __str__(self) -> str:
        return (
            f"{self.env}: {self.episodes} episodes ({self.transitions:,} transitions, mean "
            f"return {self.mean_return:.2f}) collected with {self.num_envs} envs in "
            f"{self.collect_seconds:.2f} s; {self.ingest}"
        )


def load_policy(policy: str | BatchPolicy, action_space: Any, seed: int) -> BatchPolicy:
    """A batch policy from ``"random"``, ``"module:callable"`` or a callable.

    ``"random"`` samples the (batched) action space, seeded with ``seed``. A
    ``"module:callable"`` is imported with importlib (the current folder is searched
    too) and called as ``callable(obs_batch, rng) -> actions``.
    """
    if callable(policy):
        return policy
    if policy == "random":
        action_space.seed(seed)
        return lambda _obs, _rng: action_space.sample()
    module_name, sep, attr = str(policy).partition(":")
    if not sep or not module_name or not attr:
        raise ParameterError(
            f"--policy {policy!r}: expected 'random' or 'module:callable' (for example "
            f"'my_agents:act', a function act(obs_batch, rng) -> actions)."
        )
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: a policy file beside the user
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ParameterError(
            f"--policy {policy!r}: cannot import {module_name!r} ({exc})."
        ) from exc
    func = getattr(module, attr, None)
    if not callable(func):
        raise ParameterError(
            f"--policy {policy!r}: module {module_name!r} has no callable {attr!r}."
        )
    return func


def _make_env_fn(env_id: str, max_steps: int | None, **make_kwargs: Any) -> Callable[[], Any]:
    import gymnasium as gym

    if env_id not in gym.envs.registry:
        import difflib

        close = difflib.get_close_matches(env_id, list(gym.envs.registry), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParameterError(f"--env {env_id!r} is not a registered Gymnasium environment{hint}.")

    def make() -> Any:
        return gym.make(env_id, max_episode_steps=max_steps, **make_kwargs)

    return make


def collect_log(
    env_id: str,
    episodes: int,
    *,
    policy: str | BatchPolicy = "random",
    seed: int = 0,
    num_envs: int = 8,
    max_steps: int | None = None,
    vectorization: Vectorization = "sync",
    progress: Callable[[str], None] | None = None,
    **make_kwargs: Any,
) -> pl.DataFrame:
    """Roll out ``episodes`` episodes of a Gymnasium env on a vector env; return transitions.

    The vector env autoresets in Gymnasium's next-step mode: the step after an episode
    ends only resets that sub-env (its action is ignored, its reward is 0), so it is not
    a transition and is not recorded. Episodes are numbered in the order they start
    (sub-env order within a step); sub-envs stop recording once ``episodes`` have
    started, and the rollout ends when every recorded episode has ended. With the same
    arguments the log is the same, row for row.

    Parameters
    ----------
    env_id
        A registered Gymnasium id (``Pendulum-v1``, ``Walker2d-v5``, ...).
    episodes
        Episodes to record.
    policy
        ``"random"``, ``"module:callable"``, or ``callable(obs_batch, rng) -> actions``.
    seed
        Seeds the sub-envs (``seed + i``), the random policy and ``rng``.
    num_envs
        Sub-envs stepped together (at most ``episodes``).
    max_steps
        Step limit per episode (``max_episode_steps`` of ``gymnasium.make``).
    vectorization
        ``"sync"`` (one process) or ``"async"`` (a process per sub-env).
    """
    import gymnasium as gym
    from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

    if not (isinstance(episodes, int) and episodes >= 1):
        raise ParameterError(f"--episodes must be a positive int. Got {episodes!r} instead.")
    if not (isinstance(num_envs, int) and num_envs >= 1):
        raise ParameterError(f"--num-envs must be a positive int. Got {num_envs!r} instead.")
    if vectorization not in ("sync", "async"):
        raise ParameterError(
            f"vectorization must be 'sync' or 'async'. Got {vectorization!r} instead."
        )
    say = progress or (lambda _m: None)
    n = min(num_envs, episodes)
    make = _make_env_fn(env_id, max_steps, **make_kwargs)
    vector_cls = SyncVectorEnv if vectorization == "sync" else AsyncVectorEnv
    envs = vector_cls([make] * n, autoreset_mode=AutoresetMode.NEXT_STEP)
    try:
        if not isinstance(envs.single_observation_space, gym.spaces.Box):
            raise SchemaError(
                f"{env_id}: collect records Box observations; this env observes "
                f"{envs.single_observation_space}. Flatten it with a Gymnasium wrapper."
            )
        act = load_policy(policy, envs.action_space, seed)
        rng = np.random.default_rng(seed)
        obs, _ = envs.reset(seed=seed)
        episode = np.arange(n, dtype=np.int64)
        t = np.zeros(n, dtype=np.int64)
        active = np.ones(n, dtype=bool)
        autoreset = np.zeros(n, dtype=bool)  # this sub-env's next step is a reset
        next_id, finished = n, 0
        report_every = max(1, episodes // 10)
        parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("e", "t", "o", "a", "r", "n", "d", "c")
        }
        while active.any():
            actions = act(obs, rng)
            next_obs, reward, terminated, truncated, _ = envs.step(actions)
            record = active & ~autoreset
            if record.any():
                a = np.asarray(actions, dtype=np.float32).reshape(n, -1)
                parts["e"].append(episode[record])
                parts["t"].append(t[record])
                parts["o"].append(np.asarray(obs, dtype=np.float32).reshape(n, -1)[record])
                parts["a"].append(a[record])
                parts["r"].append(np.asarray(reward, dtype=np.float64)[record])
                parts["n"].append(np.asarray(next_obs, dtype=np.float32).reshape(n, -1)[record])
                parts["d"].append(np.asarray(terminated, dtype=bool)[record])
                parts["c"].append(np.asarray(truncated, dtype=bool)[record])
            t += 1
            # Sub-envs that were resetting start their next episode with this step's obs.
            for i in np.flatnonzero(autoreset & active):
                if next_id < episodes:
                    episode[i], t[i], next_id = next_id, 0, next_id + 1
                else:
                    active[i] = False
            ended = record & (np.asarray(terminated) | np.asarray(truncated))
            before = finished
            finished += int(ended.sum())
            if finished // report_every != before // report_every:
                say(f"collected {finished}/{episodes} episodes of {env_id}")
            autoreset = np.asarray(terminated) | np.asarray(truncated)
            obs = next_obs
    finally:
        envs.close()
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    order = np.lexsort((cat["t"], cat["e"]))
    return _transitions_frame(
        cat["e"][order],
        cat["t"][order],
        cat["o"][order],
        cat["a"][order],
        cat["r"][order],
        cat["n"][order],
        cat["d"][order],
        cat["c"][order],
    )


def _transitions_frame(
    episode: np.ndarray,
    step: np.ndarray,
    obs: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    next_obs: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
) -> pl.DataFrame:
    """Arrays in the canonical layout (vectors as list[f32] columns, no Python row loop)."""

    def lists(name: str, matrix: np.ndarray) -> pl.Series:
        return pl.Series(name, np.ascontiguousarray(matrix, dtype=np.float32)).arr.to_list()

    return pl.DataFrame(
        [
            pl.Series(S.EPISODE, episode, dtype=pl.Int64),
            pl.Series(S.STEP, step, dtype=pl.Int64),
            lists(S.OBS, obs),
            lists(S.ACTION, action),
            lists(S.NEXT_OBS, next_obs),
            pl.Series(S.REWARD, reward, dtype=pl.Float64),
            pl.Series(S.TERMINATED, terminated, dtype=pl.Boolean),
            pl.Series(S.TRUNCATED, truncated, dtype=pl.Boolean),
        ]
    )


def collect(
    store: LogStore,
    env_id: str,
    episodes: int,
    dataset: str,
    *,
    policy: str | BatchPolicy = "random",
    seed: int = 0,
    num_envs: int = 8,
    max_steps: int | None = None,
    vectorization: Vectorization = "sync",
    progress: Callable[[str], None] | None = None,
    **make_kwargs: Any,
) -> CollectReport:
    """Roll out a Gymnasium env (see :func:`collect_log`) and ingest it into ``dataset``.

    The ingest is the store's own (one transaction, idempotent): collecting again with
    the same seed adds nothing.
    """
    started = time.perf_counter()
    log = collect_log(
        env_id,
        episodes,
        policy=policy,
        seed=seed,
        num_envs=num_envs,
        max_steps=max_steps,
        vectorization=vectorization,
        progress=progress,
        **make_kwargs,
    )
    seconds = time.perf_counter() - started
    ends = log.group_by(S.EPISODE).agg(
        pl.col(S.REWARD).sum(), pl.col(S.TERMINATED).last(), pl.col(S.TRUNCATED).last()
    )
    ingest = store.ingest(log, dataset=dataset, progress=progress)
    return CollectReport(
        env=env_id,
        episodes=ends.height,
        transitions=log.height,
        num_envs=min(num_envs, episodes),
        mean_return=float(ends[S.REWARD].mean() or 0.0),  # type: ignore[arg-type]
        episodes_terminated=int(ends[S.TERMINATED].sum()),
        episodes_truncated=int(ends[S.TRUNCATED].sum()),
        collect_seconds=seconds,
        ingest=ingest,
    )


# ------------------------------------------------------------------ reward function


class RewardFunction:
    """A saved reward model used as a per-step reward.

    Features are built exactly as training built them (the model's saved feature spec
    and fitted statistics, through :func:`rmlite.data.features.features_from_arrays` or
    :func:`~rmlite.data.features.build_features`), and predictions come back in reward units.
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
    """

    def __init__(
        self,
        model: RewardRegressor | RewardClassifier | PathLike,
        pessimism: float = 0.0,
        n_jobs: int | None = 1,
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
        if n_jobs is not None:
            model = copy.copy(model)  # shares the fitted members; the caller's model is unchanged
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
        # Per-step batches of a LightGBM regressor skip Booster.predict's per-call setup.
        self._rows: list[Any] | None = None
        from rmlite.estimators.reward import RewardRegressor

        if isinstance(model, RewardRegressor) and model.backend == "lightgbm":
            from rmlite.models.gbm import LightGBMRowPredictor, best_iteration

            self._rows = [
                LightGBMRowPredictor(m, model.n_features_in_, best_iteration("lightgbm", m))
                for m in model.members_
            ]

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
        X = features_from_arrays(obs, action, next_obs, step, self.spec, self.stats)
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
    fn = RewardFunction(model, pessimism=pessimism, n_jobs=None)  # one big batch: all cores
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
    table = store.read_arrow(dataset, fn.spec.columns_needed())
    frame = build_features(table, fn.spec, stats=fn.stats, require_target=False)
    names = [str(n) for n in getattr(fn.model, "feature_names_in_", [])] or fn.stats.feature_names
    if frame.feature_names != names:
        raise SchemaError(
            f"{dataset}: features {frame.feature_names[:6]}... do not match the model's "
            f"{names[:6]}...: is the dataset's obs/action size the one the model was trained on?"
        )
    say(f"predicting {len(frame):,} rewards")
    reward, _ = fn.predict_matrix(frame.X)
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
            S.EPISODE: pa.array(frame.groups, pa.int64()),
            S.STEP: pa.array(frame.steps, pa.int64()),
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
        "rows_predicted": len(frame),
    }
    if to_file:
        say(f"writing {out_s}")
        full = store.read(dataset)
        pred = pl.from_arrow(predicted)
        assert isinstance(pred, pl.DataFrame)
        joined = (
            full.rename({S.REWARD: "original_reward"})
            .join(pred, on=[S.EPISODE, S.STEP], how="left", maintain_order="left")
            .select(*[c for c in S.COLUMNS if c != S.DATASET], "original_reward")
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
        rows_predicted=len(frame),
        reward_mean=float(reward.mean()),
        reward_min=float(reward.min()),
        reward_max=float(reward.max()),
        seconds=time.perf_counter() - started,
        provenance=provenance,
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -------------------------------------------------------------------------- Minari


def _minari() -> Any:
    try:
        import minari
    except ImportError as exc:
        raise ImportError(
            "Minari support needs the 'minari' package: pip install 'rmlite[rl]'."
        ) from exc
    return minari


def _minari_root() -> str:
    return os.environ.get("MINARI_DATASETS_PATH") or os.path.join("~", ".minari", "datasets")


def import_minari(
    store: LogStore,
    dataset_id: str,
    dataset: str | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> IngestReport:
    """Ingest a local Minari dataset (never downloaded) into the store.

    Minari keeps ``n + 1`` observations per episode of ``n`` steps; they become ``obs``
    and ``next_obs``. Terminations and truncations stay apart. The store dataset is
    named ``dataset`` (default: the Minari id with ``/`` replaced by ``-``).
    """
    minari = _minari()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = minari.list_local_datasets()
    if dataset_id not in local:
        raise RmliteError(
            f"no local Minari dataset {dataset_id!r} under {_minari_root()} (MINARI_DATASETS_PATH); "
            f"local ones: {', '.join(sorted(local)) or 'none'}. rmlite never downloads: "
            f"fetch it first with `minari download {dataset_id}` if you mean to."
        )
    data = minari.load_dataset(dataset_id, download=False)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("e", "t", "o", "a", "r", "n", "d", "c")}
    for ep in data.iterate_episodes():
        if not isinstance(ep.observations, np.ndarray):
            raise SchemaError(
                f"Minari dataset {dataset_id!r}: episode {ep.id} has structured observations "
                f"({type(ep.observations).__name__}); rmlite stores flat Box observations."
            )
        length = len(ep.rewards)
        observations = np.asarray(ep.observations, dtype=np.float32).reshape(length + 1, -1)
        parts["e"].append(np.full(length, int(ep.id), dtype=np.int64))
        parts["t"].append(np.arange(length, dtype=np.int64))
        parts["o"].append(observations[:-1])
        parts["a"].append(np.asarray(ep.actions, dtype=np.float32).reshape(length, -1))
        parts["r"].append(np.asarray(ep.rewards, dtype=np.float64))
        parts["n"].append(observations[1:])
        parts["d"].append(np.asarray(ep.terminations, dtype=bool))
        parts["c"].append(np.asarray(ep.truncations, dtype=bool))
    if not parts["e"]:
        raise SchemaError(f"Minari dataset {dataset_id!r} holds no episodes.")
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    log = _transitions_frame(*(cat[k] for k in ("e", "t", "o", "a", "r", "n", "d", "c")))
    name = dataset or dataset_id.replace("/", "-")
    return store.ingest(log, dataset=name, progress=progress)


def export_minari(
    store: LogStore,
    dataset: str,
    dataset_id: str,
    *,
    env_id: str | None = None,
    data_format: Literal["hdf5", "arrow", "parquet"] = "arrow",
    author: str = "rmlite",
) -> str:
    """Write a store dataset as a new local Minari dataset; return its folder.

    Each episode needs the ``next_obs`` of its last step (Minari keeps ``n + 1``
    observations). ``env_id`` records the environment (its spaces must match the
    dataset); without it the spaces are unbounded float32 boxes of the dataset's sizes.
    """
    minari = _minari()
    import gymnasium as gym
    from minari.data_collector.episode_buffer import EpisodeBuffer

    frame = store.read(dataset, [S.OBS, S.ACTION, S.REWARD, S.NEXT_OBS, S.TERMINATED, S.TRUNCATED])
    if frame[S.REWARD].null_count():
        raise SchemaError(
            f"{dataset}: {frame[S.REWARD].null_count()} transitions have no reward; a Minari "
            f"dataset needs one per step. Relabel the dataset first (rmlite relabel)."
        )
    episode = frame[S.EPISODE].to_numpy()
    starts = np.flatnonzero(np.r_[True, episode[1:] != episode[:-1]])
    ends = np.r_[starts[1:], len(episode)]
    obs_dim, action_dim = (int(frame[c].list.len().max() or 0) for c in (S.OBS, S.ACTION))  # type: ignore[arg-type]
    obs = vectors(frame[S.OBS].to_arrow(), obs_dim)
    act = vectors(frame[S.ACTION].to_arrow(), action_dim)
    last_next = frame[S.NEXT_OBS].gather(ends - 1)
    if last_next.null_count():
        bad = episode[ends - 1][last_next.is_null().to_numpy()][:5].tolist()
        raise SchemaError(
            f"{dataset}: episodes {bad} lack the next_obs of their last step; Minari keeps "
            f"n + 1 observations per episode, so they cannot be exported."
        )
    final_obs = vectors(last_next.to_arrow(), obs_dim)
    reward = frame[S.REWARD].to_numpy()
    term = frame[S.TERMINATED].to_numpy()
    trunc = frame[S.TRUNCATED].to_numpy()
    buffers = [
        EpisodeBuffer(
            id=i,
            observations=np.concatenate([obs[lo:hi], final_obs[i : i + 1]]),
            actions=act[lo:hi],
            rewards=list(reward[lo:hi]),
            terminations=list(term[lo:hi]),
            truncations=list(trunc[lo:hi]),
            infos={},
        )
        for i, (lo, hi) in enumerate(zip(starts, ends, strict=True))
    ]
    obs_space = gym.spaces.Box(-np.inf, np.inf, (obs.shape[1],), np.float32)
    act_space = gym.spaces.Box(-np.inf, np.inf, (act.shape[1],), np.float32)
    kwargs: dict[str, Any] = {"observation_space": obs_space, "action_space": act_space}
    if env_id is not None:
        env = _make_env_fn(env_id, None)()
        shapes = (env.observation_space.shape, env.action_space.shape)
        env.close()
        if shapes[0] != obs_space.shape or (shapes[1] or (1,)) != act_space.shape:
            raise SchemaError(
                f"--env {env_id!r} observes {shapes[0]} and acts {shapes[1]}; dataset "
                f"{dataset!r} has obs {obs_space.shape} and actions {act_space.shape}."
            )
        kwargs = {"env": env_id} if shapes[1] else {**kwargs, "env": env_id}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # author e-mail, code link: optional metadata
        try:
            created = minari.create_dataset_from_buffers(
                dataset_id,
                buffers,
                algorithm_name="rmlite export",
                author=author,
                description=f"exported by rmlite from dataset {dataset!r} of {store.path}",
                data_format=data_format,
                **kwargs,
            )
        except ValueError as exc:
            raise RmliteError(f"Minari dataset {dataset_id!r}: {exc}") from exc
    return str(created.storage.data_path.parent)
