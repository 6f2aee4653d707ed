"""Benchmarks behind ``rmlite bench``: ratios against baselines measured in the same run."""

from __future__ import annotations

from rmlite.bench.data import BENCH_SPEC, bench_data, pandas_features, pd_series
from rmlite.bench.drift import bench_drift
from rmlite.bench.models import bench_models
from rmlite.bench.prefs import bench_prefs
from rmlite.bench.rl import bench_policy, bench_wrapper
from rmlite.bench.serve import bench_serve
from rmlite.bench.tune import bench_tune

__all__ = [
    "BENCH_SPEC",
    "bench_data",
    "bench_drift",
    "bench_models",
    "bench_policy",
    "bench_prefs",
    "bench_serve",
    "bench_tune",
    "bench_wrapper",
    "pandas_features",
    "pd_series",
]
