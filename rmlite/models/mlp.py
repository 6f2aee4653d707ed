"""Torch MLP engine: a plain feed-forward network trained by one top-down function.

:func:`fit_mlp` is the whole training loop, read top to bottom: standardize, build,
AdamW with a cosine schedule, mini-batches sliced from one tensor on the device, early
stopping on the validation loss. :class:`MLPModel` carries the preprocessing it learned
(input and target standardization) with the weights, so ``predict`` applies exactly what
``fit`` saw. Models are saved as a bare ``state_dict`` (tensors only, loadable with
``weights_only=True``) plus JSON-ready metadata.

Only this module (in ``rmlite.models``) imports torch.

Examples
--------
>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32)
>>> config = MLPConfig(hidden_sizes=(16,), max_epochs=5, random_state=0)
>>> model = fit_mlp(X, X[:, 0] + X[:, 1], config)
>>> model.predict(X).shape, model.predict(X).dtype
((256,), dtype('float32'))
"""

from __future__ import annotations

import copy
import io
import math
import pickle
import secrets
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rmlite._typing import Float32Array
from rmlite.data.matrix_file import MatrixFile
from rmlite.exceptions import ParameterError, RmliteError, SchemaError
from rmlite.models.device import DeviceError, fit_threads

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "elu": nn.ELU,
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "activation": tuple(_ACTIVATIONS),
    "loss": ("mse", "bce"),
    "device": ("cpu", "cuda"),
    "lr_schedule": ("cosine", "constant"),
}
# Declared limits, checked by MLPConfig.validate: (type, low, high, closed ends, None allowed).
_LIMITS: dict[str, tuple[type, float, float, str, bool]] = {
    "dropout": (float, 0.0, 1.0, "[)", False),
    "weight_decay": (float, 0.0, math.inf, "[)", False),
    "learning_rate": (float, 0.0, math.inf, "()", False),
    "batch_size": (int, 1, math.inf, "[)", False),
    "max_epochs": (int, 1, math.inf, "[)", False),
    "early_stopping_rounds": (int, 1, math.inf, "[)", True),
    "random_state": (int, 0, 2**63 - 1, "[]", True),
    "n_threads": (int, 1, math.inf, "[)", True),
}

OnEpoch = Callable[[int, float, float | None], bool | None]
"""``on_epoch(epoch, train_loss, val_loss)``, called after every epoch; True stops."""


