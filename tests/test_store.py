"""rmlite.data.store: ingest -> read round trips, idempotency, atomicity, checks, crash safety."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic import matrix, random_log

from rmlite import (
    ConflictError,
    DatasetNotFoundError,
    FeatureSpec,
    IngestError,
    LogStore,
    RmliteError,
    SchemaError,
)
from rmlite.data import schema as S
from rmlite.exceptions import ParameterError, StoreLockedError
from rmlite.testing import synthetic_log

# ----------------------------------------------------------------------------- helpers


def flatten(log: pl.DataFrame) -> pl.DataFrame:
    """Vectors as numbered scalar columns: obs_0.., act_0.., next_obs_0.."""
    columns: dict[str, np.ndarray] = {}
    for col, prefix in ((S.OBS, "obs_"), (S.ACTION, "act_"), (S.NEXT_OBS, "next_obs_")):
        values = matrix(log, col)
        columns |= {f"{prefix}{i}": values[:, i] for i in range(values.shape[1])}
    return pl.concat(
        [
            log.select(S.EPISODE, S.STEP),
            pl.DataFrame(columns),
            log.drop(S.EPISODE, S.STEP, *S.VECTOR_COLUMNS),
        ],
        how="horizontal",
    )


def json_text(log: pl.DataFrame) -> pl.DataFrame:
    """Vectors as JSON arrays in text columns: what a CSV can hold."""
    return log.with_columns(
        pl.Series(col, [json.dumps(row.tolist()) for row in matrix(log, col)])
        for col in S.VECTOR_COLUMNS
    )


def write(frame: pl.DataFrame, path: Path) -> Path:
    suffix = path.suffix
    if suffix == ".parquet":
        frame.write_parquet(path)
    elif suffix == ".csv":
        frame.write_csv(path)
    elif suffix == ".jsonl":
        frame.write_ndjson(path)
    elif suffix == ".arrow":
        frame.write_ipc(path)
    else:
        raise AssertionError(suffix)
    return path


def assert_read_equals(stored: pl.DataFrame, source: pl.DataFrame, extra: tuple[str, ...] = ()):
    """The store holds the source's transitions, bit for bit."""
    source = source.sort(S.EPISODE, S.STEP)
    assert stored.height == source.height
    assert stored[S.EPISODE].to_list() == source[S.EPISODE].to_list()
    assert stored[S.STEP].to_list() == source[S.STEP].to_list()
    for col in S.VECTOR_COLUMNS:
        assert stored.schema[col] == pl.List(pl.Float32)
        np.testing.assert_array_equal(matrix(stored, col), matrix(source, col), err_msg=col)
    assert stored.schema[S.REWARD] == pl.Float64
    np.testing.assert_array_equal(stored[S.REWARD].to_numpy(), source[S.REWARD].to_numpy())
    assert stored[S.TERMINATED].to_list() == source[S.TERMINATED].to_list()
    assert stored[S.TRUNCATED].to_list() == source[S.TRUNCATED].to_list()
    if extra:
        got = [json.loads(x) for x in stored[S.EXTRA].to_list()]
        assert got == source.select(extra).to_dicts()
    else:
        assert stored[S.EXTRA].null_count() == stored.height


# ---------------------------------------------------------------- round trips


episodes_strategy = st.lists(
    st.tuples(st.integers(1, 40), st.sampled_from(["terminated", "truncated", "none"])),
    min_size=1,
    max_size=4,
)

ROUND_TRIPS = {
    "parquet-list": (".parquet", lambda log: log),
    "jsonl-list": (".jsonl", lambda log: log),
    "ipc-list": (".arrow", lambda log: log),
    "csv-flat": (".csv", flatten),
    "csv-json-text": (".csv", json_text),
    "parquet-flat": (".parquet", flatten),
}


