"""``rmlite bench prefs``: training time and held-out accuracy of the preference backends."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def bench_prefs(
    pairs: int = 20_000,
    episodes: int = 200,
    segment_length: int = 25,
    noise: float = 0.1,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Training time and held-out accuracy of the three preference backends, same pairs.

    Rolls out Pendulum-v1, simulates ``pairs`` judgements with a B-Pref teacher (flip
    rate ``noise``), splits them by episode, and trains LightGBM, XGBoost and the MLP
    on the same training pairs; the true reward's accuracy on the same held-out labels is
    the ceiling. ``progress`` is told each stage as it starts. It prints no target: the
    numbers compare the backends with each other and with that ceiling.
    """
    from rmlite.data.features import FeatureSpec, build_features
    from rmlite.estimators.preference import (
        PreferencePairs,
        PreferenceRewardModel,
        pairwise_metrics,
        split_pairs,
    )
    from rmlite.evaluation.preference_metrics import return_correlations
    from rmlite.evaluation.teacher import synthetic_preferences
    from rmlite.testing import rollout

    say = log or (lambda _m: None)
    stage = progress or (lambda _m: None)
    stage(f"rolling out {episodes} Pendulum-v1 episodes, simulating {pairs:,} judgements")
    log_frame = rollout("Pendulum-v1", episodes=episodes, seed=seed)
    frame = build_features(log_frame.to_arrow(), FeatureSpec(), require_target=False)
    reward = frame.y.astype(np.float64)
    prefs = synthetic_preferences(
        frame.groups, frame.steps, reward, pairs, segment_length, noise=noise, seed=seed
    )
    all_pairs = PreferencePairs.from_segments(frame.groups, frame.steps, prefs)
    train, test = split_pairs(
        prefs["episode_a"].to_numpy(), prefs["episode_b"].to_numpy(), 0.2, seed
    )
    held = all_pairs.subset(test)
    ta, tb = held.returns(reward)
    result: dict[str, Any] = {
        "pairs": pairs,
        "train_pairs": int(train.sum()),
        "test_pairs": int(test.sum()),
        "steps": len(frame),
        "segment_length": segment_length,
        "noise": noise,
        "true_reward_accuracy": pairwise_metrics(ta - tb, held.label)["accuracy"],
    }
    say(
        f"bench prefs: Pendulum-v1, {len(frame):,} steps, {pairs:,} pairs of {segment_length} "
        f"steps ({result['train_pairs']:,} train / {result['test_pairs']:,} held out), "
        f"flip rate {noise}"
    )
    for backend in ("lightgbm", "xgboost", "mlp"):
        stage(f"training the {backend} preference model")
        model = PreferenceRewardModel(backend=backend, label_noise=noise, random_state=seed)
        t = time.perf_counter()
        model.fit(frame.X, all_pairs.subset(train))
        seconds = time.perf_counter() - t
        ra, rb = held.returns(model.predict(frame.X))
        result[f"{backend}_fit_seconds"] = seconds
        result[f"{backend}_accuracy"] = pairwise_metrics(ra - rb, held.label)["accuracy"]
        result[f"{backend}_pearson"] = return_correlations(np.r_[ra, rb], np.r_[ta, tb])["pearson"]
    for k, v in result.items():
        say(f"  {k:40s} {v:,.4g}" if isinstance(v, float) else f"  {k:40s} {v:,}")
    return result
