"""Monitor-pass rows written by hand, with the columns of the monitoring contract.

The store's monitoring reads are tested against rows whose values the test chooses,
without running a model: the rows are what ``rmlite monitor`` records (one pass: its
metrics, drift per feature, alerts and a predicted-vs-true sample). The dashboard tests
use real passes from :func:`rmlite.evaluation.monitor.monitor_pass`.
"""

from __future__ import annotations

import numpy as np

from rmlite import LogStore


def write_pass(
    store: LogStore,
    dataset: str,
    model_path: str,
    *,
    r2: float = 0.9,
    drift_psi: float = 0.05,
    seed: int = 0,
) -> int:
    """Record one monitor pass of ``model_path`` on ``dataset``; return its pass_id."""
    rng = np.random.default_rng(seed)
    store.sql("SELECT 1", write=True)  # a write connection creates the tables (sql/schema.sql)
    pass_id = int(
        store.sql("SELECT coalesce(max(pass_id), 0) + 1 AS p FROM monitor_passes")["p"][0]
    )
    key = {"pass_id": pass_id, "dataset": dataset, "fp": f"fingerprint of {model_path}"}
    store.sql(
        "INSERT INTO monitor_passes VALUES ($pass_id, $dataset, $model_path, $fp, 'training', "
        "1, 1, 3, 120, 1, now()::TIMESTAMP, now()::TIMESTAMP)",
        {**key, "model_path": model_path},
        write=True,
    )
    for metric, value in (("r2", r2), ("rmse", 1.0 - r2), ("mae", (1.0 - r2) / 2)):
        store.sql(
            "INSERT INTO metrics VALUES ($pass_id, $dataset, $fp, $metric, $value, now()::TIMESTAMP)",
            {**key, "metric": metric, "value": value},
            write=True,
        )
    for i in range(3):
        psi = drift_psi * (i + 1)
        severity = "alert" if psi >= 0.25 else "warn" if psi >= 0.1 else "ok"
        store.sql(
            "INSERT INTO drift (pass_id, dataset, model_fingerprint, kind, name, psi, ks, "
            "ks_pvalue, wasserstein, severity, created_at) VALUES ($pass_id, $dataset, $fp, "
            "'feature', $name, $psi, 0.1, 0.5, 0.2, $severity, now()::TIMESTAMP)",
            {**key, "name": f"obs_{i}", "psi": psi, "severity": severity},
            write=True,
        )
    store.sql(
        "INSERT INTO alerts VALUES ($pass_id, $dataset, $fp, 'warn', 'drift', 'obs_2', "
        "'obs_2 drifted (PSI 0.15)', now()::TIMESTAMP)",
        key,
        write=True,
    )
    y_true = rng.normal(size=120)
    y_pred = y_true + rng.normal(scale=0.3, size=120)
    store.sql(
        "INSERT INTO monitor_samples SELECT $pass_id, unnest($episode), unnest($step), "
        "unnest($y_true), unnest($y_pred)",
        {
            "pass_id": pass_id,
            "episode": [j // 40 for j in range(120)],
            "step": [j % 40 for j in range(120)],
            "y_true": y_true.tolist(),
            "y_pred": y_pred.tolist(),
        },
        write=True,
    )
    return pass_id
