"""The ``rmlite`` command: a thin layer over the public API.

One small function per subcommand, in one module per command group (``data``, ``train``,
``rl``, ``export``, ``tune``, ``prefs``, ``monitor``, ``dashboard``, ``serve``, ``bench``); this module builds the
parser from them and runs the command. Heavy libraries load inside the commands that need
them, so ``rmlite --help`` stays instant. Exit codes (see :mod:`rmlite.cli._errors`): 0
success, 2 bad input, 75 store busy or disk full, 130 interrupted, 1 a bug.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence

from rmlite.cli import (
    bench,
    completion,
    dashboard,
    data,
    explain,
    export,
    monitor,
    prefs,
    rl,
    serve,
    train,
    tune,
)
from rmlite.cli._common import _Formatter
from rmlite.cli._options import CommandParser, parse_args

EXIT_CODES = """Exit codes:
  0    success
  2    bad input: a log, parameter, model folder or --db path that cannot be used
  3    a check you asked for failed: a bench target missed, monitor --fail-on alerted
  75   try again later: another process holds the store, or the disk is full
  130  interrupted (Ctrl+C); the message says whether the store changed
  1    a bug in rmlite: the traceback, and a request to report it"""
"""The exit statuses, as ``rmlite --help`` lists them (the README's table says more)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``rmlite`` (also used to render the README's CLI tour).

    Every parser in the tree is a :class:`~rmlite.cli._options.CommandParser`: the global
    options (``--db``, ``--json``, ``-q``, ``-v``) work before or after any command.
    """
    parser = CommandParser(
        prog="rmlite",
        description="Reward models from RL logs: ingest into DuckDB, build features, train, "
        "validate. Defaults for the store and for each command can live in rmlite.toml "
        "(or [tool.rmlite] in pyproject.toml), found from here upward.",
        epilog="Example:\n  rmlite quickstart\n  rmlite ingest logs/*.parquet --dataset walker\n"
        "  rmlite --db walker.duckdb -q check --dataset walker\n\n" + EXIT_CODES,
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
        # --db and --json are global options (CommandParser); `db` is kept for the callers.
        return p

    # Each command group lives in its own module and adds its subcommands with the same
    # `command` helper (and imports nothing heavy).
    data.add_commands(sub, command)
    train.add_commands(sub, command)
    rl.add_commands(sub, command)
    export.add_commands(sub, command)
    tune.add_commands(sub, command)
    prefs.add_commands(sub, command)
    monitor.add_commands(sub, command)
    dashboard.add_commands(sub, command)
    serve.add_commands(sub, command)
    completion.add_commands(sub, command)
    explain.add_commands(sub, command)

    p = sub.add_parser(
        "bench",
        help="Benchmarks users can run (ratios against a baseline measured in the same run).",
        description="Benchmarks users can run: each measures its baseline in the same run "
        "and reports ratios, shows its stage on stderr while it runs, and exits 3 when a "
        "target it prints is missed (--no-fail: exit 0).",
        epilog="Example:\n  rmlite bench models --rows 1_000_000 --features 40\n"
        "  rmlite bench data --rows 1_000_000 --no-fail --json > bench-data.json",
        formatter_class=_Formatter,
    )
    benches = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    bench.add_bench_commands(benches)
    rl.add_bench_commands(benches)
    tune.add_bench_commands(benches)
    prefs.add_bench_commands(benches)
    serve.add_bench_commands(benches)
    return parser


def _version() -> str:
    from rmlite import __version__

    return f"rmlite {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rmlite`` command; every error ends in :mod:`rmlite.cli._errors`."""
    args = None
    try:
        # global options, $RMLITE_DB, rmlite.toml; completion
        args = parse_args(build_parser(), argv)
        code = int(args.func(args))
        if argv is None:
            # The command line's own process: the work is done, and a Ctrl+C from now on
            # would only turn the exit into a traceback.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        return code
    except SystemExit:
        raise  # argparse's own exit (--help, a bad flag), or a command's chosen code
    except BaseException as exc:
        from rmlite.cli import _errors

        return _errors.report(
            exc,
            json_mode=bool(getattr(args, "json", False)),
            command=getattr(args, "command", None),
        )


if __name__ == "__main__":
    sys.exit(main())
