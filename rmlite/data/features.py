"""Features and targets from transitions: Arrow in, one contiguous float32 matrix out.

Pure transforms, no I/O: :meth:`rmlite.LogStore.features` reads the Arrow table and calls
:func:`build_features`. Everything is vectorized over the whole table (NumPy on the
flattened Arrow buffers, Polars for the per-episode scan); no Python loop touches rows.

Rows arrive sorted by (episode, step), so per-episode shifts are global shifts masked at
episode starts, which is several times faster than grouped window expressions.

Examples
--------
>>> import pyarrow as pa
>>> table = pa.table({
...     "episode_id": [0, 0, 0], "step": [0, 1, 2],
...     "obs": [[0.0], [1.0], [2.0]], "action": [[1.0], [1.0], [0.0]],
...     "reward": [1.0, 1.0, 1.0], "next_obs": [[1.0], [2.0], [3.0]],
...     "terminated": [False, False, True], "truncated": [False, False, False]})
>>> ff = build_features(table, FeatureSpec(target="return", gamma=0.5))
>>> ff.feature_names
['obs_0', 'act_0']
>>> ff.y.tolist()                     # 1 + 0.5 * (1 + 0.5 * 1)
[1.75, 1.5, 1.0]
>>> ff.X.flags["C_CONTIGUOUS"], ff.X.dtype
(True, dtype('float32'))
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa

from rmlite._typing import BoolArray, Float32Array, Float64Array, Int64Array
from rmlite.data import schema as S
from rmlite.data.feature_spec import (
    FeatureFrame,
    FeatureSpec,
    FittedStats,
    Missing,  # noqa: F401  (re-exported: the CLI reads FeatureSpec's Literal aliases here)
    Scaling,  # noqa: F401
    Target,  # noqa: F401
    Truncation,  # noqa: F401
    feature_names,
)
from rmlite.exceptions import SchemaError

_MEDIAN_ROWS = 1_000_000


# --------------------------------------------------------------------------- helpers


def vectors(column: pa.ChunkedArray | pa.Array, dim: int) -> Float32Array:
    """A list<float32> Arrow column as an (n, dim) float32 matrix; NULL lists become NaN rows.

    Zero-copy when the column has no NULL lists and one chunk.
    """
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    flat = _numpy(arr.flatten()).astype(np.float32, copy=False)
    if arr.null_count == 0:
        if flat.size != n * dim:
            raise SchemaError(
                f"vectors must all have {dim} values; found {flat.size} for {n} rows."
            )
        return flat.reshape(n, dim)
    out = np.full((n, dim), np.nan, dtype=np.float32)
    valid = _numpy(arr.is_valid())
    out[valid] = flat.reshape(-1, dim)
    return out


def _numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow column as NumPy (NULL → NaN for floats), through Polars.

    Zero-copy where the layout allows. pyarrow's own ``to_numpy`` imports pandas (a
    fifth of a second per process) just to convert a plain column.
    """
    return pl.Series(values, strict=False).to_numpy()


def return_to_go(reward: Float64Array, episode: Int64Array, gamma: float) -> Float64Array:
    """Discounted return-to-go per episode, exact and stable for any episode length.

    G_t = r_t + gamma * G_{t+1}, with G = 0 after an episode's last step (Sutton & Barto,
    eq. 3.9). Computed as the recursion itself (a reversed exponentially weighted sum per
    episode), never as sum_k gamma^k r_k / gamma^t, which underflows past a few thousand
    steps. ``reward`` must be sorted by (episode, step).

    Examples
    --------
    >>> return_to_go(np.array([1.0, 1.0, 1.0, 2.0]), np.array([0, 0, 0, 1]), 0.9).round(6).tolist()
    [2.71, 1.9, 1.0, 2.0]
    """
    frame = pl.DataFrame({"e": episode, "r": reward})
    if gamma >= 1.0:
        expr = pl.col("r").reverse().cum_sum().reverse()
    elif gamma <= 0.0:
        expr = pl.col("r")
    else:
        # ewm_sum: y_i = x_i + (1 - alpha) * y_{i-1}; with alpha = 1 - gamma and the
        # sequence reversed, that is exactly G_t = r_t + gamma * G_{t+1}.
        expr = pl.col("r").reverse().ewm_sum(alpha=1.0 - gamma).reverse()
    return frame.select(expr.over("e"))["r"].to_numpy(writable=True)