@pytest.mark.parametrize("layout", list(ROUND_TRIPS))
@settings(max_examples=12, deadline=None)
@given(
    episodes=episodes_strategy,
    obs_dim=st.integers(1, 12),
    action_dim=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1e-3, 1.0, 1e4]),
)
def test_ingest_read_round_trip(layout, episodes, obs_dim, action_dim, seed, scale):
    suffix, shape = ROUND_TRIPS[layout]
    lengths, ends = [n for n, _ in episodes], [e for _, e in episodes]
    log = random_log(
        lengths,
        np.random.default_rng(seed),
        ends=ends,
        obs_dim=obs_dim,
        action_dim=action_dim,
        scale=scale,
        info=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = write(shape(log), Path(tmp) / f"log{suffix}")
        store = LogStore(Path(tmp) / "store.duckdb")
        report = store.ingest(path, dataset="d")
        assert (report.rows_read, report.rows_added, report.rows_duplicate) == (
            len(log),
            len(log),
            0,
        )
        assert (report.obs_dim, report.action_dim, report.episodes) == (
            obs_dim,
            action_dim,
            len(lengths),
        )
        assert report.sources == [str(path)]
        assert not report.next_obs_derived
        assert_read_equals(store.read("d"), log, extra=("info",))


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".arrow"])
def test_flat_rollout_round_trip_in_every_format(
    suffix, tmp_path, store, pendulum_log, pendulum_flat
):
    path = write(pendulum_flat, tmp_path / f"pendulum{suffix}")
    report = store.ingest(path, dataset="pendulum")
    assert (report.rows_added, report.obs_dim, report.action_dim) == (200, 3, 1)
    assert_read_equals(store.read("pendulum"), pendulum_log)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".arrow"])
def test_list_rollout_round_trip(suffix, tmp_path, store, walker_log):
    path = write(walker_log, tmp_path / f"walker{suffix}")
    store.ingest(path, dataset="walker")
    assert_read_equals(store.read("walker"), walker_log)


def test_in_memory_tables_and_many_files(tmp_path, store, pendulum_log):
    first, second = (
        pendulum_log.filter(pl.col(S.EPISODE) < 2),
        pendulum_log.filter(pl.col(S.EPISODE) >= 2),
    )
    write(first, tmp_path / "a.parquet")
    write(second.lazy().collect(), tmp_path / "b.arrow")
    report = store.ingest(tmp_path, dataset="folder")
    assert report.sources == [str(tmp_path / "a.parquet"), str(tmp_path / "b.arrow")]
    assert_read_equals(store.read("folder"), pendulum_log)
    store.ingest([first.to_arrow(), second.lazy()], dataset="tables")
    assert_read_equals(store.read("tables"), pendulum_log)
    memory = LogStore(":memory:")
    memory.ingest(pendulum_log, dataset="mem")
    assert_read_equals(memory.read("mem"), pendulum_log)


# ---------------------------------------------------------------- idempotency


@settings(max_examples=10, deadline=None)
@given(
    episodes=episodes_strategy,
    seed=st.integers(0, 2**32 - 1),
    derive_next_obs=st.booleans(),
    subset=st.floats(0.0, 1.0),
)
def test_ingesting_the_same_rows_again_adds_nothing(episodes, seed, derive_next_obs, subset):
    lengths, ends = [n for n, _ in episodes], [e for _, e in episodes]
    log = random_log(
        lengths, np.random.default_rng(seed), ends=ends, obs_dim=3, action_dim=2, info=True
    )
    if derive_next_obs:
        log = log.drop(S.NEXT_OBS)
    with tempfile.TemporaryDirectory() as tmp:
        store = LogStore(Path(tmp) / "store.duckdb")
        store.ingest(log, dataset="d")
        store.ingest(log.head(3), dataset="other")

        def content():
            return (
                store.sql("SELECT * FROM transitions ORDER BY ALL"),
                store.sql("SELECT * EXCLUDE (updated_at) FROM datasets ORDER BY ALL"),
                store.sql("SELECT * FROM rejected ORDER BY ALL"),
            )

        before = content()
        again = store.ingest(log, dataset="d")
        assert (again.rows_added, again.rows_duplicate, again.rows_conflicting) == (0, len(log), 0)
        assert again.rows_rejected == 0
        if not derive_next_obs:  # a subset derives other next_obs at its episode ends
            part = log.sample(n=max(1, round(subset * len(log))), seed=seed % 1000)
            rep = store.ingest(part, dataset="d")
            assert (rep.rows_added, rep.rows_duplicate) == (0, len(part))
        after = content()
        for b, a in zip(before, after, strict=True):
            assert b.equals(a)
        ingests = store.sql("SELECT rows_added, rows_duplicate FROM ingests ORDER BY ingest_id")
        assert ingests["rows_added"].to_list()[2:] == [0] * (ingests.height - 2)


