"""DuckDB queries of rmlite, one statement per file when it takes parameters.

Shipped as the package ``rmlite.sql``; :mod:`rmlite.data.store` loads them with
``importlib.resources``. Each file opens with ``-- name: what it does``.
"""
