"""Helpers shared by the command groups of ``rmlite``: output, config flags, exit codes."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import typing
from collections.abc import Callable, Iterator
from typing import Any

Command = Callable[..., argparse.ArgumentParser]
"""``command(sub, name, ...)``: what ``build_parser`` hands each group's ``add_commands``."""

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2
EXIT_TARGET_MISSED = 3
"""A check the command was asked to make failed: a benchmark missed a target it printed
(``--no-fail``: exit 0 anyway), or ``monitor --fail-on`` saw an alert. Not a bug (1) and
not bad input (2), so a script tells them apart."""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions and examples keep their line breaks; each option's default shows once.

    argparse's own defaults formatter appends ``(default: X)`` to every option, even when
    the help already says its default, when the option is required, when the default is
    ``None`` (nothing given) or when it is a flag's ``False``. Here the default is appended
    only when it says something the help does not.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text.lower()
            or action.required
            or not action.option_strings
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or action.nargs == 0  # store_true / store_const / count / help / version
        ):
            return text
        return text + " (default: %(default)s)"


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


def _print_warnings(messages: list[str]) -> None:
    """Print a result's warnings under it, one ``warning:`` line each (stdout: they belong
    to the numbers they qualify; ``--json`` carries them in its ``warnings`` list)."""
    for message in messages:
        _console().print(f"[yellow]warning:[/] {message}")


@contextlib.contextmanager
def _printed_warnings() -> Iterator[None]:
    """Silence rmlite's Python warnings inside a command that prints them in its output
    (else each would show twice, once as a traceback-style line on stderr)."""
    import warnings

    from rmlite.exceptions import RmliteWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RmliteWarning)
        yield


def progress_enabled(args: argparse.Namespace) -> bool:
    """Show progress unless ``--json`` or ``-q/--quiet`` asked for silence."""
    return not (getattr(args, "json", False) or getattr(args, "quiet", False))


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
        # the field's default, once (the flag's own default is None: "not given")
        shown = help_text if default is None else f"{help_text} (default: {default})"
        if isinstance(default, bool):
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=shown,
            )
        elif f.name == "clip":
            parser.add_argument(
                flag,
                dest=f.name,
                type=float,
                nargs=2,
                metavar=("LOW", "HIGH"),
                default=None,
                help=shown,
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
                help=shown,
            )


def _literal_choices(annotation: Any) -> list[str] | None:
    # feature_spec, not features: the flags are built for every `rmlite --help`, and
    # rmlite.data.features imports Polars and NumPy.
    from rmlite.data import feature_spec

    aliases = {
        "Target": feature_spec.Target,
        "Truncation": feature_spec.Truncation,
        "Missing": feature_spec.Missing,
        "Scaling": feature_spec.Scaling,
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


# ------------------------------------------------------------ estimator options


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
        params["hidden_sizes"] = tuple(args.hidden_sizes)
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


# ------------------------------------------------- argument types (argparse: exit 2)


def _int_in(low: int, high: int | None, what: str) -> Callable[[str], int]:
    """An argparse type: an int in ``[low, high]``; the error says the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what}; got {value}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


_seed = _int_in(0, 2**32 - 1, "a seed in [0, 4294967295]")
_port = _int_in(0, 65535, "a port in [0, 65535] (0: any free one)")
_count = _int_in(1, None, "an int >= 1")


def _cv_folds(text: str) -> int:
    """``--cv`` of ``train``: 0 (no cross-validation) or at least 2 folds."""
    value = _int_in(0, None, "0 (off) or a number of folds >= 2")(text)
    if value == 1:
        raise argparse.ArgumentTypeError("expected 0 (off) or a number of folds >= 2; got 1")
    return value


def _hidden_sizes(text: str) -> tuple[int, ...]:
    """``--hidden-sizes 256,256``: layer widths, each an int >= 1."""
    try:
        sizes = tuple(int(h) for h in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected layer widths >= 1 separated by commas, e.g. 256,256; got {text!r}"
        )
    return sizes


# ------------------------------------------------------------------------ misc


def _bad_input(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _bench_log(message: str) -> None:
    print(message, flush=True)


def _add_no_fail(parser: argparse.ArgumentParser) -> None:
    """``--no-fail`` of a benchmark with targets: exit 0 even when one is missed."""
    parser.add_argument(
        "--no-fail",
        action="store_true",
        help=f"exit 0 even when a target is missed (else exit {EXIT_TARGET_MISSED})",
    )


def _bench_exit(
    args: argparse.Namespace, result: dict[str, Any], targets: dict[str, bool] | None = None
) -> int:
    """The exit status of a benchmark: :data:`EXIT_TARGET_MISSED` when a target in
    ``targets`` (default ``result["targets"]``; name -> met) was missed and ``--no-fail``
    was not given.

    With ``--json`` the result goes to stdout first; the missed targets are named on
    stderr either way, so a CI log says why the step failed.
    """
    if args.json:
        _emit_json(result)
    if targets is None:
        targets = result.get("targets", {})
    missed = [name for name, met in targets.items() if not met]
    if not missed:
        return EXIT_OK
    no_fail = bool(getattr(args, "no_fail", False))
    verdict = "exit 0: --no-fail" if no_fail else f"exit {EXIT_TARGET_MISSED}; --no-fail exits 0"
    print(f"[rmlite] target missed: {'; '.join(missed)} ({verdict})", file=sys.stderr)
    return EXIT_OK if no_fail else EXIT_TARGET_MISSED


def _bench_progress(args: argparse.Namespace) -> _Progress:
    """A benchmark's progress on stderr: its stages, silent with ``--json`` or ``-q``."""
    return _Progress(enabled=progress_enabled(args))


def _with_client(args: argparse.Namespace, job: Callable[[Any], Any]) -> Any:
    if not (getattr(args, "scheduler", None) or getattr(args, "cluster", None)):
        return job(None)
    import os

    from rmlite.distributed import connect

    # Local workers inherit this process's stdout, and the engines' C code prints there:
    # point it at stderr while the cluster lives, so --json output stays parseable.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with connect(scheduler=args.scheduler, cluster=args.cluster) as client:
            return job(client)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
