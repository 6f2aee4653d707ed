"""Reading logs from files or tables and normalizing them to the log contract.

This module knows file formats and column layouts; it never touches the store. The
result of :func:`prepare` is one Polars frame in the canonical layout of
:mod:`rmlite.data.schema`, sorted by (episode, step), plus the rows rejected and why. The store
then lands it in one transaction.

Examples
--------
>>> import polars as pl
>>> raw = pl.DataFrame({
...     "episode_id": [0, 0, 0], "obs_0": [0.0, 1.0, 2.0], "obs_1": [1.0, 1.0, 1.0],
...     "action": [1, 0, 1], "reward": [0.0, 0.0, 1.0],
...     "terminated": [False, False, True]})
>>> log = prepare([raw])
>>> log.frame["obs"].to_list()
[[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]
>>> log.frame["next_obs"].to_list()   # derived; the terminal step's is unknown
[[1.0, 1.0], [2.0, 1.0], None]
>>> (log.obs_dim, log.action_dim, log.action_discrete)
(2, 1, True)
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import polars as pl
import pyarrow as pa

from rmlite._typing import PathLike
from rmlite.data import schema as S
from rmlite.exceptions import IngestError, SchemaError

OnError: TypeAlias = Literal["raise", "quarantine"]
Source: TypeAlias = PathLike | pl.DataFrame | pl.LazyFrame | pa.Table

FORMATS: dict[str, str] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".arrow": "ipc",
    ".ipc": "ipc",
    ".feather": "ipc",
}
"""File endings rmlite reads, and the reader each one uses."""

ROW = "__row"
SOURCE = "__source"
REASON = "__reason"

_FLAG_HELP = {S.TERMINATED: "--terminated-col", S.TRUNCATED: "--truncated-col"}
_MAP_FLAG = {
    S.EPISODE: "--episode-col",
    S.STEP: "--step-col",
    S.OBS: "--obs-cols",
    S.ACTION: "--action-cols",
    S.REWARD: "--reward-col",
    S.NEXT_OBS: "--next-obs-cols",
    S.TERMINATED: "--terminated-col",
    S.TRUNCATED: "--truncated-col",
    S.TIMESTAMP: "--timestamp-col",
}


@dataclass
class PreparedLog:
    """A log in canonical layout, ready for the store.

    ``frame`` holds the canonical columns (without ``dataset``) plus the source name and
    row number of every transition; ``rejected`` the rows refused in quarantine mode with
    the reason and the original record as JSON.
    """

    frame: pl.DataFrame
    rejected: pl.DataFrame
    sources: list[str]
    rows_read: int
    obs_dim: int
    action_dim: int
    action_discrete: bool
    next_obs_derived: bool
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- reading


def expand_sources(sources: Iterable[Source]) -> list[Source]:
    """Expand paths, globs and folders into a sorted list of readable files.

    Tables pass through unchanged. A path that matches nothing is an error that names it.
    """
    out: list[Source] = []
    for src in sources:
        if isinstance(src, pl.DataFrame | pl.LazyFrame | pa.Table):
            out.append(src)
            continue
        text = os.fspath(src)
        if any(ch in text for ch in "*?["):
            matches = sorted(p for p in glob.glob(text, recursive=True) if _readable(p))
            if not matches:
                raise IngestError(f"{text}: the pattern matches no log file ({_endings()}).")
            out.extend(matches)
        elif os.path.isdir(text):
            matches = sorted(str(p) for p in Path(text).rglob("*") if _readable(str(p)))
            if not matches:
                raise IngestError(f"{text}: the folder holds no log file ({_endings()}).")
            out.extend(matches)
        elif os.path.exists(text):
            out.append(text)
        else:
            raise IngestError(f"{text}: no such file or folder.")
    if not out:
        raise IngestError("ingest was given no source.")
    return out


def _file_format(path: str) -> tuple[str, str]:
    """The reader a file's ending picks, and the separator for delimited text."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise IngestError(
            f"{path}: unknown file type {Path(path).suffix!r}; rmlite reads {_endings()}."
        )
    return fmt, "\t" if path.lower().endswith(".tsv") else ","


def _readable(path: str) -> bool:
    return os.path.isfile(path) and Path(path).suffix.lower() in FORMATS


def _endings() -> str:
    return ", ".join(sorted(FORMATS))


def read_source(src: Source) -> tuple[str, pl.DataFrame]:
    """Read one source into an eager Polars frame; name it for error messages."""
    if isinstance(src, pl.DataFrame):
        return "<DataFrame>", src
    if isinstance(src, pl.LazyFrame):
        return "<LazyFrame>", src.collect()
    if isinstance(src, pa.Table):
        frame = pl.from_arrow(src)
        assert isinstance(frame, pl.DataFrame)
        return "<pyarrow.Table>", frame
    path = os.fspath(src)
    fmt, sep = _file_format(path)
    try:
        if fmt == "parquet":
            frame = pl.read_parquet(path)
        elif fmt == "csv":
            frame = pl.read_csv(path, separator=sep, infer_schema_length=10_000)
        elif fmt == "jsonl":
            frame = pl.read_ndjson(path, infer_schema_length=10_000)
        else:
            frame = pl.read_ipc(path)  # Polars 2 removed memory_map=
    except (OSError, ValueError, pl.exceptions.PolarsError, pa.ArrowException) as exc:
        raise _read_error(path, fmt, sep, exc) from exc
    return path, frame


