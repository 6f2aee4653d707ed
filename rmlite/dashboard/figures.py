"""Every chart of the dashboard and the report, as plain dicts in plotly's JSON format.

One function per chart, shared by the live page and ``rmlite report`` so both draw the
same thing. Inputs are plain rows (lists of dicts), never store handles; a chart without
data is still a figure, with a short note saying what would fill it.

Examples
--------
>>> fig = scatter([{"y_true": 1.0, "y_pred": 1.2}, {"y_true": 2.0, "y_pred": 1.9}])
>>> [trace["name"] for trace in fig["data"]]
['transitions', 'y = x']
>>> empty("Drift", "no monitor pass yet")["layout"]["annotations"][0]["text"]
'no monitor pass yet'
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

Figure = dict[str, Any]
Rows = Sequence[Mapping[str, Any]]

SCORE_METRICS = ("r2", "spearman", "auc", "episode_return_spearman")
"""Higher is better, about 0..1: drawn on the left axis of the accuracy chart."""
ERROR_METRICS = ("rmse", "mae", "episode_return_mae", "log_loss", "brier", "ece")
"""Lower is better, in the target's units: drawn on the right axis."""

HEADLINE_METRICS = ("r2", "rmse", "mae", "auc", "log_loss")
"""Drawn from training hold-out metrics when no monitor pass has scored the model yet."""

PSI_WARN, PSI_ALERT = 0.1, 0.25
"""The usual PSI thresholds (Evidently, NannyML): below 0.1 stable, above 0.25 shifted."""

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4b5563")
SEVERITY_COLOR = {"ok": "#059669", "warn": "#d97706", "alert": "#dc2626"}
CURVE_DASH = {"train": "solid", "valid": "dash", "holdout": "dot"}


def layout(title: str, **extra: Any) -> dict[str, Any]:
    """The look every chart shares."""
    base: dict[str, Any] = {
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 14}},
        "height": 330,
        "margin": {"l": 60, "r": 60, "t": 42, "b": 48},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#f8fafc",
        "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12},
        "legend": {"orientation": "h", "y": -0.22, "x": 0},
        "hovermode": "closest",
    }
    base.update(extra)
    return base


def empty(title: str, message: str) -> Figure:
    """A chart with nothing to draw yet: axes hidden, ``message`` in the middle."""
    hidden = {"visible": False}
    return {
        "data": [],
        "layout": layout(
            title,
            xaxis=hidden,
            yaxis=hidden,
            annotations=[
                {
                    "text": message,
                    "showarrow": False,
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0.5,
                    "y": 0.5,
                    "font": {"size": 13, "color": "#64748b"},
                }
            ],
        ),
    }


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _true_pred(sample: Rows) -> list[tuple[float, float]]:
    """(y_true, y_pred) of the sample rows where both are known and finite."""
    return [
        (r["y_true"], r["y_pred"])
        for r in sample
        if _finite(r.get("y_true")) and _finite(r.get("y_pred"))
    ]


# --------------------------------------------------------------------- accuracy


