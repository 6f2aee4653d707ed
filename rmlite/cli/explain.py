"""``rmlite explain``: the features a saved tree model leans on, by mean |SHAP| on its hold-out.

Registered by :func:`rmlite.cli.build_parser`. Nothing heavy is imported until the
command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from rmlite.cli._common import EXIT_OK, Command, _console, _emit_json, _table


def cmd_explain(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore
    from rmlite.evaluation.explain import explain

    table = explain(LogStore(args.db), args.model, args.dataset, top=args.top)
    if args.json:
        _emit_json({"model": args.model, "dataset": args.dataset, "features": table.to_dicts()})
        return EXIT_OK
    _table(
        table,
        title=f"{args.model} on {args.dataset}: top {table.height} features by mean |SHAP| "
        f"(held-out episodes)",
    )
    _console().print(
        "mean_abs_shap: how far the feature moves a prediction on average (reward units; "
        "log-odds for event models); share: its part of the total."
    )
    return EXIT_OK


def add_commands(sub: Any, command: Command) -> None:
    """Register ``explain`` with the ``rmlite`` parser."""
    p = command(
        "explain",
        cmd_explain,
        "Rank a saved tree model's features by mean |SHAP| (the boosters' TreeSHAP) on the "
        "dataset's episodes it was not trained on.",
        "rmlite explain --model models/pendulum --dataset pendulum --top 10",
    )
    p.add_argument("--model", required=True, help="model folder written by rmlite train")
    p.add_argument("--dataset", required=True, help="dataset whose held-out episodes to explain")
    p.add_argument("--top", type=int, default=20, help="how many features to show")
