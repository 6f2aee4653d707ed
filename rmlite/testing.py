"""Small real logs for tests, docs, notebooks and benchmarks.

:func:`rollout` plays a Gymnasium environment (offline: classic-control and MuJoCo envs
ship with their packages) and returns its transitions in the canonical layout.
:func:`synthetic_log` makes a large MuJoCo-shaped log fast, for benchmarks.

Examples
--------
>>> log = rollout("Pendulum-v1", episodes=2, seed=0, max_steps=50)
>>> log.height, log["obs"][0].len(), log["truncated"].sum()
(100, 3, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import polars as pl

from rmlite.data import schema as S

Policy = Callable[[np.ndarray, np.random.Generator], Any]


def rollout(
    env_id: str = "Pendulum-v1",
    episodes: int = 5,
    seed: int = 0,
    *,
    max_steps: int | None = None,
    policy: Policy | None = None,
    layout: Literal["list", "flat"] = "list",
    **make_kwargs: Any,
) -> pl.DataFrame:
    """Roll out a Gymnasium environment and return its transitions.

    Parameters
    ----------
    env_id
        Any registered Gymnasium id (``Pendulum-v1``, ``Walker2d-v5``, ...).
    episodes
        Number of episodes.
    seed
        Seeds the environment resets and the default random policy.
    max_steps
        Step limit per episode (``max_episode_steps`` of ``gymnasium.make``).
    policy
        ``policy(obs, rng) -> action``; default samples the action space uniformly.
    layout
        ``"list"``: vector columns ``obs``/``action``/``next_obs``; ``"flat"``: numbered
        scalar columns ``obs_0, ..., act_0, ..., next_obs_0, ...``.
    """
    import gymnasium as gym

    env = gym.make(env_id, max_episode_steps=max_steps, **make_kwargs)
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    ep_ids, steps, obs_l, act_l, rew_l, next_l, term_l, trunc_l = ([] for _ in range(8))
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed * 100_003 + episode)
        t = 0
        while True:
            action = policy(obs, rng) if policy is not None else env.action_space.sample()
            next_obs, reward, terminated, truncated, _ = env.step(action)
            ep_ids.append(episode)
            steps.append(t)
            obs_l.append(np.asarray(obs, dtype=np.float32).ravel())
            act_l.append(np.atleast_1d(np.asarray(action, dtype=np.float32)))
            rew_l.append(float(reward))
            next_l.append(np.asarray(next_obs, dtype=np.float32).ravel())
            term_l.append(bool(terminated))
            trunc_l.append(bool(truncated))
            obs, t = next_obs, t + 1
            if terminated or truncated:
                break
    env.close()
    return _frame(
        np.asarray(ep_ids, dtype=np.int64),
        np.asarray(steps, dtype=np.int64),
        np.stack(obs_l),
        np.stack(act_l),
        np.asarray(rew_l, dtype=np.float64),
        np.stack(next_l),
        np.asarray(term_l),
        np.asarray(trunc_l),
        layout,
    )


def synthetic_log(
    rows: int = 1_000_000,
    obs_dim: int = 17,
    action_dim: int = 6,
    episode_length: int = 1000,
    seed: int = 0,
    layout: Literal["list", "flat"] = "list",
) -> pl.DataFrame:
    """A MuJoCo-shaped log (default: Walker/HalfCheetah sizes) made without simulation.

    Observations follow a damped random walk driven by the actions, so ``next_obs`` of a
    step equals ``obs`` of the next; the reward is a forward-velocity-like linear term
    minus a control cost, so models have something real to learn. Every episode is
    truncated at ``episode_length`` steps, like MuJoCo's time limit.
    """
    rng = np.random.default_rng(seed)
    n_eps = -(-rows // episode_length)
    total = n_eps * episode_length
    action = rng.uniform(-1, 1, size=(total, action_dim)).astype(np.float32)
    mix = rng.normal(size=(action_dim, obs_dim)).astype(np.float32) * 0.1
    # One extra observation per episode so that every step has a successor.
    noise = rng.normal(scale=0.05, size=(n_eps, episode_length + 1, obs_dim)).astype(np.float32)
    drive = np.zeros_like(noise)
    drive[:, 1:] = (action @ mix).reshape(n_eps, episode_length, obs_dim)
    states = np.cumsum(noise + drive, axis=1, dtype=np.float32) * np.float32(0.5)
    obs = states[:, :-1].reshape(total, obs_dim)
    next_obs = states[:, 1:].reshape(total, obs_dim)
    velocity = next_obs[:, 0] - obs[:, 0]
    reward = (velocity / 0.05 - 0.1 * np.square(action).sum(axis=1)).astype(np.float64)
    episode = np.repeat(np.arange(n_eps, dtype=np.int64), episode_length)
    step = np.tile(np.arange(episode_length, dtype=np.int64), n_eps)
    truncated = step == episode_length - 1
    sl = slice(0, rows)
    return _frame(
        episode[sl],
        step[sl],
        obs[sl],
        action[sl],
        reward[sl],
        next_obs[sl],
        np.zeros(rows, dtype=bool),
        truncated[sl],
        layout,
    )


def _frame(
    episode: np.ndarray,
    step: np.ndarray,
    obs: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    next_obs: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    layout: str,
) -> pl.DataFrame:
    head = pl.DataFrame({S.EPISODE: episode, S.STEP: step})
    tail = pl.DataFrame({S.REWARD: reward, S.TERMINATED: terminated, S.TRUNCATED: truncated})
    if layout == "flat":
        vecs = pl.DataFrame(
            {
                **{f"obs_{i}": obs[:, i] for i in range(obs.shape[1])},
                **{f"act_{i}": action[:, i] for i in range(action.shape[1])},
                **{f"next_obs_{i}": next_obs[:, i] for i in range(next_obs.shape[1])},
            }
        )
    else:
        vecs = pl.DataFrame(
            [
                _list_series(S.OBS, obs),
                _list_series(S.ACTION, action),
                _list_series(S.NEXT_OBS, next_obs),
            ]
        )
    return pl.concat([head, vecs, tail], how="horizontal")


def _list_series(name: str, matrix: np.ndarray) -> pl.Series:
    """An (n, d) float32 matrix as a list[f32] column, without a Python loop over rows."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pl.Series(name, matrix).arr.to_list()
