"""``rmlite monitor``: score newly ingested episodes, record accuracy, drift and alerts.

Registered by :func:`rmlite.cli.build_parser`. Nothing heavy is imported until the
command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from rmlite.cli._common import (
    EXIT_OK,
    Command,
    _console,
    _count,
    _emit_json,
    _print_warnings,
    _printed_warnings,
)

EXIT_ALERTS = 3
"""Exit status of ``rmlite monitor --fail-on ...`` when a pass raised what it names."""


def parse_thresholds(pairs: list[str]) -> dict[str, Any]:
    """``["psi_alert=0.3", "overfit_band=1.1,2"]`` → ``{"psi_alert": 0.3, ...}``."""
    from rmlite.exceptions import ParameterError

    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise ParameterError(f"--threshold {pair!r}: expected NAME=VALUE, e.g. psi_alert=0.3")
        try:
            if "," in text:
                values[name.strip()] = tuple(float(v) for v in text.split(","))
            else:
                number = float(text)
                values[name.strip()] = (
                    int(number) if number.is_integer() and "." not in text else number
                )
        except ValueError as exc:
            raise ParameterError(
                f"--threshold {pair!r}: {text!r} is not a number (or LOW,HIGH for overfit_band)"
            ) from exc
    return values


def cmd_monitor(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore
    from rmlite.evaluation.drift import Thresholds
    from rmlite.evaluation.monitor import MonitorPass, monitor

    thresholds = Thresholds.from_dict(parse_thresholds(args.threshold or []))
    if not args.json:
        # Alerts go to the log (stderr) as they are raised; the summary to stdout.
        logging.basicConfig(level=logging.WARNING, format="[rmlite] %(message)s", stream=sys.stderr)

    def report(result: MonitorPass | None) -> None:
        if args.json:
            _emit_json(result.to_dict() if result is not None else {"pass_id": None})
            sys.stdout.flush()
            return
        console = _console()
        if result is None:
            console.print(f"{args.dataset}: no new episodes since the last pass.")
            return
        w = result.window
        metrics = ", ".join(
            f"{k} {v:.4g}" for k, v in w.metrics.items() if k in ("r2", "rmse", "mae", "auc", "ece")
        )
        console.print(
            f"pass {result.pass_id}: {len(w.episodes)} episodes, {w.rows:,} rows "
            f"(ingests {result.first_ingest_id}–{result.last_ingest_id}); {metrics or 'no rewards'}; "
            f"{w.dataset_drift['drifted']}/{w.dataset_drift['features']} features drifted; "
            f"overfitting: {w.overfitting['status']}; {len(w.alerts)} alert(s) "
            f"[{result.seconds:.1f} s]"
        )
        _print_warnings(w.warnings)

    with _printed_warnings():
        done = monitor(
            LogStore(args.db),
            args.model,
            args.dataset,
            thresholds,
            every=args.every,
            passes=args.passes,
            on_pass=report,
        )
    failing = {"alert": {"alert"}, "warn": {"alert", "warn"}}.get(args.fail_on or "", set())
    if any(a["severity"] in failing for p in done for a in p.window.alerts):
        return EXIT_ALERTS
    return EXIT_OK


def add_commands(sub: Any, command: Command) -> None:
    """Register ``monitor`` with the ``rmlite`` parser."""
    p = command(
        "monitor",
        cmd_monitor,
        "Score episodes ingested since the last pass against ground truth; record metrics, "
        "drift and alerts in the store.",
        "rmlite monitor --model models/pendulum --dataset pendulum --every 60 "
        "--threshold psi_alert=0.3",
    )
    p.add_argument("--model", required=True, help="model folder saved by `rmlite train`")
    p.add_argument("--dataset", required=True, help="dataset whose new episodes to score")
    p.add_argument(
        "--every",
        type=float,
        default=None,
        metavar="SECONDS",
        help="keep running, one pass every SECONDS (default: one pass, then exit)",
    )
    p.add_argument(
        "--passes", type=_count, default=None, help="with --every: stop after this many passes"
    )
    p.add_argument(
        "--fail-on",
        choices=["alert", "warn"],
        default=None,
        help=f"exit with status {EXIT_ALERTS} when a pass raised an alert (or a warning too): "
        "for cron jobs and CI",
    )
    p.add_argument(
        "--threshold",
        action="append",
        metavar="NAME=VALUE",
        help="override a threshold (repeatable): psi_warn=0.1, psi_alert=0.25, "
        "wasserstein=0.1, ks_alpha=0.05, ks_max_rows=1000, min_episodes=10, drift_share=0.5, "
        "bins=10, bootstrap=200 (0: fixed limits, not sized to the window), "
        "warn_quantile=0.95, alert_alpha=0.01, rmse_warn=1.25, rmse_alert=1.5, r2_drop=0.05, "
        "overfit_band=1.1,1.5, overfit_min_gap=0.01, overfit_min_rise=0.05",
    )
