"""Reading preference judgements from files or tables and checking them.

The preference twin of :mod:`rmlite.data.logs`: it knows file formats and columns, never the
store. :func:`prepare_preferences` returns the judgements in the layout of the store's
``preferences`` table (:data:`rmlite.data.schema.PREFERENCE_COLUMNS`) plus the rows refused
and why; :meth:`rmlite.LogStore.ingest_preferences` then checks that every segment exists
in the logs and lands them in one transaction.

Examples
--------
>>> import polars as pl
>>> raw = pl.DataFrame({"episode_a": [0, 1], "start_a": [0, 5], "stop_a": [10, 15],
...                     "episode_b": [1, 0], "start_b": [0, 20], "stop_b": [10, 30],
...                     "label": [1.0, 0.5]})
>>> prepared = prepare_preferences([raw])
>>> prepared.frame.select("episode_a", "label", "margin", "annotator").rows()
[(0, 1.0, None, ''), (1, 0.5, None, '')]
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from rmlite.data import logs
from rmlite.exceptions import IngestError

SEGMENT_COLUMNS = ("episode_a", "start_a", "stop_a", "episode_b", "start_b", "stop_b")
"""Integer columns that locate the two segments of a pair."""

REQUIRED = (*SEGMENT_COLUMNS, "label")
OPTIONAL = ("margin", "annotator", "timestamp")
KEY = (*SEGMENT_COLUMNS, "annotator")


@dataclass
class PreparedPreferences:
    """Judgements in the store's layout, plus source name and row of each one."""

    frame: pl.DataFrame
    rejected: pl.DataFrame
    sources: list[str]
    rows_read: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class PreferenceIngestReport:
    """What one preference ingest did. Counts are judged pairs."""

    dataset: str
    sources: list[str]
    ingest_id: int
    rows_read: int
    pairs_added: int
    pairs_duplicate: int
    pairs_conflicting: int
    pairs_rejected: int
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return asdict(self)

    def __str__(self) -> str:
        parts = [
            f"{self.dataset}: {self.pairs_added:,} preference pairs added",
            f"{self.pairs_duplicate:,} already stored",
        ]
        if self.pairs_conflicting:
            parts.append(f"{self.pairs_conflicting:,} conflicting (quarantined)")
        if self.pairs_rejected:
            parts.append(f"{self.pairs_rejected:,} rejected (see the 'rejected' table)")
        return ", ".join(parts) + f" from {len(self.sources)} source(s) in {self.seconds:.2f} s"


def prepare_preferences(
    sources: Iterable[logs.Source], on_error: logs.OnError = "raise"
) -> PreparedPreferences:
    """Read and check every source of one preference ingest.

    Parameters
    ----------
    sources
        Files (Parquet, CSV, JSON Lines, Arrow), globs, folders or in-memory tables with
        the columns of :data:`rmlite.data.schema.PREFERENCE_COLUMNS` (``dataset`` excepted).
    on_error
        ``"raise"``: the first bad row stops the ingest with an error naming file, row
        and column. ``"quarantine"``: bad rows are returned in ``rejected`` with the reason.
    """
    if on_error not in ("raise", "quarantine"):
        raise IngestError(
            f"The 'on_error' parameter must be 'raise' or 'quarantine'. Got {on_error!r} instead."
        )
    parts: list[pl.DataFrame] = []
    raws: dict[str, pl.DataFrame] = {}
    for src in logs.expand_sources(sources):
        name, raw = logs.read_source(src)
        if name in raws:
            name = f"{name}#{len(raws)}"
        raws[name] = raw
        parts.append(_normalize(raw, name))
    frame = pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]
    rows_read = frame.height
    frame = frame.with_columns(_row_reasons()).drop(_VALUE_REASON)
    dup = pl.struct(*KEY).is_duplicated()
    frame = frame.with_columns(
        pl.when(pl.col(logs.REASON).is_null() & dup)
        .then(pl.lit("duplicate pair: the same segments and annotator appear more than once"))
        .otherwise(pl.col(logs.REASON))
        .alias(logs.REASON)
    )
    bad = frame.filter(pl.col(logs.REASON).is_not_null())
    if bad.height and on_error == "raise":
        first = bad.row(0, named=True)
        more = f" ({bad.height - 1} more bad rows)" if bad.height > 1 else ""
        raise IngestError(
            f"{first[logs.SOURCE]}: row {first[logs.ROW]}: {first[logs.REASON]}{more}. Fix the "
            f"file, or pass --on-error quarantine to land the good pairs and keep the bad ones "
            f"in the 'rejected' table. Nothing was written."
        )
    rejected = logs._rejected_records(bad, raws)
    frame = frame.filter(pl.col(logs.REASON).is_null()).drop(logs.REASON)
    if frame.height == 0:
        raise IngestError(
            f"{', '.join(raws)}: no valid preference pairs remain ({rows_read} read, all "
            f"rejected). Nothing was written."
        )
    return PreparedPreferences(
        frame=frame,
        rejected=rejected,
        sources=list(raws),
        rows_read=rows_read,
        warnings=_contradictions(frame),
    )


