"""Hostile input and faults on the data side: every bad log a clear error, every fault
survived with the store as it was.

The property checked for each case: exit code 0 or 2 (75 for a busy store or a full disk,
130 for an interrupt; never 1, never a signal), a message naming what was wrong, and the
store's logical contents (:func:`hostile.store_digest`) unchanged when the command failed.
Hypothesis draws the malformed logs and preference files (``tests/hostile.py``);
``pytest -m fuzz`` runs the same tests with many more examples and fault moments.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hostile import (
    FUZZ,
    PROFILE,
    Case,
    good_log,
    good_preferences,
    hostile_logs,
    hostile_preferences,
    store_digest,
)
from hypothesis import given

from rmlite import LogStore
from rmlite.exceptions import IngestError, SchemaError, StoreLockedError, StoreOpenError

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def run_cli(*args: str) -> tuple[int, str, str]:
    """``rmlite ARGS`` in this process (the same ``main`` as the command): code, out, err."""
    from rmlite.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), " ".join(err.getvalue().split())


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """A store holding :func:`hostile.good_log` as dataset 'base' and one preference pair."""
    path = tmp_path_factory.mktemp("seeded") / "store.duckdb"
    store = LogStore(path)
    store.ingest(good_log(), dataset="base")
    store.ingest_preferences(good_preferences().head(1), dataset="base")
    return path


def _check(case: Case, code: int, err: str, db: Path, before: dict) -> None:
    if case.expect is None:
        assert code == 0, f"{case.kind}: {err}"
        if case.warn is not None:
            assert re.search(case.warn, err), f"{case.kind}: no warning in {err!r}"
        return
    assert code == 2, f"{case.kind}: exit {code}: {err}"
    assert re.search(case.expect, err), f"{case.kind}: {err!r} does not match {case.expect!r}"
    assert store_digest(db) == before, f"{case.kind}: the store changed"


# ------------------------------------------------------------------ malformed input


@pytest.mark.fuzz
@PROFILE
@given(case=hostile_logs())
def test_hostile_logs_are_refused_by_name_or_kept_with_a_word(case: Case, seeded: Path) -> None:
    with tempfile.TemporaryDirectory() as work:
        db = Path(work) / "store.duckdb"
        shutil.copy(seeded, db)
        before = store_digest(db)
        src = Path(work) / case.filename
        src.write_bytes(case.content)
        code, _out, err = run_cli(
            "ingest", str(src), "--dataset", case.dataset, "--db", str(db), "--quiet", *case.args
        )
        _check(case, code, err, db, before)
        if "blobs" in case.meta:  # binary kept, as base64 text in the JSON column 'extra'
            stored = LogStore(db).read(case.dataset, ["extra"])["extra"].to_list()
            payloads = [base64.b64decode(json.loads(x)["payload"]) for x in stored]
            assert payloads == case.meta["blobs"]


@pytest.mark.fuzz
@PROFILE
@given(case=hostile_preferences())
def test_hostile_preference_files_are_refused_by_name_or_warned(case: Case, seeded: Path) -> None:
    with tempfile.TemporaryDirectory() as work:
        db = Path(work) / "store.duckdb"
        shutil.copy(seeded, db)
        before = store_digest(db)
        src = Path(work) / case.filename
        src.write_bytes(case.content)
        code, _out, err = run_cli("prefs", "ingest", str(src), "--dataset", "base", "--db", str(db))
        _check(case, code, err, db, before)


def test_a_bad_value_past_csv_schema_inference_names_row_and_line(tmp_path: Path) -> None:
    # Polars infers types from the first 10,000 rows and then names only the column.
    rows = ["episode_id,step,obs_0,action,reward,terminated"]
    rows += [f"0,{i},1.5,1,0,false" for i in range(10_005)]
    rows += ["0,10005,abc,1,0,true"]
    src = tmp_path / "late.csv"
    src.write_text("\n".join(rows) + "\n")
    with pytest.raises(IngestError, match=r"row 10005 \(line 10007\), column 'obs_0' holds 'abc'"):
        LogStore(tmp_path / "s.duckdb").ingest(src, dataset="late")
    assert not (tmp_path / "s.duckdb").exists() or store_digest(tmp_path / "s.duckdb") == {}


def test_a_quarantined_row_with_binary_columns_keeps_its_record(tmp_path: Path) -> None:
    log = good_log().with_columns(
        pl.Series("payload", [b"\x00\xff"] * 8, dtype=pl.Binary),
        pl.Series("episode_id", [0, 0, 0, 0, 1, 1, 1, 2**63], dtype=pl.UInt64),
    )
    store = LogStore(tmp_path / "s.duckdb")
    report = store.ingest(log, dataset="q", on_error="quarantine")
    assert (report.rows_added, report.rows_rejected) == (7, 1)
    record = json.loads(store.rejected("q")["record"][0])
    assert record["payload"] == "AP8=" and record["episode_id"] == 2**63


def test_a_target_beyond_float32_is_refused_at_features(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    log = good_log().with_columns(pl.Series("reward", [0.0, 1e308, 0, 0, 0, 0, 0, 0]))
    LogStore(db).ingest(log, dataset="r")
    code, _out, err = run_cli("features", "--dataset", "r", "--db", str(db))
    assert code == 2
    assert re.search(r"dataset 'r': the reward target is 1e\+308 at episode 0 step 1", err), err
    # A return that overflows float64 (1e308 + 0.99 * 1e308) is refused the same way.
    code, _out, err = run_cli("features", "--dataset", "r", "--db", str(db), "--target", "return")
    assert code == 2 and re.search(r"the return target is \S+ at episode 0 step 0", err), err


def test_a_relabel_target_with_control_characters_is_refused(tmp_path: Path) -> None:
    # Sibling of the control-character name: the relabel target is checked the same way.
    store = LogStore(tmp_path / "s.duckdb")
    store.ingest(good_log(), dataset="base")
    with pytest.raises(IngestError, match=r"control character .* relabel's target"):
        store.relabel_into("base", "new\x1b[2J", good_log().head(0).to_arrow(), {})


# --------------------------------------------------------- item 6: a very wide flat log


def test_a_flat_log_with_5000_columns_is_read_in_linear_time(tmp_path: Path, monkeypatch) -> None:
    n_obs = 5_000
    frame = pl.DataFrame(
        {
            "episode_id": [0] * 20,
            "step": list(range(20)),
            "action": [1] * 20,
            "reward": [0.5] * 20,
            **{f"obs_{i}": np.arange(20, dtype=np.float64) + i for i in range(n_obs)},
        }
    )
    src = tmp_path / "wide.csv"
    frame.write_csv(src)
    # Reading a frame's schema builds it anew, column by column: count how often that
    # happens. One build per column (what made 10,000 columns take 277 s) is quadratic.
    builds = 0
    schema = pl.DataFrame.schema

    def counted(self: pl.DataFrame) -> pl.Schema:
        nonlocal builds
        builds += 1
        return schema.fget(self)  # type: ignore[attr-defined]

    monkeypatch.setattr(pl.DataFrame, "schema", property(counted))
    report = LogStore(tmp_path / "s.duckdb").ingest(src, dataset="wide")
    monkeypatch.undo()
    assert builds < 100, f"{builds} schema builds for {n_obs} columns"
    assert (report.rows_added, report.obs_dim) == (20, n_obs)
    obs = LogStore(tmp_path / "s.duckdb").read("wide", ["obs"])["obs"]
    assert obs[3].to_list()[:3] == [3.0, 4.0, 5.0] and obs[3].to_list()[-1] == 3.0 + n_obs - 1


# --------------------------------------------- item 1: two ingests racing for a new dataset


def _python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def test_concurrent_ingests_of_different_vector_sizes_cannot_mix(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    LogStore(db).ingest(good_log(), dataset="other")
    files = []
    for dim in (17, 5):
        path = tmp_path / f"obs{dim}.parquet"
        good_log(obs_dim=dim).write_parquet(path)
        files.append(path)
    # A reader holds the file, so both writers read their sizes (none: the dataset is new),
    # read their logs, and then wait for the write lock; then the reader lets go and
    # they race. The loser must see the winner's dataset inside its transaction.
    holder = _python(
        f"import duckdb, time\ncon = duckdb.connect({str(db)!r}, read_only=True)\n"
        "print('ready', flush=True)\ntime.sleep(60)\n"
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    script = (
        "import sys\nfrom rmlite import LogStore\nfrom rmlite.exceptions import IngestError\n"
        "try:\n"
        f"    LogStore({str(db)!r}, lock_timeout=60).ingest(sys.argv[1], dataset='new',"
        " progress=lambda m: print(m, flush=True))\n"
        "except IngestError as exc:\n    print('REFUSED', exc, flush=True); sys.exit(2)\n"
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(f)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for f in files
    ]
    try:
        for w in writers:  # both have read their log and wait for the lock
            assert w.stdout is not None
            for line in w.stdout:
                if line.startswith("landing"):
                    break
        holder.kill()
        holder.wait()
        results = [(w.wait(timeout=120), w.stdout.read()) for w in writers]  # type: ignore[union-attr]
    finally:
        for p in (holder, *writers):
            p.kill()
            p.wait()
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(text for code, text in results if code == 2)
    assert re.search(r"dataset 'new' has obs of (17|5) .*another ingest created it", refused)
    store = LogStore(db)
    dims = store.datasets().filter(pl.col("dataset") == "new")["obs_dim"].item()
    lengths = store.sql("SELECT DISTINCT len(obs) AS n FROM transitions WHERE dataset = 'new'")[
        "n"
    ].to_list()
    assert lengths == [dims]


# ---------------------------------------------------- item 7: a store that cannot open


def _store_file(tmp_path: Path) -> Path:
    path = tmp_path / "real.duckdb"
    LogStore(path).ingest(good_log(episodes=50, steps=40), dataset="base")
    return path


def _damaged(tmp_path: Path, how: str) -> Path:
    data = bytearray(_store_file(tmp_path).read_bytes())
    path = tmp_path / f"{how}.duckdb"
    if how == "truncated":
        path.write_bytes(bytes(data[:5000]))
    else:  # a flipped block past the headers: DuckDB's checksum catches it
        rng = random.Random(0)
        for i in range(12288, min(len(data), 12288 + 4096)):
            data[i] = rng.randrange(256)
        path.write_bytes(bytes(data))
    return path


OPEN_FAILURES = {
    "folder": (lambda p: (p / "f.duckdb").mkdir() or p / "f.duckdb", r"is a folder, not a store"),
    "text file": (
        lambda p: (p / "t.duckdb").write_text("hello\n" * 10) and p / "t.duckdb",
        r"not a DuckDB file",
    ),
    "random bytes": (
        lambda p: (p / "r.duckdb").write_bytes(os.urandom(5000)) and p / "r.duckdb",
        r"not a DuckDB file",
    ),
    "empty file": (
        lambda p: (p / "e.duckdb").write_bytes(b"") or p / "e.duckdb",
        r"not a DuckDB file",
    ),
    "missing folder": (
        lambda p: p / "nowhere" / "s.duckdb",
        r"the folder .*nowhere does not exist",
    ),
    "truncated": (lambda p: _damaged(p, "truncated"), r"the store file is damaged"),
    "corrupt block": (lambda p: _damaged(p, "corrupt"), r"the store file is damaged"),
}


@pytest.mark.parametrize("case", sorted(OPEN_FAILURES))
def test_a_store_that_cannot_open_says_why_at_once(case: str, tmp_path: Path) -> None:
    make, expect = OPEN_FAILURES[case]
    db = make(tmp_path)
    log = tmp_path / "log.parquet"
    good_log().write_parquet(log)
    size = db.stat().st_size if db.is_file() else None
    for args in (
        ("ingest", str(log), "--dataset", "x", "--db", str(db), "--quiet"),
        ("datasets", "--db", str(db)),
    ):
        if case == "missing folder" and args[0] == "datasets":
            continue  # reading a store that does not exist is its own message
        started = time.monotonic()
        code, _out, err = run_cli(*args)
        # Exit 2 naming the path and the cause; no 30 s of retrying what cannot clear.
        assert code == 2, err
        assert str(db) in err and re.search(expect, err), err
        assert time.monotonic() - started < 15
    assert size is None or db.stat().st_size == size  # never written over


def test_a_read_only_file_system_is_named(tmp_path: Path) -> None:
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        db = mount / "s.duckdb"
        LogStore(db).ingest(good_log(), dataset="base")
        before = store_digest(db)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with pytest.raises(StoreOpenError, match=r"s\.duckdb: the store is on a read-only file"):
            LogStore(db).ingest(good_log(), dataset="more")
        assert LogStore(db).datasets()["dataset"].to_list() == ["base"]  # reading still works
        assert store_digest(db) == before
        log = tmp_path / "log.parquet"
        good_log().write_parquet(log)
        code, _out, err = run_cli(
            "ingest", str(log), "--dataset", "x", "--db", str(mount / "n.duckdb")
        )
        assert code == 2 and "read-only file system" in err, err
    finally:
        subprocess.run(["umount", str(mount)])


@pytest.mark.parametrize("holder_mode", ["reader", "writer"])
def test_a_held_store_names_the_holder(holder_mode: str, tmp_path: Path) -> None:
    from rmlite.cli._errors import classify

    db = tmp_path / "s.duckdb"
    LogStore(db).ingest(good_log(), dataset="base")
    holder = _python(
        f"import duckdb, time\ncon = duckdb.connect({str(db)!r}, "
        f"read_only={holder_mode == 'reader'})\nprint('ready', flush=True)\ntime.sleep(60)\n"
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        doing = "has the store open for reading" if holder_mode == "reader" else "is writing"
        with pytest.raises(StoreLockedError, match=rf"process {holder.pid} \(.*\) {doing}") as info:
            LogStore(db, lock_timeout=0.3).ingest(good_log(), dataset="more")
        found = classify(info.value)
        assert found is not None and found[1].exit_code == 75
    finally:
        holder.kill()
        holder.wait()


# -------------------------------------------------- item 8: interrupts, kills, a full disk


def _mid_log(path: Path, rows: int) -> Path:
    rng = np.random.default_rng(1)
    pl.DataFrame(
        {
            "episode_id": np.arange(rows) // 500,
            "step": np.arange(rows) % 500,
            "obs": rng.normal(size=(rows, 17)).astype(np.float32),
            "action": rng.normal(size=(rows, 6)).astype(np.float32),
            "reward": rng.normal(size=rows),
            "terminated": np.zeros(rows, dtype=bool),
        }
    ).write_parquet(path)
    return path


def _ingest_process(db: Path, log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rmlite.cli",
            "ingest",
            str(log),
            "--dataset",
            "mid",
            "--db",
            str(db),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


@pytest.fixture(scope="module")
def fault_setup(tmp_path_factory) -> tuple[Path, Path, dict, dict]:
    """A seeded store, a log of 40,000 transitions, and the digests before and after it."""
    root = tmp_path_factory.mktemp("faults")
    base = root / "base.duckdb"
    LogStore(base).ingest(good_log(), dataset="base")
    log = _mid_log(root / "mid.parquet", 40_000)
    done = root / "done.duckdb"
    shutil.copy(base, done)
    LogStore(done).ingest(log, dataset="mid")
    return base, log, store_digest(base), store_digest(done)


def _landed_whole(digest: dict, done: dict) -> bool:
    # Timestamps of the bookkeeping rows differ from run to run; the rows and the
    # transitions themselves must not.
    return {t: v[0] for t, v in digest.items()} == {t: v[0] for t, v in done.items()} and digest[
        "transitions"
    ] == done["transitions"]


@pytest.mark.fuzz
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_signal_at_any_moment_of_ingest_leaves_the_store_whole(
    sig: signal.Signals, fault_setup, tmp_path: Path
) -> None:
    base, log, before, done = fault_setup
    rng = random.Random(int(sig))
    trials = 25 if FUZZ else 1
    for trial in range(trials):
        db = tmp_path / f"t{trial}.duckdb"
        shutil.copy(base, db)
        proc = _ingest_process(db, log)
        assert proc.stderr is not None
        proc.stderr.readline()  # '[rmlite] reading and checking sources': inside main
        if trial == 0:  # the first trial hits the transaction: wait until it lands
            proc.stderr.readline()  # '[rmlite] landing ... transitions'
            time.sleep(rng.uniform(0.0, 0.05))
        else:  # the others at any moment: reading, landing, or already done
            time.sleep(rng.uniform(0.0, 2.5))
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=120)
        digest = store_digest(db)
        if sig == signal.SIGKILL and proc.returncode == -signal.SIGKILL:
            assert digest == before or _landed_whole(digest, done), f"trial {trial}"
            continue
        assert proc.returncode in (0, 130), f"trial {trial}: exit {proc.returncode}: {err}"
        assert "Traceback" not in err, err
        if proc.returncode == 130 and "the store is as it was" in err:
            assert digest == before, f"trial {trial}: an interrupted ingest left rows"
        elif proc.returncode == 130:  # after the commit: said so, and the log is whole
            assert "interrupted after this command's write had landed" in err, err
            assert _landed_whole(digest, done), f"trial {trial}"
        else:
            assert _landed_whole(digest, done), f"trial {trial}"


def test_a_full_disk_is_said_and_the_store_stays_whole(fault_setup, tmp_path: Path) -> None:
    _base, log, _before, _done = fault_setup
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        db = mount / "s.duckdb"
        LogStore(db).ingest(good_log(), dataset="base")
        before = store_digest(db)
        proc = _ingest_process(db, log)
        _out, err = proc.communicate(timeout=120)
        err = " ".join(err.split())
        assert proc.returncode == 75, err
        assert "the disk ran full while writing the store" in err and "Traceback" not in err
        assert store_digest(db) == before
    finally:
        subprocess.run(["umount", str(mount)])


# --------------------------------------------------------------- item 6: the error path


def test_the_error_table_loads_no_engine() -> None:
    code = (
        "import sys, rmlite.cli._errors\n"
        "heavy = ('polars', 'duckdb', 'pyarrow', 'lightgbm', 'xgboost', 'torch', 'sklearn')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stderr


def _raised(make) -> BaseException:
    try:
        make()
    except BaseException as exc:
        return exc
    raise AssertionError("nothing was raised")


def test_library_errors_map_to_bad_input_with_their_fix() -> None:
    import pickle

    import duckdb
    import pyarrow as pa

    from rmlite.cli._errors import classify, message

    cases = {
        "polars": _raised(lambda: pl.Series(["[1"]).str.json_decode(pl.List(pl.Float64))),
        "arrow": _raised(lambda: pa.array(["x"]).cast(pa.int64())),
        "duckdb catalog": _raised(lambda: duckdb.connect().execute("SELECT * FROM nope")),
        "unpickling": _raised(lambda: pickle.loads(b"\x80\x05garbage")),
        "polars schema": _raised(lambda: pl.DataFrame({"a": [1]}).select(pl.col("b"))),
    }
    for name, exc in cases.items():
        found = classify(exc)
        assert found is not None, f"{name}: {type(exc)} is unmapped"
        assert found[1].exit_code == 2, name
        text = message(exc, found[1], "ingest")
        assert text.startswith(f"rmlite ingest: {type(exc).__name__}:") and found[1].fix in text


@pytest.mark.slow
def test_engine_errors_map_to_bad_input() -> None:
    import lightgbm
    import xgboost

    from rmlite.cli._errors import classify

    X, y = np.random.default_rng(0).normal(size=(50, 3)), np.arange(50.0)
    lgb = _raised(
        lambda: lightgbm.train({"num_leaves": -5, "verbose": -1}, lightgbm.Dataset(X, y), 2)
    )
    xgb = _raised(lambda: xgboost.train({"max_depth": -1}, xgboost.DMatrix(X, y), 2))
    for exc in (lgb, xgb):
        found = classify(exc)
        assert found is not None and found[1].kind == "engine_rejected", type(exc)


def test_json_errors_are_one_object_on_stdout(tmp_path: Path) -> None:
    (tmp_path / "folder.duckdb").mkdir()
    code, out, _err = run_cli("datasets", "--db", str(tmp_path / "folder.duckdb"), "--json")
    payload = json.loads(out)
    assert code == 2 and payload["exit_code"] == 2 and payload["kind"] == "store_unusable"
    assert "is a folder, not a store file" in payload["error"]


def test_a_real_bug_prints_the_traceback_and_asks_for_a_report(monkeypatch) -> None:
    from rmlite.cli import data

    def broken(args) -> int:
        return {}["no such key"]  # a bug in a command, as a user would meet one

    monkeypatch.setattr(data, "cmd_datasets", broken)
    code, _out, err = run_cli("datasets", "--db", "x.duckdb")
    assert code == 1
    assert "Traceback" in err and "KeyError: 'no such key'" in err
    assert "This is a bug in rmlite. Please report it" in err


def test_schema_error_from_the_library_reads_as_bad_input(tmp_path: Path) -> None:
    # Sibling of the CLI mapping: rmlite's own errors keep their message, exit 2.
    from rmlite.cli._errors import classify

    exc = _raised(lambda: LogStore(tmp_path / "s.duckdb").ingest(good_log(), dataset=" "))
    assert isinstance(exc, SchemaError)
    found = classify(exc)
    assert found is not None and (found[1].kind, found[1].exit_code) == ("bad_log", 2)
