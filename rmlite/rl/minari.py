"""Minari in and out: local Minari datasets to the store and back (nothing is downloaded)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import polars as pl

from rmlite.data import schema as S
from rmlite.data.features import vectors
from rmlite.data.store import IngestReport, LogStore
from rmlite.exceptions import RmliteError, SchemaError
from rmlite.rl.rollouts import _integer_actions, _is_discrete, _make_env_fn, _transitions_frame

if TYPE_CHECKING:
    import gymnasium as gym


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
    and ``next_obs``. Terminations and truncations stay apart. Each step's info goes to
    ``extra`` as ``{"info": {...}}``, with the episode's reset info beside it on the first
    step (``"reset_info"``); Discrete actions are recorded as discrete. The store dataset is
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
    infos: list[pl.DataFrame] = []
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
        infos.append(_episode_infos(ep.infos, length, dataset_id, int(ep.id)))
    if not parts["e"]:
        raise SchemaError(f"Minari dataset {dataset_id!r} holds no episodes.")
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    log = _transitions_frame(*(cat[k] for k in ("e", "t", "o", "a", "r", "n", "d", "c")))
    if _is_discrete(data.action_space):
        log = _integer_actions(log)
    info = pl.concat(infos, how="diagonal_relaxed")
    if info.width:  # ingest keeps these columns in `extra`: {"info": {...}, "reset_info": ...}
        log = pl.concat([log, info], how="horizontal")
    name = dataset or dataset_id.replace("/", "-")
    return store.ingest(log, dataset=name, progress=progress)


INFO: Final = "info"
"""Key of ``extra`` that holds a step's Minari ``infos`` (what ``env.step`` returned)."""
RESET_INFO: Final = "reset_info"
"""Key of ``extra`` that holds, on each episode's first step, what ``env.reset`` returned."""


def _info_columns(infos: dict[str, Any], rows: int, where: str) -> dict[str, pl.Series]:
    """Minari's per-step info arrays (``rows`` long, nested dicts too) as Polars columns."""
    out: dict[str, pl.Series] = {}
    for key, value in infos.items():
        if isinstance(value, dict):
            sub = _info_columns(value, rows, where)
            if sub:
                out[key] = pl.DataFrame(sub).to_struct(key)
            continue
        array = np.asarray(value)
        if len(array) != rows:
            raise SchemaError(
                f"{where}: info {key!r} has {len(array)} entries; Minari keeps one per "
                f"observation ({rows})."
            )
        if array.ndim > 2:  # an image or matrix per step: flattened, as obs are
            array = array.reshape(rows, -1)
        out[key] = pl.Series(key, array)
    return out


def _episode_infos(
    infos: dict[str, Any] | None, length: int, dataset_id: str, episode: int
) -> pl.DataFrame:
    """One episode's infos as the columns ``info`` (step t: ``infos[t + 1]``) and
    ``reset_info`` (``infos[0]`` on step 0, null after), or no columns without infos."""
    columns = _info_columns(
        infos or {}, length + 1, f"Minari dataset {dataset_id!r}, episode {episode}"
    )
    if not columns:
        return pl.DataFrame()
    info = pl.DataFrame(columns).to_struct(INFO)
    reset = (
        pl.concat(
            [info.slice(0, 1), pl.Series(RESET_INFO, [None] * (length - 1), dtype=info.dtype)]
        )
        if length > 1
        else info.slice(0, 1)
    )
    return pl.DataFrame([info.slice(1), reset.alias(RESET_INFO)])


def _info_arrays(column: pl.Series) -> dict[str, Any]:
    """A struct column (one row per observation) as Minari's infos: arrays per key, nulls
    filled with the type's zero (rmlite does not log what ``env.reset`` returned)."""
    out: dict[str, Any] = {}
    for name in column.struct.fields:
        field = column.struct.field(name)
        dtype = field.dtype
        if isinstance(dtype, pl.Struct):
            out[name] = _info_arrays(field)
        elif isinstance(dtype, pl.List | pl.Array):
            lengths = field.list.len() if isinstance(dtype, pl.List) else field.arr.len()
            if lengths.drop_nulls().n_unique() > 1:
                continue  # ragged lists per step do not fit Minari's arrays: left out
            width = int(lengths.max() or 0)  # type: ignore[arg-type]
            valid = field.is_not_null()
            rows = field.filter(valid)
            if isinstance(dtype, pl.List):
                rows = rows.list.to_array(width)
            present = rows.to_numpy().reshape(len(rows), width)
            values = np.zeros((len(field), width), dtype=present.dtype)
            values[valid.to_numpy()] = present
            out[name] = values
        elif dtype == pl.String:
            out[name] = field.fill_null("").to_list()
        elif dtype == pl.Null:
            continue
        else:
            # Lists, not 1-d arrays: Minari's Arrow storage cannot read back a 1-d array.
            out[name] = field.fill_null(False if dtype == pl.Boolean else 0).to_list()
    return out


def _export_infos(extra: pl.Series) -> tuple[pl.Series, pl.Series] | None:
    """The per-step ``info`` and the per-episode ``reset_info`` from a dataset's ``extra``.

    Datasets imported from Minari hold them under ``info`` / ``reset_info``; for any other
    dataset every key of ``extra`` is a step's info.
    """
    if extra.null_count() == len(extra):
        return None
    decoded = extra.str.json_decode(infer_schema_length=None)
    if not isinstance(decoded.dtype, pl.Struct):
        return None
    fields = decoded.struct.fields
    if INFO in fields:
        info = decoded.struct.field(INFO)
        reset = decoded.struct.field(RESET_INFO) if RESET_INFO in fields else None
    else:
        info, reset = decoded, None
    if not isinstance(info.dtype, pl.Struct):
        return None
    if reset is None or not isinstance(reset.dtype, pl.Struct):
        reset = pl.Series([None] * len(info), dtype=info.dtype)
    try:
        reset = reset.cast(info.dtype, strict=False)
    except pl.exceptions.PolarsError:
        reset = pl.Series([None] * len(info), dtype=info.dtype)
    return info, reset


