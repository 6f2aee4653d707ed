"""ONNX graphs of reward models: the feature recipe, the members and the target scaling.

:func:`reward_graph` builds one ONNX model that takes the raw ``obs``, ``action`` and
``next_obs`` vectors (float32, any batch size; ``step`` too when the features use it)
and returns ``reward`` in the logged scale:

1. the feature recipe of :func:`rmlite.data.features.features_from_arrays`: infinities
   as missing, the blocks side by side (obs, action, next_obs, next_obs - obs, step,
   progress), imputation with the training fill values and the missing-value indicators;
2. each ensemble member: LightGBM and XGBoost boosters through onnxmltools
   (``TreeEnsembleRegressor``), the MLP rebuilt from its ``state_dict`` as ``Gemm`` and
   activation nodes around its input and target standardization;
3. the members' mean, then the inverse of the target scaling.

Event models give the event probability (each member's calibrated as
``RewardClassifier.predict_proba`` does, then their mean). Needs the ``onnx`` extra (onnx,
onnxmltools; onnxruntime to run the graph).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from rmlite.data.feature_spec import FeatureSpec, FittedStats, feature_names

OPSET = 15
"""Opset of the default ONNX domain: the highest that onnxmltools' tree converters write."""
IR_VERSION = 8
"""IR version matching opset 15, read by every onnxruntime since 1.10."""


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            "ONNX export needs onnx and onnxmltools: pip install 'rmlite[onnx]'."
        ) from exc
    return onnx


class _Graph:
    """Nodes and constants of a graph under construction, with unique names."""

    def __init__(self) -> None:
        self.onnx = _onnx()
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.opsets: dict[str, int] = {"": OPSET}
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, stem: str, value: Any, dtype: Any = np.float32) -> str:
        name = self.name(stem)
        self.initializers.append(
            self.onnx.numpy_helper.from_array(np.asarray(value, dtype=dtype), name)
        )
        return name

    def op(self, op_type: str, inputs: list[str], stem: str = "", **attrs: Any) -> str:
        out = self.name(stem or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [out], **attrs))
        return out


def _recipe(g: _Graph, spec: FeatureSpec, stats: FittedStats) -> tuple[list[Any], str]:
    """Graph inputs and the feature matrix they make, as features_from_arrays does."""
    helper, TP = g.onnx.helper, g.onnx.TensorProto
    inputs = [
        helper.make_tensor_value_info("obs", TP.FLOAT, ["batch", stats.obs_dim]),
        helper.make_tensor_value_info("action", TP.FLOAT, ["batch", stats.action_dim]),
        helper.make_tensor_value_info("next_obs", TP.FLOAT, ["batch", stats.obs_dim]),
    ]
    nan = g.const("nan", np.float32(np.nan))

    def clean(name: str) -> str:  # infinities count as missing, as in build_features
        return g.op("Where", [g.op("IsInf", [name]), nan, name], f"{name}_clean")

    cleaned: dict[str, str] = {}

    def block(name: str) -> str:  # each input cleaned once, and only if the spec reads it
        if name not in cleaned:
            cleaned[name] = clean(name)
        return cleaned[name]

    blocks: list[str] = []
    if spec.obs:
        blocks.append(block("obs"))
    if spec.action:
        blocks.append(block("action"))
    if spec.next_obs:
        blocks.append(block("next_obs"))
    if spec.delta:
        blocks.append(g.op("Sub", [block("next_obs"), block("obs")], "delta"))
    if spec.step or spec.time_limit is not None:
        inputs.append(helper.make_tensor_value_info("step", TP.FLOAT, ["batch"]))
        column = g.op("Unsqueeze", ["step", g.const("axis", [1], np.int64)], "step_column")
        if spec.step:
            blocks.append(column)
        if spec.time_limit is not None:
            limit = g.const("time_limit", np.float32(spec.time_limit))
            blocks.append(g.op("Div", [column, limit], "progress"))
    X = g.op("Concat", blocks, "features", axis=1) if len(blocks) > 1 else blocks[0]
    names = feature_names(spec, stats.obs_dim, stats.action_dim)
    if spec.missing != "drop" and stats.fill_values is not None:
        indicators = None
        if stats.indicator_columns:
            wanted = [names.index(c[: -len("_missing")]) for c in stats.indicator_columns]
            picked = g.op("Gather", [X, g.const("indicator_columns", wanted, np.int64)], axis=1)
            indicators = g.op("Cast", [g.op("IsNaN", [picked])], "indicators", to=TP.FLOAT)
        fill = g.const("fill_values", np.asarray(stats.fill_values, np.float32)[None, :])
        X = g.op("Where", [g.op("IsNaN", [X]), fill, X], "imputed")
        if indicators is not None:
            X = g.op("Concat", [X, indicators], "features_with_indicators", axis=1)
    return inputs, X


