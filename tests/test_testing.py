"""rmlite.testing: the real rollouts and the synthetic log that every other test relies on."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rmlite.data import schema as S
from rmlite.testing import rollout, synthetic_log

PENDULUM_EPISODES = 4  # as in conftest.pendulum_log
PENDULUM_STEPS = 50


def _matrix(frame: pl.DataFrame, col: str) -> np.ndarray:
    return np.stack(frame[col].to_numpy())


def _successor_pairs(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(next_obs of each step that has a successor, obs of that successor)."""
    episode = frame[S.EPISODE].to_numpy()
    same = episode[1:] == episode[:-1]
    return _matrix(frame, S.NEXT_OBS)[:-1][same], _matrix(frame, S.OBS)[1:][same]


@pytest.mark.parametrize(("rows", "episode_length"), [(1000, 100), (250, 100), (7, 3), (1, 1000)])
def test_synthetic_log_next_obs_is_the_next_steps_obs(rows, episode_length):
    log = synthetic_log(rows=rows, obs_dim=5, action_dim=2, episode_length=episode_length)
    assert log.height == rows
    nxt, following = _successor_pairs(log)
    np.testing.assert_array_equal(nxt, following)
    # ... and the pairs really span every within-episode step.
    n_eps = -(-rows // episode_length)
    assert len(nxt) == rows - n_eps


def test_synthetic_log_layout():
    log = synthetic_log(rows=250, obs_dim=4, action_dim=3, episode_length=100)
    assert log.schema[S.OBS] == pl.List(pl.Float32)
    assert log.schema[S.ACTION] == pl.List(pl.Float32)
    assert log.schema[S.REWARD] == pl.Float64
    assert log[S.OBS].list.len().unique().to_list() == [4]
    assert log[S.ACTION].list.len().unique().to_list() == [3]
    assert log[S.EPISODE].to_list() == [0] * 100 + [1] * 100 + [2] * 50
    assert log[S.STEP].to_list() == [*range(100), *range(100), *range(50)]
    # Full episodes end truncated at the time limit; the cut-off last one has no end yet.
    ends = log.filter(pl.col(S.TRUNCATED))
    assert ends.select(S.EPISODE, S.STEP).rows() == [(0, 99), (1, 99)]
    assert not log[S.TERMINATED].any()


def test_synthetic_log_reward_is_velocity_minus_control_cost():
    log = synthetic_log(rows=300, obs_dim=3, action_dim=2, episode_length=100)
    obs, nxt, act = _matrix(log, S.OBS), _matrix(log, S.NEXT_OBS), _matrix(log, S.ACTION)
    expected = (nxt[:, 0] - obs[:, 0]) / 0.05 - 0.1 * np.square(act).sum(axis=1)
    np.testing.assert_allclose(log[S.REWARD].to_numpy(), expected, rtol=1e-5, atol=1e-5)
    assert np.all(np.abs(act) <= 1.0)


def test_synthetic_log_flat_layout_matches_list_layout():
    lists = synthetic_log(rows=120, obs_dim=3, action_dim=2, episode_length=50)
    flat = synthetic_log(rows=120, obs_dim=3, action_dim=2, episode_length=50, layout="flat")
    assert flat.columns == [
        S.EPISODE, S.STEP, "obs_0", "obs_1", "obs_2", "act_0", "act_1",
        "next_obs_0", "next_obs_1", "next_obs_2", S.REWARD, S.TERMINATED, S.TRUNCATED,
    ]  # fmt: skip
    np.testing.assert_array_equal(
        flat.select("obs_0", "obs_1", "obs_2").to_numpy(), _matrix(lists, S.OBS)
    )
    np.testing.assert_array_equal(
        flat.select("act_0", "act_1").to_numpy(), _matrix(lists, S.ACTION)
    )


def test_synthetic_log_is_deterministic_per_seed():
    a = synthetic_log(rows=200, obs_dim=3, action_dim=2, episode_length=50, seed=3)
    b = synthetic_log(rows=200, obs_dim=3, action_dim=2, episode_length=50, seed=3)
    c = synthetic_log(rows=200, obs_dim=3, action_dim=2, episode_length=50, seed=4)
    assert a.equals(b)
    assert not a.equals(c)


def test_pendulum_rollout(pendulum_log):
    log = pendulum_log
    assert log.height == PENDULUM_EPISODES * PENDULUM_STEPS
    assert log[S.OBS].list.len().unique().to_list() == [3]
    assert log[S.ACTION].list.len().unique().to_list() == [1]
    assert log[S.NEXT_OBS].list.len().unique().to_list() == [3]
    # Pendulum never terminates; the time limit truncates the last step of each episode.
    assert not log[S.TERMINATED].any()
    last = log.group_by(S.EPISODE).agg(pl.col(S.STEP).max(), pl.col(S.TRUNCATED).sum())
    assert last[S.STEP].to_list() == [PENDULUM_STEPS - 1] * PENDULUM_EPISODES
    assert last[S.TRUNCATED].to_list() == [1] * PENDULUM_EPISODES
    assert log.filter(pl.col(S.TRUNCATED))[S.STEP].to_list() == [PENDULUM_STEPS - 1] * 4
    # Pendulum's action space is [-2, 2]; its reward is never positive.
    assert np.all(np.abs(_matrix(log, S.ACTION)) <= 2.0)
    assert (log[S.REWARD] <= 0).all()


def test_rollout_next_obs_is_the_next_steps_obs(pendulum_log, walker_log):
    for log in (pendulum_log, walker_log):
        nxt, following = _successor_pairs(log)
        np.testing.assert_array_equal(nxt, following)


def test_walker_rollout(walker_log):
    log = walker_log
    assert log[S.OBS].list.len().unique().to_list() == [17]
    assert log[S.ACTION].list.len().unique().to_list() == [6]
    ends = log.group_by(S.EPISODE, maintain_order=True).agg(
        pl.len(), pl.col(S.TERMINATED).last(), pl.col(S.TRUNCATED).last()
    )
    # An episode that ran to the limit is truncated, one that ended early terminated.
    assert (ends.filter(pl.col(S.TRUNCATED))["len"] == 40).all()
    assert (ends.filter(pl.col(S.TERMINATED))["len"] < 40).all()
    assert not (ends[S.TERMINATED] & ends[S.TRUNCATED]).any()


def test_rollout_is_deterministic_and_flat_matches_lists(pendulum_log, pendulum_flat):
    again = rollout("Pendulum-v1", episodes=PENDULUM_EPISODES, seed=0, max_steps=PENDULUM_STEPS)
    assert again.equals(pendulum_log)
    other = rollout("Pendulum-v1", episodes=1, seed=1, max_steps=PENDULUM_STEPS)
    assert not np.array_equal(_matrix(other, S.OBS), _matrix(pendulum_log.head(50), S.OBS))
    np.testing.assert_array_equal(
        pendulum_flat.select("obs_0", "obs_1", "obs_2").to_numpy(), _matrix(pendulum_log, S.OBS)
    )
    np.testing.assert_array_equal(
        pendulum_flat["act_0"].to_numpy(), _matrix(pendulum_log, S.ACTION)[:, 0]
    )
    np.testing.assert_array_equal(
        pendulum_flat.select("next_obs_0", "next_obs_1", "next_obs_2").to_numpy(),
        _matrix(pendulum_log, S.NEXT_OBS),
    )


def test_rollout_uses_the_given_policy():
    seen = []

    def policy(obs, rng):
        seen.append(obs)
        return np.array([0.5], dtype=np.float32)

    log = rollout("Pendulum-v1", episodes=2, seed=0, max_steps=10, policy=policy)
    assert len(seen) == log.height == 20
    np.testing.assert_array_equal(_matrix(log, S.ACTION), np.full((20, 1), 0.5, dtype=np.float32))
    np.testing.assert_array_equal(np.stack(seen).astype(np.float32), _matrix(log, S.OBS))