def accuracy(
    metrics: Rows,
    holdout: Rows = (),
    window: Mapping[str, Any] | None = None,
    title: str = "Accuracy against ground truth",
) -> Figure:
    """Metrics of monitor passes over time, with the training hold-out as reference.

    ``metrics``: rows with ``created_at``, ``metric``, ``value`` (one per pass and
    metric). ``holdout``: rows with ``created_at``, ``run_id`` and ``metrics`` (the run's
    hold-out metrics at training time). ``window``: ``{"at": time, "metrics": {...}}``,
    the window a report scored, drawn as a last point.
    """
    # The metrics the monitor records; before any pass, the headline ones of training.
    names = [m for m in (*SCORE_METRICS, *ERROR_METRICS) if _has_metric(m, metrics, (), window)]
    if not names:
        names = [m for m in HEADLINE_METRICS if _has_metric(m, (), holdout, None)]
    if not names:
        return empty(title, "no accuracy yet: train a model, then run rmlite monitor")
    data: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        axis = "y" if name in SCORE_METRICS else "y2"
        color = _color(i)
        rows = [r for r in metrics if r.get("metric") == name and _finite(r.get("value"))]
        if rows:
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": name,
                    "legendgroup": name,
                    "x": [r["created_at"] for r in rows],
                    "y": [r["value"] for r in rows],
                    "yaxis": axis,
                    "line": {"color": color, "width": 2},
                    "marker": {"size": 7},
                    "hovertemplate": f"{name} %{{y:.4g}}<br>%{{x}}<extra>monitor pass</extra>",
                }
            )
        runs = [r for r in holdout if _finite((r.get("metrics") or {}).get(name))]
        if runs:
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"{name} (training hold-out)",
                    "legendgroup": name,
                    "showlegend": not rows,
                    "x": [r["created_at"] for r in runs],
                    "y": [r["metrics"][name] for r in runs],
                    "yaxis": axis,
                    "marker": {
                        "color": color,
                        "size": 11,
                        "symbol": "diamond-open",
                        "line": {"width": 2},
                    },
                    "hovertemplate": f"{name} %{{y:.4g}}<br>%{{x}}<extra>training hold-out</extra>",
                }
            )
        if window is not None and _finite((window.get("metrics") or {}).get(name)):
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"{name} (this report)",
                    "legendgroup": name,
                    "showlegend": False,
                    "x": [window["at"]],
                    "y": [window["metrics"][name]],
                    "yaxis": axis,
                    "marker": {"color": color, "size": 12, "symbol": "star"},
                    "hovertemplate": f"{name} %{{y:.4g}}<extra>this report's window</extra>",
                }
            )
    # Scores above, errors below: two panels sharing the time axis, each on its own scale.
    has_scores = any(n in SCORE_METRICS for n in names)
    has_errors = any(n in ERROR_METRICS for n in names)
    split = has_scores and has_errors
    return {
        "data": data,
        "layout": layout(
            title,
            height=380,
            xaxis={"type": "date", "anchor": "y2" if has_errors else "y"},
            yaxis={
                "title": {"text": "score ↑"},
                "domain": [0.55, 1] if split else [0, 1],
                "visible": has_scores,
            },
            yaxis2={
                "title": {"text": "error ↓"},
                "domain": [0, 0.45] if split else [0, 1],
                "anchor": "x",
                "visible": has_errors,
            },
        ),
    }


def _has_metric(name: str, metrics: Rows, holdout: Rows, window: Mapping[str, Any] | None) -> bool:
    return (
        any(r.get("metric") == name and _finite(r.get("value")) for r in metrics)
        or any(_finite((r.get("metrics") or {}).get(name)) for r in holdout)
        or (window is not None and _finite((window.get("metrics") or {}).get(name)))
    )


# ------------------------------------------------------------ predicted vs true


def scatter(sample: Rows, title: str = "Predicted vs true") -> Figure:
    """Predicted against true target of a sample of transitions, with the y = x line."""
    pairs = _true_pred(sample)
    if not pairs:
        return empty(title, "no sample yet: rmlite monitor keeps one per pass")
    true, pred = [p[0] for p in pairs], [p[1] for p in pairs]
    low, high = min(*true, *pred), max(*true, *pred)
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "markers",
                "name": "transitions",
                "x": true,
                "y": pred,
                "marker": {"color": PALETTE[0], "size": 5, "opacity": 0.45},
                "hovertemplate": "true %{x:.4g}<br>predicted %{y:.4g}<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "y = x",
                "x": [low, high],
                "y": [low, high],
                "line": {"color": "#94a3b8", "dash": "dash", "width": 1.5},
                "hoverinfo": "skip",
            },
        ],
        "layout": layout(
            title,
            xaxis={"title": {"text": "true"}},
            yaxis={"title": {"text": "predicted"}},
            showlegend=False,
        ),
    }


