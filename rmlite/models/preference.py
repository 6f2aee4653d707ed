"""Bradley–Terry engine: learning a per-step reward from preferences between segments.

A preference pair *k* compares segment A (a run of steps) with segment B. The model
predicts a reward ``r_t`` per step; a segment's return is the sum of its steps' rewards,
and the Bradley–Terry model (Bradley & Terry 1952; Christiano et al. 2017) says

    P(A ≻ B) = σ(z_k),    z_k = Σ_{t∈A} r_t − Σ_{t∈B} r_t.

Segments enter as one sparse *membership matrix* ``M`` (pairs × steps) with ``+1`` for
the steps of A and ``−1`` for those of B, so ``z = M r`` and every gradient is a sparse
product: no Python loop touches a pair or a step.

:func:`bt_objective` is the loss with its per-step gradient and (Gauss–Newton) hessian,
which is what a gradient-boosting library needs to grow trees on preferences
(:func:`tree_objective` adapts it to LightGBM's and XGBoost's custom-objective
signatures). :func:`fit_bt_mlp` trains the torch MLP of :mod:`rmlite.models.mlp` on the
same loss and returns an ordinary :class:`~rmlite.models.mlp.MLPModel`.

Only this module and its siblings in ``rmlite.models`` import torch.

Examples
--------
>>> import numpy as np
>>> M = membership(np.array([0]), np.array([2]), np.array([2]), np.array([4]), n_steps=4)
>>> M.toarray()
array([[ 1.,  1., -1., -1.]])
>>> loss, grad, hess = bt_objective(np.array([1.0, 1.0, 0.0, 0.0]), M, np.array([1.0]))
>>> round(loss, 4), grad.round(4).tolist()    # z = 2: A is already preferred
(0.1269, [-0.1192, -0.1192, 0.1192, 0.1192])
"""

from __future__ import annotations

import copy
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from rmlite._typing import Float32Array, Float64Array, Int64Array
from rmlite.exceptions import RmliteError, SchemaError

_EPS = 1e-12


# ------------------------------------------------------------------ segments → matrix


def membership(
    start_a: Int64Array,
    stop_a: Int64Array,
    start_b: Int64Array,
    stop_b: Int64Array,
    n_steps: int,
) -> sp.csr_matrix:
    """The pairs × steps matrix ``M``: ``+1`` on the rows of segment A, ``−1`` on B's.

    Segments are half-open row ranges ``[start, stop)`` of the per-step matrix. A step in
    both segments of a pair cancels (its reward does not change ``z``).

    Examples
    --------
    >>> membership(np.array([0, 1]), np.array([1, 3]), np.array([2, 0]),
    ...            np.array([3, 1]), n_steps=3).toarray()
    array([[ 1.,  0., -1.],
           [-1.,  1.,  1.]])
    """
    starts = np.concatenate([start_a, start_b]).astype(np.int64)
    stops = np.concatenate([stop_a, stop_b]).astype(np.int64)
    n_pairs = len(start_a)
    lengths = stops - starts
    if n_pairs and (lengths.min() <= 0 or starts.min() < 0 or stops.max() > n_steps):
        raise SchemaError(
            f"segments must be non-empty row ranges [start, stop) within the {n_steps} rows "
            f"of X; got starts in [{starts.min()}, {starts.max()}], stops in "
            f"[{stops.min()}, {stops.max()}]."
        )
    # Column indices of every segment, concatenated: start_i, start_i + 1, ..., stop_i − 1.
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    cols = np.repeat(starts, lengths) + np.arange(lengths.sum(), dtype=np.int64) - offsets
    rows = np.repeat(np.concatenate([np.arange(n_pairs), np.arange(n_pairs)]), lengths)
    signs = np.repeat(np.r_[np.ones(n_pairs), -np.ones(n_pairs)], lengths)
    # COO → CSR sums duplicates, so a step in both A and B of one pair cancels to 0.
    M = sp.coo_matrix((signs, (rows, cols)), shape=(n_pairs, n_steps)).tocsr()
    M.eliminate_zeros()
    return M


# ------------------------------------------------------------------------ the loss


