"""rmlite.data.logs: reading files and normalizing any column layout to the log contract."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from rmlite import ColumnMapping, IngestError, SchemaError
from rmlite.data import schema as S
from rmlite.data.logs import expand_sources, prepare, read_source


def _vectors(frame: pl.DataFrame, col: str) -> list:
    return frame[col].to_list()


def _tiny(**overrides) -> pl.DataFrame:
    """Two episodes of three steps, vectors as list columns."""
    data = {
        "episode_id": [0, 0, 0, 1, 1, 1],
        "step": [0, 1, 2, 0, 1, 2],
        "obs": [[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [5.0, 0.0], [6.0, 0.0], [7.0, 0.0]],
        "action": [[1.0], [0.0], [1.0], [0.5], [0.5], [0.5]],
        "reward": [0.0, 0.5, 1.0, -1.0, -2.0, -3.0],
        "terminated": [False, False, True, False, False, False],
        "truncated": [False, False, False, False, False, True],
    }
    data.update(overrides)
    return pl.DataFrame(data)


# ------------------------------------------------------------------------------ reading


@pytest.mark.parametrize("ending", [".parquet", ".csv", ".jsonl", ".ndjson", ".arrow", ".feather"])
def test_read_source_reads_every_format(tmp_path, ending):
    frame = pl.DataFrame({"episode_id": [0, 0], "reward": [1.5, -2.0], "terminated": [False, True]})
    path = tmp_path / f"log{ending}"
    if ending == ".parquet":
        frame.write_parquet(path)
    elif ending == ".csv":
        frame.write_csv(path)
    elif ending in (".jsonl", ".ndjson"):
        frame.write_ndjson(path)
    else:
        frame.write_ipc(path)
    name, read = read_source(path)
    assert name == str(path)
    assert read.equals(frame)


def test_read_source_names_in_memory_tables(pendulum_log):
    assert read_source(pendulum_log)[0] == "<DataFrame>"
    assert read_source(pendulum_log.lazy())[0] == "<LazyFrame>"
    name, frame = read_source(pendulum_log.to_arrow())
    assert name == "<pyarrow.Table>"
    assert frame.equals(pendulum_log)


def test_read_source_refuses_unknown_file_type(tmp_path):
    path = tmp_path / "log.xlsx"
    path.write_bytes(b"not a log")
    with pytest.raises(IngestError, match=r"log\.xlsx: unknown file type '\.xlsx'"):
        read_source(path)


@pytest.mark.parametrize("ending", [".parquet", ".arrow", ".jsonl"])
def test_read_source_names_an_unreadable_file(tmp_path, ending):
    path = tmp_path / f"broken{ending}"
    path.write_bytes(b"\x00\xffgarbage, not a log at all\x13\x37" * 10)
    with pytest.raises(IngestError, match=rf"broken{re.escape(ending)}: cannot be read as "):
        read_source(path)


def test_expand_sources_globs_and_folders(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.parquet", "a.csv", "sub/c.jsonl"):
        (tmp_path / name).write_text("x")
    (tmp_path / "notes.txt").write_text("ignored: not a log file")
    assert expand_sources([tmp_path]) == [
        str(tmp_path / "a.csv"),
        str(tmp_path / "b.parquet"),
        str(tmp_path / "sub" / "c.jsonl"),
    ]
    assert expand_sources([str(tmp_path / "*.parquet")]) == [str(tmp_path / "b.parquet")]


def test_expand_sources_errors_name_the_path(tmp_path):
    with pytest.raises(IngestError, match=r"missing\.parquet: no such file or folder"):
        expand_sources([tmp_path / "missing.parquet"])
    with pytest.raises(IngestError, match=r"\*\.csv: the pattern matches no log file"):
        expand_sources([str(tmp_path / "*.csv")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match=r"empty: the folder holds no log file"):
        expand_sources([tmp_path / "empty"])
    with pytest.raises(IngestError, match="ingest was given no source"):
        expand_sources([])


# -------------------------------------------------------------------------- layouts


def test_prepare_list_layout():
    log = prepare([_tiny()])
    frame = log.frame
    assert (log.obs_dim, log.action_dim, log.action_discrete) == (2, 1, False)
    assert frame[S.OBS].to_list() == _tiny()["obs"].to_list()
    assert frame.schema[S.OBS] == pl.List(pl.Float32)
    assert frame[S.REWARD].to_list() == _tiny()["reward"].to_list()
    assert log.rows_read == 6 and log.rejected.height == 0
    assert log.warnings == []


def test_prepare_flat_layout_orders_columns_by_number():
    raw = pl.DataFrame(
        {"episode_id": [0, 0], "terminated": [False, True], "reward": [1.0, 2.0]}
        | {f"obs_{i}": [float(i), float(i + 100)] for i in (10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9)}
        | {"act_0": [0.5, 0.25]}
    )
    log = prepare([raw])
    assert log.obs_dim == 11
    assert log.frame[S.OBS][0].to_list() == [float(i) for i in range(11)]
    assert log.frame[S.ACTION].to_list() == [[0.5], [0.25]]


def test_prepare_recognizes_aliases_and_case():
    raw = pl.DataFrame(
        {
            "Episode": [3, 3, 3],
            "t": [0, 1, 2],
            "observations": [[0.0], [1.0], [2.0]],
            "actions": [[1.0], [1.0], [1.0]],
            "rewards": [1.0, 2.0, 3.0],
            "terminals": [False, False, True],
            "timeouts": [False, False, False],
        }
    )
    frame = prepare([raw]).frame
    assert frame[S.EPISODE].to_list() == [3, 3, 3]
    assert frame[S.STEP].to_list() == [0, 1, 2]
    assert frame[S.REWARD].to_list() == [1.0, 2.0, 3.0]
    assert frame[S.TERMINATED].to_list() == [False, False, True]
    assert frame[S.EXTRA].null_count() == 3  # every column was used


def test_prepare_with_mapping_and_glob():
    raw = pl.DataFrame(
        {
            "run": [0, 0],
            "q_1": [1.0, 3.0],
            "q_0": [0.0, 2.0],
            "u": [0.1, 0.2],
            "r": [5.0, 6.0],
            "end": [0, 1],
        }
    )
    mapping = ColumnMapping(episode="run", obs="q_*", action="u", reward="r", terminated="end")
    frame = prepare([raw], mapping=mapping).frame
    assert frame[S.OBS].to_list() == [[0.0, 1.0], [2.0, 3.0]]
    assert frame[S.ACTION].to_list() == [pytest.approx([0.1]), pytest.approx([0.2])]
    assert frame[S.TERMINATED].to_list() == [False, True]


def test_mapping_errors_name_the_column_and_the_flag():
    raw = _tiny()
    with pytest.raises(
        SchemaError, match=r"<DataFrame>: column 'r' \(mapped with --reward-col\) not found"
    ):
        prepare([raw], mapping=ColumnMapping(reward="r"))
    with pytest.raises(
        SchemaError, match=r"<DataFrame>: the pattern 'x_\*' \(--obs-cols\) matches no column"
    ):
        prepare([raw], mapping=ColumnMapping(obs="x_*"))


def test_integer_action_column_is_discrete():
    raw = _tiny(action=[0, 1, 2, 0, 1, 1])
    log = prepare([raw])
    assert log.action_discrete
    assert log.action_dim == 1
    assert log.frame[S.ACTION].to_list() == [[0.0], [1.0], [2.0], [0.0], [1.0], [1.0]]


def test_flags_from_numbers_and_text():
    log = prepare(
        [_tiny(terminated=[0, 0, 1, 0, 0, 0], truncated=["no", "F", "false", "0", " No", "TRUE"])]
    )
    assert log.frame[S.TERMINATED].to_list() == [False, False, True, False, False, False]
    assert log.frame[S.TRUNCATED].to_list() == [False] * 5 + [True]


def test_numeric_flag_outside_0_1_names_the_row_and_column():
    with pytest.raises(
        SchemaError,
        match=r"<DataFrame>: column 'terminated' \(terminated\) must be true/false or 0/1; row 4 holds 2",
    ):
        prepare([_tiny(terminated=[0, 0, 1, 0, 2, 0])])


def test_text_flag_that_is_not_boolean_is_a_row_error():
    with pytest.raises(
        IngestError, match=r"<DataFrame>: row 1: truncated is null or not true/false"
    ):
        prepare([_tiny(truncated=["no", "maybe", "no", "no", "no", "yes"])])


def test_extra_columns_are_kept_as_json():
    log = prepare([_tiny(info=["a", "b", "c", "d", "e", "f"], seed=[7, 7, 7, 8, 8, 8])])
    extras = [json.loads(x) for x in log.frame[S.EXTRA].to_list()]
    assert extras[0] == {"info": "a", "seed": 7}
    assert extras[5] == {"info": "f", "seed": 8}


def test_timestamps_from_unix_seconds():
    log = prepare([_tiny(time=[0.0, 1.5, 2.0, 3.0, 4.0, 1_700_000_000.25])])
    ts = log.frame[S.TIMESTAMP]
    assert ts.dtype == pl.Datetime("us")
    assert ts[1].isoformat() == "1970-01-01T00:00:01.500000"
    assert ts[5].isoformat() == "2023-11-14T22:13:20.250000"


def test_no_flags_warns_and_sets_false():
    log = prepare([_tiny().drop("terminated", "truncated")])
    assert not log.frame[S.TERMINATED].any() and not log.frame[S.TRUNCATED].any()
    assert log.warnings == ["no terminated/truncated columns: both were set to false"]


# ---------------------------------------------------------------------- derivations


def test_next_obs_derived_from_the_next_step_and_null_at_episode_end():
    log = prepare([_tiny()])
    assert log.next_obs_derived
    assert _vectors(log.frame, S.NEXT_OBS) == [
        [1.0, 1.0],
        [2.0, 1.0],
        None,  # last step of episode 0: unknown, not invented
        [6.0, 0.0],
        [7.0, 0.0],
        None,
    ]


def test_next_obs_not_derived_across_a_step_gap():
    raw = _tiny().filter(~((pl.col("episode_id") == 1) & (pl.col("step") == 1)))
    log = prepare([raw])
    assert _vectors(log.frame, S.NEXT_OBS) == [[1.0, 1.0], [2.0, 1.0], None, None, None]


def test_next_obs_kept_when_given():
    given = [[9.0, 9.0]] * 6
    log = prepare([_tiny(next_obs=given)])
    assert not log.next_obs_derived
    assert _vectors(log.frame, S.NEXT_OBS) == given


def test_rows_are_sorted_by_episode_and_step():
    raw = _tiny().reverse()
    frame = prepare([raw]).frame
    assert frame.select(S.EPISODE, S.STEP).rows() == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    # __row keeps the position in the source, for error messages.
    assert frame["__row"].to_list() == [5, 4, 3, 2, 1, 0]


def test_episodes_derived_from_flags_and_steps_from_row_order():
    raw = _tiny().drop("episode_id", "step")
    frame = prepare([raw]).frame
    assert frame[S.EPISODE].to_list() == [0, 0, 0, 1, 1, 1]
    assert frame[S.STEP].to_list() == [0, 1, 2, 0, 1, 2]


def test_episode_cut_after_truncated_row_too():
    raw = pl.DataFrame(
        {
            "obs": [[float(i)] for i in range(7)],
            "action": [[0.0]] * 7,
            "reward": [1.0] * 7,
            "terminated": [False, True, False, False, False, False, True],
            "truncated": [False, False, False, True, False, False, False],
        }
    )
    frame = prepare([raw]).frame
    assert frame[S.EPISODE].to_list() == [0, 0, 1, 1, 2, 2, 2]
    assert frame[S.STEP].to_list() == [0, 1, 0, 1, 0, 1, 2]


def test_steps_derived_within_given_episodes():
    raw = _tiny().drop("step")
    frame = prepare([raw]).frame
    assert frame[S.STEP].to_list() == [0, 1, 2, 0, 1, 2]


def test_no_episode_column_and_no_flags_is_an_error():
    with pytest.raises(
        SchemaError, match=r"<DataFrame>: no episode column .* and no terminated/truncated flags"
    ):
        prepare([_tiny().drop("episode_id", "terminated", "truncated")])


# -------------------------------------------------------------------------- errors


def test_missing_reward_names_the_source_and_column():
    with pytest.raises(
        SchemaError,
        match=r"<DataFrame>: required column 'reward' not found; the columns are \['episode_id'",
    ):
        prepare([_tiny().drop("reward")])


@pytest.mark.parametrize("column", ["obs", "action"])
def test_missing_vector_names_the_source_and_column(column):
    with pytest.raises(SchemaError, match=rf"<DataFrame>: required column '{column}' not found"):
        prepare([_tiny().drop(column)])


def test_non_numeric_reward_names_the_column_and_type():
    with pytest.raises(
        SchemaError, match=r"<DataFrame>: column 'reward' \(reward\) must be numeric; got String"
    ):
        prepare([_tiny(reward=["a", "b", "c", "d", "e", "f"])])


def test_non_integer_episode_names_the_column():
    with pytest.raises(
        SchemaError,
        match=r"<DataFrame>: column 'episode_id' \(episode_id\) must hold integers or text ids "
        r"\(such as 'run-a/ep-17' or a UUID\); got Float64",
    ):
        prepare([_tiny(episode_id=[0.0, 0.0, 0.0, 1.0, 1.0, 1.0])])


def test_non_numeric_vector_names_the_column():
    with pytest.raises(
        SchemaError,
        match=r"<DataFrame>: column 'obs' must hold numeric vectors; got List\(String\)",
    ):
        prepare([_tiny(obs=[["a"]] * 6)])
    raw = _tiny().drop("obs").with_columns(obs_0=pl.lit("x"), obs_1=pl.lit(1.0))
    with pytest.raises(
        SchemaError,
        match=r"<DataFrame>: column 'obs_0' \(part of obs\) must be numeric; got String",
    ):
        prepare([raw])


def test_empty_log_is_an_error():
    with pytest.raises(SchemaError, match=r"<DataFrame>: the log has no rows"):
        prepare([_tiny().clear()])


def test_inconsistent_vector_length_names_the_row():
    obs = _tiny()["obs"].to_list()
    obs[4] = [6.0, 0.0, 9.0]
    with pytest.raises(
        IngestError,
        match=r"<DataFrame>: row 4: obs has 3 values; expected 2\. .*Nothing was written",
    ):
        prepare([_tiny(obs=obs)])


def test_next_obs_length_must_match_obs():
    nxt = [[1.0, 1.0]] * 6
    nxt[2] = [1.0]
    with pytest.raises(
        IngestError, match=r"<DataFrame>: row 2: next_obs has 1 values; expected 2 like obs"
    ):
        prepare([_tiny(next_obs=nxt)])


def test_duplicate_step_names_the_row_and_key():
    with pytest.raises(
        IngestError,
        match=r"<DataFrame>: row 1: duplicate step: episode 0 step 1 appears more than once \(1 more bad rows\)",
    ):
        prepare([_tiny(step=[0, 1, 1, 0, 1, 2])])


def test_duplicate_step_across_files_names_the_files(tmp_path):
    _tiny().write_parquet(tmp_path / "a.parquet")
    _tiny().head(1).write_parquet(tmp_path / "b.parquet")
    with pytest.raises(
        IngestError,
        match=r"a\.parquet: row 0: duplicate step: episode 0 step 0 .*\(1 more bad rows\)",
    ):
        prepare([tmp_path / "a.parquet", tmp_path / "b.parquet"])


def test_files_that_disagree_on_dimensions_are_refused(tmp_path):
    # Each file is consistent on its own; together they are not.
    _tiny().write_parquet(tmp_path / "a.parquet")
    wide = _tiny(episode_id=[2] * 6, step=[0, 1, 2, 3, 4, 5], obs=[[1.0, 2.0, 3.0]] * 6)
    wide.write_parquet(tmp_path / "b.parquet")
    with pytest.raises(
        IngestError, match=r"b\.parquet: row 0: obs has 3 values; the dataset has 2"
    ):
        prepare([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    log = prepare([tmp_path / "a.parquet", tmp_path / "b.parquet"], on_error="quarantine")
    assert log.frame[S.OBS].list.len().unique().to_list() == [2]
    assert log.rejected["source"].unique().to_list() == [str(tmp_path / "b.parquet")]


def test_expected_dims_of_an_existing_dataset_are_enforced():
    with pytest.raises(
        IngestError, match=r"<DataFrame>: row 0: action has 1 values; the dataset has 2"
    ):
        prepare([_tiny()], expected_dims=(2, 2))


def test_on_error_parameter_is_validated():
    with pytest.raises(
        ValueError, match=r"The 'on_error' parameter must be 'raise' or 'quarantine'\. Got 'skip'"
    ):
        prepare([_tiny()], on_error="skip")  # type: ignore[arg-type]


# ----------------------------------------------------------------------- quarantine


def test_quarantine_keeps_good_rows_and_reports_bad_ones():
    obs = _tiny()["obs"].to_list()
    obs[1] = [1.0]
    raw = _tiny(obs=obs, truncated=["no", "no", "no", "no", "??", "yes"], step=[0, 1, 2, 0, 2, 2])
    log = prepare([raw], on_error="quarantine")
    assert log.frame.select(S.EPISODE, S.STEP).rows() == [(0, 0), (0, 2), (1, 0)]
    assert log.rows_read == 6
    rejected = log.rejected.sort("row")
    assert rejected["row"].to_list() == [1, 4, 5]
    # A row's own problem is reported before the duplicate key it shares with row 5.
    assert rejected["reason"].to_list() == [
        "obs has 1 values; expected 2",
        "truncated is null or not true/false",
        "duplicate step: episode 1 step 2 appears more than once",
    ]
    record = json.loads(rejected["record"][0])
    assert record["obs"] == [1.0] and record["step"] == 1 and record["reward"] == 0.5
    # The successors of the surviving rows are gone, so no next_obs is invented.
    assert _vectors(log.frame, S.NEXT_OBS) == [None, None, None]


def test_quarantine_of_every_row_is_an_error():
    with pytest.raises(
        IngestError, match=r"<DataFrame>: no valid rows remain \(6 read, all rejected\)"
    ):
        prepare([_tiny(step=[0] * 6, episode_id=[0] * 6)], on_error="quarantine")


def test_quarantined_rows_name_their_file(tmp_path):
    _tiny().write_parquet(tmp_path / "good.parquet")
    bad = _tiny(episode_id=[5] * 6, step=[0, 1, 2, 3, 4, 4])
    flat = bad.with_columns(
        pl.col("obs").list.to_struct(fields=["obs_0", "obs_1"]), pl.col("action").list.first()
    ).unnest("obs")
    flat.write_csv(tmp_path / "bad.csv")
    log = prepare(sorted(tmp_path.iterdir()), on_error="quarantine")
    assert log.sources == [str(tmp_path / "bad.csv"), str(tmp_path / "good.parquet")]
    assert log.rejected["source"].to_list() == [str(tmp_path / "bad.csv")] * 2
    assert log.rejected["row"].to_list() == [4, 5]
    assert log.frame.height == 10


def test_vectors_from_pyarrow_fixed_size_lists():
    obs = pa.array([[0.0, 1.0], [1.0, 2.0]], type=pa.list_(pa.float64(), 2))
    table = pa.table(
        {
            "episode_id": [0, 0],
            "obs": obs,
            "action": pa.array([[1], [0]], type=pa.list_(pa.int32(), 1)),
            "reward": [1.0, 0.0],
            "terminated": [False, True],
        }
    )
    log = prepare([table])
    assert log.frame[S.OBS].to_list() == [[0.0, 1.0], [1.0, 2.0]]
    assert log.frame.schema[S.OBS] == pl.List(pl.Float32)
    np.testing.assert_array_equal(np.stack(log.frame[S.ACTION].to_numpy()), [[1.0], [0.0]])


def test_derived_episodes_continue_across_files_of_one_ingest(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rmlite.testing import rollout

    log = rollout("Pendulum-v1", episodes=4, seed=5, max_steps=10).drop("episode_id", "step")
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    log.head(20).write_parquet(first)
    log.tail(20).write_parquet(second)
    prepared = prepare([first, second])
    assert prepared.frame["episode_id"].unique().sort().to_list() == [0, 1, 2, 3]
    assert prepared.frame.group_by("episode_id").len()["len"].to_list() == [10, 10, 10, 10]