def _read_error(path: str, fmt: str, sep: str, exc: BaseException) -> IngestError:
    """The error for a file that its reader refused, naming the line or value where it can."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    where = ""
    if fmt == "jsonl":
        where = _jsonl_bad_line(path)
    elif fmt == "csv":
        where = _csv_bad_value(path, sep, str(exc))
    return IngestError(
        f"{path}: cannot be read as {fmt}: {where or first}. Check that the file is "
        f"complete and really {fmt}."
    )


def source_name(src: Source) -> str:
    """The name of a source in messages: its path, or the kind of in-memory table."""
    if isinstance(src, pl.DataFrame):
        return "<DataFrame>"
    if isinstance(src, pl.LazyFrame):
        return "<LazyFrame>"
    if isinstance(src, pa.Table):
        return "<pyarrow.Table>"
    return os.fspath(src)


def read_batches(src: Source, batch_rows: int) -> Iterator[pl.DataFrame]:
    """Read one source as eager Polars frames of about ``batch_rows`` rows each.

    Files are scanned by Polars' streaming engine with the same options as
    :func:`read_source`, so a batch holds the same values and types as the whole file
    would; only one batch is in memory at a time. Read errors are the same
    :class:`IngestError` as :func:`read_source` raises (some surface only at the batch
    that meets the bad bytes).
    """
    if isinstance(src, pl.DataFrame):
        yield from src.iter_slices(batch_rows)
        return
    if isinstance(src, pl.LazyFrame):
        yield from src.collect_batches(chunk_size=batch_rows)
        return
    if isinstance(src, pa.Table):
        for batch in src.to_batches(max_chunksize=batch_rows):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            yield frame
        return
    path = os.fspath(src)
    fmt, sep = _file_format(path)
    try:
        if fmt == "parquet":
            lazy = pl.scan_parquet(path)
        elif fmt == "csv":
            lazy = pl.scan_csv(path, separator=sep, infer_schema_length=10_000)
        elif fmt == "jsonl":
            lazy = pl.scan_ndjson(path, infer_schema_length=10_000)
        else:
            lazy = pl.scan_ipc(path)
        batches = iter(lazy.collect_batches(chunk_size=batch_rows))
        while True:
            try:
                frame = next(batches)
            except StopIteration:
                return
            yield frame
    except (OSError, ValueError, pl.exceptions.PolarsError, pa.ArrowException) as exc:
        raise _read_error(path, fmt, sep, exc) from exc


def _jsonl_bad_line(path: str) -> str:
    """The first line of a JSON Lines file that is not a JSON object (the error path only:
    Polars reports a character offset, people look for a line)."""
    import json

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    return f"line {number} is not valid JSON ({exc.msg} at column {exc.colno})"
                except ValueError as exc:  # e.g. a number too long to convert
                    return f"line {number} is not valid JSON ({exc})"
                if not isinstance(value, dict):
                    return f"line {number} holds a JSON {type(value).__name__}, not an object"
    except OSError:
        return ""
    return ""


_CSV_PARSE = re.compile(r"could not parse `(.*?)` as dtype `(\w+)` at column '(.*?)'")


def _csv_bad_value(path: str, sep: str, error: str) -> str:
    """Row and column of the CSV value Polars could not parse (it names only the column)."""
    match = _CSV_PARSE.search(error)
    if match is None:
        return ""
    value, dtype, column = match.groups()
    try:
        text = pl.read_csv(path, separator=sep, infer_schema_length=0, columns=[column])
    except (OSError, pl.exceptions.PolarsError):
        return ""
    row = text.select(pl.col(column).str.strip_chars().eq(value.strip()).arg_true().first()).item()
    at = f"row {row} (line {row + 2}), " if row is not None else ""
    return f"{at}column {column!r} holds {value!r}, which is not a {dtype} like the rows above it"


# ----------------------------------------------------------------------- normalizing


def _find(columns: Sequence[str], canonical: str, mapping: dict[str, str], name: str) -> str | None:
    if canonical in mapping:
        wanted = mapping[canonical]
        if wanted not in columns:
            raise SchemaError(
                f"{name}: column {wanted!r} (mapped with {_MAP_FLAG[canonical]}) not found; "
                f"the columns are {_preview(columns)}."
            )
        return wanted
    lower = {c.lower(): c for c in columns}
    for alias in S.ALIASES.get(canonical, (canonical,)):
        if alias in columns:
            return alias
        if alias in lower:
            return lower[alias]
    return None


def _preview(columns: Sequence[str], k: int = 12) -> str:
    shown = ", ".join(repr(c) for c in columns[:k])
    return f"[{shown}{', ...' if len(columns) > k else ''}]"


def _numbered(columns: Sequence[str], pattern: str) -> list[str]:
    """Columns matching a glob, ordered by their trailing number (obs_2 before obs_10)."""
    hits = [c for c in columns if fnmatch.fnmatchcase(c, pattern)]

    def order(col: str) -> tuple[int, str]:
        m = re.search(r"(\d+)$", col)
        return (int(m.group(1)) if m else -1, col)

    return sorted(hits, key=order)


def _flat_columns(columns: Sequence[str], canonical: str) -> list[str]:
    for prefix in S.FLAT_PREFIXES[canonical]:
        rx = re.compile(rf"^{re.escape(prefix)}(\d+)$")
        hits = [c for c in columns if rx.match(c)]
        if hits:
            return sorted(hits, key=lambda c: int(rx.match(c).group(1)))  # type: ignore[union-attr]
    return []


_JSON_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]{1,3})?"
JSON_VECTOR = rf"^\s*\[\s*(?:(?:{_JSON_NUMBER}|null)(?:\s*,\s*(?:{_JSON_NUMBER}|null))*)?\s*\]\s*$"
"""A vector written as JSON text: an array of numbers (or nulls), as CSV logs carry them."""


def _vector_expr(
    frame: pl.DataFrame, canonical: str, mapping: dict[str, str], name: str, offset: int = 0
) -> tuple[pl.Expr | None, list[str], bool]:
    """Build the expression for a vector column; return it, the source columns it used,
    and whether it came from one integer scalar column (a discrete action)."""
    columns = frame.columns
    wanted = mapping.get(canonical)
    if wanted is not None and any(ch in wanted for ch in "*?["):
        used = _numbered(columns, wanted)
        if not used:
            raise SchemaError(
                f"{name}: the pattern {wanted!r} ({_MAP_FLAG[canonical]}) matches no column; "
                f"the columns are {_preview(columns)}."
            )
        return _concat(frame, used, canonical, name, offset), used, False
    col = _find(columns, canonical, mapping, name)
    if col is None:
        used = _flat_columns(columns, canonical)
        if not used:
            return None, [], False
        return _concat(frame, used, canonical, name, offset), used, False
    dtype = frame.schema[col]
    if isinstance(dtype, pl.List | pl.Array):
        inner = dtype.inner
        if not (inner.is_numeric() or inner == pl.Boolean or inner == pl.Null):
            raise SchemaError(
                f"{name}: column {col!r} must hold numeric vectors; got {dtype}. "
                f"Cast it or map another column with {_MAP_FLAG[canonical]}."
            )
        expr = pl.col(col)
        if isinstance(dtype, pl.Array):
            expr = expr.arr.to_list()
        return expr.cast(pl.List(pl.Float32)), [col], False
    if dtype.is_numeric() or dtype == pl.Boolean:
        discrete = dtype.is_integer() or dtype == pl.Boolean
        return pl.concat_list(pl.col(col).cast(pl.Float32)), [col], discrete
    if dtype == pl.String:
        # CSV cannot hold lists; accept JSON arrays written as text ("[0.1, 0.2]"). A row
        # whose text is not such an array becomes NULL here and a row error in
        # `_row_reasons` (the decoder would fail the whole column without naming a row).
        valid = pl.col(col).str.contains(JSON_VECTOR)
        return (
            pl.when(valid)
            .then(pl.col(col))
            .str.json_decode(pl.List(pl.Float64))
            .cast(pl.List(pl.Float32)),
            [col],
            False,
        )
    raise SchemaError(
        f"{name}: column {col!r} must hold numeric vectors or numbers; got {dtype}. "
        f"Cast it or map another column with {_MAP_FLAG[canonical]}."
    )


def _not_a_number(frame: pl.DataFrame, col: str, offset: int = 0) -> str:
    """For a text column that should be numeric: the first row that is not a number
    (``offset``: the source row of the frame's first row, when it is one batch of many)."""
    if frame.schema[col] != pl.String:
        return ""
    text = pl.col(col).str.strip_chars()
    bad = text.is_not_null() & text.cast(pl.Float64, strict=False).is_null()
    row = frame.select(bad.arg_true().first()).item()
    if row is None:
        return ""
    return f" (row {row + offset} holds {frame[col][row]!r})"


def _concat(
    frame: pl.DataFrame, used: list[str], canonical: str, name: str, offset: int = 0
) -> pl.Expr:
    # `frame.schema` builds a new Schema object of every column on each access: read it
    # once, or a log with thousands of numbered columns takes quadratic time (10,000
    # obs_i columns took 277 s).
    schema = frame.schema
    for c in used:
        dtype = schema[c]
        if not (dtype.is_numeric() or dtype == pl.Null):
            raise SchemaError(
                f"{name}: column {c!r} (part of {canonical}) must be numeric; got {dtype}"
                f"{_not_a_number(frame, c, offset)}. Cast it or map other columns with "
                f"{_MAP_FLAG[canonical]}."
            )
    return pl.concat_list([pl.col(c).cast(pl.Float32) for c in used])


def _flag_expr(
    frame: pl.DataFrame, col: str | None, canonical: str, name: str, offset: int = 0
) -> pl.Expr:
    if col is None:
        return pl.lit(False)
    dtype = frame.schema[col]
    if dtype == pl.Boolean:
        return pl.col(col)
    if dtype.is_numeric():
        bad = frame.select(
            (pl.col(col).is_not_null() & ~pl.col(col).is_in([0, 1])).arg_true().first()
        ).item()
        if bad is not None:
            raise SchemaError(
                f"{name}: column {col!r} ({canonical}) must be true/false or 0/1; row {bad + offset} "
                f"holds {frame[col][bad]!r}. Fix the value or map another column with "
                f"{_FLAG_HELP[canonical]}."
            )
        return pl.col(col).cast(pl.Boolean)
    if dtype == pl.String:
        text = pl.col(col).str.strip_chars().str.to_lowercase()
        return (
            pl.when(text.is_in(["true", "1", "t", "yes"]))
            .then(True)
            .when(text.is_in(["false", "0", "f", "no"]))
            .then(False)
            .otherwise(None)
        )
    raise SchemaError(
        f"{name}: column {col!r} ({canonical}) must be boolean; got {dtype}. "
        f"Cast it or map another column with {_FLAG_HELP[canonical]}."
    )


def _timestamp_expr(frame: pl.DataFrame, col: str, name: str) -> pl.Expr:
    dtype = frame.schema[col]
    if isinstance(dtype, pl.Datetime):
        expr = pl.col(col)
        if dtype.time_zone is not None:
            expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return expr.dt.cast_time_unit("us")
    if dtype.is_numeric():
        # Seconds beyond the range of a microsecond int64 (about ±292,000 years) become
        # NULL here, and a row error in `normalize`.
        return (
            (pl.col(col).cast(pl.Float64) * 1e6)
            .cast(pl.Int64, strict=False)
            .cast(pl.Datetime("us"))
        )
    if dtype == pl.String:
        return pl.col(col).str.to_datetime(time_unit="us", strict=False)
    raise SchemaError(
        f"{name}: column {col!r} (timestamp) must be a datetime, Unix seconds or ISO text; "
        f"got {dtype}. Map another column with --timestamp-col."
    )


def normalize(
    frame: pl.DataFrame,
    name: str,
    mapping: S.ColumnMapping | None = None,
    *,
    row_offset: int = 0,
    defer_lengths: bool = False,
) -> pl.DataFrame:
    """Map one source frame onto the canonical columns.

    File-level problems (a required column missing, a column of the wrong type) raise a
    :class:`SchemaError` naming the source and column. Row-level problems are left in the
    ``__reason`` column (NULL where the row is fine) for :func:`prepare` to raise or
    quarantine. Extra columns are kept as a JSON object in ``extra``.

    For one batch of a longer source (the streaming ingest), ``row_offset`` is the source
    row of the frame's first row, and ``defer_lengths=True`` leaves out the checks that
    need the whole source (vector lengths against its most common length): ``__reason``
    then holds only the checks that come before them and ``__reason_late`` those after,
    so that the store can apply them in the same order over all batches.
    """
    m = dict(mapping.items()) if mapping is not None else {}
    columns = frame.columns
    if frame.height == 0:
        raise SchemaError(f"{name}: the log has no rows.")

    obs, obs_used, _ = _vector_expr(frame, S.OBS, m, name, row_offset)
    action, act_used, discrete = _vector_expr(frame, S.ACTION, m, name, row_offset)
    next_obs, next_used, _ = _vector_expr(frame, S.NEXT_OBS, m, name, row_offset)
    for expr, canonical in ((obs, S.OBS), (action, S.ACTION)):
        if expr is None:
            raise SchemaError(
                f"{name}: required column {canonical!r} not found, as a list column or as "
                f"numbered columns ({', '.join(p + '0' for p in S.FLAT_PREFIXES[canonical])}, "
                f"...); the columns are {_preview(columns)}. Map it with {_MAP_FLAG[canonical]}."
            )
    reward_col = _find(columns, S.REWARD, m, name)
    if reward_col is None:
        raise SchemaError(
            f"{name}: required column 'reward' not found; the columns are {_preview(columns)}. "
            f"Map it with --reward-col (a column of NULLs is allowed for logs without rewards)."
        )
    rdtype = frame.schema[reward_col]
    if not (rdtype.is_numeric() or rdtype in (pl.Boolean, pl.Null)):
        raise SchemaError(
            f"{name}: column {reward_col!r} (reward) must be numeric; got {rdtype}"
            f"{_not_a_number(frame, reward_col, row_offset)}. Cast it or map another column with "
            f"--reward-col."
        )
    episode_col = _find(columns, S.EPISODE, m, name)
    step_col = _find(columns, S.STEP, m, name)
    term_col = _find(columns, S.TERMINATED, m, name)
    trunc_col = _find(columns, S.TRUNCATED, m, name)
    ts_col = _find(columns, S.TIMESTAMP, m, name)
    if step_col is not None and not frame.schema[step_col].is_integer():
        raise SchemaError(
            f"{name}: column {step_col!r} (step) must hold integers; got "
            f"{frame.schema[step_col]}{_not_a_number(frame, step_col, row_offset)}. Map integer steps "
            f"with --step-col."
        )

    _one_role_per_column(
        {
            S.EPISODE: [episode_col],
            S.STEP: [step_col],
            S.REWARD: [reward_col],
            S.TERMINATED: [term_col],
            S.TRUNCATED: [trunc_col],
            S.TIMESTAMP: [ts_col],
            S.OBS: obs_used,
            S.ACTION: act_used,
            S.NEXT_OBS: next_used,
        },
        m,
        name,
    )

    terminated = _flag_expr(frame, term_col, S.TERMINATED, name, row_offset)
    truncated = _flag_expr(frame, trunc_col, S.TRUNCATED, name, row_offset)
    if episode_col is not None:
        episode = episode_expr(frame, episode_col, name)
    elif term_col is not None or trunc_col is not None:
        # No episode ids: a new episode starts after each terminated/truncated row.
        done = (terminated | truncated).fill_null(False).cast(pl.Int64)
        episode = done.cum_sum().shift(1, fill_value=0)
    else:
        raise SchemaError(
            f"{name}: no episode column ({', '.join(S.ALIASES[S.EPISODE])}) and no "
            f"terminated/truncated flags to cut episodes by; map one with --episode-col."
        )
    used = {
        c for c in (reward_col, episode_col, step_col, term_col, trunc_col, ts_col) if c is not None
    }
    used.update(obs_used, act_used, next_used)
    extras = [c for c in columns if c not in used and not c.startswith("__")]

    timestamp = (
        _timestamp_expr(frame, ts_col, name)
        if ts_col is not None
        else pl.lit(None, pl.Datetime("us"))
    )
    value_reason = _value_reason(
        frame,
        {S.EPISODE: episode_col, S.STEP: step_col},
        ts_col,
        timestamp,
        {S.OBS: obs_used, S.ACTION: act_used, S.NEXT_OBS: next_used},
    )
    try:
        out = _select(
            frame,
            name,
            ROW,
            episode,
            obs,
            action,
            reward_col,
            next_obs,
            terminated,
            truncated,
            timestamp,
            extras,
            step_col,
            value_reason,
            row_offset,
        )
    except pl.exceptions.PolarsError as exc:
        # A value no rule above foresaw: still an error naming the source, not a traceback.
        raise SchemaError(
            f"{name}: a value cannot be converted to the log contract ({_first_line(exc)}). "
            f"Check the columns named there, or map other columns."
        ) from exc
    if step_col is None:
        out = out.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over(S.EPISODE).alias(S.STEP))
    out = out.with_columns(
        pl.lit(name).alias(SOURCE),
        pl.lit(discrete).alias("__discrete"),
        pl.lit(episode_col is None).alias("__derived_episode"),
    )
    if defer_lengths:
        return out.with_columns(_early_late_reasons(out, episode_col, step_col)).drop(_VALUE_REASON)
    return out.with_columns(_row_reasons(out, episode_col, step_col, next_obs is not None)).drop(
        _VALUE_REASON
    )