def _contradictions(frame: pl.DataFrame) -> list[str]:
    """Pairs judged both ways by one annotator that disagree (A over B, and B over A).

    Kept (people do change their minds, and Bradley-Terry weighs both), but said aloud:
    many of them usually mean swapped columns or a misread label convention.
    """
    sides = ["episode_a", "start_a", "stop_a", "episode_b", "start_b", "stop_b"]
    swapped = frame.select(
        *[
            pl.col(c).alias(c.replace("_a", "_x").replace("_b", "_a").replace("_x", "_b"))
            for c in sides
        ],
        "annotator",
        pl.col("label").alias("label_reverse"),
        pl.col(logs.ROW).alias("row_reverse"),
    )
    both = frame.join(swapped, on=[*sides, "annotator"], how="inner")
    # P(A over B) and P(B over A) should add up to about 1; both above (or below) 1/2 is
    # the same annotator preferring each segment over the other.
    clash = both.filter(
        ((pl.col("label") - 0.5) * (pl.col("label_reverse") - 0.5) > 0)
        & (pl.col(logs.ROW) < pl.col("row_reverse"))
    )
    if clash.height == 0:
        return []
    first = clash.row(0, named=True)
    who = f"annotator {first['annotator']!r}" if first["annotator"] else "the same annotator"
    return [
        f"{clash.height:,} pair(s) judged both ways by one annotator disagree (first: "
        f"{first[logs.SOURCE]} rows {first[logs.ROW]} and {first['row_reverse']}, {who} "
        f"prefers each segment over the other); both were kept. Check the label convention "
        f"(label = P(A preferred))."
    ]


def _normalize(raw: pl.DataFrame, name: str) -> pl.DataFrame:
    """The canonical columns of one source, typed, with source name and row number."""
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        hints = []
        for col in missing:
            close = difflib.get_close_matches(col, raw.columns, n=1)
            if close:
                hints.append(f"{col!r} (is {close[0]!r} it?)")
        hint = f" Closest names: {', '.join(hints)}." if hints else ""
        raise IngestError(
            f"{name}: preference column(s) {missing} not found; a preference file needs "
            f"{list(REQUIRED)} (optional: {list(OPTIONAL)}); it has {logs._preview(raw.columns)}."
            f"{hint} Segments are half-open step ranges [start, stop) of an episode."
        )
    exprs: list[pl.Expr] = []
    # Float episode columns are whole numbers or row errors, as the segment bounds are;
    # integer and text ids go as in logs.
    episodes = {
        col: _integer(raw, col, name)
        if raw.schema[col].is_float()
        else logs.episode_expr(raw, col, name)
        for col in ("episode_a", "episode_b")
    }
    text = [col for col in episodes if raw.schema[col] in (pl.String, pl.Categorical, pl.Binary)]
    if len(text) == 1:
        raise IngestError(
            f"{name}: column {text[0]!r} holds text episode ids and the other episode column "
            f"integers; name both segments' episodes the same way (as ingested)."
        )
    for col in SEGMENT_COLUMNS:
        exprs.append(episodes[col] if col in episodes else _integer(raw, col, name))
    exprs.append(_number(raw, "label", name))
    exprs.append(
        _number(raw, "margin", name) if "margin" in raw.columns else pl.lit(None, pl.Float64)
    )
    if "annotator" in raw.columns:
        exprs.append(pl.col("annotator").cast(pl.String).fill_null(""))
    else:
        exprs.append(pl.lit("", pl.String))
    exprs.append(
        logs._timestamp_expr(raw, "timestamp", name)
        if "timestamp" in raw.columns
        else pl.lit(None, pl.Datetime("us"))
    )
    names = [*SEGMENT_COLUMNS, "label", "margin", "annotator", "timestamp"]
    out = raw.select(
        *[e.alias(n) for e, n in zip(exprs, names, strict=True)],
        _value_reasons(raw, dict(zip(names, exprs, strict=True))),
    )
    return out.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias(logs.ROW),
        pl.lit(name).alias(logs.SOURCE),
    )


