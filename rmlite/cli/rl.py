"""Commands that close the RL loop: ``collect``, ``relabel``, ``minari import|export``,
and the benchmarks ``bench wrapper`` and ``bench policy``.

Registered by :func:`rmlite.cli.build_parser`. Nothing heavy is imported until a
command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from rmlite.cli._common import (
    EXIT_OK,
    Command,
    _add_no_fail,
    _bench_exit,
    _bench_log,
    _bench_progress,
    _console,
    _count,
    _emit_json,
    _Formatter,
    _int_in,
    _Progress,
    _seed,
    progress_enabled,
)

# ---------------------------------------------------------------------- commands


def cmd_collect(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore
    from rmlite.rl import collect

    progress = _Progress(enabled=progress_enabled(args))
    try:
        report = collect(
            LogStore(args.db),
            args.env,
            args.episodes,
            args.dataset,
            policy=args.policy,
            seed=args.seed,
            num_envs=args.num_envs,
            max_steps=args.max_steps,
            vectorization=args.vectorization,
            progress=progress,
            episode_offset=args.episode_offset,
        )
    finally:
        progress.stop()
    if args.json:
        _emit_json(report.to_dict())
    else:
        _console().print(str(report))
    return EXIT_OK


def cmd_relabel(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore
    from rmlite.rl import relabel

    progress = _Progress(enabled=progress_enabled(args))
    try:
        report = relabel(
            LogStore(args.db),
            args.model,
            args.dataset,
            args.out,
            pessimism=args.pessimism,
            rescale=tuple(args.rescale) if args.rescale else None,
            progress=progress,
        )
    finally:
        progress.stop()
    if args.json:
        _emit_json(report.to_dict())
    else:
        _console().print(str(report))
    return EXIT_OK


def cmd_minari_import(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore
    from rmlite.rl import import_minari

    report = import_minari(LogStore(args.db), args.dataset_id, args.dataset)
    if args.json:
        _emit_json(report.to_dict())
    else:
        _console().print(str(report))
    return EXIT_OK


def cmd_minari_export(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore
    from rmlite.rl import export_minari

    path = export_minari(
        LogStore(args.db), args.dataset, args.dataset_id, env_id=args.env, data_format=args.format
    )
    if args.json:
        _emit_json({"dataset": args.dataset, "minari_id": args.dataset_id, "path": path})
    else:
        _console().print(f"{args.dataset} -> Minari dataset {args.dataset_id!r} at {path}")
    return EXIT_OK


def cmd_bench_wrapper(args: argparse.Namespace) -> int:
    from rmlite.bench import bench_wrapper

    progress = _bench_progress(args)
    try:
        result = bench_wrapper(
            num_envs=args.num_envs,
            steps=args.steps,
            repeats=args.repeats,
            episodes=args.episodes,
            log=None if args.json else _bench_log,
            env=args.env,
            max_steps=args.max_steps,
            progress=progress,
        )
    finally:
        progress.stop()
    return _bench_exit(args, result)


def cmd_bench_policy(args: argparse.Namespace) -> int:
    from rmlite.bench import bench_policy

    progress = _bench_progress(args)
    try:
        result = bench_policy(
            budget=args.budget,
            algo=args.algo,
            episodes=args.episodes,
            eval_episodes=args.eval_episodes,
            seed=args.seed,
            log=None if args.json else _bench_log,
            progress=progress,
        )
    finally:
        progress.stop()
    return _bench_exit(args, result)


# ------------------------------------------------------------------------ parser


def add_commands(sub: Any, command: Command) -> None:
    """Register ``collect``, ``relabel`` and ``minari`` with the ``rmlite`` parser."""
    p = command(
        "collect",
        cmd_collect,
        "Roll out a Gymnasium env (vectorized) and ingest its transitions.",
        "rmlite collect --env Pendulum-v1 --episodes 50 --policy random --seed 0 --dataset pendulum",
    )
    p.add_argument("--env", required=True, help="registered Gymnasium id, e.g. Pendulum-v1")
    p.add_argument("--episodes", type=_count, default=10, help="episodes to record")
    p.add_argument("--dataset", required=True, help="dataset to add the transitions to")
    p.add_argument(
        "--policy",
        default="random",
        help="'random', or MODULE:CALLABLE called as callable(obs_batch, rng) -> actions",
    )
    p.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="with --episode-offset: same seed and offset, same rows (re-collect adds nothing)",
    )
    p.add_argument(
        "--episode-offset",
        type=_int_in(0, None, "an episode id >= 0"),
        default=None,
        metavar="N",
        help="id of the first episode; the rollout is seeded with SEED + N (default: one "
        "past the largest id the dataset holds, so each collect adds new episodes)",
    )
    p.add_argument("--num-envs", type=_count, default=8, help="sub-envs stepped together")
    p.add_argument("--max-steps", type=_count, default=None, help="step limit per episode")
    p.add_argument(
        "--vectorization",
        choices=["sync", "async"],
        default="sync",
        help="sync: one process; async: one process per sub-env",
    )

    p = command(
        "relabel",
        cmd_relabel,
        "Write a model's predicted rewards as a new dataset (or Parquet), with provenance.",
        "rmlite relabel --model models/walker --dataset walker --out walker-learned --pessimism 1",
    )
    p.add_argument("--model", required=True, help="model folder (trained on a per-step target)")
    p.add_argument("--dataset", required=True, help="dataset to relabel (left untouched)")
    p.add_argument("--out", required=True, help="new dataset name, or a .parquet file to write")
    p.add_argument(
        "--pessimism",
        type=float,
        default=0.0,
        metavar="K",
        help="reward = mean - K * std over ensemble members (needs --n-members > 1 at training)",
    )
    p.add_argument(
        "--rescale",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=None,
        help="map the predicted rewards linearly onto [LOW, HIGH]",
    )

    p = command(
        "minari",
        _need_subcommand,
        "Import or export local Minari datasets (nothing is downloaded).",
        "rmlite minari import mujoco/walker2d/medium-v0 --dataset walker-medium",
        db=False,
    )
    minari = p.add_subparsers(dest="minari_command", metavar="ACTION", required=True)
    for name, func, help_text, example in (
        (
            "import",
            cmd_minari_import,
            "Ingest a local Minari dataset (found under $MINARI_DATASETS_PATH or ~/.minari).",
            "rmlite minari import D4RL/pen/human-v2 --dataset pen-human",
        ),
        (
            "export",
            cmd_minari_export,
            "Write a store dataset as a new local Minari dataset.",
            "rmlite minari export --dataset pendulum pendulum/random-v0 --env Pendulum-v1",
        ),
    ):
        m = minari.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"Example:\n  {example}",
            formatter_class=_Formatter,
        )
        m.set_defaults(func=func)
        m.add_argument(
            "--db", default=None, help="store file (default: $RMLITE_DB or ./rmlite.duckdb)"
        )
        m.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        m.add_argument("dataset_id", help="Minari dataset id, e.g. pendulum/random-v0")
        if name == "import":
            m.add_argument(
                "--dataset", default=None, help="store dataset (default: the id, '/' -> '-')"
            )
        else:
            m.add_argument("--dataset", required=True, help="store dataset to export")
            m.add_argument("--env", default=None, help="Gymnasium id to record in the dataset")
            m.add_argument(
                "--format",
                choices=["arrow", "hdf5", "parquet"],
                default="arrow",
                help="Minari storage format",
            )


def _need_subcommand(args: argparse.Namespace) -> int:  # pragma: no cover - argparse requires one
    return EXIT_OK


def add_bench_commands(bench: Any) -> None:
    """Register ``bench wrapper`` and ``bench policy`` under ``rmlite bench``."""
    b = bench.add_parser(
        "wrapper",
        help="Per-step time of a 16-env vector env (Pendulum-v1 or MuJoCo) with and without the learned reward.",
        description="Train the quickstart LightGBM reward model (100 trees) on random episodes of --env, then time its vector env plain, with LearnedRewardVector predicting through the booster, and through compiled trees (rmlite[fast], the default path); one batched prediction per step; targets: the default path at most x1.25 the plain step on Pendulum-v1, x1.15 on MuJoCo envs.",
        epilog="Example:\n  rmlite bench wrapper --num-envs 16 --steps 1000\n  rmlite bench wrapper --env HalfCheetah-v5 --episodes 20 --max-steps 200",
        formatter_class=_Formatter,
    )
    b.set_defaults(func=cmd_bench_wrapper)
    b.add_argument("--num-envs", type=int, default=16, help="sub-envs of the vector env")
    b.add_argument("--steps", type=int, default=1000, help="steps per timing")
    b.add_argument("--repeats", type=int, default=5, help="alternating timings; medians compared")
    b.add_argument("--episodes", type=int, default=40, help="episodes the reward model trains on")
    b.add_argument(
        "--env", default="Pendulum-v1", help="Gymnasium id (HalfCheetah-v5, Walker2d-v5: MuJoCo)"
    )
    b.add_argument(
        "--max-steps", type=int, default=None, help="cap on the training episodes' length"
    )
    _add_no_fail(b)
    b.add_argument("--json", action="store_true")

    b = bench.add_parser(
        "policy",
        help="Agents trained on the learned and on the true reward (needs rmlite[agents]).",
        description="Train the quickstart reward model on random Pendulum-v1 logs, then two stable-baselines3 agents with the same budget, one on the learned reward and one on the true reward; report both agents' true returns and the normalized score 100 (R - R_random) / (R_true - R_random) (target >= 90).",
        epilog="Example:\n  rmlite bench policy --budget 20000 --algo sac",
        formatter_class=_Formatter,
    )
    b.set_defaults(func=cmd_bench_policy)
    b.add_argument("--budget", type=int, default=20_000, help="env steps per agent")
    b.add_argument("--algo", choices=["sac", "td3"], default="sac", help="stable-baselines3 agent")
    b.add_argument("--episodes", type=int, default=40, help="episodes the reward model trains on")
    b.add_argument("--eval-episodes", type=int, default=10, help="episodes each agent is scored on")
    b.add_argument("--seed", type=int, default=0, help="seeds rollouts, model and agents")
    _add_no_fail(b)
    b.add_argument("--json", action="store_true")