_VALUE_REASON = "__value_reason"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _one_role_per_column(
    roles: dict[str, Sequence[str | None]], mapping: dict[str, str], name: str
) -> None:
    """One source column fills one role: ``--reward-col episode_id`` is refused."""
    seen: dict[str, str] = {}
    for canonical, columns in roles.items():
        for col in columns:
            if col is None:
                continue
            other = seen.setdefault(col, canonical)
            if other != canonical:
                how = " and ".join(
                    f"{c} ({_MAP_FLAG[c]})" if c in mapping else f"{c} (found by name)"
                    for c in (other, canonical)
                )
                raise SchemaError(
                    f"{name}: column {col!r} is used for two roles: {how}. One column fills "
                    f"one role; map each role to its own column."
                )


def _value_reason(
    frame: pl.DataFrame,
    integers: dict[str, str | None],
    ts_col: str | None,
    timestamp: pl.Expr,
    vectors: dict[str, list[str]],
) -> pl.Expr:
    """Per row, the first source value that cannot become its canonical type, or NULL."""
    schema = frame.schema
    checks: list[tuple[pl.Expr, pl.Expr]] = []
    for canonical, col in integers.items():
        # Only integer columns can fall outside int64; text episode ids are kept as text.
        if col is not None and schema[col].is_integer():
            checks.append(
                (
                    pl.col(col).is_not_null() & pl.col(col).cast(pl.Int64, strict=False).is_null(),
                    pl.format(
                        f"{col} is {{}}, beyond the 64-bit signed range of {canonical}",
                        pl.col(col).cast(pl.String),
                    ),
                )
            )
    if ts_col is not None:
        given = pl.col(ts_col).is_not_null()
        if schema[ts_col].is_float():
            given = given & pl.col(ts_col).is_finite()  # NaN: no time recorded
        checks.append(
            (
                given & timestamp.is_null(),
                pl.format(
                    f"{ts_col} holds {{}}, which is not a time (Unix seconds within about "
                    f"±290,000 years, a datetime, or ISO 8601 text)",
                    pl.col(ts_col).cast(pl.String).str.slice(0, 40),
                ),
            )
        )
    for canonical, used in vectors.items():
        if len(used) == 1 and schema[used[0]] == pl.String:
            col = used[0]
            checks.append(
                (
                    pl.col(col).is_not_null() & ~pl.col(col).str.contains(JSON_VECTOR),
                    pl.format(
                        f"{_label(col, canonical)} holds {{}}, which is not a JSON array of numbers",
                        pl.col(col).str.slice(0, 40),
                    ),
                )
            )
    reason: pl.Expr = pl.lit(None, pl.String)
    for cond, text in reversed(checks):
        reason = pl.when(cond.fill_null(False)).then(text).otherwise(reason)
    return reason.alias(_VALUE_REASON)