def calibration(sample: Rows, title: str = "Calibration", bins: int = 10) -> Figure:
    """Reliability diagram of an event model: observed event rate per predicted-probability
    bin of a sample, with the diagonal a calibrated model follows."""
    from rmlite.evaluation.metrics import calibration_curve, expected_calibration_error

    pairs = _true_pred(sample)
    if not pairs:
        return empty(title, "no sample yet: rmlite monitor keeps one per pass")
    import numpy as np

    y = np.array([p[0] for p in pairs], dtype=float)
    prob = np.array([p[1] for p in pairs], dtype=float)
    curve = calibration_curve(y, prob, bins)
    ece = expected_calibration_error(y, np.clip(prob, 0.0, 1.0), bins)
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "observed",
                "x": curve["predicted"],
                "y": curve["observed"],
                "text": [f"{int(c)} transitions" for c in curve["count"]],
                "marker": {"color": PALETTE[0], "size": 8},
                "hovertemplate": "predicted %{x:.3f}<br>observed %{y:.3f}<br>%{text}"
                "<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "calibrated",
                "x": [0, 1],
                "y": [0, 1],
                "line": {"color": "#94a3b8", "dash": "dash", "width": 1.5},
                "hoverinfo": "skip",
            },
        ],
        "layout": layout(
            f"{title} (ECE {ece:.3f})",
            xaxis={"title": {"text": "predicted probability"}, "range": [0, 1]},
            yaxis={"title": {"text": "observed event rate"}, "range": [0, 1]},
            showlegend=False,
        ),
    }


def residuals(sample: Rows, title: str = "Residuals (predicted − true)") -> Figure:
    """Histogram of predicted − true over a sample of transitions."""
    values = [pred - true for true, pred in _true_pred(sample)]
    if not values:
        return empty(title, "no sample yet: rmlite monitor keeps one per pass")
    mean = sum(values) / len(values)
    return {
        "data": [
            {
                "type": "histogram",
                "name": "residuals",
                "x": values,
                "nbinsx": 40,
                "marker": {"color": PALETTE[4], "line": {"color": "#ffffff", "width": 1}},
                "hovertemplate": "%{x}<br>%{y} transitions<extra></extra>",
            }
        ],
        "layout": layout(
            title,
            xaxis={"title": {"text": f"residual (mean {mean:.3g})"}},
            yaxis={"title": {"text": "transitions"}},
            showlegend=False,
            bargap=0.02,
            shapes=[_vline(0.0, "#334155")],
        ),
    }


def _vline(x: float, color: str) -> dict[str, Any]:
    return {
        "type": "line",
        "x0": x,
        "x1": x,
        "yref": "paper",
        "y0": 0,
        "y1": 1,
        "line": {"color": color, "width": 1.5, "dash": "dash"},
    }


def _hline(y: float, color: str) -> dict[str, Any]:
    return {
        "type": "line",
        "y0": y,
        "y1": y,
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "line": {"color": color, "width": 1.5, "dash": "dash"},
    }


# ------------------------------------------------------------- learning curves


def learning_curves(
    curves: Sequence[Mapping[str, Sequence[float]]],
    overfitting: Mapping[str, Any] | None = None,
    title: str = "Learning curves",
) -> Figure:
    """Per-iteration losses of each ensemble member (train, valid, holdout).

    ``overfitting`` (from :func:`rmlite.evaluation.overfit.overfitting`) titles the chart with
    its status, in red when its alarm is up.
    """
    data: list[dict[str, Any]] = []
    for member, named in enumerate(curves):
        for name, losses in named.items():
            ys = [v if _finite(v) else None for v in losses]
            if not ys:
                continue
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{name}" + (f" (member {member})" if len(curves) > 1 else ""),
                    "legendgroup": name,
                    "x": list(range(1, len(ys) + 1)),
                    "y": ys,
                    "line": {
                        "color": _color(member),
                        "dash": CURVE_DASH.get(name, "dashdot"),
                        "width": 2,
                    },
                    "hovertemplate": f"{name} %{{y:.4g}} at %{{x}}<extra>member {member}</extra>",
                }
            )
    if not data:
        return empty(title, "this model recorded no learning curves")
    if overfitting:
        color = "#dc2626" if overfitting.get("alarm") else "#059669"
        status = overfitting.get("status", "unknown")
        title = f"{title}: <span style='color:{color}'>{status}</span>"
    return {
        "data": data,
        "layout": layout(
            title,
            xaxis={"title": {"text": "iteration (trees or epochs)"}},
            yaxis={"title": {"text": "loss"}, "type": "log"},
        ),
    }


