"""The ``rmlite`` command as shell users expect it: a light ``--help``, global options
before the command, ``-q``/``-v``, a project config file, shell completion.

Run in subprocesses, as a user would run them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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


@pytest.fixture(scope="module")
def log_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rmlite.testing import rollout

    path = tmp_path_factory.mktemp("logs") / "pendulum.parquet"
    rollout("Pendulum-v1", episodes=2, seed=1, max_steps=20).write_parquet(path)
    return path


@pytest.mark.slow  # 20-120 s of subprocesses on 2 busy cores; the default run stays short
def test_global_options_work_before_and_after_the_command(tmp_path: Path, log_file: Path) -> None:
    db = str(tmp_path / "s.duckdb")
    before = run("--db", db, "-q", "ingest", str(log_file), "--dataset", "pend", cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    assert before.stderr == ""  # -q: no progress lines
    listed = run("--json", "--db", db, "datasets", cwd=tmp_path)
    after = run("datasets", "--db", db, "--json", cwd=tmp_path)
    assert listed.returncode == after.returncode == 0, listed.stderr + after.stderr
    assert json.loads(listed.stdout) == json.loads(after.stdout)
    assert [d["dataset"] for d in json.loads(listed.stdout)] == ["pend"]
    # Given twice, the one after the command wins (it is nearer the command).
    both = run("--db", str(tmp_path / "none.duckdb"), "datasets", "--db", db, "--json")
    assert both.returncode == 0 and json.loads(both.stdout) == json.loads(after.stdout)

    # Without -q, progress goes to stderr (piped: plain lines); stdout keeps the result.
    loud = run("--db", str(tmp_path / "t.duckdb"), "ingest", str(log_file), "--dataset", "p")
    assert loud.returncode == 0 and "[rmlite]" in loud.stderr


def test_every_command_takes_the_global_options() -> None:
    from rmlite.cli import build_parser
    from rmlite.cli._config import _commands

    def leaves(parser, path):  # type: ignore[no-untyped-def]
        children = _commands(parser)
        if not children:
            yield path, parser
        for name, child in children.items():
            yield from leaves(child, (*path, name))

    found = list(leaves(build_parser(), ()))
    assert len(found) > 20
    for path, parser in found:
        text = parser.format_help()
        for flag in ("--db", "--json", "-q, --quiet", "-v, --verbose"):
            assert flag in text, (path, flag)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.slow  # 20-120 s of subprocesses on 2 busy cores; the default run stays short
def test_config_file_sets_the_store_and_command_defaults(tmp_path: Path, log_file: Path) -> None:
    project = tmp_path / "project"
    write(project / "rmlite.toml", 'db = "data/store.duckdb"\n[sql]\nformat = "csv"\n'
          '[check]\ndataset = "pend"\n')  # fmt: skip
    deep = project / "src" / "deeper"
    deep.mkdir(parents=True)
    (project / "data").mkdir()
    # Found from a subfolder, as git finds .git; db is relative to the file's folder.
    ingested = run("-q", "ingest", str(log_file), "--dataset", "pend", cwd=deep)
    assert ingested.returncode == 0, ingested.stderr
    assert (project / "data" / "store.duckdb").exists()
    # [sql] format = "csv" is the default now; the command line still wins.
    csv = run("sql", "SELECT count(*) AS n FROM transitions", cwd=deep)
    assert csv.returncode == 0, csv.stderr
    assert csv.stdout.split() == ["n", "40"]
    as_json = run("sql", "SELECT count(*) AS n FROM transitions", "--format", "json", cwd=deep)
    assert json.loads(as_json.stdout) == [{"n": 40}]
    # A required option set in the file need not be typed.
    check = run("check", "--json", cwd=deep)
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["episodes"]["episodes"] == 2

    # $RMLITE_DB beats the file, --db beats both.
    other = str(tmp_path / "other.duckdb")
    by_env = run("datasets", "--json", cwd=deep, env={"RMLITE_DB": other})
    # Under --json the error is a JSON object on stdout (rmlite.cli._errors).
    assert by_env.returncode == 2 and "other.duckdb" in json.loads(by_env.stdout)["error"]
    by_flag = run("datasets", "--json", "--db", str(project / "data" / "store.duckdb"),
                  cwd=deep, env={"RMLITE_DB": other})  # fmt: skip
    assert by_flag.returncode == 0 and json.loads(by_flag.stdout)[0]["dataset"] == "pend"
    # -v says which file applied.
    told = run("-v", "datasets", cwd=deep)
    assert f"config: {project / 'rmlite.toml'}" in told.stderr


def test_pyproject_tool_table_and_the_upward_search(tmp_path: Path) -> None:
    # A pyproject.toml without [tool.rmlite] does not stop the search...
    write(tmp_path / "rmlite.toml", 'db = "outer.duckdb"\n')
    write(tmp_path / "a" / "pyproject.toml", '[project]\nname = "x"\n')
    out = run("-v", "datasets", cwd=tmp_path / "a")
    assert f"config: {tmp_path / 'rmlite.toml'}" in out.stderr
    assert "outer.duckdb" in out.stderr  # no store there yet: exit 2 naming it
    # ... one with it does.
    write(tmp_path / "b" / "pyproject.toml", '[tool.rmlite]\ndb = "inner.duckdb"\n')
    out = run("-v", "datasets", cwd=tmp_path / "b")
    assert f"config: {tmp_path / 'b' / 'pyproject.toml'}" in out.stderr
    assert "inner.duckdb" in out.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('dbb = "x.duckdb"\n', r"unknown key 'dbb' \(did you mean 'db'\?\)"),
        ("[train]\nn_estimatorz = 3\n", r"\[train\] has unknown key 'n_estimatorz' \(did you mean 'n_estimators'\?\)"),
        ("[train]\ndb = 'x'\n", r"\[train\] has unknown key 'db'; set it at the top of the file"),
        ("[trian]\nbackend = 'xgboost'\n", r"unknown key 'trian' \(did you mean 'train'\?\)"),
        ("[train]\nholdout = 'a lot'\n", r"\[train\] holdout = 'a lot': could not convert"),
        ("[train]\ndevice = 'tpu'\n", r"\[train\] device = 'tpu': expected one of cpu, cuda, auto"),
        ("[train]\nnext_obs = 1\n", r"\[train\] next_obs = 1: expected true or false"),
        ("[bench.tune]\nrowz = 5\n", r"\[bench.tune\] has unknown key 'rowz'"),
        ("db = \n", r"not valid TOML"),
    ],
)  # fmt: skip
def test_a_bad_config_file_is_an_error_naming_file_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    from rmlite.cli import build_parser
    from rmlite.cli._config import ConfigError, load

    config = write(tmp_path / "rmlite.toml", text)
    with pytest.raises(ConfigError, match=re.escape(str(config)) + ".*" + expected):
        load(build_parser(), start=tmp_path)


def test_the_command_refuses_a_bad_config_file_with_status_2(tmp_path: Path) -> None:
    config = write(tmp_path / "rmlite.toml", "[train]\nn_estimatorz = 3\n")
    out = run("datasets", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert f"{config}: [train] has unknown key 'n_estimatorz'" in out.stderr
    assert "did you mean 'n_estimators'?" in out.stderr


def test_a_good_nested_table_applies(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.rmlite.bench.tune]\nrows = 1234\n"
          "[tool.rmlite.tune]\npruner = 'hyperband'\n")  # fmt: skip
    from rmlite.cli import build_parser
    from rmlite.cli._config import load

    parser = build_parser()
    config = load(parser, start=tmp_path)
    assert config is not None and config.path == tmp_path / "pyproject.toml"
    assert parser.parse_args(["bench", "tune"]).rows == 1234
    assert parser.parse_args(["bench", "tune", "--rows", "7"]).rows == 7


def complete(line: str) -> list[str]:
    """What TAB offers after ``line``, asked the way the shell scripts ask."""
    out = subprocess.run(
        [sys.executable, "-m", "rmlite.cli"],
        capture_output=True,
        text=True,
        env={**os.environ, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_IFS": "\n", "COMP_LINE": line,
             "COMP_POINT": str(len(line)), "_ARGCOMPLETE_STDOUT_FILENAME": "/dev/stdout"},
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return [w.strip() for w in out.stdout.split("\n") if w.strip()]


def test_shell_completion_offers_commands_options_and_choices() -> None:
    assert {"train", "tune"} <= set(complete("rmlite tr")) | set(complete("rmlite tu"))
    assert "train" in complete("rmlite tr")
    assert "--backend" in complete("rmlite train --back")
    assert set(complete("rmlite train --device ")) == {"cpu", "cuda", "auto"}
    assert "--quiet" in complete("rmlite --qu")  # global options, before the command too


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(shell: str) -> None:
    out = run("completion", shell)
    assert out.returncode == 0, out.stderr
    assert "rmlite" in out.stdout and "_ARGCOMPLETE" in out.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_through_the_printed_script() -> None:
    # The user's path: eval the script, then bash calls its completion function for TAB.
    if shutil.which("rmlite") is None:
        pytest.skip("the rmlite command is not on PATH")
    script = (
        'eval "$(rmlite completion bash)"\n'
        "COMP_LINE='rmlite datas'; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(rmlite datas); "
        "COMP_CWORD=1\n"
        "_python_argcomplete rmlite datas rmlite\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["datasets"], out.stdout + out.stderr
