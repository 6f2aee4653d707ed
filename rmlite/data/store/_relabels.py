"""The ``relabels`` table: datasets copied with predicted rewards, and where they came from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import polars as pl
import pyarrow as pa

from rmlite.data.schema import check_dataset_name
from rmlite.data.store import _layout
from rmlite.data.store._connection import (
    Store,
    _run,
    count,
    has_tables,
    require,
    sql,
    transaction,
    unregister,
)
from rmlite.exceptions import IngestError, SchemaError

RELABEL_FIELDS = (
    "source_dataset", "source_fingerprint", "destination", "destination_kind", "ingest_id",
    "model_path", "model_fingerprint", "feature_spec", "gamma", "pessimism", "rescale",
    "rows", "rows_predicted",
)  # fmt: skip


def _relabel_values(provenance: Mapping[str, Any]) -> dict[str, Any]:
    # The table says destination where a relabel report says target: in the store,
    # ``target`` names what a model predicts (runs.target), as in FeatureSpec.
    provenance = {
        "destination": provenance.get("target"),
        "destination_kind": provenance.get("target_kind"),
        **provenance,
    }
    values = {k: provenance.get(k) for k in RELABEL_FIELDS}
    for k in ("feature_spec", "rescale"):
        if values[k] is not None:
            values[k] = json.dumps(values[k], default=str)
    return values


def relabel_into(
    store: Store, source: str, target: str, predicted: pa.Table, provenance: Mapping[str, Any]
) -> tuple[int, int]:
    """The work of :meth:`LogStore.relabel_into`."""
    try:
        check_dataset_name(target)
    except SchemaError as exc:
        raise IngestError(f"{exc} (the relabel's target dataset)") from exc
    with store.connect(write=True) as con:
        require(store, con, source)
        if _run(con, sql("dataset_info"), {"dataset": target}):
            raise IngestError(
                f"{store.path}: dataset {target!r} already exists; a relabel writes a new "
                f"dataset and never overwrites one. Choose another name for --out."
            )
        with transaction(store.path, con):
            info = _run(con, sql("dataset_info"), {"dataset": source})
            obs_dim, action_dim, discrete = info[0]
            ingest_id = int(_run(con, sql("next_ingest_id"))[0][0])
            _run(
                con,
                sql("upsert_dataset"),
                {
                    "dataset": target,
                    "obs_dim": obs_dim,
                    "action_dim": action_dim,
                    "action_discrete": discrete,
                },
            )
            con.register("predicted", predicted)
            try:
                _run(
                    con,
                    sql("insert_relabeled"),
                    {"target": target, "source": source, "ingest_id": ingest_id},
                )
            finally:
                unregister(con, "predicted")
            rows = count(con, target)
            # Text episode ids travel with the copy: the new dataset shows the same ids.
            _run(con, sql("copy_episode_keys"), {"target": target, "source": source})
            _layout.ensure_view(con, target)
            _run(
                con,
                sql("insert_ingest"),
                {
                    "ingest_id": ingest_id,
                    "dataset": target,
                    "sources": [f"relabel of {source}"],
                    "rows_read": rows,
                    "rows_added": rows,
                    "rows_duplicate": 0,
                    "rows_rejected": 0,
                    "rows_conflicting": 0,
                },
            )
            values = _relabel_values(
                {**provenance, "ingest_id": ingest_id, "target": target, "rows": rows}
            )
            relabel_id = int(_run(con, sql("insert_relabel"), values)[0][0])
    return relabel_id, rows


def record_relabel(store: Store, provenance: Mapping[str, Any]) -> int:
    """The work of :meth:`LogStore.record_relabel`."""
    with store.connect(write=True) as con:
        return int(_run(con, sql("insert_relabel"), _relabel_values(provenance))[0][0])


def relabels(store: Store, dataset: str | None = None) -> pl.DataFrame:
    """The work of :meth:`LogStore.relabels`."""
    with store.connect() as con:
        if not has_tables(con, "relabels"):
            return pl.DataFrame()
        query = "SELECT * FROM relabels" + (
            " WHERE source_dataset = $dataset OR destination = $dataset" if dataset else ""
        )
        params = {"dataset": dataset} if dataset else None
        return con.sql(query + " ORDER BY relabel_id", params=params).pl()