# ------------------------------------------------------------------------ drift


DRIFT_TOP = 25
"""Columns the drift charts show by default, most severe first ("show all" draws the rest)."""

SEVERITY_RANK = {"alert": 2, "warn": 1, "ok": 0}

DRIFT_HISTORY_PASSES = 60
"""Monitor passes the drift-over-time heat-map reads at most (the newest)."""


def drift_label(row: Mapping[str, Any]) -> str:
    """A column's name on the drift charts: the feature's name, or its kind in brackets."""
    return str(row["name"]) if row.get("kind") == "feature" else f"[{row.get('kind')}]"


def by_severity(rows: Rows) -> list[Mapping[str, Any]]:
    """Drift rows with a finite PSI, most severe first, then by PSI over its alert limit."""

    def key(r: Mapping[str, Any]) -> tuple[int, float]:
        limit = _limit(r, "psi_alert", PSI_ALERT)
        return (SEVERITY_RANK.get(str(r.get("severity")), 0), float(r["psi"]) / limit)

    return sorted((r for r in rows if _finite(r.get("psi"))), key=key, reverse=True)


def _limit(row: Mapping[str, Any], key: str, default: float) -> float:
    value = row.get(key)
    return float(value) if isinstance(value, int | float) and _finite(value) else default


def drift(
    rows: Rows,
    title: str = "Drift per feature",
    top: int | None = DRIFT_TOP,
) -> Figure:
    """PSI and Wasserstein distance of each column of one pass, side by side, as horizontal
    bars coloured by severity, most severe first (``top`` of them; None: all), with each
    column's warn and alert limits marked on its own bar (the sample-size rule gives every
    column its own; old passes, the fixed 0.1 / 0.25)."""
    ranked = by_severity(rows)
    if not ranked:
        return empty(title, "no drift measured yet: run rmlite monitor")
    shown = ranked[:top] if top else ranked
    if len(shown) < len(ranked):
        title = f"{title} · the {len(shown)} most severe of {len(ranked)}"
    labels = [drift_label(r) for r in shown]
    data: list[dict[str, Any]] = []
    for severity in ("alert", "warn", "ok"):
        part = [r for r in shown if r.get("severity") == severity]
        if not part:
            continue
        for axis, key in (("x", "psi"), ("x2", "wasserstein")):
            data.append(
                {
                    "type": "bar",
                    "orientation": "h",
                    "name": severity,
                    "legendgroup": severity,
                    "showlegend": axis == "x",
                    "x": [r.get(key) if _finite(r.get(key)) else None for r in part],
                    "y": [drift_label(r) for r in part],
                    "xaxis": axis,
                    "marker": {"color": SEVERITY_COLOR[severity]},
                    "customdata": [
                        [
                            r.get("kind"),
                            r.get("psi"),
                            _limit(r, "psi_warn", PSI_WARN),
                            _limit(r, "psi_alert", PSI_ALERT),
                            r.get("wasserstein"),
                            _limit(r, "wasserstein_warn", 0.1),
                            _limit(r, "wasserstein_alert", 0.1),
                            _limit(r, "psi_joint", PSI_WARN),
                        ]
                        for r in part
                    ],
                    "hovertemplate": (
                        "<b>%{y}</b> (%{customdata[0]}): " + severity + "<br>"
                        "PSI %{customdata[1]:.3f} (warn %{customdata[2]:.3f}, alert "
                        "%{customdata[3]:.3f})<br>Wasserstein / std %{customdata[4]:.3f} "
                        "(warn %{customdata[5]:.3f}; alert with PSI ≥ %{customdata[7]:.3f}: "
                        "%{customdata[6]:.3f})<extra></extra>"
                    ),
                }
            )
    marks = (
        ("warn limit", "psi_warn", "wasserstein_warn", SEVERITY_COLOR["warn"], PSI_WARN),
        ("alert limit", "psi_alert", "wasserstein_alert", SEVERITY_COLOR["alert"], PSI_ALERT),
    )
    for name, psi_key, w_key, color, default in marks:
        for axis, key, fallback in (("x", psi_key, default), ("x2", w_key, 0.1)):
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": name,
                    "legendgroup": name,
                    "showlegend": axis == "x",
                    "x": [_limit(r, key, fallback) for r in shown],
                    "y": labels,
                    "xaxis": axis,
                    "marker": {
                        "symbol": "line-ns",
                        "size": 16,
                        "line": {"color": color, "width": 3},
                    },
                    "hovertemplate": f"%{{y}}: {name} %{{x:.3f}}<extra></extra>",
                }
            )
    psis = [float(r["psi"]) for r in shown] + [_limit(r, "psi_alert", PSI_ALERT) for r in shown]
    # A log axis: a PSI of exactly 0 (identical windows, a constant column) sets no bound.
    positive = [x for x in psis if x > 0 and math.isfinite(x)]
    low = min([*positive, PSI_WARN / 10])
    high = max([*positive, PSI_ALERT])
    return {
        "data": data,
        "layout": layout(
            title,
            height=max(320, 150 + 22 * len(shown)),
            barmode="overlay",
            # The legend under the axis titles: the title and the "show all" button hold
            # the top, and a right-hand legend would take width from long names.
            margin={"l": 10, "r": 20, "t": 42, "b": 84},
            legend={"orientation": "h", "x": 0, "y": 0, "yref": "container", "yanchor": "bottom"},
            yaxis={
                "type": "category",
                "categoryorder": "array",
                "categoryarray": labels,
                "autorange": "reversed",
                "automargin": True,
                "tickfont": {"size": 11},
            },
            xaxis={
                "domain": [0, 0.55],
                "type": "log",
                "dtick": 1,
                "range": [math.log10(low * 0.8), math.log10(high * 1.5)],
                "title": {"text": "PSI (log scale)"},
            },
            xaxis2={
                "domain": [0.62, 1],
                "anchor": "y",
                "rangemode": "tozero",
                "title": {"text": "Wasserstein / reference std"},
            },
        ),
    }


