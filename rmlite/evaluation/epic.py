"""EPIC distance between reward functions (Gleave et al. 2021), and a fitted model as such a function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from rmlite._typing import Float64Array
from rmlite.data import schema as S
from rmlite.data.features import FeatureSpec, FittedStats, build_features
from rmlite.exceptions import SchemaError

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