def _label(col: str, canonical: str) -> str:
    return col if col == canonical else f"{col} ({canonical})"


def _holds(dtype: Any, kinds: tuple[Any, ...]) -> bool:
    if any(dtype == k for k in kinds):
        return True
    if isinstance(dtype, pl.List | pl.Array):
        return _holds(dtype.inner, kinds)
    if isinstance(dtype, pl.Struct):
        return any(_holds(f.dtype, kinds) for f in dtype.fields)
    return False


def _json_fields(frame: pl.DataFrame, columns: Sequence[str], name: str | None) -> list[pl.Expr]:
    """The columns as JSON-encodable expressions: binary as base64 text.

    Polars panics when it meets binary inside JSON, and cannot encode Python objects.
    With ``name`` (the ``extra`` column of a source) a nested one is an error naming the
    column; without (the record of a rejected row) it is replaced by a placeholder.
    """
    schema = frame.schema
    out = []
    for col in columns:
        dtype = schema[col]
        if dtype == pl.Binary:
            out.append(pl.col(col).bin.encode("base64"))
        elif _holds(dtype, (pl.Binary, pl.Object)):
            if name is not None:
                raise SchemaError(
                    f"{name}: column {col!r} ({dtype}) holds binary data or Python objects "
                    f"inside lists or structs, which the JSON column 'extra' cannot keep. "
                    f"Drop the column or convert it to text or numbers."
                )
            out.append(pl.lit(f"<{dtype}>").alias(col))
        else:
            out.append(pl.col(col))
    return out


