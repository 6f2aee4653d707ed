"""Features of a dataset larger than memory: built in chunks of whole episodes, to disk.

The store reads the dataset a range of episode keys at a time (each chunk about
``chunk_rows`` transitions, sorted by (episode, step)), builds each chunk's features with
the same code as the in-memory path, and appends them to a :class:`MatrixFile`. Episodes
are never cut, so next_obs, lags, return-to-go and forward-filling are exact.

One pass over the store, then at most one pass over the file:

1. every chunk's raw features (missing inputs still NaN) go to the file while the
   training rows' sufficient statistics (:class:`StatsPart`) are merged;
2. if any chunk held a missing input, its rows are imputed in place with the finished
   statistics (or, with missing-value indicator columns, copied into a wider file).

Targets, episode ids and steps (28 bytes a row) stay in memory: the hold-out split and
the metrics need them whole (``rmlite.pipeline.train`` parks them on disk while the
engine fits).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa

from rmlite._memory import release_freed_memory
from rmlite._typing import PathLike
from rmlite.data import schema as S
from rmlite.data.feature_spec import FeatureFrame, FeatureSpec, FittedStats
from rmlite.data.features import (
    _MEDIAN_ROWS,
    _QUANTILE_ROWS,
    RawFeatures,
    StatsPart,
    build_raw,
    finish_target,
    impute,
)
from rmlite.data.matrix_file import MatrixFile
from rmlite.data.store._connection import Store, read_budget, require, select_columns, sql
from rmlite.exceptions import SchemaError

DEFAULT_CHUNK_ROWS = 500_000
"""Transitions per chunk: about 150 MB of Arrow and features for a MuJoCo-sized log."""


_NOTHING_LEFT = (
    "dataset {dataset!r}: no transition is left to build features from: every row lacks "
    "the target or has missing inputs. Check rewards, or use missing='mean'."
)


def episode_chunks(keys: np.ndarray, lengths: np.ndarray, chunk_rows: int) -> list[tuple[int, int]]:
    """Consecutive episode-key ranges ``[lo, hi]`` of about ``chunk_rows`` transitions.

    An episode longer than ``chunk_rows`` is a chunk of its own: chunks hold whole episodes.

    Examples
    --------
    >>> episode_chunks(np.array([0, 1, 2, 5]), np.array([3, 3, 9, 1]), 5)
    [(0, 1), (2, 2), (5, 5)]
    """
    out: list[tuple[int, int]] = []
    start, rows = 0, 0
    for i, length in enumerate(lengths.tolist()):
        rows += length
        if rows >= chunk_rows:
            out.append((int(keys[start]), int(keys[i])))
            start, rows = i + 1, 0
    if start < len(keys):
        out.append((int(keys[start]), int(keys[-1])))
    return out


def stream_features(
    store: Store,
    dataset: str,
    spec: FeatureSpec,
    folder: PathLike,
    *,
    train_episodes: Iterable[int] | None = None,
    stats: FittedStats | None = None,
    require_target: bool = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[str], None] | None = None,
) -> FeatureFrame:
    """The work of :meth:`LogStore.features` with ``stream_to=folder``."""
    spec.validate()
    say = progress or (lambda _msg: None)
    keys, lengths, chunks = _plan(store, dataset, chunk_rows)
    os.makedirs(folder, exist_ok=True)
    train_keys = None if train_episodes is None else np.fromiter(train_episodes, dtype=np.int64)
    fitting = stats is None
    # Sampling steps for medians and quartiles, from the training rows' upper bound, as
    # the in-memory path takes them from its training rows.
    n_train = int(lengths.sum() if train_keys is None else lengths[np.isin(keys, train_keys)].sum())
    median_step = max(1, n_train // _MEDIAN_ROWS)
    quantile_step = max(1, n_train // _QUANTILE_ROWS)

    path = os.path.join(os.fspath(folder), "X.f32")
    part = StatsPart()
    spans: list[tuple[int, int, bool]] = []  # file rows [lo, hi) of each chunk, NaN seen
    ys: list[np.ndarray] = []
    groups: list[np.ndarray] = []
    steps: list[np.ndarray] = []
    tails: list[np.ndarray] = []
    names: list[str] = []
    dims = (0, 0)
    writer = None
    try:
        for i, raw in enumerate(_raw_chunks(store, dataset, spec, chunks, stats, require_target)):
            if writer is None:
                writer = MatrixFile.create(path, raw.X.shape[1])
                names, dims = raw.names, (raw.obs_dim, raw.act_dim)
            lo = writer.n_rows
            if fitting:
                train = (
                    np.ones(len(raw.y), dtype=bool)
                    if train_keys is None
                    else np.isin(raw.groups, train_keys)
                )
                if train.any():
                    part = part.merge(
                        StatsPart.of(
                            raw,
                            train,
                            spec,
                            median_step=median_step,
                            quantile_step=quantile_step,
                            offset=part.rows,
                        )
                    )
                writer.append(raw.X)
                spans.append((lo, writer.n_rows, bool(np.isnan(raw.X).any())))
                ys.append(raw.y)
            else:
                assert stats is not None
                writer.append(impute(raw.X, spec, stats, raw.groups, raw.names))
                ys.append(finish_target(raw.y, raw.tail, spec, stats))
            groups.append(raw.groups)
            steps.append(raw.steps)
            tails.append(raw.tail)
            say(f"features: chunk {i + 1}/{len(chunks)}, {writer.n_rows:,} rows")
        if writer is None:
            raise SchemaError(_NOTHING_LEFT.format(dataset=dataset))
        X = writer.close()
        group = np.concatenate(groups)
        del groups
        if fitting:
            stats = part.finish(spec, names, *dims)  # refuses a part of no training rows
            X = _impute_file(X, spans, spec, stats, group, names, folder)
        assert stats is not None
        y = np.concatenate(ys)
        tail = np.concatenate(tails)
        if fitting:
            y = finish_target(y, tail, spec, stats)
    except BaseException:
        if writer is not None:
            writer.close()
            _remove(path)
        raise
    frame = FeatureFrame(
        X=X,  # type: ignore[arg-type]  # a MatrixFile stands in for the float32 matrix
        y=y,
        feature_names=list(stats.feature_names),
        groups=group,
        steps=np.concatenate(steps),
        tail=tail,
        stats=stats,
        spec=spec,
    )
    # The chunks' arrays are garbage now; the heap kept their pages (0.5 GB at 30M
    # transitions), which the fit that follows needs.
    del ys, steps, tails
    release_freed_memory()
    return frame


def feature_chunks(
    store: Store,
    dataset: str,
    spec: FeatureSpec,
    stats: FittedStats,
    *,
    require_target: bool = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[FeatureFrame]:
    """The work of :meth:`LogStore.feature_chunks`."""
    spec.validate()
    _, _, chunks = _plan(store, dataset, chunk_rows)
    empty = True
    for raw in _raw_chunks(store, dataset, spec, chunks, stats, require_target):
        empty = False
        yield raw.finish(spec, stats)
    if empty:
        raise SchemaError(_NOTHING_LEFT.format(dataset=dataset))


def _plan(
    store: Store, dataset: str, chunk_rows: int
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """The dataset's episode keys, their lengths, and the chunks of whole episodes."""
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise SchemaError(f"The 'chunk_rows' parameter must be an int >= 1. Got {chunk_rows!r}.")
    with store.connect() as con:
        require(store, con, dataset)
        episodes = con.sql(sql("episodes"), params={"dataset": dataset}).pl()
    keys = episodes[S.EPISODE].to_numpy()
    lengths = episodes["length"].to_numpy()
    return keys, lengths, episode_chunks(keys, lengths, chunk_rows)


