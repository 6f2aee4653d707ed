"""``rmlite tune`` and ``rmlite bench tune``.

Registered by :func:`rmlite.cli.build_parser`; imports nothing heavy at module level,
so ``rmlite --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rmlite.cli._common import (
    EXIT_OK,
    Command,
    _add_dataclass_flags,
    _add_no_fail,
    _bench_exit,
    _bench_log,
    _bench_progress,
    _check_backend,
    _console,
    _count,
    _emit_json,
    _estimator_params,
    _Formatter,
    _from_args,
    _hidden_sizes,
    _int_in,
    _print_warnings,
    _printed_warnings,
    _seed,
    _with_client,
    progress_enabled,
)


class _TuneBar:
    """A progress bar of finished trials with the best score so far (stderr, tty only)."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self.bar: Any = None
        self.enabled = enabled
        self.last = -1
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self.bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=_console(stderr=True),
            )
            self.task = self.bar.add_task("tuning", total=total)
            self.bar.start()

    def __call__(self, p: Any) -> None:
        done = p.complete + p.pruned + p.failed
        best = "none yet" if p.best_score is None else f"{p.best_score:.4f}"
        text = (
            f"best {p.metric} {best} | {p.complete} complete, {p.pruned} pruned, {p.failed} failed"
        )
        if self.bar is not None:
            self.bar.update(self.task, completed=done, description=text)
        elif self.enabled and done != self.last:
            print(f"[rmlite] trial {done}/{p.target or '?'}: {text}", file=sys.stderr, flush=True)
        self.last = done

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def cmd_tune(args: argparse.Namespace) -> int:
    from rmlite.data.features import FeatureSpec
    from rmlite.data.store import LogStore
    from rmlite.tuning import parse_dimension, tune_dataset

    spec = _from_args(FeatureSpec, args)
    params = _estimator_params(args)
    space: dict[str, Any] = {}
    for item in args.space or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SystemExit(
                f"error: --space {item!r}: expected NAME=SPEC, for example "
                f"--space num_leaves=int:8:128 or --space learning_rate=float:0.01:0.3:log"
            )
        space[key] = parse_dimension(raw)
    bar = _TuneBar(enabled=progress_enabled(args), total=args.n_trials)
    try:
        with _printed_warnings():
            result = _with_client(
                args,
                lambda client: tune_dataset(
                    LogStore(args.db),
                    args.dataset,
                    spec,
                    params,
                    n_trials=args.n_trials,
                    timeout=args.timeout,
                    storage=args.storage,
                    study_name=args.study,
                    search_space=space,
                    search_spec=args.search_spec,
                    cv=args.cv,
                    pruning="none" if args.no_pruning else args.pruner,
                    workers=args.workers,
                    client=client,
                    holdout=args.holdout,
                    seed=args.seed,
                    out=args.out,
                    verbose=args.verbose > 0,
                    progress=bar,
                ),
            )
    finally:
        bar.stop()
    summary = {"dataset": args.dataset, "target": spec.target, **result.to_dict()}
    if args.json:
        _emit_json(summary)
        return EXIT_OK
    hold = (result.metrics or {}).get("holdout", {})
    key = "auc" if spec.target == "event" else "r2"
    _console().print(
        f"study {result.study_name!r} ({result.storage}): {result.n_complete} complete, "
        f"{result.n_pruned} pruned, {result.n_failed} failed\n"
        f"best trial {result.best_trial}: CV {result.metric} {result.best_score:.4f}; "
        f"hold-out {key} {hold.get(key, float('nan')):.4f}\n"
        f"best params: {result.best_params}\n"
        f"run {result.run_id}"
        + (f"; model saved to {result.model_path}" if result.model_path else "")
    )
    if result.recovered:
        _console().print(f"trials {result.recovered} were left running by a dead process: failed")
    _print_warnings(result.warnings)
    return EXIT_OK


def cmd_bench_tune(args: argparse.Namespace) -> int:
    from rmlite.bench import bench_tune

    progress = _bench_progress(args)
    try:
        result = bench_tune(
            rows=args.rows,
            features=args.features,
            budget=args.budget,
            n_estimators=args.n_estimators,
            dask_workers=args.dask_workers,
            n_jobs=args.n_jobs,
            log=None if args.json else _bench_log,
            progress=progress,
        )
    finally:
        progress.stop()
    return _bench_exit(args, result)


