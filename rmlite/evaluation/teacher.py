"""Simulated preference teachers (B-Pref's Bradley–Terry oracles) that label pairs of logged segments from the true rewards."""

from __future__ import annotations

import numpy as np
import polars as pl

from rmlite.exceptions import ParameterError, SchemaError


def synthetic_preferences(
    episode: np.ndarray,
    step: np.ndarray,
    reward: np.ndarray,
    n_pairs: int,
    segment_length: int,
    *,
    noise: float = 0.0,
    temperature: float = 0.0,
    tie_threshold: float = 0.0,
    seed: int = 0,
    annotator: str = "synthetic",
) -> pl.DataFrame:
    """Pairs of random segments labeled by a Bradley–Terry oracle over the true rewards.

    B-Pref's simulated teachers (Lee et al. 2021): segments of ``segment_length``
    consecutive steps are drawn uniformly from the logged episodes; the oracle prefers
    the larger true return, stochastically when ``temperature`` τ > 0
    (P(A ≻ B) = σ((R_A − R_B) / τ), the "Stoc" teacher with rationality β = 1/τ),
    labels pairs whose returns differ by at most ``tie_threshold`` as ties (0.5, the
    "Equal" teacher), then flips each strict label with probability ``noise`` (the
    "Mistake" teacher).

    Parameters
    ----------
    episode, step, reward
        Per-step keys and true rewards, sorted by (episode, step).
    n_pairs, segment_length
        How many pairs, and steps per segment.
    noise
        Flip rate in [0, 0.5].
    temperature
        τ >= 0; 0 is the deterministic teacher.
    tie_threshold
        Largest |R_A − R_B| labeled as a tie.
    seed
        Seeds the draws.
    annotator
        Name stored with the judgements.

    Returns
    -------
    polars.DataFrame
        Columns of the ``preferences`` table (without ``dataset``), ready for
        :meth:`rmlite.LogStore.ingest_preferences`.

    Examples
    --------
    >>> episode, step = np.repeat([0, 1], 50), np.tile(np.arange(50), 2)
    >>> prefs = synthetic_preferences(episode, step, step / 50.0, n_pairs=5, segment_length=10)
    >>> prefs.columns[:7]
    ['episode_a', 'start_a', 'stop_a', 'episode_b', 'start_b', 'stop_b', 'label']
    >>> bool((prefs["stop_a"] - prefs["start_a"] == 10).all())
    True
    """
    for name, value, low, high in (
        ("noise", noise, 0.0, 0.5),
        ("temperature", temperature, 0.0, np.inf),
        ("tie_threshold", tie_threshold, 0.0, np.inf),
    ):
        if not (isinstance(value, int | float) and low <= value <= high):
            interval = f"[{low}, {high}]" if np.isfinite(high) else f"[{low}, inf)"
            raise ParameterError(
                f"The '{name}' parameter of synthetic_preferences must be a float in the range "
                f"{interval}. Got {value!r} instead."
            )
    for name, ivalue in (("n_pairs", n_pairs), ("segment_length", segment_length)):
        if not (isinstance(ivalue, int | np.integer) and ivalue >= 1):
            raise ParameterError(
                f"The '{name}' parameter of synthetic_preferences must be an int >= 1. "
                f"Got {ivalue!r} instead."
            )
    episode = np.asarray(episode, dtype=np.int64)
    step = np.asarray(step, dtype=np.int64)
    reward = np.asarray(reward, dtype=np.float64)
    L = int(segment_length)
    n = len(step)
    # A row can start a segment when the row L − 1 below is the same episode, the steps in
    # between are consecutive, and every reward in the segment is known.
    known = np.concatenate([[0], np.cumsum(~np.isfinite(reward))])
    end = np.arange(n) + L - 1
    valid = end < n
    idx = np.flatnonzero(valid)
    ok = (episode[idx + L - 1] == episode[idx]) & (step[idx + L - 1] - step[idx] == L - 1)
    ok &= known[idx + L] - known[idx] == 0
    starts = idx[ok]
    if len(starts) == 0:
        raise SchemaError(
            f"no segment of {L} consecutive steps with known rewards exists in these "
            f"episodes; lower --segment-length (the longest episode has "
            f"{int(np.bincount(np.unique(episode, return_inverse=True)[1]).max()) if n else 0} steps)."
        )
    rng = np.random.default_rng(seed)
    a = starts[rng.integers(0, len(starts), size=n_pairs)]
    b = starts[rng.integers(0, len(starts), size=n_pairs)]
    # A segment is never compared with itself (the store refuses such pairs): redraw B for
    # those pairs, which leaves every other pair as the seed drew it.
    same = a == b
    while same.any() and len(starts) > 1:
        b[same] = starts[rng.integers(0, len(starts), size=int(same.sum()))]
        same = a == b
    # Nor is a pair (A, B) drawn twice, which the store refuses too: redraw both segments of
    # each repeat (B alone may have no partner left for a much-drawn A). When n_pairs
    # exceeds the distinct pairs there are, repeats have to stay.
    bad = _refused(a, b)
    while bad.any() and n_pairs <= len(starts) * (len(starts) - 1):
        a[bad] = starts[rng.integers(0, len(starts), size=int(bad.sum()))]
        b[bad] = starts[rng.integers(0, len(starts), size=int(bad.sum()))]
        bad = _refused(a, b)
    c = np.concatenate([[0.0], np.cumsum(np.nan_to_num(reward))])
    diff = (c[a + L] - c[a]) - (c[b + L] - c[b])
    if temperature > 0:
        from rmlite.models.preference import bt_probability

        label = (rng.random(n_pairs) < bt_probability(diff / temperature)).astype(np.float64)
    else:
        label = np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
    label = np.where(np.abs(diff) <= tie_threshold, 0.5, label) if tie_threshold > 0 else label
    flip = (rng.random(n_pairs) < noise) & (label != 0.5)
    label = np.where(flip, 1.0 - label, label)
    return pl.DataFrame(
        {
            "episode_a": episode[a],
            "start_a": step[a],
            "stop_a": step[a] + L,
            "episode_b": episode[b],
            "start_b": step[b],
            "stop_b": step[b] + L,
            "label": label,
            "margin": pl.Series([None] * n_pairs, dtype=pl.Float64),
            "annotator": [annotator] * n_pairs,
        }
    )


def _refused(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairs the store would refuse: a segment against itself, or a repeat of an earlier pair."""
    _, first = np.unique(np.stack([a, b], axis=1), axis=0, return_index=True)
    repeat = np.ones(len(a), dtype=bool)
    repeat[first] = False
    return np.asarray((a == b) | repeat)