def _episode_layout(episode: Int64Array) -> tuple[Int64Array, Int64Array]:
    """Row index of each row's episode start and of its episode end."""
    n = len(episode)
    is_start = np.empty(n, dtype=bool)
    is_start[:1] = True
    np.not_equal(episode[1:], episode[:-1], out=is_start[1:])
    start_rows = np.flatnonzero(is_start)
    end_rows = np.r_[start_rows[1:] - 1, n - 1]
    ordinal = np.cumsum(is_start) - 1
    return start_rows[ordinal], end_rows[ordinal]


def _dim(table: pa.Table, col: str) -> int:
    if col not in table.column_names:
        return 0
    arr = table.column(col)
    lengths = pa.compute.list_value_length(arr).drop_null()
    return int(lengths[0].as_py()) if len(lengths) else 0


# --------------------------------------------------------------------- build_features


def build_features(
    table: pa.Table | pl.DataFrame,
    spec: FeatureSpec,
    *,
    train_episodes: Iterable[int] | None = None,
    stats: FittedStats | None = None,
    require_target: bool = True,
) -> FeatureFrame:
    """Build the feature matrix and target of a spec from transitions.

    Parameters
    ----------
    table
        Transitions sorted by (episode, step), with the columns of
        :meth:`FeatureSpec.columns_needed`.
    spec
        What to build.
    train_episodes
        Episodes whose rows fit the statistics (imputation values, target scaling,
        bootstrap value). Default: all rows. Ignored when ``stats`` is given.
    stats
        Statistics fitted before (on training episodes), applied as they are.
    require_target
        Drop rows whose target is unknown (missing rewards). ``False`` keeps them with
        ``y = NaN``, for prediction.
    """
    raw = build_raw(table, spec, stats=stats, require_target=require_target)
    if stats is None:
        train = raw.train_rows(train_episodes)
        stats = StatsPart.of(raw, train, spec).finish(spec, raw.names, raw.obs_dim, raw.act_dim)
    return raw.finish(spec, stats)


@dataclass
class RawFeatures:
    """Features and target of some whole episodes before the fitted statistics apply.

    ``X`` still holds NaN where inputs are missing, ``y`` is the unscaled float64 target
    of the kept rows; ``reward`` and ``episode`` cover every row of the table (the
    bootstrap value is fitted on rewards of rows that have no target too).
    """

    X: Float32Array
    y: Float64Array
    groups: Int64Array
    steps: Int64Array
    tail: Float32Array
    reward: Float64Array
    episode: Int64Array
    names: list[str]
    obs_dim: int
    act_dim: int

    def train_rows(self, train_episodes: Iterable[int] | None) -> BoolArray:
        """Which kept rows belong to the training episodes (all when None)."""
        if train_episodes is None:
            return np.ones(len(self.y), dtype=bool)
        train = np.isin(self.groups, np.fromiter(train_episodes, dtype=np.int64))
        if not train.any():
            raise SchemaError("train_episodes selects none of the dataset's episodes.")
        return train

    def finish(self, spec: FeatureSpec, stats: FittedStats) -> FeatureFrame:
        """Apply fitted statistics: impute inputs, scale the target, add the bootstrap."""
        X = impute(self.X, spec, stats, self.groups, self.names)
        return FeatureFrame(
            X=np.ascontiguousarray(X),
            y=finish_target(self.y, self.tail, spec, stats),
            feature_names=list(stats.feature_names),
            groups=self.groups,
            steps=self.steps,
            tail=self.tail,
            stats=stats,
            spec=spec,
        )


def finish_target(
    y: Float64Array, tail: Float32Array, spec: FeatureSpec, stats: FittedStats
) -> Float32Array:
    """The target as models train on it: scaled, the bootstrap tail added, float32.

    ``y`` is the raw target of the kept rows, ``tail`` their missing discount mass
    (:attr:`RawFeatures.tail`).
    """
    if spec.target != "event":
        y = stats.transform_target(y)
        if spec.target == "return" and spec.truncation == "bootstrap":
            y = y + tail * stats.bootstrap_value / stats.target_scale
    return y.astype(np.float32)