@dataclass(frozen=True)
class MLPConfig:
    """Architecture and training settings of the MLP.

    Each field's ``help`` text is also the CLI's. :meth:`validate` (called by
    :func:`fit_mlp`) raises a :class:`~rmlite.exceptions.ParameterError` naming the first
    field out of range.

    Examples
    --------
    >>> config = MLPConfig(hidden_sizes=(64, 64), dropout=0.1)
    >>> MLPConfig.from_dict(config.to_dict()) == config
    True
    >>> MLPConfig(dropout=1.5).validate()
    Traceback (most recent call last):
    ...
    rmlite.exceptions.ParameterError: The 'dropout' parameter of MLPConfig must be a float in the range [0.0, 1.0). Got 1.5 instead.
    """

    hidden_sizes: tuple[int, ...] = field(
        default=(256, 256), metadata={"help": "width of each hidden layer; () is a linear model"}
    )
    activation: str = field(
        default="relu", metadata={"help": "hidden activation: relu, gelu, tanh, silu or elu"}
    )
    dropout: float = field(
        default=0.0, metadata={"help": "dropout probability after each hidden layer, in [0, 1)"}
    )
    weight_decay: float = field(
        default=1e-4, metadata={"help": "AdamW's decoupled weight decay (on all parameters)"}
    )
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW's (peak) learning rate"})
    batch_size: int = field(default=256, metadata={"help": "rows per training mini-batch"})
    max_epochs: int = field(default=200, metadata={"help": "passes over the training rows"})
    early_stopping_rounds: int | None = field(
        default=20,
        metadata={
            "help": "stop after this many epochs without a lower validation loss and keep the "
            "best epoch's weights; None turns it off (it needs a validation set)"
        },
    )
    loss: str = field(
        default="mse",
        metadata={"help": "mse for a regression target, bce for a 0/1 event (on logits)"},
    )
    device: str = field(
        default="cpu",
        metadata={"help": "cpu or cuda (resolve 'auto' with resolve_torch_device first)"},
    )
    random_state: int | None = field(
        default=None,
        metadata={"help": "seed of the initial weights, batch order and dropout; None: fresh"},
    )
    n_threads: int | None = field(
        default=None,
        metadata={
            "help": "torch CPU threads while fitting and predicting; None: one thread for "
            "a fit under 20,000 rows, else the physical cores (rmlite.models.device."
            "fit_threads); torch's own when predicting"
        },
    )
    lr_schedule: str = field(
        default="cosine",
        metadata={"help": "cosine: anneal the learning rate to 0 over max_epochs; or constant"},
    )

    def validate(self) -> None:
        """Raise a :class:`ParameterError` naming the first parameter out of range."""
        sizes = self.hidden_sizes
        if not (
            isinstance(sizes, tuple)
            and all(isinstance(h, Integral) and not isinstance(h, bool) and h > 0 for h in sizes)
        ):
            raise ParameterError(
                f"The 'hidden_sizes' parameter of MLPConfig must be a tuple of positive ints. "
                f"Got {sizes!r} instead."
            )
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                hint = " Resolve 'auto' with resolve_torch_device first." if value == "auto" else ""
                raise ParameterError(
                    f"The '{name}' parameter of MLPConfig must be a str among {set(allowed)}. "
                    f"Got {value!r} instead.{hint}"
                )
        for name, (kind, low, high, ends, none_ok) in _LIMITS.items():
            value = getattr(self, name)
            if value is None and none_ok:
                continue
            type_ok = isinstance(value, Integral if kind is int else Real)
            in_range = (
                type_ok
                and not isinstance(value, bool)
                and (low <= value if ends[0] == "[" else low < value)
                and (value <= high if ends[1] == "]" else value < high)
            )
            if not in_range:
                type_name = "an int" if kind is int else "a float"
                interval = (
                    f"{ends[0]}{kind(low)}, {'inf' if high == math.inf else kind(high)}{ends[1]}"
                )
                raise ParameterError(
                    f"The '{name}' parameter of MLPConfig must be {type_name} in the range "
                    f"{interval}{' or None' if none_ok else ''}. Got {value!r} instead."
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (saved with models)."""
        out = asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MLPConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error that names them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParameterError(
                f"MLPConfig has no parameter(s) {unknown}; known: {sorted(known)}."
            )
        values = dict(data)
        if "hidden_sizes" in values:
            values["hidden_sizes"] = tuple(values["hidden_sizes"])
        return cls(**values)


@dataclass(eq=False)
class MLPModel:
    """A trained MLP with the preprocessing it learned on its training rows.

    The network sees ``(X - x_mean) / x_std`` and, for ``loss="mse"``, predicts
    ``(y - y_mean) / y_std``; :meth:`predict` undoes both.
    """

    config: MLPConfig
    n_features: int
    state_dict: dict[str, torch.Tensor]
    """Weights of the :func:`build_network` network, on the CPU."""
    x_mean: Float32Array
    x_std: Float32Array
    y_mean: float
    y_std: float
    history: dict[str, list[float]]
    """``train_loss`` and ``val_loss`` per epoch (``val_loss`` empty without a validation
    set): mean squared error in the target's units for mse, log loss for bce. The train
    loss is the running mean over the epoch's batches (dropout on, weights changing)."""
    best_epoch: int
    """0-based epoch whose weights the model holds (the last one without early stopping)."""
    _network: tuple[nn.Sequential, torch.Tensor, torch.Tensor] | None = field(
        default=None, init=False, repr=False
    )

    def predict(self, X: np.ndarray | MatrixFile, batch_size: int = 4096) -> Float32Array:
        """Predictions in the target's units; probabilities for ``loss="bce"``.

        Runs on the training device when this machine has it, otherwise on the CPU, so a
        model trained on a GPU predicts anywhere. A
        :class:`~rmlite.data.matrix_file.MatrixFile` is read a chunk at a time: only the
        predictions are held whole.
        """
        raw = self.predict_raw(X, batch_size)
        if self.config.loss == "bce":
            return torch.sigmoid(torch.from_numpy(raw)).numpy()
        return raw

    def predict_raw(self, X: np.ndarray | MatrixFile, batch_size: int = 4096) -> Float32Array:
        """Logits for ``loss="bce"``; the same as :meth:`predict` for ``loss="mse"``."""
        network, x_mean, x_std = self._inference_network()
        if isinstance(X, MatrixFile):
            if X.n_cols != self.n_features:
                raise SchemaError(
                    f"X has {X.n_cols} features, but the MLP was trained on {self.n_features}."
                )
            f = np.empty(len(X), dtype=np.float32)
            with _torch_threads(self.config.n_threads):
                for lo, hi in _spans(len(X), X.chunk_rows()):
                    rows = _read_rows(X, lo, hi, "X")
                    out = _forward_in_batches(network, rows, x_mean, x_std, batch_size)
                    f[lo:hi] = out.cpu().numpy()
                    del rows  # freed before the next chunk is read
        else:
            X = _check_matrix(X, "X", self.n_features)
            with _torch_threads(self.config.n_threads):
                f = _forward_in_batches(network, X, x_mean, x_std, batch_size).cpu().numpy()
        if self.config.loss == "mse":
            f = f * np.float32(self.y_std) + np.float32(self.y_mean)
        return f

    def _inference_network(self) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
        # Built once and cached: rebuilding per call would dominate the per-step predictions
        # of a reward wrapper around a Gymnasium env.
        if self._network is None:
            use_cuda = self.config.device == "cuda" and torch.cuda.is_available()
            device = "cuda" if use_cuda else "cpu"
            # Built on the meta device, then given the saved tensors: no initialization
            # work and no draw from the caller's random stream.
            with torch.device("meta"):
                network = build_network(self.n_features, self.config)
            network.load_state_dict(self.state_dict, assign=True)
            self._network = (
                network.to(device).eval(),
                torch.from_numpy(self.x_mean).to(device),
                torch.from_numpy(self.x_std).to(device),
            )
        return self._network


def resolve_torch_device(device: str) -> str:
    """The torch device to train on: ``"auto"`` becomes ``"cuda"`` when torch sees a GPU.

    Asking for ``"cuda"`` where torch sees none is an error, never a silent CPU run.

    Examples
    --------
    >>> resolve_torch_device("cpu")
    'cpu'
    >>> resolve_torch_device("auto") in ("cpu", "cuda")
    True
    """
    if device not in ("cpu", "cuda", "auto"):
        raise DeviceError(
            f"The 'device' parameter must be a str among {{'cpu', 'cuda', 'auto'}}. "
            f"Got {device!r} instead."
        )
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        fix = (
            "install a CUDA build of torch"
            if torch.version.cuda is None
            else "check the NVIDIA driver and CUDA_VISIBLE_DEVICES"
        )
        raise DeviceError(
            f"device='cuda' was requested but torch sees no CUDA device (torch "
            f"{torch.__version__}, CUDA build: {torch.version.cuda}). Use device='cpu' or {fix}."
        )
    return device


def build_network(n_features: int, config: MLPConfig) -> nn.Sequential:
    """``Linear → activation [→ Dropout]`` per hidden layer, then ``Linear → 1``.

    Maps a ``(n, n_features)`` batch to ``(n,)`` outputs. Weights use torch's default
    initialization (Kaiming-uniform); seed torch before calling for reproducible weights.

    Examples
    --------
    >>> build_network(3, MLPConfig(hidden_sizes=(8,), activation="tanh"))
    Sequential(
      (0): Linear(in_features=3, out_features=8, bias=True)
      (1): Tanh()
      (2): Linear(in_features=8, out_features=1, bias=True)
      (3): Flatten(start_dim=0, end_dim=-1)
    )
    """
    layers: list[nn.Module] = []
    width = n_features
    for hidden in config.hidden_sizes:
        layers += [nn.Linear(width, hidden), _ACTIVATIONS[config.activation]()]
        if config.dropout > 0:
            layers.append(nn.Dropout(config.dropout))
        width = hidden
    layers += [nn.Linear(width, 1), nn.Flatten(start_dim=0)]
    return nn.Sequential(*layers)


def fit_mlp(
    X: Float32Array | MatrixFile,
    y: np.ndarray,
    config: MLPConfig,
    *,
    X_val: Float32Array | MatrixFile | None = None,
    y_val: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    on_epoch: OnEpoch | None = None,
    X_eval: Float32Array | MatrixFile | None = None,
    y_eval: np.ndarray | None = None,
    chunk_rows: int | None = None,
) -> MLPModel:
    """Train an MLP on ``(X, y)``; early-stop on ``(X_val, y_val)`` when given.

    Any of ``X``, ``X_val`` and ``X_eval`` may be a
    :class:`~rmlite.data.matrix_file.MatrixFile` (a matrix on disk, larger than memory):
    it is then streamed. The standardization comes from one pass over its chunks; each
    epoch visits the chunks in a random order and shuffles the rows within each chunk;
    held-out losses are computed a chunk at a time; every chunk read is checked for
    NaN. Memory: one chunk of X (about 64 MiB by default) besides the model, the targets
    and the weights; reading a view of a file (some of its rows) briefly holds the
    covering read too, so two chunks at most.
    A file read in a single chunk gives the same model, bit for bit, as its rows in
    memory; in several chunks the batches differ (rows meet only their chunk's rows in a
    batch) and the model reaches about the same loss.

    Parameters
    ----------
    X, y
        Training rows (float32 matrix or file, finite) and targets (0/1 or in [0, 1]
        for bce).
    config
        Architecture and training settings; validated here.
    X_val, y_val
        Validation rows (held-out episodes: the caller splits). Their loss is recorded
        per epoch and drives early stopping; without them training runs ``max_epochs``.
    sample_weight
        Non-negative weight per training row, normalized to mean 1 (weighted loss).
    on_epoch
        ``on_epoch(epoch, train_loss, val_loss)`` after every epoch (0-based, losses as in
        :attr:`MLPModel.history`); returning True stops training (Optuna pruning).
    X_eval, y_eval
        Rows only watched, never used to stop: their loss per epoch is recorded in
        ``history["eval_loss"]`` (a hold-out's learning curve).
    chunk_rows
        Rows read at once from a file (default :meth:`MatrixFile.chunk_rows`, about
        64 MiB), rounded down to a whole number of ``batch_size`` batches so that only an
        epoch's last batch is short. Ignored for in-memory matrices.

    Returns
    -------
    MLPModel
        Weights on the CPU (the best validation epoch's when early stopping is on) and the
        standardization fitted on the training rows.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(512, 2)).astype(np.float32)
    >>> y = X[:, 0] - 2.0 * X[:, 1]
    >>> config = MLPConfig(
    ...     hidden_sizes=(32,), learning_rate=3e-3, batch_size=64, max_epochs=30, random_state=0
    ... )
    >>> model = fit_mlp(X[:400], y[:400], config, X_val=X[400:], y_val=y[400:])
    >>> float(np.corrcoef(model.predict(X[400:]), y[400:])[0, 1]) > 0.99
    True
    >>> len(model.history["val_loss"]) == len(model.history["train_loss"])
    True
    """
    config.validate()
    device = resolve_torch_device(config.device)
    X, y, w = _check_training_rows(X, y, sample_weight, config.loss)
    has_val = X_val is not None or y_val is not None
    if has_val:
        X_val, y_val, _ = _check_training_rows(
            X_val, y_val, None, config.loss, "X_val", "y_val", X.shape[1]
        )
    has_eval = X_eval is not None and y_eval is not None
    if has_eval:
        X_eval, y_eval, _ = _check_training_rows(
            X_eval, y_eval, None, config.loss, "X_eval", "y_eval", X.shape[1]
        )
    n, d = X.shape
    B = config.batch_size
    # Row spans read at once: the whole of an in-memory matrix; for a file, chunks of a
    # whole number of batches, so that only an epoch's last batch is short (as in memory).
    step = _chunk_rows(X, chunk_rows, B)
    spans = _spans(n, step)
    # A file's held-out rows are checked before any training (the training rows are
    # checked by the statistics pass below): a NaN fails the fit at once, not an epoch in.
    for X_o, name in ((X_val, "X_val"), (X_eval, "X_eval")):
        if isinstance(X_o, MatrixFile):
            for lo, hi in _spans(len(X_o), step):
                _read_rows(X_o, lo, hi, name)

    # Standardize inputs with training statistics only (a constant column keeps scale 1).
    x_mean, x_std = _standardization(_read_rows(X, lo, hi, "X") for lo, hi in spans)
    # Regression: fit the standardized target z = (y - y_mean) / y_std, so one learning
    # rate suits any reward scale. Events are fitted as they are, on logits.
    y_mean, y_std = 0.0, 1.0
    if config.loss == "mse":
        y_mean, y_std = float(y.mean()), float(y.std()) or 1.0
    seed = int(config.random_state) if config.random_state is not None else secrets.randbits(63)

    # None: the rule every backend shares (one thread for a small fit, else the physical
    # cores), not torch's own default of every logical CPU.
    with _torch_threads(fit_threads(config.n_threads, n)), _private_rng(device):
        x_mean_t, x_std_t = torch.from_numpy(x_mean).to(device), torch.from_numpy(x_std).to(device)
        # An in-memory matrix becomes one standardized float32 copy on the device, held
        # for the whole fit; each batch is a slice of it by a permuted index (3.5x faster
        # than a DataLoader on 2 cores). A file's chunk is read, standardized in place and
        # dropped each time: one chunk of X in memory besides the model.
        held = None if isinstance(X, MatrixFile) else (_tensor(X, device) - x_mean_t) / x_std_t

        def standardized_chunk(lo: int, hi: int) -> torch.Tensor:
            if held is not None:
                return held
            # A fresh array of the chunk: standardizing it in place copies nothing.
            return _tensor(_read_rows(X, lo, hi, "X"), device).sub_(x_mean_t).div_(x_std_t)

        z_t = torch.from_numpy(((y - y_mean) / y_std).astype(np.float32)).to(device)
        w_t = (
            torch.from_numpy((w / w.mean()).astype(np.float32)).to(device)
            if w is not None
            else None
        )
        # Rows whose loss is recorded each epoch: in memory, held on the device (shared
        # with the caller's array on the CPU); a file, read a chunk at a time.
        watched: dict[str, tuple[torch.Tensor | MatrixFile, torch.Tensor]] = {}
        for key, X_o, y_o in (("val_loss", X_val, y_val), ("eval_loss", X_eval, y_eval)):
            if X_o is not None and y_o is not None:
                watched[key] = (
                    X_o if isinstance(X_o, MatrixFile) else _tensor(X_o, device),
                    torch.from_numpy(y_o.astype(np.float32)).to(device),
                )

        def loss_on(X_o: torch.Tensor | MatrixFile, y_o: torch.Tensor, name: str) -> float:
            """Mean loss in the target's units, the network in evaluation mode.

            A file is read a chunk at a time; the chunk means are combined weighted by
            their rows, which for one chunk is its mean exactly (as in memory).
            """
            n_o = len(y_o)
            total = 0.0
            for lo, hi in _spans(n_o, step) if isinstance(X_o, MatrixFile) else [(0, n_o)]:
                x_o = _read_rows(X_o, lo, hi, name) if isinstance(X_o, MatrixFile) else X_o
                f_o = _forward_in_batches(network, x_o, x_mean_t, x_std_t, 4096)
                if config.loss == "mse":
                    f_o = f_o * y_std + y_mean
                mean = float(_pointwise_loss(f_o, y_o[lo:hi], config.loss).mean())
                total += (hi - lo) / n_o * mean
                del x_o  # freed before the next chunk is read
            return total

        # Initial weights from torch.manual_seed (also seeds dropout); batch order from its
        # own generator, so two fits with one seed are identical on the CPU.
        torch.manual_seed(seed)
        network = build_network(d, config).to(device)
        batch_order = torch.Generator(device=device).manual_seed(seed)
        # AdamW: Adam with weight decay decoupled from the gradient step (Loshchilov &
        # Hutter 2019, "Decoupled Weight Decay Regularization"). The fused kernel updates
        # all parameters in one pass: about 20% more samples/s than the default on 2 cores.
        optimizer = torch.optim.AdamW(
            network.parameters(),
            lr=config.learning_rate,
            weight_decay=config.weight_decay,
            fused=True,
        )
        steps_per_epoch = sum(math.ceil((hi - lo) / B) for lo, hi in spans)
        T = config.max_epochs * steps_per_epoch
        t = 0

        history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
        if has_eval:
            history["eval_loss"] = []
        patience = config.early_stopping_rounds if has_val else None  # None: no early stop
        best_val, best_epoch, best_state = math.inf, 0, None
        for epoch in range(config.max_epochs):
            network.train()
            loss_sum = torch.zeros((), device=device)  # summed on the device: no sync per batch
            # Chunks in a random order, then rows shuffled within each chunk. One chunk
            # (every in-memory fit) draws no chunk order, so its row permutations are
            # the same stream whether the rows come from memory or from a file.
            chunk_order = (
                torch.randperm(len(spans), generator=batch_order, device=device).tolist()
                if len(spans) > 1
                else [0]
            )
            for c in chunk_order:
                lo, hi = spans[c]
                X_c, z_c = standardized_chunk(lo, hi), z_t[lo:hi]
                w_c = w_t[lo:hi] if w_t is not None else None
                perm = torch.randperm(hi - lo, generator=batch_order, device=device)
                for start in range(0, hi - lo, B):
                    idx = perm[start : start + B]
                    if config.lr_schedule == "cosine":
                        # Cosine annealing per step: η_t = η · ½ (1 + cos(π t / T))
                        # (Loshchilov & Hutter 2017, SGDR, without restarts).
                        for group in optimizer.param_groups:
                            group["lr"] = (
                                config.learning_rate * 0.5 * (1 + math.cos(math.pi * t / T))
                            )
                    f = network(X_c[idx])
                    losses = _pointwise_loss(f, z_c[idx], config.loss)
                    # Weights have mean 1 over the training rows, so the batch mean of w·ℓ
                    # is an unbiased estimate of the weighted training loss.
                    loss = (w_c[idx] * losses).mean() if w_c is not None else losses.mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    loss_sum += loss.detach() * len(idx)
                    t += 1
                del X_c  # a file's chunk is freed before the next is read
            # Back to the target's units: an mse on z is y_std² times the mse on y.
            train_loss = float(loss_sum) / n * y_std**2
            if not math.isfinite(train_loss):
                raise RmliteError(
                    f"MLP training diverged at epoch {epoch}: the training loss is {train_loss}. "
                    f"Lower 'learning_rate' (now {config.learning_rate}) or check the target's scale."
                )
            history["train_loss"].append(train_loss)

            for key, (X_w, y_w) in watched.items():
                history[key].append(loss_on(X_w, y_w, "X_val" if key == "val_loss" else "X_eval"))
            val_loss = history["val_loss"][-1] if has_val else None

            # Early stopping: remember the weights of the lowest validation loss so far and
            # stop once it is early_stopping_rounds epochs old.
            if patience is None:
                best_epoch = epoch
            elif val_loss is not None and val_loss < best_val:
                best_val, best_epoch = val_loss, epoch
                best_state = copy.deepcopy(network.state_dict())
            if on_epoch is not None and on_epoch(epoch, train_loss, val_loss):
                break
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
        y_mean=y_mean,
        y_std=y_std,
        history=history,
        best_epoch=best_epoch,
    )


