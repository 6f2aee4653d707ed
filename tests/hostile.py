"""Hostile input for the data side: Hypothesis strategies for malformed logs and preference
files, a digest of a store's logical contents, and the Hypothesis profiles.

Every case is a file (bytes) plus the extra ``rmlite`` arguments it needs and a regular
expression its error message must match (``None``: it must be accepted, with the warning
``warn`` when given). The property that ``tests/test_hostile_data.py`` checks for each:
exit code 0 or 2, never 1 or a signal; a message naming what was wrong; the store's
logical contents unchanged when the command failed.

``RMLITE_FUZZ=1`` (set by ``pytest -m fuzz``, see ``conftest.py``) selects the long profile.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import duckdb
import numpy as np
import polars as pl
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = os.environ.get("RMLITE_FUZZ", "") not in ("", "0")

settings.register_profile(
    "rmlite-hostile",
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "rmlite-fuzz",
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = settings.get_profile("rmlite-fuzz" if FUZZ else "rmlite-hostile")
"""The settings the hostile property tests run with."""


# --------------------------------------------------------------------------- the store


def store_digest(path: str | os.PathLike[str]) -> dict[str, tuple[int, int]]:
    """Row count and an order-independent hash of every table of a store file.

    The hash is the sum of DuckDB's hash of each whole row, so it does not depend on the
    order rows are stored in, and changes when any value of any row does. A missing file
    digests as ``{}``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return {}
    con = duckdb.connect(path, read_only=True)
    try:
        # Base tables only: the per-dataset views (schema "data") and the legacy views show
        # the same rows again.
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal "
            "ORDER BY schema_name, table_name"
        ).fetchall()
        out = {}
        for schema, table in tables:
            # Names come from the catalog, not from input.
            n, h = con.execute(
                f'SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0) FROM "{schema}"."{table}" AS t'
            ).fetchall()[0]
            out[table if schema == "main" else f"{schema}.{table}"] = (int(n), int(h))
        return out
    finally:
        con.close()


# ------------------------------------------------------------------------- a good log


def good_log(episodes: int = 2, steps: int = 4, obs_dim: int = 2) -> pl.DataFrame:
    """A small valid log: list columns, episode ids 0.., the last step of each terminated."""
    n = episodes * steps
    rng = np.random.default_rng(0)
    return pl.DataFrame(
        {
            "episode_id": np.repeat(np.arange(episodes), steps),
            "step": np.tile(np.arange(steps), episodes),
            "obs": rng.normal(size=(n, obs_dim)).round(3).tolist(),
            "action": rng.integers(0, 2, size=n),
            "reward": rng.normal(size=n).round(3),
            "terminated": np.tile(np.arange(steps) == steps - 1, episodes),
        }
    )


def _flat(log: pl.DataFrame) -> pl.DataFrame:
    obs = np.array(log["obs"].to_list())
    return log.drop("obs").with_columns(
        [pl.Series(f"obs_{i}", obs[:, i]) for i in range(obs.shape[1])]
    )


def _json_text(column: str) -> pl.Expr:
    """A list column as JSON array text, as CSV logs carry vectors."""
    return pl.format("[{}]", pl.col(column).cast(pl.List(pl.String)).list.join(", ")).alias(column)


def _csv(frame: pl.DataFrame) -> bytes:
    lists = [c for c, t in frame.schema.items() if isinstance(t, pl.List)]
    return frame.with_columns(_json_text(c) for c in lists).write_csv().encode()