def _integer(raw: pl.DataFrame, col: str, name: str) -> pl.Expr:
    # A value that is no int64 (inf, 1e300, 2.5, a UInt64 >= 2**63) becomes NULL here and
    # a row error naming it in `_value_reasons`.
    dtype = raw.schema[col]
    if dtype.is_integer():
        return pl.col(col).cast(pl.Int64, strict=False)
    if dtype.is_float():
        whole = pl.col(col).is_finite() & (pl.col(col) == pl.col(col).round(0))
        return pl.when(whole).then(pl.col(col)).cast(pl.Int64, strict=False)
    raise IngestError(
        f"{name}: column {col!r} must hold integers (an episode id or a step); got {dtype}. "
        f"Cast it to integers."
    )


_VALUE_REASON = "__value_reason"


def _value_reasons(raw: pl.DataFrame, typed: dict[str, pl.Expr]) -> pl.Expr:
    """Per row, the first source value that did not survive its conversion, or NULL."""
    checks: list[tuple[pl.Expr, pl.Expr]] = []
    for col in SEGMENT_COLUMNS:
        checks.append(
            (
                pl.col(col).is_not_null() & typed[col].is_null(),
                pl.format(
                    f"{col} is {{}}; it must be a whole number within int64 "
                    f"({'an episode id' if col.startswith('episode') else 'a step'})",
                    pl.col(col).cast(pl.String),
                ),
            )
        )
    if "timestamp" in raw.columns:
        given = pl.col("timestamp").is_not_null()
        if raw.schema["timestamp"].is_float():
            given = given & pl.col("timestamp").is_finite()
        checks.append(
            (
                given & typed["timestamp"].is_null(),
                pl.format(
                    "timestamp holds {}, which is not a time (Unix seconds, a datetime, or "
                    "ISO 8601 text)",
                    pl.col("timestamp").cast(pl.String).str.slice(0, 40),
                ),
            )
        )
    reason: pl.Expr = pl.lit(None, pl.String)
    for cond, text in reversed(checks):
        reason = pl.when(cond.fill_null(False)).then(text).otherwise(reason)
    return reason.alias(_VALUE_REASON)


def _number(raw: pl.DataFrame, col: str, name: str) -> pl.Expr:
    dtype = raw.schema[col]
    if dtype.is_numeric() or dtype == pl.Boolean or dtype == pl.Null:
        return pl.col(col).cast(pl.Float64)
    raise IngestError(
        f"{name}: column {col!r} must be numeric; got {dtype}. "
        + (
            "Labels are P(A preferred): 1 = A, 0 = B, 0.5 = a tie."
            if col == "label"
            else "Margins are non-negative numbers."
        )
    )


def _row_reasons() -> pl.Expr:
    """One text per row saying what is wrong with it, or NULL."""
    checks: list[tuple[pl.Expr, pl.Expr]] = [
        (pl.col(_VALUE_REASON).is_not_null(), pl.col(_VALUE_REASON))
    ]
    for col in (*SEGMENT_COLUMNS, "label"):
        checks.append((pl.col(col).is_null(), pl.lit(f"{col} is null")))
    for side in ("a", "b"):
        start, stop = pl.col(f"start_{side}"), pl.col(f"stop_{side}")
        checks.append((start < 0, pl.format(f"start_{side} is {{}}; steps start at 0", start)))
        checks.append(
            (
                stop <= start,
                pl.format(
                    f"segment {side.upper()} is empty: stop_{side} ({{}}) must be greater than "
                    f"start_{side} ({{}}); segments are half-open [start, stop)",
                    stop,
                    start,
                ),
            )
        )
    same = pl.all_horizontal(
        pl.col(f"{part}_a") == pl.col(f"{part}_b") for part in ("episode", "start", "stop")
    )
    checks.append(
        (
            same,
            pl.lit(
                "segment A and segment B are the same steps; a segment compared with itself "
                "says nothing about rewards"
            ),
        )
    )
    label = pl.col("label")
    checks.append(
        (
            label.is_nan() | (label < 0) | (label > 1),
            pl.format(
                "label is {}; it must be in [0, 1] (1 = A preferred, 0 = B, 0.5 = tie)", label
            ),
        )
    )
    margin = pl.col("margin")
    checks.append(
        (
            margin.is_not_null() & (margin.is_nan() | (margin < 0)),
            pl.format("margin is {}; it must be a number >= 0", margin),
        )
    )
    reason: pl.Expr = pl.lit(None, pl.String)
    for cond, text in reversed(checks):
        reason = pl.when(cond.fill_null(False)).then(text).otherwise(reason)
    return reason.alias(logs.REASON)
