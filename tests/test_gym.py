"""The learned-reward Gymnasium wrappers, and per-step features built as training built them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from rmlite import FeatureSpec, LogStore
from rmlite.data.features import build_features, features_from_arrays
from rmlite.exceptions import ParameterError, SchemaError
from rmlite.pipeline import train
from rmlite.rl import RewardFunction, collect
from rmlite.rl.gym import LearnedReward, LearnedRewardVector
from rmlite.testing import rollout

SMALL = {
    "n_estimators": 60,
    "learning_rate": 0.2,
    "n_jobs": 1,
    "backend_params": {"num_leaves": 15},
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Reward, event, return and lagged models of Pendulum-v1, saved as folders."""
    root = tmp_path_factory.mktemp("gym")
    store = LogStore(root / "store.duckdb")
    collect(store, "Pendulum-v1", 16, "pend", max_steps=100, seed=0)
    specs = {
        "reward": FeatureSpec(next_obs=True, delta=True, step=True, time_limit=200),
        "event": FeatureSpec(target="event", event_threshold=-2.0),
        "return": FeatureSpec(target="return", gamma=0.9),
        "lags": FeatureSpec(lags=1),
    }
    for name, spec in specs.items():
        train(store, "pend", spec, SMALL, out=root / name)
    return {name: root / name for name in specs}


