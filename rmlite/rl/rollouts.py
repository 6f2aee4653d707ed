"""Collecting logs from Gymnasium: roll out a policy on a (vector) env and ingest it.

- :func:`collect` rolls out a Gymnasium env (vectorized) and ingests the transitions;
  :func:`collect_log` returns them without a store.
Examples
--------
>>> import os, tempfile
>>> from rmlite import LogStore
>>> store = LogStore(os.path.join(tempfile.mkdtemp(), "rl.duckdb"))
>>> report = collect(store, "Pendulum-v1", episodes=3, dataset="pend", max_steps=20)
>>> report.transitions, report.ingest.rows_added
(60, 60)
>>> collect(store, "Pendulum-v1", episodes=3, dataset="pend", max_steps=20).ingest.rows_added
0
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl

from rmlite.data import schema as S
from rmlite.data.store import IngestReport, LogStore
from rmlite.exceptions import ParameterError, SchemaError

if TYPE_CHECKING:
    pass

BatchPolicy = Callable[[np.ndarray, np.random.Generator], Any]
"""``policy(obs_batch, rng) -> actions``: one action per row of the observation batch."""

Vectorization = Literal["sync", "async"]


# ------------------------------------------------------------------------- collect


@dataclass
class CollectReport:
    """What :func:`collect` did: the rollout and the ingest that landed it."""

    env: str
    episodes: int
    transitions: int
    num_envs: int
    mean_return: float
    episodes_terminated: int
    episodes_truncated: int
    collect_seconds: float
    ingest: IngestReport
    first_episode: int = 0
    """The id of the first collected episode (the rest follow it)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        out = asdict(self)
        out["ingest"] = self.ingest.to_dict()
        return out

    def __str__(self) -> str:
        return (
            f"{self.env}: {self.episodes} episodes (ids {self.first_episode}-"
            f"{self.first_episode + self.episodes - 1}; {self.transitions:,} transitions, mean "
            f"return {self.mean_return:.2f}) collected with {self.num_envs} envs in "
            f"{self.collect_seconds:.2f} s; {self.ingest}"
        )


def load_policy(policy: str | BatchPolicy, action_space: Any, seed: int) -> BatchPolicy:
    """A batch policy from ``"random"``, ``"module:callable"`` or a callable.

    ``"random"`` samples the (batched) action space, seeded with ``seed``. A
    ``"module:callable"`` is imported with importlib (the current folder is searched
    too) and called as ``callable(obs_batch, rng) -> actions``.
    """
    if callable(policy):
        return policy
    if policy == "random":
        action_space.seed(seed)
        return lambda _obs, _rng: action_space.sample()
    module_name, sep, attr = str(policy).partition(":")
    if not sep or not module_name or not attr:
        raise ParameterError(
            f"--policy {policy!r}: expected 'random' or 'module:callable' (for example "
            f"'my_agents:act', a function act(obs_batch, rng) -> actions)."
        )
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: a policy file beside the user
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ParameterError(
            f"--policy {policy!r}: cannot import {module_name!r} ({exc})."
        ) from exc
    func = getattr(module, attr, None)
    if not callable(func):
        raise ParameterError(
            f"--policy {policy!r}: module {module_name!r} has no callable {attr!r}."
        )
    return func


