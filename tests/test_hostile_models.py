"""Hostile model folders and CLI arguments: damaged, tampered and malformed folders are a
clear ModelFileError (exit 2 at the command line, never a crash inside an engine), and a
save killed at any moment leaves the old model or the new one, whole.

One small real model per module (LightGBM, 2 members of 20 trees, trained by the pipeline on
a Pendulum rollout, with ``reference.parquet`` beside it); each case damages a copy. The
Hypothesis cases run a few dozen examples by default and many more with ``-m fuzz``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmlite import FeatureSpec, LogStore, RewardRegressor, load_model
from rmlite.exceptions import ModelFileError
from rmlite.pipeline import train
from rmlite.testing import rollout

ROOT = Path(__file__).resolve().parents[1]


def fuzzing(config: pytest.Config) -> bool:
    return "fuzz" in (config.getoption("markexpr") or "")


def examples(config: pytest.Config, quick: int, long: int) -> int:
    return long if fuzzing(config) else quick


def rmlite(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "rmlite.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def members(folder: Path) -> list[Path]:
    meta = json.loads((folder / "model.json").read_text())
    return [folder / m["file"] for m in meta["members"]]


def rewrite_meta(folder: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    meta = json.loads((folder / "model.json").read_text())
    change(meta)
    (folder / "model.json").write_text(json.dumps(meta))


def refresh_manifest(folder: Path, name: str) -> None:
    """Make the manifest agree with a replaced file: only the engine can refuse it then."""
    data = (folder / name).read_bytes()

    def change(meta: dict[str, Any]) -> None:
        meta["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    rewrite_meta(folder, change)


# ------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store, model A (in ``a``) and model B (same data, other seed and size) and their
    predictions on the dataset's features."""
    root = tmp_path_factory.mktemp("hostile-models")
    store = LogStore(root / "store.duckdb")
    store.ingest(rollout("Pendulum-v1", episodes=6, seed=0, max_steps=50), dataset="pend")
    params = {"n_estimators": 20, "n_members": 2, "n_jobs": 1}
    train(store, "pend", FeatureSpec(), params, out=root / "a")
    train(store, "pend", FeatureSpec(), {**params, "n_estimators": 30}, seed=1, out=root / "b")
    X = store.features("pend", FeatureSpec()).X
    pa, pb = load_model(root / "a").predict(X), load_model(root / "b").predict(X)
    assert not np.allclose(pa, pb)
    return {"root": root, "store": store, "X": X, "a": pa, "b": pb}


@pytest.fixture
def folder(project: dict[str, Any], tmp_path: Path) -> Path:
    """A fresh copy of model A (with its reference.parquet) to damage."""
    return Path(shutil.copytree(project["root"] / "a", tmp_path / "model"))


# ---------------------------------------------------------- damaged member files