def drift_history(
    rows: Rows, title: str = "Drift over passes (PSI)", top: int | None = DRIFT_TOP
) -> Figure:
    """Heat-map of PSI per monitor pass (columns, oldest left) and per column (rows, the
    ``top`` most drifted over all passes first); alert cells marked ●, warn cells ○."""
    rows = [r for r in rows if _finite(r.get("psi"))]
    if not rows:
        return empty(title, "no drift history yet: each rmlite monitor pass adds a column")
    passes = sorted({int(r["pass_id"]) for r in rows})
    worst: dict[str, tuple[int, float]] = {}
    for r in rows:
        label = drift_label(r)
        score = (SEVERITY_RANK.get(str(r.get("severity")), 0), float(r["psi"]))
        worst[label] = max(worst.get(label, score), score)
    names = sorted(worst, key=lambda n: worst[n], reverse=True)
    shown = names[:top] if top else names
    if len(shown) < len(names):
        title = f"{title} · the {len(shown)} most drifted of {len(names)}"
    cell = {(drift_label(r), int(r["pass_id"])): r for r in rows}
    z, text, hover = [], [], []
    for name in shown:
        line, marks, tips = [], [], []
        for p in passes:
            found = cell.get((name, p))
            line.append(float(found["psi"]) if found else None)
            severity = str(found.get("severity")) if found else ""
            marks.append({"alert": "●", "warn": "○"}.get(severity, ""))
            tips.append(severity or "not measured")
        z.append(line)
        text.append(marks)
        hover.append(tips)
    top_psi = max(float(r["psi"]) for r in rows)
    return {
        "data": [
            {
                "type": "heatmap",
                "z": z,
                "x": [f"pass {p}" for p in passes],
                "y": shown,
                "text": text,
                "customdata": hover,
                "texttemplate": "%{text}",
                "textfont": {"color": "#0f172a", "size": 10},
                "colorscale": [[0, "#f8fafc"], [0.2, "#fde68a"], [0.5, "#f97316"], [1, "#b91c1c"]],
                "zmin": 0,
                "zmax": max(PSI_ALERT * 2, min(top_psi, 2.0)),
                "colorbar": {"title": {"text": "PSI"}, "thickness": 12},
                "hovertemplate": "%{y} · %{x}<br>PSI %{z:.3f}: %{customdata}<extra></extra>",
                "xgap": 1,
                "ygap": 1,
            }
        ],
        "layout": layout(
            title,
            height=max(300, 130 + 20 * len(shown)),
            margin={"l": 10, "r": 20, "t": 42, "b": 60},
            xaxis={"type": "category", "automargin": True, "title": {"text": "monitor pass"}},
            yaxis={
                "type": "category",
                "autorange": "reversed",
                "automargin": True,
                "tickfont": {"size": 11},
            },
            showlegend=False,
        ),
    }