def test_new_rows_land_beside_stored_ones(store, pendulum_log):
    store.ingest(pendulum_log.filter(pl.col(S.EPISODE) < 3), dataset="p")
    report = store.ingest(pendulum_log, dataset="p")
    assert (report.rows_added, report.rows_duplicate) == (50, 150)
    assert_read_equals(store.read("p"), pendulum_log)


# ------------------------------------------------------------- failed ingests


def _bad_missing_reward(log: pl.DataFrame, path: Path):
    write(log.drop(S.REWARD), path)
    return SchemaError, r"required column 'reward' not found"


def _bad_missing_obs(log: pl.DataFrame, path: Path):
    write(log.drop(S.OBS), path)
    return SchemaError, r"required column 'obs' not found"


def _bad_text_reward(log: pl.DataFrame, path: Path):
    write(log.with_columns(pl.col(S.REWARD).cast(pl.String)), path)
    return SchemaError, r"column 'reward' \(reward\) must be numeric; got String"


def _bad_vector_length(log: pl.DataFrame, path: Path):
    obs = log[S.OBS].to_list()
    obs[7] = obs[7][:2]
    write(log.with_columns(pl.Series(S.OBS, obs, dtype=pl.List(pl.Float32))), path)
    return IngestError, r"row 7: obs has 2 values; expected 3"


def _bad_duplicate_step(log: pl.DataFrame, path: Path):
    steps = log[S.STEP].to_list()
    steps[4] = steps[3]
    write(log.with_columns(pl.Series(S.STEP, steps)), path)
    return IngestError, r"row 3: duplicate step: episode 100 step 3 appears more than once"


def _bad_garbage_file(log: pl.DataFrame, path: Path):
    path.write_bytes(b"PAR1" + os.urandom(2000))
    return IngestError, r"cannot be read as parquet"


