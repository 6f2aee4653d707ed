"""The ``runs`` table: one row per training run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import polars as pl

from rmlite.data.store._connection import Store, _run, has_tables, sql


def record_run(store: Store, run: Mapping[str, Any]) -> int:
    """The work of :meth:`LogStore.record_run`."""
    fields = (
        "kind", "dataset", "target", "backend", "device", "params", "feature_spec",
        "metrics", "data_fingerprint", "model_path", "trial_number", "duration_s",
    )  # fmt: skip
    values = {k: run.get(k) for k in fields}
    for k in ("params", "feature_spec", "metrics"):
        if values[k] is not None:
            values[k] = json.dumps(values[k], default=str)
    with store.connect(write=True) as con:
        return int(_run(con, sql("insert_run"), values)[0][0])


def runs(store: Store, dataset: str | None = None) -> pl.DataFrame:
    """The work of :meth:`LogStore.runs`."""
    with store.connect() as con:
        if not has_tables(con, "runs"):
            return pl.DataFrame()
        query = "SELECT * FROM runs" + (" WHERE dataset = $dataset" if dataset else "")
        params = {"dataset": dataset} if dataset else None
        return con.sql(query + " ORDER BY run_id", params=params).pl()
