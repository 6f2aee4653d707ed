"""Gymnasium wrappers that give an agent the learned reward instead of (or on top of) the env's.

:class:`LearnedReward` wraps one env; :class:`LearnedRewardVector` wraps a vector env and
predicts the rewards of all sub-envs in one batch. Both build each transition's features
exactly as the model's training did (its saved feature spec and statistics) and keep the
env's own reward in ``info["true_reward"]`` (the prediction in ``info["learned_reward"]``).

This module imports Gymnasium; ``import rmlite`` does not import it.

Examples
--------
>>> import gymnasium as gym, numpy as np
>>> from rmlite import FeatureSpec, LogStore
>>> from rmlite.pipeline import train
>>> from rmlite.testing import rollout
>>> store = LogStore(":memory:")
>>> _ = store.ingest(rollout("Pendulum-v1", episodes=6, max_steps=100), dataset="pend")
>>> model = train(store, "pend", FeatureSpec(), {"n_estimators": 100}).model
>>> env = LearnedReward(gym.make("Pendulum-v1"), model)
>>> obs, info = env.reset(seed=0)
>>> obs, reward, terminated, truncated, info = env.step(np.array([0.5], dtype=np.float32))
>>> bool(abs(reward - info["true_reward"]) < 0.5)
True
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from rmlite._typing import PathLike
from rmlite.exceptions import ParameterError, SchemaError
from rmlite.rl.relabeling import RewardFunction

if TYPE_CHECKING:
    from rmlite.estimators.reward import RewardClassifier, RewardRegressor

Mode = Literal["replace", "add"]


def _reward_function(
    model: RewardRegressor | RewardClassifier | RewardFunction | PathLike,
    pessimism: float,
    mode: str,
) -> RewardFunction:
    if mode not in ("replace", "add"):
        raise ParameterError(
            f"The 'mode' parameter of LearnedReward must be 'replace' or 'add'. Got {mode!r} "
            f"instead."
        )
    fn = model if isinstance(model, RewardFunction) else RewardFunction(model, pessimism)
    fn.check_per_step()
    return fn


def _check_spaces(fn: RewardFunction, obs_space: gym.Space[Any], act_space: gym.Space[Any]) -> None:
    if not isinstance(obs_space, gym.spaces.Box):
        raise SchemaError(f"the learned reward needs Box observations; the env has {obs_space}.")
    obs_dim = int(np.prod(obs_space.shape))
    act_dim = int(np.prod(act_space.shape)) if act_space.shape else 1
    if (obs_dim, act_dim) != (fn.stats.obs_dim, fn.stats.action_dim):
        raise SchemaError(
            f"the model was trained on obs of {fn.stats.obs_dim} and actions of "
            f"{fn.stats.action_dim} values; this env has obs of {obs_dim} and actions of "
            f"{act_dim}. Wrap the env the model's data came from."
        )


def _recordable(
    model: RewardRegressor | RewardClassifier | RewardFunction | PathLike,
) -> RewardRegressor | RewardClassifier | RewardFunction | str:
    """What the env spec records for ``model``: its folder where one is known.

    A folder path keeps ``env.spec`` re-makeable (``env.spec.make()``, Gymnasium's
    ``check_env``) and serializable (``env.spec.to_json()``); an in-memory model is
    recorded as the object itself, which re-makes the env in this process only.
    """
    if isinstance(model, str | os.PathLike):
        return os.fspath(model)
    if isinstance(model, RewardFunction) and model.path is not None and model.pessimism == 0:
        return model.path
    return model


class LearnedReward(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """One env whose reward is the learned one (``"replace"``) or the sum (``"add"``).

    It records its constructor arguments (the model as its folder when it was given one),
    so ``env.spec.make()`` rebuilds the wrapped env and Gymnasium's and Stable-Baselines3's
    ``check_env`` pass.

    Parameters
    ----------
    env
        The env to wrap (Box observations of the model's size).
    model
        A model trained on a per-step target (``rmlite train``), its folder, or a
        :class:`~rmlite.rl.RewardFunction`. Event models give the event probability;
        return-to-go models and models with lags are refused.
    mode
        ``"replace"``: the agent sees the learned reward; ``"add"``: env reward + learned.
    pessimism
        ``k`` of ``mean - k * std`` over ensemble members.
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        model: RewardRegressor | RewardClassifier | RewardFunction | PathLike,
        mode: Mode = "replace",
        *,
        pessimism: float = 0.0,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, model=_recordable(model), mode=mode, pessimism=pessimism
        )
        gym.Wrapper.__init__(self, env)
        self.reward_fn = _reward_function(model, pessimism, mode)
        _check_spaces(self.reward_fn, env.observation_space, env.action_space)
        self.mode = mode
        self._obs: np.ndarray | None = None
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs, self._t = np.asarray(obs), 0
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise gym.error.ResetNeeded("LearnedReward: call reset() before step().")
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        learned = float(
            self.reward_fn(
                self._obs.reshape(1, -1),
                np.asarray(action).reshape(1, -1),
                np.asarray(next_obs).reshape(1, -1),
                np.array([self._t]),
            )[0]
        )
        info = {**info, "true_reward": reward, "learned_reward": learned}
        self._obs, self._t = np.asarray(next_obs), self._t + 1
        out = learned if self.mode == "replace" else float(reward) + learned
        return next_obs, out, terminated, truncated, info


