"""The ``rmlite`` command: a thin layer over the public API.

One small function per subcommand. Heavy libraries load inside the commands that need
them, so ``rmlite --help`` stays instant. Exit codes: 0 success, 2 bad input (a clear
message on stderr), 1 internal failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import time
import typing
from collections.abc import Callable, Sequence
from typing import Any

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2

EXTENSIONS: tuple[str, ...] = (
    "rmlite.cli.rl",
    "rmlite.cli.tune",
    "rmlite.cli.prefs",
    "rmlite.cli.monitor",
    "rmlite.cli.dashboard",
)
"""Modules that add subcommands: each has ``add_commands(subparsers, command)``, and may
have ``add_bench_commands(bench_subparsers)`` for ``rmlite bench ...``."""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


# ------------------------------------------------------------------------ output


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def _emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def _table(frame: Any, title: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for name in frame.columns:
        table.add_column(name, overflow="fold")
    for row in frame.iter_rows():
        table.add_row(*(_cell(v) for v in row))
    _console().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list) and len(value) > 6:
        return "[" + ", ".join(_cell(v) for v in value[:6]) + ", ...]"
    return str(value)


class _Progress:
    """A spinner with the current stage on stderr (silent with --json or when piped)."""

    def __init__(self, enabled: bool) -> None:
        self.status: Any = None
        if enabled and sys.stderr.isatty():
            self.status = _console(stderr=True).status("starting")
            self.status.start()
        self.enabled = enabled

    def __call__(self, message: str) -> None:
        if self.status is not None:
            self.status.update(message)
        elif self.enabled:
            print(f"[rmlite] {message}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()


# ------------------------------------------------------------- dataclass → flags


def _add_dataclass_flags(
    parser: argparse.ArgumentParser, cls: type, rename: dict[str, str]
) -> None:
    """Flags generated from a config dataclass: the field's help text is the flag's."""
    for f in dataclasses.fields(cls):
        flag = rename.get(f.name, "--" + f.name.replace("_", "-"))
        help_text = f.metadata.get("help", "")
        default = f.default
        if isinstance(default, bool):
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{help_text} (default: {default})",
            )
        elif f.name == "clip":
            parser.add_argument(
                flag,
                dest=f.name,
                type=float,
                nargs=2,
                metavar=("LOW", "HIGH"),
                default=None,
                help=f"{help_text} (default: {default})",
            )
        else:
            typ: Callable[[str], Any] = str
            if isinstance(default, int) or f.name in ("time_limit", "lags"):
                typ = int
            elif isinstance(default, float):
                typ = float
            choices = _literal_choices(f.type)
            parser.add_argument(
                flag,
                dest=f.name,
                type=typ,
                choices=choices,
                default=None,
                help=f"{help_text} (default: {default})",
            )


def _literal_choices(annotation: Any) -> list[str] | None:
    from rmlite.data import features

    aliases = {
        "Target": features.Target,
        "Truncation": features.Truncation,
        "Missing": features.Missing,
        "Scaling": features.Scaling,
    }
    literal = aliases.get(str(annotation))
    return list(typing.get_args(literal)) if literal is not None else None


def _from_args(cls: type, args: argparse.Namespace) -> Any:
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)
        if getattr(args, f.name, None) is not None
    }
    if "clip" in values:
        values["clip"] = tuple(values["clip"])
    return cls(**values)


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


# ---------------------------------------------------------------------- commands


def cmd_ingest(args: argparse.Namespace) -> int:
    from rmlite.data.schema import ColumnMapping
    from rmlite.data.store import LogStore

    mapping = _from_args(ColumnMapping, args)
    progress = _Progress(enabled=not args.json and not args.quiet)
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


def _estimator_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"backend": args.backend, "device": args.device}
    for name in (
        "n_estimators",
        "max_epochs",
        "learning_rate",
        "early_stopping_rounds",
        "n_members",
        "random_state",
        "n_jobs",
        "class_weight",
    ):
        value = getattr(args, name, None)
        if value is not None:
            params[name] = value
    if args.hidden_sizes:
        params["hidden_sizes"] = tuple(int(h) for h in args.hidden_sizes.split(","))
    backend_params: dict[str, Any] = {}
    for item in args.param or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SystemExit(
                _bad_input(
                    f"--param {item!r}: expected KEY=VALUE, for example --param num_leaves=63."
                )
            )
        backend_params[key] = _parse_value(raw)
    if backend_params:
        params["backend_params"] = backend_params
    return params


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _check_backend(name: str) -> str:
    from rmlite.estimators._params import BACKENDS

    if name not in BACKENDS:
        import difflib

        close = difflib.get_close_matches(name, BACKENDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise argparse.ArgumentTypeError(
            f"unknown backend {name!r}{hint}; choose from {', '.join(BACKENDS)}"
        )
    return name


def cmd_train(args: argparse.Namespace) -> int:
    from rmlite.data.features import FeatureSpec
    from rmlite.data.store import LogStore
    from rmlite.pipeline import train

    spec = _from_args(FeatureSpec, args)
    if args.scheduler or args.cluster:  # on a Dask cluster: rmlite.cli.tune owns that path
        from rmlite.cli.tune import train_on_dask

        return train_on_dask(args, spec, _estimator_params(args))
    progress = _Progress(enabled=not args.json)
    try:
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
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore
    from rmlite.pipeline import evaluate

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
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore
    from rmlite.pipeline import predict

    frame = predict(LogStore(args.db), args.model, args.dataset, return_std=args.return_std)
    if args.out.endswith(".csv"):
        frame.write_csv(args.out)
    else:
        frame.write_parquet(args.out)
    summary = {
        "rows": frame.height,
        "out": args.out,
        "mean": float(frame["prediction"].cast(float).mean() or 0.0),  # type: ignore[arg-type]
    }
    if args.json:
        _emit_json(summary)
    else:
        _console().print(f"{frame.height:,} predictions written to {args.out}")
    return EXIT_OK


def cmd_quickstart(args: argparse.Namespace) -> int:
    from rmlite.pipeline import quickstart

    progress = _Progress(enabled=not args.json)
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
    )
    if args.json:
        _emit_json(result)
    return EXIT_OK


def _bench_log(message: str) -> None:
    print(message, flush=True)


# ------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``rmlite`` (also used to render the README's CLI tour)."""
    parser = argparse.ArgumentParser(
        prog="rmlite",
        description="Reward models from RL logs: ingest into DuckDB, build features, train, validate.",
        epilog="Example:\n  rmlite quickstart\n  rmlite ingest logs/*.parquet --dataset walker\n  rmlite check --dataset walker",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str,
        func: Callable[[argparse.Namespace], int],
        help_text: str,
        example: str,
        db: bool = True,
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"Example:\n  {example}",
            formatter_class=_Formatter,
        )
        p.set_defaults(func=func)
        if db:
            p.add_argument(
                "--db", default=None, help="store file (default: $RMLITE_DB or ./rmlite.duckdb)"
            )
        p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        return p

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
    p.add_argument("--quiet", action="store_true", help="no progress messages")
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

    from rmlite.data.features import FeatureSpec

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

    p = command(
        "train",
        cmd_train,
        "Train a reward model, validated on held-out episodes; record the run.",
        "rmlite train --dataset walker --target reward --next-obs --backend lightgbm --out models/walker",
    )
    p.add_argument("--dataset", required=True)
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
        "--cv", type=int, default=0, help="also cross-validate with K episode-grouped folds"
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the episode split and the model")
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
    p.add_argument("--hidden-sizes", default=None, help="MLP layer widths, e.g. 256,256")
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
    dask_flags = p.add_mutually_exclusive_group()
    dask_flags.add_argument(
        "--scheduler", default=None, help="train on this Dask cluster (tcp://host:8786)"
    )
    dask_flags.add_argument(
        "--cluster", default=None, help="start a local Dask cluster of N workers: local:N"
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
    p.add_argument("--dataset", required=True)

    p = command(
        "predict",
        cmd_predict,
        "Predicted rewards for every transition of a dataset.",
        "rmlite predict --model models/walker --dataset walker-new --out preds.parquet",
    )
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True, help="Parquet (or .csv) file")
    p.add_argument("--return-std", action="store_true", help="also write the ensemble spread")

    p = command(
        "quickstart",
        cmd_quickstart,
        "The main job on the embedded default: collect Pendulum-v1, ingest, check, build features, train LightGBM on held-out episodes, summarize.",
        "rmlite quickstart --db demo.duckdb",
    )
    p.add_argument("--episodes", type=int, default=40, help="episodes to roll out")
    p.add_argument("--seed", type=int, default=0)

    # Commands of the other areas live beside this module, one module per area; each
    # adds its subcommands with the same `command` helper (and imports nothing heavy).
    for area in EXTENSIONS:
        importlib.import_module(area).add_commands(sub, command)

    p = sub.add_parser(
        "bench",
        help="Benchmarks users can run (ratios against a baseline measured in the same run).",
        formatter_class=_Formatter,
    )
    bench = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
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
        help="RewardRegressor against raw lightgbm.train / xgboost.train; MLP throughput.",
        description="Fit time and predict throughput of RewardRegressor against the raw engines with identical parameters, MLP training samples/s and inference rows/s; CUDA rows where a GPU is present.",
        epilog="Example:\n  rmlite bench models --rows 1_000_000 --features 40",
        formatter_class=_Formatter,
    )
    b.set_defaults(func=cmd_bench_models)
    b.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=1_000_000)
    b.add_argument("--features", type=int, default=40)
    b.add_argument("--n-estimators", type=int, default=100)
    b.add_argument("--mlp-epochs", type=int, default=1)
    b.add_argument("--repeat", type=int, default=1, help="repeat each timing, keep the best")
    b.add_argument("--json", action="store_true")
    for area in EXTENSIONS:
        add_bench = getattr(importlib.import_module(area), "add_bench_commands", None)
        if add_bench is not None:
            add_bench(bench)
    return parser


def _version() -> str:
    from rmlite import __version__

    return f"rmlite {__version__}"


def _bad_input(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rmlite`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from rmlite.exceptions import RmliteError, StoreLockedError

    try:
        return int(args.func(args))
    except StoreLockedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except (RmliteError, FileNotFoundError) as exc:
        return _bad_input(str(exc))
    except KeyboardInterrupt:
        print("interrupted; the store is as it was before this command", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