def _raw_chunks(
    store: Store,
    dataset: str,
    spec: FeatureSpec,
    chunks: list[tuple[int, int]],
    stats: FittedStats | None,
    require_target: bool,
) -> Iterator[RawFeatures]:
    """Raw features of each chunk of episodes, read in (episode, step) order."""
    query = select_columns(sql("read_episode_range"), spec.columns_needed())
    # One read-only connection for the whole pass: a feature build is one job, and
    # reopening the file per chunk would cost more than the chunk's query. DuckDB would
    # keep every block it read cached up to its default limit (80% of RAM): a pass over a
    # 10M-row dataset left 2 GB resident. A chunk's query needs far less.
    with store.connect() as con, read_budget(con):
        for lo, hi in chunks:
            table: pa.Table = con.sql(
                query, params={"dataset": dataset, "lo": lo, "hi": hi}
            ).to_arrow_table()
            if table.num_rows == 0:
                continue
            try:
                yield build_raw(table, spec, stats=stats, require_target=require_target)
            except SchemaError as exc:
                if "no transition is left" in str(exc):
                    continue  # a chunk whose rows all lack the target: others may not
                raise SchemaError(f"dataset {dataset!r}: {exc}") from exc


def _impute_file(
    X: MatrixFile,
    spans: list[tuple[int, int, bool]],
    spec: FeatureSpec,
    stats: FittedStats,
    groups: np.ndarray,
    names: list[str],
    folder: PathLike,
) -> MatrixFile:
    """Apply the finished imputation to the rows written raw: in place, or into a wider
    file when missing-value indicator columns are added."""
    if spec.missing == "drop" or stats.fill_values is None:
        return X
    if not stats.indicator_columns:
        with open(X.path, "r+b", buffering=0) as fh:
            for lo, hi, has_nan in spans:
                if not has_nan:
                    continue
                block = impute(X.read(lo, hi), spec, stats, groups[lo:hi], names)
                os.pwrite(
                    fh.fileno(),
                    np.ascontiguousarray(block).data.cast("B"),
                    lo * X.n_cols * 4,
                )
        return X
    wide = os.path.join(os.fspath(folder), "X_wide.f32")
    with MatrixFile.create(wide, len(stats.feature_names)) as writer:
        for lo, hi, _ in spans:
            writer.append(impute(X.read(lo, hi), spec, stats, groups[lo:hi], names))
    _remove(X.path)
    return writer.close()


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)
