"""The main job, top-down: collect → ingest → check → features (→ fit → validate → save).

``rmlite quickstart`` runs it on the embedded default store. Model training joins here
when the estimators land; until then the job ends with the feature matrix a model would
train on, split by episode into training and hold-out sets.

Examples
--------
>>> import tempfile, os
>>> summary = quickstart(db=os.path.join(tempfile.mkdtemp(), "qs.duckdb"), episodes=4)
>>> summary["transitions"], summary["problems"]
(800, 'none')
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rmlite.features import FeatureSpec
from rmlite.store import LogStore, default_path
from rmlite.testing import rollout

QUICKSTART_ENV = "Pendulum-v1"
QUICKSTART_DATASET = "pendulum"


def quickstart(
    db: str | None = None,
    episodes: int = 40,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Roll out Pendulum-v1, ingest it, check it, build features; return a summary.

    Running it twice is safe: the second ingest finds every transition already stored.
    """
    say = progress or (lambda _m: None)
    timings: dict[str, float] = {}
    store = LogStore(db or default_path())

    t = time.perf_counter()
    say(f"rolling out {QUICKSTART_ENV} for {episodes} episodes")
    log = rollout(QUICKSTART_ENV, episodes=episodes, seed=seed)
    timings["collect_s"] = time.perf_counter() - t

    t = time.perf_counter()
    report = store.ingest(log, dataset=QUICKSTART_DATASET, progress=say)
    timings["ingest_s"] = time.perf_counter() - t

    t = time.perf_counter()
    say("checking the log")
    check = store.check(QUICKSTART_DATASET)
    timings["check_s"] = time.perf_counter() - t

    # Hold out a fifth of the episodes; statistics are fitted on the rest only.
    t = time.perf_counter()
    say("building features")
    episode_ids = store.episodes(QUICKSTART_DATASET)["episode_id"].to_numpy()
    rng = np.random.default_rng(seed)
    holdout = rng.choice(episode_ids, size=max(1, len(episode_ids) // 5), replace=False)
    train = np.setdiff1d(episode_ids, holdout)
    spec = FeatureSpec(next_obs=True, target="reward", missing="drop")
    frame = store.features(QUICKSTART_DATASET, spec, train_episodes=train)
    timings["features_s"] = time.perf_counter() - t

    return {
        "store": store.path,
        "dataset": QUICKSTART_DATASET,
        "env": QUICKSTART_ENV,
        "episodes": len(episode_ids),
        "transitions": int(check.values["transitions"]),
        "added_now": report.rows_added,
        "already_stored": report.rows_duplicate,
        "problems": "; ".join(check.problems) or "none",
        "reward_range": f"[{check.values['reward_min']:.3f}, {check.values['reward_max']:.3f}]",
        "feature_rows": len(frame),
        "features": len(frame.feature_names),
        "train_episodes": len(train),
        "holdout_episodes": len(holdout),
        **{k: round(v, 3) for k, v in timings.items()},
    }