def _select(
    frame: pl.DataFrame,
    name: str,
    row: str,
    episode: pl.Expr,
    obs: pl.Expr | None,
    action: pl.Expr | None,
    reward_col: str,
    next_obs: pl.Expr | None,
    terminated: pl.Expr,
    truncated: pl.Expr,
    timestamp: pl.Expr,
    extras: list[str],
    step_col: str | None,
    value_reason: pl.Expr,
    row_offset: int = 0,
) -> pl.DataFrame:
    return frame.select(
        (pl.int_range(pl.len(), dtype=pl.Int64) + row_offset).alias(row),
        episode.alias(S.EPISODE),
        obs.alias(S.OBS),  # type: ignore[union-attr]
        action.alias(S.ACTION),  # type: ignore[union-attr]
        pl.col(reward_col).cast(pl.Float64).alias(S.REWARD),
        (next_obs if next_obs is not None else pl.lit(None, pl.List(pl.Float32))).alias(S.NEXT_OBS),
        terminated.alias(S.TERMINATED),
        truncated.alias(S.TRUNCATED),
        timestamp.alias(S.TIMESTAMP),
        (
            pl.struct(_json_fields(frame, extras, name)).struct.json_encode()
            if extras
            else pl.lit(None, pl.String)
        ).alias(S.EXTRA),
        (
            pl.col(step_col).cast(pl.Int64, strict=False)
            if step_col is not None
            else pl.lit(None, pl.Int64)
        ).alias(S.STEP),
        value_reason,
    )


def episode_expr(frame: pl.DataFrame, col: str, name: str) -> pl.Expr:
    """Episode ids as the store takes them: integers (Int64), or text (String).

    Text ids (``"run-a/ep-17"``, UUIDs) are kept as the user wrote them; the store maps
    them to integer keys inside. UUIDs stored as 16-byte binary (Arrow's ``uuid`` type)
    become their canonical text form.
    """
    dtype = frame.schema[col]
    if dtype.is_integer():
        # Ids beyond int64 (UInt64 >= 2**63) become NULL, then a row error (_value_reason).
        return pl.col(col).cast(pl.Int64, strict=False)
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return pl.col(col).cast(pl.String)
    if dtype == pl.Binary:
        values = frame[col].drop_nulls()
        if values.len() and bool((values.bin.size() == 16).all()):
            hexed = pl.col(col).bin.encode("hex")
            return pl.concat_str(
                [hexed.str.slice(a, b - a) for a, b in ((0, 8), (8, 12), (12, 16), (16, 20))]
                + [hexed.str.slice(20, 12)],
                separator="-",
            )
    raise SchemaError(
        f"{name}: column {col!r} (episode_id) must hold integers or text ids (such as "
        f"'run-a/ep-17' or a UUID); got {dtype}. Cast it, or map another column with "
        f"--episode-col."
    )


def _row_reasons(
    out: pl.DataFrame, episode_col: str | None, step_col: str | None, has_next: bool
) -> pl.Expr:
    """One text per row saying what is wrong with it, or NULL."""
    obs_len = _mode_len(out, S.OBS)
    act_len = _mode_len(out, S.ACTION)
    checks: list[tuple[pl.Expr, pl.Expr]] = [
        (pl.col(_VALUE_REASON).is_not_null(), pl.col(_VALUE_REASON)),
        (pl.col(S.EPISODE).is_null(), pl.lit(f"{episode_col or S.EPISODE} is null")),
        (pl.col(S.STEP).is_null(), pl.lit(f"{step_col or S.STEP} is null")),
        (pl.col(S.OBS).is_null(), pl.lit("obs is null")),
        (pl.col(S.ACTION).is_null(), pl.lit("action is null")),
        (
            pl.col(S.OBS).list.len() != obs_len,
            pl.format("obs has {} values; expected {}", pl.col(S.OBS).list.len(), pl.lit(obs_len)),
        ),
        (
            pl.col(S.ACTION).list.len() != act_len,
            pl.format(
                "action has {} values; expected {}", pl.col(S.ACTION).list.len(), pl.lit(act_len)
            ),
        ),
        (pl.col(S.TERMINATED).is_null(), pl.lit("terminated is null or not true/false")),
        (pl.col(S.TRUNCATED).is_null(), pl.lit("truncated is null or not true/false")),
    ]
    if has_next:
        checks.append(
            (
                pl.col(S.NEXT_OBS).list.len() != obs_len,
                pl.format(
                    "next_obs has {} values; expected {} like obs",
                    pl.col(S.NEXT_OBS).list.len(),
                    pl.lit(obs_len),
                ),
            )
        )
    reason: pl.Expr = pl.lit(None, pl.String)
    for cond, text in reversed(checks):
        reason = pl.when(cond.fill_null(False)).then(text).otherwise(reason)
    return reason.alias(REASON)