def _spaces(
    store: LogStore,
    dataset: str,
    env_id: str | None,
    obs_dim: int,
    action_dim: int,
    act: np.ndarray,
) -> tuple[gym.Space[Any], gym.Space[Any]]:
    """The spaces as logged: the env's, or Discrete/MultiDiscrete for integer actions."""
    import gymnasium as gym

    if env_id is not None:
        env = _make_env_fn(env_id, None)()
        obs_space, act_space = env.observation_space, env.action_space
        env.close()
        if not isinstance(obs_space, gym.spaces.Box) or not isinstance(
            act_space, gym.spaces.Box | gym.spaces.Discrete | gym.spaces.MultiDiscrete
        ):
            raise SchemaError(
                f"--env {env_id!r} has {obs_space} observations and {act_space} actions; rmlite "
                f"exports Box observations and Box, Discrete or MultiDiscrete actions."
            )
        sizes = (
            int(np.prod(obs_space.shape)),
            1 if isinstance(act_space, gym.spaces.Discrete) else int(np.prod(act_space.shape)),
        )
        if sizes != (obs_dim, action_dim):
            raise SchemaError(
                f"--env {env_id!r} observes {obs_space.shape} and acts {act_space}; dataset "
                f"{dataset!r} has obs of {obs_dim} and actions of {action_dim} values."
            )
        return obs_space, act_space
    obs_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    row = store.datasets().filter(pl.col("dataset") == dataset)
    discrete = bool(row["action_discrete"][0]) if len(row) else False
    if discrete and len(act) and (act >= 0).all():
        # Logged as integers (the store's action_discrete): n = the largest action + 1.
        nvec = act.max(axis=0).astype(np.int64) + 1
        if action_dim == 1:
            return obs_space, gym.spaces.Discrete(int(nvec[0]))
        return obs_space, gym.spaces.MultiDiscrete(nvec)
    return obs_space, gym.spaces.Box(-np.inf, np.inf, (action_dim,), np.float32)


def _as_space(values: np.ndarray, space: gym.Space[Any], what: str, dataset: str) -> np.ndarray:
    """(n, dim) float32 rows in the space's own shape and dtype."""
    import gymnasium as gym

    n = len(values)
    if isinstance(space, gym.spaces.Discrete | gym.spaces.MultiDiscrete):
        if not np.array_equal(values, np.round(values)):
            raise SchemaError(
                f"{dataset}: {what} holds non-integer values; {space} needs integers. Export "
                f"without --env, or with the env the dataset came from."
            )
        ints = values.astype(space.dtype)
        if isinstance(space, gym.spaces.Discrete):
            return ints[:, 0]
        return ints.reshape(n, *np.shape(space.nvec))
    shape = tuple(space.shape or ())
    return values.reshape(n, *shape).astype(space.dtype, copy=False)


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
    observations). The spaces are the env's when ``env_id`` is given (they must match the
    dataset's sizes; integer actions of a Discrete or MultiDiscrete env stay integers);
    without it, observations are an unbounded float32 box, and actions are
    ``Discrete(largest + 1)`` where the store recorded them as discrete (collected from a
    Discrete env, imported from a Discrete Minari dataset, or one integer column in the
    log) and an unbounded float32 box otherwise.

    Infos travel in ``extra``: a dataset imported from Minari keeps each step's info under
    ``extra["info"]`` (and what ``reset`` returned under ``extra["reset_info"]`` of the
    first step), which become the exported ``infos`` again; for any other dataset every
    key of ``extra`` becomes an info key. Values missing from a step export as zeros.
    """
    minari = _minari()
    from minari.data_collector.episode_buffer import EpisodeBuffer

    columns = [S.OBS, S.ACTION, S.REWARD, S.NEXT_OBS, S.TERMINATED, S.TRUNCATED, S.EXTRA]
    frame = store.read(dataset, columns)
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
    obs_space, act_space = _spaces(store, dataset, env_id, obs_dim, action_dim, act)
    observations = _as_space(np.concatenate([obs, final_obs]), obs_space, "obs", dataset)
    actions = _as_space(act, act_space, "action", dataset)
    finals = observations[len(obs) :]
    reward = frame[S.REWARD].to_numpy()
    term = frame[S.TERMINATED].to_numpy()
    trunc = frame[S.TRUNCATED].to_numpy()
    infos = _export_infos(frame[S.EXTRA])

    def episode_infos(lo: Any, hi: Any) -> dict[str, Any]:
        if infos is None:
            return {}
        info, reset = infos
        return _info_arrays(pl.concat([reset.slice(lo, 1), info.slice(lo, hi - lo)]))

    buffers = [
        EpisodeBuffer(
            id=i,
            observations=np.concatenate([observations[lo:hi], finals[i : i + 1]]),
            actions=actions[lo:hi],
            rewards=list(reward[lo:hi]),
            terminations=list(term[lo:hi]),
            truncations=list(trunc[lo:hi]),
            infos=episode_infos(lo, hi),
        )
        for i, (lo, hi) in enumerate(zip(starts, ends, strict=True))
    ]
    kwargs: dict[str, Any] = {"observation_space": obs_space, "action_space": act_space}
    if env_id is not None:
        kwargs["env"] = env_id
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