def bt_objective(
    r: np.ndarray,
    M: sp.csr_matrix,
    y: np.ndarray,
    *,
    margin: np.ndarray | None = None,
    label_noise: float = 0.0,
    centering: float = 0.0,
    weight: np.ndarray | None = None,
) -> tuple[float, Float64Array, Float64Array]:
    """Bradley–Terry log-loss of per-step rewards ``r``, its gradient and hessian per step.

    Parameters
    ----------
    r
        Predicted reward of every step (the rows of ``M``'s columns).
    M
        Segment membership, pairs × steps (:func:`membership`).
    y
        Label of each pair: P(A ≻ B) as judged; 1 = A preferred, 0 = B, 0.5 = a tie, or
        any soft label in [0, 1].
    margin
        Non-negative margin per pair: the preferred segment should win by at least this
        much (Llama 2's margin loss, Touvron et al. 2023); ignored for ties.
    label_noise
        ε, the probability that a judgement is a random coin flip (Christiano et al.
        2017): the likelihood of a label is taken under P = (1 − ε) σ(z) + ε / 2.
    centering
        λ of the penalty λ · K · mean(r)² (K pairs): Bradley–Terry cannot see a constant
        added to every reward, and this pins the mean reward near 0.
    weight
        Weight of each pair (default 1).

    Returns
    -------
    loss, grad, hess
        The summed loss J(r) = Σ_k w_k L_k + λ K mean(r)², ∂J/∂r_t, and a positive
        per-step curvature (see below).

    Notes
    -----
    Derivation, for pair k with z = Σ_A r − Σ_B r − m (2y − 1) (the margin pushes
    towards the label) and P = (1 − ε) σ(z) + ε/2::

        L     = −[y log P + (1 − y) log(1 − P)]
        dL/dP = (P − y) / (P (1 − P))
        dP/dz = (1 − ε) σ(z) (1 − σ(z))
        g_k   = dL/dz = (1 − ε) σ (1 − σ) (P − y) / (P (1 − P))      (= σ − y when ε = 0)

    and z is linear in r with ∂z/∂r_t = M_kt (+1 on A, −1 on B), so the gradient per step
    is the sparse product ``grad = Mᵀ g``: each step collects ±g_k from every pair its
    segments are in.

    Curvature: the Gauss–Newton (Fisher) approximation replaces d²L/dz² by the expected
    information h_k = (dP/dz)² / (P (1 − P)), which is positive for every ε (= σ (1 − σ)
    when ε = 0, where it is exact). In r, pair k then contributes the rank-one matrix
    h_k m_k m_kᵀ (m_k: row k of M). Trees need one number per step; the plain diagonal
    h_k m_kt² ignores that a leaf holding n steps of one segment moves z by n times its
    value, and overshoots by up to the segment length. We use the diagonal majorizer
    m mᵀ ⪯ ‖m‖₁ diag(|m|) (Cauchy–Schwarz: (mᵀv)² ≤ ‖m‖₁ Σ |m_t| v_t²) instead:

        hess_t = Σ_k h_k ‖m_k‖₁ |M_kt|

    so a Newton leaf step never overshoots the Gauss–Newton model of the loss.

    The centering term adds 2 λ K mean(r) / n to every step's gradient and its own
    majorized curvature 2 λ K / n (from (1ᵀv / n)² ≤ (1/n) Σ v_t²).

    Examples
    --------
    >>> M = membership(np.array([0]), np.array([1]), np.array([1]), np.array([2]), n_steps=2)
    >>> loss, g, h = bt_objective(np.zeros(2), M, np.array([1.0]))
    >>> round(loss, 4), g.tolist(), h.tolist()        # log 2; σ(0) − 1 = −0.5
    (0.6931, [-0.5, 0.5], [0.5, 0.5])
    """
    r = np.asarray(r, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    eps = float(label_noise)
    z = M @ r
    if margin is not None:
        z = z - np.asarray(margin, dtype=np.float64) * (2.0 * y - 1.0)
    sigma = _sigmoid(z)
    P = np.clip((1.0 - eps) * sigma + 0.5 * eps, _EPS, 1.0 - _EPS)
    # log P and log(1 − P) without cancellation when ε = 0: log σ(z) = −softplus(−z).
    if eps == 0.0:
        log_p, log_q = -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z)
    else:
        log_p, log_q = np.log(P), np.log1p(-P)
    losses = -(y * log_p + (1.0 - y) * log_q)
    dP_dz = (1.0 - eps) * sigma * (1.0 - sigma)
    # With ε = 0 this is σ − y, written so that it stays exact where σ saturates.
    g = sigma - y if eps == 0.0 else dP_dz * (P - y) / (P * (1.0 - P))
    h = np.maximum(dP_dz**2 / (P * (1.0 - P)), _EPS)
    w = np.ones_like(y) if weight is None else np.asarray(weight, dtype=np.float64)
    loss = float(w @ losses)

    absM = abs(M)
    norm1 = np.asarray(absM.sum(axis=1)).ravel()  # ‖m_k‖₁: steps in the pair's two segments
    grad = np.asarray(M.T @ (w * g), dtype=np.float64)
    hess = np.asarray(absM.T @ (w * h * norm1), dtype=np.float64)

    if centering > 0.0:
        n, K = len(r), float(w.sum())
        mean = float(r.mean())
        loss += centering * K * mean**2
        grad += 2.0 * centering * K * mean / n
        hess += 2.0 * centering * K / n
    return loss, grad, hess