def _parquet(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


def _jsonl(frame: pl.DataFrame) -> bytes:
    return frame.write_ndjson().encode()


@dataclass(frozen=True)
class Case:
    """One hostile input: a file, the arguments that go with it, what must be said."""

    kind: str
    filename: str
    content: bytes = field(repr=False)
    args: tuple[str, ...] = ()
    expect: str | None = None
    """Regex the error message must match; None: the command must succeed."""
    warn: str | None = None
    """Regex a warning on stderr must match (for inputs accepted with a word)."""
    dataset: str = "hostile"
    meta: dict[str, object] = field(default_factory=dict, compare=False)


# ------------------------------------------------------------- strategies: transition logs

_rows = st.integers(min_value=0, max_value=7)


@st.composite
def _u64_episode(draw: st.DrawFn) -> Case:
    row = draw(_rows)
    big = draw(st.integers(min_value=2**63, max_value=2**64 - 1))
    log = good_log()
    ids = log["episode_id"].cast(pl.UInt64).scatter(row, big)
    log = log.with_columns(ids)
    return Case(
        "u64 episode id",
        "log.parquet",
        _parquet(log),
        expect=rf"row {row}: episode_id is {big}, beyond the 64-bit",
    )


@st.composite
def _huge_timestamp(draw: st.DrawFn) -> Case:
    row = draw(_rows)
    value = draw(
        st.one_of(
            st.floats(min_value=1e14, max_value=1e308), st.floats(min_value=-1e308, max_value=-1e14)
        )
    )
    log = good_log().with_columns(
        pl.Series("timestamp", [1.7e9 + i for i in range(8)]).scatter(row, value)
    )
    return Case(
        "timestamp out of range",
        "log.parquet",
        _parquet(log),
        expect=rf"row {row}: timestamp holds .*, which is not a time",
    )


@st.composite
def _garbage_timestamp(draw: st.DrawFn) -> Case:
    row = draw(_rows)
    text = draw(st.text(alphabet="abcxyz!?# ", min_size=1, max_size=12).filter(str.strip))
    stamps = ["2024-01-01T00:00:0" + str(i) for i in range(8)]
    stamps[row] = text
    log = good_log().with_columns(pl.Series("timestamp", stamps))
    fmt = draw(st.sampled_from(["parquet", "csv"]))
    content = _parquet(log) if fmt == "parquet" else _csv(log)
    return Case(
        "unparseable timestamp",
        f"log.{fmt}",
        content,
        expect=rf"row {row}: timestamp holds .*, which is not a time",
    )


@st.composite
def _bad_json_vector(draw: st.DrawFn) -> Case:
    row = draw(_rows)
    broken = draw(st.sampled_from(["[1, 2", "1, 2]", "[a, b]", "[1,,2]", "{}", "[[1]]", "[NaN]"]))
    log = good_log()
    text = log.select(_json_text("obs"))["obs"].scatter(row, broken)
    content = _csv(log.with_columns(text))
    return Case(
        "malformed JSON vector",
        "log.csv",
        content,
        expect=rf"row {row}: obs holds .*not a JSON array of numbers",
    )


@st.composite
def _text_in_numbers(draw: st.DrawFn) -> Case:
    row = draw(_rows)
    word = draw(st.sampled_from(["abc", "n/a", "1.2.3", "--", "x1"]))
    col = draw(st.sampled_from(["reward", "obs_0", "obs_1", "step"]))
    log = _flat(good_log()).with_columns(pl.all().cast(pl.String))
    log = log.with_columns(log[col].scatter(row, word))
    return Case(
        "text in a numeric column",
        "log.csv",
        log.write_csv().encode(),
        expect=rf"column '{col}'.*row {row} holds '{word}'",
    )


@st.composite
def _broken_jsonl_line(draw: st.DrawFn) -> Case:
    line = draw(st.integers(min_value=1, max_value=8))
    how = draw(st.sampled_from(["truncate", "garbage", "array"]))
    lines = _jsonl(good_log()).decode().splitlines()
    if how == "truncate":
        lines[line - 1] = lines[line - 1][:-3]
    elif how == "garbage":
        lines[line - 1] = "not json at all"
    else:
        lines[line - 1] = "[1, 2, 3]"
    return Case(
        "broken JSON Lines line",
        "log.jsonl",
        ("\n".join(lines) + "\n").encode(),
        expect=rf"line {line} (is not valid JSON|holds a JSON list)",
    )


@st.composite
def _binary_extra(draw: st.DrawFn) -> Case:
    blobs = draw(st.lists(st.binary(max_size=16), min_size=8, max_size=8))
    log = good_log().with_columns(pl.Series("payload", blobs, dtype=pl.Binary))
    return Case("binary extra column", "log.parquet", _parquet(log), meta={"blobs": blobs})


@st.composite
def _two_roles(draw: st.DrawFn) -> Case:
    flag, col = draw(
        st.sampled_from(
            [
                ("--reward-col", "episode_id"),
                ("--reward-col", "step"),
                ("--step-col", "episode_id"),
                ("--episode-col", "step"),
                ("--terminated-col", "reward"),
                ("--timestamp-col", "reward"),
            ]
        )
    )
    return Case(
        "one column, two roles",
        "log.parquet",
        _parquet(good_log()),
        args=(flag, col),
        expect=rf"column '{col}' is used for two roles",
    )


@st.composite
def _control_name(draw: st.DrawFn) -> Case:
    bad = draw(st.characters(categories=["Cc", "Zl", "Zp"]))
    name = draw(st.text(alphabet="abc", min_size=1, max_size=3)) + bad + "x"
    return Case(
        "control character in the dataset name",
        "log.parquet",
        _parquet(good_log()),
        dataset=name,
        expect=r"dataset name .* holds a control character",
    )


@st.composite
def _float32_overflow(draw: st.DrawFn) -> Case:
    row = draw(_rows)
    value = draw(st.floats(min_value=3.5e38, max_value=1e308))
    log = good_log()
    obs = np.array(log["obs"].to_list())
    obs[row, 0] = value
    log = log.with_columns(pl.Series("obs", obs.tolist(), dtype=pl.List(pl.Float64)))
    return Case(
        "float64 beyond float32",
        "log.parquet",
        _parquet(log),
        warn=rf"obs holds ±inf in 1 rows \(first: .*log\.parquet row {row}\)",
    )


def hostile_logs() -> st.SearchStrategy[Case]:
    """A malformed (or merely surprising) transition log, one kind of fault at a time."""
    return st.one_of(
        _u64_episode(),
        _huge_timestamp(),
        _garbage_timestamp(),
        _bad_json_vector(),
        _text_in_numbers(),
        _broken_jsonl_line(),
        _binary_extra(),
        _two_roles(),
        _control_name(),
        _float32_overflow(),
    )


# ------------------------------------------------------------ strategies: preference files


def good_preferences() -> pl.DataFrame:
    """Pairs of segments of :func:`good_log`'s two episodes of 4 steps."""
    return pl.DataFrame(
        {
            "episode_a": [0, 1, 0],
            "start_a": [0, 0, 1],
            "stop_a": [2, 3, 3],
            "episode_b": [1, 0, 1],
            "start_b": [1, 2, 0],
            "stop_b": [3, 4, 2],
            "label": [1.0, 0.0, 0.5],
        }
    )


_bound_cols = st.sampled_from(["episode_a", "start_a", "stop_a", "episode_b", "start_b", "stop_b"])
_pref_rows = st.integers(min_value=0, max_value=2)


@st.composite
def _bad_bound(draw: st.DrawFn) -> Case:
    row, col = draw(_pref_rows), draw(_bound_cols)
    value = draw(
        st.one_of(
            st.sampled_from([float("inf"), float("-inf"), float("nan")]),
            st.floats(min_value=1e19, max_value=1e308),
            st.floats(min_value=0.1, max_value=0.9).map(lambda f: 1 + f),
        )
    )
    prefs = good_preferences().with_columns(pl.col(col).cast(pl.Float64))
    prefs = prefs.with_columns(prefs[col].scatter(row, value))
    return Case(
        "non-integer segment bound",
        "prefs.parquet",
        _parquet(prefs),
        expect=rf"row {row}: {col} is .*; it must be a whole number",
    )


@st.composite
def _u64_bound(draw: st.DrawFn) -> Case:
    row, col = draw(_pref_rows), draw(_bound_cols)
    big = draw(st.integers(min_value=2**63, max_value=2**64 - 1))
    prefs = good_preferences().with_columns(pl.col(col).cast(pl.UInt64))
    prefs = prefs.with_columns(prefs[col].scatter(row, big))
    return Case(
        "u64 segment bound",
        "prefs.parquet",
        _parquet(prefs),
        expect=rf"row {row}: {col} is {big}; it must be a whole number",
    )


@st.composite
def _self_comparison(draw: st.DrawFn) -> Case:
    row = draw(_pref_rows)
    prefs = good_preferences()
    for side in ("episode", "start", "stop"):
        prefs = prefs.with_columns(prefs[f"{side}_b"].scatter(row, prefs[f"{side}_a"][row]))
    return Case(
        "segment compared with itself",
        "prefs.parquet",
        _parquet(prefs),
        expect=rf"row {row}: segment A and segment B are the same steps",
    )


@st.composite
def _contradiction(draw: st.DrawFn) -> Case:
    label = draw(st.floats(min_value=0.6, max_value=1.0))
    reverse = draw(st.floats(min_value=0.6, max_value=1.0))
    annotator = draw(st.sampled_from(["", "ann"]))
    prefs = pl.DataFrame(
        {
            "episode_a": [0, 1],
            "start_a": [1, 0],
            "stop_a": [3, 2],
            "episode_b": [1, 0],
            "start_b": [0, 1],
            "stop_b": [2, 3],
            "label": [label, reverse],
            "annotator": [annotator, annotator],
        }
    )
    return Case(
        "contradictory judgements",
        "prefs.parquet",
        _parquet(prefs),
        warn=r"1 pair\(s\) judged both ways by one annotator disagree",
    )


@st.composite
def _pref_timestamp(draw: st.DrawFn) -> Case:
    row = draw(_pref_rows)
    stamps: list[object] = [1.7e9, 1.7e9 + 1, 1.7e9 + 2]
    stamps[row] = draw(st.floats(min_value=1e14, max_value=1e308))
    prefs = good_preferences().with_columns(pl.Series("timestamp", stamps, dtype=pl.Float64))
    return Case(
        "preference timestamp out of range",
        "prefs.parquet",
        _parquet(prefs),
        expect=rf"row {row}: timestamp holds .*, which is not a time",
    )


def hostile_preferences() -> st.SearchStrategy[Case]:
    """A malformed (or contradictory) preference file for :func:`good_log`'s episodes."""
    return st.one_of(
        _bad_bound(), _u64_bound(), _self_comparison(), _contradiction(), _pref_timestamp()
    )