class CountingReward(RewardFunction):
    """A RewardFunction that records the batch size of every call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    def __call__(self, obs: Any, action: Any, next_obs: Any = None, step: Any = None) -> Any:
        self.batches.append(len(obs))
        return super().__call__(obs, action, next_obs, step)


def test_features_from_arrays_equal_build_features() -> None:
    log = rollout("Pendulum-v1", episodes=3, max_steps=30, seed=2)
    spec = FeatureSpec(next_obs=True, delta=True, step=True, time_limit=200, missing="mean")
    frame = build_features(log, spec)
    X = features_from_arrays(
        np.asarray(log["obs"].to_list()),
        np.asarray(log["action"].to_list()),
        np.asarray(log["next_obs"].to_list()),
        log["step"].to_numpy(),
        spec,
        frame.stats,
    )
    assert X.dtype == np.float32 and X.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(X, frame.X)
    # Missing inputs get the training fill value, as in build_features.
    obs = np.asarray(log["obs"].to_list())[:2].copy()
    obs[0, 1] = np.inf
    X2 = features_from_arrays(obs, np.zeros((2, 1)), obs, np.array([0, 1]), spec, frame.stats)
    assert X2[0, 1] == np.float32(frame.stats.fill_values[1])  # type: ignore[index]
    with pytest.raises(SchemaError, match=r"lags=1\) needs each episode's history"):
        features_from_arrays(obs, np.zeros((2, 1)), None, None, FeatureSpec(lags=1), frame.stats)
    with pytest.raises(SchemaError, match="expect obs of 3 and actions of 1"):
        features_from_arrays(
            np.zeros((2, 4)), np.zeros((2, 1)), np.zeros((2, 4)), None, spec, frame.stats
        )
    with pytest.raises(SchemaError, match="this spec uses next_obs; pass next_obs"):
        features_from_arrays(obs, np.zeros((2, 1)), None, np.array([0, 1]), spec, frame.stats)


def test_wrapper_replaces_the_reward_and_keeps_the_true_one(models: dict[str, Path]) -> None:
    plain = gym.make("Pendulum-v1")
    env = LearnedReward(gym.make("Pendulum-v1"), models["reward"])
    plain.reset(seed=5)
    env.reset(seed=5)
    actions = np.random.default_rng(0).uniform(-2, 2, (200, 1)).astype(np.float32)
    learned, true = [], []
    for t, action in enumerate(actions):
        _, r_plain, *_ = plain.step(action)
        _, reward, terminated, truncated, info = env.step(action)
        assert info["true_reward"] == r_plain and reward == info["learned_reward"]
        learned.append(reward)
        true.append(r_plain)
        assert truncated == (t == 199) and not terminated
    assert np.corrcoef(learned, true)[0, 1] > 0.98
    assert abs(np.sum(learned) - np.sum(true)) < 0.05 * abs(np.sum(true))


def test_wrapper_adds_the_learned_reward(models: dict[str, Path]) -> None:
    env = LearnedReward(gym.make("Pendulum-v1"), models["event"], mode="add")
    env.reset(seed=1)
    for _ in range(20):
        _, reward, _, _, info = env.step(env.action_space.sample())
        assert 0.0 <= info["learned_reward"] <= 1.0  # an event model gives probabilities
        assert reward == pytest.approx(info["true_reward"] + info["learned_reward"])


def test_vector_wrapper_predicts_all_envs_in_one_batch(models: dict[str, Path]) -> None:
    n = 6
    fn = CountingReward(models["reward"])
    envs = LearnedRewardVector(
        SyncVectorEnv([lambda: gym.make("Pendulum-v1", max_episode_steps=7)] * n), fn
    )
    obs, _ = envs.reset(seed=0)
    rng = np.random.default_rng(1)
    steps = np.zeros(n, dtype=np.int64)
    resetting = np.zeros(n, dtype=bool)
    for _ in range(20):  # several episodes: autoreset steps included
        actions = rng.uniform(-2, 2, (n, 1)).astype(np.float32)
        next_obs, reward, terminated, truncated, info = envs.step(actions)
        # Each sub-env on its own, one row at a time: the same rewards.
        one_by_one = np.array(
            [fn(obs[i : i + 1], actions[i : i + 1], next_obs[i : i + 1], steps[i : i + 1])[0]
             for i in range(n)]
        )  # fmt: skip
        fn.batches = fn.batches[:-n]
        expected = np.where(resetting, 0.0, one_by_one)  # a reset step is no transition
        np.testing.assert_allclose(reward, expected, rtol=1e-6)
        np.testing.assert_array_equal(info["learned_reward"], reward)
        assert (info["true_reward"][resetting] == 0).all()
        assert (info["true_reward"][~resetting] < 0).all()
        steps = np.where(resetting, 0, steps + 1)
        resetting = terminated | truncated
        obs = next_obs
    assert fn.batches == [n] * 20


def test_vector_wrapper_same_step_autoreset_uses_the_final_obs(models: dict[str, Path]) -> None:
    fn = RewardFunction(models["reward"])
    make = [lambda: gym.make("Pendulum-v1", max_episode_steps=3)] * 2
    envs = LearnedRewardVector(SyncVectorEnv(make, autoreset_mode=AutoresetMode.SAME_STEP), fn)
    obs, _ = envs.reset(seed=0)
    for t in range(3):
        actions = np.full((2, 1), 0.5, dtype=np.float32)
        next_obs, reward, _, truncated, info = envs.step(actions)
        final = np.stack(info["final_obs"]) if truncated.any() else next_obs
        expected = fn(obs, actions, final, np.full(2, t))
        np.testing.assert_allclose(reward, expected, rtol=1e-6)
        obs = next_obs
    assert truncated.all()


def test_wrappers_refuse_what_they_cannot_serve(models: dict[str, Path]) -> None:
    with pytest.raises(SchemaError, match="return-to-go"):
        LearnedReward(gym.make("Pendulum-v1"), models["return"])
    with pytest.raises(SchemaError, match=r"lags=1\); the per-step reward needs"):
        LearnedReward(gym.make("Pendulum-v1"), models["lags"])
    with pytest.raises(SchemaError, match="this env has obs of 4 and actions of 1"):
        LearnedReward(gym.make("CartPole-v1"), models["reward"])
    with pytest.raises(ParameterError, match="'mode' parameter of LearnedReward"):
        LearnedReward(gym.make("Pendulum-v1"), models["reward"], mode="multiply")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="needs an ensemble"):
        LearnedReward(gym.make("Pendulum-v1"), models["reward"], pessimism=1.0)
    with pytest.raises(gym.error.ResetNeeded, match="call reset"):
        LearnedReward(gym.make("Pendulum-v1"), models["reward"]).step(np.zeros(1))
    with pytest.raises(SchemaError, match="carries no feature spec"):
        from rmlite import RewardRegressor

        X = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
        RewardFunction(RewardRegressor(n_estimators=5).fit(X, X[:, 0]))


def test_wrapper_passes_gymnasium_and_sb3_check_env(models: dict[str, Path]) -> None:
    import warnings

    from gymnasium.envs.registration import EnvSpec
    from gymnasium.utils.env_checker import check_env

    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    env = LearnedReward(gym.make("Pendulum-v1", max_episode_steps=50), models["reward"], "add")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing but the known advice below
        warnings.filterwarnings("ignore", message=".*(different from the unwrapped|symmetric)")
        # Render modes need pygame (the env's extra, not ours): skipped.
        check_env(env, skip_render_check=True)
        sb3_checker.check_env(env, warn=True)
    # The spec records the wrapper with the model's folder: re-makeable and serializable.
    assert env.spec is not None
    wrapper = env.spec.additional_wrappers[-1]
    assert wrapper.name == "LearnedReward"
    assert wrapper.kwargs == {"model": str(models["reward"]), "mode": "add", "pessimism": 0.0}
    for remade in (env.spec.make(), gym.make(EnvSpec.from_json(env.spec.to_json()))):
        assert isinstance(remade, LearnedReward) and remade.mode == "add"
        remade.reset(seed=3)
        env.reset(seed=3)
        action = np.array([0.7], dtype=np.float32)
        assert remade.step(action)[1] == env.step(action)[1]


def test_vector_wrapper_points_sb3_users_to_their_wrapper(models: dict[str, Path]) -> None:
    vec_env = pytest.importorskip("stable_baselines3.common.vec_env")
    venv = vec_env.DummyVecEnv([lambda: gym.make("Pendulum-v1")])
    with pytest.raises(TypeError, match=r"Stable-Baselines3 VecEnv: wrap it with rmlite\.rl\.sb3"):
        LearnedRewardVector(venv, models["reward"])
