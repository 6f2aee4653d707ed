"""How the store reads in SQL: comments, per-dataset views, renamed columns, file format.

Everything here runs on a write connection right after ``sql/schema.sql`` and writes only
what is missing or stale, so a store that is up to date costs two catalog queries:

- ``COMMENT ON`` every table and column, with the text of :data:`rmlite.data.schema.TABLE_DOCS`
  and :func:`rmlite.data.schema.column_docs` (``DESCRIBE`` and ``duckdb_columns()`` show it);
- a view per dataset, ``data.<dataset>``: episode ids as ingested, vectors as fixed-size
  ``FLOAT[n]`` arrays, ``timestamp`` as ``TIMESTAMPTZ`` (UTC);
- columns renamed since round 1 (``datasets.name`` is now ``dataset``; ``relabels.target``
  and ``target_kind`` are ``destination`` and ``destination_kind``, because ``target`` means
  what a model predicts everywhere else), readable under their old names in
  ``legacy.datasets`` and ``legacy.relabels``.

New files are written in DuckDB's v1.4 storage format (:data:`STORAGE_VERSION`), so the
oldest DuckDB that rmlite supports (``duckdb>=1.4``) opens them too.
"""

from __future__ import annotations

from typing import Any

import duckdb

from rmlite.data import schema as S

STORAGE_VERSION = "v1.4.0"
"""``storage_compatibility_version`` of new store files: the oldest DuckDB rmlite supports."""

# (table, old column, new column): renamed after round 1; old stores are migrated.
RENAMED = (
    ("datasets", "name", S.DATASET),
    ("relabels", "target", "destination"),
    ("relabels", "target_kind", "destination_kind"),
)

_LEGACY_VIEWS = {
    "datasets": f"SELECT *, {S.DATASET} AS name FROM main.datasets",
    "relabels": "SELECT *, destination AS target, destination_kind AS target_kind "
    "FROM main.relabels",
}


def ident(name: str) -> str:
    """A quoted SQL identifier (dataset names are the user's: any text)."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted SQL string literal, for DDL (a view's body cannot take bound parameters)."""
    return "'" + text.replace("'", "''") + "'"


def _old_columns(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    rows = _run(
        con,
        "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'main' "
        "AND list_contains($old, table_name || '.' || column_name)",
        {"old": [f"{t}.{c}" for t, c, _ in RENAMED]},
    )
    return {(t, c) for t, c in rows}


def needs_upgrade(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the file has round-1 column names that a write connection would rename."""
    # One cheap probe on every read-only open (round-1 stores lack datasets.dataset).
    try:
        _run(con, f"SELECT {S.DATASET} FROM datasets LIMIT 0")
    except duckdb.BinderException:
        return True
    except duckdb.CatalogException:
        return False
    return False


def upgrade(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a store written by an older rmlite (or by this one) up to date; idempotent."""
    old_columns = _old_columns(con)
    for table, old, new in RENAMED:
        if (table, old) in old_columns:
            _run(con, f"ALTER TABLE {table} RENAME COLUMN {old} TO {new}")
    _run(con, f"CREATE SCHEMA IF NOT EXISTS {S.VIEW_SCHEMA}")
    _run(con, f"CREATE SCHEMA IF NOT EXISTS {S.LEGACY_SCHEMA}")
    views = set(_run(con, "SELECT schema_name, view_name FROM duckdb_views()"))
    for table, body in _LEGACY_VIEWS.items():
        if (S.LEGACY_SCHEMA, table) not in views:
            _run(con, f"CREATE VIEW {S.LEGACY_SCHEMA}.{table} AS {body}")
    _comment(con)
    for (dataset,) in _run(con, f"SELECT {S.DATASET} FROM datasets ORDER BY 1"):
        if (S.VIEW_SCHEMA, dataset) not in views:
            create_view(con, dataset)


def ensure_view(con: duckdb.DuckDBPyConnection, dataset: str) -> None:
    """Create ``data.<dataset>`` unless it exists (its shape never changes after the
    dataset's first ingest)."""
    query = "SELECT count(*) FROM duckdb_views() WHERE schema_name = ? AND view_name = ?"
    if not _run(con, query, [S.VIEW_SCHEMA, dataset])[0][0]:
        create_view(con, dataset)


def create_view(con: duckdb.DuckDBPyConnection, dataset: str) -> None:
    """(Re)create ``data.<dataset>``: one row per transition of the dataset, for SQL users.

    Vectors become ``FLOAT[obs_dim]`` / ``FLOAT[action_dim]`` arrays, so DuckDB's array
    functions (``array_distance``, ``array_inner_product``, ...) apply; ``timestamp`` is
    ``TIMESTAMPTZ`` in UTC; a dataset with text episode ids shows them in ``episode_id``
    and its integer keys in ``episode_key``.
    """
    rows = _run(con, f"SELECT obs_dim, action_dim FROM datasets WHERE {S.DATASET} = ?", [dataset])
    if not rows:
        return
    obs_dim, action_dim = (max(int(v), 1) for v in rows[0])
    text_ids = bool(
        _run(con, "SELECT count(*) FROM episode_keys WHERE dataset = ?", [dataset])[0][0]
    )
    episode = "k.episode_id, t.episode_id AS episode_key" if text_ids else "t.episode_id"
    join = (
        "JOIN main.episode_keys AS k ON k.dataset = t.dataset AND k.episode_key = t.episode_id"
        if text_ids
        else ""
    )
    view = f"{S.VIEW_SCHEMA}.{ident(dataset)}"
    _run(
        con,
        f"""CREATE OR REPLACE VIEW {view} AS
        SELECT {episode}, t.step,
               t.obs::FLOAT[{obs_dim}] AS obs,
               t.action::FLOAT[{action_dim}] AS action,
               t.reward,
               t.next_obs::FLOAT[{obs_dim}] AS next_obs,
               t.terminated, t.truncated,
               timezone('UTC', t."timestamp") AS "timestamp",
               t.extra, t.ingest_id
        FROM main.transitions AS t {join}
        WHERE t.dataset = {literal(dataset)}""",
    )
    _run(
        con,
        f"COMMENT ON VIEW {view} IS "
        + literal(
            f"Transitions of dataset {dataset!r}: vectors as FLOAT[n] arrays, "
            f"timestamp as TIMESTAMPTZ (UTC), episode ids as ingested."
        ),
    )


def _run(con: duckdb.DuckDBPyConnection, query: str, params: Any = None) -> list[Any]:
    return con.execute(query, params).fetchall() if params else con.execute(query).fetchall()


def has_tables(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    query = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
    return bool(_run(con, query, [table])[0][0])


def _comment(con: duckdb.DuckDBPyConnection) -> None:
    """COMMENT ON every table and column whose comment differs from the schema's text."""
    tables = dict(
        _run(
            con,
            "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'main'",
        )
    )
    columns = {
        (t, c): comment
        for t, c, comment in _run(
            con,
            "SELECT table_name, column_name, comment FROM duckdb_columns() "
            "WHERE schema_name = 'main'",
        )
    }
    for table, text in S.TABLE_DOCS.items():
        if table in tables and tables[table] != text:
            _run(con, f"COMMENT ON TABLE {table} IS {literal(text)}")
    for table, docs in S.column_docs().items():
        for column, text in docs.items():
            text = text.replace("``", "")
            if (table, column) in columns and columns[table, column] != text:
                _run(con, f"COMMENT ON COLUMN {table}.{ident(column)} IS {literal(text)}")
