"""The thread rule every backend shares (:func:`rmlite.models.device.fit_threads`)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from rmlite.models.device import SMALL_FIT_ROWS, fit_threads, physical_cores
from rmlite.models.gbm import gbm_params


def test_explicit_counts_win_and_minus_one_is_every_core() -> None:
    assert fit_threads(3, rows=10) == 3
    assert fit_threads(-1, rows=10) == len(os.sched_getaffinity(0))


def test_the_default_is_one_thread_for_a_small_fit_else_the_physical_cores() -> None:
    assert fit_threads(None, rows=3_200) == 1
    assert fit_threads(None, rows=SMALL_FIT_ROWS - 1) == 1
    assert fit_threads(None, rows=SMALL_FIT_ROWS) == physical_cores()
    assert fit_threads(None) == physical_cores()
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)


@pytest.mark.parametrize(("backend", "key"), [("lightgbm", "num_threads"), ("xgboost", "nthread")])
def test_engine_parameters_follow_the_rule(backend: str, key: str) -> None:
    common = {"objective": "regression", "learning_rate": 0.1, "random_state": 0, "device": "cpu"}
    assert gbm_params(backend, n_jobs=None, rows=3_200, **common)[key] == 1  # type: ignore[arg-type]
    assert gbm_params(backend, n_jobs=None, rows=10**6, **common)[key] == physical_cores()  # type: ignore[arg-type]
    assert gbm_params(backend, n_jobs=2, rows=3_200, **common)[key] == 2  # type: ignore[arg-type]


def test_a_small_default_mlp_fit_runs_on_one_torch_thread() -> None:
    import torch

    from rmlite.models.mlp import MLPConfig, fit_mlp

    seen: list[int] = []
    before = torch.get_num_threads()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    y = X[:, 0].astype(np.float32)
    config = MLPConfig(hidden_sizes=(8,), max_epochs=1, random_state=0)
    real = torch.set_num_threads
    try:
        torch.set_num_threads = lambda n: (seen.append(n), real(n))[1]  # type: ignore[assignment]
        fit_mlp(X, y, config)
    finally:
        torch.set_num_threads = real
    assert seen[0] == 1 and torch.get_num_threads() == before