def _make_env_fn(env_id: str, max_steps: int | None, **make_kwargs: Any) -> Callable[[], Any]:
    import gymnasium as gym

    if env_id not in gym.envs.registry:
        import difflib

        close = difflib.get_close_matches(env_id, list(gym.envs.registry), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParameterError(f"--env {env_id!r} is not a registered Gymnasium environment{hint}.")

    def make() -> Any:
        return gym.make(env_id, max_episode_steps=max_steps, **make_kwargs)

    return make


def collect_log(
    env_id: str,
    episodes: int,
    *,
    policy: str | BatchPolicy = "random",
    seed: int = 0,
    num_envs: int = 8,
    max_steps: int | None = None,
    vectorization: Vectorization = "sync",
    progress: Callable[[str], None] | None = None,
    **make_kwargs: Any,
) -> pl.DataFrame:
    """Roll out ``episodes`` episodes of a Gymnasium env on a vector env; return transitions.

    The vector env autoresets in Gymnasium's next-step mode: the step after an episode
    ends only resets that sub-env (its action is ignored, its reward is 0), so it is not
    a transition and is not recorded. Episodes are numbered in the order they start
    (sub-env order within a step); sub-envs stop recording once ``episodes`` have
    started, and the rollout ends when every recorded episode has ended. With the same
    arguments the log is the same, row for row.

    Parameters
    ----------
    env_id
        A registered Gymnasium id (``Pendulum-v1``, ``Walker2d-v5``, ...).
    episodes
        Episodes to record.
    policy
        ``"random"``, ``"module:callable"``, or ``callable(obs_batch, rng) -> actions``.
    seed
        Seeds the sub-envs (``seed + i``), the random policy and ``rng``.
    num_envs
        Sub-envs stepped together (at most ``episodes``).
    max_steps
        Step limit per episode (``max_episode_steps`` of ``gymnasium.make``).
    vectorization
        ``"sync"`` (one process) or ``"async"`` (a process per sub-env).
    """
    import gymnasium as gym
    from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

    if not (isinstance(episodes, int) and episodes >= 1):
        raise ParameterError(f"--episodes must be a positive int. Got {episodes!r} instead.")
    if not (isinstance(num_envs, int) and num_envs >= 1):
        raise ParameterError(f"--num-envs must be a positive int. Got {num_envs!r} instead.")
    if vectorization not in ("sync", "async"):
        raise ParameterError(
            f"vectorization must be 'sync' or 'async'. Got {vectorization!r} instead."
        )
    say = progress or (lambda _m: None)
    n = min(num_envs, episodes)
    make = _make_env_fn(env_id, max_steps, **make_kwargs)
    vector_cls = SyncVectorEnv if vectorization == "sync" else AsyncVectorEnv
    envs = vector_cls([make] * n, autoreset_mode=AutoresetMode.NEXT_STEP)
    try:
        if not isinstance(envs.single_observation_space, gym.spaces.Box):
            raise SchemaError(
                f"{env_id}: collect records Box observations; this env observes "
                f"{envs.single_observation_space}. Flatten it with a Gymnasium wrapper."
            )
        act = load_policy(policy, envs.action_space, seed)
        rng = np.random.default_rng(seed)
        obs, _ = envs.reset(seed=seed)
        episode = np.arange(n, dtype=np.int64)
        t = np.zeros(n, dtype=np.int64)
        active = np.ones(n, dtype=bool)
        autoreset = np.zeros(n, dtype=bool)  # this sub-env's next step is a reset
        next_id, finished = n, 0
        report_every = max(1, episodes // 10)
        parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("e", "t", "o", "a", "r", "n", "d", "c")
        }
        while active.any():
            actions = act(obs, rng)
            next_obs, reward, terminated, truncated, _ = envs.step(actions)
            record = active & ~autoreset
            if record.any():
                a = np.asarray(actions, dtype=np.float32).reshape(n, -1)
                parts["e"].append(episode[record])
                parts["t"].append(t[record])
                parts["o"].append(np.asarray(obs, dtype=np.float32).reshape(n, -1)[record])
                parts["a"].append(a[record])
                parts["r"].append(np.asarray(reward, dtype=np.float64)[record])
                parts["n"].append(np.asarray(next_obs, dtype=np.float32).reshape(n, -1)[record])
                parts["d"].append(np.asarray(terminated, dtype=bool)[record])
                parts["c"].append(np.asarray(truncated, dtype=bool)[record])
            t += 1
            # Sub-envs that were resetting start their next episode with this step's obs.
            for i in np.flatnonzero(autoreset & active):
                if next_id < episodes:
                    episode[i], t[i], next_id = next_id, 0, next_id + 1
                else:
                    active[i] = False
            ended = record & (np.asarray(terminated) | np.asarray(truncated))
            before = finished
            finished += int(ended.sum())
            if finished // report_every != before // report_every:
                say(f"collected {finished}/{episodes} episodes of {env_id}")
            autoreset = np.asarray(terminated) | np.asarray(truncated)
            obs = next_obs
    finally:
        envs.close()
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    order = np.lexsort((cat["t"], cat["e"]))
    return _transitions_frame(
        cat["e"][order],
        cat["t"][order],
        cat["o"][order],
        cat["a"][order],
        cat["r"][order],
        cat["n"][order],
        cat["d"][order],
        cat["c"][order],
    )


def next_episode_id(store: LogStore, dataset: str) -> int:
    """One past the largest episode id ``dataset`` holds (0 when it holds none yet).

    A dataset whose episodes are named by text (``"run-a/ep-3"``) has no next integer:
    the error says to give ``--episode-offset`` or use another dataset.
    """
    if store.path != ":memory:" and not os.path.exists(store.path):
        return 0  # no store yet: the ingest creates it
    known = store.datasets()
    if known.is_empty() or dataset not in known["dataset"].to_list():
        return 0
    ids = store.episodes(dataset)[S.EPISODE]
    if not ids.dtype.is_integer():
        raise ParameterError(
            f"dataset {dataset!r} names its episodes by text ({ids[0]!r}, ...): collected "
            "episodes are numbered, so there is no next id to continue from. Collect into "
            "another dataset (--dataset), or give --episode-offset N."
        )
    largest = ids.cast(pl.Int64).max()
    return 0 if largest is None else int(largest) + 1  # type: ignore[arg-type]


def _transitions_frame(
    episode: np.ndarray,
    step: np.ndarray,
    obs: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    next_obs: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
) -> pl.DataFrame:
    """Arrays in the canonical layout (vectors as list[f32] columns, no Python row loop)."""

    def lists(name: str, matrix: np.ndarray) -> pl.Series:
        return pl.Series(name, np.ascontiguousarray(matrix, dtype=np.float32)).arr.to_list()

    return pl.DataFrame(
        [
            pl.Series(S.EPISODE, episode, dtype=pl.Int64),
            pl.Series(S.STEP, step, dtype=pl.Int64),
            lists(S.OBS, obs),
            lists(S.ACTION, action),
            lists(S.NEXT_OBS, next_obs),
            pl.Series(S.REWARD, reward, dtype=pl.Float64),
            pl.Series(S.TERMINATED, terminated, dtype=pl.Boolean),
            pl.Series(S.TRUNCATED, truncated, dtype=pl.Boolean),
        ]
    )


def _is_discrete(space: Any) -> bool:
    import gymnasium as gym

    return isinstance(space, gym.spaces.Discrete)


def _integer_actions(log: pl.DataFrame) -> pl.DataFrame:
    """Discrete actions as one integer column, so the store records the dataset's actions
    as discrete (``datasets.action_discrete``) and exports keep them so."""
    return log.with_columns(pl.col(S.ACTION).list.first().cast(pl.Int64))


def collect(
    store: LogStore,
    env_id: str,
    episodes: int,
    dataset: str,
    *,
    policy: str | BatchPolicy = "random",
    seed: int = 0,
    num_envs: int = 8,
    max_steps: int | None = None,
    vectorization: Vectorization = "sync",
    progress: Callable[[str], None] | None = None,
    episode_offset: int | None = 0,
    **make_kwargs: Any,
) -> CollectReport:
    """Roll out a Gymnasium env (see :func:`collect_log`) and ingest it into ``dataset``.

    The episodes get the ids ``episode_offset``, ``episode_offset + 1``, ... and the
    rollout is seeded with ``seed + episode_offset``: the same seed and offset give the
    same episodes under the same ids, and the ingest is the store's own (one transaction,
    idempotent), so collecting them again adds nothing. ``episode_offset=None`` adds
    fresh episodes after the largest id the dataset holds (0 for a new dataset), as
    ``rmlite collect`` does by default, so that ``rmlite monitor`` sees a new batch.

    Examples
    --------
    >>> import os, tempfile
    >>> from rmlite import LogStore
    >>> store = LogStore(os.path.join(tempfile.mkdtemp(), "rl.duckdb"))
    >>> for _ in range(2):
    ...     _ = collect(store, "Pendulum-v1", 2, "pend", max_steps=5, episode_offset=None)
    >>> store.episodes("pend")["episode_id"].to_list()
    [0, 1, 2, 3]
    """
    if episode_offset is None:
        episode_offset = next_episode_id(store, dataset)
    elif not (isinstance(episode_offset, int) and episode_offset >= 0):
        raise ParameterError(
            f"--episode-offset must be an int >= 0 (or absent: after the largest stored "
            f"id). Got {episode_offset!r} instead."
        )
    started = time.perf_counter()
    log = collect_log(
        env_id,
        episodes,
        policy=policy,
        seed=seed + episode_offset,
        num_envs=num_envs,
        max_steps=max_steps,
        vectorization=vectorization,
        progress=progress,
        **make_kwargs,
    )
    if episode_offset:
        log = log.with_columns(pl.col(S.EPISODE) + episode_offset)
    seconds = time.perf_counter() - started
    env = _make_env_fn(env_id, max_steps, **make_kwargs)()
    if _is_discrete(env.action_space):
        log = _integer_actions(log)
    env.close()
    ends = log.group_by(S.EPISODE).agg(
        pl.col(S.REWARD).sum(), pl.col(S.TERMINATED).last(), pl.col(S.TRUNCATED).last()
    )
    ingest = store.ingest(log, dataset=dataset, progress=progress)
    return CollectReport(
        env=env_id,
        episodes=ends.height,
        transitions=log.height,
        num_envs=min(num_envs, episodes),
        mean_return=float(ends[S.REWARD].mean() or 0.0),  # type: ignore[arg-type]
        episodes_terminated=int(ends[S.TERMINATED].sum()),
        episodes_truncated=int(ends[S.TRUNCATED].sum()),
        collect_seconds=seconds,
        ingest=ingest,
        first_episode=episode_offset,
    )
