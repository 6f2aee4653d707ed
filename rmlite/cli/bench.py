"""``rmlite bench data`` and ``rmlite bench models``; the other benches sit with their groups.

Registered by :func:`rmlite.cli.build_parser`. The benchmarks load only when they run.
"""

from __future__ import annotations

import argparse
from typing import Any

from rmlite.cli._common import EXIT_OK, _bench_log, _emit_json, _Formatter


def cmd_bench_data(args: argparse.Namespace) -> int:
    from rmlite.bench import bench_data

    result = bench_data(
        rows=args.rows,
        episode_length=args.episode_length,
        workdir=args.workdir,
        reference=not args.no_reference,
        log=None if args.json else _bench_log,
    )
    if args.json:
        _emit_json(result)
    return EXIT_OK


def cmd_bench_models(args: argparse.Namespace) -> int:
    from rmlite.bench import bench_models

    result = bench_models(
        rows=args.rows,
        features=args.features,
        n_estimators=args.n_estimators,
        mlp_epochs=args.mlp_epochs,
        repeat=args.repeat,
        log=None if args.json else _bench_log,
        compiled=not args.no_compiled,
        compiled_batches=tuple(args.compiled_batches),
    )
    if args.json:
        _emit_json(result)
    return EXIT_OK


def add_bench_commands(bench: Any) -> None:
    """Register ``bench data`` and ``bench models`` under ``rmlite bench``."""
    b = bench.add_parser(
        "data",
        help="Ingest and featurize a synthetic MuJoCo-shaped log; compare with DuckDB's own load and pandas.",
        description="Ingest and featurize a synthetic MuJoCo-shaped log (17 obs, 6 actions); print rows/s, ratios against DuckDB's CREATE TABLE AS and a pandas groupby reference, and peak RSS.",
        epilog="Example:\n  rmlite bench data --rows 1_000_000",
        formatter_class=_Formatter,
    )
    b.set_defaults(func=cmd_bench_data)
    b.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=1_000_000)
    b.add_argument("--episode-length", type=int, default=1000)
    b.add_argument(
        "--workdir", default=None, help="folder for the temporary files (default: a temp dir)"
    )
    b.add_argument("--no-reference", action="store_true", help="skip the pandas reference")
    b.add_argument("--json", action="store_true")
    b = bench.add_parser(
        "models",
        help="RewardRegressor against raw lightgbm.train / xgboost.train; MLP throughput; compiled trees.",
        description="Fit time and predict throughput of RewardRegressor against the raw engines with identical parameters, MLP training samples/s and inference rows/s; CUDA rows where a GPU is present; compiled trees (rmlite[fast]) against Booster.predict at batch 1, 16, 4096 and 1M rows.",
        epilog="Example:\n  rmlite bench models --rows 1_000_000 --features 40",
        formatter_class=_Formatter,
    )
    b.set_defaults(func=cmd_bench_models)
    b.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=1_000_000)
    b.add_argument("--features", type=int, default=40)
    b.add_argument("--n-estimators", type=int, default=100)
    b.add_argument("--mlp-epochs", type=int, default=1)
    b.add_argument("--repeat", type=int, default=1, help="repeat each timing, keep the best")
    b.add_argument(
        "--compiled-batches",
        type=lambda s: int(s.replace("_", "")),
        nargs="+",
        default=[1, 16, 4096, 1_000_000],
        metavar="N",
        help="batch sizes at which compiled trees race the raw booster (one thread each)",
    )
    b.add_argument("--no-compiled", action="store_true", help="skip the compiled-trees comparison")
    b.add_argument("--json", action="store_true")
