"""``rmlite train``, ``evaluate``, ``predict`` and ``quickstart``: reward models.

Registered by :func:`rmlite.cli.build_parser`; ``rmlite train --scheduler/--cluster``
trains on Dask. Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from rmlite.cli._common import (
    EXIT_OK,
    Command,
    _add_dataclass_flags,
    _bad_input,
    _cell,
    _check_backend,
    _console,
    _count,
    _cv_folds,
    _emit_json,
    _estimator_params,
    _from_args,
    _hidden_sizes,
    _print_warnings,
    _printed_warnings,
    _Progress,
    _seed,
    _table,
    _with_client,
    progress_enabled,
)


def cmd_train(args: argparse.Namespace) -> int:
    from rmlite.data.features import FeatureSpec
    from rmlite.data.store import LogStore
    from rmlite.pipeline import train

    spec = _from_args(FeatureSpec, args)
    if args.scheduler or args.cluster:  # on a Dask cluster: see train_on_dask below
        if args.stream:
            return _bad_input(
                "--stream is the one-machine path; on a Dask cluster each worker builds the "
                "features of its partitions. Drop --stream, or drop --cluster/--scheduler."
            )
        return train_on_dask(args, spec, _estimator_params(args))
    if args.parts_dir:
        return _bad_input(
            "--parts-dir is where a Dask training's partitions go: add --cluster local:N or "
            "--scheduler tcp://host:8786, or drop --parts-dir."
        )
    progress = _Progress(enabled=progress_enabled(args))
    try:
        with _printed_warnings():
            result = train(
                LogStore(args.db),
                args.dataset,
                spec,
                _estimator_params(args),
                holdout=args.holdout,
                cv=args.cv,
                seed=args.seed,
                out=args.out,
                progress=progress,
                stream=args.stream,
                chunk_rows=args.chunk_rows,
            )
    finally:
        progress.stop()
    summary = {"dataset": args.dataset, "target": spec.target, **result.to_dict()}
    if args.json:
        _emit_json(summary)
        return EXIT_OK
    hold = result.metrics["holdout"]
    keys = (
        ["auc", "log_loss", "brier", "ece"]
        if spec.target == "event"
        else ["r2", "rmse", "mae", "spearman", "episode_return_mae"]
    )
    import polars as pl

    rows = [
        (k, _cell(hold.get(k)), _cell(result.metrics["train"].get(k))) for k in keys if k in hold
    ]
    _table(
        pl.DataFrame(
            rows, schema=["metric", "hold-out episodes", "training episodes"], orient="row"
        ),
        title=f"{args.backend} on {args.dataset} ({spec.target})",
    )
    if result.cv:
        _console().print(
            f"cross-validation {result.cv['metric']}: {result.cv['mean']:.4f} ± {result.cv['std']:.4f} over {result.cv['folds']} folds"
        )
    _console().print(
        f"run {result.run_id}; fit {result.timings['fit_s']:.2f} s"
        + (f"; model saved to {result.model_path}" if result.model_path else "")
    )
    _print_warnings(result.warnings)
    return EXIT_OK


def train_on_dask(args: argparse.Namespace, spec: Any, params: dict[str, Any]) -> int:
    """``rmlite train --scheduler ...`` / ``--cluster local:N``."""
    from rmlite.data.store import LogStore
    from rmlite.distributed import train_distributed

    progress = _Progress(enabled=progress_enabled(args))
    try:
        with _printed_warnings():
            result = _with_client(
                args,
                lambda client: train_distributed(
                    LogStore(args.db),
                    args.dataset,
                    spec,
                    params,
                    client=client,
                    holdout=args.holdout,
                    seed=args.seed,
                    out=args.out,
                    parts_dir=args.parts_dir,
                    progress=progress,
                ),
            )
    finally:
        progress.stop()
    result.pop("model")
    summary = {"dataset": args.dataset, "target": spec.target, **result}
    if args.json:
        _emit_json(summary)
        return EXIT_OK
    hold = result["metrics"]["holdout"]
    _console().print(
        f"{args.backend} on {args.dataset} across {result['workers']} Dask workers: hold-out "
        f"r2 {hold.get('r2', float('nan')):.4f}, rmse {hold.get('rmse', float('nan')):.4g}; "
        f"run {result['run_id']}; fit {result['timings']['fit_s']:.2f} s"
        + (f"; model saved to {result['model_path']}" if result["model_path"] else "")
    )
    _print_warnings(result["warnings"])
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore
    from rmlite.pipeline import evaluate

    with _printed_warnings():
        result = evaluate(LogStore(args.db), args.model, args.dataset)
    if args.json:
        _emit_json(result)
    else:
        import polars as pl

        rows = [(k, _cell(v)) for k, v in result["metrics"].items()]
        _table(
            pl.DataFrame(rows, schema=["metric", "value"], orient="row"),
            title=f"{args.model} on {args.dataset}",
        )
        if result["same_data_as_training"]:
            _console().print(
                "[yellow]note:[/] this is the data the model was trained on (hold-out included): use new episodes for an unbiased estimate"
            )
        _print_warnings(result["warnings"])
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore
    from rmlite.pipeline.rewards import predict_to_file

    # Chunk by chunk into the file: a dataset of any size, memory of one chunk.
    summary = predict_to_file(
        LogStore(args.db), args.model, args.dataset, args.out, return_std=args.return_std
    )
    if args.json:
        _emit_json(summary)
    else:
        _console().print(f"{summary['rows']:,} predictions written to {args.out}")
    return EXIT_OK


def cmd_quickstart(args: argparse.Namespace) -> int:
    from rmlite.pipeline import quickstart

    progress = _Progress(enabled=progress_enabled(args))
    summary = quickstart(db=args.db, episodes=args.episodes, seed=args.seed, progress=progress)
    summary["report"] = _quickstart_report(summary, progress)
    if args.json:
        _emit_json(summary)
    else:
        _print_summary(summary)
    return EXIT_OK


def _quickstart_report(summary: dict[str, Any], progress: Callable[[str], None]) -> str:
    """Write the quickstart's HTML report beside its model; say why when it cannot."""
    import os

    try:
        from rmlite.dashboard.page import plotly_js_path

        plotly_js_path()  # the report inlines plotly.js: fail here, before any work
    except ImportError as exc:
        return f"not written ({exc})"
    from rmlite.dashboard.report import write_report
    from rmlite.data.store import LogStore

    out = os.path.join(summary["model_path"], "report.html")
    write_report(
        LogStore(summary["store"]), summary["model_path"], summary["dataset"], out,
        progress=progress,
    )  # fmt: skip
    return out


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="rmlite quickstart", show_header=False)
    table.add_column("what")
    table.add_column("value")
    for key, value in summary.items():
        table.add_row(key.replace("_", " "), _cell(value))
    _console().print(table)


