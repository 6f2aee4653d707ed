"""``rmlite bench data`` and ``rmlite bench models``; the other benches sit with their groups.

Registered by :func:`rmlite.cli.build_parser`. The benchmarks load only when they run.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rmlite.cli._common import (
    EXIT_TARGET_MISSED,
    _add_no_fail,
    _bench_exit,
    _bench_log,
    _bench_progress,
    _Formatter,
)

__all__ = ["EXIT_TARGET_MISSED", "add_bench_commands"]


def cmd_bench_data(args: argparse.Namespace) -> int:
    from rmlite.bench import bench_data

    progress = _bench_progress(args)
    try:
        result = bench_data(
            rows=args.rows,
            episode_length=args.episode_length,
            workdir=args.workdir,
            reference=not args.no_reference,
            log=None if args.json else _bench_log,
            progress=progress,
        )
    finally:
        progress.stop()
    return _bench_exit(args, result)


def cmd_bench_models(args: argparse.Namespace) -> int:
    from rmlite.bench import bench_models

    progress = _bench_progress(args)
    try:
        result = bench_models(
            rows=args.rows,
            features=args.features,
            n_estimators=args.n_estimators,
            mlp_epochs=args.mlp_epochs,
            repeat=args.repeat,
            log=None if args.json else _bench_log,
            compiled=not args.no_compiled,
            compiled_batches=tuple(args.compiled_batches),
            progress=progress,
        )
    finally:
        progress.stop()
    return _bench_exit(args, result)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sizes: expected episode counts separated by commas, like 5,10,20; got {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--sizes: every size must be at least 1; got {text!r}")
    return sizes


def cmd_bench_drift(args: argparse.Namespace) -> int:
    from rmlite.bench.drift import bench_drift

    progress = _bench_progress(args)
    try:
        result = bench_drift(
            sizes=args.sizes,
            windows=args.windows,
            shift_windows=args.shift_windows,
            train_episodes=args.train_episodes,
            seed=args.seed,
            log=(lambda m: print(m, file=sys.stderr, flush=True)) if args.json else _bench_log,
            progress=progress,
        )
    finally:
        progress.stop()
    return _bench_exit(args, result)


def _row_counts(text: str) -> tuple[int, ...]:
    """``10M,30M`` or ``10_000_000,30000000``: row counts for ``rmlite bench scale``."""
    out = []
    for part in text.split(","):
        value = part.strip().replace("_", "").upper()
        scale = 1_000_000 if value.endswith("M") else 1_000 if value.endswith("K") else 1
        try:
            n = int(float(value.rstrip("MK")) * scale)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--rows: expected row counts separated by commas, like 10M,30M; got {text!r}"
            ) from None
        if n < 2_000:
            raise argparse.ArgumentTypeError(f"--rows: each size must be at least 2K; got {text!r}")
        out.append(n)
    return tuple(out)


def cmd_bench_scale(args: argparse.Namespace) -> int:
    from rmlite.bench.scale import bench_scale

    result = bench_scale(
        rows=args.rows,
        workdir=args.workdir,
        backends=tuple(args.backends.split(",")),
        in_memory_baseline=not args.no_baseline,
        log=(lambda m: print(m, file=sys.stderr, flush=True)) if args.json else _bench_log,
    )
    if not args.json:
        _print_scale(result)
    targets = {name: bool(c["ok"]) for name, c in result["checks"].items() if "ok" in c}
    return _bench_exit(args, result, targets)


def _print_scale(result: dict[str, Any]) -> None:
    gib = 2**30
    for row in result["sizes"]:
        for key, m in row.items():
            if isinstance(m, dict):
                print(
                    f"{row['rows']:>12,} {key:<17} {m['seconds']:8.1f} s   peak RSS "
                    f"{m['peak_rss_bytes'] / gib:6.2f} GiB"
                    + (f"   hold-out R2 {m['holdout_r2']:.3f}" if "holdout_r2" in m else "")
                )
    for name, check in result["checks"].items():
        target = f" (target {check['target']:.2f})" if "target" in check else ""
        mark = "" if "ok" not in check else ("  ok" if check["ok"] else "  MISSED")
        print(f"{name:<40} {check['value']:8.2f}{target}{mark}")
    if result["skipped"]:
        print("skipped for lack of disk:", ", ".join(f"{n:,}" for n in result["skipped"]))


def add_bench_commands(bench: Any) -> None:
    """Register ``bench data``, ``models``, ``drift`` and ``scale`` under ``rmlite bench``."""
    b = bench.add_parser(
        "data",
        help="Ingest and featurize a synthetic MuJoCo-shaped log; compare with DuckDB's own load and pandas.",
        description="Ingest and featurize a synthetic MuJoCo-shaped log (17 obs, 6 actions); print rows/s, ratios against DuckDB's CREATE TABLE AS and a pandas groupby reference, and peak RSS.",
        epilog="Example:\n  rmlite bench data --rows 1_000_000",
        formatter_class=_Formatter,
    )
    b.set_defaults(func=cmd_bench_data)
    b.add_argument(
        "--rows",
        type=lambda s: int(s.replace("_", "")),
        default=1_000_000,
        help="transitions in the synthetic log (1_000_000 works)",
    )
    b.add_argument("--episode-length", type=int, default=1000, help="steps per episode")
    b.add_argument(
        "--workdir", default=None, help="folder for the temporary files (default: a temp dir)"
    )
    b.add_argument("--no-reference", action="store_true", help="skip the pandas reference")
    _add_no_fail(b)
    b.add_argument("--json", action="store_true")
    b = bench.add_parser(
        "models",
        help="RewardRegressor against raw lightgbm.train / xgboost.train; MLP throughput; compiled trees.",
        description="Fit time and predict throughput of RewardRegressor against the raw engines with identical parameters, MLP training samples/s and inference rows/s; CUDA rows where a GPU is present; compiled trees (rmlite[fast]) against Booster.predict at batch 1, 16, 4096 and 1M rows.",
        epilog="Example:\n  rmlite bench models --rows 1_000_000 --features 40",
        formatter_class=_Formatter,
    )
    b.set_defaults(func=cmd_bench_models)
    b.add_argument(
        "--rows",
        type=lambda s: int(s.replace("_", "")),
        default=1_000_000,
        help="rows of the synthetic float32 matrix (1_000_000 works)",
    )
    b.add_argument("--features", type=int, default=40, help="columns of the matrix")
    b.add_argument("--n-estimators", type=int, default=100, help="boosting rounds per fit")
    b.add_argument("--mlp-epochs", type=int, default=1, help="epochs of the MLP timing")
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
    _add_no_fail(b)
    b.add_argument("--json", action="store_true")
    b = bench.add_parser(
        "drift",
        help="False alarms and detections of the drift rule on Pendulum-v1, by window size.",
        description=(
            "Train a reward model on random-policy Pendulum-v1 episodes, then score many "
            "windows of fresh episodes: from the same policy (any drift alert is a false "
            "alarm; target at most 5%%) and after notebook 04's shifts (gravity 15, a "
            "swing-up policy; they should alert). Each window is judged by the sample-size "
            "rule and by the fixed thresholds it replaced; prints a table of alert rates and "
            "the time per pass. Exit status 3 when the false-alarm target is missed."
        ),
        epilog="Example:\n  rmlite bench drift --sizes 5,10,20,50 --windows 40",
        formatter_class=_Formatter,
    )
    b.set_defaults(func=cmd_bench_drift)
    b.add_argument("--sizes", type=_sizes, default=(5, 10, 20, 50), help="window sizes in episodes")
    b.add_argument("--windows", type=int, default=40, help="same-policy windows per size")
    b.add_argument("--shift-windows", type=int, default=10, help="windows per size and shift")
    b.add_argument("--train-episodes", type=int, default=40, help="episodes the model sees")
    b.add_argument("--seed", type=int, default=0, help="seeds rollouts and window draws")
    _add_no_fail(b)
    b.add_argument("--json", action="store_true", help="print the result as JSON (table on stderr)")
    b = bench.add_parser(
        "scale",
        help="Ingest and train on logs larger than memory: time and peak RSS by log size.",
        description=(
            "Write a synthetic MuJoCo-shaped log (17 obs, 6 actions, 1,000-step episodes) "
            "at each size, then, each in a fresh process: ingest it, train LightGBM and "
            "XGBoost (20 trees, 63 leaves, obs + action + next_obs) on the streaming path, "
            "and at the smallest size LightGBM in memory. Prints time and peak RSS, and "
            "checks the targets: ingest RSS flat in rows (1.3x) and under 4 GiB, training "
            "RSS within the binned data + 2 GiB, time linear, streaming within 1.5x of in "
            "memory. Sizes the disk cannot hold (about 250 bytes a row) are skipped. Exit "
            "status 3 when a target is missed."
        ),
        epilog="Example:\n  rmlite bench scale --rows 10M,30M --workdir /data/scratch",
        formatter_class=_Formatter,
    )
    b.set_defaults(func=cmd_bench_scale)
    b.add_argument(
        "--rows",
        type=_row_counts,
        default=(10_000_000, 30_000_000, 100_000_000),
        help="log sizes in rows, comma-separated, with K or M suffixes",
    )
    b.add_argument("--workdir", default="rmlite-bench-scale", help="folder for the logs and stores")
    b.add_argument(
        "--backends", default="lightgbm,xgboost", help="engines to train, comma-separated"
    )
    b.add_argument("--no-baseline", action="store_true", help="skip the in-memory training run")
    _add_no_fail(b)
    b.add_argument("--json", action="store_true", help="print the result as JSON (log on stderr)")
