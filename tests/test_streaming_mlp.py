"""Tests of the MLP on a matrix on disk (issue #11): real files, real training, no mocks.

A :class:`MatrixFile` read in one chunk must train exactly like its rows in memory; in
several chunks the batches differ, and the fit must still reach the in-memory loss.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score, roc_auc_score

from rmlite import RewardClassifier, RewardRegressor
from rmlite.data.matrix_file import MatrixFile
from rmlite.exceptions import ParameterError, SchemaError
from rmlite.models.mlp import MLPConfig, MLPModel, fit_mlp

FAST = MLPConfig(
    hidden_sizes=(32, 32),
    learning_rate=3e-3,
    batch_size=128,
    max_epochs=40,
    early_stopping_rounds=8,
    random_state=0,
)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One torch thread: these networks gain nothing from a second on a shared machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def write_matrix(path: Path, X: np.ndarray, blocks: int = 3) -> MatrixFile:
    """``X`` written to a matrix file in a few appended blocks, as the store writes it."""
    with MatrixFile.create(path, X.shape[1]) as writer:
        for block in np.array_split(X, blocks):
            writer.append(block)
    assert writer.result is not None
    return writer.result


def smooth_data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """y = sin(x0) + x1² - 0.5·x2, one distractor input and one far from 0 (a timestamp)."""
    X = rng.uniform(-2.0, 2.0, size=(n, 5)).astype(np.float32)
    X[:, 4] += 1e4
    y = np.sin(X[:, 0]) + X[:, 1] ** 2 - 0.5 * X[:, 2]
    return X, y


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[np.ndarray, np.ndarray, MatrixFile]:
    """4,000 rows in memory and the same rows in a file: 0-2,399 train, then 800
    validation, 800 hold-out."""
    X, y = smooth_data(np.random.default_rng(0), 4000)
    return X, y, write_matrix(tmp_path_factory.mktemp("mlp") / "X.f32", X)


TRAIN, VAL, HOLD = np.arange(2400), np.arange(2400, 3200), np.arange(3200, 4000)


@pytest.fixture(scope="module")
def memory_fit(data) -> MLPModel:
    X, y, _ = data
    weight = np.random.default_rng(1).uniform(0.5, 2.0, size=len(TRAIN))
    return fit_mlp(
        X[TRAIN],
        y[TRAIN],
        FAST,
        X_val=X[VAL],
        y_val=y[VAL],
        X_eval=X[HOLD],
        y_eval=y[HOLD],
        sample_weight=weight,
    )


def test_a_file_read_in_one_chunk_fits_bit_for_bit_like_memory(data, memory_fit):
    X, y, F = data
    weight = np.random.default_rng(1).uniform(0.5, 2.0, size=len(TRAIN))
    streamed = fit_mlp(
        F[TRAIN],
        y[TRAIN],
        FAST,
        X_val=F[VAL],
        y_val=y[VAL],
        X_eval=F[HOLD],
        y_eval=y[HOLD],
        sample_weight=weight,
    )
    assert memory_fit.state_dict.keys() == streamed.state_dict.keys()
    for key, tensor in memory_fit.state_dict.items():
        assert torch.equal(tensor, streamed.state_dict[key]), key
    assert streamed.history == memory_fit.history
    assert streamed.best_epoch == memory_fit.best_epoch < FAST.max_epochs - 1  # stopped early
    np.testing.assert_array_equal(streamed.x_mean, memory_fit.x_mean)
    np.testing.assert_array_equal(streamed.x_std, memory_fit.x_std)
    # predict reads a file a chunk at a time, with the same result as in memory.
    np.testing.assert_array_equal(streamed.predict(F[HOLD]), memory_fit.predict(X[HOLD]))


def test_five_chunks_reach_the_in_memory_validation_loss(data, memory_fit):
    _, y, F = data
    weight = np.random.default_rng(1).uniform(0.5, 2.0, size=len(TRAIN))
    streamed = fit_mlp(
        F[TRAIN],
        y[TRAIN],
        FAST,
        X_val=F[VAL],
        y_val=y[VAL],
        X_eval=F[HOLD],
        y_eval=y[HOLD],
        sample_weight=weight,
        chunk_rows=480,  # 5 chunks of 2,400 rows (rounded down to 3.75 batches: 384)
    )
    assert streamed.history != memory_fit.history  # the chunks changed the batches
    best_memory = memory_fit.history["val_loss"][memory_fit.best_epoch]
    best_streamed = streamed.history["val_loss"][streamed.best_epoch]
    assert best_memory < 0.02 * np.var(y)  # the problem is learned
    assert best_streamed < 1.3 * best_memory
    hold_memory = memory_fit.history["eval_loss"][memory_fit.best_epoch]
    assert streamed.history["eval_loss"][streamed.best_epoch] < 1.3 * hold_memory


def test_five_chunks_with_batches_that_divide_them(data):
    """Chunks of whole batches: every batch but the epoch's last is full, as in memory."""
    _, y, F = data
    config = replace(FAST, max_epochs=3, early_stopping_rounds=None)
    seen: list[float] = []
    model = fit_mlp(
        F[TRAIN],
        y[TRAIN],
        config,
        chunk_rows=512,
        on_epoch=lambda epoch, train, val: seen.append(train),
    )
    again = fit_mlp(F[TRAIN], y[TRAIN], config, chunk_rows=512)
    assert len(seen) == 3 and seen[-1] < seen[0]
    for key, tensor in model.state_dict.items():  # one seed, one model
        assert torch.equal(tensor, again.state_dict[key]), key


