"""``rmlite ingest``, ``check``, ``datasets``, ``sql`` and ``features``: the store's data.

Registered by :func:`rmlite.cli.build_parser`. Nothing heavy is imported until a command
runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from rmlite.cli._common import (
    EXIT_OK,
    _add_dataclass_flags,
    _bad_input,
    _cell,
    _console,
    _emit_json,
    _from_args,
    _Progress,
    _table,
    progress_enabled,
)

Command = Callable[..., argparse.ArgumentParser]

_MAPPING_FLAGS = {
    "episode": "--episode-col",
    "step": "--step-col",
    "obs": "--obs-cols",
    "action": "--action-cols",
    "reward": "--reward-col",
    "next_obs": "--next-obs-cols",
    "terminated": "--terminated-col",
    "truncated": "--truncated-col",
    "timestamp": "--timestamp-col",
}


def cmd_ingest(args: argparse.Namespace) -> int:
    from rmlite.data.schema import ColumnMapping
    from rmlite.data.store import LogStore

    mapping = _from_args(ColumnMapping, args)
    progress = _Progress(enabled=progress_enabled(args))
    try:
        report = LogStore(args.db).ingest(
            args.sources,
            dataset=args.dataset,
            mapping=mapping,
            on_error=args.on_error,
            progress=progress,
        )
    finally:
        progress.stop()
    if args.json:
        _emit_json(report.to_dict())
    else:
        _console().print(str(report))
        for warning in report.warnings:
            _console(stderr=True).print(f"[yellow]warning:[/] {warning}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    import polars as pl

    from rmlite.data.store import LogStore

    report = LogStore(args.db).check(args.dataset, next_obs_tolerance=args.tolerance)
    if args.json:
        _emit_json(report.to_dict())
        return EXIT_OK
    rows = [
        (section, k, _cell(v))
        for section, values in (
            ("episodes", report.episodes),
            ("values", report.values),
            ("next_obs", report.next_obs),
        )
        for k, v in values.items()
    ]
    _table(
        pl.DataFrame(rows, schema=["section", "check", "value"], orient="row"),
        title=f"check {args.dataset}",
    )
    if report.problems:
        _console().print("[bold yellow]problems:[/]")
        for problem in report.problems:
            _console().print(f"  - {problem}")
    else:
        _console().print("[green]no problems found[/]")
    return EXIT_OK


def cmd_datasets(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore

    frame = LogStore(args.db).datasets()
    if args.json:
        _emit_json(frame.to_dicts())
    elif frame.height == 0:
        _console().print("no datasets yet")
    else:
        _table(frame)
    return EXIT_OK


def cmd_sql(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore

    frame = LogStore(args.db).sql(args.query, write=args.write)
    fmt = args.format or ("json" if args.json else None)
    if args.out:
        fmt = fmt or ("parquet" if args.out.endswith(".parquet") else "csv")
        if fmt == "parquet":
            frame.write_parquet(args.out)
        elif fmt == "json":
            frame.write_ndjson(args.out)
        else:
            frame.write_csv(args.out)
        print(f"{frame.height} rows written to {args.out}", file=sys.stderr)
    elif fmt == "csv":
        sys.stdout.write(frame.write_csv())
    elif fmt == "json":
        _emit_json(frame.to_dicts())
    elif fmt == "parquet":
        raise SystemExit(_bad_input("rmlite sql: --format parquet needs --out FILE."))
    else:
        _table(frame)
    return EXIT_OK


def cmd_features(args: argparse.Namespace) -> int:
    from rmlite.data.features import FeatureSpec
    from rmlite.data.store import LogStore

    spec = _from_args(FeatureSpec, args)
    started = time.perf_counter()
    frame = LogStore(args.db).features(args.dataset, spec)
    seconds = time.perf_counter() - started
    summary = {
        "dataset": args.dataset,
        "rows": len(frame),
        "features": len(frame.feature_names),
        "feature_names": frame.feature_names,
        "target": spec.target,
        "target_mean": float(frame.y.mean()),
        "target_std": float(frame.y.std()),
        "episodes": len(set(frame.groups.tolist())),
        "seconds": round(seconds, 3),
        "spec": spec.to_dict(),
        "stats": frame.stats.to_dict(),
        "out": args.out,
    }
    if args.out:
        out = frame.to_polars()
        if args.out.endswith(".csv"):
            out.write_csv(args.out)
        else:
            out.write_parquet(args.out)
    if args.json:
        _emit_json(summary)
    else:
        _console().print(
            f"{args.dataset}: {summary['rows']:,} rows x {summary['features']} features, "
            f"target {spec.target} (mean {summary['target_mean']:.4g}, std "
            f"{summary['target_std']:.4g}) in {seconds:.2f} s"
            + (f"; written to {args.out}" if args.out else "")
        )
    return EXIT_OK


def add_commands(sub: Any, command: Command) -> None:
    """Register ``ingest``, ``check``, ``datasets``, ``sql`` and ``features``."""
    p = command(
        "ingest",
        cmd_ingest,
        "Ingest logs into the store, whole or not at all.",
        "rmlite ingest runs/*.parquet --dataset walker --reward-col r --obs-cols 'state_*'",
    )
    p.add_argument(
        "sources", nargs="+", help="files, globs or folders (Parquet, CSV, JSONL, Arrow IPC)"
    )
    p.add_argument("--dataset", required=True, help="dataset to add the transitions to")
    p.add_argument(
        "--on-error",
        choices=["raise", "quarantine"],
        default="raise",
        help="raise: refuse the whole ingest on a bad row; quarantine: land good rows, keep bad ones in the 'rejected' table",
    )
    from rmlite.data.schema import ColumnMapping

    _add_dataclass_flags(p, ColumnMapping, _MAPPING_FLAGS)

    p = command(
        "check",
        cmd_check,
        "Check a dataset's log: step numbering, episode ends, next_obs, NaN/inf, rewards.",
        "rmlite check --dataset walker --json",
    )
    p.add_argument("--dataset", required=True)
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-6,
        help="largest |next_obs - next step's obs| that counts as equal",
    )

    command(
        "datasets",
        cmd_datasets,
        "List datasets with episodes, transitions and dimensions.",
        "rmlite datasets",
    )

    p = command(
        "sql",
        cmd_sql,
        "Run SQL on the store (read-only unless --write).",
        'rmlite sql "SELECT dataset, avg(reward) FROM transitions GROUP BY 1" --format csv',
    )
    p.add_argument("query")
    p.add_argument(
        "--format",
        choices=["table", "csv", "json", "parquet"],
        default=None,
        help="output format (default: table; from --out's ending when writing a file)",
    )
    p.add_argument(
        "--out", default=None, help="write the result to this file instead of printing it"
    )
    p.add_argument(
        "--write",
        action="store_true",
        help="open the store writable (for CREATE VIEW, UPDATE, ...)",
    )

    from rmlite.data.feature_spec import FeatureSpec

    p = command(
        "features",
        cmd_features,
        "Build features and a target from a dataset.",
        "rmlite features --dataset walker --target return --gamma 0.99 --out features.parquet",
    )
    p.add_argument("--dataset", required=True)
    p.add_argument(
        "--out", default=None, help="write keys, features and target to Parquet (or .csv)"
    )
    _add_dataclass_flags(
        p, FeatureSpec, {"obs": "--obs", "action": "--action", "step": "--step-feature"}
    )