class LearnedRewardVector(gym.vector.VectorWrapper):
    """A vector env whose rewards are predicted for all sub-envs in one batch.

    Same parameters as :class:`LearnedReward`. Autoreset modes: in ``NextStep`` (the
    default of Gymnasium 1.x) the step that only resets a sub-env is not a transition and
    its learned reward is 0, like the env's; in ``SameStep`` the true last observation
    comes from ``info["final_obs"]``. ``info["true_reward"]`` and
    ``info["learned_reward"]`` hold one value per sub-env.
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv[Any, Any, Any],
        model: RewardRegressor | RewardClassifier | RewardFunction | PathLike,
        mode: Mode = "replace",
        *,
        pessimism: float = 0.0,
    ) -> None:
        if not isinstance(env, gym.vector.VectorEnv):
            sb3 = hasattr(env, "step_async") and hasattr(env, "step_wait")
            raise TypeError(
                f"LearnedRewardVector wraps a Gymnasium vector env; got {type(env).__name__}"
                + (
                    ", a Stable-Baselines3 VecEnv: wrap it with "
                    "rmlite.rl.sb3.LearnedRewardVecEnv instead."
                    if sb3
                    else ". Wrap a single env with LearnedReward."
                )
            )
        super().__init__(env)
        self.reward_fn = _reward_function(model, pessimism, mode)
        _check_spaces(self.reward_fn, env.single_observation_space, env.single_action_space)
        self.mode = mode
        self.autoreset_mode = AutoresetMode(
            env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        )
        n = env.num_envs
        self._obs: np.ndarray | None = None
        self._t = np.zeros(n, dtype=np.int64)
        self._resetting = np.zeros(n, dtype=bool)
        self._any_resetting = False
        self._all = np.ones(n, dtype=bool)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        mask = (options or {}).get("reset_mask")
        if mask is None or self._obs is None:
            self._t[:] = 0
            self._resetting[:] = False
        else:
            self._t[np.asarray(mask)] = 0
            self._resetting[np.asarray(mask)] = False
        self._any_resetting = bool(self._resetting.any())
        self._obs = np.asarray(obs)
        return obs, info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        if self._obs is None:
            raise gym.error.ResetNeeded("LearnedRewardVector: call reset() before step().")
        next_obs, reward, terminated, truncated, info = self.env.step(actions)
        n = self.num_envs
        done = np.logical_or(terminated, truncated)
        final = np.asarray(next_obs)
        if self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            # The returned obs of a finished sub-env is already the next episode's first.
            final = final.copy()
            for i in np.flatnonzero(done):
                final[i] = info["final_obs"][i]
        learned = self.reward_fn(
            self._obs.reshape(n, -1),
            np.asarray(actions).reshape(n, -1),
            final.reshape(n, -1),
            self._t,
        )
        if self.autoreset_mode == AutoresetMode.NEXT_STEP and self._any_resetting:
            learned[self._resetting] = 0.0  # a reset step: no transition, no reward
        info = {
            **info,
            "true_reward": reward,
            "_true_reward": self._all,
            "learned_reward": learned,
            "_learned_reward": self._all,
        }
        self._t += 1
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            if self._any_resetting:
                self._t[self._resetting] = 0
            # One test per step spares the two masked writes above when no sub-env resets.
            self._resetting, self._any_resetting = done, bool(done.any())
        elif self.autoreset_mode == AutoresetMode.SAME_STEP:
            self._t[done] = 0
        self._obs = np.asarray(next_obs)
        out = learned if self.mode == "replace" else np.asarray(reward, dtype=np.float64) + learned
        return next_obs, out, terminated, truncated, info
