"""The preference job over the store: read pairs and features, split by episode, fit, score, save (``rmlite prefs train / evaluate``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rmlite._typing import PathLike
from rmlite.data import schema as S
from rmlite.data.features import FeatureSpec, FittedStats, build_features
from rmlite.data.store import LogStore
from rmlite.estimators.preference import PreferencePairs, PreferenceRewardModel, split_pairs
from rmlite.evaluation.preference_metrics import PreferenceData, preference_metrics
from rmlite.exceptions import ParameterError, SchemaError


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
        from rmlite.evaluation.reference import save_reference

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
    from rmlite.estimators.loading import load_model

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
