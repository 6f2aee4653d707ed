"""Search spaces: the dimension types, each backend's default space, and parsing them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rmlite.exceptions import ParameterError

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Float:
    """A float parameter drawn from ``[low, high]`` (log-uniform when ``log``)."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Int:
    """An int parameter drawn from ``[low, high]`` (log-uniform when ``log``)."""

    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class Choice:
    """A parameter drawn from a list of values."""

    choices: tuple[Any, ...]


Dimension = Float | Int | Choice
"""One dimension of a search space; any other value in a space is fixed, not searched."""

# What an experienced practitioner searches first. Learning rates and counts that span
# orders of magnitude are log-uniform. LightGBM's bagging_fraction acts only with
# bagging_freq > 0, hence the fixed 1.
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "lightgbm": {
        "learning_rate": Float(0.01, 0.3, log=True),
        "num_leaves": Int(8, 256, log=True),
        "min_child_samples": Int(5, 200, log=True),
        "lambda_l2": Float(1e-3, 10.0, log=True),
        "feature_fraction": Float(0.5, 1.0),
        "bagging_fraction": Float(0.5, 1.0),
        "bagging_freq": 1,
    },
    "xgboost": {
        "learning_rate": Float(0.01, 0.3, log=True),
        "max_depth": Int(3, 10),
        "min_child_weight": Float(0.5, 50.0, log=True),
        "reg_lambda": Float(1e-3, 10.0, log=True),
        "subsample": Float(0.5, 1.0),
        "colsample_bytree": Float(0.5, 1.0),
    },
    "mlp": {
        "learning_rate": Float(1e-4, 1e-2, log=True),
        "mlp_width": Choice((64, 128, 256, 512)),
        "mlp_depth": Int(1, 4),
        "dropout": Float(0.0, 0.3),
        "weight_decay": Float(1e-6, 1e-2, log=True),
    },
}
"""Default search space per backend; ``mlp_width`` x ``mlp_depth`` make ``hidden_sizes``."""

SPEC_SPACE: dict[str, Any] = {"gamma": Choice((0.9, 0.95, 0.99)), "next_obs": Choice((False, True))}
"""The feature spec's own choices that can join the search (``tune_dataset(search_spec=True)``)."""


def search_space(backend: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The default space of a backend with ``overrides`` applied.

    An override is a :class:`Float`, :class:`Int` or :class:`Choice` (searched), an Optuna
    distribution, ``None`` (drop the default dimension), or any other value (fixed).

    Examples
    --------
    >>> space = search_space("lightgbm", {"num_leaves": Int(8, 64), "lambda_l2": None})
    >>> space["num_leaves"], "lambda_l2" in space
    (Int(low=8, high=64, log=False), False)
    """
    if backend not in DEFAULT_SPACES:
        raise ParameterError(
            f"The 'backend' parameter must be one of {sorted(DEFAULT_SPACES)}. Got {backend!r}."
        )
    space = dict(DEFAULT_SPACES[backend])
    for name, value in (overrides or {}).items():
        if value is None:
            space.pop(name, None)
        else:
            space[name] = _from_optuna(value)
    return space


def parse_dimension(text: str) -> Any:
    """A search-space value from the command line.

    ``float:LOW:HIGH[:log]``, ``int:LOW:HIGH[:log]``, ``A,B,C`` (a choice), ``none``
    (drop the dimension) or one value (fixed). Values are JSON where they parse as JSON.

    Examples
    --------
    >>> parse_dimension("float:0.01:0.3:log"), parse_dimension("31,63,127")
    (Float(low=0.01, high=0.3, log=True), Choice(choices=(31, 63, 127)))
    >>> parse_dimension("7")
    7
    """
    import json

    def value(raw: str) -> Any:
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw

    kind, _, rest = text.partition(":")
    if kind in ("float", "int") and rest:
        parts = rest.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise ParameterError(
                f"search-space value {text!r}: expected {kind}:LOW:HIGH or {kind}:LOW:HIGH:log."
            )
        log = len(parts) == 3
        try:
            if kind == "float":
                return Float(float(parts[0]), float(parts[1]), log)
            return Int(int(parts[0]), int(parts[1]), log)
        except ValueError as exc:
            raise ParameterError(f"search-space value {text!r}: {exc}") from exc
    if text.lower() == "none":
        return None
    if "," in text:
        return Choice(tuple(value(v) for v in text.split(",")))
    return value(text)


def _from_optuna(value: Any) -> Any:
    module = type(value).__module__ or ""
    if not module.startswith("optuna"):
        return value
    name = type(value).__name__
    if name == "FloatDistribution":
        return Float(value.low, value.high, value.log)
    if name == "IntDistribution":
        return Int(value.low, value.high, value.log)
    if name == "CategoricalDistribution":
        return Choice(tuple(value.choices))
    raise ParameterError(f"search space: unsupported Optuna distribution {name}.")


def _suggest(trial: optuna.Trial, space: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, dim in space.items():
        if isinstance(dim, Float):
            out[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
        elif isinstance(dim, Int):
            out[name] = trial.suggest_int(name, dim.low, dim.high, log=dim.log)
        elif isinstance(dim, Choice):
            out[name] = trial.suggest_categorical(name, list(dim.choices))
        else:
            out[name] = dim
    return out


_SPEC_FIELDS = frozenset(
    {
        "obs", "action", "next_obs", "delta", "step", "time_limit", "lags", "gamma",
        "truncation", "tail_tolerance", "event_threshold", "missing", "missing_indicator",
        "scaling",
    }
)  # fmt: skip


def split_params(
    base: Mapping[str, Any], values: Mapping[str, Any], estimator_params: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Estimator parameters and feature-spec overrides of one point of a search space.

    Estimator parameters (``learning_rate``, ``dropout``, ...) are set directly,
    ``mlp_width``/``mlp_depth`` become ``hidden_sizes``, spec fields go to the spec, and
    anything else is a native engine parameter in ``backend_params``.

    Examples
    --------
    >>> split_params({"backend": "mlp"}, {"mlp_width": 64, "mlp_depth": 2, "gamma": 0.9},
    ...              ["backend", "hidden_sizes"])
    ({'backend': 'mlp', 'hidden_sizes': (64, 64)}, {'gamma': 0.9})
    """
    params = dict(base)
    native = dict(params.get("backend_params") or {})
    spec: dict[str, Any] = {}
    width, depth = values.get("mlp_width"), values.get("mlp_depth")
    for name, value in values.items():
        if name in ("mlp_width", "mlp_depth"):
            continue
        if name in _SPEC_FIELDS:
            spec[name] = value
        elif name in estimator_params:
            params[name] = value
        else:
            native[name] = value
    if width is not None or depth is not None:
        current = tuple(params.get("hidden_sizes") or (256, 256))
        w = int(width) if width is not None else (current[0] if current else 256)
        d = int(depth) if depth is not None else len(current)
        params["hidden_sizes"] = (w,) * d
    if native:
        params["backend_params"] = native
    return params, spec