def bt_probability(z: np.ndarray, label_noise: float = 0.0) -> Float64Array:
    """P(A ≻ B) = (1 − ε) σ(z) + ε / 2 for return differences ``z``."""
    return (1.0 - label_noise) * _sigmoid(np.asarray(z, dtype=np.float64)) + 0.5 * label_noise


def _sigmoid(z: np.ndarray) -> Float64Array:
    # 0.5 (1 + tanh(z / 2)) is σ(z) without overflow warnings for large |z|.
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


# ---------------------------------------------------------------------- tree engines


@dataclass
class BTProblem:
    """Everything the tree objective needs besides the predictions."""

    M: sp.csr_matrix
    y: Float64Array
    margin: Float64Array | None = None
    label_noise: float = 0.0
    centering: float = 0.0
    weight: Float64Array | None = None

    def objective(self, r: np.ndarray) -> tuple[float, Float64Array, Float64Array]:
        """:func:`bt_objective` at ``r``."""
        return bt_objective(
            r,
            self.M,
            self.y,
            margin=self.margin,
            label_noise=self.label_noise,
            centering=self.centering,
            weight=self.weight,
        )


def tree_objective(problem: BTProblem) -> Callable[[np.ndarray, Any], tuple[Any, Any]]:
    """A custom objective ``(preds, data) -> (grad, hess)`` for LightGBM and XGBoost.

    Both libraries pass the current raw scores of every training row (here: every step,
    in the order of ``M``'s columns); the labels in ``data`` are unused.
    """

    def objective(preds: np.ndarray, _data: Any) -> tuple[Any, Any]:
        _, grad, hess = problem.objective(np.asarray(preds, dtype=np.float64).ravel())
        return grad, hess

    return objective


# ----------------------------------------------------------------------------- torch


