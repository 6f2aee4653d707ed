"""Global options of ``rmlite``, accepted before or after the command, as git's are.

``rmlite --db X -q datasets`` and ``rmlite datasets --db X -q`` mean the same: every
parser of the command tree is a :class:`CommandParser`, which carries the global options
with a suppressed default, so an option given after the command overrides one given
before it and an absent one leaves no trace; :func:`parse_args` then fills in what was
not given, from the environment (``RMLITE_DB``), the project's config file (see
:mod:`rmlite.cli._config`) and the built-in defaults, in that order.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

GLOBAL_DEFAULTS: dict[str, Any] = {"db": None, "json": False, "quiet": False, "verbose": 0}
"""The global options' values when neither the command line nor the config sets them."""


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that carries rmlite's global options.

    Subparsers inherit the class (argparse creates them with the parent's class), so each
    command and subcommand accepts them. A command module that declares one of them again
    (``--json``, ``--db``) gets the global option: its own declaration is dropped, so the
    command modules need not know which options are global.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._globals: dict[str, argparse.Action] = {}
        group = self.add_argument_group("global options (before or after the command)")
        options: list[tuple[tuple[str, ...], dict[str, Any]]] = [
            (("--db",), {"metavar": "FILE",
                         "help": "store file (default: $RMLITE_DB, else db in rmlite.toml, "
                                 "else ./rmlite.duckdb)"}),
            (("--json",), {"action": "store_true", "help": "machine-readable output on stdout"}),
            (("-q", "--quiet"), {"action": "store_true",
                                 "help": "no progress; log errors only"}),
            (("-v", "--verbose"), {"action": "count",
                                   "help": "more log lines (-vv: debug); with tune, Optuna's "
                                           "per-trial lines"}),
        ]  # fmt: skip
        for flags, options_kwargs in options:
            action = group.add_argument(*flags, default=argparse.SUPPRESS, **options_kwargs)
            self._globals.update(dict.fromkeys(flags, action))

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        globals_: dict[str, argparse.Action] = getattr(self, "_globals", {})
        flags = [a for a in args if isinstance(a, str) and a.startswith("-")]
        if flags and all(f in globals_ for f in flags):
            return globals_[flags[0]]  # a command declaring a global option gets the global one
        return super().add_argument(*args, **kwargs)


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv`` with the config file's defaults; resolve and apply the global options.

    Precedence: the command line, then ``$RMLITE_DB`` (for ``db``), then the config file,
    then :data:`GLOBAL_DEFAULTS`. A bad config file exits with status 2 and says where.
    """
    from rmlite.cli import _config
    from rmlite.cli.completion import complete

    complete(parser)  # exits here when the shell asked for completions
    try:
        config = _config.load(parser)
    except _config.ConfigError as exc:
        parser.error(str(exc))
    args = parser.parse_args(argv)
    for name, default in GLOBAL_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    if args.db is None:
        args.db = os.environ.get("RMLITE_DB") or (config.db if config else None)
    if config is not None and not args.quiet and not args.json and args.verbose:
        print(f"[rmlite] config: {config.path}", file=sys.stderr)
    _set_logging(args.quiet, args.verbose)
    return args


def _set_logging(quiet: bool, verbose: int) -> None:
    """Log to stderr at the level ``-q``/``-v`` ask for: ERROR, WARNING (default), INFO, DEBUG."""
    levels = (logging.WARNING, logging.INFO, logging.DEBUG)
    level = logging.ERROR if quiet else levels[min(verbose, len(levels) - 1)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(source)s] %(message)s"))
    handler.addFilter(_name_source)
    logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger().setLevel(level)


def _name_source(record: logging.LogRecord) -> bool:
    # rmlite's own lines read "[rmlite] ..."; a library's carry its logger's name.
    name = record.name.split(".")[0]
    record.source = "rmlite" if name == "rmlite" else record.name
    return True
