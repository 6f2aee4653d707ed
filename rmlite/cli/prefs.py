"""``rmlite prefs``: preference data and reward models learned from it (Bradley–Terry).

Subcommands: ``ingest`` (judged pairs into the store), ``synth`` (a simulated B-Pref
teacher over the logged rewards), ``train`` and ``evaluate``. Also ``rmlite bench prefs``.
Heavy libraries load inside the commands only.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from rmlite.cli._common import (
    EXIT_OK,
    Command,
    _add_dataclass_flags,
    _bench_exit,
    _bench_log,
    _bench_progress,
    _cell,
    _check_backend,
    _console,
    _count,
    _emit_json,
    _Formatter,
    _from_args,
    _hidden_sizes,
    _Progress,
    _seed,
    _table,
    progress_enabled,
)


def cmd_prefs_ingest(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore

    progress = _Progress(enabled=progress_enabled(args))
    try:
        report = LogStore(args.db).ingest_preferences(
            args.sources, dataset=args.dataset, on_error=args.on_error, progress=progress
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


def cmd_prefs_synth(args: argparse.Namespace) -> int:
    from rmlite.data import schema as S
    from rmlite.data.store import LogStore
    from rmlite.evaluation.teacher import synthetic_preferences

    store = LogStore(args.db)
    log = store.read(args.dataset, [S.REWARD], keys=True)
    prefs = synthetic_preferences(
        log[S.EPISODE].to_numpy(),
        log[S.STEP].to_numpy(),
        log[S.REWARD].to_numpy(),
        args.pairs,
        args.segment_length,
        noise=args.noise,
        temperature=args.temperature,
        tie_threshold=args.tie_threshold,
        seed=args.seed,
        annotator=args.annotator,
    )
    # Pairs name episodes as ingested (text ids too), like a file of human judgements.
    prefs = store.label_episodes(args.dataset, prefs, ("episode_a", "episode_b"))
    summary: dict[str, Any] = {
        "dataset": args.dataset,
        "pairs": prefs.height,
        "segment_length": args.segment_length,
        "noise": args.noise,
        "temperature": args.temperature,
        "label_mean": float(prefs["label"].mean() or 0.0),  # type: ignore[arg-type]
        "ties": int((prefs["label"] == 0.5).sum()),
    }
    if args.out:
        if args.out.endswith(".csv"):
            prefs.write_csv(args.out)
        elif args.out.endswith((".jsonl", ".ndjson")):
            prefs.write_ndjson(args.out)
        else:
            prefs.write_parquet(args.out)
        summary["out"] = args.out
    else:
        report = store.ingest_preferences(prefs, dataset=args.dataset)
        summary["ingest"] = report.to_dict()
    if args.json:
        _emit_json(summary)
    else:
        where = f"written to {args.out}" if args.out else f"ingested into {store.path}"
        _console().print(
            f"{args.dataset}: {prefs.height:,} simulated pairs of {args.segment_length}-step "
            f"segments (flip rate {args.noise}, temperature {args.temperature}) {where}"
        )
    return EXIT_OK


def _pref_params(args: argparse.Namespace) -> dict[str, Any]:
    from rmlite.cli._common import _estimator_params

    params = _estimator_params(args)
    for name in ("label_noise", "margin_scale", "centering", "batch_size"):
        value = getattr(args, name, None)
        if value is not None:
            params[name] = value
    return params


def cmd_prefs_train(args: argparse.Namespace) -> int:
    from rmlite.data.features import FeatureSpec
    from rmlite.data.store import LogStore
    from rmlite.pipeline.preferences import train_preferences

    spec = _from_args(FeatureSpec, args)
    progress = _Progress(enabled=progress_enabled(args))
    try:
        result = train_preferences(
            LogStore(args.db),
            args.dataset,
            spec,
            _pref_params(args),
            holdout=args.holdout,
            seed=args.seed,
            out=args.out,
            epic=not args.no_epic,
            progress=progress,
        )
    finally:
        progress.stop()
    summary = {"dataset": args.dataset, **result.to_dict()}
    if args.json:
        _emit_json(summary)
        return EXIT_OK
    _print_metrics(result.metrics.get("holdout") or result.metrics["train"], args.backend)
    _console().print(
        f"{result.train_pairs:,} training pairs, {result.test_pairs:,} held out "
        f"({result.dropped_pairs:,} straddling or unusable); fit {result.timings['fit_s']:.2f} s"
        + (f"; model saved to {result.model_path}" if result.model_path else "")
    )
    return EXIT_OK


def cmd_prefs_evaluate(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore
    from rmlite.pipeline.preferences import evaluate_preferences, train_preferences

    store = LogStore(args.db)
    if args.model:
        result = evaluate_preferences(
            store, args.model, args.dataset, epic=not args.no_epic, seed=args.seed
        )
        metrics = result["metrics"]
    else:
        from rmlite.data.features import FeatureSpec

        trained = train_preferences(
            store,
            args.dataset,
            _from_args(FeatureSpec, args),
            _pref_params(args),
            holdout=args.holdout,
            seed=args.seed,
            epic=not args.no_epic,
            record=False,
        )
        metrics = trained.metrics.get("holdout")
        if metrics is None:
            from rmlite.exceptions import SchemaError

            raise SchemaError(
                f"{args.dataset}: no preference pair has both segments in held-out episodes; "
                f"raise --holdout or add pairs."
            )
        result = {
            "dataset": args.dataset,
            "backend": args.backend,
            "pairs": trained.test_pairs,
            "train_pairs": trained.train_pairs,
            "held_out_only": True,
            "metrics": metrics,
        }
    if args.json:
        _emit_json(result)
    else:
        _print_metrics(metrics, result.get("backend", ""))
    return EXIT_OK


def _print_metrics(metrics: dict[str, Any], title: str) -> None:
    import polars as pl

    rows = [
        ("pairwise accuracy", _cell(metrics["model"]["accuracy"])),
        ("log-loss", _cell(metrics["model"]["log_loss"])),
        ("pairs", _cell(metrics["model"]["pairs"])),
    ]
    if "true_reward" in metrics:
        rows.append(("true reward's accuracy", _cell(metrics["true_reward"]["accuracy"])))
        rows.append(("segment return pearson", _cell(metrics["segment_returns"]["pearson"])))
        rows.append(("segment return spearman", _cell(metrics["segment_returns"]["spearman"])))
    if metrics.get("epic"):
        rows.append(("EPIC distance", _cell(metrics["epic"].get("distance"))))
    _table(pl.DataFrame(rows, schema=["metric", "value"], orient="row"), title=title)


def cmd_bench_prefs(args: argparse.Namespace) -> int:
    from rmlite.bench import bench_prefs

    progress = _bench_progress(args)
    try:
        result = bench_prefs(
            pairs=args.pairs,
            episodes=args.episodes,
            segment_length=args.segment_length,
            noise=args.noise,
            log=None if args.json else _bench_log,
            progress=progress,
        )
    finally:
        progress.stop()
    return _bench_exit(args, result)


# ------------------------------------------------------------------------ parser


def _model_flags(p: argparse.ArgumentParser) -> None:
    from rmlite.data.feature_spec import FeatureSpec

    p.add_argument("--dataset", required=True, help="dataset the judged segments come from")
    p.add_argument(
        "--backend", type=_check_backend, default="lightgbm", help="lightgbm, xgboost or mlp"
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda", "auto"],
        default="cpu",
        help="where the model trains (auto: cuda when a GPU is visible)",
    )
    p.add_argument(
        "--holdout",
        type=float,
        default=0.2,
        help="share of episodes held out: test pairs have both segments in them",
    )
    p.add_argument("--seed", type=_seed, default=0, help="seeds the split and the model")
    p.add_argument("--n-estimators", type=int, default=None, help="boosting rounds (default 1000)")
    p.add_argument("--max-epochs", type=int, default=None, help="MLP epochs (default 40)")
    p.add_argument(
        "--learning-rate", type=float, default=None, help="default 0.3 for trees, 1e-3 for the MLP"
    )
    p.add_argument(
        "--early-stopping-rounds", type=int, default=None, help="MLP: stop on held-out pairs"
    )
    p.add_argument("--n-members", type=int, default=None, help="ensemble size (pair bootstrap)")
    p.add_argument("--n-jobs", type=int, default=None, help="CPU threads")
    p.add_argument(
        "--hidden-sizes", type=_hidden_sizes, default=None, help="MLP layer widths, e.g. 64,64"
    )
    p.add_argument(
        "--label-noise",
        type=float,
        default=None,
        help="probability that a judgement is a coin flip, in [0, 0.5] (default 0)",
    )
    p.add_argument("--margin-scale", type=float, default=None, help="multiplies pair margins")
    p.add_argument(
        "--centering", type=float, default=None, help="penalty on the mean reward (default 1e-3)"
    )
    p.add_argument("--batch-size", type=int, default=None, help="MLP: pairs per mini-batch")
    p.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="native tree parameter, repeatable (--param num_leaves=31)",
    )
    p.add_argument(
        "--no-epic", action="store_true", help="skip the EPIC distance to the true reward"
    )
    _add_dataclass_flags(
        p, FeatureSpec, {"obs": "--obs", "action": "--action", "step": "--step-feature"}
    )


def add_commands(sub: Any, command: Command) -> None:
    """Register ``rmlite prefs ...`` (called by :func:`rmlite.cli.build_parser`)."""
    p = sub.add_parser(
        "prefs",
        help="Preferences between segments: ingest, simulate, train and evaluate Bradley–Terry reward models.",
        description="Learn per-step rewards from judgements 'segment A is better than segment B' (Bradley–Terry), with LightGBM, XGBoost or the MLP.",
        epilog="Example:\n  rmlite prefs synth --dataset pendulum --pairs 2000 --segment-length 25 --noise 0.1\n  rmlite prefs train --dataset pendulum --backend lightgbm --label-noise 0.1 --out models/prefs",
        formatter_class=_Formatter,
    )
    prefs = p.add_subparsers(dest="prefs", metavar="SUBCOMMAND", required=True)

    # The shared `command` helper registers on the top level; these are one level down,
    # so build them with the same shape here.
    def subcommand(
        name: str, func: Callable[[argparse.Namespace], int], help_text: str, example: str
    ) -> argparse.ArgumentParser:
        q = prefs.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"Example:\n  {example}",
            formatter_class=_Formatter,
        )
        q.set_defaults(func=func)
        q.add_argument(
            "--db", default=None, help="store file (default: $RMLITE_DB or ./rmlite.duckdb)"
        )
        q.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        return q

    q = subcommand(
        "ingest",
        cmd_prefs_ingest,
        "Ingest judged pairs of segments, whole or not at all; segments must exist in the logs.",
        "rmlite prefs ingest pairs.parquet --dataset pendulum",
    )
    q.add_argument("sources", nargs="+", help="files, globs or folders (Parquet, CSV, JSONL)")
    q.add_argument("--dataset", required=True, help="dataset whose episodes the segments are in")
    q.add_argument(
        "--on-error",
        choices=["raise", "quarantine"],
        default="raise",
        help="raise: refuse the whole ingest on a bad pair; quarantine: land good pairs, keep bad ones in the 'rejected' table",
    )

    q = subcommand(
        "synth",
        cmd_prefs_synth,
        "Simulate a teacher: random segment pairs labeled by a Bradley–Terry oracle over the true rewards (B-Pref).",
        "rmlite prefs synth --dataset pendulum --pairs 2000 --segment-length 25 --noise 0.1 --seed 0",
    )
    q.add_argument("--dataset", required=True, help="dataset whose segments are compared")
    q.add_argument("--pairs", type=_count, default=1000, help="number of pairs")
    q.add_argument("--segment-length", type=_count, default=25, help="steps per segment")
    q.add_argument("--noise", type=float, default=0.0, help="flip rate of labels, in [0, 0.5]")
    q.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        help="P(A preferred) = sigmoid((R_A - R_B) / T); 0 is a deterministic teacher",
    )
    q.add_argument(
        "--tie-threshold", type=float, default=0.0, help="|R_A - R_B| at most this is a tie (0.5)"
    )
    q.add_argument("--seed", type=_seed, default=0, help="seeds the pairs and the labels")
    q.add_argument("--annotator", default="synthetic", help="name stored with the judgements")
    q.add_argument(
        "--out", default=None, help="write the pairs to a file (.parquet/.csv/.jsonl) instead"
    )

    q = subcommand(
        "train",
        cmd_prefs_train,
        "Train a preference reward model, scored on pairs from held-out episodes; save it for predict, relabel and the Gymnasium wrapper.",
        "rmlite prefs train --dataset pendulum --backend mlp --label-noise 0.1 --out models/prefs-mlp",
    )
    q.add_argument("--out", default=None, help="folder to save the model in")
    _model_flags(q)

    q = subcommand(
        "evaluate",
        cmd_prefs_evaluate,
        "Held-out pairwise accuracy and log-loss; with true rewards, segment-return correlations and EPIC distance.",
        "rmlite prefs evaluate --dataset pendulum --model models/prefs --json",
    )
    q.add_argument(
        "--model",
        default=None,
        help="saved model; without it, train on the training episodes' pairs and evaluate",
    )
    _model_flags(q)


def add_bench_commands(bench: Any) -> None:
    """Register ``rmlite bench prefs``."""
    b = bench.add_parser(
        "prefs",
        help="Training time and held-out accuracy of the three backends on the same preference pairs.",
        description="Roll out Pendulum-v1, simulate pairs with a B-Pref teacher, and train LightGBM, XGBoost and the MLP on the same pairs: training time, held-out pairwise accuracy (and the true reward's on the same labels), segment-return Pearson.",
        epilog="Example:\n  rmlite bench prefs --pairs 20000",
        formatter_class=_Formatter,
    )
    b.set_defaults(func=cmd_bench_prefs)
    b.add_argument(
        "--pairs",
        type=lambda s: int(s.replace("_", "")),
        default=20_000,
        help="simulated judgements (80%% train, 20%% held out by episode)",
    )
    b.add_argument("--episodes", type=int, default=200, help="Pendulum-v1 episodes of 200 steps")
    b.add_argument("--segment-length", type=int, default=25, help="steps per judged segment")
    b.add_argument("--noise", type=float, default=0.1, help="flip rate of the simulated teacher")
    b.add_argument("--json", action="store_true")
