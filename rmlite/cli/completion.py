"""``rmlite completion bash|zsh|fish``: a shell completion script for ``rmlite``.

Completion is argcomplete's: the shell runs ``rmlite`` with ``_ARGCOMPLETE`` set, and
:func:`complete` answers from the same parser that ``--help`` shows (commands, flags,
choices), then exits. The parser imports nothing heavy, so a TAB costs about as much as
``rmlite --help``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from rmlite.cli._common import EXIT_OK, Command

SHELLS = ("bash", "zsh", "fish")


def complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request and exit; return at once when there is none."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    argcomplete.autocomplete(parser)


def cmd_completion(args: argparse.Namespace) -> int:
    import argcomplete

    sys.stdout.write(argcomplete.shellcode(["rmlite"], shell=args.shell))
    return EXIT_OK


def add_commands(sub: Any, command: Command) -> None:
    """Register ``rmlite completion``."""
    p = command(
        "completion",
        cmd_completion,
        "Print the shell completion script for rmlite (bash, zsh or fish). Load it from "
        'your shell\'s startup file, e.g. in ~/.bashrc: eval "$(rmlite completion bash)"; '
        'in ~/.zshrc: eval "$(rmlite completion zsh)"; for fish: rmlite completion fish '
        "> ~/.config/fish/completions/rmlite.fish.",
        'eval "$(rmlite completion bash)"',
        db=False,
    )
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")
