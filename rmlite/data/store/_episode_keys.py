"""Text episode ids: the user's id outside, an integer key inside.

A dataset whose logs name episodes by text (``"run-a/ep-17"``, UUIDs) keeps those ids in
the ``episode_keys`` table, one row per episode with the integer key that ``transitions``
(and ``preferences``, ``monitor_samples``) hold in its place. Keys are assigned inside the
ingest's transaction, in order of first appearance, and never change: re-ingesting the
same log finds the same keys, so ingest stays idempotent. Every output meant for the user
(``episodes()``, ``read()``, predictions, relabels, the ``data.<dataset>`` views) shows
the text id again; feature frames' ``groups`` stay integer keys.

A dataset is keyed one way: integer ids (no rows here; the key is the id) or text ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import numpy as np
import polars as pl

from rmlite.data import schema as S
from rmlite.data.logs import ROW, SOURCE
from rmlite.data.store._connection import _run, count, sql
from rmlite.exceptions import IngestError, RmliteError


def is_text_keyed(con: duckdb.DuckDBPyConnection, dataset: str) -> bool:
    """Whether a dataset names its episodes by text ids."""
    try:
        rows = _run(con, "SELECT count(*) FROM episode_keys WHERE dataset = ?", [dataset])
    except duckdb.CatalogException:  # a store written before text ids existed
        return False
    return bool(rows[0][0])


def key_map(con: duckdb.DuckDBPyConnection, dataset: str) -> pl.DataFrame:
    """(episode_key, episode_id) of a text-keyed dataset; empty for integer ids."""
    try:
        return con.sql(sql("episode_keys"), params={"dataset": dataset}).pl()
    except duckdb.CatalogException:  # a store written before text ids existed
        return pl.DataFrame(schema={"episode_key": pl.Int64, "episode_id": pl.String})


def assign(con: duckdb.DuckDBPyConnection, dataset: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Replace a prepared log's episode ids by the dataset's integer keys (inside the
    ingest's transaction); new text ids get new keys. Integer ids pass unchanged.

    A dataset is keyed one way: text ids into a dataset of integer ids (or the reverse)
    are refused, naming an example of each.
    """
    text = frame.schema[S.EPISODE] == pl.String
    check_kind(con, dataset, text, frame[S.EPISODE][0])
    if not text:
        return frame
    first = frame.select(S.EPISODE, pl.int_range(pl.len(), dtype=pl.Int64).alias("first_row"))
    ids = first.group_by(S.EPISODE).agg(pl.col("first_row").min())
    con.register("staged_ids", ids.to_arrow())
    try:
        _run(con, sql("insert_episode_keys"), {"dataset": dataset})
    finally:
        con.unregister("staged_ids")
    keys = key_map(con, dataset)
    mapped = frame[S.EPISODE].replace_strict(
        keys["episode_id"], keys["episode_key"], return_dtype=pl.Int64
    )
    return frame.with_columns(mapped.alias(S.EPISODE))


def check_kind(con: duckdb.DuckDBPyConnection, dataset: str, text: bool, example: Any) -> None:
    """Refuse text ids into a dataset of integer ids (or the reverse), naming an example."""
    if count(con, dataset) > 0 and text != is_text_keyed(con, dataset):
        kind, other = ("text", "integer") if text else ("integer", "text")
        raise IngestError(
            f"dataset {dataset!r} names its episodes by {other} ids, and this log by {kind} "
            f"ids (for example {example!r}): a dataset is keyed one way. Ingest the log into "
            f"another dataset, or give its episodes {other} ids. Nothing was written."
        )


def label(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    frame: pl.DataFrame,
    columns: Sequence[str] = (S.EPISODE,),
) -> pl.DataFrame:
    """The frame with integer keys in ``columns`` replaced by the user's text ids.

    Integer-keyed datasets come back unchanged.
    """
    keys = key_map(con, dataset)
    if keys.height == 0:
        return frame
    return frame.with_columns(
        pl.col(c).replace_strict(keys["episode_key"], keys["episode_id"], return_dtype=pl.String)
        for c in columns
        if c in frame.columns
    )


