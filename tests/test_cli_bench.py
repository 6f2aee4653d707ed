"""``rmlite bench ...`` as a user runs it: stages on stderr while it runs, exit status 3
when a target it printed was missed (``--no-fail``: 0)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

from rmlite.cli._common import EXIT_OK, EXIT_TARGET_MISSED, _bench_exit


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rmlite.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "RMLITE_DB": ""},
        timeout=600,
    )


def test_a_missed_target_exits_3_and_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    result = {"targets": {"ingest within 2x": True, "fit within 1.10x of raw": False}}
    args = argparse.Namespace(json=False, no_fail=False)
    assert _bench_exit(args, result) == EXIT_TARGET_MISSED == 3
    err = capsys.readouterr().err
    assert "target missed: fit within 1.10x of raw (exit 3" in err
    assert "ingest within 2x" not in err

    args.no_fail = True
    assert _bench_exit(args, result) == EXIT_OK
    assert "exit 0: --no-fail" in capsys.readouterr().err

    met = {"targets": {"ingest within 2x": True}}
    assert _bench_exit(argparse.Namespace(json=False, no_fail=False), met) == EXIT_OK
    assert _bench_exit(argparse.Namespace(json=False), {"rows": 3}) == EXIT_OK  # no targets
    assert capsys.readouterr().err == ""

    # --json: the whole result on stdout, the verdict still on stderr.
    assert _bench_exit(argparse.Namespace(json=True, no_fail=False), result) == 3
    out = capsys.readouterr()
    assert json.loads(out.out) == result and "target missed" in out.err


def test_every_bench_with_targets_takes_no_fail() -> None:
    from rmlite.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    bench = sub.choices["bench"]
    benches = next(a for a in bench._actions if isinstance(a, argparse._SubParsersAction))
    with_targets = {"data", "models", "drift", "scale", "wrapper", "policy", "tune"}
    for name, parser in benches.choices.items():
        flags = {f for a in parser._actions for f in a.option_strings}
        assert ("--no-fail" in flags) == (name in with_targets), name


@pytest.mark.slow
def test_bench_models_shows_progress_and_exits_on_its_targets() -> None:
    tiny = ("bench", "models", "--rows", "1000", "--features", "4", "--n-estimators", "3")
    tiny += ("--mlp-epochs", "1", "--no-compiled")
    out = run(*tiny, "--json")
    result = json.loads(out.stdout)
    missed = [name for name, met in result["targets"].items() if not met]
    assert len(result["targets"]) == 4
    assert out.returncode == (EXIT_TARGET_MISSED if missed else EXIT_OK), out.stderr
    assert ("target missed" in out.stderr) == bool(missed)
    assert "[rmlite] lightgbm cpu" not in out.stderr  # no progress with --json

    out = run(*tiny, "--no-fail")
    assert out.returncode == EXIT_OK, out.stderr
    # Not a terminal: one line per stage, in order, on stderr; the table on stdout.
    stages = [line for line in out.stderr.splitlines() if line.startswith("[rmlite] ")]
    assert stages[:3] == [
        "[rmlite] building a 1,000 x 4 matrix",
        "[rmlite] lightgbm cpu: raw lightgbm.train, 3 trees",
        "[rmlite] lightgbm cpu: RewardRegressor.fit, 3 trees",
    ]
    assert any(s.startswith("[rmlite] mlp cpu") for s in stages)
    assert out.stdout.count("PASS") + out.stdout.count("MISS") == 4
    assert "[rmlite]" not in out.stdout

    quiet = run(*tiny, "--no-fail", "-q")
    assert quiet.returncode == EXIT_OK and "[rmlite] building" not in quiet.stderr
