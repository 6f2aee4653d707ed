"""Minari in and out: local Minari datasets to the store and back (nothing is downloaded)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from rmlite.data import schema as S
from rmlite.data.features import vectors
from rmlite.data.store import IngestReport, LogStore
from rmlite.exceptions import RmliteError, SchemaError
from rmlite.rl.rollouts import _make_env_fn, _transitions_frame


def _minari() -> Any:
    try:
        import minari
    except ImportError as exc:
        raise ImportError(
            "Minari support needs the 'minari' package: pip install 'rmlite[rl]'."
        ) from exc
    return minari


def _minari_root() -> str:
    return os.environ.get("MINARI_DATASETS_PATH") or os.path.join("~", ".minari", "datasets")


def import_minari(
    store: LogStore,
    dataset_id: str,
    dataset: str | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> IngestReport:
    """Ingest a local Minari dataset (never downloaded) into the store.

    Minari keeps ``n + 1`` observations per episode of ``n`` steps; they become ``obs``
    and ``next_obs``. Terminations and truncations stay apart. The store dataset is
    named ``dataset`` (default: the Minari id with ``/`` replaced by ``-``).
    """
    minari = _minari()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = minari.list_local_datasets()
    if dataset_id not in local:
        raise RmliteError(
            f"no local Minari dataset {dataset_id!r} under {_minari_root()} (MINARI_DATASETS_PATH); "
            f"local ones: {', '.join(sorted(local)) or 'none'}. rmlite never downloads: "
            f"fetch it first with `minari download {dataset_id}` if you mean to."
        )
    data = minari.load_dataset(dataset_id, download=False)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("e", "t", "o", "a", "r", "n", "d", "c")}
    for ep in data.iterate_episodes():
        if not isinstance(ep.observations, np.ndarray):
            raise SchemaError(
                f"Minari dataset {dataset_id!r}: episode {ep.id} has structured observations "
                f"({type(ep.observations).__name__}); rmlite stores flat Box observations."
            )
        length = len(ep.rewards)
        observations = np.asarray(ep.observations, dtype=np.float32).reshape(length + 1, -1)
        parts["e"].append(np.full(length, int(ep.id), dtype=np.int64))
        parts["t"].append(np.arange(length, dtype=np.int64))
        parts["o"].append(observations[:-1])
        parts["a"].append(np.asarray(ep.actions, dtype=np.float32).reshape(length, -1))
        parts["r"].append(np.asarray(ep.rewards, dtype=np.float64))
        parts["n"].append(observations[1:])
        parts["d"].append(np.asarray(ep.terminations, dtype=bool))
        parts["c"].append(np.asarray(ep.truncations, dtype=bool))
    if not parts["e"]:
        raise SchemaError(f"Minari dataset {dataset_id!r} holds no episodes.")
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    log = _transitions_frame(*(cat[k] for k in ("e", "t", "o", "a", "r", "n", "d", "c")))
    name = dataset or dataset_id.replace("/", "-")
    return store.ingest(log, dataset=name, progress=progress)


def export_minari(
    store: LogStore,
    dataset: str,
    dataset_id: str,
    *,
    env_id: str | None = None,
    data_format: Literal["hdf5", "arrow", "parquet"] = "arrow",
    author: str = "rmlite",
) -> str:
    """Write a store dataset as a new local Minari dataset; return its folder.

    Each episode needs the ``next_obs`` of its last step (Minari keeps ``n + 1``
    observations). ``env_id`` records the environment (its spaces must match the
    dataset); without it the spaces are unbounded float32 boxes of the dataset's sizes.
    """
    minari = _minari()
    import gymnasium as gym
    from minari.data_collector.episode_buffer import EpisodeBuffer

    frame = store.read(dataset, [S.OBS, S.ACTION, S.REWARD, S.NEXT_OBS, S.TERMINATED, S.TRUNCATED])
    if frame[S.REWARD].null_count():
        raise SchemaError(
            f"{dataset}: {frame[S.REWARD].null_count()} transitions have no reward; a Minari "
            f"dataset needs one per step. Relabel the dataset first (rmlite relabel)."
        )
    episode = frame[S.EPISODE].to_numpy()
    starts = np.flatnonzero(np.r_[True, episode[1:] != episode[:-1]])
    ends = np.r_[starts[1:], len(episode)]
    obs_dim, action_dim = (int(frame[c].list.len().max() or 0) for c in (S.OBS, S.ACTION))  # type: ignore[arg-type]
    obs = vectors(frame[S.OBS].to_arrow(), obs_dim)
    act = vectors(frame[S.ACTION].to_arrow(), action_dim)
    last_next = frame[S.NEXT_OBS].gather(ends - 1)
    if last_next.null_count():
        bad = episode[ends - 1][last_next.is_null().to_numpy()][:5].tolist()
        raise SchemaError(
            f"{dataset}: episodes {bad} lack the next_obs of their last step; Minari keeps "
            f"n + 1 observations per episode, so they cannot be exported."
        )
    final_obs = vectors(last_next.to_arrow(), obs_dim)
    reward = frame[S.REWARD].to_numpy()
    term = frame[S.TERMINATED].to_numpy()
    trunc = frame[S.TRUNCATED].to_numpy()
    buffers = [
        EpisodeBuffer(
            id=i,
            observations=np.concatenate([obs[lo:hi], final_obs[i : i + 1]]),
            actions=act[lo:hi],
            rewards=list(reward[lo:hi]),
            terminations=list(term[lo:hi]),
            truncations=list(trunc[lo:hi]),
            infos={},
        )
        for i, (lo, hi) in enumerate(zip(starts, ends, strict=True))
    ]
    obs_space = gym.spaces.Box(-np.inf, np.inf, (obs.shape[1],), np.float32)
    act_space = gym.spaces.Box(-np.inf, np.inf, (act.shape[1],), np.float32)
    kwargs: dict[str, Any] = {"observation_space": obs_space, "action_space": act_space}
    if env_id is not None:
        env = _make_env_fn(env_id, None)()
        shapes = (env.observation_space.shape, env.action_space.shape)
        env.close()
        if shapes[0] != obs_space.shape or (shapes[1] or (1,)) != act_space.shape:
            raise SchemaError(
                f"--env {env_id!r} observes {shapes[0]} and acts {shapes[1]}; dataset "
                f"{dataset!r} has obs {obs_space.shape} and actions {act_space.shape}."
            )
        kwargs = {"env": env_id} if shapes[1] else {**kwargs, "env": env_id}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # author e-mail, code link: optional metadata
        try:
            created = minari.create_dataset_from_buffers(
                dataset_id,
                buffers,
                algorithm_name="rmlite export",
                author=author,
                description=f"exported by rmlite from dataset {dataset!r} of {store.path}",
                data_format=data_format,
                **kwargs,
            )
        except ValueError as exc:
            raise RmliteError(f"Minari dataset {dataset_id!r}: {exc}") from exc
    return str(created.storage.data_path.parent)
