"""The learned reward inside a Stable-Baselines3 ``VecEnv``: one batched prediction per step.

:class:`LearnedRewardVecEnv` wraps any SB3 vector env (``DummyVecEnv``, ``SubprocVecEnv``,
``make_vec_env(...)``) and replaces (``mode="replace"``) or adds to (``mode="add"``) its
rewards with a saved reward model's, predicted for all sub-envs in one batch. The env's own
reward stays in ``infos[i]["true_reward"]`` and the prediction in
``infos[i]["learned_reward"]``. SB3 resets a finished sub-env inside ``step`` and returns
the next episode's first observation; the transition's real last observation, which the
reward needs, comes from ``infos[i]["terminal_observation"]``.

This is the only module of rmlite that imports Stable-Baselines3 (the ``agents`` extra).
Gymnasium users wrap single envs with :class:`rmlite.rl.gym.LearnedReward`, which also
passes SB3's ``check_env``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

try:
    from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "rmlite.rl.sb3 wraps Stable-Baselines3 vector envs and needs stable-baselines3: "
        "pip install 'rmlite[agents]'."
    ) from exc

from rmlite._typing import PathLike
from rmlite.rl.gym import Mode, _check_spaces, _reward_function
from rmlite.rl.relabeling import RewardFunction

if TYPE_CHECKING:
    from rmlite.estimators.reward import RewardClassifier, RewardRegressor

__all__ = ["LearnedRewardVecEnv"]


class LearnedRewardVecEnv(VecEnvWrapper):
    """An SB3 ``VecEnv`` whose rewards come from a learned reward model, one batch per step.

    Parameters
    ----------
    venv
        The Stable-Baselines3 vector env to wrap (Box observations of the model's size).
    model
        A model trained on a per-step target (``rmlite train``), its folder, or a
        :class:`~rmlite.rl.RewardFunction`. Event models give the event probability;
        return-to-go models and models with lags are refused.
    mode
        ``"replace"``: the agent sees the learned reward; ``"add"``: env reward + learned.
    pessimism
        ``k`` of ``mean - k * std`` over ensemble members.

    Examples
    --------
    >>> from stable_baselines3 import PPO
    >>> from stable_baselines3.common.env_util import make_vec_env
    >>> venv = LearnedRewardVecEnv(make_vec_env("Pendulum-v1", n_envs=4), "models/pendulum")  # doctest: +SKIP
    >>> PPO("MlpPolicy", venv, n_steps=64).learn(512)  # doctest: +SKIP
    """

    def __init__(
        self,
        venv: VecEnv,
        model: RewardRegressor | RewardClassifier | RewardFunction | PathLike,
        mode: Mode = "replace",
        *,
        pessimism: float = 0.0,
    ) -> None:
        if not isinstance(venv, VecEnv):
            raise TypeError(
                f"LearnedRewardVecEnv wraps a Stable-Baselines3 VecEnv; got "
                f"{type(venv).__name__}. Wrap a Gymnasium vector env with "
                f"rmlite.rl.gym.LearnedRewardVector, a single env with LearnedReward."
            )
        super().__init__(venv)
        self.reward_fn = _reward_function(model, pessimism, mode)
        _check_spaces(self.reward_fn, venv.observation_space, venv.action_space)
        self.mode = mode
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None
        self._t = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self) -> Any:
        obs = self.venv.reset()
        self._obs = np.array(obs, copy=True)
        self._t[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        # The actions as the sub-envs receive them (SB3 clips or rescales them before).
        self._actions = np.array(actions, copy=True)
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        if self._obs is None or self._actions is None:
            raise RuntimeError("LearnedRewardVecEnv: call reset() before step().")
        obs, rewards, dones, infos = self.venv.step_wait()
        n = self.num_envs
        next_obs = np.asarray(obs)
        done = np.asarray(dones, dtype=bool)
        if done.any():
            # A finished sub-env was already reset: its obs opens the next episode.
            next_obs = next_obs.copy()
            for j in np.flatnonzero(done):
                next_obs[j] = infos[j]["terminal_observation"]
        learned = self.reward_fn(
            self._obs.reshape(n, -1),
            self._actions.reshape(n, -1),
            next_obs.reshape(n, -1),
            self._t,
        )
        true = np.asarray(rewards, dtype=np.float64)
        for i, info in enumerate(infos):
            info["true_reward"] = float(true[i])
            info["learned_reward"] = float(learned[i])
        self._t += 1
        self._t[done] = 0
        self._obs = np.array(obs, copy=True)
        out = learned if self.mode == "replace" else true + learned
        return obs, out.astype(np.float32), dones, infos
