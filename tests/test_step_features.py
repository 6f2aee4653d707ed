"""StepFeaturizer: the per-step features of the reward wrappers, equal to features_from_arrays."""

from __future__ import annotations

import doctest

import numpy as np
import polars as pl
import pytest

from rmlite import FeatureSpec
from rmlite.data import step_features
from rmlite.data.feature_spec import FittedStats
from rmlite.data.features import build_features, features_from_arrays
from rmlite.data.step_features import StepFeaturizer
from rmlite.exceptions import SchemaError
from rmlite.pipeline import train
from rmlite.rl import RewardFunction
from rmlite.testing import _list_series, rollout

# The inputs below overflow float32 on purpose; features_from_arrays warns of it too.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

SPECS = {
    "quickstart": FeatureSpec(next_obs=True, missing="drop"),
    "all-parts-mean": FeatureSpec(
        next_obs=True, delta=True, step=True, time_limit=200, missing="mean"
    ),
    "delta-without-obs-median": FeatureSpec(obs=False, delta=True, missing="median"),
    "no-action-limit-ffill": FeatureSpec(action=False, time_limit=50, missing="ffill"),
    "delta-drop-no-indicators": FeatureSpec(
        delta=True, step=True, missing="mean", missing_indicator=False
    ),
}


@pytest.fixture(scope="module")
def log() -> pl.DataFrame:
    """Pendulum transitions with some obs, action and next_obs values missing, so that the
    fitted statistics hold fill values and indicator columns."""
    frame = rollout("Pendulum-v1", episodes=3, max_steps=40, seed=4)
    rng = np.random.default_rng(4)
    columns = {}
    for name in ("obs", "action", "next_obs"):
        values = np.asarray(frame[name].to_list(), dtype=np.float32)
        values[rng.random(values.shape) < 0.05] = np.nan
        columns[name] = _list_series(name, values)
    return frame.with_columns(**columns)


def _stats(log: pl.DataFrame, spec: FeatureSpec) -> FittedStats:
    return build_features(log.to_arrow(), spec).stats