def mlp_to_files(model: MLPModel, folder: Path, name: str) -> dict[str, Any]:
    """Write ``folder / f"{name}.pt"`` (the ``state_dict``, tensors only); return metadata.

    The metadata (JSON-ready) holds everything else :func:`mlp_from_files` needs.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict, folder / f"{name}.pt")
    return {
        "file": f"{name}.pt",
        "config": model.config.to_dict(),
        "n_features": model.n_features,
        "x_mean": model.x_mean.tolist(),
        "x_std": model.x_std.tolist(),
        "y_mean": model.y_mean,
        "y_std": model.y_std,
        "history": {key: list(values) for key, values in model.history.items()},
        "best_epoch": model.best_epoch,
    }


def mlp_from_files(
    folder: Path, name: str, meta: dict[str, Any], data: bytes | None = None
) -> MLPModel:
    """Inverse of :func:`mlp_to_files`; loads with ``weights_only=True`` (no unpickling).

    ``data``: the ``.pt`` file's bytes, already read and checked by the caller. A file
    that is not a tensors-only ``state_dict`` of this network raises ``ValueError``.
    """
    path = Path(folder) / str(meta.get("file", f"{name}.pt"))
    try:
        source: Any = path if data is None else io.BytesIO(data)
        state_dict = torch.load(source, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        # torch's own message suggests weights_only=False, which would run the file's code.
        raise ValueError(
            f"{path}: not a tensors-only state_dict (it holds pickled Python objects, which "
            f"rmlite never unpickles). Re-save the model with rmlite, or retrain it."
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise ValueError(f"{path}: torch cannot read these weights ({exc})") from exc
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path}: expected a state_dict (a dict of tensors)")
    model = MLPModel(
        config=MLPConfig.from_dict(meta["config"]),
        n_features=int(meta["n_features"]),
        state_dict=state_dict,
        x_mean=np.asarray(meta["x_mean"], dtype=np.float32),
        x_std=np.asarray(meta["x_std"], dtype=np.float32),
        y_mean=float(meta["y_mean"]),
        y_std=float(meta["y_std"]),
        history={key: [float(v) for v in values] for key, values in meta["history"].items()},
        best_epoch=int(meta["best_epoch"]),
    )
    if model.x_mean.shape != (model.n_features,) or model.x_std.shape != (model.n_features,):
        raise ValueError(f"{path}: x_mean and x_std must hold n_features values each")
    # Weights that do not fit the network fail here, not at the first prediction. The
    # network is built on the "meta" device: shapes only, no memory, whatever the config says.
    with torch.device("meta"):
        expected = {
            k: tuple(v.shape)
            for k, v in build_network(model.n_features, model.config).state_dict().items()
        }
    found = {
        k: tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in state_dict.items()
    }
    if found != expected:
        raise ValueError(
            f"{path}: the weights do not fit the network its config describes "
            f"(expected tensors {expected}, found {found})"
        )
    return model


def _pointwise_loss(f: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Squared error, or binary cross-entropy on logits (log-sum-exp form, stable)."""
    if loss == "mse":
        return (f - target) ** 2
    return nn.functional.binary_cross_entropy_with_logits(f, target, reduction="none")