REASON_LATE = "__reason_late"
"""With ``normalize(defer_lengths=True)``: the row checks that come after the length checks."""


def _early_late_reasons(
    out: pl.DataFrame, episode_col: str | None, step_col: str | None
) -> list[pl.Expr]:
    """:func:`_row_reasons` split around its length checks, which need the whole source."""
    early: list[tuple[pl.Expr, pl.Expr]] = [
        (pl.col(_VALUE_REASON).is_not_null(), pl.col(_VALUE_REASON)),
        (pl.col(S.EPISODE).is_null(), pl.lit(f"{episode_col or S.EPISODE} is null")),
        (pl.col(S.STEP).is_null(), pl.lit(f"{step_col or S.STEP} is null")),
        (pl.col(S.OBS).is_null(), pl.lit("obs is null")),
        (pl.col(S.ACTION).is_null(), pl.lit("action is null")),
    ]
    late: list[tuple[pl.Expr, pl.Expr]] = [
        (pl.col(S.TERMINATED).is_null(), pl.lit("terminated is null or not true/false")),
        (pl.col(S.TRUNCATED).is_null(), pl.lit("truncated is null or not true/false")),
    ]
    out_exprs = []
    for checks, alias in ((early, REASON), (late, REASON_LATE)):
        reason: pl.Expr = pl.lit(None, pl.String)
        for cond, text in reversed(checks):
            reason = pl.when(cond.fill_null(False)).then(text).otherwise(reason)
        out_exprs.append(reason.alias(alias))
    return out_exprs


def _mode_len(frame: pl.DataFrame, col: str) -> int:
    lengths = frame.select(pl.col(col).list.len().drop_nulls().mode().min()).item()
    return int(lengths) if lengths is not None else 0


# --------------------------------------------------------------------------- prepare


def prepare(
    sources: Iterable[Source],
    mapping: S.ColumnMapping | None = None,
    on_error: OnError = "raise",
    expected_dims: tuple[int, int] | None = None,
) -> PreparedLog:
    """Read, normalize and check every source of one ingest.

    Parameters
    ----------
    sources
        Files, globs, folders, or in-memory tables.
    mapping
        Where the canonical columns are found (see :class:`rmlite.data.schema.ColumnMapping`).
    on_error
        ``"raise"``: the first bad row stops the ingest with an error naming it.
        ``"quarantine"``: bad rows are returned in ``rejected`` with the reason.
    expected_dims
        (obs_dim, action_dim) of the dataset already in the store, if any.
    """
    if on_error not in ("raise", "quarantine"):
        raise ValueError(
            f"The 'on_error' parameter must be 'raise' or 'quarantine'. Got {on_error!r} instead."
        )
    parts: list[pl.DataFrame] = []
    raws: dict[str, pl.DataFrame] = {}
    names: list[str] = []
    next_episode = 0
    for src in expand_sources(sources):
        name, raw = read_source(src)
        if name in raws:  # two in-memory tables: keep names unique for error messages
            name = f"{name}#{len(names)}"
        names.append(name)
        raws[name] = raw
        part = normalize(raw, name, mapping)
        if part["__derived_episode"][0]:
            # Episodes cut by flags are numbered from 0 in each file: continue the count.
            part = part.with_columns(pl.col(S.EPISODE) + next_episode)
            next_episode = int(part[S.EPISODE].max()) + 1  # type: ignore[arg-type]
        parts.append(part.drop("__derived_episode"))

    kinds = {str(p[S.EPISODE].dtype): n for p, n in zip(parts, names, strict=True)}
    if len(kinds) > 1:
        text, integer = kinds["String"], kinds["Int64"]
        raise SchemaError(
            f"{text} names episodes by text ids, {integer} by integers: a dataset is keyed "
            f"one way or the other. Ingest them into separate datasets, or make the ids one "
            f"kind. Nothing was written."
        )
    frame = pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]
    rows_read = frame.height
    discrete = bool(frame["__discrete"].all())
    frame = frame.drop("__discrete")

    # Dimensions: the dataset's, when it exists; else the most common length in the log.
    obs_dim, act_dim = expected_dims or (_mode_len(frame, S.OBS), _mode_len(frame, S.ACTION))
    # Checked for a new dataset too: each file passed its own length check, but files of
    # one ingest may still disagree with each other.
    frame = frame.with_columns(
        pl.when(pl.col(REASON).is_null() & (pl.col(S.OBS).list.len() != obs_dim))
        .then(
            pl.format(
                "obs has {} values; the dataset has {}", pl.col(S.OBS).list.len(), pl.lit(obs_dim)
            )
        )
        .when(pl.col(REASON).is_null() & (pl.col(S.ACTION).list.len() != act_dim))
        .then(
            pl.format(
                "action has {} values; the dataset has {}",
                pl.col(S.ACTION).list.len(),
                pl.lit(act_dim),
            )
        )
        .otherwise(pl.col(REASON))
        .alias(REASON)
    )
    # A key twice in one ingest (inside one file or across files) is ambiguous: reject all.
    dup = pl.struct(S.EPISODE, S.STEP).is_duplicated() & pl.col(S.EPISODE).is_not_null()
    frame = frame.with_columns(
        pl.when(pl.col(REASON).is_null() & dup)
        .then(
            pl.format(
                "duplicate step: episode {} step {} appears more than once",
                pl.col(S.EPISODE),
                pl.col(S.STEP),
            )
        )
        .otherwise(pl.col(REASON))
        .alias(REASON)
    )

    bad = frame.filter(pl.col(REASON).is_not_null())
    if bad.height and on_error == "raise":
        first = bad.row(0, named=True)
        more = f" ({bad.height - 1} more bad rows)" if bad.height > 1 else ""
        raise IngestError(
            f"{first[SOURCE]}: row {first[ROW]}: {first[REASON]}{more}. Fix the log, map other "
            f"columns, or pass --on-error quarantine to land the good rows and keep the bad "
            f"ones in the 'rejected' table. Nothing was written."
        )
    rejected = _rejected_records(bad, raws)
    frame = frame.filter(pl.col(REASON).is_null()).drop(REASON)
    if frame.height == 0:
        raise IngestError(
            f"{', '.join(names)}: no valid rows remain ({rows_read} read, all rejected). "
            f"Nothing was written."
        )
    frame = frame.sort(S.EPISODE, S.STEP)

    derived = bool(frame[S.NEXT_OBS].null_count() == frame.height)
    if derived:
        # next_obs is the obs of the following step of the same episode; the last step of
        # an episode (and any step before a gap) has none, and is left NULL, not invented.
        follows = (pl.col(S.EPISODE).shift(-1) == pl.col(S.EPISODE)) & (
            pl.col(S.STEP).shift(-1) == pl.col(S.STEP) + 1
        )
        frame = frame.with_columns(
            pl.when(follows.fill_null(False))
            .then(pl.col(S.OBS).shift(-1))
            .otherwise(None)
            .alias(S.NEXT_OBS)
        )
    warnings = _infinity_warnings(frame)
    if not any(
        _has(raw, S.TERMINATED, mapping) or _has(raw, S.TRUNCATED, mapping) for raw in raws.values()
    ):
        warnings.append(NO_FLAGS_WARNING)
    return PreparedLog(
        frame=frame,
        rejected=rejected,
        sources=names,
        rows_read=rows_read,
        obs_dim=obs_dim,
        action_dim=act_dim,
        action_discrete=discrete,
        next_obs_derived=derived,
        warnings=warnings,
    )


