"""``rmlite ingest``, ``check``, ``datasets``, ``sql`` and ``features``: the store's data.

Registered by :func:`rmlite.cli.build_parser`. Nothing heavy is imported until a command
runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rmlite.cli._common import (
    EXIT_OK,
    Command,
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

PREVIEW_ROWS = 40
"""Rows ``rmlite sql`` prints before the count, as DuckDB's own CLI does (--all: every row)."""

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
            stream=True if args.stream else None,
            memory_limit=args.memory_limit,
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


def _sql_text(args: argparse.Namespace) -> str:
    """The query: the argument, ``-`` for stdin, ``@FILE`` or ``--file FILE``."""
    if args.file is not None and args.query is not None:
        raise SystemExit(_bad_input("rmlite sql: give the query or --file, not both."))
    source = f"@{args.file}" if args.file is not None else args.query
    if source is None:
        raise SystemExit(
            _bad_input("rmlite sql: no query; pass it as an argument, '-' (stdin) or @FILE.")
        )
    if source == "-":
        return sys.stdin.read()
    if source.startswith("@"):
        try:
            with open(source[1:], encoding="utf-8") as f:
                return f.read()
        except OSError as exc:
            raise SystemExit(
                _bad_input(f"rmlite sql: {source[1:]}: cannot read the query ({exc.strerror}).")
            ) from exc
    return str(source)


def cmd_sql(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore

    if args.write:
        raise SystemExit(
            _bad_input(
                "rmlite sql never changes the store. To change it on purpose, use "
                "rmlite.LogStore(path).sql(query, write=True) in Python, or DuckDB itself "
                "(duckdb rmlite.duckdb)."
            )
        )
    query = _sql_text(args)
    store = LogStore(args.db)
    fmt = args.format or ("json" if args.json and not args.out else None)
    if args.out:
        if fmt == "table":
            raise SystemExit(_bad_input("rmlite sql: --format table cannot be written to --out."))
        rows = store.export(query, args.out, format=fmt)  # errors exit 2 (bad input)
        if args.json:
            _emit_json({"rows": rows, "out": args.out})
        else:
            print(f"{rows:,} rows written to {args.out}", file=sys.stderr)
        return EXIT_OK
    if fmt == "parquet":
        raise SystemExit(_bad_input("rmlite sql: --format parquet needs --out FILE."))
    if fmt in ("csv", "tsv"):
        import shutil
        import tempfile

        # The same COPY as --out (any size, lists as JSON text), then copied to stdout.
        with tempfile.TemporaryDirectory(prefix="rmlite-sql-") as tmp:
            path = f"{tmp}/result.{fmt}"
            store.export(query, path, format=fmt)
            sys.stdout.flush()
            with open(path, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        return EXIT_OK
    if fmt == "json":
        frame, _ = store.preview(query, None)
        _emit_json(frame.to_dicts())
        return EXIT_OK
    frame, total = store.preview(query, None if args.all else PREVIEW_ROWS)
    _table(frame)
    if total > frame.height:
        _console().print(
            f"{total:,} rows, {frame.height} shown (--all shows every row; --out FILE writes them)"
        )
    elif total != 1:
        _console().print(f"{total:,} rows")
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
    p.add_argument(
        "--stream",
        action="store_true",
        help="read the logs in batches and check them in DuckDB, so memory stays within "
        "--memory-limit whatever their size (chosen on its own for files larger than a "
        "sixteenth of it)",
    )
    p.add_argument(
        "--memory-limit",
        default=None,
        metavar="SIZE",
        help="memory budget of a streaming ingest, e.g. 4GB or 512MiB (default: a quarter "
        "of RAM, between 1GiB and 2GiB); DuckDB spills to <store>.tmp/ beyond it",
    )
    from rmlite.data.schema import ColumnMapping

    _add_dataclass_flags(p, ColumnMapping, _MAPPING_FLAGS)

    p = command(
        "check",
        cmd_check,
        "Check a dataset's log: step numbering, episode ends, next_obs, NaN/inf, rewards.",
        "rmlite check --dataset walker --json",
    )
    p.add_argument("--dataset", required=True, help="dataset to read (see rmlite datasets)")
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
        "Run SQL on the store, read-only: it cannot change the store, but like DuckDB's "
        "own CLI it reads and writes other files with your rights (read_csv, COPY ... TO). "
        "Per-dataset views: data.<dataset>, vectors as FLOAT[n] arrays.",
        'rmlite sql "SELECT episode_id, array_distance(obs, next_obs) AS moved FROM '
        'data.walker LIMIT 5"\n  rmlite sql @query.sql --out result.parquet\n'
        '  echo "SELECT count(*) FROM transitions" | rmlite sql -',
    )
    p.add_argument(
        "query", nargs="?", default=None, help="the SQL; '-' reads it from stdin, @FILE from a file"
    )
    p.add_argument("--file", default=None, help="read the SQL from this file")
    p.add_argument(
        "--format",
        choices=["table", "csv", "tsv", "json", "parquet"],
        default=None,
        help="output format (default: table; with --out, the one the file's ending means: "
        ".parquet, .csv, .tsv, .json/.jsonl; any other ending is an error)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="write the whole result to this file (DuckDB's COPY: streams any size; lists "
        "and structs become JSON text in CSV)",
    )
    p.add_argument(
        "--all", action="store_true", help="print every row (default: the first 40 and the count)"
    )
    p.add_argument("--write", action="store_true", help=argparse.SUPPRESS)

    from rmlite.data.feature_spec import FeatureSpec

    p = command(
        "features",
        cmd_features,
        "Build features and a target from a dataset.",
        "rmlite features --dataset walker --target return --gamma 0.99 --out features.parquet",
    )
    p.add_argument("--dataset", required=True, help="dataset to read (see rmlite datasets)")
    p.add_argument(
        "--out", default=None, help="write keys, features and target to Parquet (or .csv)"
    )
    _add_dataclass_flags(
        p, FeatureSpec, {"obs": "--obs", "action": "--action", "step": "--step-feature"}
    )
