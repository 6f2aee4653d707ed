"""The log contract in rmlite.data.schema, and that the store and the reader follow it."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from rmlite import ColumnMapping
from rmlite.data import schema as S


def test_key_and_value_columns_are_canonical_columns():
    assert set(S.KEY) <= set(S.COLUMNS)
    assert set(S.VALUE_COLUMNS) <= set(S.COLUMNS)
    assert set(S.VECTOR_COLUMNS) <= set(S.VALUE_COLUMNS)
    # A key column is never a value column: values are what a conflict compares.
    assert not set(S.KEY) & set(S.VALUE_COLUMNS)
    assert len(set(S.COLUMNS)) == len(S.COLUMNS)


def test_gymnasium_names():
    assert (S.OBS, S.ACTION, S.REWARD, S.NEXT_OBS, S.TERMINATED, S.TRUNCATED) == (
        "obs",
        "action",
        "reward",
        "next_obs",
        "terminated",
        "truncated",
    )


def test_each_alias_list_starts_with_the_canonical_name():
    for canonical, aliases in S.ALIASES.items():
        assert aliases[0] == canonical
        assert canonical in S.COLUMNS


def test_done_is_not_an_alias_of_either_flag():
    # "done" mixes terminated and truncated; guessing either would corrupt returns.
    for flag in (S.TERMINATED, S.TRUNCATED):
        assert "done" not in S.ALIASES[flag]
        assert "dones" not in S.ALIASES[flag]


def test_aliases_are_unambiguous():
    seen: dict[str, str] = {}
    for canonical, aliases in S.ALIASES.items():
        for alias in aliases:
            assert alias not in seen, f"{alias!r} names both {seen.get(alias)} and {canonical}"
            seen[alias] = canonical


def test_flat_prefixes_cover_the_vector_columns_without_overlap():
    assert set(S.FLAT_PREFIXES) == set(S.VECTOR_COLUMNS)
    prefixes = [p for ps in S.FLAT_PREFIXES.values() for p in ps]
    assert len(prefixes) == len(set(prefixes))


def test_column_mapping_items_use_canonical_names():
    mapping = ColumnMapping(episode="ep_id", obs="state_*", reward="r", truncated="timeouts")
    assert mapping.items() == [
        (S.EPISODE, "ep_id"),
        (S.OBS, "state_*"),
        (S.REWARD, "r"),
        (S.TRUNCATED, "timeouts"),
    ]
    assert ColumnMapping().items() == []


def test_column_mapping_covers_every_mappable_column():
    names = {f.name for f in dataclasses.fields(ColumnMapping)}
    full = ColumnMapping(**{name: f"src_{name}" for name in names})
    mapped = dict(full.items())
    assert set(mapped) == set(S.ALIASES)
    for field in dataclasses.fields(ColumnMapping):
        assert field.metadata["help"], f"{field.name} has no help text"


def test_column_mapping_is_frozen():
    mapping = ColumnMapping(reward="r")
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'reward'"):
        mapping.reward = "other"  # type: ignore[misc]


def test_store_tables_follow_the_schema(store, pendulum_log):
    store.ingest(pendulum_log, dataset="pendulum")
    tables = store.sql("SELECT table_name FROM information_schema.tables ORDER BY table_name")
    assert set(S.TABLES) <= set(tables["table_name"].to_list())
    columns = store.sql(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'transitions' ORDER BY ordinal_position"
    )
    assert columns["column_name"].to_list() == [*S.COLUMNS, "ingest_id"]
    types = dict(columns.iter_rows())
    for vector in S.VECTOR_COLUMNS:
        assert types[vector] == "FLOAT[]"
    assert types[S.REWARD] == "DOUBLE"
    assert types[S.EPISODE] == types[S.STEP] == "BIGINT"
    assert types[S.TERMINATED] == types[S.TRUNCATED] == "BOOLEAN"


def test_key_stays_unique_without_an_index(store, pendulum_log):
    """New stores hold no PRIMARY KEY on the transition key (its index of an open
    transaction cannot spill: memory grew with the rows of an ingest); the ingest's
    anti-joins keep the key unique, in memory and streamed, over overlapping logs."""
    first = pendulum_log.filter(pl.col(S.EPISODE) < 3)
    store.ingest(first, dataset="pendulum")
    constraints = store.sql(
        "SELECT count(*) AS n FROM duckdb_constraints() "
        "WHERE table_name = 'transitions' AND constraint_type = 'PRIMARY KEY'"
    )
    assert constraints["n"][0] == 0
    store.ingest(pendulum_log, dataset="pendulum")
    again = store.ingest(pendulum_log, dataset="pendulum", stream=True)
    assert (again.rows_added, again.rows_duplicate) == (0, pendulum_log.height)
    counts = store.sql(
        "SELECT count(*) AS n, count(DISTINCT (dataset, episode_id, step)) AS k FROM transitions"
    )
    assert counts["n"][0] == counts["k"][0] == pendulum_log.height


def test_read_returns_canonical_columns_and_types(store, pendulum_log):
    store.ingest(pendulum_log, dataset="pendulum")
    frame = store.read("pendulum")
    assert frame.columns == [c for c in S.COLUMNS if c != S.DATASET]
    assert frame.schema[S.OBS] == pl.List(pl.Float32)
    assert frame.schema[S.ACTION] == pl.List(pl.Float32)
    assert frame.schema[S.NEXT_OBS] == pl.List(pl.Float32)
    assert frame.schema[S.REWARD] == pl.Float64
    assert frame.schema[S.EPISODE] == frame.schema[S.STEP] == pl.Int64
