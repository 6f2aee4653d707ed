"""The README's examples run as written (the CLI tour and the Python block)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_setup_commands_are_the_documented_two() -> None:
    setup = blocks("bash")[0].strip().splitlines()
    assert [line.split("#")[0].strip() for line in setup] == [
        'pip install -e ".[dev]" && rmlite quickstart',
        "python -m pytest",
    ]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python3 -m pytest" in ci and '-e ".[dev]"' in ci


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_each_python_block_stands_alone(index: int) -> None:
    """Every README Python block names only what it imports or makes itself (a user pastes
    one block into a fresh interpreter); the slow tour below runs them that way."""
    code = blocks("python")[index]
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F821,F401",
         "--stdin-filename", f"readme_block_{index}.py", "-"],
        input=code, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, f"README Python block {index}:\n{done.stdout}"


@pytest.mark.slow  # 20-120 s of subprocesses on 2 busy cores; the default run stays short
def test_cli_tour_and_python_example_run(tmp_path: Path) -> None:
    tour = blocks("bash")[1]
    env = {
        **os.environ,
        "RMLITE_DB": str(tmp_path / "tour.duckdb"),
        "MINARI_DATASETS_PATH": str(tmp_path / "minari"),  # not the user's ~/.minari
    }
    bin_dir = os.path.dirname(sys.executable)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    for line in tour.splitlines():
        command = line.split("  #")[0].strip()
        if not command or command.startswith("#"):
            continue
        if command.startswith("rmlite bench data"):  # the same command, smaller
            # (ratios at toy sizes miss their targets: --no-fail, or the command exits 3)
            command = command.replace("1_000_000", "5_000") + " --episode-length 500 --no-fail"
        elif command.startswith("rmlite bench models"):
            command = command.replace("1_000_000", "2_000") + " --n-estimators 5 --no-fail"
        elif command.startswith("rmlite bench drift"):
            command = command.replace("--windows 40", "--windows 2") + (
                " --shift-windows 1 --sizes 5 --train-episodes 10 --no-fail"
            )
        done = subprocess.run(
            command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}"
    assert (tmp_path / "features.parquet").exists() and (tmp_path / "all.parquet").exists()
    assert "plotly" in (tmp_path / "report.html").read_text()

    # Each block in a fresh interpreter, as a user pastes it: later blocks may read the
    # files earlier ones wrote (the store, the models), never their variables.
    for i, code in enumerate(blocks("python")):
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"README Python block {i}:\n{code}\n{done.stderr}"
    assert (tmp_path / "project.duckdb").exists()
    assert (tmp_path / "models" / "pendulum-mlp" / "model.json").exists()


@pytest.mark.parametrize(
    "name",
    [
        "data.schema",
        "data.logs",
        "data.features",
        "data.feature_spec",
        "data.store",
        "testing",
        "pipeline.rewards",
    ],
)
def test_docstring_examples(name: str) -> None:
    import doctest
    import importlib

    module = importlib.import_module(f"rmlite.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"rmlite.{name} has no runnable example"
    assert result.failed == 0