def fit_bt_mlp(
    X: Float32Array,
    problem: BTProblem,
    config: Any,
    *,
    X_val: Float32Array | None = None,
    val_problem: BTProblem | None = None,
    batch_pairs: int = 64,
) -> Any:
    """Train the MLP of :mod:`rmlite.models.mlp` on the Bradley–Terry loss.

    The same loss as :func:`bt_objective`, written in torch and minimized by AdamW over
    mini-batches of *pairs*: each batch gathers the steps of its pairs' segments, runs
    the network on them, and sums ±r into z with one ``index_add`` (no Python loop over
    pairs or steps).

    Parameters
    ----------
    X
        Per-step features (float32, finite); the columns of ``problem.M`` index its rows.
    problem
        Pairs (membership, labels, margins) and the loss options.
    config
        An :class:`~rmlite.models.mlp.MLPConfig` (``loss`` is ignored: the output is the
        reward itself; ``batch_size`` is unused, see ``batch_pairs``).
    X_val, val_problem
        Held-out steps and pairs: their loss per epoch drives early stopping.
    batch_pairs
        Pairs per mini-batch.

    Returns
    -------
    MLPModel
        With ``y_mean = 0`` and ``y_std = 1``: :meth:`~MLPModel.predict` returns the
        learned reward. ``history`` holds the mean loss per pair (train and validation).
    """
    import torch

    from rmlite.models.mlp import (
        MLPModel,
        _check_matrix,
        _private_rng,
        _tensor,
        _torch_threads,
        build_network,
        resolve_torch_device,
    )

    config.validate()
    device = resolve_torch_device(config.device)
    X = _check_matrix(X, "X", None)
    n, d = X.shape
    K = problem.M.shape[0]
    if problem.M.shape[1] != n:
        raise SchemaError(f"the pairs index {problem.M.shape[1]} steps, but X has {n} rows.")
    if K == 0:
        raise SchemaError("fit_bt_mlp was given no preference pairs.")
    has_val = X_val is not None and val_problem is not None
    if has_val:
        assert X_val is not None
        X_val = _check_matrix(X_val, "X_val", d)

    var, mean = torch.var_mean(_tensor(X, "cpu"), dim=0, correction=0)
    x_mean, x_std = mean.numpy(), var.sqrt().numpy()
    x_std[x_std == 0] = 1.0
    seed = int(config.random_state) if config.random_state is not None else secrets.randbits(63)
    eps, lam = float(problem.label_noise), float(problem.centering)

    with _torch_threads(config.n_threads), _private_rng(device):
        x_mean_t, x_std_t = torch.from_numpy(x_mean).to(device), torch.from_numpy(x_std).to(device)
        X_t = (_tensor(X, device) - x_mean_t) / x_std_t
        # The membership matrix in CSR form on the device: a batch of pairs is a gather of
        # index ranges, done with repeat_interleave instead of a loop.
        M = problem.M.tocsr()
        indptr = torch.from_numpy(M.indptr.astype(np.int64)).to(device)
        cols = torch.from_numpy(M.indices.astype(np.int64)).to(device)
        signs = torch.from_numpy(M.data.astype(np.float32)).to(device)
        y_t = torch.from_numpy(problem.y.astype(np.float32)).to(device)
        m_t = (
            torch.from_numpy(problem.margin.astype(np.float32)).to(device)
            if problem.margin is not None
            else None
        )
        w_t = (
            torch.from_numpy((problem.weight / problem.weight.mean()).astype(np.float32)).to(device)
            if problem.weight is not None
            else None
        )

        torch.manual_seed(seed)
        network = build_network(d, config).to(device)
        batch_order = torch.Generator(device=device).manual_seed(seed)
        optimizer = torch.optim.AdamW(
            network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        B = batch_pairs
        T = config.max_epochs * math.ceil(K / B)
        t = 0
        history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
        patience = config.early_stopping_rounds if has_val else None
        best_val, best_epoch, best_state = math.inf, 0, None
        for epoch in range(config.max_epochs):
            network.train()
            loss_sum = torch.zeros((), device=device)
            perm = torch.randperm(K, generator=batch_order, device=device)
            for start in range(0, K, B):
                pairs = perm[start : start + B]
                if config.lr_schedule == "cosine":
                    for group in optimizer.param_groups:
                        group["lr"] = config.learning_rate * 0.5 * (1 + math.cos(math.pi * t / T))
                # Nonzeros of the batch's rows of M: for row k, positions indptr[k] ..
                # indptr[k+1] − 1; `which` says which batch pair each one belongs to.
                lo, hi = indptr[pairs], indptr[pairs + 1]
                counts = hi - lo
                which = torch.repeat_interleave(torch.arange(len(pairs), device=device), counts)
                pos = torch.arange(int(counts.sum()), device=device)
                pos = pos - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
                nz = lo[which] + pos
                r = network(X_t[cols[nz]])
                z = torch.zeros(len(pairs), device=device).index_add_(0, which, signs[nz] * r)
                loss = _bt_loss_torch(
                    z,
                    y_t[pairs],
                    None if m_t is None else m_t[pairs],
                    eps,
                    None if w_t is None else w_t[pairs],
                )
                if lam > 0:
                    # λ · mean(r)² on the batch's steps (an estimate of the full-data mean).
                    loss = loss + lam * r.mean() ** 2
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(pairs)
                t += 1
            train_loss = float(loss_sum) / K
            if not math.isfinite(train_loss):
                raise RmliteError(
                    f"MLP preference training diverged at epoch {epoch} (loss {train_loss}). "
                    f"Lower 'learning_rate' (now {config.learning_rate})."
                )
            history["train_loss"].append(train_loss)
            val_loss = None
            if has_val:
                assert X_val is not None and val_problem is not None
                from rmlite.models.mlp import _forward_in_batches

                r_val = _forward_in_batches(network, X_val, x_mean_t, x_std_t, 4096)
                val_loss = (
                    val_problem.objective(r_val.cpu().numpy().astype(np.float64))[0]
                    / val_problem.M.shape[0]
                )
                history["val_loss"].append(val_loss)
            if patience is None:
                best_epoch = epoch
            elif val_loss is not None and val_loss < best_val:
                best_val, best_epoch = val_loss, epoch
                best_state = copy.deepcopy(network.state_dict())
            if patience is not None and epoch - best_epoch >= patience:
                break
        if best_state is not None:
            network.load_state_dict(best_state)
        state_dict = {k: v.detach().to("cpu", copy=True) for k, v in network.state_dict().items()}

    return MLPModel(
        config=config,
        n_features=d,
        state_dict=state_dict,
        x_mean=x_mean,
        x_std=x_std,
        y_mean=0.0,
        y_std=1.0,
        history=history,
        best_epoch=best_epoch,
    )


def _bt_loss_torch(z: Any, y: Any, margin: Any | None, eps: float, weight: Any | None) -> Any:
    """Mean Bradley–Terry log-loss over a batch (the torch twin of :func:`bt_objective`)."""
    import torch

    if margin is not None:
        z = z - margin * (2.0 * y - 1.0)
    if eps == 0.0:
        # Cross-entropy on logits: −[y log σ(z) + (1 − y) log σ(−z)], stable for any z.
        losses = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
    else:
        P = ((1.0 - eps) * torch.sigmoid(z) + 0.5 * eps).clamp(_EPS, 1.0 - _EPS)
        losses = -(y * torch.log(P) + (1.0 - y) * torch.log1p(-P))
    return (losses * weight).mean() if weight is not None else losses.mean()
