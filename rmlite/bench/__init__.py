"""Benchmarks behind ``rmlite bench``: ratios against baselines measured in the same run."""

from __future__ import annotations

from rmlite.bench.data import (
    BENCH_SPEC,
    bench_data,
    bench_models,
    bench_policy,
    bench_prefs,
    bench_tune,
    bench_wrapper,
    pandas_features,
    pd_series,
)

__all__ = [
    "BENCH_SPEC",
    "bench_data",
    "bench_models",
    "bench_policy",
    "bench_prefs",
    "bench_tune",
    "bench_wrapper",
    "pandas_features",
    "pd_series",
]