def to_keys(con: duckdb.DuckDBPyConnection, dataset: str, episodes: Iterable[Any]) -> list[int]:
    """Episode ids as the user gives them (text ids, or integer ids/keys) as integer keys.

    An id the dataset does not hold is an error that names it.
    """
    values = list(episodes.tolist() if isinstance(episodes, np.ndarray) else episodes)
    texts = [v for v in values if isinstance(v, str)]
    if not texts:
        return [int(v) for v in values]
    keys = key_map(con, dataset)
    if keys.height == 0:
        raise RmliteError(
            f"dataset {dataset!r} names its episodes by integer ids; got text id "
            f"{texts[0]!r}. Pass the integer ids that store.episodes() lists."
        )
    lookup = dict(zip(keys["episode_id"].to_list(), keys["episode_key"].to_list(), strict=True))
    unknown = [v for v in texts if v not in lookup]
    if unknown:
        raise RmliteError(
            f"dataset {dataset!r} has no episode {unknown[0]!r}"
            + (f" ({len(unknown) - 1} more unknown)" if len(unknown) > 1 else "")
            + ". store.episodes() lists its episodes."
        )
    return [lookup[v] if isinstance(v, str) else int(v) for v in values]


def pair_keys(
    con: duckdb.DuckDBPyConnection, dataset: str, frame: pl.DataFrame, on_error: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Preference pairs whose segments name episodes by text ids, with integer keys instead.

    Returns the keyed pairs and the refused ones (source, row, reason, record): a text id
    the dataset does not hold refuses its pair (raises in ``raise`` mode). Integer ids pass
    unchanged; the two kinds of dataset do not mix.
    """
    columns = ("episode_a", "episode_b")
    schema = {"source": pl.String, "row": pl.Int64, "reason": pl.String, "record": pl.String}
    none = pl.DataFrame(schema=schema)
    text = frame.schema["episode_a"] == pl.String
    if text != is_text_keyed(con, dataset):
        kind, other = ("text", "integer") if text else ("integer", "text")
        raise IngestError(
            f"{frame[SOURCE][0]}: the pairs name episodes by {kind} ids (for example "
            f"{frame['episode_a'][0]!r}), and dataset {dataset!r} by {other} ids; name them "
            f"as store.episodes({dataset!r}) lists them. Nothing was written."
        )
    if not text:
        return frame, none
    keys = key_map(con, dataset)
    keyed = frame.with_columns(
        pl.col(c)
        .replace_strict(
            keys["episode_id"], keys["episode_key"], default=None, return_dtype=pl.Int64
        )
        .alias(f"__key_{c}")
        for c in columns
    )
    lost = pl.col("__key_episode_a").is_null() | pl.col("__key_episode_b").is_null()
    bad = keyed.filter(lost)
    if bad.height:
        first = bad.row(0, named=True)
        missing = first["episode_a"] if first["__key_episode_a"] is None else first["episode_b"]
        if on_error == "raise":
            more = f" ({bad.height - 1} more)" if bad.height > 1 else ""
            raise IngestError(
                f"{first[SOURCE]}: row {first[ROW]}: dataset {dataset!r} has no episode "
                f"{missing!r}{more}. Ingest the episodes first, or fix the ids. Nothing was "
                f"written."
            )
    refused = bad.select(
        pl.col(SOURCE).alias("source"),
        pl.col(ROW).alias("row"),
        pl.format(
            "episode '{}' is not in dataset {}",
            pl.when(pl.col("__key_episode_a").is_null())
            .then(pl.col("episode_a"))
            .otherwise(pl.col("episode_b")),
            pl.lit(repr(dataset)),
        ).alias("reason"),
        pl.struct(*columns, "start_a", "stop_a", "start_b", "stop_b", "label")
        .struct.json_encode()
        .alias("record"),
    ).cast(schema)  # type: ignore[arg-type]
    good = (
        keyed.filter(~lost)
        .with_columns(pl.col(f"__key_{c}").alias(c) for c in columns)
        .drop(f"__key_{c}" for c in columns)
    )
    return good, refused