def add_commands(sub: Any, command: Command) -> None:
    """Register ``train``, ``evaluate``, ``predict`` and ``quickstart``."""
    from rmlite.data.feature_spec import FeatureSpec

    p = command(
        "train",
        cmd_train,
        "Train a reward model, validated on held-out episodes; record the run.",
        "rmlite train --dataset walker --target reward --next-obs --backend lightgbm --out models/walker",
    )
    p.add_argument("--dataset", required=True, help="dataset to train on (see rmlite datasets)")
    p.add_argument(
        "--backend", type=_check_backend, default="lightgbm", help="lightgbm, xgboost or mlp"
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda", "auto"],
        default="cpu",
        help="cuda fails clearly where no GPU exists; auto uses one when present",
    )
    p.add_argument("--out", default=None, help="folder to save the model in")
    p.add_argument(
        "--holdout",
        type=float,
        default=0.2,
        help="share of episodes held out for the final metrics",
    )
    p.add_argument(
        "--cv", type=_cv_folds, default=0, help="also cross-validate with K episode-grouped folds"
    )
    p.add_argument("--seed", type=_seed, default=0, help="seeds the episode split and the model")
    p.add_argument("--n-estimators", type=int, default=None, help="boosting rounds (default 500)")
    p.add_argument("--max-epochs", type=int, default=None, help="MLP epochs (default 100)")
    p.add_argument(
        "--learning-rate", type=float, default=None, help="default 0.05 for trees, 1e-3 for the MLP"
    )
    p.add_argument(
        "--early-stopping-rounds",
        type=int,
        default=None,
        help="stop when a validation split of training episodes stops improving",
    )
    p.add_argument(
        "--n-members",
        type=int,
        default=None,
        help="ensemble size (episode bootstrap); enables uncertainty",
    )
    p.add_argument("--n-jobs", type=int, default=None, help="CPU threads")
    p.add_argument(
        "--hidden-sizes", type=_hidden_sizes, default=None, help="MLP layer widths, e.g. 256,256"
    )
    p.add_argument(
        "--class-weight",
        choices=["balanced"],
        default=None,
        help="event target: reweight the rare class (probabilities stay calibrated)",
    )
    p.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="native backend parameter, repeatable (--param num_leaves=63)",
    )
    p.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="build the features on disk a chunk of episodes at a time and train from there "
        "(for logs larger than memory); default: when the matrix would take more than a "
        "quarter of the free memory",
    )
    p.add_argument(
        "--chunk-rows",
        type=_count,
        default=None,
        help="transitions per chunk when streaming (default 500000)",
    )
    dask_flags = p.add_mutually_exclusive_group()
    dask_flags.add_argument(
        "--scheduler", default=None, help="train on this Dask cluster (tcp://host:8786)"
    )
    dask_flags.add_argument(
        "--cluster", default=None, help="start a local Dask cluster of N workers: local:N"
    )
    p.add_argument(
        "--parts-dir",
        default=None,
        metavar="PATH_OR_URL",
        help="with --scheduler/--cluster: where the partitioned Parquet goes, a folder every "
        "worker sees or an fsspec URL (s3://bucket/prefix, file:///shared/parts); default "
        "<db>.parts/<dataset>",
    )
    _add_dataclass_flags(
        p, FeatureSpec, {"obs": "--obs", "action": "--action", "step": "--step-feature"}
    )

    p = command(
        "evaluate",
        cmd_evaluate,
        "Metrics of a saved model on a dataset, against its ground-truth rewards.",
        "rmlite evaluate --model models/walker --dataset walker-new --json",
    )
    p.add_argument("--model", required=True, help="model folder written by rmlite train")
    p.add_argument("--dataset", required=True, help="dataset with ground-truth rewards to score")

    p = command(
        "predict",
        cmd_predict,
        "Predicted rewards for every transition of a dataset.",
        "rmlite predict --model models/walker --dataset walker-new --out preds.parquet",
    )
    p.add_argument("--model", required=True, help="model folder written by rmlite train")
    p.add_argument("--dataset", required=True, help="dataset whose transitions get rewards")
    p.add_argument("--out", required=True, help="Parquet (or .csv) file")
    p.add_argument("--return-std", action="store_true", help="also write the ensemble spread")

    p = command(
        "quickstart",
        cmd_quickstart,
        "The main job on the embedded default: collect Pendulum-v1, ingest, check, build features, train LightGBM on held-out episodes, summarize.",
        "rmlite quickstart --db demo.duckdb",
    )
    p.add_argument("--episodes", type=_count, default=40, help="episodes to roll out")
    p.add_argument("--seed", type=_seed, default=0, help="seeds rollouts, split and model")