BAD_INPUTS = {
    "missing reward": _bad_missing_reward,
    "missing obs": _bad_missing_obs,
    "text reward": _bad_text_reward,
    "vector length": _bad_vector_length,
    "duplicate step": _bad_duplicate_step,
    "garbage file": _bad_garbage_file,
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_a_failed_ingest_leaves_the_store_unchanged(
    case, tmp_path, store, pendulum_log, snapshot, same_tables
):
    store.ingest(pendulum_log, dataset="pendulum")
    store.ingest(pendulum_log.head(10), dataset="other", on_error="quarantine")
    before = snapshot(store)
    path = tmp_path / "bad.parquet"
    # Episodes 100+ are new to the store: had anything landed, the tables would differ.
    fresh = pendulum_log.with_columns(pl.col(S.EPISODE) + 100)
    error, message = BAD_INPUTS[case](fresh, path)
    with pytest.raises(error, match=rf"^{re.escape(str(path))}: {message}"):
        store.ingest(path, dataset="pendulum")
    same_tables(before, snapshot(store))
    # The failure also leaves no trace for a new dataset.
    with pytest.raises(error, match=message):
        store.ingest(path, dataset="new")
    same_tables(before, snapshot(store))
    assert "new" not in store.datasets()["dataset"].to_list()


def test_a_conflicting_key_leaves_the_store_unchanged(
    tmp_path, store, pendulum_log, snapshot, same_tables
):
    store.ingest(pendulum_log, dataset="pendulum")
    before = snapshot(store)
    changed = pendulum_log.filter((pl.col(S.EPISODE) == 0) & (pl.col(S.STEP) == 5)).with_columns(
        pl.col(S.REWARD) + 1.0
    )
    fresh = pendulum_log.with_columns(pl.col(S.EPISODE) + 100)
    path = write(pl.concat([fresh, changed]), tmp_path / "conflict.parquet")
    with pytest.raises(
        ConflictError,
        match=rf"conflict\.parquet: row {len(fresh)}: episode 0 step 5 is already stored in "
        r"dataset 'pendulum' with a different reward\. Stored rows are never overwritten",
    ):
        store.ingest(path, dataset="pendulum")
    same_tables(before, snapshot(store))
    # Two conflicting columns are both named; the count of further conflicts too.
    both = pendulum_log.head(3).with_columns(pl.col(S.REWARD) - 1, ~pl.col(S.TERMINATED))
    with pytest.raises(
        ConflictError, match=r"<DataFrame>: row 0: .* different reward, terminated \(2 more\)"
    ):
        store.ingest(both, dataset="pendulum")
    same_tables(before, snapshot(store))


def test_ingest_refuses_vectors_of_another_dimension(
    store, pendulum_log, walker_log, snapshot, same_tables
):
    store.ingest(pendulum_log, dataset="pendulum")
    before = snapshot(store)
    with pytest.raises(
        IngestError, match=r"<DataFrame>: row 0: obs has 17 values; the dataset has 3"
    ):
        store.ingest(walker_log, dataset="pendulum")
    same_tables(before, snapshot(store))


def test_ingest_refuses_a_blank_dataset_name(store, pendulum_log):
    with pytest.raises(IngestError, match=r"The dataset name must be a non-empty string\. Got ' '"):
        store.ingest(pendulum_log, dataset=" ")


# ---------------------------------------------------------------- quarantine


def test_quarantine_lands_good_rows_and_keeps_bad_ones(tmp_path, store, pendulum_log):
    store.ingest(pendulum_log.filter(pl.col(S.EPISODE) == 0), dataset="p")
    log = pendulum_log.filter(pl.col(S.EPISODE) >= 1)  # rows 0..149 of the file
    obs = log[S.OBS].to_list()
    obs[10] = obs[10] + [0.0]  # row 10: 4 values
    steps = log[S.STEP].to_list()
    steps[61] = steps[60]  # rows 60 and 61: episode 2 step 10 twice
    changed = pendulum_log.filter(pl.col(S.EPISODE) == 0).head(2).with_columns(pl.col(S.REWARD) * 2)
    bad = pl.concat(
        [
            log.with_columns(
                pl.Series(S.OBS, obs, dtype=pl.List(pl.Float32)), pl.Series(S.STEP, steps)
            ),
            changed,
        ]
    )
    path = write(bad, tmp_path / "mixed.parquet")
    report = store.ingest(path, dataset="p", on_error="quarantine")
    assert report.rows_read == 152
    assert report.rows_added == 147
    assert report.rows_rejected == 3
    assert report.rows_conflicting == 2
    assert report.rows_duplicate == 0

    rejected = store.rejected("p").sort("source_row")
    assert rejected["source"].unique().to_list() == [str(path)]
    assert rejected["source_row"].to_list() == [10, 60, 61, 150, 151]
    assert rejected["reason"].to_list() == [
        "obs has 4 values; expected 3",
        "duplicate step: episode 2 step 10 appears more than once",
        "duplicate step: episode 2 step 10 appears more than once",
        "conflict: stored with a different reward",
        "conflict: stored with a different reward",
    ]
    record = json.loads(rejected["record"][0])
    assert len(record["obs"]) == 4 and record["step"] == 10 and record["episode_id"] == 1
    assert json.loads(rejected["record"][3])["reward"] == pytest.approx(changed[S.REWARD][0])
    assert rejected["ingest_id"].unique().to_list() == [report.ingest_id]

    stored = store.read("p")
    assert stored.height == 50 + 147
    # The stored rows of episode 0 kept their original reward.
    assert_read_equals(
        stored.filter(pl.col(S.EPISODE) == 0), pendulum_log.filter(pl.col(S.EPISODE) == 0)
    )
    keys = set(stored.select(S.EPISODE, S.STEP).rows())
    # Row 61 (step 11) was renumbered to 10: both copies of step 10 are out, step 12 is in.
    assert (1, 10) not in keys and (2, 10) not in keys and (2, 11) not in keys
    assert (1, 9) in keys and (1, 11) in keys and (2, 12) in keys
    ingest = store.sql("SELECT * FROM ingests WHERE ingest_id = $i", {"i": report.ingest_id})
    assert ingest.select("rows_read", "rows_added", "rows_rejected", "rows_conflicting").row(0) == (
        152,
        147,
        3,
        2,
    )
    assert store.rejected("other").height == 0
    assert store.rejected().height == 5


# ------------------------------------------------------------------- crash safety


def test_sigkill_during_ingest_leaves_the_store_as_it_was(tmp_path, snapshot, same_tables):
    db = tmp_path / "store.duckdb"
    big = tmp_path / "big.parquet"
    synthetic_log(rows=1_000_000, seed=3).write_parquet(big, compression="uncompressed")
    store = LogStore(db)
    store.ingest(
        synthetic_log(rows=300, obs_dim=17, action_dim=6, episode_length=100), dataset="small"
    )
    before = snapshot(store)

    script = textwrap.dedent(
        f"""
        from rmlite import LogStore
        LogStore({str(db)!r}).ingest({str(big)!r}, dataset="big",
                                       progress=lambda m: print(m, flush=True))
        print("finished", flush=True)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        seen = []
        for line in child.stdout:
            seen.append(line.strip())
            if line.startswith("landing"):
                time.sleep(random.uniform(0.05, 0.3))
                child.send_signal(signal.SIGKILL)
                break
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL, (seen, child.stderr.read())
    assert "finished" not in seen and "done" not in seen

    # The store opens and holds exactly what it held before.
    same_tables(before, snapshot(store))
    assert "big" not in store.datasets()["dataset"].to_list()
    # The same ingest then completes.
    report = store.ingest(big, dataset="big")
    assert (report.rows_added, report.rows_duplicate) == (1_000_000, 0)
    counts = store.sql("SELECT dataset, count(*) AS n FROM transitions GROUP BY ALL ORDER BY ALL")
    assert counts.rows() == [("big", 1_000_000), ("small", 300)]


# --------------------------------------------------------------- real rollouts


@pytest.mark.parametrize(
    ("fixture", "obs_dim", "action_dim"), [("pendulum_log", 3, 1), ("walker_log", 17, 6)]
)
def test_rollout_ingest(fixture, obs_dim, action_dim, request, store):
    log = request.getfixturevalue(fixture)
    report = store.ingest(log, dataset="env")
    n_eps = log[S.EPISODE].n_unique()
    assert (report.rows_added, report.episodes) == (len(log), n_eps)
    assert (report.obs_dim, report.action_dim) == (obs_dim, action_dim)
    assert report.warnings == []
    info = store.datasets().row(0, named=True)
    assert (info["dataset"], info["episodes"], info["transitions"]) == ("env", n_eps, len(log))
    assert (info["obs_dim"], info["action_dim"], info["action_discrete"]) == (
        obs_dim,
        action_dim,
        False,
    )

    episodes = store.episodes("env")
    want = log.group_by(S.EPISODE, maintain_order=True).agg(
        pl.len().alias("length"),
        pl.col(S.REWARD).sum().alias("return"),
        pl.col(S.TERMINATED).any(),
        pl.col(S.TRUNCATED).any(),
    )
    assert episodes["length"].to_list() == want["length"].to_list()
    np.testing.assert_allclose(episodes["return"].to_numpy(), want["return"].to_numpy(), rtol=1e-12)
    # Terminated and truncated endings stay apart.
    assert episodes[S.TERMINATED].to_list() == want[S.TERMINATED].to_list()
    assert episodes[S.TRUNCATED].to_list() == want[S.TRUNCATED].to_list()

    check = store.check("env")
    assert check.problems == []
    assert check.episodes["episodes_terminated"] == int(want[S.TERMINATED].sum())
    assert check.episodes["episodes_truncated"] == int(want[S.TRUNCATED].sum())
    assert check.next_obs["pairs_checked"] == len(log) - n_eps
    assert check.values["transitions"] == len(log)


def test_walker_has_both_endings(store, walker_log):
    store.ingest(walker_log, dataset="walker")
    episodes = store.episodes("walker")
    assert episodes.filter(pl.col(S.TERMINATED))["length"].max() < 40
    assert episodes.filter(pl.col(S.TRUNCATED))["length"].to_list() == [40] * int(
        episodes[S.TRUNCATED].sum()
    )
    assert not (episodes[S.TERMINATED] & episodes[S.TRUNCATED]).any()
    assert episodes[S.TERMINATED].any() and episodes[S.TRUNCATED].any()


ENVS = ["pendulum_log", "walker_log"]


@pytest.mark.parametrize("env", ENVS)
def test_check_reports_a_gap(env, request, store):
    log = request.getfixturevalue(env)
    gap = log.filter(~((pl.col(S.EPISODE) == 1) & (pl.col(S.STEP) == 5)))
    store.ingest(gap, dataset="gap")
    check = store.check("gap")
    assert check.episodes["episodes_with_step_gaps"] == 1
    assert check.episodes["missing_steps"] == 1
    assert check.episodes["example_gap_episodes"] == [1]
    assert check.problems == [
        "1 episodes have gaps in step numbering (1 steps missing; e.g. episodes [1])"
    ]


@pytest.mark.parametrize("env", ENVS)
def test_check_reports_next_obs_shifted_by_one(env, request, store):
    log = request.getfixturevalue(env)
    shifted = log.with_columns(pl.col(S.NEXT_OBS).shift(1).over(S.EPISODE))
    store.ingest(shifted, dataset="shifted")
    check = store.check("shifted")
    # Step 0 lost its next_obs; every later step but the last now holds its own obs as
    # next_obs, which differs from the next step's obs.
    lengths = log.group_by(S.EPISODE).len()["len"]
    expected = int((lengths - 2).sum())
    assert check.next_obs["next_obs_mismatch"] == expected
    assert check.next_obs["example_mismatches"][0] == [0, 1]
    assert len(check.problems) == 1
    assert (
        f"{expected} transitions have next_obs different from the next step's obs"
        in (check.problems[0])
    )
    assert "off-by-one" in check.problems[0]


@pytest.mark.parametrize("env", ENVS)
def test_check_reports_an_unfinished_episode(env, request, store):
    log = request.getfixturevalue(env)
    ep2 = pl.col(S.EPISODE) == 2
    unfinished = log.with_columns(
        pl.when(ep2).then(False).otherwise(pl.col(S.TERMINATED)).alias(S.TERMINATED),
        pl.when(ep2).then(False).otherwise(pl.col(S.TRUNCATED)).alias(S.TRUNCATED),
    )
    store.ingest(unfinished, dataset="unfinished")
    check = store.check("unfinished")
    assert check.episodes["episodes_unfinished"] == 1
    assert check.problems == ["1 episodes end with neither terminated nor truncated (e.g. [2])"]


def test_check_reports_flags_mid_episode_and_bad_values(store, pendulum_log):
    log = pendulum_log.with_columns(
        (pl.col(S.TERMINATED) | ((pl.col(S.EPISODE) == 0) & (pl.col(S.STEP) == 10))).alias(
            S.TERMINATED
        ),
        pl.when(pl.col(S.STEP) == 3).then(None).otherwise(pl.col(S.REWARD)).alias(S.REWARD),
    )
    log = log.filter(~((pl.col(S.EPISODE) == 3) & (pl.col(S.STEP) < 2)))
    store.ingest(log, dataset="odd")
    problems = store.check("odd").problems
    assert "1 episodes do not start at step 0" in problems
    assert "1 episodes are terminated/truncated before their last step" in problems
    assert "4 transitions have no reward" in problems
    assert store.datasets()["rewards_missing"].to_list() == [4]


def test_check_counts_non_finite_values(store, pendulum_log):
    obs = matrix(pendulum_log, S.OBS)
    obs[5, 0] = np.nan
    obs[6, 1] = np.inf
    log = pendulum_log.with_columns(
        pl.Series(S.OBS, obs).arr.to_list(),
        pl.when(pl.col(S.STEP) == 7).then(float("nan")).otherwise(pl.col(S.REWARD)).alias(S.REWARD),
    )
    store.ingest(log, dataset="nan")
    values = store.check("nan").values
    assert (values["obs_nan"], values["obs_inf"], values["reward_nan"]) == (1, 1, 4)
    assert "4 reward nan values" in store.check("nan").problems


# ---------------------------------------------------------------- derivations


def test_next_obs_absent_is_derived_and_null_at_episode_end(store, pendulum_log):
    report = store.ingest(pendulum_log.drop(S.NEXT_OBS), dataset="derived")
    assert report.next_obs_derived
    stored = store.read("derived")
    last = stored[S.STEP] == 49
    assert stored.filter(last)[S.NEXT_OBS].null_count() == 4  # flagged, not invented
    assert stored.filter(~last)[S.NEXT_OBS].null_count() == 0
    rows = ~last.to_numpy()
    np.testing.assert_array_equal(
        matrix(stored.filter(~last), S.NEXT_OBS), matrix(pendulum_log, S.NEXT_OBS)[rows]
    )
    check = store.check("derived")
    assert check.values["next_obs_null"] == 4
    assert check.problems == []


def test_episode_and_step_absent_are_derived(store, pendulum_log, walker_log):
    store.ingest(pendulum_log.drop(S.EPISODE, S.STEP), dataset="pendulum")
    assert_read_equals(store.read("pendulum"), pendulum_log)
    # Walker episodes end terminated or truncated: both cut an episode.
    store.ingest(walker_log.drop(S.EPISODE, S.STEP), dataset="walker")
    assert_read_equals(store.read("walker"), walker_log)


def test_step_absent_is_derived_from_row_order(store, walker_log):
    store.ingest(walker_log.drop(S.STEP), dataset="walker")
    assert_read_equals(store.read("walker"), walker_log)


# --------------------------------------------------------------- reads and errors


def test_read_selected_columns(store, pendulum_log):
    store.ingest(pendulum_log, dataset="p")
    frame = store.read("p", columns=[S.REWARD])
    assert frame.columns == [S.EPISODE, S.STEP, S.REWARD]
    assert frame[S.REWARD].to_list() == pendulum_log[S.REWARD].to_list()
    with pytest.raises(RmliteError, match=r"unknown column\(s\) \['rewards'\]"):
        store.read("p", columns=["rewards"])


def test_unknown_dataset_suggests_a_name(store, pendulum_log):
    store.ingest(pendulum_log, dataset="pendulum")
    with pytest.raises(
        DatasetNotFoundError,
        match=r"store\.duckdb: no dataset 'pendulm' \(did you mean 'pendulum'\?\)",
    ):
        store.read("pendulm")
    with pytest.raises(DatasetNotFoundError, match=r"no dataset 'x'\. The store holds: 'pendulum'"):
        store.check("x")


def test_reading_a_store_that_does_not_exist(tmp_path):
    store = LogStore(tmp_path / "nothing.duckdb")
    with pytest.raises(RmliteError, match=r"nothing\.duckdb: no store here yet"):
        store.read("x")
    assert not (tmp_path / "nothing.duckdb").exists()


def test_sql_is_read_only_by_default(store, pendulum_log):
    store.ingest(pendulum_log, dataset="p")
    with pytest.raises(RmliteError, match=r"SQL error: .*read-only"):
        store.sql("DELETE FROM transitions")
    with pytest.raises(RmliteError, match=r"SQL error: Parser Error"):
        store.sql("SELEC 1")
    assert (
        store.sql("SELECT count(*) AS n FROM transitions WHERE step < $s", {"s": 10})["n"][0] == 40
    )


def test_ingest_reports_progress(store, pendulum_log):
    messages: list[str] = []
    store.ingest(pendulum_log, dataset="p", progress=messages.append)
    assert messages == ["reading and checking sources", "landing 200 transitions", "done"]


def test_features_from_the_store(store, pendulum_log):
    store.ingest(pendulum_log, dataset="p")
    spec = FeatureSpec(target="return", gamma=0.9, scaling="standard")
    ff = store.features("p", spec, train_episodes=[0, 1])
    assert ff.X.shape == (200, 4)
    assert ff.feature_names == ["obs_0", "obs_1", "obs_2", "act_0"]
    np.testing.assert_array_equal(ff.X[:, :3], matrix(pendulum_log, S.OBS))
    held_out = store.features("p", spec, stats=ff.stats)
    np.testing.assert_array_equal(held_out.y, ff.y)
    assert ff.stats.train_rows == 100


def test_reingesting_nan_and_null_values_is_idempotent(store, pendulum_log):
    obs = matrix(pendulum_log, S.OBS)
    obs[3, 0] = np.nan
    log = pendulum_log.with_columns(
        pl.Series(S.OBS, obs).arr.to_list(),
        pl.when(pl.col(S.STEP) == 2)
        .then(float("nan"))
        .when(pl.col(S.STEP) == 4)
        .then(None)
        .otherwise(pl.col(S.REWARD))
        .alias(S.REWARD),
    )
    store.ingest(log, dataset="p")
    before = store.sql("SELECT * FROM transitions ORDER BY ALL")
    again = store.ingest(log, dataset="p")
    assert (again.rows_added, again.rows_duplicate, again.rows_conflicting) == (0, 200, 0)
    assert store.sql("SELECT * FROM transitions ORDER BY ALL").equals(before)


def _hold_store_open(path: Path, seconds: float) -> subprocess.Popen:
    """A process that opens the store for writing, says 'ready', and closes it later."""
    script = (
        f"import duckdb, time; con = duckdb.connect({str(path)!r}); print('ready', flush=True); "
        f"time.sleep({seconds}); con.close(); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def test_a_store_held_by_another_process(tmp_path, pendulum_log):
    path = tmp_path / "held.duckdb"
    LogStore(path).ingest(pendulum_log, dataset="p")
    child = _hold_store_open(path, seconds=30)
    try:
        # The message names the process that holds the file, so the user knows whom to stop.
        with pytest.raises(
            StoreLockedError, match=rf"held\.duckdb: process {child.pid} \(.*\) is writing"
        ):
            LogStore(path, lock_timeout=0.2).read("p")
    finally:
        child.kill()
        child.wait()


def test_a_store_released_within_the_lock_timeout(tmp_path, pendulum_log):
    path = tmp_path / "held.duckdb"
    LogStore(path).ingest(pendulum_log, dataset="p")
    child = _hold_store_open(path, seconds=0.5)
    try:
        report = LogStore(path, lock_timeout=20).ingest(pendulum_log, dataset="p")
        assert report.rows_duplicate == 200
    finally:
        child.kill()
        child.wait()


def test_default_store_path_comes_from_the_environment(tmp_path, monkeypatch, pendulum_log):
    monkeypatch.setenv("RMLITE_DB", str(tmp_path / "env.duckdb"))
    store = LogStore()
    assert store.path == str(tmp_path / "env.duckdb")
    store.ingest(pendulum_log, dataset="p")
    assert (tmp_path / "env.duckdb").exists()
    monkeypatch.delenv("RMLITE_DB")
    assert LogStore().path == "rmlite.duckdb"


def test_reward_histogram_is_counted_in_duckdb_as_numpy_counts_it(
    store: LogStore, pendulum_log: pl.DataFrame
) -> None:
    rewards = pendulum_log["reward"].to_numpy().copy()
    log = pendulum_log.with_columns(
        pl.when(pl.int_range(pl.len()) % 17 == 3).then(None).otherwise(pl.col("reward"))
        .alias("reward")
    )  # fmt: skip
    store.ingest(log, dataset="pend")
    finite = rewards[np.arange(len(rewards)) % 17 != 3]
    for bins in (1, 7, 30):
        edges, counts = store.reward_histogram("pend", bins)
        want_counts, want_edges = np.histogram(finite, bins=bins)
        np.testing.assert_array_equal(counts, want_counts)
        np.testing.assert_allclose(edges, want_edges, rtol=0, atol=1e-12)
    store.ingest(log.head(5).with_columns(pl.lit(-1.5).alias("reward")), dataset="flat")
    edges, counts = store.reward_histogram("flat")
    want_counts, want_edges = np.histogram(np.full(5, -1.5), bins=1)
    assert counts.tolist() == want_counts.tolist() and edges.tolist() == want_edges.tolist()
    store.ingest(log.head(5).with_columns(pl.lit(None, pl.Float64).alias("reward")), dataset="none")
    assert [a.size for a in store.reward_histogram("none")] == [0, 0]
    with pytest.raises(ParameterError, match=r"'bins' parameter must be an int >= 1\. Got 0"):
        store.reward_histogram("pend", 0)
    with pytest.raises(DatasetNotFoundError, match="pendd"):
        store.reward_histogram("pendd")


def test_a_transaction_a_failed_statement_aborted_does_not_pass_for_a_commit(tmp_path) -> None:
    """DuckDB commits an aborted transaction as a silent rollback; the store says so."""
    import contextlib

    import duckdb

    from rmlite.data.store._connection import transaction

    store = LogStore(tmp_path / "s.duckdb")
    store.ingest(synthetic_log(rows=100, episode_length=20), dataset="a")
    before = store.read("a").height
    with (
        store.connect(write=True) as con,
        pytest.raises(RmliteError, match="nothing was written"),
        transaction(store.path, con),
    ):
        con.execute("DELETE FROM transitions")
        with contextlib.suppress(duckdb.Error):
            con.execute("SELECT * FROM no_such_table")
    assert store.read("a").height == before
