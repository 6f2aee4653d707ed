"""The store as users have their data and read it: text episode ids, SQL views, comments,
the file format, stores written by round 1, and ``LogStore.export`` / ``preview``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from rmlite import FeatureSpec, LogStore
from rmlite.data import schema as S
from rmlite.exceptions import IngestError, RmliteError, SchemaError


def _texts(log: pl.DataFrame) -> pl.DataFrame:
    """The log with episode ids as text: episode i becomes 'run-a/ep-i'."""
    return log.with_columns(pl.format("run-a/ep-{}", pl.col(S.EPISODE)).alias(S.EPISODE))


# --------------------------------------------------------------------------- text ids


def test_text_ids_round_trip_through_store_and_features(store, pendulum_log):
    text = _texts(pendulum_log)
    report = store.ingest(text, dataset="texts")
    assert report.rows_added == pendulum_log.height and report.episodes == 4
    store.ingest(pendulum_log, dataset="ints")

    episodes = store.episodes("texts")
    assert episodes[S.EPISODE].to_list() == [f"run-a/ep-{i}" for i in range(4)]
    # Same returns as the same log keyed by integers.
    assert episodes["return"].to_list() == store.episodes("ints")["return"].to_list()
    keys = store.episodes("texts", keys=True)[S.EPISODE].to_list()
    assert keys == [0, 1, 2, 3]
    assert store.episode_keys("texts", ["run-a/ep-2", "run-a/ep-0"]) == [2, 0]
    read = store.read("texts")
    assert read[S.EPISODE].unique().sort().to_list() == episodes[S.EPISODE].to_list()

    # Idempotent: the same ids find the same keys, nothing is added.
    again = store.ingest(text, dataset="texts")
    assert again.rows_added == 0 and again.rows_duplicate == pendulum_log.height
    assert store.sql("SELECT count(*) AS n FROM episode_keys")["n"][0] == 4

    # Features: train episodes named by text; groups are the integer keys.
    frame = store.features("texts", FeatureSpec(), train_episodes=["run-a/ep-1", "run-a/ep-3"])
    same = store.features("ints", FeatureSpec(), train_episodes=[1, 3])
    np.testing.assert_array_equal(frame.X, same.X)
    np.testing.assert_array_equal(frame.groups, same.groups)
    with pytest.raises(RmliteError, match=r"dataset 'texts' has no episode 'run-z/ep-9'"):
        store.features("texts", FeatureSpec(), train_episodes=["run-z/ep-9"])
    with pytest.raises(RmliteError, match=r"dataset 'ints' names its episodes by integer ids"):
        store.features("ints", FeatureSpec(), train_episodes=["run-a/ep-1"])


def test_text_ids_keep_their_keys_when_a_later_ingest_adds_episodes(store, pendulum_log):
    text = _texts(pendulum_log)
    # Ingest episodes 2 and 3 first, then all four: 2 and 3 keep their keys.
    store.ingest(text.filter(pl.col("step") >= 0).filter(pl.col("episode_id") >= "run-a/ep-2"), "t")
    first = dict(store.sql("SELECT episode_id, episode_key FROM episode_keys").rows())
    store.ingest(text, dataset="t")
    after = dict(store.sql("SELECT episode_id, episode_key FROM episode_keys").rows())
    assert first == {"run-a/ep-2": 0, "run-a/ep-3": 1}
    assert after == {**first, "run-a/ep-0": 2, "run-a/ep-1": 3}
    assert store.episodes("t")[S.EPISODE].to_list() == [
        "run-a/ep-2",
        "run-a/ep-3",
        "run-a/ep-0",
        "run-a/ep-1",
    ]


def test_a_dataset_is_keyed_one_way(store, pendulum_log, snapshot, same_tables):
    text = _texts(pendulum_log)
    store.ingest(pendulum_log, dataset="ints")
    store.ingest(text, dataset="texts")
    before = snapshot(store)
    with pytest.raises(
        IngestError,
        match=r"dataset 'ints' names its episodes by integer ids, and this log by text ids \(for example 'run-a/ep-0'\)",
    ):
        store.ingest(text, dataset="ints")
    with pytest.raises(
        IngestError,
        match=r"dataset 'texts' names its episodes by text ids, and this log by integer ids",
    ):
        store.ingest(pendulum_log, dataset="texts")
    # One ingest mixing the two kinds is refused before anything is written.
    with pytest.raises(
        SchemaError, match=r"<DataFrame>#1 names episodes by text ids, <DataFrame> by integers"
    ):
        store.ingest([pendulum_log, text], dataset="mixed")
    same_tables(before, snapshot(store))


def test_a_failed_text_ingest_leaves_no_keys(store, pendulum_log, snapshot, same_tables):
    store.ingest(_texts(pendulum_log).filter(pl.col(S.EPISODE) == "run-a/ep-0"), dataset="t")
    before = snapshot(store)
    changed = _texts(pendulum_log).with_columns(pl.col(S.REWARD) + 1.0)
    with pytest.raises(IngestError, match=r"episode run-a/ep-0 step 0 is already stored"):
        store.ingest(changed, dataset="t")  # a conflict on ep-0; ep-1..3 would be new
    same_tables(before, snapshot(store))


def test_uuid_episode_ids_ingest_as_their_text(store, pendulum_log):
    ids = [uuid.UUID(int=i * 7919 + 1) for i in range(4)]
    column = pa.array([ids[e].bytes for e in pendulum_log[S.EPISODE]], pa.binary(16))
    log = pendulum_log.drop(S.EPISODE).with_columns(pl.from_arrow(column).alias(S.EPISODE))
    store.ingest(log, dataset="uuids")
    assert sorted(store.episodes("uuids")[S.EPISODE]) == sorted(str(u) for u in ids)


def test_pipeline_predict_and_relabel_show_text_ids(store, pendulum_log, tmp_path):
    from rmlite.pipeline import predict, train
    from rmlite.rl import relabel

    store.ingest(pendulum_log, dataset="ints")
    store.ingest(_texts(pendulum_log), dataset="texts")
    params = {"n_estimators": 10, "n_jobs": 1}
    spec = FeatureSpec(next_obs=True)
    on_ints = train(store, "ints", spec, params, out=tmp_path / "mi")
    on_texts = train(store, "texts", spec, params, out=tmp_path / "mt")
    # Keys follow the ids' order here, so the split and the model are the same.
    assert on_texts.metrics["holdout"]["r2"] == pytest.approx(on_ints.metrics["holdout"]["r2"])

    pred = predict(store, tmp_path / "mt", "texts")
    assert pred[S.EPISODE].dtype == pl.String
    assert set(pred[S.EPISODE]) == {f"run-a/ep-{i}" for i in range(4)}
    np.testing.assert_allclose(
        pred["prediction"], predict(store, tmp_path / "mi", "ints")["prediction"]
    )

    relabel(store, tmp_path / "mt", "texts", "texts-learned")
    assert store.episodes("texts-learned")[S.EPISODE].to_list() == [
        f"run-a/ep-{i}" for i in range(4)
    ]
    learned = store.read("texts-learned").join(pred, on=[S.EPISODE, S.STEP])
    np.testing.assert_allclose(learned[S.REWARD], learned["prediction"])
    out = tmp_path / "relabeled.parquet"
    relabel(store, tmp_path / "mt", "texts", out)
    assert set(pl.read_parquet(out)[S.EPISODE]) == {f"run-a/ep-{i}" for i in range(4)}


def test_preferences_name_episodes_by_text_ids(store, pendulum_log):
    store.ingest(_texts(pendulum_log), dataset="texts")
    pairs = pl.DataFrame(
        {
            "episode_a": ["run-a/ep-0", "run-a/ep-2"],
            "start_a": [0, 5],
            "stop_a": [10, 15],
            "episode_b": ["run-a/ep-1", "run-a/ep-3"],
            "start_b": [0, 5],
            "stop_b": [10, 15],
            "label": [1.0, 0.0],
        }
    )
    assert store.ingest_preferences(pairs, dataset="texts").pairs_added == 2
    stored = store.preferences("texts")
    assert stored["episode_a"].to_list() == ["run-a/ep-0", "run-a/ep-2"]
    assert store.preferences("texts", keys=True)["episode_b"].to_list() == [1, 3]

    unknown = pairs.with_columns(pl.lit("run-b/ep-0").alias("episode_b"))
    with pytest.raises(
        IngestError, match=r"row 0: dataset 'texts' has no episode 'run-b/ep-0' \(1 more\)"
    ):
        store.ingest_preferences(unknown, dataset="texts")
    report = store.ingest_preferences(unknown, dataset="texts", on_error="quarantine")
    assert report.pairs_rejected == 2
    reasons = store.rejected("texts")["reason"].to_list()
    assert reasons == ["episode 'run-b/ep-0' is not in dataset 'texts'"] * 2
    as_ints = pairs.with_columns(pl.Series("episode_a", [0, 2]), pl.Series("episode_b", [1, 3]))
    with pytest.raises(
        IngestError,
        match=r"the pairs name episodes by integer ids .* and dataset 'texts' by text ids",
    ):
        store.ingest_preferences(as_ints, dataset="texts")


# --------------------------------------------------------------------------- SQL


def test_dataset_views_have_fixed_size_arrays_and_utc_times(store, pendulum_log):
    log = pendulum_log.with_columns(
        (pl.col(S.STEP) * 1.0 + 1_700_000_000.0).alias("timestamp")  # Unix seconds
    )
    store.ingest(_texts(log), dataset="pend-text")
    store.ingest(log, dataset="pend")
    types = dict(store.sql("SELECT column_name, column_type FROM (DESCRIBE data.pend)").rows())
    assert types[S.OBS] == "FLOAT[3]" and types[S.NEXT_OBS] == "FLOAT[3]"
    assert types[S.ACTION] == "FLOAT[1]" and types[S.EPISODE] == "BIGINT"
    assert types[S.TIMESTAMP] == "TIMESTAMP WITH TIME ZONE"
    text_types = dict(
        store.sql('SELECT column_name, column_type FROM (DESCRIBE data."pend-text")').rows()
    )
    assert text_types[S.EPISODE] == "VARCHAR" and text_types["episode_key"] == "BIGINT"

    moved = store.sql(
        'SELECT episode_id, step, array_distance(obs, next_obs) AS d FROM data."pend-text" '
        "WHERE next_obs IS NOT NULL ORDER BY episode_key, step"
    )
    rows = pendulum_log.filter(pl.col(S.NEXT_OBS).is_not_null()).sort(S.EPISODE, S.STEP)
    expected = np.linalg.norm(
        np.stack(rows[S.OBS].to_numpy()) - np.stack(rows[S.NEXT_OBS].to_numpy()), axis=1
    )
    np.testing.assert_allclose(moved["d"].to_numpy(), expected, rtol=1e-5)
    assert moved[S.EPISODE][0] == "run-a/ep-0"

    first = store.sql("SELECT timestamp FROM data.pend ORDER BY episode_id, step LIMIT 1")
    assert str(first.dtypes[0]) == "Datetime(time_unit='us', time_zone='UTC')"
    assert first["timestamp"][0].isoformat() == "2023-11-14T22:13:20+00:00"


def test_every_table_and_column_has_a_comment(store, pendulum_log):
    store.ingest(pendulum_log, dataset="pend")
    missing = store.sql(
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE schema_name = 'main' AND NOT internal AND (comment IS NULL OR comment = '') "
        "AND table_name IN (SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main')"
    )
    assert missing.height == 0, missing.rows()
    comments = dict(
        store.sql(
            "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'main'"
        ).rows()
    )
    assert set(comments) == set(S.TABLES)
    assert comments["transitions"] == S.TABLE_DOCS["transitions"]
    reward = store.sql(
        "SELECT comment FROM duckdb_columns() WHERE table_name = 'transitions' "
        "AND column_name = 'reward'"
    )["comment"][0]
    assert reward == "Reward received for the transition. DOUBLE; NULL where the log has no reward."
    target = store.sql(
        "SELECT comment FROM duckdb_columns() WHERE table_name = 'runs' AND column_name = 'target'"
    )["comment"][0]
    assert target.startswith("What the model predicts")


def test_new_stores_use_the_oldest_supported_storage_format(store, pendulum_log):
    store.ingest(pendulum_log, dataset="pend")
    version = store.sql(
        "SELECT tags['storage_version'] AS v FROM duckdb_databases() "
        "WHERE database_name = current_database()"
    )["v"][0]
    assert version == "v1.4.0+"  # DuckDB 1.4, the oldest pyproject allows, opens it


def test_a_round_one_store_opens_and_keeps_old_names_readable(tmp_path, pendulum_log):
    path = tmp_path / "round1.duckdb"
    con = duckdb.connect(str(path))
    con.execute((Path(__file__).parent / "round1_schema.sql").read_text())
    con.execute(
        "INSERT INTO datasets VALUES ('old', 3, 1, false, TIMESTAMP '2026-01-01 10:00', "
        "TIMESTAMP '2026-01-01 10:00')"
    )
    con.execute(
        "INSERT INTO transitions VALUES ('old', 7, 0, [0.0, 1.0, 2.0], [0.5], 1.0, "
        "[1.0, 1.0, 2.0], false, true, NULL, NULL, 1)"
    )
    con.execute(
        "INSERT INTO relabels VALUES (1, 'old', 'fp', 'old-learned', 'dataset', 2, NULL, 'm', "
        "'{}', NULL, NULL, NULL, 1, 1, TIMESTAMP '2026-01-01 11:00')"
    )
    con.close()

    store = LogStore(path)
    info = store.datasets()  # a read-only open upgrades the file once
    assert info["dataset"].to_list() == ["old"] and info["transitions"].to_list() == [1]
    assert store.episodes("old")[S.EPISODE].to_list() == [7]
    assert store.sql("SELECT name FROM legacy.datasets")["name"].to_list() == ["old"]
    legacy = store.sql("SELECT target, target_kind FROM legacy.relabels").row(0)
    assert legacy == ("old-learned", "dataset")
    assert store.relabels()["destination"].to_list() == ["old-learned"]
    assert store.sql("SELECT array_distance(obs, next_obs) AS d FROM data.old")["d"][0] == 1.0
    # And it takes new logs.
    assert store.ingest(pendulum_log, dataset="new").rows_added == pendulum_log.height


# --------------------------------------------------------------------------- export


def test_export_streams_through_copy_and_refuses_unknown_endings(store, pendulum_log, tmp_path):
    store.ingest(pendulum_log, dataset="pend")
    query = "SELECT episode_id, step, obs, reward FROM data.pend ORDER BY ALL"
    n = pendulum_log.height
    assert store.export(query, tmp_path / "a.parquet") == n
    assert pl.read_parquet(tmp_path / "a.parquet")[S.OBS].list.len().to_list() == [3] * n
    assert store.export(query + ";", tmp_path / "a.csv") == n
    csv = pl.read_csv(tmp_path / "a.csv")
    assert json.loads(csv[S.OBS][0]) == pytest.approx(
        pendulum_log.sort("episode_id", "step")[S.OBS][0].to_list()
    )
    assert store.export(query, tmp_path / "a.jsonl") == n
    first = json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])
    assert len(first[S.OBS]) == 3
    with pytest.raises(
        RmliteError, match=r"a\.txt: unknown file ending '\.txt'; an export is written as \.parquet"
    ):
        store.export(query, tmp_path / "a.txt")
    assert not (tmp_path / "a.txt").exists()
    assert store.export(query, tmp_path / "a.txt", format="csv") == n

    head, total = store.preview(query, 40)
    assert head.height == 40 and total == n
    everything, total = store.preview(query, None)
    assert everything.height == total == n
    with pytest.raises(RmliteError, match=r"read-only"):
        store.export("DELETE FROM transitions RETURNING *", tmp_path / "d.csv")
    assert store.sql("SELECT count(*) AS n FROM transitions")["n"][0] == n
