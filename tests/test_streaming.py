"""The streaming path: features built to disk a chunk of whole episodes at a time, models
trained and applied from there, agreeing with the in-memory path on logs that fit."""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pytest

from rmlite import LogStore, RewardRegressor
from rmlite.data import schema as S
from rmlite.data.features import FeatureSpec, StatsPart, build_raw, return_to_go
from rmlite.data.matrix_file import MatrixFile
from rmlite.data.store._feature_stream import episode_chunks
from rmlite.exceptions import SchemaError
from rmlite.pipeline import predict, predict_to_file, train
from rmlite.testing import synthetic_log

SPECS = [
    FeatureSpec(),
    FeatureSpec(target="return", next_obs=True, missing="mean", scaling="standard"),
    FeatureSpec(
        target="return",
        next_obs=True,
        missing="median",
        missing_indicator=True,
        scaling="robust",
        lags=2,
        truncation="bootstrap",
    ),
    FeatureSpec(next_obs=True, missing="ffill", delta=True, scaling="minmax", step=True),
]


@pytest.fixture(scope="module")
def walker_store(tmp_path_factory, walker_log) -> LogStore:
    """Walker2d without next_obs in the log: the store derives it, leaving the last step
    of each episode without one (NaN inputs for the imputation to fill)."""
    store = LogStore(tmp_path_factory.mktemp("stream") / "s.duckdb")
    store.ingest(walker_log.drop(S.NEXT_OBS), dataset="w")
    return store


# ----------------------------------------------------------------------- MatrixFile


def _matrix(tmp_path, rows: int = 1000, cols: int = 3) -> tuple[MatrixFile, np.ndarray]:
    values = np.random.default_rng(0).normal(size=(rows, cols)).astype(np.float32)
    with MatrixFile.create(tmp_path / "X.f32", cols) as writer:
        for lo in range(0, rows, 333):
            writer.append(values[lo : lo + 333])
    return writer.close(), values


def test_matrix_file_reads_rows_views_and_chunks(tmp_path) -> None:
    X, values = _matrix(tmp_path)
    assert X.shape == (1000, 3) and os.path.getsize(X.path) == values.nbytes
    assert np.array_equal(X[10:20], values[10:20])
    assert np.array_equal(X[-1], values[-1])
    mask = np.random.default_rng(1).random(1000) < 0.3
    view = X[mask]
    assert len(view) == mask.sum() and np.array_equal(view.to_numpy(), values[mask])
    # A view of a view, and a resample with repeats (sorted, as the estimators pass it).
    rows = np.sort(np.random.default_rng(2).integers(0, len(view), size=500))
    assert np.array_equal(view[rows].to_numpy(), values[mask][rows])
    chunks = list(view.iter_chunks(64))
    assert [len(c) for c in chunks[:-1]] == [64] * (len(chunks) - 1)
    assert np.array_equal(np.concatenate(chunks), values[mask])


def test_matrix_file_views_hold_int32_row_numbers(tmp_path) -> None:
    X, values = _matrix(tmp_path)
    view = X[np.arange(len(values)) % 3 == 0]
    assert view.rows is not None and view.rows.dtype == np.int32
    assert np.array_equal(view[5:9], values[::3][5:9])


def test_matrix_file_reads_scattered_rows_in_bounded_blocks(tmp_path, monkeypatch) -> None:
    X, values = _matrix(tmp_path, rows=50_000)
    monkeypatch.setattr(MatrixFile, "chunk_rows", lambda self, chunk_bytes=0: 500)
    rows = np.sort(np.random.default_rng(3).choice(50_000, size=300, replace=False))
    assert np.array_equal(X[rows].to_numpy(), values[rows])


def test_matrix_file_refuses_bad_views_and_blocks(tmp_path) -> None:
    X, _ = _matrix(tmp_path)
    with pytest.raises(ValueError, match="non-decreasing"):
        X[np.array([5, 3])]
    with pytest.raises(IndexError, match="boolean index of 3 entries"):
        X[np.array([True, False, True])]
    with pytest.raises(IndexError, match="out of range"):
        X[np.array([0, 1000])]
    with (
        MatrixFile.create(tmp_path / "Y.f32", 3) as writer,
        pytest.raises(ValueError, match="block of shape"),
    ):
        writer.append(np.zeros((2, 4), np.float32))


# ------------------------------------------------------------------------- features