def _infinity_warnings(frame: pl.DataFrame) -> list[str]:
    """Vectors are stored as float32: a value beyond ±3.4e38 (a float64 1e308) becomes
    ±inf. That is kept, as the log's own infinities are, but said aloud."""
    out = []
    for col in S.VECTOR_COLUMNS:
        values = pl.col(col)
        infinite = (values.list.max().is_infinite() | values.list.min().is_infinite()).fill_null(
            False
        )
        found = frame.select(
            infinite.sum().alias("count"), infinite.arg_true().first().alias("first")
        ).row(0)
        if found[0]:
            first = frame.row(int(found[1]), named=True)
            out.append(infinity_warning(col, found[0], first[SOURCE], first[ROW]))
    return out


def infinity_warning(col: str, rows: int, source: str, row: int) -> str:
    """The warning for a vector column that holds ±inf in ``rows`` rows."""
    return (
        f"{col} holds ±inf in {rows:,} rows (first: {source} row {row}): values beyond "
        f"float32's ±3.4e38 are stored as inf. rmlite check counts them; features treat "
        f"them as missing."
    )


NO_FLAGS_WARNING = "no terminated/truncated columns: both were set to false"


def _has(raw: pl.DataFrame, canonical: str, mapping: S.ColumnMapping | None) -> bool:
    m = dict(mapping.items()) if mapping is not None else {}
    try:
        return _find(raw.columns, canonical, m, "") is not None
    except SchemaError:
        return False


