"""``rmlite report``: one self-contained HTML file with the dashboard's charts.

For one model and one dataset: the model scored on a window of the dataset's episodes
(by default those it was not trained on) with :func:`rmlite.evaluation.monitor.evaluate_window`,
drawn with the same figure functions and the same page as the live dashboard, plus the
store's monitor history of that model. plotly.js and the data are inlined: the file
opens offline and references nothing outside itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from rmlite._typing import PathLike
from rmlite.dashboard import figures as F
from rmlite.dashboard.data import (
    build_payload,
    drift_figures,
    dumps,
    read_model_meta,
    rows,
    unique_alerts,
)
from rmlite.dashboard.page import render_report
from rmlite.dashboard.views import dataset_views, model_figures, score_model
from rmlite.data.store import LogStore
from rmlite.exceptions import ParameterError, RmliteError


@dataclass
class Report:
    """A rendered report and what it says, for ``--json``."""

    html: str
    summary: dict[str, Any]


def build_report(
    store: LogStore,
    model_dir: PathLike,
    dataset: str,
    *,
    episodes: Sequence[int] | None = None,
    progress: Callable[[str], None] | None = None,
    plotly: str = "inline",
) -> Report:
    """Score ``model_dir`` on ``dataset`` and render the report page (not written).

    ``plotly``: ``"inline"`` (plotly.js inside the file, about 4.6 MB, opens offline) or
    ``"cdn"`` (loaded from cdn.plot.ly, pinned by an integrity hash).
    """
    if plotly not in ("inline", "cdn"):
        raise ParameterError(f"plotly must be 'inline' or 'cdn'; got {plotly!r}.")
    from rmlite.evaluation.monitor import evaluate_window

    say = progress or (lambda _m: None)
    model_dir = os.fspath(model_dir)
    if not os.path.isfile(os.path.join(model_dir, "model.json")):
        raise RmliteError(
            f"{model_dir}: no model here (model.json is missing). Pass the folder written by "
            f"rmlite train --out."
        )
    say(f"scoring {model_dir} on {dataset}")
    window = evaluate_window(store, model_dir, dataset, episodes=episodes)

    say("reading the store's history of this model")
    datasets, runs, monitoring = store.datasets(), store.runs(), store.monitoring(dataset)
    recorded = os.path.realpath(model_dir)
    history: list[dict[str, Any]] = []
    if store.path != ":memory:":
        from rmlite.tuning import trial_history

        history = trial_history(store.path)
    meta = read_model_meta(model_dir)

    say("drawing the charts")
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    metrics = {k: v for k, v in window.metrics.items() if isinstance(v, int | float)}
    payload = build_payload(
        datasets,
        runs,
        monitoring,
        dataset=dataset,
        model=recorded,
        keep_model=True,
        sample_for=lambda _pass_id: None,
        meta_for=lambda _path: meta,
        trials=history,
        store_path=store.path,
        window={"at": now, "metrics": metrics},
        history_for=store.drift_history,
    )
    sample = rows(window.sample)
    drift = rows(window.drift)
    n = len(sample)
    figures = payload["figures"]
    figures["scatter"] = (
        F.calibration(sample, title=f"Calibration · {n:,} transitions")
        if window.target == "event"
        else F.scatter(sample, title=f"Predicted vs true · {n:,} transitions")
    )
    figures["residuals"] = F.residuals(sample)
    # The window's own drift; the heat-map keeps the store's passes of this model.
    window_drift = drift_figures(
        drift,
        histogram_rows=rows(window.histograms),
        title=f"Drift against training · {len(window.episodes)} episodes",
    )
    window_drift.pop("drift_history")
    window_drift.pop("drift_history_all", None)
    figures.pop("drift_all", None)
    figures.update(window_drift)
    figures["curves"] = F.learning_curves(window.curves, window.overfitting)
    say("explaining the predictions (mean |SHAP| per feature)")
    importance = _importance(store, model_dir, dataset, episodes=window.episodes)
    figures["importance"] = F.importance(importance)
    alerts = [
        {
            "pass_id": "this report",
            "created_at": now,
            **{k: a.get(k) for k in ("severity", "source", "name", "message")},
        }
        for a in window.alerts
    ]
    payload["alerts"] = unique_alerts(alerts + payload["alerts"])
    payload["overfitting"] = window.overfitting
    shown = [k for k in (*F.SCORE_METRICS, *F.ERROR_METRICS) if k in metrics][:6]
    payload["kpis"] = [
        *({"label": f"{k} ({window.target})", "value": metrics[k]} for k in shown),
        {"label": "alerts", "value": len(alerts), "bad": bool(alerts)},
        {
            "label": "overfitting",
            "value": (window.overfitting or {}).get("status", "unknown"),
            "bad": bool((window.overfitting or {}).get("alarm")),
        },
    ]
    say("scoring every episode of the window (returns, traces, uncertainty)")
    from rmlite.estimators.loading import load_model

    views = score_model(store, load_model(model_dir), dataset, episodes=window.episodes)
    payload["model_page"] = model_figures(views)
    payload["dataset_page"] = dataset_views(store, dataset)
    payload["store"] = store.path
    payload["version"] = ""
    payload["report"] = f"report · {model_dir} on {dataset} · {now}"
    html = render_report(f"rmlite report · {model_dir} on {dataset}", dumps(payload), plotly)
    summary = {
        "model": model_dir,
        "dataset": dataset,
        "target": window.target,
        "transitions_sampled": n,
        "metrics": metrics,
        "alerts": alerts,
        "overfitting": window.overfitting,
        "drift_alerts": int(
            window.drift.filter(pl.col("severity") == "alert").height if window.drift.height else 0
        ),
        "monitor_passes": monitoring["monitor_passes"].height,
        "top_features": importance[:5],
        "generated_at": now,
    }
    return Report(html=html, summary=summary)


def _importance(
    store: LogStore, model_dir: str, dataset: str, episodes: Sequence[int]
) -> list[dict[str, Any]]:
    """Rows of :func:`rmlite.evaluation.explain.explain`; none for models without trees."""
    from rmlite.evaluation.explain import explain

    try:
        return explain(store, model_dir, dataset, top=20, episodes=episodes).to_dicts()
    except ParameterError:  # the MLP, a preference model: no TreeSHAP
        return []


def write_report(
    store: LogStore,
    model_dir: PathLike,
    dataset: str,
    out: PathLike,
    *,
    progress: Callable[[str], None] | None = None,
    plotly: str = "inline",
) -> dict[str, Any]:
    """Build the report and write it to ``out`` (one HTML file); return its summary."""
    report = build_report(store, model_dir, dataset, progress=progress, plotly=plotly)
    out = os.fspath(out)
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(report.html)
    (progress or (lambda _m: None))(f"wrote {out}")
    return {**report.summary, "out": out, "bytes": os.path.getsize(out)}