def drift_histograms(
    histograms: Rows, drift_rows: Rows = (), title: str = "Reference vs current", top: int = 6
) -> Figure:
    """Small multiples: each of the ``top`` most severe columns' reference and current
    histograms (shares per bin on shared edges), three to a row."""
    order = [drift_label(r) for r in by_severity(drift_rows)]
    by_label = {drift_label(h): h for h in histograms if h.get("edges")}
    chosen = [n for n in order if n in by_label][:top] or list(by_label)[:top]
    if not chosen:
        return empty(title, "no histograms for this pass (passes recorded before they were kept)")
    columns = min(3, len(chosen))
    lines = math.ceil(len(chosen) / columns)
    gap_x, gap_y = 0.06, 0.16
    width = (1 - gap_x * (columns - 1)) / columns
    height = (1 - gap_y * (lines - 1)) / lines
    data: list[dict[str, Any]] = []
    axes: dict[str, Any] = {}
    notes = []
    for i, name in enumerate(chosen):
        h = by_label[name]
        edges = [float(e) for e in h["edges"]]
        centers = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
        widths = [b - a for a, b in itertools.pairwise(edges)]
        suffix = "" if i == 0 else str(i + 1)
        col, line = i % columns, i // columns
        x0 = col * (width + gap_x)
        y1 = 1 - line * (height + gap_y)
        axes[f"xaxis{suffix}"] = {
            "domain": [x0, x0 + width],
            "anchor": f"y{suffix}",
            "nticks": 5,
            "tickfont": {"size": 10},
        }
        axes[f"yaxis{suffix}"] = {
            "domain": [y1 - height, y1],
            "anchor": f"x{suffix}",
            "tickformat": ".0%",
            "nticks": 4,
            "tickfont": {"size": 10},
        }
        for series, color in (("reference", "#94a3b8"), ("current", PALETTE[0])):
            data.append(
                {
                    "type": "bar",
                    "name": series,
                    "legendgroup": series,
                    "showlegend": i == 0,
                    "x": centers,
                    "width": widths,
                    "y": list(h[series]),
                    "xaxis": f"x{suffix}",
                    "yaxis": f"y{suffix}",
                    "marker": {"color": color, "opacity": 0.55 if series == "current" else 0.8},
                    "hovertemplate": f"{name} · {series}<br>%{{x:.3g}}: %{{y:.1%}}<extra></extra>",
                }
            )
        notes.append(
            {
                "text": f"<b>{name}</b>",
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": x0,
                "y": y1,
                "xanchor": "left",
                "yanchor": "bottom",
                "font": {"size": 11},
            }
        )
    return {
        "data": data,
        "layout": layout(
            title,
            height=120 + 200 * lines,
            barmode="overlay",
            bargap=0,
            annotations=notes,
            legend={"orientation": "h", "y": -0.04, "x": 0, "yanchor": "top"},
            margin={"l": 50, "r": 20, "t": 60, "b": 56},
            **axes,
        ),
    }


