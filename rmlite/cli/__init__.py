"""The ``rmlite`` command line: a thin layer over the public API, one module per command group."""

from __future__ import annotations

from rmlite.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
