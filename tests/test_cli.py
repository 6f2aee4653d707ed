"""The ``rmlite`` command, run as a user would: in a subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rmlite.testing import rollout


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rmlite.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


@pytest.fixture(scope="module")
def log_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("logs") / "pendulum.parquet"
    rollout("Pendulum-v1", episodes=3, seed=1, max_steps=40).write_parquet(path)
    return path


def dump(db: Path) -> list[tuple]:
    out = run("sql", "SELECT * FROM transitions ORDER BY ALL", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    return [tuple(sorted(r.items())) for r in json.loads(out.stdout)]


def test_help_lists_every_command() -> None:
    out = run("--help")
    assert out.returncode == 0
    for command in ("ingest", "check", "datasets", "sql", "features", "quickstart", "bench"):
        assert command in out.stdout
    sub = run("ingest", "--help")
    assert "--obs-cols" in sub.stdout and "Example:" in sub.stdout


def test_console_script_is_installed() -> None:
    exe = shutil.which("rmlite")
    assert exe is not None, "pip install -e . should put the rmlite command on PATH"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("rmlite ")


@pytest.mark.slow  # 20-120 s of subprocesses on 2 busy cores; the default run stays short
def test_ingest_check_datasets_features(tmp_path: Path, log_file: Path) -> None:
    db = tmp_path / "s.duckdb"
    out = run("ingest", str(log_file), "--db", str(db), "--dataset", "pend", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["rows_added"] == 120 and report["obs_dim"] == 3 and report["action_dim"] == 1

    again = json.loads(
        run("ingest", str(log_file), "--db", str(db), "--dataset", "pend", "--json").stdout
    )
    assert again["rows_added"] == 0 and again["rows_duplicate"] == 120

    check = run("check", "--db", str(db), "--dataset", "pend", "--json")
    assert check.returncode == 0, check.stderr
    findings = json.loads(check.stdout)
    assert findings["problems"] == []
    assert findings["episodes"]["episodes_truncated"] == 3

    table = run("check", "--db", str(db), "--dataset", "pend")
    assert "no problems found" in table.stdout

    listing = json.loads(run("datasets", "--db", str(db), "--json").stdout)
    assert [(d["dataset"], d["episodes"], d["transitions"]) for d in listing] == [("pend", 3, 120)]

    feats = tmp_path / "f.parquet"
    out = run(
        "features",
        "--db",
        str(db),
        "--dataset",
        "pend",
        "--target",
        "return",
        "--gamma",
        "0.9",
        "--next-obs",
        "--out",
        str(feats),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    frame = pl.read_parquet(feats)
    # The rollout recorded next_obs for every step, so no row lacks an input.
    assert frame.height == summary["rows"] == 120
    assert {"obs_0", "act_0", "next_obs_2", "target", "episode_id", "step"} <= set(frame.columns)
    last = frame.filter(pl.col("step") == 39)
    # The last step of a truncated episode: its return-to-go is its own reward.
    rewards = pl.read_parquet(log_file).filter(pl.col("step") == 39).sort("episode_id")["reward"]
    assert last.sort("episode_id")["target"].to_list() == pytest.approx(rewards.to_list(), rel=1e-5)


@pytest.mark.slow  # 20-120 s of subprocesses on 2 busy cores; the default run stays short
def test_sql_formats(tmp_path: Path, log_file: Path) -> None:
    db = tmp_path / "s.duckdb"
    assert run("ingest", str(log_file), "--db", str(db), "--dataset", "pend").returncode == 0
    csv = run(
        "sql",
        "SELECT episode_id, count(*) AS n FROM transitions GROUP BY 1 ORDER BY 1",
        "--db",
        str(db),
        "--format",
        "csv",
    )
    assert csv.returncode == 0
    assert csv.stdout.splitlines() == ["episode_id,n", "0,40", "1,40", "2,40"]
    out = tmp_path / "r.parquet"
    assert (
        run("sql", "SELECT * FROM transitions", "--db", str(db), "--out", str(out)).returncode == 0
    )
    assert pl.read_parquet(out).height == 120
    # Read-only by default: a write is refused, and nothing changes.
    before = dump(db)
    refused = run("sql", "DELETE FROM transitions", "--db", str(db))
    assert refused.returncode == 2 and "read-only" in refused.stderr.lower()
    assert dump(db) == before


@pytest.mark.slow  # 20-120 s of subprocesses on 2 busy cores; the default run stays short
def test_sql_reads_files_and_stdin_previews_40_rows_and_exports_with_copy(
    tmp_path: Path, log_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.duckdb"
    text = tmp_path / "text.parquet"
    pl.read_parquet(log_file).with_columns(
        pl.format("run-a/ep-{}", pl.col("episode_id")).alias("episode_id")
    ).write_parquet(text)
    assert run("ingest", str(text), "--db", str(db), "--dataset", "pend").returncode == 0

    # The terminal table: the first 40 rows and the count, as DuckDB's CLI does.
    table = run("sql", "SELECT episode_id, step FROM data.pend ORDER BY ALL", "--db", str(db))
    assert table.returncode == 0, table.stderr
    assert "120 rows, 40 shown" in table.stdout and "run-a/ep-0" in table.stdout
    # (In-process, to spare an interpreter start: --all prints every row.)
    from rmlite.cli.main import main

    assert main(["sql", "SELECT step FROM data.pend", "--db", str(db), "--all"]) == 0
    every = capsys.readouterr().out
    assert "shown" not in every and "120 rows" in every

    # SQL from stdin and from a file.
    query = "SELECT episode_id, count(*) AS n FROM data.pend GROUP BY 1 ORDER BY 1;\n"
    piped = run("sql", "-", "--db", str(db), "--format", "csv", stdin=query)
    assert piped.stdout.splitlines() == [
        "episode_id,n",
        "run-a/ep-0,40",
        "run-a/ep-1,40",
        "run-a/ep-2,40",
    ]
    (tmp_path / "q.sql").write_text(query)
    from_file = run("sql", "@" + str(tmp_path / "q.sql"), "--db", str(db), "--format", "csv")
    assert from_file.stdout == piped.stdout
    assert main(["sql", "--file", str(tmp_path / "q.sql"), "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0] == {"episode_id": "run-a/ep-0", "n": 40}

    # Exports stream through COPY; in CSV, vectors are JSON text; unknown endings refused.
    out = tmp_path / "all.csv"
    done = run("sql", "SELECT obs, action FROM data.pend", "--db", str(db), "--out", str(out))
    assert done.returncode == 0 and "120 rows written" in done.stderr
    obs = [json.loads(v) for v in pl.read_csv(out)["obs"]]
    assert len(obs) == 120 and all(len(v) == 3 for v in obs)
    bad = run("sql", "SELECT 1", "--db", str(db), "--out", str(tmp_path / "r.xlsx"))
    assert bad.returncode == 2 and "unknown file ending '.xlsx'" in bad.stderr
    assert not (tmp_path / "r.xlsx").exists()
    with pytest.raises(SystemExit, match="2"):
        main(["sql", "SELECT 1", "--db", str(db), "--write"])
    assert "never changes the store" in capsys.readouterr().err


@pytest.mark.slow  # 20-120 s of subprocesses on 2 busy cores; the default run stays short
def test_bad_input_exit_2_names_file_and_column_and_leaves_store(
    tmp_path: Path, log_file: Path
) -> None:
    db = tmp_path / "s.duckdb"
    assert run("ingest", str(log_file), "--db", str(db), "--dataset", "pend").returncode == 0
    before = dump(db)

    bad = tmp_path / "cheetah.csv"
    pl.DataFrame(
        {"episode_id": [0, 0], "obs_0": [0.1, 0.2], "act_0": [1.0, 0.0], "reward": ["a", "b"]}
    ).write_csv(bad)
    out = run("ingest", str(bad), "--db", str(db), "--dataset", "pend")
    assert out.returncode == 2
    assert "cheetah.csv" in out.stderr and "'reward'" in out.stderr and "--reward-col" in out.stderr
    assert dump(db) == before

    out = run("ingest", str(bad), "--db", str(db), "--dataset", "pend", "--reward-col", "r")
    assert out.returncode == 2 and "'r'" in out.stderr and "not found" in out.stderr
    assert dump(db) == before

    missing = run("ingest", str(tmp_path / "nope.parquet"), "--db", str(db), "--dataset", "pend")
    assert missing.returncode == 2 and "nope.parquet" in missing.stderr

    unknown = run("check", "--db", str(db), "--dataset", "pendd")
    assert unknown.returncode == 2 and "did you mean 'pend'" in unknown.stderr

    bad_gamma = run("features", "--db", str(db), "--dataset", "pend", "--gamma", "1.5")
    assert bad_gamma.returncode == 2 and "'gamma' parameter" in bad_gamma.stderr

    usage = run("ingest", "--db", str(db))
    assert usage.returncode == 2


def test_mapping_flags(tmp_path: Path) -> None:
    log = rollout("Pendulum-v1", episodes=2, seed=3, max_steps=20, layout="flat")
    renamed = log.rename(
        {f"obs_{i}": f"state_{i}" for i in range(3)} | {"reward": "r", "episode_id": "traj"}
    ).drop([f"next_obs_{i}" for i in range(3)])
    src = tmp_path / "renamed.jsonl"
    renamed.write_ndjson(src)
    db = tmp_path / "s.duckdb"
    out = run(
        "ingest",
        str(src),
        "--db",
        str(db),
        "--dataset",
        "d",
        "--obs-cols",
        "state_*",
        "--reward-col",
        "r",
        "--episode-col",
        "traj",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["rows_added"] == 40 and report["obs_dim"] == 3 and report["next_obs_derived"]


def test_quarantine_flag(tmp_path: Path) -> None:
    log = rollout("Pendulum-v1", episodes=1, seed=4, max_steps=10)
    bad = pl.concat([log, log.head(1)])  # a duplicated step
    src = tmp_path / "dup.parquet"
    bad.write_parquet(src)
    db = tmp_path / "s.duckdb"
    refused = run("ingest", str(src), "--db", str(db), "--dataset", "d")
    assert (
        refused.returncode == 2
        and "duplicate step" in refused.stderr
        and "dup.parquet" in refused.stderr
    )
    out = run(
        "ingest", str(src), "--db", str(db), "--dataset", "d", "--on-error", "quarantine", "--json"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rows_added"] == 9
    rejected = json.loads(
        run(
            "sql", "SELECT source_row, reason FROM rejected ORDER BY 1", "--db", str(db), "--json"
        ).stdout
    )
    assert [r["source_row"] for r in rejected] == [0, 10]
    assert all("duplicate step" in r["reason"] for r in rejected)


def test_quickstart_embedded_default(tmp_path: Path) -> None:
    out = run("quickstart", "--episodes", "6", "--json", cwd=tmp_path, env={"RMLITE_DB": ""})
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (tmp_path / "rmlite.duckdb").exists()
    assert summary["transitions"] == 6 * 200 and summary["problems"] == "none"
    assert summary["holdout_r2"] > 0.98 and summary["holdout_episodes"] == 1
    assert (tmp_path / "rmlite-models" / "quickstart" / "model.json").exists()
    assert summary["model_path"] == str(tmp_path / "rmlite-models" / "quickstart")
    # A first monitor pass over the held-out episode, and the HTML report beside the model.
    assert summary["monitor_pass"] == 1 and summary["alerts"] == 0
    assert summary["overfitting"].startswith("no overfitting"), summary["overfitting"]
    report = tmp_path / "rmlite-models" / "quickstart" / "report.html"
    assert summary["report"] == str(report)
    html = report.read_text()
    assert "Plotly" in html and html.count("<script") >= 2
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc\s*=\s*[\"']?(https?:)?//", html, re.I)
    again = json.loads(
        run("quickstart", "--episodes", "6", "--json", cwd=tmp_path, env={"RMLITE_DB": ""}).stdout
    )
    assert again["added_now"] == 0 and again["already_stored"] == 1200
    assert again["monitor_pass"] is None  # nothing new to monitor


@pytest.mark.slow  # 20-120 s of subprocesses on 2 busy cores; the default run stays short
def test_bench_data_runs_and_reports_ratios(tmp_path: Path) -> None:
    out = run(
        "bench",
        "data",
        "--rows",
        "20_000",
        "--episode-length",
        "500",
        "--workdir",
        str(tmp_path),
        "--no-fail",  # a toy size: the ratios are reported, not judged
        "--json",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["rows"] == 20_000
    assert result["ingest_vs_duckdb_time_ratio"] > 0 and result["speedup_vs_pandas_warm"] > 0
    assert result["features"] == 80
    # Exactness where the closed form underflows: ours matches the loop, pandas' does not.
    assert result["rmlite_max_rel_error"] < 1e-9
    assert result["pandas_non_finite"] > 0 or result["pandas_max_rel_error"] > 1e-6


def test_train_evaluate_predict(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    for name, seed in (("pend", 0), ("pend-new", 9)):
        src = tmp_path / f"{name}.parquet"
        rollout("Pendulum-v1", episodes=10, seed=seed, max_steps=100).write_parquet(src)
        assert run("ingest", str(src), "--db", str(db), "--dataset", name).returncode == 0
    model = tmp_path / "model"
    out = run(
        "train",
        "--db",
        str(db),
        "--dataset",
        "pend",
        "--backend",
        "xgboost",
        "--n-estimators",
        "200",
        "--param",
        "max_depth=6",
        "--cv",
        "3",
        "--out",
        str(model),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["metrics"]["holdout"]["r2"] > 0.98 and summary["cv"]["folds"] == 3
    assert summary["params"]["backend_params"] == {"max_depth": 6}
    assert len(list(model.glob("member_0.*.ubj"))) == 1

    ev = run("evaluate", "--db", str(db), "--model", str(model), "--dataset", "pend-new", "--json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["metrics"]["r2"] > 0.98

    preds = tmp_path / "preds.parquet"
    pr = run(
        "predict",
        "--db",
        str(db),
        "--model",
        str(model),
        "--dataset",
        "pend-new",
        "--out",
        str(preds),
    )
    assert pr.returncode == 0, pr.stderr
    assert pl.read_parquet(preds).height == 1000

    runs = json.loads(
        run("sql", "SELECT backend, dataset FROM runs", "--db", str(db), "--json").stdout
    )
    assert runs == [{"backend": "xgboost", "dataset": "pend"}]


@pytest.mark.slow  # 20-120 s of subprocesses on 2 busy cores; the default run stays short
def test_train_bad_input_exit_2_and_nothing_written(tmp_path: Path, log_file: Path) -> None:
    db = tmp_path / "s.duckdb"
    assert run("ingest", str(log_file), "--db", str(db), "--dataset", "pend").returncode == 0
    cases = [
        (["--backend", "lightgmb"], "did you mean 'lightgbm'"),
        (["--param", "num_leafs=4"], "did you mean 'num_leaves'"),
        (["--n-estimators", "0"], "'n_estimators' parameter"),
        (["--device", "cuda"], "device='cuda'")
        if not shutil.which("nvidia-smi")
        else (["--n-estimators", "-1"], "'n_estimators'"),
        (["--dataset", "pendd"], "did you mean 'pend'"),
    ]
    for extra, message in cases:
        args = ["train", "--db", str(db), "--dataset", "pend", "--out", str(tmp_path / "m"), *extra]
        out = run(*args)
        assert out.returncode == 2, (extra, out.stderr)
        assert message in out.stderr, (extra, out.stderr)
    assert not (tmp_path / "m").exists()
    assert json.loads(
        run("sql", "SELECT count(*) AS n FROM runs", "--db", str(db), "--json").stdout
    ) == [{"n": 0}]


@pytest.fixture(scope="module")
def good_and_noise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with 15 Pendulum episodes ('pend') and 5 whose rewards are noise ('noise')
    (ingested in-process: the commands under test run as subprocesses)."""
    from rmlite import LogStore

    db = tmp_path_factory.mktemp("meaning") / "s.duckdb"
    store = LogStore(db)
    store.ingest(rollout("Pendulum-v1", episodes=15, seed=0, max_steps=60), dataset="pend")
    noise = rollout("Pendulum-v1", episodes=5, seed=1, max_steps=40)
    noise = noise.with_columns(pl.Series("reward", np.random.default_rng(0).normal(size=200)))
    store.ingest(noise, dataset="noise")
    return db