def test_a_saved_folder_holds_a_manifest_and_other_files_do_not_disturb_it(
    folder: Path, project: dict[str, Any]
) -> None:
    meta = json.loads((folder / "model.json").read_text())
    assert meta["format_version"] == 2
    for path in members(folder):
        entry = meta["files"][path.name]
        assert entry == {
            "size": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
    # Files written beside a model are not members: they never break its check.
    assert (folder / "reference.parquet").is_file()
    (folder / "report.html").write_text("<html></html>")
    (folder / "study.db").write_bytes(os.urandom(100))
    np.testing.assert_array_equal(load_model(folder).predict(project["X"]), project["a"])


@pytest.mark.fuzz
def test_truncated_member_is_refused_before_lightgbm_reads_it(
    folder: Path, request: pytest.FixtureRequest
) -> None:
    member = members(folder)[0]
    original = member.read_bytes()

    @settings(max_examples=examples(request.config, 25, 400), deadline=None)
    @given(st.integers(0, len(original) - 1))
    def check(size: int) -> None:
        member.write_bytes(original[:size])
        with pytest.raises(ModelFileError, match=rf"{member.name}: {size} bytes.*truncated"):
            load_model(folder)

    check()


@pytest.mark.fuzz
def test_flipped_bit_is_refused(folder: Path, request: pytest.FixtureRequest) -> None:
    member = members(folder)[1]
    original = member.read_bytes()

    @settings(max_examples=examples(request.config, 25, 400), deadline=None)
    @given(st.integers(0, len(original) - 1), st.integers(0, 7))
    def check(position: int, bit: int) -> None:
        damaged = bytearray(original)
        damaged[position] ^= 1 << bit
        member.write_bytes(bytes(damaged))
        with pytest.raises(ModelFileError, match=rf"{member.name}: its SHA-256 differs"):
            load_model(folder)

    check()


def test_swapped_members_are_refused(folder: Path) -> None:
    first, second = members(folder)
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    with pytest.raises(ModelFileError, match=r"differs from the manifest|records"):
        load_model(folder)


def test_missing_member_is_refused(folder: Path) -> None:
    member = members(folder)[0]
    member.unlink()
    with pytest.raises(ModelFileError, match=rf"member file '{member.name}' is missing"):
        load_model(folder)


def test_cli_evaluate_on_a_truncated_member_exits_2(folder: Path, project: dict[str, Any]) -> None:
    member = members(folder)[0]
    member.write_bytes(member.read_bytes()[: member.stat().st_size // 2])
    db = str(project["root"] / "store.duckdb")
    done = rmlite("evaluate", "--db", db, "--model", str(folder), "--dataset", "pend")
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert member.name in done.stderr and "truncated" in done.stderr
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------- names and paths


@pytest.mark.parametrize(
    "name",
    ["../../x.txt", "/etc/passwd", "sub/member_0.txt", "..", ".hidden.txt", "model.json", "a\\b"],
)
def test_member_names_must_be_plain_files_inside_the_folder(folder: Path, name: str) -> None:
    target = folder.parent / "x.txt"
    shutil.copy(members(folder)[0], target)  # what "../../x.txt"-style names would reach

    def change(meta: dict[str, Any]) -> None:
        old = meta["members"][0]["file"]
        meta["members"][0]["file"] = name
        meta["files"][name] = meta["files"].pop(old)

    rewrite_meta(folder, change)
    with pytest.raises(ModelFileError, match=r"must be a plain file name inside the folder"):
        load_model(folder)


def test_a_member_linking_out_of_the_folder_is_refused(folder: Path, tmp_path: Path) -> None:
    member = members(folder)[0]
    outside = tmp_path / "outside.txt"
    shutil.move(member, outside)  # same bytes, so the manifest alone would accept it
    member.symlink_to(outside)
    with pytest.raises(ModelFileError, match=r"is a link that leads out of the folder"):
        load_model(folder)


def test_saving_over_a_tampered_folder_deletes_only_member_files(
    folder: Path, project: dict[str, Any]
) -> None:
    """The old model.json names the files a save deletes afterwards: a tampered one
    naming other files (the reference sample) must not make the save delete them."""
    model = load_model(folder)
    rewrite_meta(folder, lambda meta: meta["members"][0].update(file="reference.parquet"))
    model.save(folder)
    assert (folder / "reference.parquet").is_file()
    np.testing.assert_array_equal(load_model(folder).predict(project["X"]), project["a"])


def test_a_damaged_reference_sample_is_a_model_file_error(folder: Path) -> None:
    from rmlite.evaluation.reference import load_reference

    path = folder / "reference.parquet"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelFileError, match=r"reference.parquet: unreadable"):
        load_reference(folder)


# -------------------------------------------------------------- malformed model.json

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = [
    ("estimator",),
    ("params",),
    ("params", "backend"),
    ("params", "n_estimators"),
    ("params", "n_members"),
    ("params", "hidden_sizes"),
    ("n_features_in",),
    ("feature_names",),
    ("members",),
    ("members", 0),
    ("members", 0, "name"),
    ("members", 0, "file"),
    ("members", 0, "best_iteration"),
    ("files",),
    ("curves",),
    ("fit_seconds",),
    ("feature_spec",),
    ("metrics",),
    ("train_episodes",),
    ("format_version",),
]


@pytest.mark.fuzz
def test_malformed_model_json_is_a_model_file_error(
    folder: Path, project: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    original = json.loads((folder / "model.json").read_text())

    @settings(
        max_examples=examples(request.config, 60, 1500),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.sampled_from(FIELDS), JSON | st.just("__delete__"))
    def check(field: tuple[Any, ...], value: Any) -> None:
        meta = json.loads(json.dumps(original))
        parent = meta
        for key in field[:-1]:
            parent = parent[key]
        if value == "__delete__":
            parent.pop(field[-1]) if isinstance(parent, dict) else parent.clear()
        else:
            parent[field[-1]] = value
        (folder / "model.json").write_text(json.dumps(meta))
        try:
            model = load_model(folder)
        except ModelFileError as exc:
            assert "model.json" in str(exc) or "member file" in str(exc)
            return
        # Accepted: then it is a working model (the value was one it may hold).
        assert model.predict(project["X"][:5]).shape == (5,)

    check()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (
            '{"format": "rmlite-model", "format_version": 2, "curves": ' + "[" * 50_000,
            "nested too deeply|unreadable",
        ),
        ("\x00\xff not json", "unreadable model metadata"),
        ("[]", "expected a JSON object"),
        ('{"format": "rmlite-model", "format_version": 99}', "version 99"),
    ],
    ids=["deep-array", "deep-field", "not-json", "not-object", "unknown-version"],
)
def test_unreadable_model_json_is_a_model_file_error(folder: Path, text: str, message: str) -> None:
    (folder / "model.json").write_text(text, encoding="utf-8", errors="surrogateescape")
    with pytest.raises(ModelFileError, match=message):
        load_model(folder)


@pytest.mark.slow
def test_cli_evaluate_on_malformed_model_json_exits_2(
    folder: Path, project: dict[str, Any]
) -> None:
    rewrite_meta(folder, lambda meta: meta.update(members="abc"))
    db = str(project["root"] / "store.duckdb")
    done = rmlite("evaluate", "--db", db, "--model", str(folder), "--dataset", "pend")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "'members' must be a non-empty list" in done.stderr


# -------------------------------------------------------------------- torch files


class Payload:
    """A pickled object inside a .pt file (what weights_only loading must refuse)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("this must never run",))


def test_pickle_in_a_pt_file_is_refused_without_suggesting_weights_only_false(
    tmp_path: Path,
) -> None:
    torch = pytest.importorskip("torch")
    X = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    model = RewardRegressor(backend="mlp", hidden_sizes=(4,), max_epochs=1, random_state=0)
    folder = model.fit(X, X[:, 0]).save(tmp_path / "mlp")
    name = json.loads((folder / "model.json").read_text())["members"][0]["mlp"]["file"]
    torch.save({"0.weight": Payload()}, folder / name)
    refresh_manifest(folder, name)
    with pytest.raises(ModelFileError, match=r"pickled Python objects, which rmlite never") as exc:
        load_model(folder)
    assert "weights_only=False" not in str(exc.value)
    # A tensors-only file of the wrong network is refused at load, not at predict.
    torch.save({"0.weight": torch.zeros(2, 2)}, folder / name)
    refresh_manifest(folder, name)
    with pytest.raises(ModelFileError, match=r"weights do not fit the network"):
        load_model(folder)


# --------------------------------------------------------------- format 1 folders


def as_format_1(folder: Path) -> None:
    """What rmlite wrote before the manifest: member_<i>.txt, format_version 1."""

    def change(meta: dict[str, Any]) -> None:
        for i, m in enumerate(meta["members"]):
            os.rename(folder / m["file"], folder / f"member_{i}.txt")
            m["file"] = f"member_{i}.txt"
        meta["format_version"] = 1
        del meta["files"]

    rewrite_meta(folder, change)


def test_format_1_folders_load_with_a_warning_and_refuse_a_cut_booster(
    folder: Path, project: dict[str, Any]
) -> None:
    as_format_1(folder)
    with pytest.warns(UserWarning, match=r"without a manifest"):
        model = load_model(folder)
    np.testing.assert_array_equal(model.predict(project["X"]), project["a"])
    model.save(folder)  # the upgrade the warning suggests
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(folder)
    assert not (folder / "member_0.txt").exists()  # the old members went with the old model.json
    as_format_1(folder)
    member = folder / "member_0.txt"
    member.write_bytes(member.read_bytes()[: member.stat().st_size // 3])
    with pytest.raises(ModelFileError, match=r"no 'end of trees'"):
        load_model(folder)


# -------------------------------------------------------- killed in the middle of a save

SAVER = """
import os, sys
from rmlite import load_model
a, b = load_model(sys.argv[1]), load_model(sys.argv[2])
print("ready", flush=True)
child = 0
for line in sys.stdin:
    if child:
        os.waitpid(child, 0)
    child = os.fork()
    if child == 0:  # saves B and A in turn into the target until killed
        while True:
            for m in (b, a):
                m.save(sys.argv[3])
    print(child, flush=True)
"""


def killed_saves(project: dict[str, Any], target: Path, kills: int, seed: int) -> list[str]:
    """SIGKILL a process saving B and A in turn into ``target`` at random moments; after
    each kill the folder must load as A or as B. One interpreter forks a fresh saver per
    kill, so a kill costs only its random delay."""
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    root = project["root"]
    proc = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(root / "a"), str(root / "b"), str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    seen = []
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"
        for _ in range(kills):
            proc.stdin.write("go\n")
            proc.stdin.flush()
            saver = int(proc.stdout.readline())
            time.sleep(rng.uniform(0.0, 0.3))
            os.kill(saver, signal.SIGKILL)
            time.sleep(0.05)  # the kill lands before the folder is read
            prediction = load_model(target).predict(project["X"])
            if np.array_equal(prediction, project["a"]):
                seen.append("a")
            elif np.array_equal(prediction, project["b"]):
                seen.append("b")
            else:
                raise AssertionError("the folder mixes two saves: predictions of neither A nor B")
    finally:
        proc.kill()
        proc.wait()
    return seen


@pytest.mark.fuzz
def test_a_save_killed_at_any_moment_leaves_the_old_or_the_new_model(
    folder: Path, project: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    kills = examples(request.config, 8, 200)
    seen = killed_saves(project, folder, kills, seed=0)
    assert len(seen) == kills
    assert (folder / "reference.parquet").is_file()  # files beside the model stay
    stray = [p.name for p in folder.iterdir() if p.name.startswith("member_")]
    meta = json.loads((folder / "model.json").read_text())
    # Killed saves leave no member file the model does not name, beyond the one save's worth
    # of files that a kill between moving members in and the commit can strand.
    assert len(set(stray) - set(meta["files"])) <= 2 * len(meta["files"])


@pytest.mark.slow
def test_rmlite_train_killed_while_saving_leaves_a_loadable_model(
    folder: Path, project: dict[str, Any], tmp_path: Path
) -> None:
    """``rmlite train --out`` (model B) into a folder holding A, killed late in its run,
    when the save happens: the folder loads as A or B. One unkilled run times the command."""
    db = str(project["root"] / "store.duckdb")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "rmlite.cli", "train", "--db", db, "--dataset", "pend",
               "--n-estimators", "30", "--n-members", "2", "--n-jobs", "1", "--seed", "1",
               "--out", str(folder)]  # fmt: skip
    started = time.monotonic()
    subprocess.run(command, env=env, capture_output=True, check=True, timeout=300)
    took = time.monotonic() - started
    np.testing.assert_array_equal(load_model(folder).predict(project["X"]), project["b"])
    rng = random.Random(1)
    seen = set()
    for _ in range(4):
        shutil.rmtree(folder)
        shutil.copytree(project["root"] / "a", folder)
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.6, 1.0) * took)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        prediction = load_model(folder).predict(project["X"])
        if np.array_equal(prediction, project["a"]):
            seen.add("a")
        else:
            np.testing.assert_array_equal(prediction, project["b"])
            seen.add("b")
    assert seen  # which ones depends on the machine's speed; neither is a mix


# --------------------------------------------------------------------- CLI arguments


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``rmlite ARGS`` in this process (the subprocess cases above cover the real one)."""
    from rmlite.cli.main import main

    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_bad_seed_exits_2_in_a_real_process() -> None:
    done = rmlite("train", "--dataset", "d", "--seed", "-1")
    assert done.returncode == 2 and "argument --seed: expected a seed" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--dataset", "d", "--seed", "-1"], "argument --seed: expected a seed"),
        (
            ["train", "--dataset", "d", "--cv", "-3"],
            "argument --cv: expected 0 (off) or a number of folds",
        ),
        (
            ["train", "--dataset", "d", "--hidden-sizes", "abc"],
            "argument --hidden-sizes: expected layer widths",
        ),
        (
            ["train", "--dataset", "d", "--hidden-sizes", "64,0"],
            "argument --hidden-sizes: expected layer widths",
        ),
        (["tune", "--dataset", "d", "--cv", "1"], "argument --cv: expected a number of folds >= 2"),
        (["tune", "--dataset", "d", "--workers", "0"], "argument --workers: expected an int >= 1"),
        (["dashboard", "--port", "99999"], "argument --port: expected a port in [0, 65535]"),
        (
            ["collect", "--env", "Pendulum-v1", "--dataset", "d", "--episodes", "0"],
            "argument --episodes: expected an int >= 1",
        ),
        (
            ["prefs", "synth", "--dataset", "d", "--pairs", "-1"],
            "argument --pairs: expected an int >= 1",
        ),
    ],
    ids=["seed", "cv", "hidden-abc", "hidden-0", "tune-cv", "workers", "port", "episodes", "pairs"],
)
def test_bad_arguments_exit_2_naming_the_flag(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, err = run_main(capsys, *args)
    assert code == 2 and message in err, err[-2000:]


@pytest.mark.parametrize(
    ("param", "message"),
    [
        (
            "num_leaves=-5",
            "parameter 'num_leaves' (--param num_leaves=...) must be an int in the range [2, 131072]. Got -5",
        ),
        (
            "n_estimators=-1",
            "parameter 'n_estimators' (--param n_estimators=...) must be an int >= 1. Got -1",
        ),
        (
            "bagging_fraction=1.5",
            "'bagging_fraction' (--param bagging_fraction=...) must be a float in the range (0, 1]",
        ),
        ("max_depth=1.5", "'max_depth' (--param max_depth=...) must be an int"),
        (
            "objective=nonsense",
            "lightgbm refused to train with the native parameters objective='nonsense'",
        ),
    ],
    ids=["num_leaves", "n_estimators", "bagging_fraction", "max_depth", "objective"],
)
def test_native_params_the_engine_refuses_exit_2_naming_them(
    capsys: pytest.CaptureFixture[str], project: dict[str, Any], param: str, message: str
) -> None:
    db = str(project["root"] / "store.duckdb")
    code, err = run_main(
        capsys, "train", "--db", db, "--dataset", "pend", "--n-estimators", "5", "--param", param
    )
    assert code == 2 and message in err, err[-2000:]


def test_xgboost_native_limits_are_checked_too() -> None:
    X = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    model = RewardRegressor(backend="xgboost", n_estimators=3, backend_params={"subsample": 0})
    with pytest.raises(ValueError, match=r"native xgboost parameter 'subsample' .* range \(0, 1\]"):
        model.fit(X, X[:, 0])
