"""``rmlite bench scale``: ingest and training on logs larger than memory.

A synthetic MuJoCo-shaped log (17 obs, 6 actions, 1,000-step episodes) is written to
Parquet a block of episodes at a time, then each measurement runs in a fresh Python
process that reports its own peak resident size (VmHWM), so no measurement
inherits another's memory:

- ingest of the Parquet file into a new store;
- features + LightGBM (20 trees, 63 leaves; obs, action and next_obs) on the streaming
  path, and the same with XGBoost's external memory;
- at the smallest size, the in-memory path too, for the streaming path's time ratio.

The targets are ratios and bounds measured in the same run (these machines are noisy):
ingest peak RSS flat in rows (largest/smallest within 1.3x) and under 4 GiB; training
peak RSS at most the engine's binned data plus 2 GiB; time linear in rows (largest within
1.2x of the row ratio); streaming at most 1.5x the in-memory time at the smallest size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rmlite.bench.data import peak_rss_bytes

GIB = 2**30
EPISODE_LENGTH = 1000
OBS_DIM, ACTION_DIM = 17, 6
BLOCK_ROWS = 200_000
"""Rows generated and written at once: the writer's memory stays small at any size."""


def write_log(path: str | Path, rows: int, seed: int = 0, block_rows: int | None = None) -> int:
    """Write a synthetic MuJoCo-shaped log of ``rows`` transitions to one Parquet file.

    Episodes are whole (``rows`` is rounded up to whole 1,000-step episodes); each block
    of ``block_rows`` (default :data:`BLOCK_ROWS`, whole episodes) is generated from its
    own seed and written before the next, and episode ids run on across blocks.
    """
    import polars as pl
    import pyarrow.parquet as pq

    from rmlite.data import schema as S
    from rmlite.testing import synthetic_log

    total = -(-rows // EPISODE_LENGTH) * EPISODE_LENGTH
    step = max(EPISODE_LENGTH, (block_rows or BLOCK_ROWS) // EPISODE_LENGTH * EPISODE_LENGTH)
    writer = None
    written = 0
    try:
        for block, lo in enumerate(range(0, total, step)):
            n = min(step, total - lo)
            frame = synthetic_log(
                rows=n,
                obs_dim=OBS_DIM,
                action_dim=ACTION_DIM,
                episode_length=EPISODE_LENGTH,
                seed=seed * 1_000_003 + block,
            ).with_columns(pl.col(S.EPISODE) + lo // EPISODE_LENGTH)
            table = frame.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(os.fspath(path), table.schema, compression="zstd")
            writer.write_table(table, row_group_size=100_000)
            written += n
    finally:
        if writer is not None:
            writer.close()
    return written


# ------------------------------------------------------------- child processes


def ingest_child(parquet: str, db: str, memory_limit: str | None = None) -> dict[str, Any]:
    """Ingest one Parquet file into a store (run in a fresh process by :func:`measure`)."""
    from rmlite import LogStore

    started = time.perf_counter()
    kwargs: dict[str, Any] = {}
    if memory_limit is not None:
        kwargs["memory_limit"] = memory_limit
    report = LogStore(db).ingest(parquet, dataset="scale", **kwargs)
    return {
        "rows": report.rows_added,
        "seconds": time.perf_counter() - started,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def train_child(db: str, backend: str, stream: bool, n_estimators: int = 20) -> dict[str, Any]:
    """Features + one booster on the dataset (run in a fresh process by :func:`measure`)."""
    from rmlite import LogStore
    from rmlite.data.features import FeatureSpec
    from rmlite.pipeline import train

    store = LogStore(db)
    started = time.perf_counter()
    result = train(
        store,
        "scale",
        FeatureSpec(next_obs=True),
        {
            "backend": backend,
            "n_estimators": n_estimators,
            "backend_params": {"num_leaves": 63} if backend == "lightgbm" else {"max_leaves": 63},
        },
        stream=stream,
    )
    n_features = OBS_DIM * 2 + ACTION_DIM
    train_rows = len(result.train_episodes) * EPISODE_LENGTH
    # The fit bins the hold-out episodes too: it watches their loss every round.
    watched_rows = len(result.holdout_episodes) * EPISODE_LENGTH
    return {
        "seconds": time.perf_counter() - started,
        "features_s": result.timings.get("features_s"),
        "fit_s": result.timings.get("fit_s"),
        "holdout_r2": result.metrics["holdout"]["r2"],
        "peak_rss_bytes": peak_rss_bytes(),
        # LightGBM keeps about a byte per feature per row it bins: the training rows and
        # the watched hold-out rows.
        "binned_bytes": (train_rows + watched_rows) * n_features,
        "streamed": result.streamed,
    }


def measure(function: str, **kwargs: Any) -> dict[str, Any]:
    """Run one of this module's ``*_child`` functions in a fresh Python process."""
    code = (
        "import json, sys\n"
        f"from rmlite.bench.scale import {function}\n"
        f"print('RESULT ' + json.dumps({function}(**json.loads(sys.argv[1]))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    raise RuntimeError(
        f"{function}({kwargs}) failed (exit {out.returncode}): {out.stderr.strip()[-2000:]}"
    )


# ---------------------------------------------------------------------- bench


def bench_scale(
    rows: Sequence[int] = (10_000_000, 30_000_000, 100_000_000),
    workdir: str | Path = "rmlite-bench-scale",
    backends: Sequence[str] = ("lightgbm", "xgboost"),
    in_memory_baseline: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure ingest and training at each size; check the targets (see the module doc).

    Sizes whose Parquet file and store would not fit on the disk of ``workdir`` (about
    250 bytes a transition in all) are skipped and listed under ``skipped``.
    """
    say = log or (lambda _m: None)
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    table: list[dict[str, Any]] = []
    skipped: list[int] = []
    for n in sorted(rows):
        free = _free_bytes(folder)
        if n * 250 > free:
            say(f"{n:,} rows: skipped ({free / GIB:.0f} GiB free on {folder})")
            skipped.append(n)
            continue
        parquet, db = folder / f"log-{n}.parquet", folder / f"store-{n}.duckdb"
        for path in (db, Path(f"{db}.wal")):
            path.unlink(missing_ok=True)
        if not parquet.exists():
            say(f"{n:,} rows: writing the synthetic log")
            write_log(parquet, n)
        say(f"{n:,} rows: ingest")
        row: dict[str, Any] = {
            "rows": n,
            "ingest": measure("ingest_child", parquet=str(parquet), db=str(db)),
        }
        for backend in backends:
            say(f"{n:,} rows: features + {backend}, streamed")
            row[f"{backend}_stream"] = measure(
                "train_child", db=str(db), backend=backend, stream=True
            )
        if in_memory_baseline and n == min(r for r in rows if r not in skipped):
            say(f"{n:,} rows: features + lightgbm, in memory")
            row["lightgbm_memory"] = measure(
                "train_child", db=str(db), backend="lightgbm", stream=False
            )
        table.append(row)
        db.unlink(missing_ok=True)
    return {"sizes": table, "skipped": skipped, "checks": _checks(table, backends)}


def _free_bytes(folder: Path) -> int:
    stat = os.statvfs(folder)
    return int(stat.f_bavail * stat.f_frsize)


def _checks(table: list[dict[str, Any]], backends: Sequence[str]) -> dict[str, Any]:
    """The targets, as measured ratios and whether each holds."""
    checks: dict[str, Any] = {}
    if not table:
        return checks
    small, large = table[0], table[-1]
    ingest_rss = [r["ingest"]["peak_rss_bytes"] for r in table]
    checks["ingest_rss_growth"] = {
        "value": max(ingest_rss) / min(ingest_rss),
        "target": 1.3,
        "ok": max(ingest_rss) / min(ingest_rss) <= 1.3,
    }
    checks["ingest_rss_max_gib"] = {
        "value": max(ingest_rss) / GIB,
        "target": 4.0,
        "ok": max(ingest_rss) <= 4 * GIB,
    }
    for backend in backends:
        key = f"{backend}_stream"
        over = [
            (r[key]["peak_rss_bytes"] - r[key]["binned_bytes"]) / GIB for r in table if key in r
        ]
        checks[f"{key}_rss_over_binned_gib"] = {
            "value": max(over),
            "target": 2.0,
            "ok": max(over) <= 2.0,
        }
    if len(table) > 1:
        row_ratio = large["rows"] / small["rows"]
        for key in ["ingest", *(f"{b}_stream" for b in backends)]:
            t = large[key]["seconds"] / small[key]["seconds"]
            checks[f"{key}_time_growth"] = {
                "value": t,
                "rows_ratio": row_ratio,
                "target": 1.2 * row_ratio,
                "ok": t <= 1.2 * row_ratio,
            }
    if "lightgbm_memory" in small and "lightgbm_stream" in small:
        ratio = small["lightgbm_stream"]["seconds"] / small["lightgbm_memory"]["seconds"]
        checks["stream_vs_memory_time"] = {"value": ratio, "target": 1.5, "ok": ratio <= 1.5}
        checks["stream_vs_memory_rss"] = {
            "value": small["lightgbm_stream"]["peak_rss_bytes"]
            / small["lightgbm_memory"]["peak_rss_bytes"],
        }
    return checks


# ------------------------------------------------------------------- Dask parity

DASK_PARITY_TOLERANCE = 0.002
"""Largest hold-out R² difference between the cluster's model and one process's."""


def dask_parity(
    rows: int,
    folder: str | Path,
    *,
    workers: int = 2,
    backend: str = "lightgbm",
    n_estimators: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """The same training job in one process and on a Dask LocalCluster: R² and times.

    Separate from :func:`bench_scale` (its own store and cluster). Ingests
    ``synthetic_log(rows)`` into a fresh store in ``folder``, then trains ``backend``
    (``n_estimators`` trees of 63 leaves, learning rate 0.1, on obs, action and next_obs)
    with :func:`rmlite.pipeline.train` and with
    :func:`rmlite.distributed.train_distributed` on a LocalCluster of ``workers``
    single-threaded processes, both on the same episode split. The single process trains
    on one thread: on a shared machine, OpenMP threads that wait for each other stall far
    beyond their share, which would time the neighbours rather than the job. Starts a
    LocalCluster: in a script, call it under ``if __name__ == "__main__":``.

    Returns
    -------
    dict
        ``rows``, ``workers``, ``backend``, ``r2_single``, ``r2_dask``, ``r2_diff``,
        ``within_tolerance`` (``r2_diff`` <= :data:`DASK_PARITY_TOLERANCE`), and times
        in seconds: ``ingest_s``, ``single_s`` (and ``single_timings``), ``cluster_start_s``,
        ``dask_s`` (and ``dask_timings``: export, statistics, features, fit).
    """
    import shutil

    from rmlite.data.features import FeatureSpec
    from rmlite.data.store import LogStore
    from rmlite.distributed import connect, train_distributed
    from rmlite.pipeline import train
    from rmlite.testing import synthetic_log

    root = Path(folder)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    store = LogStore(root / "parity.duckdb")
    t = time.perf_counter()
    store.ingest(synthetic_log(rows, seed=seed), dataset="parity")
    ingest_s = time.perf_counter() - t

    spec = FeatureSpec(next_obs=True)
    params: dict[str, Any] = {
        "backend": backend,
        "n_jobs": 1,
        "n_estimators": n_estimators,
        "learning_rate": 0.1,
        "backend_params": {"num_leaves" if backend == "lightgbm" else "max_leaves": 63},
    }
    t = time.perf_counter()
    single = train(store, "parity", spec, params, seed=seed)
    single_s = time.perf_counter() - t

    t = time.perf_counter()
    with connect(cluster=f"local:{workers}") as client:
        cluster_start_s = time.perf_counter() - t
        t = time.perf_counter()
        dist = train_distributed(store, "parity", spec, params, client=client, seed=seed)
        dask_s = time.perf_counter() - t
    r2_single = float(single.metrics["holdout"]["r2"])
    r2_dask = float(dist["metrics"]["holdout"]["r2"])
    return {
        "rows": rows,
        "workers": workers,
        "backend": backend,
        "r2_single": r2_single,
        "r2_dask": r2_dask,
        "r2_diff": abs(r2_dask - r2_single),
        "within_tolerance": abs(r2_dask - r2_single) <= DASK_PARITY_TOLERANCE,
        "ingest_s": ingest_s,
        "single_s": single_s,
        "single_timings": dict(single.timings),
        "cluster_start_s": cluster_start_s,
        "dask_s": dask_s,
        "dask_timings": dict(dist["timings"]),
    }
