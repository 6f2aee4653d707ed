"""The project config file: ``rmlite.toml``, or ``[tool.rmlite]`` in ``pyproject.toml``.

Searched from the working directory upward, as git looks for ``.git``: in each folder
``rmlite.toml`` first, then a ``pyproject.toml`` that has a ``[tool.rmlite]`` table (one
without it does not stop the search, as with ruff). ``$RMLITE_CONFIG`` names a file
instead (an empty value turns the search off). Keys::

    db = "data/project.duckdb"    # the store, relative to this file's folder

    [train]                       # defaults of `rmlite train`: any of its options,
    dataset = "walker"            # named as the flag without dashes (n_estimators or
    backend = "xgboost"           # n-estimators), typed as TOML values; a required
    n-estimators = 300            # option set here need not be typed

    [bench.tune]                  # a subcommand's table sits inside its command's
    rows = 100000

Precedence: the command line, then ``$RMLITE_DB`` (for ``db``), then this file, then the
built-in defaults. An unknown key, or a value the option would refuse, is an error that
names the file, the table and the key.
"""

from __future__ import annotations

import argparse
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmlite.exceptions import ParameterError

CONFIG_FILE = "rmlite.toml"
GLOBAL_KEYS = ("db",)


class ConfigError(ParameterError):
    """The config file has an unknown key or a value its option refuses."""


@dataclass
class Config:
    """A config file found and applied: where it is and the store it names."""

    path: Path
    db: str | None


def find(start: Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The config file that applies in ``start`` (default: the working directory) and its table."""
    explicit = os.environ.get("RMLITE_CONFIG")
    if explicit is not None:
        if not explicit:
            return None
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"$RMLITE_CONFIG names {explicit!r}, which is not a file.")
        table = _read(path)
        if path.name == "pyproject.toml":
            table = table.get("tool", {}).get("rmlite", {})
        return path, table
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        own = folder / CONFIG_FILE
        if own.is_file():
            return own, _read(own)
        project = folder / "pyproject.toml"
        if project.is_file():
            tool = _read(project).get("tool", {})
            if isinstance(tool, dict) and "rmlite" in tool:
                return project, tool["rmlite"]
    return None


def _read(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}.") from exc


def load(parser: argparse.ArgumentParser, start: Path | None = None) -> Config | None:
    """Find the config file, check it against ``parser``, set the commands' defaults."""
    found = find(start)
    if found is None:
        return None
    path, table = found
    where = "[tool.rmlite]" if path.name == "pyproject.toml" else ""
    db = None
    for key, value in table.items():
        if key == "db":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{path}: {where or 'key'} 'db' must be a file path (a string).")
            db = str(path.parent / value) if not os.path.isabs(value) else value
            continue
        commands = _commands(parser)
        if key in commands and isinstance(value, dict):
            _apply(path, f"{where[:-1] + '.' if where else '['}{key}]", commands[key], value)
            continue
        known = [*GLOBAL_KEYS, *commands]
        raise ConfigError(
            f"{path}: unknown key {key!r}{' in ' + where if where else ''}{_did_you_mean(key, known)}; "
            f"known: {', '.join(GLOBAL_KEYS)} and a table per command ({', '.join(commands)})."
        )
    return Config(path=path, db=db)


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps no public list of subcommands
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _apply(
    path: Path, table_name: str, parser: argparse.ArgumentParser, table: dict[str, Any]
) -> None:
    options = {
        a.dest: a
        for a in parser._actions
        if a.option_strings and a.default is not argparse.SUPPRESS
        and not isinstance(a, argparse._HelpAction | argparse._VersionAction)
    }  # fmt: skip
    commands = _commands(parser)
    defaults: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if key in commands and isinstance(value, dict):
            _apply(path, f"{table_name[:-1]}.{key}]", commands[key], value)
            continue
        if name not in options:
            hint = (
                "; set it at the top of the file" if name in GLOBAL_KEYS
                else _did_you_mean(name, list(options))
            )  # fmt: skip
            raise ConfigError(
                f"{path}: {table_name} has unknown key {key!r}{hint}; known: "
                f"{', '.join(sorted(options)) or 'none'}."
            )
        defaults[name] = _convert(path, table_name, key, options[name], value)
        options[name].required = False  # `[train] dataset = "walker"` stands in for --dataset
    parser.set_defaults(**defaults)


def _convert(path: Path, table_name: str, key: str, action: argparse.Action, value: Any) -> Any:
    """The value as the option would hold it after parsing its flag; refuse what it would refuse."""
    place = f"{path}: {table_name} {key} = {value!r}"
    flags = isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction
                       | argparse.BooleanOptionalAction)  # fmt: skip
    if flags:
        if not isinstance(value, bool):
            raise ConfigError(f"{place}: expected true or false.")
        return value
    if isinstance(action, argparse._AppendAction):
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ConfigError(f'{place}: expected a list of strings, e.g. ["a=1", "b=2"].')
        return [_one(place, action, v) for v in value]
    if isinstance(action.nargs, int):
        if not (isinstance(value, list) and len(value) == action.nargs):
            raise ConfigError(f"{place}: expected a list of {action.nargs} values.")
        return [_one(place, action, v) for v in value]
    if isinstance(value, dict | list | bool):
        raise ConfigError(f"{place}: expected one {_kind(action)}.")
    return _one(place, action, value)


def _one(place: str, action: argparse.Action, value: Any) -> Any:
    if isinstance(value, bool | dict | list):
        raise ConfigError(f"{place}: expected a {_kind(action)}.")
    converted = value
    if callable(action.type):
        try:
            converted = action.type(str(value))
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            raise ConfigError(
                f"{place}: {exc}" if str(exc) else f"{place}: expected a {_kind(action)}."
            ) from exc
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"{place}: expected one of {choices}.")
    return converted


def _kind(action: argparse.Action) -> str:
    name = getattr(action.type, "__name__", "")
    return {"int": "integer", "float": "number"}.get(name, "value" if action.type else "string")


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
