"""Small random logs with known structure, shared by the test modules."""

from __future__ import annotations

import numpy as np
import polars as pl

from rmlite.data import schema as S


def random_log(
    lengths: list[int],
    rng: np.random.Generator,
    *,
    ends: list[str] | None = None,
    obs_dim: int = 2,
    action_dim: int = 1,
    episode_ids: list[int] | None = None,
    scale: float = 1.0,
    info: bool = False,
) -> pl.DataFrame:
    """Transitions in list layout, sorted by (episode, step).

    ``ends`` says how each episode ended: 'terminated', 'truncated' or 'none'
    (unfinished). next_obs is the next step's obs. ``info`` adds an extra integer column.
    """
    ends = ends or ["terminated"] * len(lengths)
    episode_ids = episode_ids or list(range(len(lengths)))
    frames = []
    for ep, n, end in zip(episode_ids, lengths, ends, strict=True):
        states = (rng.normal(size=(n + 1, obs_dim)) * scale).astype(np.float32)
        last = np.arange(n) == n - 1
        columns = {
            S.EPISODE: np.full(n, ep, dtype=np.int64),
            S.STEP: np.arange(n, dtype=np.int64),
            S.OBS: states[:-1],
            S.ACTION: rng.uniform(-1, 1, size=(n, action_dim)).astype(np.float32),
            S.NEXT_OBS: states[1:],
            S.REWARD: rng.normal(size=n) * scale,
            S.TERMINATED: last & (end == "terminated"),
            S.TRUNCATED: last & (end == "truncated"),
        }
        if info:
            columns["info"] = rng.integers(0, 1000, size=n)
        frames.append(
            pl.DataFrame(columns).with_columns(pl.col(c).arr.to_list() for c in S.VECTOR_COLUMNS)
        )
    return pl.concat(frames)


def matrix(frame: pl.DataFrame, col: str) -> np.ndarray:
    """A list column as an (n, d) float32 matrix."""
    return np.stack(frame[col].to_numpy()).astype(np.float32)
