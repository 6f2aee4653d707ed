"""SQL from users (``rmlite sql``): a streamed preview, and exports through DuckDB's COPY.

Both open the store read-only: a user's query reads the store and cannot change it. It runs
with the user's rights otherwise: DuckDB's ``read_csv``, ``COPY ... TO`` and friends reach
any file the user can read or write, exactly as in DuckDB's own CLI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from rmlite.data.store._connection import Store
from rmlite.exceptions import RmliteError

EXPORT_FORMATS: dict[str, str] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}
"""File endings an export understands, and the format each one means (JSON: one object
per line)."""

# Column types DuckDB's CSV writer would print in its own notation; they are written as JSON.
_NESTED = ("list", "array", "struct", "map", "union")

Params = Mapping[str, Any] | Sequence[Any] | None


def export_format(path: str, fmt: str | None = None) -> str:
    """The format of an export: ``fmt`` when given, else the one ``path``'s ending means."""
    if fmt is not None:
        if fmt not in set(EXPORT_FORMATS.values()):
            raise RmliteError(
                f"unknown export format {fmt!r}; use one of {sorted(set(EXPORT_FORMATS.values()))}."
            )
        return fmt
    ending = os.path.splitext(path)[1].lower()
    if ending not in EXPORT_FORMATS:
        raise RmliteError(
            f"{path}: unknown file ending {ending or '(none)'!r}; an export is written as "
            f"{', '.join(EXPORT_FORMATS)}. Rename the file or pass --format."
        )
    return EXPORT_FORMATS[ending]


def _statement(query: str) -> str:
    """One statement without its trailing semicolons, to nest inside COPY or a count."""
    text = query.strip().rstrip(";").strip()
    if not text:
        raise RmliteError("the SQL query is empty.")
    return text


def _relation(con: duckdb.DuckDBPyConnection, query: str, params: Params) -> Any:
    try:
        rel = con.sql(query, params=params) if params else con.sql(query)
    except duckdb.Error as exc:
        raise RmliteError(f"SQL error: {str(exc).strip()}") from exc
    if rel is None:
        raise RmliteError(
            "the statement returns no rows (rmlite sql reads the store; it cannot change it)."
        )
    return rel


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _json_nested(rel: Any) -> str:
    """The select list that turns a relation's nested columns into JSON text (for CSV)."""
    nested = [c for c, t in zip(rel.columns, rel.types, strict=True) if t.id in _NESTED]
    if not nested:
        return "*"
    quoted = ", ".join(f"to_json({_ident(c)})::VARCHAR AS {_ident(c)}" for c in nested)
    return f"* REPLACE ({quoted})"


def export(
    store: Store, query: str, path: str, fmt: str | None = None, params: Params = None
) -> int:
    """The work of :meth:`LogStore.export`."""
    fmt = export_format(path, fmt)
    text = _statement(query)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise RmliteError(f"{path}: the folder {parent} does not exist.")
    options = {
        "parquet": "FORMAT parquet",
        "csv": "FORMAT csv, HEADER true",
        "tsv": "FORMAT csv, HEADER true, DELIMITER '\t'",
        "json": "FORMAT json",
    }[fmt]
    with store.connect() as con:
        # CSV has no nested values: lists and structs become JSON text.
        select = _json_nested(_relation(con, text, params)) if fmt in ("csv", "tsv") else "*"
        target = "'" + path.replace("'", "''") + "'"
        copy = f"COPY (SELECT {select} FROM ({text})) TO {target} ({options})"
        try:
            rows = con.execute(copy, params).fetchall() if params else con.execute(copy).fetchall()
        except duckdb.Error as exc:
            raise RmliteError(f"SQL error: {str(exc).strip()}") from exc
    return int(rows[0][0]) if rows else 0


def preview(
    store: Store, query: str, rows: int | None = 40, params: Params = None
) -> tuple[pl.DataFrame, int]:
    """The work of :meth:`LogStore.preview`."""
    text = _statement(query)
    with store.connect() as con:
        rel = _relation(con, text, params)
        reader = rel.to_arrow_reader(8192)
        kept: list[pa.RecordBatch] = []
        have = total = 0
        # One pass: keep the first rows, count the rest batch by batch (memory stays bounded).
        for batch in reader:
            total += batch.num_rows
            if rows is None or have < rows:
                take = batch if rows is None else batch.slice(0, rows - have)
                kept.append(take)
                have += take.num_rows
        table = pa.Table.from_batches(kept, schema=reader.schema)
    names: list[str] = []
    for name in table.column_names:  # SQL allows a name twice (a join); a frame does not
        unique, n = name, 0
        while unique in names:
            n += 1
            unique = f"{name}_{n}"
        names.append(unique)
    frame = pl.from_arrow(table.rename_columns(names))
    assert isinstance(frame, pl.DataFrame)
    return frame, total