# ------------------------------------------------------------------- explaining


def importance(rows: Rows, title: str = "Feature importance (mean |SHAP|, hold-out)") -> Figure:
    """Mean |SHAP| per feature, most important on top (rows of
    :func:`rmlite.evaluation.explain.explain`)."""
    rows = [r for r in rows if _finite(r.get("mean_abs_shap"))]
    if not rows:
        return empty(title, "no SHAP values: rmlite explain needs a LightGBM or XGBoost model")
    shown = list(reversed(rows))  # plotly draws the first bar at the bottom
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "name": "mean |SHAP|",
                "x": [r["mean_abs_shap"] for r in shown],
                "y": [str(r["feature"]) for r in shown],
                "marker": {"color": PALETTE[0]},
                "customdata": [[r.get("mean_shap"), r.get("share")] for r in shown],
                "hovertemplate": (
                    "%{y}<br>mean |SHAP| %{x:.4g}<br>mean SHAP %{customdata[0]:.4g}<br>"
                    "share %{customdata[1]:.1%}<extra></extra>"
                ),
            }
        ],
        "layout": layout(
            title,
            height=max(330, 60 + 22 * len(shown)),
            margin={"l": 110, "r": 30, "t": 42, "b": 48},
            xaxis={"title": {"text": "mean |SHAP| (reward units; log-odds for events)"}},
            yaxis={"type": "category", "automargin": True},
            showlegend=False,
        ),
    }


# ----------------------------------------------------------------------- tuning


def trials(history: Rows, title: str = "Tuning trials") -> Figure:
    """Objective of each trial (lower is better) and the best so far, per study."""
    studies = list(dict.fromkeys(r["study"] for r in history))
    if not studies:
        return empty(title, "no tuning study beside this store (rmlite tune)")
    data: list[dict[str, Any]] = []
    for i, study in enumerate(studies):
        rows = [r for r in history if r["study"] == study]
        done = [r for r in rows if r.get("state") == "COMPLETE" and _finite(r.get("value"))]
        color = _color(i)
        if done:
            best, running = [], math.inf
            for r in done:
                running = min(running, r["value"])
                best.append(running)
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": study,
                    "legendgroup": study,
                    "x": [r["number"] for r in done],
                    "y": [r["value"] for r in done],
                    "marker": {"color": color, "size": 8},
                    "hovertemplate": "trial %{x}: %{y:.4g}<extra>" + study + "</extra>",
                }
            )
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{study} best",
                    "legendgroup": study,
                    "showlegend": False,
                    "x": [r["number"] for r in done],
                    "y": best,
                    "line": {"color": color, "shape": "hv", "width": 2},
                    "hoverinfo": "skip",
                }
            )
        # Pruned and failed trials have no objective: marked along the bottom.
        other = [r for r in rows if r.get("state") in ("PRUNED", "FAIL")]
        if other:
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"{study} pruned/failed",
                    "legendgroup": study,
                    "x": [r["number"] for r in other],
                    "y": [0 for _ in other],
                    "yaxis": "y2",
                    "marker": {"color": "#94a3b8", "symbol": "x", "size": 8},
                    "text": [r["state"].lower() for r in other],
                    "hovertemplate": "trial %{x}: %{text}<extra></extra>",
                }
            )
    return {
        "data": data,
        "layout": layout(
            title,
            xaxis={"title": {"text": "trial"}},
            yaxis={"title": {"text": "objective (1 − R² or log loss)"}, "domain": [0.12, 1]},
            yaxis2={"domain": [0, 0.08], "visible": False, "range": [-1, 1]},
        ),
    }