def _rejected_records(bad: pl.DataFrame, raws: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The rejected rows as (source, row, reason, record JSON of the original row)."""
    out = []
    for name, rows in bad.group_by(SOURCE, maintain_order=True):
        source = str(name[0])
        raw = raws[source]
        idx = rows[ROW]
        original = raw[idx.to_list()] if raw.width else raw
        records = original.select(
            pl.struct(_json_fields(original, original.columns, None))
            .struct.json_encode()
            .alias("record")
        )
        out.append(
            pl.DataFrame(
                {
                    "source": [source] * rows.height,
                    "row": idx,
                    "reason": rows[REASON],
                    "record": records["record"],
                },
                schema={
                    "source": pl.String,
                    "row": pl.Int64,
                    "reason": pl.String,
                    "record": pl.String,
                },
            )
        )
    if not out:
        return pl.DataFrame(
            schema={"source": pl.String, "row": pl.Int64, "reason": pl.String, "record": pl.String}
        )
    return pl.concat(out)


def canonical_arrow(frame: pl.DataFrame, dataset: str, ingest_id: int) -> pa.Table:
    """The prepared frame as the Arrow table the store inserts, in column order."""
    cols: list[Any] = [pl.lit(dataset).alias(S.DATASET)]
    cols += [pl.col(c) for c in S.COLUMNS if c != S.DATASET]
    cols += [
        pl.col(SOURCE).alias("source"),
        pl.col(ROW).alias("source_row"),
        pl.lit(ingest_id, pl.Int64).alias("ingest_id"),
    ]
    return frame.select(cols).to_arrow()


# ------------------------------------------------------------------------- streaming

STAGE_COLUMNS: tuple[str, ...] = (
    "source_idx",
    "source",
    "source_row",
    S.EPISODE,
    S.STEP,
    S.OBS,
    S.ACTION,
    S.REWARD,
    S.NEXT_OBS,
    S.TERMINATED,
    S.TRUNCATED,
    S.TIMESTAMP,
    S.EXTRA,
    "reason",
    "reason_late",
    "record",
)
"""The columns of one batch as the streaming ingest stages it (see :class:`LogStream`)."""


@dataclass
class LogStream:
    """The sources of one ingest, read, normalized and checked batch by batch.

    Iterating yields one Arrow table per batch with :data:`STAGE_COLUMNS`; at most one
    batch is held at a time. The checks that look at one row run here (with
    :func:`normalize`, as :func:`prepare` runs them); the ones that look across rows
    (vector lengths against each source's most common length and the dataset's, duplicate
    keys, next_obs from the following step) are left to the store, which sees every
    batch: ``reason`` holds the row checks that come before the length checks,
    ``reason_late`` those after.

    Episodes cut by terminated/truncated flags, and steps of a source without a step
    column, are numbered across batches (and files) as :func:`prepare` numbers them: the
    count carried from batch to batch is one row per episode, not per transition. ``record`` holds the original record (JSON) of the rows
    that a check here refused or whose vector lengths stand out in their batch: the rows
    the store may reject later; any other row the store rejects is reported with its
    canonical record instead, which saves a second read of the source.

    The attributes describe what was read so far, and the whole log once iteration ends.
    """

    sources: Sequence[Source]
    mapping: S.ColumnMapping | None = None
    batch_rows: int = 65_536
    expected_dims: tuple[int, int] | None = None
    names: list[str] = field(default_factory=list)
    rows_read: int = 0
    action_discrete: bool = True
    has_flags: bool = False
    text_ids: bool | None = None
    obs_lengths: list[dict[int, int]] = field(default_factory=list)
    action_lengths: list[dict[int, int]] = field(default_factory=list)

    def modes(self) -> tuple[list[int], list[int]]:
        """Each source's most common obs and action length (ties: the shorter; 0 when
        none), as :func:`normalize` finds them in a whole source."""
        return (
            [_mode(counts) for counts in self.obs_lengths],
            [_mode(counts) for counts in self.action_lengths],
        )

    def log_modes(self) -> tuple[int, int]:
        """The most common obs and action length over every source."""
        totals = []
        for per_source in (self.obs_lengths, self.action_lengths):
            total: dict[int, int] = {}
            for counts in per_source:
                for length, n in counts.items():
                    total[length] = total.get(length, 0) + n
            totals.append(_mode(total))
        return totals[0], totals[1]

    def __iter__(self) -> Iterator[pa.Table]:
        next_episode = 0
        kinds: dict[bool, str] = {}
        for index, src in enumerate(expand_sources(self.sources)):
            name = source_name(src)
            if name in self.names:  # two in-memory tables: keep names unique for errors
                name = f"{name}#{len(self.names)}"
            self.names.append(name)
            self.obs_lengths.append({})
            self.action_lengths.append({})
            rows = 0
            done_before = 0  # rows of this file ending an episode, in earlier batches
            last_episode: int | None = None
            steps_before: pl.DataFrame | None = None  # rows per episode in earlier batches
            for raw in read_batches(src, self.batch_rows):
                if raw.height == 0:
                    continue
                if rows == 0:
                    self.has_flags = self.has_flags or any(
                        _has(raw, flag, self.mapping) for flag in (S.TERMINATED, S.TRUNCATED)
                    )
                part = normalize(raw, name, self.mapping, row_offset=rows, defer_lengths=True)
                if part["__derived_episode"][0]:
                    # normalize numbers flag-cut episodes from 0 in each batch; prepare from
                    # 0 in each file, continuing after the previous file's last episode.
                    part = part.with_columns(pl.col(S.EPISODE) + next_episode + done_before)
                    done = (pl.col(S.TERMINATED) | pl.col(S.TRUNCATED)).fill_null(False)
                    done_before += int(part.select(done.sum()).item())
                    last_episode = int(part[S.EPISODE][-1])
                text = part.schema[S.EPISODE] == pl.String
                kinds[text] = name
                if len(kinds) > 1:
                    raise SchemaError(
                        f"{kinds[True]} names episodes by text ids, {kinds[False]} by "
                        f"integers: a dataset is keyed one way or the other. Ingest them into "
                        f"separate datasets, or make the ids one kind. Nothing was written."
                    )
                self.text_ids = text
                self.action_discrete = self.action_discrete and bool(part["__discrete"][0])
                if _find(raw.columns, S.STEP, _mapping_dict(self.mapping), name) is None:
                    part, steps_before = _continue_steps(part, steps_before)
                rows += raw.height
                self.rows_read += raw.height
                yield self._stage(part, raw, index)
            if rows == 0:
                raise SchemaError(f"{name}: the log has no rows.")
            if last_episode is not None:
                next_episode = last_episode + 1

    def _stage(self, part: pl.DataFrame, raw: pl.DataFrame, index: int) -> pa.Table:
        for col, counts in (
            (S.OBS, self.obs_lengths[index]),
            (S.ACTION, self.action_lengths[index]),
        ):
            lengths = part.select(pl.col(col).list.len().drop_nulls().value_counts()).unnest(col)
            for length, n in lengths.iter_rows():
                counts[int(length)] = counts.get(int(length), 0) + int(n)
        usual = [(_mode(self.obs_lengths[index]), _mode(self.action_lengths[index]))]
        if self.expected_dims is not None:
            usual.append(self.expected_dims)
        records = _suspect_records(part, raw, usual)
        return part.select(
            pl.lit(index, pl.Int32).alias("source_idx"),
            pl.col(SOURCE).alias("source"),
            pl.col(ROW).alias("source_row"),
            pl.col(S.EPISODE),
            pl.col(S.STEP),
            pl.col(S.OBS),
            pl.col(S.ACTION),
            pl.col(S.REWARD),
            pl.col(S.NEXT_OBS),
            pl.col(S.TERMINATED),
            pl.col(S.TRUNCATED),
            pl.col(S.TIMESTAMP),
            pl.col(S.EXTRA),
            pl.col(REASON).alias("reason"),
            pl.col(REASON_LATE).alias("reason_late"),
            records.alias("record"),
        ).to_arrow()


def _continue_steps(
    part: pl.DataFrame, before: pl.DataFrame | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Steps numbered per episode in one batch (by :func:`normalize`), continued from the
    rows each episode had in earlier batches; returns the batch and the new counts."""
    if before is not None:
        part = part.join(before, on=S.EPISODE, how="left", maintain_order="left").with_columns(
            pl.col(S.STEP) + pl.col("__before").fill_null(0)
        )
        part = part.drop("__before")
    counts = part.group_by(S.EPISODE).agg(pl.len().cast(pl.Int64).alias("__before"))
    if before is not None:
        counts = pl.concat([before, counts]).group_by(S.EPISODE).agg(pl.col("__before").sum())
    return part, counts


def _mode(counts: dict[int, int]) -> int:
    if not counts:
        return 0
    top = max(counts.values())
    return min(length for length, n in counts.items() if n == top)


def _mapping_dict(mapping: S.ColumnMapping | None) -> dict[str, str]:
    return dict(mapping.items()) if mapping is not None else {}


def _suspect_records(
    part: pl.DataFrame, raw: pl.DataFrame, usual: list[tuple[int, int]]
) -> pl.Series:
    """The original record (JSON) of each row a later check may reject, NULL elsewhere.

    ``usual``: (obs, action) lengths besides the batch's most common ones that a row
    must match not to be a suspect (the source's most common so far, the dataset's).
    """
    obs_len, act_len = pl.col(S.OBS).list.len(), pl.col(S.ACTION).list.len()
    suspect = pl.col(REASON).is_not_null() | pl.col(REASON_LATE).is_not_null()
    for obs_dim, act_dim in [(_mode_len(part, S.OBS), _mode_len(part, S.ACTION)), *usual]:
        suspect = (
            suspect
            | (obs_len != obs_dim).fill_null(False)
            | (act_len != act_dim).fill_null(False)
            | (pl.col(S.NEXT_OBS).list.len() != obs_dim).fill_null(False)
        )
    rows = part.select(suspect.arg_true()).to_series()
    out = pl.Series("record", [None] * part.height, dtype=pl.String)
    if rows.len() == 0:
        return out
    original = raw[rows.to_list()] if raw.width else raw
    records = original.select(
        pl.struct(_json_fields(original, original.columns, None)).struct.json_encode()
    ).to_series()
    return out.scatter(rows, records)
