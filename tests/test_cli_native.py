"""The ``rmlite`` command as shell users expect it: a light ``--help``, global options
before the command, ``-q``/``-v``, a project config file, shell completion.

Run in subprocesses, as a user would run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("polars", "numpy", "pyarrow", "duckdb", "lightgbm", "xgboost", "torch", "sklearn",
         "optuna", "scipy", "dask", "rich")  # fmt: skip


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rmlite.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "RMLITE_DB": "", **(env or {})},
        timeout=120,
    )


def imported_by(*args: str) -> set[str]:
    """Top-level packages that ``python -X importtime -m rmlite.cli ARGS`` loads."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "rmlite.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("args", [("--help",), ("train", "--help"), ("tune", "--help")])
def test_help_imports_nothing_heavy(args: tuple[str, ...]) -> None:
    loaded = imported_by(*args)
    assert "rmlite" in loaded  # the probe sees our own imports
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_feature_spec_stays_importable_from_features() -> None:
    from rmlite.data.feature_spec import FeatureSpec as Light
    from rmlite.data.features import FeatureSpec

    assert FeatureSpec is Light
