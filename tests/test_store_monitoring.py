"""The store's reads for long-lived readers: version ids and the monitor tables."""

from __future__ import annotations

import pytest
from monitor_tables import write_pass

from rmlite import LogStore


def test_version_grows_with_each_write(store: LogStore, pendulum_log) -> None:
    store.ingest(pendulum_log.filter(pendulum_log["episode_id"] < 2), dataset="pend")
    first = store.version()
    assert first == {"ingest_id": 1, "run_id": 0, "relabel_id": 0, "pass_id": 0}
    store.ingest(pendulum_log, dataset="pend")
    store.record_run({"kind": "train", "dataset": "pend"})
    assert store.version() == {**first, "ingest_id": 2, "run_id": 1}
    write_pass(store, "pend", "models/a")
    assert store.version()["pass_id"] == 1


def test_monitoring_before_any_pass_is_empty(store: LogStore, pendulum_log) -> None:
    store.ingest(pendulum_log, dataset="pend")
    tables = store.monitoring()
    assert list(tables) == list(LogStore.MONITOR_TABLES)
    assert all(frame.is_empty() for frame in tables.values())
    assert store.monitor_samples(1).columns == ["episode_id", "step", "y_true", "y_pred"]


def test_monitoring_filters_by_dataset_with_a_bound_value(store: LogStore, pendulum_log) -> None:
    store.ingest(pendulum_log, dataset="pend")
    first = write_pass(store, "pend", "models/a", r2=0.8)
    second = write_pass(store, "other", "models/b", r2=0.7, seed=1)
    everything = store.monitoring()
    assert everything["monitor_passes"]["pass_id"].to_list() == [first, second]
    pend = store.monitoring("pend")
    assert pend["monitor_passes"]["pass_id"].to_list() == [first]
    metrics = pend["metrics"]
    assert set(metrics["model_path"]) == {"models/a"}
    assert metrics.filter(metrics["metric"] == "r2")["value"].to_list() == [pytest.approx(0.8)]
    assert pend["drift"].columns[:5] == [
        "pass_id",
        "dataset",
        "model_path",
        "model_fingerprint",
        "kind",
    ]
    assert pend["alerts"]["source"].to_list() == ["drift"]
    sample = store.monitor_samples(second)
    assert sample.height == 120 and sample.columns == ["episode_id", "step", "y_true", "y_pred"]
    # A quote in the name is a value like any other: nothing matches, nothing breaks.
    hostile = store.monitoring("x'; DROP TABLE runs; --")
    assert all(frame.is_empty() for frame in hostile.values())
    assert "runs" in store.sql("SELECT table_name FROM information_schema.tables")["table_name"]


def test_drift_holds_each_models_latest_pass_only(store: LogStore, pendulum_log) -> None:
    store.ingest(pendulum_log, dataset="pend")
    write_pass(store, "pend", "models/a")
    latest_a = write_pass(store, "pend", "models/a", seed=1)
    only_b = write_pass(store, "pend", "models/b", seed=2)
    drift = store.monitoring("pend")["drift"]
    assert sorted(set(drift["pass_id"])) == [latest_a, only_b]
    # The table itself keeps the history.
    assert store.sql("SELECT count(DISTINCT pass_id) AS n FROM drift")["n"][0] == 3
