"""The monitor tables: passes, metrics, drift, alerts and the samples a pass kept."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from rmlite.data.store._connection import Store, _run, has_tables, sql, transaction, unregister

MONITOR_TABLES = ("monitor_passes", "metrics", "drift", "alerts")
"""The tables ``rmlite monitor`` writes, as :meth:`LogStore.monitoring` returns them."""


def last_monitor_pass(store: Store, dataset: str, model_fingerprint: str) -> int | None:
    """The work of :meth:`LogStore.last_monitor_pass`."""
    with store.connect() as con:
        if not has_tables(con, "monitor_passes"):
            return None
        row = _run(
            con,
            sql("last_monitor_pass"),
            {"dataset": dataset, "model_fingerprint": model_fingerprint},
        )
        return None if row[0][0] is None else int(row[0][0])


def record_monitor_pass(
    store: Store,
    pass_row: Mapping[str, Any],
    metrics: pl.DataFrame,
    drift: pl.DataFrame,
    alerts: pl.DataFrame,
    samples: pl.DataFrame,
    histograms: pl.DataFrame | None = None,
) -> int:
    """The work of :meth:`LogStore.record_monitor_pass`."""
    keys = {
        "dataset": pass_row["dataset"],
        "model_fingerprint": pass_row["model_fingerprint"],
    }
    staged = {
        "staged_metrics": (metrics, "insert_metrics"),
        "staged_drift": (drift, "insert_drift"),
        "staged_alerts": (alerts, "insert_alerts"),
        "staged_samples": (samples, "insert_monitor_samples"),
    }
    if histograms is not None:
        staged["staged_histograms"] = (histograms, "insert_drift_histograms")
    only_pass_id = ("insert_monitor_samples", "insert_drift_histograms")
    with store.connect(write=True) as con:
        # Registered outside the transaction: an aborted transaction refuses unregister.
        for name, (frame, _query) in staged.items():
            con.register(name, frame.to_arrow())
        try:
            with transaction(store.path, con):
                pass_id = int(_run(con, sql("insert_monitor_pass"), dict(pass_row))[0][0])
                for _frame, query in staged.values():
                    params: dict[str, Any] = {"pass_id": pass_id}
                    if query not in only_pass_id:
                        params.update(keys)
                    _run(con, sql(query), params)
        finally:
            for name in staged:
                unregister(con, name)
    return pass_id


def monitoring(store: Store, dataset: str | None = None) -> dict[str, pl.DataFrame]:
    """The work of :meth:`LogStore.monitoring`."""
    with store.connect() as con:
        out = {}
        for table in MONITOR_TABLES:
            if has_tables(con, table) and has_tables(con, "monitor_passes"):
                query = sql(f"monitor_{table.removeprefix('monitor_')}")
                out[table] = con.sql(query, params={"dataset": dataset}).pl()
            else:
                out[table] = pl.DataFrame()
        return out


def monitor_samples(store: Store, pass_id: int) -> pl.DataFrame:
    """The work of :meth:`LogStore.monitor_samples`."""
    with store.connect() as con:
        if not has_tables(con, "monitor_samples"):
            return pl.DataFrame(
                schema={
                    "episode_id": pl.Int64,
                    "step": pl.Int64,
                    "y_true": pl.Float64,
                    "y_pred": pl.Float64,
                }
            )
        return con.sql(sql("monitor_samples"), params={"pass_id": int(pass_id)}).pl()


def drift_history(store: Store, pass_ids: Sequence[int]) -> pl.DataFrame:
    """The work of :meth:`LogStore.drift_history`."""
    with store.connect() as con:
        if not pass_ids or not has_tables(con, "drift"):
            return pl.DataFrame()
        return con.sql(sql("drift_history"), params={"pass_ids": [int(p) for p in pass_ids]}).pl()


def drift_histograms(store: Store, pass_id: int) -> pl.DataFrame:
    """The work of :meth:`LogStore.drift_histograms`."""
    with store.connect() as con:
        if not has_tables(con, "drift_histograms"):
            return pl.DataFrame(
                schema={
                    "kind": pl.String,
                    "name": pl.String,
                    "edges": pl.List(pl.Float64),
                    "reference": pl.List(pl.Float64),
                    "current": pl.List(pl.Float64),
                }
            )
        return con.sql(sql("drift_histograms"), params={"pass_id": int(pass_id)}).pl()