def test_episode_chunks_hold_whole_episodes() -> None:
    keys, lengths = np.arange(6), np.array([4, 4, 10, 1, 1, 1])
    chunks = episode_chunks(keys, lengths, 5)
    assert chunks == [(0, 1), (2, 2), (3, 5)]
    assert episode_chunks(keys, lengths, 10**9) == [(0, 5)]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.target}-{s.missing}-{s.scaling}")
@pytest.mark.parametrize("chunk_rows", [7, 40, 10**6])
def test_streamed_features_equal_in_memory(walker_store, tmp_path, spec, chunk_rows) -> None:
    train_eps = walker_store.episodes("w", keys=True)[S.EPISODE].to_numpy()[:4]
    whole = walker_store.features("w", spec, train_episodes=train_eps)
    streamed = walker_store.features(
        "w", spec, train_episodes=train_eps, stream_to=tmp_path, chunk_rows=chunk_rows
    )
    assert isinstance(streamed.X, MatrixFile)
    assert streamed.feature_names == whole.feature_names
    # The same bits: chunks hold whole episodes, and the merged statistics round to the
    # same float32 fill values and target scaling.
    assert np.array_equal(streamed.X.to_numpy(), whole.X)
    assert np.array_equal(streamed.y, whole.y)
    assert np.array_equal(streamed.groups, whole.groups)
    assert np.array_equal(streamed.steps, whole.steps)
    assert streamed.stats.fill_values == pytest.approx(whole.stats.fill_values, rel=1e-12)
    assert streamed.stats.target_scale == pytest.approx(whole.stats.target_scale, rel=1e-12)


def test_return_to_go_exact_across_many_chunks(tmp_path, store) -> None:
    """Episodes longer than a chunk are chunks of their own: the return-to-go of a
    2,000-step episode equals a plain backward recursion."""
    log = synthetic_log(rows=6_000, obs_dim=3, action_dim=2, episode_length=2_000, seed=1)
    store.ingest(log, dataset="long")
    spec = FeatureSpec(target="return", gamma=0.99, truncation="mark")
    streamed = store.features("long", spec, stream_to=tmp_path, chunk_rows=500)
    reward = log[S.REWARD].to_numpy()
    expected = np.empty_like(reward)
    for e in range(3):
        g = 0.0
        for t in range(1999, -1, -1):
            g = reward[e * 2000 + t] + 0.99 * g
            expected[e * 2000 + t] = g
    np.testing.assert_allclose(streamed.y, expected.astype(np.float32), rtol=1e-5, atol=1e-4)
    episode = log[S.EPISODE].to_numpy()
    np.testing.assert_array_equal(
        streamed.y, return_to_go(reward, episode, 0.99).astype(np.float32)
    )


def test_stats_parts_merge_like_one_part(walker_store) -> None:
    spec = SPECS[1]
    table = walker_store.read_arrow("w", spec.columns_needed())
    raw = build_raw(table, spec)
    train = np.ones(len(raw.y), dtype=bool)
    one = StatsPart.of(raw, train, spec).finish(spec, raw.names, raw.obs_dim, raw.act_dim)
    half = np.arange(len(raw.y)) < len(raw.y) // 2
    merged = (
        StatsPart.of(raw, half, spec)
        .merge(StatsPart.of(raw, ~half, spec))
        .finish(spec, raw.names, raw.obs_dim, raw.act_dim)
    )
    assert merged.fill_values == pytest.approx(one.fill_values, rel=1e-12)
    assert merged.target_center == pytest.approx(one.target_center, rel=1e-12)
    assert merged.target_scale == pytest.approx(one.target_scale, rel=1e-12)
    assert merged.train_rows == one.train_rows == len(raw.y)


def test_streamed_features_refuse_bad_chunk_rows_and_unknown_dataset(
    walker_store, tmp_path
) -> None:
    with pytest.raises(SchemaError, match="'chunk_rows' parameter must be an int >= 1"):
        walker_store.features("w", FeatureSpec(), stream_to=tmp_path, chunk_rows=0)
    with pytest.raises(Exception, match="nope"):
        walker_store.features("nope", FeatureSpec(), stream_to=tmp_path)
    assert not os.path.exists(tmp_path / "X.f32")


# ------------------------------------------------------------------ train, predict


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory) -> LogStore:
    store = LogStore(tmp_path_factory.mktemp("stream-train") / "s.duckdb")
    store.ingest(synthetic_log(rows=6_000, episode_length=200, seed=2), dataset="syn")
    return store


