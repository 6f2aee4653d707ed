"""The data layer: the log contract, readers, the DuckDB store and feature building.

Nothing here imports a model engine. ``schema`` names the columns, ``logs`` reads and
checks files, ``store`` is the only package that talks to DuckDB, ``feature_spec`` holds
what to build and what was fitted, ``features`` turns transitions into one float32 matrix,
``preference_log`` checks preference files.
"""
