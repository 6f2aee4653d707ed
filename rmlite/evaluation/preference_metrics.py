"""Metrics of preference reward models: pairwise accuracy and log-loss, return correlations, EPIC against the true reward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rmlite._typing import Float64Array, Int64Array
from rmlite.data.features import FeatureFrame
from rmlite.estimators.preference import PreferencePairs, PreferenceRewardModel, pairwise_metrics
from rmlite.evaluation.epic import epic_distance, model_reward_fn
from rmlite.exceptions import SchemaError


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
