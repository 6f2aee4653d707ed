"""The ``rmlite`` command: a thin layer over the public API.

One small function per subcommand, in one module per command group (``data``, ``train``,
``rl``, ``tune``, ``prefs``, ``monitor``, ``dashboard``, ``bench``); this module builds the
parser from them and runs the command. Heavy libraries load inside the commands that need
them, so ``rmlite --help`` stays instant. Exit codes: 0 success, 2 bad input (a clear
message on stderr), 1 internal failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rmlite.cli import bench, dashboard, data, explain, monitor, prefs, rl, train, tune
from rmlite.cli._common import EXIT_INTERNAL, _bad_input, _Formatter


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

    # Each command group lives in its own module and adds its subcommands with the same
    # `command` helper (and imports nothing heavy).
    data.add_commands(sub, command)
    train.add_commands(sub, command)
    rl.add_commands(sub, command)
    tune.add_commands(sub, command)
    prefs.add_commands(sub, command)
    monitor.add_commands(sub, command)
    dashboard.add_commands(sub, command)
    explain.add_commands(sub, command)

    p = sub.add_parser(
        "bench",
        help="Benchmarks users can run (ratios against a baseline measured in the same run).",
        formatter_class=_Formatter,
    )
    benches = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    bench.add_bench_commands(benches)
    rl.add_bench_commands(benches)
    tune.add_bench_commands(benches)
    prefs.add_bench_commands(benches)
    return parser


def _version() -> str:
    from rmlite import __version__

    return f"rmlite {__version__}"


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