def _forward_in_batches(
    network: nn.Sequential,
    X: np.ndarray | torch.Tensor,
    x_mean: torch.Tensor,
    x_std: torch.Tensor,
    batch_size: int,
) -> torch.Tensor:
    """Network outputs on raw rows, in eval mode and batches of ``batch_size``, on its device.

    Batches of 4096 rows beat 65536 on 2 cores (cache-sized activations).
    """
    network.eval()
    out = torch.empty(len(X), dtype=torch.float32, device=x_mean.device)
    with torch.inference_mode():
        for start in range(0, len(X), batch_size):
            x = X[start : start + batch_size]
            x = _tensor(x, x_mean.device) if isinstance(x, np.ndarray) else x
            out[start : start + batch_size] = network((x - x_mean) / x_std)
    return out


def _tensor(array: np.ndarray, device: str | torch.device) -> torch.Tensor:
    """A tensor sharing the array's memory, copied only to reach another device.

    Read-only arrays (Arrow buffers, memory maps) are fine: nothing here writes to them.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array).to(device)


def _chunk_rows(X: Float32Array | MatrixFile, chunk_rows: int | None, batch_size: int) -> int:
    """Rows read at once from a file: ``chunk_rows`` (default about 64 MiB of X) rounded
    down to a whole number of batches; every row of an in-memory matrix."""
    if not isinstance(X, MatrixFile):
        return max(len(X), 1)
    if chunk_rows is not None and not (
        isinstance(chunk_rows, Integral) and not isinstance(chunk_rows, bool) and chunk_rows > 0
    ):
        raise ParameterError(
            f"The 'chunk_rows' parameter of fit_mlp must be a positive int or None. "
            f"Got {chunk_rows!r} instead."
        )
    rows = int(chunk_rows) if chunk_rows is not None else X.chunk_rows()
    return max(batch_size, rows // batch_size * batch_size)


def _spans(n: int, step: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` row spans of ``step`` rows covering ``n`` rows, in order."""
    return [(lo, min(lo + step, n)) for lo in range(0, n, step)]