@pytest.mark.parametrize("chunk_rows", [128, 384, 1280])
def test_chunked_standardization_equals_var_mean_in_memory(data, chunk_rows):
    X, y, F = data
    config = replace(FAST, hidden_sizes=(), max_epochs=1, batch_size=128)
    model = fit_mlp(F[TRAIN], y[TRAIN], config, chunk_rows=chunk_rows)
    var, mean = torch.var_mean(torch.from_numpy(X[TRAIN]), dim=0, correction=0)
    # Column 4 sits near 1e4: float32 chunk means would be off by 1e-5 in its scale.
    np.testing.assert_allclose(model.x_mean, mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(model.x_std, var.sqrt().numpy(), rtol=1e-6)


def test_a_constant_column_keeps_scale_one_over_chunks(tmp_path, rng):
    X = rng.normal(size=(1000, 3)).astype(np.float32)
    X[:, 1] = 0.1
    y = X[:, 0].astype(np.float64)
    F = write_matrix(tmp_path / "X.f32", X)
    config = replace(FAST, hidden_sizes=(), max_epochs=1)
    model = fit_mlp(F, y, config, chunk_rows=128)
    assert model.x_std[1] == 1.0
    assert np.float32(model.x_mean[1]) == np.float32(0.1)


def test_nan_in_a_later_chunk_is_the_in_memory_error_with_its_rows(tmp_path, rng):
    X, y = smooth_data(rng, 1200)
    X[1000, 2] = np.nan
    F = write_matrix(tmp_path / "X.f32", X)
    with pytest.raises(SchemaError, match="X contains NaN or infinite values;"):
        fit_mlp(X, y, FAST)
    with pytest.raises(
        SchemaError,
        match=r"X contains NaN or infinite values \(in rows 768 to 1,151 of .*X\.f32\); impute",
    ):
        fit_mlp(F, y, FAST, chunk_rows=384)


def test_nan_in_file_validation_rows_fails_before_training(tmp_path, rng):
    X, y = smooth_data(rng, 1200)
    X_val = X[1000:].copy()
    X_val[-1, 0] = np.inf
    F_val = write_matrix(tmp_path / "val.f32", X_val)
    epochs: list[int] = []
    with pytest.raises(SchemaError, match=r"X_val contains NaN or infinite values \(in rows"):
        fit_mlp(
            X[:1000],
            y[:1000],
            FAST,
            X_val=F_val,
            y_val=y[1000:],
            on_epoch=lambda epoch, train, val: epochs.append(epoch),
        )
    assert epochs == []  # no epoch ran


def test_file_shape_and_parameter_errors(data, memory_fit, tmp_path):
    X, y, F = data
    narrow = write_matrix(tmp_path / "narrow.f32", X[:100, :4])
    with pytest.raises(SchemaError, match="X_val has 4 features, but the MLP was trained on 5"):
        fit_mlp(F[TRAIN], y[TRAIN], FAST, X_val=narrow, y_val=y[:100])
    with pytest.raises(SchemaError, match=r"y must be 1-D with one value per row of X \(2400\)"):
        fit_mlp(F[TRAIN], y[:100], FAST)
    with pytest.raises(ParameterError, match="'chunk_rows' parameter of fit_mlp must be a posi"):
        fit_mlp(F[TRAIN], y[TRAIN], FAST, chunk_rows=0)
    with pytest.raises(SchemaError, match="X has 4 features, but the MLP was trained on 5"):
        memory_fit.predict(narrow)


def episode_data(n: int = 3000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = smooth_data(np.random.default_rng(2), n)
    return X, y, np.repeat(np.arange(n // 50), 50)  # 60 episodes of 50 steps


ESTIMATOR: dict[str, Any] = {
    "backend": "mlp",
    "hidden_sizes": (32, 32),
    "batch_size": 128,
    "max_epochs": 25,
    "early_stopping_rounds": 5,
    "random_state": 0,
}


def test_reward_regressor_fits_a_file_like_memory_end_to_end(tmp_path):
    X, y, groups = episode_data()
    F = write_matrix(tmp_path / "X.f32", X)
    hold = groups >= 50  # the last 10 episodes: watched, never fitted
    fit = ~hold
    in_memory = RewardRegressor(**ESTIMATOR).fit(
        X[fit], y[fit], groups=groups[fit], eval_set=(X[hold], y[hold])
    )
    streamed = RewardRegressor(**ESTIMATOR).fit(
        F[fit], y[fit], groups=groups[fit], eval_set=(F[hold], y[hold])
    )
    # One member trains on a view of the file's training episodes, early-stops on a view
    # of its validation episodes and watches the hold-out view: all in one chunk here.
    assert streamed.curves_ == in_memory.curves_
    assert len(streamed.curves_[0]["holdout"]) == len(streamed.curves_[0]["valid"]) > 0
    prediction = streamed.predict(F[hold])
    np.testing.assert_array_equal(prediction, in_memory.predict(X[hold]))
    assert r2_score(y[hold], prediction) > 0.9


def test_reward_classifier_ensemble_on_a_file(tmp_path):
    """Bootstrap members (rows repeated in a view) and class-weight calibration on views."""
    X, y, groups = episode_data()
    event = (y > 2.0).astype(int)
    F = write_matrix(tmp_path / "X.f32", X)
    hold = groups >= 50
    model = RewardClassifier(**ESTIMATOR, n_members=2, class_weight="balanced").fit(
        F[~hold], event[~hold], groups=groups[~hold], eval_set=(F[hold], event[hold])
    )
    assert len(model.members_) == 2 and all(c["holdout"] for c in model.curves_)
    p = model.predict_proba(F[hold])[:, 1]
    assert roc_auc_score(event[hold], p) > 0.95