def _tree_member(g: _Graph, backend: str, booster: Any, n_features: int, X: str, k: int) -> str:
    """One booster as onnxmltools' graph, spliced in; returns its (n,) output."""
    try:
        from onnxmltools import convert_lightgbm, convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError as exc:
        raise ImportError(
            "ONNX export of tree models needs onnxmltools: pip install 'rmlite[onnx]'."
        ) from exc
    from rmlite.models.gbm import best_iteration

    n_trees = best_iteration(backend, booster)  # type: ignore[arg-type]
    types = [("features", FloatTensorType([None, n_features]))]
    if backend == "lightgbm":
        import lightgbm as lgb

        if n_trees is not None:  # predict with early stopping's best trees, as the booster does
            booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=n_trees))
        member = convert_lightgbm(booster, initial_types=types, target_opset=OPSET, zipmap=False)
    else:
        trees = booster if n_trees is None else booster[:n_trees]
        member = convert_xgboost(trees, initial_types=types, target_opset=OPSET)
    graph = g.onnx.compose.add_prefix_graph(member.graph, f"member{k}_")
    g.nodes.append(g.onnx.helper.make_node("Identity", [X], [graph.input[0].name]))
    g.nodes.extend(graph.node)
    g.initializers.extend(graph.initializer)
    for opset in member.opset_import:
        if opset.domain not in ("", "ai.onnx"):
            g.opsets[opset.domain] = max(g.opsets.get(opset.domain, 1), opset.version)
    if len(graph.output) == 2:  # a binary classifier: (label, probabilities of 0 and 1)
        positive = g.const("positive", 1, np.int64)
        return g.op("Gather", [graph.output[1].name, positive], "member", axis=1)
    return g.op("Reshape", [graph.output[0].name, g.const("flat", [-1], np.int64)], "member")


def _mlp_member(g: _Graph, model: Any, X: str) -> str:
    """The MLP of :func:`rmlite.models.mlp.build_network` as Gemm/activation nodes."""
    x_mean = g.const("x_mean", np.asarray(model.x_mean, np.float32)[None, :])
    x_std = g.const("x_std", np.asarray(model.x_std, np.float32)[None, :])
    h = g.op("Div", [g.op("Sub", [X, x_mean]), x_std], "standardized")
    weights = sorted(
        (int(key.split(".")[0]), key) for key in model.state_dict if key.endswith(".weight")
    )
    activation = model.config.activation
    for i, (index, key) in enumerate(weights):
        w = model.state_dict[key].detach().cpu().numpy().astype(np.float32)
        b = model.state_dict[f"{index}.bias"].detach().cpu().numpy().astype(np.float32)
        h = g.op("Gemm", [h, g.const("weight", w), g.const("bias", b)], "linear", transB=1)
        if i < len(weights) - 1:
            h = _activation(g, activation, h)
    f = g.op("Reshape", [h, g.const("flat", [-1], np.int64)], "mlp_out")
    if model.config.loss == "mse":  # the network predicts the standardized target
        f = g.op("Add", [g.op("Mul", [f, g.const("y_std", np.float32(model.y_std))]),
                         g.const("y_mean", np.float32(model.y_mean))], "member")  # fmt: skip
    else:  # bce: the network's output is a logit
        f = g.op("Sigmoid", [f], "member")
    return f