def add_commands(sub: Any, command: Command) -> None:
    """Register ``rmlite tune``."""
    from rmlite.data.feature_spec import FeatureSpec

    p = command(
        "tune",
        cmd_tune,
        "Tune a reward model with Optuna (episode-grouped CV, pruning); refit, save and record the best trial.",
        "rmlite tune --dataset walker --target reward --backend lightgbm --n-trials 50 --timeout 600 --pruner hyperband --out models/walker-tuned",
    )
    p.add_argument("--dataset", required=True, help="dataset to tune on (see rmlite datasets)")
    p.add_argument(
        "--backend", type=_check_backend, default="lightgbm", help="lightgbm, xgboost or mlp"
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda", "auto"],
        default="cpu",
        help="where trials train (auto: cuda when a GPU is visible)",
    )
    p.add_argument(
        "--n-trials", type=_count, default=20, help="finished trials the study should hold"
    )
    p.add_argument("--timeout", type=float, default=None, help="seconds for this session")
    p.add_argument(
        "--storage",
        default=None,
        help="study storage: a SQLite file, a .journal file, or a SQL URL (default: "
        "<store>.optuna.db beside the store; <store>.optuna.journal with --workers > 1)",
    )
    p.add_argument(
        "--study", default=None, help="study name (default <dataset>-<target>-<backend>)"
    )
    p.add_argument("--workers", type=_count, default=1, help="parallel worker processes")
    p.add_argument(
        "--cv",
        type=_int_in(2, None, "a number of folds >= 2"),
        default=3,
        help="episode-grouped folds per trial",
    )
    p.add_argument("--holdout", type=float, default=0.2, help="share of episodes held out")
    p.add_argument("--seed", type=_seed, default=0, help="seeds the sampler, folds and models")
    p.add_argument("--out", default=None, help="folder to save the refitted best model in")
    p.add_argument(
        "--space",
        action="append",
        metavar="NAME=SPEC",
        help="override the search space, repeatable: int:LOW:HIGH[:log], "
        "float:LOW:HIGH[:log], A,B,C, a fixed value, or none",
    )
    p.add_argument(
        "--search-spec", action="store_true", help="also search gamma (return target) and next_obs"
    )
    p.add_argument(
        "--pruner",
        choices=["median", "hyperband", "wilcoxon", "none"],
        default="median",
        help="stop bad trials early: median or hyperband on fold 0's learning curve (round by "
        "round), wilcoxon on the folds' losses against the best trial (needs --cv 5 or more), "
        "or none",
    )
    p.add_argument("--no-pruning", action="store_true", help="the same as --pruner none")
    p.add_argument("--n-estimators", type=int, default=None, help="boosting rounds per trial")
    p.add_argument("--max-epochs", type=int, default=None, help="MLP epochs per trial")
    p.add_argument("--n-jobs", type=int, default=None, help="CPU threads per trial")
    p.add_argument(
        "--hidden-sizes",
        type=_hidden_sizes,
        default=None,
        help="MLP layer widths when not searched",
    )
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="fixed native parameter")
    dask_flags = p.add_mutually_exclusive_group()
    dask_flags.add_argument(
        "--scheduler", default=None, help="run trials on this Dask cluster's workers"
    )
    dask_flags.add_argument("--cluster", default=None, help="local:N: a local Dask cluster")
    _add_dataclass_flags(
        p, FeatureSpec, {"obs": "--obs", "action": "--action", "step": "--step-feature"}
    )


def add_bench_commands(bench: Any) -> None:
    """Register ``rmlite bench tune``."""
    b = bench.add_parser(
        "tune",
        help="Tuning throughput with and without pruning; Dask 2-worker training against one process.",
        description="Trials per minute and best CV score within a fixed budget, with and "
        "without pruning, on a synthetic episode log; then a 2-worker Dask LocalCluster "
        "training against single-process training on the same data.",
        epilog="Example:\n  rmlite bench tune --rows 200_000 --budget 120",
        formatter_class=_Formatter,
    )
    b.set_defaults(func=cmd_bench_tune)
    b.add_argument(
        "--rows",
        type=lambda s: int(s.replace("_", "")),
        default=200_000,
        help="synthetic transitions (episodes of 200)",
    )
    b.add_argument("--features", type=int, default=20, help="float32 columns")
    b.add_argument("--budget", type=float, default=120.0, help="seconds per tuning session")
    b.add_argument("--n-estimators", type=int, default=200, help="boosting rounds per trial")
    b.add_argument("--dask-workers", type=int, default=2, help="0 skips the Dask comparison")
    b.add_argument("--n-jobs", type=int, default=1, help="threads per tuning trial")
    _add_no_fail(b)
    b.add_argument("--json", action="store_true")
