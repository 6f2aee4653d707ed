"""The Bradley–Terry engine: membership, loss, gradients and curvature, the MLP loop."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

from rmlite.exceptions import SchemaError
from rmlite.models import preference
from rmlite.models.mlp import MLPConfig
from rmlite.models.preference import (
    BTProblem,
    bt_objective,
    bt_probability,
    fit_bt_mlp,
    membership,
    tree_objective,
)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def random_problem(rng: np.random.Generator, n: int = 40, k: int = 15):
    start_a, start_b = rng.integers(0, n - 8, k), rng.integers(0, n - 8, k)
    M = membership(start_a, start_a + rng.integers(1, 8, k), start_b, start_b + 6, n)
    y = rng.choice([0.0, 0.3, 0.5, 1.0], k)
    margin = rng.uniform(0, 1, k)
    return M, y, margin


def test_membership_signs_lengths_and_cancellation():
    M = membership(np.array([0, 2]), np.array([3, 5]), np.array([3, 0]), np.array([5, 4]), 6)
    assert M.toarray().tolist() == [[1, 1, 1, -1, -1, 0], [-1, -1, 0, 0, 1, 0]]
    with pytest.raises(SchemaError, match=r"segments must be non-empty row ranges"):
        membership(np.array([2]), np.array([2]), np.array([0]), np.array([1]), 6)
    with pytest.raises(SchemaError, match=r"within the 6 rows of X"):
        membership(np.array([0]), np.array([7]), np.array([0]), np.array([1]), 6)


@pytest.mark.parametrize("noise", [0.0, 0.1, 0.4])
@pytest.mark.parametrize("with_margin", [False, True])
def test_gradient_matches_finite_differences(rng, noise, with_margin):
    M, y, margin = random_problem(rng)
    r = rng.normal(size=M.shape[1])
    kw = {"margin": margin if with_margin else None, "label_noise": noise, "centering": 0.3}
    weight = rng.uniform(0.5, 2.0, len(y))

    def loss(v):
        return bt_objective(v, M, y, weight=weight, **kw)[0]

    _, grad, hess = bt_objective(r, M, y, weight=weight, **kw)
    h = 1e-6
    numeric = np.array([(loss(r + h * e) - loss(r - h * e)) / (2 * h) for e in np.eye(len(r))])
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)
    assert (hess > 0).all()


def test_curvature_majorizes_the_exact_hessian(rng):
    # With ε = 0 the Gauss–Newton matrix is the exact Hessian; the per-step curvature the
    # trees get must bound it from above (D − H positive semi-definite): no overshoot.
    M, y, _ = random_problem(rng)
    r = rng.normal(size=M.shape[1])
    _, _, diag = bt_objective(r, M, y, centering=0.2)
    h = 1e-5
    H = np.array(
        [
            (
                bt_objective(r + h * e, M, y, centering=0.2)[1]
                - bt_objective(r - h * e, M, y, centering=0.2)[1]
            )
            / (2 * h)
            for e in np.eye(len(r))
        ]
    )
    assert np.linalg.eigvalsh(np.diag(diag) - (H + H.T) / 2).min() > -1e-6
    # ... and it is not loose by more than the segment length on the diagonal itself.
    assert (diag <= np.diag(H) * 40 + 1e-9).all()


def test_loss_is_log_likelihood_under_label_noise():
    M = membership(np.array([0]), np.array([1]), np.array([1]), np.array([2]), 2)
    for eps in (0.0, 0.2):
        loss, _, _ = bt_objective(np.array([1.5, 0.0]), M, np.array([1.0]), label_noise=eps)
        assert loss == pytest.approx(-np.log(bt_probability(np.array([1.5]), eps)[0]))
    # Label noise bounds the probability away from 0 and 1.
    assert bt_probability(np.array([1e6]), 0.1)[0] == pytest.approx(0.95)


def test_tree_objective_signature():
    M = membership(np.array([0]), np.array([1]), np.array([1]), np.array([2]), 2)
    grad, hess = tree_objective(BTProblem(M=M, y=np.array([1.0])))(np.zeros(2), None)
    assert grad.tolist() == [-0.5, 0.5] and (hess > 0).all()


def test_mlp_learns_a_reward_from_pairs(rng):
    X = rng.normal(size=(3000, 2)).astype(np.float32)
    reward = X[:, 0] - 0.5 * X[:, 1] ** 2
    k, L = 1500, 5
    a, b = rng.integers(0, 3000 - L, k), rng.integers(0, 3000 - L, k)
    c = np.r_[0, np.cumsum(reward)]
    y = ((c[a + L] - c[a]) > (c[b + L] - c[b])).astype(float)
    problem = BTProblem(M=membership(a, a + L, b, b + L, 3000), y=y, centering=1e-3)
    config = MLPConfig(hidden_sizes=(32, 32), max_epochs=15, random_state=0)
    model = fit_bt_mlp(X, problem, config, X_val=X, val_problem=problem, batch_pairs=32)
    assert np.corrcoef(model.predict(X), reward)[0, 1] > 0.95
    assert len(model.history["train_loss"]) == 15 and len(model.history["val_loss"]) == 15
    assert model.history["train_loss"][-1] < model.history["train_loss"][0]


def test_docstring_examples():
    result = doctest.testmod(preference, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