def build_raw(
    table: pa.Table | pl.DataFrame,
    spec: FeatureSpec,
    *,
    stats: FittedStats | None = None,
    require_target: bool = True,
) -> RawFeatures:
    """The part of :func:`build_features` that needs no fitted statistics.

    Episodes must be whole in ``table``: shifts, lags and return-to-go look only within
    an episode, so features built chunk by chunk of whole episodes equal those built on
    the whole log (the streaming path relies on it). ``stats``, when given, only checks
    that the table has the dimensions they were fitted on.
    """
    spec.validate()
    if isinstance(table, pl.DataFrame):
        table = table.to_arrow()
    missing_cols = [c for c in spec.columns_needed() if c not in table.column_names]
    if missing_cols:
        raise SchemaError(
            f"build_features needs column(s) {missing_cols}; the table has {table.column_names}."
        )
    n = table.num_rows
    if n == 0:
        raise SchemaError("build_features was given no transitions.")

    episode = _numpy(table.column(S.EPISODE)).astype(np.int64, copy=False)
    step = _numpy(table.column(S.STEP)).astype(np.int64, copy=False)
    if n > 1 and np.any(
        (episode[1:] < episode[:-1]) | ((episode[1:] == episode[:-1]) & (step[1:] <= step[:-1]))
    ):
        raise SchemaError(
            "build_features needs rows sorted by (episode_id, step) without duplicates."
        )
    # The table's own dimensions, so that fitted stats of other dimensions are caught below;
    # the stats' only for a column this spec does not read.
    obs_dim = _dim(table, S.OBS) or _dim(table, S.NEXT_OBS) or (stats.obs_dim if stats else 0)
    act_dim = _dim(table, S.ACTION) or (stats.action_dim if stats else 0)
    names = feature_names(spec, obs_dim, act_dim)
    if stats is not None and names + stats.indicator_columns != stats.feature_names:
        raise SchemaError(
            f"the fitted statistics (and any model trained with them) expect obs of "
            f"{stats.obs_dim} and actions of {stats.action_dim} values; this table has obs of "
            f"{obs_dim} and actions of {act_dim}. Use a dataset of the same environment."
        )
    start_row, end_row = _episode_layout(episode)
    rows = np.arange(n, dtype=np.int64)

    # ---- target (float64 until the end: returns accumulate)
    reward = _numpy(table.column(S.REWARD)).astype(np.float64)  # NULL -> NaN
    if spec.scaling == "clip":
        reward = np.clip(reward, *spec.clip)
    terminated = _numpy(table.column(S.TERMINATED)).astype(bool)
    ended = terminated[end_row]  # the episode's last row says whether its future is known
    tail = np.zeros(n, dtype=np.float64)
    if spec.target == "reward":
        y = reward
    elif spec.target == "event":
        y = np.where(np.isnan(reward), np.nan, (reward > spec.event_threshold).astype(np.float64))
    else:
        y = return_to_go(np.nan_to_num(reward, nan=0.0), episode, spec.gamma)
        # A missing reward at or after t leaves G_t unknown.
        if np.isnan(reward).any():
            unknown_after = return_to_go(np.isnan(reward).astype(np.float64), episode, 1.0) > 0
            y[unknown_after] = np.nan
        remaining = (end_row - rows + 1).astype(np.float64)
        tail = np.where(ended, 0.0, np.power(spec.gamma, remaining))

    # The model trains on float32: a target beyond its range (a reward of 1e308, or a
    # return that overflows) would be infinite there. Refuse it here, naming the row,
    # rather than fail deep inside an engine or drop the row as if it had no reward.
    with np.errstate(invalid="ignore"):
        huge = np.flatnonzero(np.abs(y) > np.finfo(np.float32).max)
    if huge.size:
        at = int(huge[0])
        raise SchemaError(
            f"the {spec.target} target is {y[at]:.6g} at episode {int(episode[at])} step "
            f"{int(step[at])} ({huge.size} such rows): beyond float32's ±3.4e38, which the "
            f"models train on. Rescale the rewards or clip them (scaling='clip', --clip LOW "
            f"HIGH); a reward that is unknown belongs in the log as NULL."
        )

    # ---- which rows stay
    keep = np.ones(n, dtype=bool)
    if require_target:
        keep &= np.isfinite(y)
    if spec.target == "return" and spec.truncation == "drop":
        keep &= tail <= spec.tail_tolerance
    blocks = _source_blocks(table, spec, obs_dim, act_dim)
    if spec.missing == "drop":
        for block in blocks.values():
            keep &= ~_rows_with_nan(block)
    if not keep.any():
        raise SchemaError(
            f"no transition is left to build features from ({n} read): every row lacks the "
            f"target or has missing inputs. Check rewards, or use missing='mean'."
        )
    idx: Int64Array | None = None if keep.all() else np.flatnonzero(keep)
    m = n if idx is None else len(idx)

    # ---- the matrix: one C-contiguous float32 array, written in row chunks (see _assemble)
    plan: list[_Block] = []
    kept_steps = step if idx is None else step[idx]
    if spec.obs:
        plan.append(_Block(blocks[S.OBS], idx))
    if spec.action:
        plan.append(_Block(blocks[S.ACTION], idx))
    if spec.next_obs:
        plan.append(_Block(blocks[S.NEXT_OBS], idx))
    if spec.delta:
        plan.append(_Block(blocks[S.NEXT_OBS], idx, minus=blocks[S.OBS]))
    if spec.step:
        plan.append(_Block(kept_steps.astype(np.float32)[:, None], None))
    if spec.time_limit is not None:
        plan.append(_Block((kept_steps / spec.time_limit).astype(np.float32)[:, None], None))
    for k in range(1, spec.lags + 1):
        # Sorted rows: the lag is the row k above, clamped to the episode's first row.
        src = np.maximum(rows - k, start_row)
        src = src if idx is None else src[idx]
        plan.append(_Block(blocks[S.OBS], src))
        plan.append(_Block(blocks[S.ACTION], src))
    X = _assemble(plan, m)
    assert X.shape[1] == len(names)
    if idx is None:
        idx = rows
    return RawFeatures(
        X=X,
        y=y[idx],
        groups=episode[idx],
        steps=step[idx],
        tail=tail[idx].astype(np.float32),
        reward=reward,
        episode=episode,
        names=names,
        obs_dim=obs_dim,
        act_dim=act_dim,
    )


