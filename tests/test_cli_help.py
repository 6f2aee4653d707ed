"""The help of every ``rmlite`` command and option, walked over the whole argparse tree.

Each option has a help line that shows its default at most once (never ``None``), each
command and subcommand ends with an example, and ``rmlite --help`` lists the exit codes.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from rmlite.cli.main import build_parser


def parsers(
    parser: argparse.ArgumentParser, path: str = "rmlite"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, f"{path} {name}")


TREE = list(parsers(build_parser()))
OPTIONS = [
    (f"{path} {action.option_strings[-1] if action.option_strings else action.dest}", p, action)
    for path, p in TREE
    for action in p._actions
    if not isinstance(action, (argparse._SubParsersAction, argparse._HelpAction))
]


def test_the_tree_is_walked() -> None:
    names = {path for path, _ in TREE}
    assert {"rmlite", "rmlite ingest", "rmlite bench", "rmlite bench models"} <= names
    assert len(TREE) > 30 and len(OPTIONS) > 200


@pytest.mark.parametrize("path", [path for path, _ in TREE])
def test_every_command_ends_with_an_example(path: str) -> None:
    parser = dict(TREE)[path]
    epilog = parser.epilog or ""
    assert re.search(r"Examples?:\n  .*\brmlite\b", epilog), f"{path}: no example in its epilog"
    assert parser.format_help().rstrip().splitlines()[-1].strip(), path


def test_every_option_has_one_help_line_with_its_default_once() -> None:
    missing, twice, none = [], [], []
    for name, parser, action in OPTIONS:
        if not (action.help or "").strip():
            missing.append(name)
            continue
        text = parser._get_formatter()._expand_help(action)
        if len(re.findall(r"\bdefault\b", text, flags=re.I)) > 1:
            twice.append(f"{name}: {text}")
        if re.search(r"default:? None\b", text):
            none.append(f"{name}: {text}")
    assert not twice, "defaults said twice:\n" + "\n".join(twice)
    assert not none, "defaults that say nothing:\n" + "\n".join(none)
    assert not missing, f"options without help: {missing}"


def test_a_default_the_help_does_not_state_is_appended() -> None:
    ingest = dict(TREE)["rmlite ingest"]
    on_error = next(a for a in ingest._actions if "--on-error" in a.option_strings)
    assert ingest._get_formatter()._expand_help(on_error).endswith("(default: raise)")
    dataset = next(a for a in ingest._actions if "--dataset" in a.option_strings)
    assert "default" not in ingest._get_formatter()._expand_help(dataset)  # required


def test_top_level_help_lists_the_exit_codes() -> None:
    text = build_parser().format_help()
    block = text.split("Exit codes:", 1)[-1]
    assert "Exit codes:" in text
    for code, meaning in ((0, "success"), (2, "bad input"), (1, "bug"), (3, "target")):
        assert re.search(rf"^\s+{code}\s+.*{meaning}", block, flags=re.M), (code, block)
