"""Shared fixtures: a seeded generator, a temporary store, and tiny real logs.

The logs are real Gymnasium rollouts (Pendulum-v1 for a classic-control env that only
ever truncates, Walker2d-v5 for a MuJoCo env that mostly terminates), rolled out once per
session; they are Polars frames, so tests cannot change them in place.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest

from rmlite import LogStore
from rmlite.data import schema as S
from rmlite.testing import rollout

# Compiling a model's trees takes seconds per model: the suite predicts through the
# boosters, and tests/test_compiled.py switches compiled trees on where it checks them.
os.environ.setdefault("RMLITE_COMPILED", "0")


def pytest_configure(config: pytest.Config) -> None:
    # `pytest -m fuzz` selects the hostile-input tests; this makes them run long
    # (tests/hostile.py reads RMLITE_FUZZ to pick its Hypothesis profile).
    if "fuzz" in (config.getoption("markexpr", "") or ""):
        os.environ.setdefault("RMLITE_FUZZ", "1")


PENDULUM_EPISODES = 4
PENDULUM_STEPS = 50
WALKER_EPISODES = 6
WALKER_STEPS = 40


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, so a failing test fails the same way again."""
    return np.random.default_rng(0)


@pytest.fixture
def store(tmp_path) -> LogStore:
    """An empty store in a fresh DuckDB file (created on the first write)."""
    return LogStore(tmp_path / "store.duckdb")


@pytest.fixture(scope="session")
def pendulum_log() -> pl.DataFrame:
    """Pendulum-v1, 4 episodes of 50 steps, every episode truncated by the time limit."""
    return rollout("Pendulum-v1", episodes=PENDULUM_EPISODES, seed=0, max_steps=PENDULUM_STEPS)


@pytest.fixture(scope="session")
def pendulum_flat() -> pl.DataFrame:
    """The same rollout as ``pendulum_log`` with vectors in numbered columns."""
    return rollout(
        "Pendulum-v1", episodes=PENDULUM_EPISODES, seed=0, max_steps=PENDULUM_STEPS, layout="flat"
    )


@pytest.fixture(scope="session")
def walker_log() -> pl.DataFrame:
    """Walker2d-v5, 6 episodes capped at 40 steps: with seed 0 the random policy falls
    (terminated) in most episodes and survives to the time limit (truncated) in one."""
    log = rollout("Walker2d-v5", episodes=WALKER_EPISODES, seed=0, max_steps=WALKER_STEPS)
    ends = log.group_by(S.EPISODE).agg(pl.col(S.TERMINATED).last(), pl.col(S.TRUNCATED).last())
    # The Walker tests need both kinds of ending; fail loudly if Gymnasium changes that.
    assert ends[S.TERMINATED].any() and ends[S.TRUNCATED].any()
    return log


def _snapshot(store: LogStore) -> dict[str, pl.DataFrame]:
    """Every table of the store, fully ordered, for before/after comparisons."""
    tables = store.sql(
        "SELECT table_schema, table_name FROM information_schema.tables ORDER BY ALL"
    )
    names = [f'"{schema}"."{table}"' for schema, table in tables.rows()]
    assert {f'"main"."{t}"' for t in S.TABLES} <= set(names)
    # Views too (data.<dataset>, legacy.*): a failed ingest must not leave one behind.
    return {table: store.sql(f"SELECT * FROM {table} ORDER BY ALL") for table in names}


@pytest.fixture
def snapshot() -> Callable[[LogStore], dict[str, pl.DataFrame]]:
    """``snapshot(store)``: a full dump of the store's tables."""
    return _snapshot


def assert_same_tables(before: dict[str, pl.DataFrame], after: dict[str, pl.DataFrame]) -> None:
    """Two snapshots hold the same tables with the same rows."""
    assert before.keys() == after.keys()
    for table in before:
        assert before[table].equals(after[table]), f"table {table!r} changed"


@pytest.fixture
def same_tables() -> Callable[[dict[str, pl.DataFrame], dict[str, pl.DataFrame]], None]:
    """``same_tables(before, after)``: assert two snapshots are equal, table by table."""
    return assert_same_tables