def features_from_arrays(
    obs: np.ndarray,
    action: np.ndarray,
    next_obs: np.ndarray | None,
    step: np.ndarray | None,
    spec: FeatureSpec,
    stats: FittedStats,
) -> Float32Array:
    """Features of single transitions held in arrays, exactly as :func:`build_features`.

    For per-step prediction without a store (the Gymnasium reward wrappers): one row per
    transition, the same blocks, the same imputation, written by the same assembly code.
    Rows are independent, so ``ffill`` falls back to the training fill values, and specs
    with lags (which need each episode's history) are refused.

    Parameters
    ----------
    obs, action, next_obs
        (n, obs_dim), (n, action_dim) and (n, obs_dim) arrays (a 1-d array is one row;
        ``next_obs`` may be None when the spec does not use it).
    step
        Step of each row within its episode (needed by ``step`` and ``time_limit``).
    spec, stats
        The spec and fitted statistics the model was trained with.

    Examples
    --------
    >>> spec = FeatureSpec(next_obs=True)
    >>> stats = FittedStats(feature_names=["obs_0", "act_0", "next_obs_0"], obs_dim=1,
    ...                     action_dim=1)
    >>> features_from_arrays(np.array([[0.5]]), np.array([[1.0]]), np.array([[0.7]]), None,
    ...                      spec, stats).tolist()
    [[0.5, 1.0, 0.699999988079071]]
    """
    _validated(spec)
    if spec.lags:
        raise SchemaError(
            f"features_from_arrays builds single transitions; FeatureSpec(lags={spec.lags}) "
            f"needs each episode's history. Train the model with lags=0 to use it per step."
        )
    obs_b = np.asarray(obs, dtype=np.float32)
    obs_b = obs_b.reshape(1, -1) if obs_b.ndim == 1 else obs_b.reshape(len(obs_b), -1)
    n = obs_b.shape[0]
    act_b = np.asarray(action, dtype=np.float32).reshape(n, -1)
    blocks: dict[str, np.ndarray] = {S.OBS: obs_b, S.ACTION: act_b}
    if spec.next_obs or spec.delta:
        if next_obs is None:
            raise SchemaError("features_from_arrays: this spec uses next_obs; pass next_obs.")
        blocks[S.NEXT_OBS] = np.asarray(next_obs, dtype=np.float32).reshape(n, -1)
    if obs_b.shape[1] != stats.obs_dim or act_b.shape[1] != stats.action_dim:
        raise SchemaError(
            f"the fitted statistics (and any model trained with them) expect obs of "
            f"{stats.obs_dim} and actions of {stats.action_dim} values; got obs of "
            f"{obs_b.shape[1]} and actions of {act_b.shape[1]}. Use the model's environment."
        )
    steps = None
    if spec.step or spec.time_limit is not None:
        if step is None:
            raise SchemaError("features_from_arrays: this spec uses the step index; pass step.")
        steps = np.asarray(step, dtype=np.float32).reshape(n, 1)
    for key, block in blocks.items():
        if not np.isfinite(block).all():  # infinities count as missing, as in build_features
            blocks[key] = np.where(np.isinf(block), np.float32(np.nan), block)

    plan: list[_Block] = []
    if spec.obs:
        plan.append(_Block(blocks[S.OBS], None))
    if spec.action:
        plan.append(_Block(blocks[S.ACTION], None))
    if spec.next_obs:
        plan.append(_Block(blocks[S.NEXT_OBS], None))
    if spec.delta:
        plan.append(_Block(blocks[S.NEXT_OBS], None, minus=blocks[S.OBS]))
    if steps is not None and spec.step:
        plan.append(_Block(steps, None))
    if steps is not None and spec.time_limit is not None:
        plan.append(_Block(steps / np.float32(spec.time_limit), None))
    names = _feature_names_cached(spec, stats.obs_dim, stats.action_dim)
    if names + stats.indicator_columns != stats.feature_names:
        raise SchemaError(
            f"the fitted statistics were built by another spec: they name "
            f"{stats.feature_names[:6]}..., this spec builds {names[:6]}..."
        )
    X = _assemble(plan, n)
    # Each row its own group: forward-filling across rows would mix unrelated transitions.
    return impute(X, spec, stats, np.arange(n, dtype=np.int64), names)