def _platt(g: _Graph, p: str, a: float, b: float, k: int) -> str:
    """RewardClassifier's calibration of member ``k``: ``σ(a·logit(p) + b)`` (Platt scaling)."""
    eps = 1e-7  # float32: keeps logit(p) finite where a member says 0 or 1
    q = g.op(
        "Clip",
        [p, g.const(f"clip_lo_{k}", np.float32(eps)), g.const(f"clip_hi_{k}", np.float32(1 - eps))],
    )
    one = g.const(f"one_{k}", np.float32(1.0))
    z = g.op("Sub", [g.op("Log", [q]), g.op("Log", [g.op("Sub", [one, q])])])
    f = g.op(
        "Add",
        [
            g.op("Mul", [z, g.const(f"platt_a_{k}", np.float32(a))]),
            g.const(f"platt_b_{k}", np.float32(b)),
        ],
    )
    return g.op("Sigmoid", [f], "calibrated")


def _activation(g: _Graph, name: str, h: str) -> str:
    if name == "relu":
        return g.op("Relu", [h])
    if name == "tanh":
        return g.op("Tanh", [h])
    if name == "elu":
        return g.op("Elu", [h], alpha=1.0)
    if name == "silu":  # x * sigmoid(x)
        return g.op("Mul", [h, g.op("Sigmoid", [h])], "silu")
    if name == "gelu":  # torch's exact GELU: x/2 * (1 + erf(x / sqrt 2)); Gelu is opset 20
        scaled = g.op("Mul", [h, g.const("inv_sqrt2", np.float32(1 / np.sqrt(2.0)))])
        one_plus = g.op("Add", [g.op("Erf", [scaled]), g.const("one", np.float32(1.0))])
        return g.op("Mul", [g.op("Mul", [h, one_plus]), g.const("half", np.float32(0.5))], "gelu")
    raise ValueError(f"no ONNX form for the MLP activation {name!r}")


def reward_graph(
    backend: str,
    members: list[Any],
    n_features: int,
    spec: FeatureSpec,
    stats: FittedStats,
    *,
    metadata: dict[str, Any] | None = None,
    calibration: Sequence[tuple[float, float]] | None = None,
) -> Any:
    """One ONNX model from raw (obs, action, next_obs[, step]) to the reward (see module doc).

    Parameters
    ----------
    backend
        ``"lightgbm"``, ``"xgboost"`` or ``"mlp"``.
    members
        The ensemble's boosters or :class:`~rmlite.models.mlp.MLPModel` s (their mean is
        the output).
    n_features
        Width of the feature matrix the members read.
    spec, stats
        The model's feature spec and fitted statistics (no lags).
    metadata
        Strings stored in the model's ``metadata_props`` (JSON for non-strings).
    calibration
        For an event model (binary members): its ``calibration_``, one Platt map ``(a, b)``
        per member; the output is then the event probability, each member's calibrated as
        ``RewardClassifier.predict_proba`` does, and no target scaling applies.
    """
    onnx = _onnx()
    if spec.lags:
        raise ValueError(f"FeatureSpec(lags={spec.lags}) needs each episode's history")
    g = _Graph()
    inputs, X = _recipe(g, spec, stats)
    outputs = []
    for k, member in enumerate(members):
        if backend == "mlp":
            outputs.append(_mlp_member(g, member, X))
        else:
            outputs.append(_tree_member(g, backend, member, n_features, X, k))
    if calibration is not None:
        outputs = [
            p if tuple(ab) == (1.0, 0.0) else _platt(g, p, float(ab[0]), float(ab[1]), k)
            for k, (p, ab) in enumerate(zip(outputs, calibration, strict=True))
        ]
    mean = outputs[0] if len(outputs) == 1 else g.op("Mean", outputs, "ensemble_mean")
    if calibration is not None:  # an event probability: no target scaling
        g.nodes.append(onnx.helper.make_node("Identity", [mean], ["reward"]))
    else:  # back to the logged scale: scaling (standard, min-max, robust) was preprocessing
        scale = g.const("target_scale", np.float32(stats.target_scale))
        center = g.const("target_center", np.float32(stats.target_center))
        g.nodes.append(
            onnx.helper.make_node("Add", [g.op("Mul", [mean, scale]), center], ["reward"])
        )
    output = onnx.helper.make_tensor_value_info("reward", onnx.TensorProto.FLOAT, ["batch"])
    graph = onnx.helper.make_graph(g.nodes, "rmlite_reward", inputs, [output], g.initializers)
    model = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in sorted(g.opsets.items())],
        producer_name="rmlite",
    )
    model.ir_version = IR_VERSION
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    onnx.checker.check_model(model)
    return model
