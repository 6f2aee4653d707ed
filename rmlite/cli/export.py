"""``rmlite export``: a saved reward model as one ONNX graph (obs, action, next_obs -> reward).

Registered by :func:`rmlite.cli.build_parser`. Nothing heavy is imported until the
command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from rmlite.cli._common import EXIT_BAD_INPUT, EXIT_OK, Command, _console, _emit_json


def cmd_export(args: argparse.Namespace) -> int:
    from rmlite.rl.export import export_onnx

    path = export_onnx(args.model, args.out)
    result: dict[str, Any] = {"model": args.model, "format": args.format, "out": str(path)}
    if args.check_dataset:
        result["check"] = _check(args, path)
    if args.json:
        _emit_json(result)
    else:
        _console().print(f"{args.model} -> {path} ({args.format})")
        if "check" in result:
            c = result["check"]
            _console().print(
                f"checked with onnxruntime on {c['rows_compared']:,} transitions of "
                f"{args.check_dataset}: max abs error {c['max_abs_error']:.3g} "
                f"({c['relative_error']:.3g} of the reward scale {c['reward_scale']:.3g})"
            )
    ok = "check" not in result or result["check"]["relative_error"] <= 1e-4
    return EXIT_OK if ok else EXIT_BAD_INPUT


def _check(args: argparse.Namespace, path: Any) -> dict[str, Any]:
    import numpy as np

    from rmlite.data import schema as S
    from rmlite.data.features import vectors
    from rmlite.data.store import LogStore
    from rmlite.rl.export import check_onnx

    table = LogStore(args.db).read_arrow(
        args.check_dataset, [S.EPISODE, S.STEP, S.OBS, S.ACTION, S.NEXT_OBS]
    )
    obs_dim = len(table.column(S.OBS)[0])
    act_dim = len(table.column(S.ACTION)[0])
    obs = vectors(table.column(S.OBS), obs_dim)
    next_obs = vectors(table.column(S.NEXT_OBS), obs_dim)
    keep = ~np.isnan(next_obs).all(axis=1)  # a last step logged without its next_obs
    step = table.column(S.STEP).to_numpy()
    return check_onnx(
        args.model,
        path,
        obs[keep],
        vectors(table.column(S.ACTION), act_dim)[keep],
        next_obs[keep],
        step[keep],
    )


def add_commands(sub: Any, command: Command) -> None:
    """Register ``export``."""
    p = command(
        "export",
        cmd_export,
        "Write a reward model as one ONNX graph: raw obs, action, next_obs in, reward out.",
        "rmlite export --model models/walker --format onnx --out walker-reward.onnx",
    )
    p.add_argument("--model", required=True, help="model folder (rmlite train)")
    p.add_argument(
        "--format", choices=["onnx"], default="onnx", help="file format (ONNX, opset 15)"
    )
    p.add_argument(
        "--out", default=None, help="file to write (default: beside the model folder, DIR.onnx)"
    )
    p.add_argument(
        "--check-dataset",
        default=None,
        metavar="NAME",
        help="run the graph with onnxruntime on this dataset of the store and compare it with "
        "the model's predictions (exit 2 if they differ by more than 1e-4 of the reward scale)",
    )