@functools.cache
def _validated(spec: FeatureSpec) -> None:
    """``spec.validate()`` once per spec (specs are frozen): per-step callers pay nothing."""
    spec.validate()


@functools.cache
def _feature_names_cached(spec: FeatureSpec, obs_dim: int, action_dim: int) -> list[str]:
    return feature_names(spec, obs_dim, action_dim)


_CHUNK = 4096  # rows per chunk: a chunk of the matrix stays in cache while every block lands


@dataclass
class _Block:
    """Columns of the matrix: ``source[rows]`` (all rows when None), minus ``minus[rows]``."""

    source: np.ndarray
    rows: Int64Array | None
    minus: np.ndarray | None = None


def _assemble(plan: list[_Block], m: int) -> Float32Array:
    """Write the blocks side by side into one (m, width) C-contiguous float32 matrix.

    Row chunk by row chunk: writing block after block over the whole matrix would stream
    it through memory once per block, and gathering whole blocks would allocate
    temporaries as large as the matrix. This is a loop over chunks, not over rows.
    """
    widths = [b.source.shape[1] for b in plan]
    X = np.empty((m, sum(widths)), dtype=np.float32)
    for lo in range(0, m, _CHUNK):
        hi = min(lo + _CHUNK, m)
        col = 0
        for block, width in zip(plan, widths, strict=True):
            dst = X[lo:hi, col : col + width]
            col += width
            if block.rows is None:
                if block.minus is None:
                    dst[...] = block.source[lo:hi]
                else:
                    np.subtract(block.source[lo:hi], block.minus[lo:hi], out=dst)
            else:
                r = block.rows[lo:hi]
                if block.minus is None:
                    dst[...] = block.source[r]
                else:
                    np.subtract(block.source[r], block.minus[r], out=dst)
    return X


def _rows_with_nan(block: np.ndarray) -> BoolArray:
    """Rows of a matrix holding any NaN or infinity, in one pass.

    A float64 row sum is non-finite exactly when the row holds NaN or +-inf (float32
    values cannot overflow a float64 sum of a few thousand terms).
    """
    return ~np.isfinite(block.sum(axis=1, dtype=np.float64))


def _source_blocks(
    table: pa.Table, spec: FeatureSpec, obs_dim: int, act_dim: int
) -> dict[str, Float32Array]:
    blocks: dict[str, Float32Array] = {}
    if spec.obs or spec.delta or spec.lags:
        blocks[S.OBS] = vectors(table.column(S.OBS), obs_dim)
    if spec.action or spec.lags:
        blocks[S.ACTION] = vectors(table.column(S.ACTION), act_dim)
    if spec.next_obs or spec.delta:
        blocks[S.NEXT_OBS] = vectors(table.column(S.NEXT_OBS), obs_dim)
    for key, block in blocks.items():
        if any(
            np.isinf(block[lo : lo + _CHUNK * 8]).any() for lo in range(0, len(block), _CHUNK * 8)
        ):
            # Infinities count as missing, like NaN (a rare path, so a full copy is fine).
            block = np.array(block)  # zero-copy Arrow buffers are read-only
            block[np.isinf(block)] = np.nan
            blocks[key] = block
    return blocks


