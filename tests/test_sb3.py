"""The learned reward in a Stable-Baselines3 vector env: one batch per step, terminal obs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from rmlite import FeatureSpec, LogStore
from rmlite.exceptions import ParameterError, SchemaError
from rmlite.pipeline import train
from rmlite.rl import RewardFunction, collect

pytest.importorskip("stable_baselines3")

from stable_baselines3.common.env_util import make_vec_env

from rmlite.rl.sb3 import LearnedRewardVecEnv


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Pendulum-v1 reward model whose features include the step (so resets matter)."""
    root = tmp_path_factory.mktemp("sb3")
    store = LogStore(root / "store.duckdb")
    collect(store, "Pendulum-v1", 8, "pend", max_steps=100, seed=0)
    spec = FeatureSpec(next_obs=True, delta=True, step=True, time_limit=200)
    train(store, "pend", spec, {"n_estimators": 40, "n_jobs": 1}, out=root / "m")
    return root / "m"


class CountingReward(RewardFunction):
    """A RewardFunction that records every batch it is called with."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[np.ndarray, ...]] = []

    def __call__(self, obs: Any, action: Any, next_obs: Any = None, step: Any = None) -> Any:
        self.calls.append(tuple(np.array(a, copy=True) for a in (obs, action, next_obs, step)))
        return super().__call__(obs, action, next_obs, step)


@pytest.mark.parametrize("mode", ["replace", "add"])
def test_rewards_are_the_models_on_each_transition(model: Path, mode: str) -> None:
    n = 3
    fn = CountingReward(model)
    venv = LearnedRewardVecEnv(
        make_vec_env("Pendulum-v1", n_envs=n, seed=0, env_kwargs={"max_episode_steps": 4}),
        fn,
        mode,  # type: ignore[arg-type]
    )
    reference = RewardFunction(model)
    obs = venv.reset()
    rng = np.random.default_rng(0)
    steps = np.zeros(n, dtype=np.int64)
    ends = 0
    for _ in range(10):  # episodes of 4 steps: two resets per sub-env
        actions = rng.uniform(-2, 2, (n, 1)).astype(np.float32)
        next_obs, rewards, dones, infos = venv.step(actions)
        # The transition's true last obs, not the next episode's first.
        final = np.stack(
            [
                info["terminal_observation"] if d else o
                for o, d, info in zip(next_obs, dones, infos, strict=True)
            ]
        )
        if dones.any():
            assert not np.array_equal(final[dones], next_obs[dones])
        expected = reference(obs, actions, final, steps)
        learned = np.array([info["learned_reward"] for info in infos])
        true = np.array([info["true_reward"] for info in infos])
        np.testing.assert_allclose(learned, expected, rtol=1e-6)
        assert (true < 0).all()  # Pendulum's own costs
        np.testing.assert_allclose(
            rewards, expected if mode == "replace" else true + expected, rtol=1e-5
        )
        assert rewards.dtype == np.float32
        steps = np.where(dones, 0, steps + 1)
        ends += int(dones.sum())
        obs = next_obs
    assert ends == 2 * n
    assert [len(c[0]) for c in fn.calls] == [n] * 10  # one batch per step


@pytest.mark.slow  # the README's example trains PPO and SAC too
def test_agent_trains_on_the_learned_reward(model: Path) -> None:
    from stable_baselines3 import PPO

    venv = LearnedRewardVecEnv(make_vec_env("Pendulum-v1", n_envs=2, seed=0), model)
    agent = PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
    agent.learn(64)
    assert agent.num_timesteps == 64
    # What the rollout buffer holds is the learned reward, not Pendulum's.
    buffered = agent.rollout_buffer.rewards
    assert buffered.shape == (32, 2) and np.isfinite(buffered).all()


def test_refuses_what_it_cannot_serve(model: Path) -> None:
    with pytest.raises(TypeError, match="wraps a Stable-Baselines3 VecEnv; got TimeLimit"):
        LearnedRewardVecEnv(gym.make("Pendulum-v1"), model)
    with pytest.raises(SchemaError, match="this env has obs of 4 and actions of 1"):
        LearnedRewardVecEnv(make_vec_env("CartPole-v1", n_envs=1), model)
    with pytest.raises(ParameterError, match="'mode' parameter"):
        LearnedRewardVecEnv(make_vec_env("Pendulum-v1", n_envs=1), model, "scale")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step"):
        LearnedRewardVecEnv(make_vec_env("Pendulum-v1", n_envs=1), model).step(np.zeros((1, 1)))