def _read_rows(X: Float32Array | MatrixFile, lo: int, hi: int, name: str) -> Float32Array:
    """Rows ``[lo, hi)``: a slice of an in-memory matrix (checked already), or read from a
    file and checked as the in-memory path checks its rows."""
    if not isinstance(X, MatrixFile):
        return X[lo:hi]
    where = f" (in rows {lo:,} to {hi - 1:,} of {X.path})"
    return _check_matrix(X.read(lo, hi), name, X.n_cols, where)


def _standardization(chunks: Iterable[Float32Array]) -> tuple[Float32Array, Float32Array]:
    """Per-column mean and (population) standard deviation over row chunks, float32.

    One chunk (every in-memory matrix) gives its ``torch.var_mean`` as is, so a file
    read in one chunk standardizes exactly as its rows in memory. Several are merged in
    float64 by Chan, Golub & LeVeque's pairwise update (1979): with δ = m_b − m_a,
    ``m = m_a + δ·n_b/n`` and ``M2 = M2_a + M2_b + δ²·n_a·n_b/n``. A chunk's M2 is
    ``n_b`` times its ``var_mean`` variance (accumulated in float64 on the CPU), its mean
    a float64 sum: float32 chunk means of a column far from 0 (a timestamp) would lose
    the spread between chunks. A constant column gets scale 1: its float64 chunk sums
    are exact (below 2**29 rows a chunk), so its chunk means agree and its M2 is 0.
    """
    count, mean, m2 = 0, np.zeros(0), np.zeros(0)
    first: tuple[torch.Tensor, torch.Tensor] | None = None
    n_chunks = 0
    for chunk in chunks:
        var_c, mean_c = torch.var_mean(_tensor(chunk, "cpu"), dim=0, correction=0)
        n_b = len(chunk)
        mean_b = chunk.sum(axis=0, dtype=np.float64) / n_b
        m2_b = var_c.double().numpy() * n_b
        if n_chunks == 0:
            first = (var_c, mean_c)
            count, mean, m2 = n_b, mean_b, m2_b
        else:
            total = count + n_b
            delta = mean_b - mean
            mean = mean + delta * (n_b / total)
            m2 = m2 + m2_b + delta**2 * (count * n_b / total)
            count = total
        n_chunks += 1
        # Freed before the loop reads the next chunk: one chunk in memory, not two.
        del chunk
    if n_chunks == 1:
        assert first is not None
        var, x_mean = first[0], first[1].numpy()
    else:
        var, x_mean = torch.from_numpy((m2 / count).astype(np.float32)), mean.astype(np.float32)
    x_std = var.sqrt().numpy()
    x_std[x_std == 0] = 1.0
    return x_mean, x_std