_QUANTILE_ROWS = 4_000_000


@dataclass
class StatsPart:
    """What the fitted statistics need from some training rows, mergeable with other parts.

    The streaming path fits one part per chunk of whole episodes and merges them; the
    Dask path one per partition, merged in a tree. One part over all training rows gives
    exactly what :func:`build_features` fits in memory. How exact the merged statistics
    are:

    - imputation means, the bootstrap value, min/max scaling: sums and counts in float64
      (the same numbers up to float64 rounding of the summation order, below float32's
      resolution, so the float32 features almost always agree to the bit);
    - standard scaling: Chan et al.'s pairwise update of (count, mean, M2), as stable as
      a two-pass variance;
    - medians (``missing="median"``) and robust scaling's quartiles: from a systematic
      sample of every ``sample_step``-th training row (the in-memory path samples the
      same way, at most 1M rows for medians; 4M values for quartiles), exact below that.
    """

    rows: int = 0
    x_sum: Float64Array | None = None
    x_count: Int64Array | None = None
    x_sample: list[Float32Array] = field(default_factory=list)
    y_n: int = 0
    y_mean: float = 0.0
    y_m2: float = 0.0
    y_min: float = math.inf
    y_max: float = -math.inf
    y_sample: list[Float64Array] = field(default_factory=list)
    r_sum: float = 0.0
    r_n: int = 0

    @classmethod
    def of(
        cls,
        raw: RawFeatures,
        train: BoolArray,
        spec: FeatureSpec,
        *,
        median_step: int | None = None,
        quantile_step: int = 1,
        offset: int = 0,
    ) -> StatsPart:
        """The part of the kept rows ``train`` of ``raw``.

        ``median_step`` / ``quantile_step``: keep every k-th training row for medians and
        quartiles, counting from ``offset`` (the training rows before this part), so that
        the parts of a chunked pass sample the rows one whole pass would.
        """
        part = cls(rows=int(train.sum()))
        if spec.missing != "drop":
            n_cols = raw.X.shape[1]
            part.x_sum = np.zeros(n_cols, dtype=np.float64)
            part.x_count = np.zeros(n_cols, dtype=np.int64)
            # Row blocks: np.nanmean would copy the whole matrix to zero its NaNs.
            train_rows = np.flatnonzero(train)
            for lo in range(0, len(train_rows), _CHUNK * 16):
                block = raw.X[train_rows[lo : lo + _CHUNK * 16]]
                part.x_sum += np.nansum(block, axis=0, dtype=np.float64)
                part.x_count += (~np.isnan(block)).sum(axis=0)
            if spec.missing == "median":
                step = median_step or max(1, part.rows // _MEDIAN_ROWS)
                first = (-offset) % step
                part.x_sample = [raw.X[train_rows[first::step]]]
        yt = raw.y[train]
        yt = yt[np.isfinite(yt)]
        if spec.target != "event" and len(yt):
            part.y_n = len(yt)
            part.y_mean = float(yt.mean())
            part.y_m2 = float(((yt - part.y_mean) ** 2).sum())
            part.y_min, part.y_max = float(yt.min()), float(yt.max())
            if spec.scaling == "robust":
                part.y_sample = [yt[(-offset) % quantile_step :: quantile_step]]
        if spec.target == "return" and spec.truncation == "bootstrap":
            # The bootstrap value is a training statistic too: rewards of training episodes
            # only, rows without a target included.
            in_train = np.isin(raw.episode, raw.groups[train])
            r = raw.reward[in_train]
            r = r[np.isfinite(r)]
            part.r_sum, part.r_n = float(r.sum()), len(r)
        return part

    def merge(self, other: StatsPart) -> StatsPart:
        """The part of both parts' rows."""
        out = StatsPart(rows=self.rows + other.rows)
        if self.x_sum is not None and other.x_sum is not None:
            assert self.x_count is not None and other.x_count is not None
            out.x_sum = self.x_sum + other.x_sum
            out.x_count = self.x_count + other.x_count
        else:
            out.x_sum = self.x_sum if self.x_sum is not None else other.x_sum
            out.x_count = self.x_count if self.x_count is not None else other.x_count
        out.x_sample = self.x_sample + other.x_sample
        # Chan, Golub & LeVeque (1979): M2 = M2_a + M2_b + delta^2 n_a n_b / n.
        n = self.y_n + other.y_n
        if n:
            delta = other.y_mean - self.y_mean
            out.y_n = n
            out.y_mean = self.y_mean + delta * other.y_n / n
            out.y_m2 = self.y_m2 + other.y_m2 + delta * delta * self.y_n * other.y_n / n
        out.y_min, out.y_max = min(self.y_min, other.y_min), max(self.y_max, other.y_max)
        out.y_sample = self.y_sample + other.y_sample
        out.r_sum, out.r_n = self.r_sum + other.r_sum, self.r_n + other.r_n
        return out

    def finish(
        self, spec: FeatureSpec, names: list[str], obs_dim: int, act_dim: int
    ) -> FittedStats:
        """The fitted statistics of all merged rows."""
        if self.rows == 0:
            raise SchemaError("train_episodes selects none of the dataset's episodes.")
        stats = FittedStats(
            feature_names=list(names), obs_dim=obs_dim, action_dim=act_dim, train_rows=self.rows
        )
        if spec.missing != "drop" and self.x_sum is not None and self.x_count is not None:
            if spec.missing == "median":
                sample = np.concatenate(self.x_sample) if self.x_sample else np.empty((0, 0))
                with np.errstate(invalid="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
                    fill = np.nanmedian(sample, axis=0)
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    fill = self.x_sum / self.x_count
            # A column with no value at all in training falls back to 0.
            stats.fill_values = [float(v) if math.isfinite(v) else 0.0 for v in fill]
            if spec.missing_indicator:
                has_nan = self.x_count < self.rows
                stats.indicator_columns = [f"{names[j]}_missing" for j in np.flatnonzero(has_nan)]
                stats.feature_names = names + stats.indicator_columns
        if spec.target != "event" and self.y_n:
            if spec.scaling == "standard":
                stats.target_center = self.y_mean
                stats.target_scale = math.sqrt(self.y_m2 / self.y_n)
            elif spec.scaling == "minmax":
                stats.target_center, stats.target_scale = self.y_min, self.y_max - self.y_min
            elif spec.scaling == "robust":
                q1, med, q3 = np.quantile(np.concatenate(self.y_sample), [0.25, 0.5, 0.75])
                stats.target_center, stats.target_scale = float(med), float(q3 - q1)
            if not stats.target_scale > 0:  # a constant target: center only
                stats.target_scale = 1.0
        if spec.target == "return" and spec.truncation == "bootstrap":
            stats.bootstrap_value = self.r_sum / self.r_n / (1.0 - spec.gamma) if self.r_n else 0.0
        return stats


def impute(
    X: Float32Array, spec: FeatureSpec, stats: FittedStats, groups: Int64Array, names: list[str]
) -> Float32Array:
    """Fill missing inputs as fitted (in place where no indicator columns are added).

    ``groups`` holds each row's episode: forward-filling never crosses episodes, so rows
    may be imputed a chunk of whole episodes at a time.
    """
    if spec.missing == "drop" or stats.fill_values is None:
        return X
    nan_cols = np.flatnonzero(np.isnan(X).any(axis=0))
    indicators = None
    if stats.indicator_columns:
        wanted = [names.index(c[: -len("_missing")]) for c in stats.indicator_columns]
        indicators = np.isnan(X[:, wanted]).astype(np.float32)
    if spec.missing == "ffill" and len(nan_cols):
        start = np.r_[True, groups[1:] != groups[:-1]]
        start_row = np.maximum.accumulate(np.where(start, np.arange(len(X)), 0))
    for j in nan_cols:
        column = X[:, j]
        hole = np.isnan(column)
        if spec.missing == "ffill":
            # Index of the last valid row at or before each row, not crossing episodes.
            last = np.maximum.accumulate(np.where(hole, -1, np.arange(len(X))))
            ok = hole & (last >= start_row)
            column[ok] = column[last[ok]]
            hole = np.isnan(column)
        column[hole] = stats.fill_values[j]
    if indicators is not None:
        X = np.concatenate([X, indicators], axis=1)
    return X