def _inputs(
    rng: np.random.Generator, n: int, dtype: type, holes: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n transitions of Pendulum's sizes; with ``holes``, NaN, +-inf, values beyond
    float32's range, and a delta that overflows."""
    obs: np.ndarray = rng.normal(size=(n, 3)).astype(dtype)
    action: np.ndarray = rng.uniform(-2, 2, size=(n, 1)).astype(dtype)
    next_obs: np.ndarray = rng.normal(size=(n, 3)).astype(dtype)
    step = rng.integers(0, 200, size=n)
    if holes:
        for block in (obs, action, next_obs):
            at = rng.random(block.shape)
            block[at < 0.1] = np.nan
            block[(at >= 0.1) & (at < 0.15)] = np.inf
            block[(at >= 0.15) & (at < 0.2)] = -np.inf
        obs[0, 0], next_obs[0, 0] = -3e38, 3e38  # finite inputs, delta overflows to inf
        if dtype is np.float64:
            obs[-1, 1] = 1e39  # inf once cast to float32, so missing
    return obs, action, next_obs, step


def _same_bits(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype == np.float32
    assert a.shape == b.shape
    assert a.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("name", list(SPECS))
def test_step_features_equal_features_from_arrays_to_the_bit(
    log: pl.DataFrame, name: str, rng: np.random.Generator
) -> None:
    spec = SPECS[name]
    stats = _stats(log, spec)
    featurize = StepFeaturizer(spec, stats)
    assert featurize.width == len(stats.feature_names)
    if spec.missing != "drop" and spec.missing_indicator:
        assert stats.indicator_columns  # the holes above made some
    for n in (1, 5, 16):
        for dtype in (np.float32, np.float64):
            for holes in (False, True):
                obs, action, next_obs, step = _inputs(rng, n, dtype, holes)
                X = featurize(obs, action, next_obs, step)
                _same_bits(X, features_from_arrays(obs, action, next_obs, step, spec, stats))
                if not holes:
                    assert np.isfinite(X).all()
    # The caller's arrays are left as they were (inf is made NaN in the features only).
    obs, action, next_obs, step = _inputs(rng, 8, np.float32, True)
    before = [a.copy() for a in (obs, action, next_obs)]
    featurize(obs, action, next_obs, step)
    for a, b in zip((obs, action, next_obs), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_missing_inputs_get_the_fill_values_and_indicators(log: pl.DataFrame) -> None:
    spec = SPECS["all-parts-mean"]
    stats = _stats(log, spec)
    assert stats.fill_values is not None
    featurize = StepFeaturizer(spec, stats)
    obs = np.array([[0.1, 0.2, 0.3], [np.inf, 0.2, 0.3]], dtype=np.float32)
    X = featurize(obs, np.zeros((2, 1)), obs, np.array([0, 1]))
    names = stats.feature_names
    assert X[1, names.index("obs_0")] == np.float32(stats.fill_values[0])
    assert X[0, names.index("obs_0")] == np.float32(0.1)
    if "obs_0_missing" in names:
        assert X[:, names.index("obs_0_missing")].tolist() == [0.0, 1.0]
    assert X[1, names.index("step")] == 1.0
    assert X[1, names.index("progress")] == np.float32(1) / np.float32(200)


def test_unusual_shapes_go_to_features_from_arrays(log: pl.DataFrame) -> None:
    spec = SPECS["all-parts-mean"]
    stats = _stats(log, spec)
    featurize = StepFeaturizer(spec, stats)
    obs = np.array([0.1, 0.2, 0.3])  # one transition as 1-d vectors
    X = featurize(obs, np.array([0.5]), obs, np.array([3]))
    _same_bits(X, features_from_arrays(obs, np.array([0.5]), obs, np.array([3]), spec, stats))
    assert X.shape == (1, len(stats.feature_names))


def test_bad_inputs_get_features_from_arrays_errors(log: pl.DataFrame) -> None:
    spec = SPECS["all-parts-mean"]
    stats = _stats(log, spec)
    featurize = StepFeaturizer(spec, stats)
    obs = np.zeros((2, 3))
    with pytest.raises(SchemaError, match="expect obs of 3 and actions of 1 values; got obs of 4"):
        featurize(np.zeros((2, 4)), np.zeros((2, 1)), np.zeros((2, 4)), np.array([0, 1]))
    with pytest.raises(SchemaError, match=r"expect obs of 3 and actions of 1 values.*actions of 2"):
        featurize(obs, np.zeros((2, 2)), obs, np.array([0, 1]))
    with pytest.raises(SchemaError, match="this spec uses next_obs; pass next_obs"):
        featurize(obs, np.zeros((2, 1)), None, np.array([0, 1]))
    with pytest.raises(SchemaError, match="this spec uses the step index; pass step"):
        featurize(obs, np.zeros((2, 1)), obs, None)
    with pytest.raises(SchemaError, match=r"lags=1\) needs each episode's history"):
        StepFeaturizer(FeatureSpec(lags=1), stats)
    with pytest.raises(SchemaError, match="the fitted statistics were built by another spec"):
        StepFeaturizer(FeatureSpec(next_obs=True), stats)


SMALL = {"n_estimators": 30, "learning_rate": 0.3, "n_jobs": 1}


@pytest.mark.parametrize(
    ("spec", "params", "pessimism"),
    [
        (FeatureSpec(next_obs=True, missing="drop", scaling="standard"), SMALL, 0.0),
        (
            FeatureSpec(next_obs=True, delta=True, step=True, time_limit=200, missing="mean"),
            {**SMALL, "backend": "xgboost", "n_members": 2},
            1.0,
        ),
        (
            FeatureSpec(delta=True, missing="median", scaling="minmax"),
            {**SMALL, "n_members": 3},
            0.5,
        ),
    ],
    ids=["lightgbm-scaled", "xgboost-ensemble-indicators", "lightgbm-ensemble-minmax"],
)
def test_reward_function_equals_features_from_arrays_then_predict(
    log: pl.DataFrame,
    spec: FeatureSpec,
    params: dict[str, object],
    pessimism: float,
    rng: np.random.Generator,
) -> None:
    from rmlite import LogStore

    store = LogStore(":memory:")
    store.ingest(log, dataset="pend")
    model = train(store, "pend", spec, dict(params), seed=0).model
    fn = RewardFunction(model, pessimism=pessimism)
    stats = FittedStats.from_dict(model.feature_stats_)
    for holes in (False, True):
        obs, action, next_obs, step = _inputs(rng, 16, np.float64, holes)
        X = features_from_arrays(obs, action, next_obs, step, spec, stats)
        mean, std = model.predict(X, return_std=True, check_input=False)
        expected = stats.inverse_transform_target(mean - pessimism * std)
        got = fn(obs, action, next_obs, step)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got.view(np.uint64), expected.view(np.uint64))


def test_doctests() -> None:
    assert doctest.testmod(step_features).failed == 0