def test_train_says_when_its_model_means_little(good_and_noise: Path) -> None:
    # 5 episodes of noise rewards: one 'warning:' line per reason under the result (the
    # slow test below checks that a good model on enough episodes prints none).
    bad = run("train", "--db", str(good_and_noise), "--n-estimators", "100", "--dataset", "noise")
    assert bad.returncode == 0, bad.stderr
    lines = [line for line in bad.stdout.splitlines() if line.startswith("warning: ")]
    assert len(lines) == 3, bad.stdout  # 4 training episodes, 1 held out, R² below 0
    text = " ".join(bad.stdout.split())  # rich wraps lines at 80 columns when piped
    assert "warning: trained on 4 episode(s), fewer than 10" in text
    assert re.search(r"warning: hold-out R² is -[0-9.]+, below 0", text), text
    assert "SmallSampleWarning" not in bad.stderr  # printed once, not again by Python


@pytest.mark.slow  # 20-120 s of subprocesses on 2 busy cores; the default run stays short
def test_tune_evaluate_monitor_say_when_they_mean_little(
    good_and_noise: Path, tmp_path: Path
) -> None:
    db = str(good_and_noise)
    trained = {}
    for name in ("pend", "noise"):
        out = run("train", "--db", db, "--dataset", name, "--n-estimators", "100",
                  "--out", str(tmp_path / name), "--json")  # fmt: skip
        assert out.returncode == 0, out.stderr
        trained[name] = json.loads(out.stdout)
    # A good model on enough episodes: no warning; the noise model's reasons in --json.
    assert trained["pend"]["metrics"]["holdout"]["r2"] > 0.9 and trained["pend"]["warnings"] == []
    assert len(trained["noise"]["warnings"]) == 3
    fine = run("train", "--db", db, "--dataset", "pend", "--n-estimators", "100")
    assert fine.returncode == 0 and "warning" not in (fine.stdout + fine.stderr).lower()
    tune = ("tune", "--db", db, "--n-trials", "2", "--n-estimators", "30", "--n-jobs", "1",
            "--cv", "2", "--storage", str(tmp_path / "study.log"), "--json")  # fmt: skip
    noisy = json.loads(run(*tune, "--dataset", "noise").stdout)
    assert any("below 0" in w for w in noisy["warnings"]), noisy
    assert json.loads(run(*tune, "--dataset", "pend").stdout)["warnings"] == []

    ev = run("evaluate", "--db", db, "--model", str(tmp_path / "pend"), "--dataset", "noise")
    assert ev.returncode == 0, ev.stderr
    assert re.search(r"warning: noise R² is -[0-9.]+, below 0", " ".join(ev.stdout.split()))

    watch = ("monitor", "--db", db, "--model")
    small = run(*watch, str(tmp_path / "noise"), "--dataset", "noise")
    assert small.returncode == 0, small.stderr
    text = " ".join(small.stdout.split())
    assert "warning: drift not judged against a reference of 4 training episodes" in text
    assert re.search(r"warning: \d+/4 features drifted on a window of 1 episode\(s\) judged", text)
    quiet = run(*watch, str(tmp_path / "pend"), "--dataset", "pend", "--json")
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout)["warnings"] == []