def _check_matrix(
    X: Any, name: str, n_features: int | None = None, where: str = ""
) -> Float32Array:
    """A C-contiguous float32 2-D matrix (copied only if needed), finite.

    ``where``: the place of a chunk read from a file, said in the NaN error.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise SchemaError(f"{name} must be a 2-D matrix (rows, features); got shape {X.shape}.")
    if n_features is not None and X.shape[1] != n_features:
        raise SchemaError(
            f"{name} has {X.shape[1]} features, but the MLP was trained on {n_features}."
        )
    if not np.isfinite(X).all():
        raise SchemaError(
            f"{name} contains NaN or infinite values{where}; impute them first "
            f"(FeatureSpec(missing='mean') does it with training statistics)."
        )
    return X


def _check_training_rows(
    X: Any,
    y: Any,
    sample_weight: Any,
    loss: str,
    x_name: str = "X",
    y_name: str = "y",
    n_features: int | None = None,
) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """Validate one set of training or validation rows; y in float64, weights or None.

    A :class:`MatrixFile` X is checked here for its width only; its values are checked a
    chunk at a time as they are read (:func:`_read_rows`).
    """
    if X is None or y is None:
        raise SchemaError(f"Pass both {x_name} and {y_name}, or neither.")
    if isinstance(X, MatrixFile):
        if n_features is not None and X.n_cols != n_features:
            raise SchemaError(
                f"{x_name} has {X.n_cols} features, but the MLP was trained on {n_features}."
            )
    else:
        X = _check_matrix(X, x_name, n_features)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (len(X),):
        raise SchemaError(
            f"{y_name} must be 1-D with one value per row of {x_name} ({len(X)}); got shape "
            f"{y.shape}."
        )
    if len(X) == 0:
        raise SchemaError(f"{x_name} has no rows.")
    if not np.isfinite(y).all():
        raise SchemaError(f"{y_name} contains NaN or infinite values.")
    if loss == "bce" and not ((y >= 0) & (y <= 1)).all():
        raise SchemaError(
            f"loss='bce' needs {y_name} in [0, 1] (0/1 events); got values in "
            f"[{y.min()}, {y.max()}]. Use loss='mse' for a regression target."
        )
    if sample_weight is None:
        return X, y, None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (len(X),):
        raise SchemaError(
            f"sample_weight must be 1-D with one value per row of X ({len(X)}); got shape "
            f"{w.shape}."
        )
    if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
        raise SchemaError(
            "sample_weight must be finite and non-negative with a positive sum; got "
            f"min {w.min()}, sum {w.sum()}."
        )
    return X, y, w


@contextmanager
def _torch_threads(n_threads: int | None) -> Iterator[None]:
    """Set torch's CPU thread count for the block and restore it after.

    The setting is process-wide: fits running in parallel threads share it.
    """
    if n_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def _private_rng(device: str) -> Iterator[None]:
    """Restore torch's global random state after the block, so seeding a fit leaves the
    caller's random streams (CPU, and the current GPU when training there) untouched."""
    devices = [torch.cuda.current_device()] if device == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield
