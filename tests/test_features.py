"""rmlite.data.features: return-to-go, the feature matrix, and statistics fitted on training rows."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic import matrix, random_log

from rmlite import FeatureSpec, FittedStats, SchemaError, build_features, return_to_go
from rmlite.data import schema as S
from rmlite.data.features import feature_names, vectors

# ----------------------------------------------------------------------------- helpers


def reference_return_to_go(reward, episode, gamma: float) -> np.ndarray:
    """G_t = r_t + gamma * G_{t+1}, G = 0 past an episode's last step: the plain loop."""
    reward = [float(r) for r in reward]
    episode = [int(e) for e in episode]
    out = [0.0] * len(reward)
    acc = 0.0
    for i in range(len(reward) - 1, -1, -1):
        if i == len(reward) - 1 or episode[i + 1] != episode[i]:
            acc = 0.0
        acc = reward[i] + gamma * acc
        out[i] = acc
    return np.asarray(out)


def with_obs(frame: pl.DataFrame, obs: np.ndarray) -> pl.DataFrame:
    """``frame`` with its obs replaced (NaN allowed)."""
    return frame.with_columns(pl.Series(S.OBS, obs.astype(np.float32)).arr.to_list())


# ------------------------------------------------------------------------ return-to-go


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 5000), min_size=1, max_size=5),
    gamma=st.floats(0.0, 1.0),
    kind=st.sampled_from(["normal", "sparse", "positive"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_return_to_go_matches_the_loop(lengths, gamma, kind, seed):
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    if kind == "normal":
        reward = rng.normal(scale=10.0, size=n)
    elif kind == "sparse":
        reward = np.where(rng.uniform(size=n) < 0.01, 1.0, 0.0)
    else:
        reward = rng.exponential(size=n)
    # Episode ids need not be 0..k-1, only grouped.
    ids = np.sort(rng.choice(10**6, size=len(lengths), replace=False))
    episode = np.repeat(ids, lengths)
    got = return_to_go(reward, episode, gamma)
    want = reference_return_to_go(reward, episode, gamma)
    assert got.dtype == np.float64 and got.shape == (n,)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * scale)


@pytest.mark.parametrize("gamma", [0.9999, 0.99])
def test_return_to_go_of_a_long_episode_matches_the_loop(gamma):
    n = 100_000
    reward = np.random.default_rng(1).uniform(0.0, 1.0, size=n)
    episode = np.zeros(n, dtype=np.int64)
    want = reference_return_to_go(reward, episode, gamma)
    got = return_to_go(reward, episode, gamma)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.abs(want).max())


def _closed_form(reward: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = sum_{k>=t} gamma^k r_k / gamma^t: the textbook closed form, in float64."""
    discount = np.power(gamma, np.arange(len(reward), dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.cumsum((discount * reward)[::-1])[::-1] / discount


def test_closed_form_underflows_where_the_recursion_does_not():
    # Why return_to_go runs the recursion: gamma^t underflows to 0 in float64 once
    # t * ln(1 / gamma) > ~745, and the closed form divides by it. For gamma = 0.99 that is
    # t > ~74,000 steps; for gamma = 0.9999 it is t > ~7.4 million. (At gamma = 0.9999 a
    # 100,000-step episode keeps gamma^t ~ 4.5e-5 and the closed form is still accurate.)
    reward = np.random.default_rng(2).uniform(0.0, 1.0, size=100_000)
    want = reference_return_to_go(reward, np.zeros(len(reward), dtype=np.int64), 0.99)
    closed = _closed_form(reward, 0.99)
    assert not np.isfinite(closed).all()
    assert np.isfinite(return_to_go(reward, np.zeros(len(reward), dtype=np.int64), 0.99)).all()
    finite = np.isfinite(closed)
    assert not np.allclose(closed[finite], want[finite], rtol=1e-6)


def test_return_to_go_of_eight_million_steps_with_gamma_0_9999():
    n, gamma = 8_000_000, 0.9999
    reward = np.ones(n)
    assert not np.isfinite(_closed_form(reward, gamma)).all()
    got = return_to_go(reward, np.zeros(n, dtype=np.int64), gamma)
    assert np.isfinite(got).all()
    # The recursion holds at every step, and with constant reward G_t has a closed form
    # that needs no division: (1 - gamma^(n - t)) / (1 - gamma).
    np.testing.assert_allclose(got[:-1], reward[:-1] + gamma * got[1:], rtol=1e-12)
    remaining = np.arange(n, 0, -1, dtype=np.float64)
    np.testing.assert_allclose(got, -np.expm1(remaining * math.log(gamma)) / (1 - gamma), rtol=1e-9)


def test_return_to_go_edge_gammas():
    reward = np.array([1.0, 2.0, 3.0, 4.0])
    episode = np.array([0, 0, 0, 1])
    assert return_to_go(reward, episode, 0.0).tolist() == [1.0, 2.0, 3.0, 4.0]
    assert return_to_go(reward, episode, 1.0).tolist() == [6.0, 5.0, 3.0, 4.0]
    assert return_to_go(reward, episode, 0.5).tolist() == [2.75, 3.5, 3.0, 4.0]


# ----------------------------------------------------------------- target = "return"

episode_spec = st.tuples(st.integers(1, 300), st.sampled_from(["terminated", "truncated", "none"]))


@settings(max_examples=40, deadline=None)
@given(
    episodes=st.lists(episode_spec, min_size=1, max_size=6),
    gamma=st.floats(0.0, 1.0),
    truncation=st.sampled_from(["mark", "drop"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_return_target_and_tail(episodes, gamma, truncation, seed):
    lengths = [n for n, _ in episodes]
    ends = [end for _, end in episodes]
    log = random_log(lengths, np.random.default_rng(seed), ends=ends)
    episode = log[S.EPISODE].to_numpy()
    want = reference_return_to_go(log[S.REWARD].to_numpy(), episode, gamma)
    # Steps remaining including the current one; the future is known only after a
    # terminated last step.
    remaining = np.concatenate([np.arange(n, 0, -1) for n in lengths]).astype(np.float64)
    terminated = np.repeat([end == "terminated" for end in ends], lengths)
    want_tail = np.where(terminated, 0.0, np.power(gamma, remaining))

    spec = FeatureSpec(target="return", gamma=gamma, truncation=truncation)
    keep = np.ones(len(log), dtype=bool) if truncation == "mark" else want_tail <= 0.01
    if not keep.any():
        with pytest.raises(SchemaError, match="no transition is left to build features from"):
            build_features(log, spec)
        return
    ff = build_features(log, spec)
    np.testing.assert_array_equal(ff.groups, episode[keep])
    np.testing.assert_array_equal(ff.steps, log[S.STEP].to_numpy()[keep])
    assert ff.y.dtype == np.float32 and ff.tail.dtype == np.float32
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(ff.y, want[keep], rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(ff.tail, want_tail[keep].astype(np.float32), rtol=1e-6, atol=0)
    assert np.all(ff.tail[terminated[keep]] == 0)


def test_bootstrap_adds_the_discounted_mean_training_reward(rng):
    log = random_log([30, 30, 30], rng, ends=["truncated", "terminated", "none"])
    # Held-out episode 2 has much larger rewards: they must not leak into the bootstrap.
    log = log.with_columns(
        pl.when(pl.col(S.EPISODE) == 2).then(pl.col(S.REWARD) + 100).otherwise(pl.col(S.REWARD) + 1)
    )
    gamma = 0.9
    spec = FeatureSpec(target="return", gamma=gamma, truncation="bootstrap")
    ff = build_features(log, spec, train_episodes=[0, 1])
    train_mean = log.filter(pl.col(S.EPISODE) < 2)[S.REWARD].mean()
    assert ff.stats.bootstrap_value == pytest.approx(train_mean / (1 - gamma), rel=1e-12)
    mark = build_features(log, FeatureSpec(target="return", gamma=gamma))
    np.testing.assert_allclose(
        ff.y, mark.y + mark.tail * ff.stats.bootstrap_value, rtol=1e-5, atol=1e-4
    )
    # Terminated episode 1 gets nothing added; truncated and unfinished ones do.
    ep1 = ff.groups == 1
    np.testing.assert_array_equal(ff.y[ep1], mark.y[ep1])
    assert ff.stats.bootstrap_value > 0
    assert np.all(ff.y[~ep1] > mark.y[~ep1])


# ---------------------------------------------------------------------- FeatureSpec


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (
            {"gamma": 1.5},
            r"The 'gamma' parameter of FeatureSpec must be a float in the range \[0\.0, 1\.0\]\. Got 1\.5 instead",
        ),
        ({"gamma": -0.1}, r"'gamma' parameter .* Got -0\.1 instead"),
        ({"gamma": "0.9"}, r"'gamma' parameter .* Got '0\.9' instead"),
        (
            {"lags": -1},
            r"The 'lags' parameter of FeatureSpec must be an int in the range \[0, 64\]\. Got -1",
        ),
        ({"lags": 65}, r"'lags' parameter .* Got 65 instead"),
        ({"lags": 1.5}, r"'lags' parameter .* Got 1\.5 instead"),
        (
            {"time_limit": 0},
            r"The 'time_limit' parameter of FeatureSpec must be a positive int or None\. Got 0",
        ),
        ({"tail_tolerance": 0.0}, r"The 'tail_tolerance' parameter .* \(0\.0, 1\.0\)\. Got 0\.0"),
        ({"tail_tolerance": 1.0}, r"'tail_tolerance' parameter .* Got 1\.0 instead"),
        (
            {"clip": (1.0, -1.0)},
            r"The 'clip' parameter of FeatureSpec must be \(low, high\) with low < high\. Got \(1\.0, -1\.0\)",
        ),
        (
            {"target": "value"},
            r"The 'target' parameter of FeatureSpec must be a str among .*'return'.* Got 'value' instead",
        ),
        ({"truncation": "ignore"}, r"The 'truncation' parameter .* Got 'ignore' instead"),
        ({"missing": "zero"}, r"The 'missing' parameter .* Got 'zero' instead"),
        ({"scaling": "log"}, r"The 'scaling' parameter .* Got 'log' instead"),
        (
            {"target": "return", "truncation": "bootstrap", "gamma": 1.0},
            r"FeatureSpec\(truncation='bootstrap'\) needs gamma < 1",
        ),
        (
            {"target": "event", "scaling": "standard"},
            r"FeatureSpec\(target='event'\) .* scaling must be 'none'\. Got 'standard'",
        ),
        ({"obs": False, "action": False}, r"FeatureSpec selects no input"),
    ],
)
def test_feature_spec_validation_names_the_parameter(params, match, rng):
    spec = FeatureSpec(**params)  # __init__ only stores: validation happens on use
    with pytest.raises(SchemaError, match=match):
        spec.validate()
    with pytest.raises(SchemaError, match=match):
        build_features(random_log([5], rng), spec)


def test_feature_spec_round_trips_and_refuses_unknown_keys():
    spec = FeatureSpec(next_obs=True, lags=2, target="return", gamma=0.9, clip=(-2.0, 3.0))
    data = spec.to_dict()
    assert data["clip"] == [-2.0, 3.0]
    assert FeatureSpec.from_dict(data) == spec
    with pytest.raises(SchemaError, match=r"FeatureSpec has no parameter\(s\) \['gama'\]"):
        FeatureSpec.from_dict({**data, "gama": 0.5})


def test_columns_needed():
    assert FeatureSpec().columns_needed() == [
        S.EPISODE, S.STEP, S.REWARD, S.TERMINATED, S.TRUNCATED, S.OBS, S.ACTION,
    ]  # fmt: skip
    assert S.NEXT_OBS in FeatureSpec(delta=True).columns_needed()
    assert S.ACTION not in FeatureSpec(action=False).columns_needed()
    assert S.OBS in FeatureSpec(obs=False, lags=1).columns_needed()


# ------------------------------------------------------------------- the matrix


def test_feature_names_in_matrix_order():
    spec = FeatureSpec(next_obs=True, delta=True, step=True, time_limit=100, lags=2)
    assert feature_names(spec, obs_dim=2, action_dim=1) == [
        "obs_0", "obs_1", "act_0", "next_obs_0", "next_obs_1", "delta_0", "delta_1", "step",
        "progress", "obs_lag1_0", "obs_lag1_1", "act_lag1_0", "obs_lag2_0", "obs_lag2_1",
        "act_lag2_0",
    ]  # fmt: skip
    assert feature_names(FeatureSpec(obs=False), 3, 2) == ["act_0", "act_1"]


def test_matrix_columns_hold_what_their_names_say(rng):
    log = random_log([7, 4], rng, obs_dim=3, action_dim=2)
    spec = FeatureSpec(next_obs=True, delta=True, step=True, time_limit=10)
    ff = build_features(log, spec)
    assert ff.feature_names == feature_names(spec, 3, 2)
    col = {name: ff.X[:, j] for j, name in enumerate(ff.feature_names)}
    obs, act, nxt = matrix(log, S.OBS), matrix(log, S.ACTION), matrix(log, S.NEXT_OBS)
    for i in range(3):
        np.testing.assert_array_equal(col[f"obs_{i}"], obs[:, i])
        np.testing.assert_array_equal(col[f"next_obs_{i}"], nxt[:, i])
        np.testing.assert_array_equal(col[f"delta_{i}"], nxt[:, i] - obs[:, i])
    for i in range(2):
        np.testing.assert_array_equal(col[f"act_{i}"], act[:, i])
    np.testing.assert_array_equal(col["step"], log[S.STEP].to_numpy())
    np.testing.assert_allclose(col["progress"], log[S.STEP].to_numpy() / 10, rtol=1e-7)
    np.testing.assert_array_equal(ff.y, log[S.REWARD].to_numpy().astype(np.float32))


def test_lags_are_padded_with_the_episodes_first_row(rng):
    log = random_log([4, 3], rng, obs_dim=2, action_dim=1)
    ff = build_features(log, FeatureSpec(lags=2))
    obs, act = matrix(log, S.OBS), matrix(log, S.ACTION)
    names = ff.feature_names
    lag1 = ff.X[:, [names.index("obs_lag1_0"), names.index("obs_lag1_1")]]
    lag2 = ff.X[:, [names.index("obs_lag2_0"), names.index("obs_lag2_1")]]
    act_lag2 = ff.X[:, names.index("act_lag2_0")]
    # Rows: episode 0 is rows 0-3, episode 1 rows 4-6.
    np.testing.assert_array_equal(lag1, obs[[0, 0, 1, 2, 4, 4, 5]])
    np.testing.assert_array_equal(lag2, obs[[0, 0, 0, 1, 4, 4, 4]])
    np.testing.assert_array_equal(act_lag2, act[[0, 0, 0, 1, 4, 4, 4], 0])


def test_matrix_matches_a_plain_numpy_reference_on_a_large_log(rng):
    # Large enough that any chunked assembly of the matrix crosses many chunk boundaries,
    # with rows dropped (missing inputs) so that kept rows are not contiguous.
    lengths = [3000, 5001, 2500, 1]
    log = random_log(lengths, rng, obs_dim=3, action_dim=2)
    obs = matrix(log, S.OBS)
    holes = rng.choice(len(obs), size=300, replace=False)
    obs[holes, rng.integers(0, 3, size=300)] = np.nan
    log = with_obs(log, obs)
    spec = FeatureSpec(next_obs=True, delta=True, step=True, time_limit=1000, lags=2)
    ff = build_features(log, spec)

    act, nxt = matrix(log, S.ACTION), matrix(log, S.NEXT_OBS)
    step = log[S.STEP].to_numpy()
    start = np.repeat(np.cumsum([0, *lengths[:-1]]), lengths)
    rows = np.arange(len(log))
    lag1, lag2 = np.maximum(rows - 1, start), np.maximum(rows - 2, start)
    full = np.column_stack(
        [obs, act, nxt, nxt - obs, step, step / 1000, obs[lag1], act[lag1], obs[lag2], act[lag2]]
    ).astype(np.float32)
    keep = ~np.isnan(obs).any(axis=1)
    assert len(ff) == keep.sum() == len(log) - 300
    np.testing.assert_array_equal(ff.X, full[keep])
    np.testing.assert_array_equal(ff.steps, step[keep])
    assert ff.X.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize(
    "spec",
    [
        FeatureSpec(),
        FeatureSpec(obs=False, next_obs=True, lags=3),
        FeatureSpec(delta=True, step=True, missing="mean", missing_indicator=True),
    ],
)
def test_matrix_is_c_contiguous_float32(spec, rng):
    log = random_log([20, 10], rng, obs_dim=3, action_dim=2)
    obs = matrix(log, S.OBS)
    obs[3, 1] = np.nan
    ff = build_features(with_obs(log, obs), spec)
    assert ff.X.dtype == np.float32
    assert ff.X.flags["C_CONTIGUOUS"]
    assert ff.X.shape == (len(ff), len(ff.feature_names))
    assert ff.y.dtype == np.float32 and ff.groups.dtype == np.int64


def test_input_validation_errors(rng):
    log = random_log([5, 5], rng)
    with pytest.raises(SchemaError, match=r"build_features needs column\(s\) \['reward'\]"):
        build_features(log.drop(S.REWARD), FeatureSpec())
    with pytest.raises(SchemaError, match=r"needs rows sorted by \(episode_id, step\)"):
        build_features(log.reverse(), FeatureSpec())
    with pytest.raises(SchemaError, match="build_features was given no transitions"):
        build_features(log.clear(), FeatureSpec())
    with pytest.raises(SchemaError, match="train_episodes selects none of the dataset's episodes"):
        build_features(log, FeatureSpec(), train_episodes=[7])
    stats = build_features(log, FeatureSpec()).stats
    wide = random_log([5], rng, obs_dim=3)
    # Not a shape error deep inside: a message that names both dimensions.
    with pytest.raises(
        SchemaError, match=r"the fitted statistics .*expect obs of 2 .*this table has obs of 3"
    ):
        build_features(wide, FeatureSpec(), stats=stats)


# --------------------------------------------------- statistics from training rows


def test_standard_scaling_is_fitted_on_training_episodes_only(rng):
    log = random_log([40, 40, 40], rng)
    log = log.with_columns(pl.col(S.REWARD) + pl.col(S.EPISODE) * 10.0)  # episodes differ
    ff = build_features(log, FeatureSpec(scaling="standard"), train_episodes=[0, 2])
    train = log.filter(pl.col(S.EPISODE).is_in([0, 2]))[S.REWARD].to_numpy()
    assert ff.stats.target_center == pytest.approx(train.mean(), rel=1e-12)
    assert ff.stats.target_scale == pytest.approx(train.std(), rel=1e-12)
    assert ff.stats.train_rows == 80
    reward = log[S.REWARD].to_numpy()
    np.testing.assert_allclose(ff.y, (reward - train.mean()) / train.std(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        ff.stats.inverse_transform_target(ff.y), reward, rtol=1e-5, atol=1e-5
    )
    everything = build_features(log, FeatureSpec(scaling="standard"))
    assert everything.stats.target_center != pytest.approx(ff.stats.target_center)


@pytest.mark.parametrize(
    ("scaling", "center", "scale"),
    [
        ("minmax", lambda y: y.min(), lambda y: y.max() - y.min()),
        ("robust", lambda y: np.median(y), lambda y: np.subtract(*np.quantile(y, [0.75, 0.25]))),
        ("none", lambda y: 0.0, lambda y: 1.0),
    ],
)
def test_other_scalings_fit_on_training_rows(scaling, center, scale, rng):
    log = random_log([30, 30], rng)
    log = log.with_columns(pl.col(S.REWARD) * (1 + pl.col(S.EPISODE) * 5))
    ff = build_features(log, FeatureSpec(scaling=scaling), train_episodes=[1])
    y_train = log.filter(pl.col(S.EPISODE) == 1)[S.REWARD].to_numpy()
    assert ff.stats.target_center == pytest.approx(center(y_train), rel=1e-12)
    assert ff.stats.target_scale == pytest.approx(scale(y_train), rel=1e-12)


def test_clip_scaling_clips_rewards_before_the_target(rng):
    log = random_log([50], rng).with_columns(pl.col(S.REWARD) * 5)
    ff = build_features(log, FeatureSpec(scaling="clip", clip=(-0.5, 2.0)))
    np.testing.assert_array_equal(
        ff.y, np.clip(log[S.REWARD].to_numpy(), -0.5, 2.0).astype(np.float32)
    )
    ret = build_features(
        log, FeatureSpec(scaling="clip", clip=(0.0, 1.0), target="return", gamma=0.5)
    )
    clipped = np.clip(log[S.REWARD].to_numpy(), 0.0, 1.0)
    np.testing.assert_allclose(ret.y, reference_return_to_go(clipped, np.zeros(50), 0.5), rtol=1e-6)


def test_mean_fill_values_come_from_training_rows(rng):
    log = random_log([10, 10, 10], rng, obs_dim=2)
    obs = matrix(log, S.OBS)
    obs[:10, 0] += 100.0  # episode 0 is held out and far away
    obs[[12, 25], 0] = np.nan  # holes in a training and a held-out episode
    log = with_obs(log, obs)
    ff = build_features(log, FeatureSpec(missing="mean"), train_episodes=[1, 2])
    train_obs0 = obs[10:, 0]
    fill = np.nanmean(train_obs0.astype(np.float64))
    assert ff.stats.fill_values[0] == pytest.approx(fill, rel=1e-6)
    assert ff.stats.fill_values[1] == pytest.approx(
        np.mean(obs[10:, 1], dtype=np.float64), rel=1e-6
    )
    assert len(ff) == 30  # nothing dropped
    assert ff.X[12, 0] == pytest.approx(fill, rel=1e-6)
    assert ff.X[25, 0] == pytest.approx(fill, rel=1e-6)
    assert not np.isnan(ff.X).any()


def test_median_fill(rng):
    log = random_log([9], rng, obs_dim=1)
    obs = np.array([[1.0], [2.0], [np.nan], [4.0], [50.0], [6.0], [np.nan], [8.0], [9.0]])
    ff = build_features(with_obs(log, obs), FeatureSpec(missing="median"))
    median = np.nanmedian(obs[:, 0])
    assert ff.stats.fill_values[0] == pytest.approx(median)
    assert ff.X[[2, 6], 0].tolist() == [median, median]


def test_drop_removes_rows_with_missing_inputs(rng):
    log = random_log([5, 5], rng)
    obs = matrix(log, S.OBS)
    obs[1, 0] = np.nan
    obs[7, 1] = np.inf  # infinities count as missing
    ff = build_features(with_obs(log, obs), FeatureSpec(missing="drop"))
    assert list(zip(ff.groups.tolist(), ff.steps.tolist(), strict=True)) == [
        (0, 0), (0, 2), (0, 3), (0, 4), (1, 0), (1, 1), (1, 3), (1, 4),
    ]  # fmt: skip
    assert np.isfinite(ff.X).all()


def test_ffill_within_episodes_then_mean(rng):
    log = random_log([4, 2], rng, obs_dim=1)
    obs = np.array([[1.0], [np.nan], [np.nan], [4.0], [np.nan], [2.0]])
    ff = build_features(with_obs(log, obs), FeatureSpec(missing="ffill", action=False))
    mean = (1.0 + 4.0 + 2.0) / 3
    # Episode 1 starts with a hole: forward fill never crosses into it from episode 0.
    np.testing.assert_allclose(ff.X[:, 0], [1.0, 1.0, 1.0, 4.0, mean, 2.0], rtol=1e-6)


def test_missing_indicator_columns(rng):
    log = random_log([6, 6], rng, obs_dim=3)
    obs = matrix(log, S.OBS)
    obs[2, 1] = np.nan
    obs[9, 1] = np.nan
    obs[10, 2] = np.nan  # episode 1 is held out: its holes add no indicator
    log = with_obs(log, obs)
    ff = build_features(
        log, FeatureSpec(missing="mean", missing_indicator=True), train_episodes=[0]
    )
    assert ff.feature_names == ["obs_0", "obs_1", "obs_2", "act_0", "obs_1_missing"]
    np.testing.assert_array_equal(ff.X[:, -1], (np.arange(12) == 2) | (np.arange(12) == 9))
    assert not np.isnan(ff.X).any()
    # The held-out hole in obs_2 is filled with the training mean, without an indicator.
    assert ff.X[10, 2] == pytest.approx(np.mean(obs[:6, 2], dtype=np.float64), rel=1e-6)


@pytest.mark.parametrize(
    "spec",
    [
        FeatureSpec(scaling="standard", missing="mean", missing_indicator=True, lags=1),
        FeatureSpec(target="return", gamma=0.9, truncation="bootstrap", scaling="robust"),
        FeatureSpec(missing="median", delta=True, scaling="minmax"),
    ],
)
def test_fitted_stats_reproduce_the_transform_on_other_episodes(spec, rng):
    log = random_log([25, 25, 25, 25], rng, ends=["terminated", "truncated", "none", "truncated"])
    obs = matrix(log, S.OBS)
    obs[rng.choice(len(obs), size=12, replace=False), rng.integers(0, 2, size=12)] = np.nan
    log = with_obs(log, obs)
    train_ids, test_ids = [0, 2], [1, 3]
    joint = build_features(log, spec, train_episodes=train_ids)
    fitted = build_features(log.filter(pl.col(S.EPISODE).is_in(train_ids)), spec)
    held_out = build_features(
        log.filter(pl.col(S.EPISODE).is_in(test_ids)), spec, stats=fitted.stats
    )
    # Stats from training episodes alone equal those fitted inside the joint call...
    assert fitted.stats == joint.stats
    # ... and applied to the held-out episodes they give exactly the joint rows.
    rows = np.isin(joint.groups, test_ids)
    np.testing.assert_array_equal(held_out.X, joint.X[rows])
    np.testing.assert_array_equal(held_out.y, joint.y[rows])
    np.testing.assert_array_equal(held_out.groups, joint.groups[rows])
    assert held_out.feature_names == joint.feature_names
    # Fitting on the held-out rows instead gives a different transform.
    refit = build_features(log.filter(pl.col(S.EPISODE).is_in(test_ids)), spec)
    assert not np.array_equal(refit.y, held_out.y)


def test_fitted_stats_round_trip_as_dict(rng):
    ff = build_features(random_log([10, 10], rng), FeatureSpec(scaling="standard", missing="mean"))
    again = FittedStats.from_dict(ff.stats.to_dict())
    assert again == ff.stats
    y = np.array([0.0, 1.0, -2.0])
    np.testing.assert_allclose(again.inverse_transform_target(again.transform_target(y)), y)


# --------------------------------------------------------- truncation and event target


def test_truncation_drop_keeps_rows_with_small_missing_mass(rng):
    log = random_log([20, 20], rng, ends=["truncated", "terminated"])
    gamma, tolerance = 0.5, 0.01
    ff = build_features(
        log, FeatureSpec(target="return", gamma=gamma, truncation="drop", tail_tolerance=tolerance)
    )
    # Truncated episode 0: gamma^k <= 0.01 needs k >= 7 steps remaining, so steps 0..13 stay.
    assert ff.steps[ff.groups == 0].tolist() == list(range(14))
    assert ff.steps[ff.groups == 1].tolist() == list(range(20))
    assert ff.tail.max() <= tolerance


def test_event_target(rng):
    log = random_log([10, 10], rng)
    reward = log[S.REWARD].to_numpy().copy()
    reward[3] = np.nan  # unknown rewards drop the row
    log = log.with_columns(pl.Series(S.REWARD, reward))
    ff = build_features(log, FeatureSpec(target="event", event_threshold=0.5))
    kept = ~np.isnan(reward)
    np.testing.assert_array_equal(ff.y, (reward[kept] > 0.5).astype(np.float32))
    assert set(np.unique(ff.y)) <= {0.0, 1.0}
    assert len(ff) == 19
    keep_all = build_features(log, FeatureSpec(target="event"), require_target=False)
    assert len(keep_all) == 20 and np.isnan(keep_all.y[3])


def test_missing_reward_makes_the_return_unknown_up_to_it(rng):
    log = random_log([6], rng)
    reward = log[S.REWARD].to_numpy().copy()
    reward[3] = np.nan
    log = log.with_columns(pl.Series(S.REWARD, reward))
    ff = build_features(log, FeatureSpec(target="return", gamma=0.9), require_target=False)
    assert np.isnan(ff.y[:4]).all() and np.isfinite(ff.y[4:]).all()
    kept = build_features(log, FeatureSpec(target="return", gamma=0.9))
    assert kept.steps.tolist() == [4, 5]


def test_to_polars_has_keys_features_and_target(rng):
    ff = build_features(random_log([3, 2], rng), FeatureSpec())
    frame = ff.to_polars()
    assert frame.columns == [S.EPISODE, S.STEP, "obs_0", "obs_1", "act_0", "target", "tail"]
    assert frame[S.STEP].to_list() == [0, 1, 2, 0, 1]
    np.testing.assert_array_equal(frame["target"].to_numpy(), ff.y)


# ------------------------------------------------------------------------ vectors


def test_vectors_turns_null_lists_into_nan_rows():
    column = pa.array([[1.0, 2.0], None, [3.0, 4.0]], type=pa.list_(pa.float32()))
    out = vectors(column, 2)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1.0, 2.0], [np.nan, np.nan], [3.0, 4.0]])
    chunked = pa.chunked_array([column[:1], column[1:]])
    np.testing.assert_array_equal(vectors(chunked, 2), out)


def test_vectors_of_the_wrong_length_are_an_error():
    column = pa.array([[1.0, 2.0], [3.0]], type=pa.list_(pa.float32()))
    with pytest.raises(SchemaError, match=r"vectors must all have 2 values; found 3 for 2 rows"):
        vectors(column, 2)


def test_delta_with_unknown_next_obs_drops_the_last_step(store, pendulum_log):
    store.ingest(pendulum_log.drop(S.NEXT_OBS), dataset="pendulum")
    ff = store.features("pendulum", FeatureSpec(delta=True))
    # The derived next_obs of each episode's last step is NULL: that row has no delta.
    assert len(ff) == pendulum_log.height - 4
    assert 49 not in ff.steps.tolist()
    obs = matrix(pendulum_log, S.OBS)
    rows = np.flatnonzero(pendulum_log[S.STEP].to_numpy() < 49)
    delta = ff.X[:, ff.feature_names.index("delta_0")]
    np.testing.assert_array_equal(delta, obs[rows + 1, 0] - obs[rows, 0])
