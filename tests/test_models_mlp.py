"""Tests of the torch MLP engine: real training on small synthetic data, no mocks."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score, roc_auc_score

from rmlite.exceptions import ParameterError, RmliteError, SchemaError
from rmlite.models.mlp import (
    MLPConfig,
    MLPModel,
    build_network,
    fit_mlp,
    mlp_from_files,
    mlp_to_files,
    resolve_torch_device,
)

# Small and fast: a few seconds per fit on 2 cores.
FAST = MLPConfig(
    hidden_sizes=(64, 64),
    learning_rate=3e-3,
    batch_size=128,
    max_epochs=60,
    early_stopping_rounds=10,
    random_state=0,
)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Run torch on one thread: these networks are too small to gain from a second, and a
    second thread slows training several-fold when other processes share the 2 cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def smooth_data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """y = sin(x0) + x1² - 0.5·x2 with two distractor inputs."""
    X = rng.uniform(-2.0, 2.0, size=(n, 5)).astype(np.float32)
    y = np.sin(X[:, 0]) + X[:, 1] ** 2 - 0.5 * X[:, 2]
    return X, y


@pytest.fixture(scope="module")
def smooth_fit() -> tuple[MLPModel, np.ndarray, np.ndarray]:
    """A model fitted on 4k rows (3.2k train, 0.8k validation), with 1k held-out rows."""
    X, y = smooth_data(np.random.default_rng(0), 5000)
    model = fit_mlp(X[:3200], y[:3200], FAST, X_val=X[3200:4000], y_val=y[3200:4000])
    return model, X[4000:], y[4000:]


def test_learns_a_smooth_nonlinear_function(smooth_fit):
    model, X_test, y_test = smooth_fit
    prediction = model.predict(X_test)
    assert prediction.dtype == np.float32 and prediction.shape == (len(X_test),)
    assert r2_score(y_test, prediction) >= 0.95
    assert len(model.history["val_loss"]) == len(model.history["train_loss"])
    # The loss is reported in the target's units: the final mse is far below var(y).
    assert model.history["val_loss"][model.best_epoch] < 0.05 * np.var(y_test)
    np.testing.assert_array_equal(model.predict_raw(X_test), prediction)


def test_bce_learns_a_separable_event():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 4)).astype(np.float32)
    event = (X[:, 0] + X[:, 1] ** 2 > 1.0).astype(np.float64)
    config = MLPConfig(
        hidden_sizes=(32, 32), loss="bce", learning_rate=3e-3, max_epochs=30, random_state=0
    )
    model = fit_mlp(X[:2000], event[:2000], config)

    p = model.predict(X[2000:])
    assert roc_auc_score(event[2000:], p) >= 0.95
    assert p.min() >= 0.0 and p.max() <= 1.0
    assert model.y_mean == 0.0 and model.y_std == 1.0
    logits = model.predict_raw(X[2000:])
    np.testing.assert_allclose(1.0 / (1.0 + np.exp(-logits.astype(np.float64))), p, atol=1e-6)


def test_same_seed_same_predictions_other_seed_other_predictions(rng):
    X, y = smooth_data(rng, 600)
    config = MLPConfig(hidden_sizes=(16,), dropout=0.1, max_epochs=3, random_state=7)
    rng_state = torch.get_rng_state()

    first = fit_mlp(X, y, config).predict(X)
    again = fit_mlp(X, y, config).predict(X)
    # Seeds drawn with rng.integers arrive as NumPy ints.
    numpy_seed = fit_mlp(X, y, replace(config, random_state=np.int64(7))).predict(X)  # type: ignore[arg-type]
    other = fit_mlp(X, y, replace(config, random_state=8))

    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, numpy_seed)
    assert not np.allclose(first, other.predict(X))
    # Seeding a fit leaves the caller's global torch random stream alone.
    assert torch.equal(torch.get_rng_state(), rng_state)


def test_early_stopping_keeps_the_best_epoch(rng):
    # A pure-noise target: the validation loss starts rising almost at once.
    X = rng.normal(size=(800, 5)).astype(np.float32)
    y = rng.normal(size=800)
    config = MLPConfig(
        hidden_sizes=(64,),
        learning_rate=1e-2,
        batch_size=64,
        max_epochs=200,
        early_stopping_rounds=3,
        lr_schedule="constant",
        random_state=0,
    )
    model = fit_mlp(X[:600], y[:600], config, X_val=X[600:], y_val=y[600:])

    epochs = len(model.history["train_loss"])
    assert epochs < config.max_epochs
    assert model.best_epoch == epochs - 1 - 3
    assert model.history["val_loss"][model.best_epoch] == min(model.history["val_loss"])
    # The weights kept are those of the best epoch: the same as a run that ends there.
    reference = fit_mlp(X[:600], y[:600], replace(config, max_epochs=model.best_epoch + 1))
    np.testing.assert_array_equal(model.predict(X[600:]), reference.predict(X[600:]))


def test_without_validation_rows_training_runs_max_epochs(rng):
    X, y = smooth_data(rng, 300)
    model = fit_mlp(X, y, MLPConfig(hidden_sizes=(8,), max_epochs=4, early_stopping_rounds=1))
    assert len(model.history["train_loss"]) == 4
    assert model.history["val_loss"] == []
    assert model.best_epoch == 3


def test_on_epoch_reports_losses_and_can_stop_training(rng):
    X, y = smooth_data(rng, 400)
    calls: list[tuple[int, float, float | None]] = []

    def on_epoch(epoch: int, train_loss: float, val_loss: float | None) -> bool:
        calls.append((epoch, train_loss, val_loss))
        return epoch == 2

    config = MLPConfig(hidden_sizes=(8,), max_epochs=50, random_state=0)
    model = fit_mlp(X[:300], y[:300], config, X_val=X[300:], y_val=y[300:], on_epoch=on_epoch)

    assert [c[0] for c in calls] == [0, 1, 2]
    assert [c[1] for c in calls] == model.history["train_loss"]
    assert [c[2] for c in calls] == model.history["val_loss"]
    fit_mlp(X, y, MLPConfig(hidden_sizes=(8,), max_epochs=1), on_epoch=on_epoch)
    assert calls[-1][2] is None


def test_zero_weight_rows_do_not_pull_the_fit(rng):
    # Half the rows follow y = x0, the other half y = -x0; weighting the second half out
    # must recover y = x0, which the unweighted fit (averaging to ~0) cannot.
    X = rng.normal(size=(2000, 2)).astype(np.float32)
    other = np.arange(2000) % 2 == 1
    y = np.where(other, -X[:, 0], X[:, 0])
    weight = np.where(other, 0.0, 1.0)
    config = MLPConfig(hidden_sizes=(32,), learning_rate=3e-3, max_epochs=15, random_state=0)

    weighted = fit_mlp(X, y, config, sample_weight=weight).predict(X)
    unweighted = fit_mlp(X, y, config).predict(X)

    error_weighted = np.mean((weighted - X[:, 0]) ** 2)
    error_unweighted = np.mean((unweighted - X[:, 0]) ** 2)
    assert error_weighted < 0.1 * error_unweighted
    assert error_weighted < 0.05


def test_constant_weights_are_normalized_away(rng):
    X, y = smooth_data(rng, 300)
    config = MLPConfig(hidden_sizes=(8,), max_epochs=2, random_state=0)
    plain = fit_mlp(X, y, config).predict(X)
    weighted = fit_mlp(X, y, config, sample_weight=np.full(300, 3.0)).predict(X)
    np.testing.assert_array_equal(plain, weighted)


def test_save_load_roundtrip_gives_identical_predictions(smooth_fit, tmp_path):
    model, X_test, _ = smooth_fit
    meta = json.loads(json.dumps(mlp_to_files(model, tmp_path / "model", "mlp")))

    loaded = mlp_from_files(tmp_path / "model", "mlp", meta)

    np.testing.assert_array_equal(loaded.predict(X_test), model.predict(X_test))
    assert loaded.config == model.config
    assert loaded.history == model.history and loaded.best_epoch == model.best_epoch
    # The file is a bare state_dict: it loads without unpickling any object.
    state = torch.load(tmp_path / "model" / "mlp.pt", weights_only=True)
    assert set(state) == set(model.state_dict)
    assert all(isinstance(t, torch.Tensor) for t in state.values())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dropout": 1.5}, "The 'dropout' parameter of MLPConfig must be a float in the range [0.0, 1.0). Got 1.5 instead."),
        ({"hidden_sizes": (64, 0)}, "The 'hidden_sizes' parameter of MLPConfig must be a tuple of positive ints"),
        ({"activation": "swish"}, "The 'activation' parameter of MLPConfig must be a str among"),
        ({"loss": "mae"}, "The 'loss' parameter of MLPConfig must be a str among"),
        ({"device": "auto"}, "Resolve 'auto' with resolve_torch_device first"),
        ({"lr_schedule": "step"}, "The 'lr_schedule' parameter"),
        ({"learning_rate": 0.0}, "The 'learning_rate' parameter of MLPConfig must be a float in the range (0.0, inf)"),
        ({"weight_decay": -1.0}, "The 'weight_decay' parameter"),
        ({"batch_size": 0}, "The 'batch_size' parameter of MLPConfig must be an int in the range [1, inf). Got 0"),
        ({"max_epochs": 2.5}, "The 'max_epochs' parameter of MLPConfig must be an int"),
        ({"early_stopping_rounds": 0}, "The 'early_stopping_rounds' parameter of MLPConfig must be an int in the range [1, inf) or None"),
        ({"random_state": -1}, "The 'random_state' parameter"),
        ({"n_threads": True}, "The 'n_threads' parameter"),
    ],
)  # fmt: skip
def test_config_errors_name_the_parameter(rng, change, message):
    X, y = smooth_data(rng, 50)
    with pytest.raises(ParameterError, match=re.escape(message)):
        fit_mlp(X, y, MLPConfig(**change))


def test_config_from_dict_names_unknown_keys():
    with pytest.raises(ParameterError, match=r"MLPConfig has no parameter\(s\) \['layers'\]"):
        MLPConfig.from_dict({"layers": [3]})


def test_input_errors_say_what_is_wrong(rng):
    X, y = smooth_data(rng, 50)
    config = MLPConfig(hidden_sizes=(4,), max_epochs=1)
    with pytest.raises(SchemaError, match="Pass both X_val and y_val, or neither"):
        fit_mlp(X, y, config, X_val=X)
    with pytest.raises(SchemaError, match=r"y must be 1-D with one value per row of X \(50\)"):
        fit_mlp(X, y[:10], config)
    with pytest.raises(SchemaError, match="X_val has 2 features, but the MLP was trained on 5"):
        fit_mlp(X, y, config, X_val=X[:, :2], y_val=y)
    with pytest.raises(SchemaError, match="X contains NaN or infinite values"):
        fit_mlp(np.where(X > 1.9, np.nan, X), y, config)
    with pytest.raises(SchemaError, match=r"loss='bce' needs y in \[0, 1\]"):
        fit_mlp(X, y, MLPConfig(hidden_sizes=(4,), max_epochs=1, loss="bce"))
    with pytest.raises(SchemaError, match="sample_weight must be finite and non-negative"):
        fit_mlp(X, y, config, sample_weight=np.zeros(50))
    model = fit_mlp(X, y, config)
    with pytest.raises(SchemaError, match="X has 3 features, but the MLP was trained on 5"):
        model.predict(X[:, :3])


def test_divergence_is_an_error_not_a_nan_model(rng):
    X, y = smooth_data(rng, 200)
    config = MLPConfig(hidden_sizes=(8,), max_epochs=3, learning_rate=1e30, random_state=0)
    with pytest.raises(RmliteError, match="MLP training diverged at epoch"):
        fit_mlp(X, y, config)


def test_n_threads_is_set_during_fit_and_restored(rng):
    X, y = smooth_data(rng, 100)
    before = torch.get_num_threads()
    seen: list[int] = []

    def on_epoch(epoch: int, train_loss: float, val_loss: float | None) -> None:
        seen.append(torch.get_num_threads())

    fit_mlp(X, y, MLPConfig(hidden_sizes=(4,), max_epochs=2, n_threads=2), on_epoch=on_epoch)
    assert seen == [2, 2]
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh", "silu", "elu"])
def test_build_network_maps_rows_to_one_output_each(activation):
    config = MLPConfig(hidden_sizes=(8, 4), activation=activation, dropout=0.2)
    network = build_network(3, config)
    assert network(torch.zeros(5, 3)).shape == (5,)
    assert sum(isinstance(m, torch.nn.Dropout) for m in network) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match=r"device='cuda' was requested but torch sees no CUDA"):
        resolve_torch_device("cuda")
    with pytest.raises(RmliteError, match=r"Use device='cpu'"):
        fit_mlp(np.zeros((4, 1), np.float32), np.zeros(4), MLPConfig(device="cuda"))


def test_resolve_torch_device():
    assert resolve_torch_device("cpu") == "cpu"
    assert resolve_torch_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match=r"The 'device' parameter must be a str among"):
        resolve_torch_device("tpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_matches_cpu_quality(smooth_fit, tmp_path):
    cpu_model, X_test, y_test = smooth_fit
    X, y = smooth_data(np.random.default_rng(0), 4000)
    model = fit_mlp(
        X[:3200], y[:3200], replace(FAST, device="cuda"), X_val=X[3200:], y_val=y[3200:]
    )

    prediction = model.predict(X_test)
    assert isinstance(prediction, np.ndarray) and prediction.dtype == np.float32
    assert r2_score(y_test, prediction) >= min(
        0.95, r2_score(y_test, cpu_model.predict(X_test)) - 0.01
    )
    assert all(t.device.type == "cpu" for t in model.state_dict.values())
    loaded = mlp_from_files(tmp_path, "gpu", mlp_to_files(model, tmp_path, "gpu"))
    np.testing.assert_allclose(loaded.predict(X_test), prediction, rtol=1e-4, atol=1e-4)