@pytest.mark.parametrize("backend", ["lightgbm", "xgboost"])
def test_streamed_training_gives_the_in_memory_model(synthetic_store, tmp_path, backend) -> None:
    spec = FeatureSpec(next_obs=True, scaling="standard")
    params = {"backend": backend, "n_estimators": 15, "early_stopping_rounds": 5, "n_jobs": 1}
    whole = train(synthetic_store, "syn", spec, params, out=tmp_path / "a", stream=False)
    streamed = train(
        synthetic_store, "syn", spec, params, out=tmp_path / "b", stream=True, chunk_rows=1_000
    )
    assert streamed.streamed and not whole.streamed
    # The same trees; the metrics differ at most by the float64 rounding of the merged
    # target scaling that turns targets back into reward units.
    assert streamed.metrics["holdout"]["r2"] == pytest.approx(
        whole.metrics["holdout"]["r2"], rel=1e-12
    )
    assert streamed.model.n_iter_ == whole.model.n_iter_
    assert streamed.metrics["holdout"]["r2"] > 0.5  # it learned the synthetic reward
    a = predict(synthetic_store, tmp_path / "a", "syn")
    b = predict(synthetic_store, tmp_path / "b", "syn", chunk_rows=700)
    assert a.height == b.height == 6_000
    np.testing.assert_allclose(a["prediction"].to_numpy(), b["prediction"].to_numpy(), rtol=1e-12)


def test_estimator_fits_and_predicts_a_matrix_file(synthetic_store, tmp_path) -> None:
    frame = synthetic_store.features("syn", FeatureSpec(), stream_to=tmp_path, chunk_rows=900)
    X = frame.X.to_numpy()
    train_rows = frame.groups < 20
    kw = {"n_estimators": 10, "random_state": 0, "n_members": 2, "n_jobs": 1}
    streamed = RewardRegressor(**kw).fit(
        frame.X[train_rows], frame.y[train_rows], groups=frame.groups[train_rows]
    )
    whole = RewardRegressor(**kw).fit(
        X[train_rows], frame.y[train_rows], groups=frame.groups[train_rows]
    )
    assert streamed.n_features_in_ == X.shape[1]
    mean, std = streamed.predict(frame.X[~train_rows], return_std=True)
    np.testing.assert_array_equal(mean, whole.predict(X[~train_rows]))
    assert std.shape == mean.shape and (std > 0).any()
    with pytest.raises(SchemaError, match="one target per row"):
        RewardRegressor().fit(frame.X, frame.y[:10])


def test_predict_to_file_writes_every_chunk_or_nothing(synthetic_store, tmp_path) -> None:
    result = train(
        synthetic_store, "syn", FeatureSpec(), {"n_estimators": 5, "n_jobs": 1}, out=tmp_path / "m"
    )
    assert result.model_path is not None
    for name in ("p.parquet", "p.csv"):
        summary = predict_to_file(
            synthetic_store, tmp_path / "m", "syn", tmp_path / name, chunk_rows=1_000
        )
        back = (pl.read_csv if name.endswith(".csv") else pl.read_parquet)(tmp_path / name)
        assert summary["rows"] == back.height == 6_000
        assert back[S.EPISODE].is_sorted()
        assert summary["mean"] == pytest.approx(back["prediction"].mean(), rel=1e-9)
    with pytest.raises(Exception, match="nope"):
        predict_to_file(synthetic_store, tmp_path / "m", "nope", tmp_path / "q.parquet")
    assert not (tmp_path / "q.parquet").exists()
    assert not (tmp_path / "q.parquet.partial").exists()


def test_streamed_fit_parks_the_frame_arrays_and_restores_them(synthetic_store, tmp_path) -> None:
    from rmlite.pipeline.rewards import _PARKED, _parked

    frame = synthetic_store.features(
        "syn", FeatureSpec(next_obs=True), stream_to=tmp_path, chunk_rows=700
    )
    before = {name: getattr(frame, name).copy() for name in _PARKED}
    with pytest.raises(RuntimeError, match="engine failed"), _parked(frame, str(tmp_path)):
        assert all(len(getattr(frame, name)) == 0 for name in _PARKED)
        assert {f"{name}.npy" for name in _PARKED} <= set(os.listdir(tmp_path))
        raise RuntimeError("engine failed")
    for name in _PARKED:  # back whole, even when the fit fails, and the files gone
        assert np.array_equal(getattr(frame, name), before[name])
        assert getattr(frame, name).dtype == before[name].dtype
    assert not any(f.endswith(".npy") for f in os.listdir(tmp_path))
