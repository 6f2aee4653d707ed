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
"""Higher is better, about 0..1 (the accuracy chart marks their panels "↑ better")."""
ERROR_METRICS = ("rmse", "mae", "episode_return_mae", "log_loss", "brier", "ece")
"""Lower is better, in the target's units (their panels say "↓ better")."""

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
    """Metrics of monitor passes over time, with the training hold-out as reference: one
    small panel per metric, each on its own axis (an episode-return MAE of 2 must not
    flatten an RMSE of 0.1 onto zero), sharing the time axis.

    ``metrics``: rows with ``created_at``, ``metric``, ``value`` (one per pass and
    metric). ``holdout``: rows with ``created_at``, ``run_id`` and ``metrics`` (the run's
    hold-out metrics at training time). ``window``: ``{"at": time, "metrics": {...}}``,
    the window a report scored, drawn as a last point. Each kind of mark (monitor pass,
    training hold-out, this report) has one legend entry of its own shape.
    """
    # The metrics the monitor records; before any pass, the headline ones of training.
    names = [m for m in (*SCORE_METRICS, *ERROR_METRICS) if _has_metric(m, metrics, (), window)]
    if not names:
        names = [m for m in HEADLINE_METRICS if _has_metric(m, (), holdout, None)]
    if not names:
        return empty(title, "no accuracy yet: train a model, then run rmlite monitor")
    columns = 1 if len(names) == 1 else 2
    lines = math.ceil(len(names) / columns)
    gap_x, gap_y = 0.1, 0.5 / lines
    width = (1 - gap_x * (columns - 1)) / columns
    height = (1 - gap_y * (lines - 1)) / lines
    data: list[dict[str, Any]] = []
    axes: dict[str, Any] = {}
    notes = []
    seen: set[str] = set()

    def mark(kind: str, **trace: Any) -> dict[str, Any]:
        shown = kind not in seen
        seen.add(kind)
        return {"type": "scatter", "name": kind, "legendgroup": kind, "showlegend": shown, **trace}

    for i, name in enumerate(names):
        suffix = "" if i == 0 else str(i + 1)
        col, line = i % columns, i // columns
        x0 = col * (width + gap_x)
        y1 = 1 - line * (height + gap_y)
        better = "↑ better" if name in SCORE_METRICS else "↓ better"
        axes[f"xaxis{suffix}"] = {
            "domain": [x0, x0 + width],
            "anchor": f"y{suffix}",
            "type": "date",
            "nticks": 4,
            "tickangle": 0,
            "tickfont": {"size": 10},
            # The panels share one time axis: its labels under the lowest of each column.
            "showticklabels": i + columns >= len(names),
            **({} if i == 0 else {"matches": "x"}),
        }
        axes[f"yaxis{suffix}"] = {
            "domain": [y1 - height, y1],
            "anchor": f"x{suffix}",
            "nticks": 4,
            "tickfont": {"size": 10},
            "tickformat": ".3~g",
        }
        notes.append(_panel_title(name, better, x0, y1))
        where = {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
        rows = [r for r in metrics if r.get("metric") == name and _finite(r.get("value"))]
        if rows:
            data.append(
                mark(
                    "monitor pass",
                    mode="lines+markers",
                    x=[r["created_at"] for r in rows],
                    y=[r["value"] for r in rows],
                    line={"color": PALETTE[0], "width": 2},
                    marker={"size": 7, "symbol": "circle"},
                    hovertemplate=f"{name} %{{y:.4g}}<br>%{{x}}<extra>monitor pass</extra>",
                    **where,
                )
            )
        runs = [r for r in holdout if _finite((r.get("metrics") or {}).get(name))]
        if runs:
            data.append(
                mark(
                    "training hold-out",
                    mode="markers",
                    x=[r["created_at"] for r in runs],
                    y=[r["metrics"][name] for r in runs],
                    marker={
                        "color": "#334155",
                        "size": 11,
                        "symbol": "diamond-open",
                        "line": {"width": 2},
                    },
                    hovertemplate=f"{name} %{{y:.4g}}<br>%{{x}}<extra>training hold-out</extra>",
                    **where,
                )
            )
        if window is not None and _finite((window.get("metrics") or {}).get(name)):
            data.append(
                mark(
                    "this report's window",
                    mode="markers",
                    x=[window["at"]],
                    y=[window["metrics"][name]],
                    marker={"color": SEVERITY_COLOR["warn"], "size": 13, "symbol": "star"},
                    hovertemplate=f"{name} %{{y:.4g}}<extra>this report's window</extra>",
                    **where,
                )
            )
    return {
        "data": data,
        "layout": layout(
            title,
            height=110 + 150 * lines,
            annotations=notes,
            margin={"l": 60, "r": 20, "t": 64, "b": 84},
            legend={"orientation": "h", "x": 0, "y": 0, "yref": "container", "yanchor": "bottom"},
            **axes,
        ),
    }


def _panel_title(name: str, better: str, x0: float, y1: float) -> dict[str, Any]:
    """A small-multiple panel's title: the metric, and which way is better (if said)."""
    note = f" <span style='color:#64748b'>{better}</span>" if better else ""
    return {
        "text": f"<b>{name}</b>{note}",
        "showarrow": False,
        "xref": "paper",
        "yref": "paper",
        "x": x0,
        "y": y1,
        "xanchor": "left",
        "yanchor": "bottom",
        "font": {"size": 11},
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
    values: list[float] = []
    for member, named in enumerate(curves):
        for name, losses in named.items():
            ys = [v if _finite(v) else None for v in losses]
            if not ys:
                continue
            values.extend(v for v in ys if v is not None)
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
            height=330 + 20 * math.ceil(len(data) / 3),
            margin={"l": 60, "r": 20, "t": 42, "b": 60 + 20 * math.ceil(len(data) / 3)},
            legend={"orientation": "h", "x": 0, "y": 0, "yref": "container", "yanchor": "bottom"},
            xaxis={"title": {"text": "iteration (trees or epochs)"}},
            yaxis={"title": {"text": "loss (log scale)"}, "type": "log", **log_ticks(values)},
        ),
    }


def log_ticks(values: Sequence[float], most: int = 8) -> dict[str, Any]:
    """Ticks of a log axis, written out: 1, 2 and 5 times powers of ten inside the values'
    range (only the powers when that makes more than ``most``), each labelled in full.

    Plotly's own log ticks label the 2s and 5s by their first digit only, which reads
    "5, 2, 0.1, 5, 2, 0.01".

    >>> log_ticks([0.013, 0.3])["ticktext"]
    ['0.02', '0.05', '0.1', '0.2']
    """
    positive = [float(v) for v in values if _finite(v) and v > 0]
    if not positive:
        return {}
    low, high = min(positive), max(positive)
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    candidates = [m * 10.0**k for k in range(first, last + 1) for m in (1, 2, 5)]
    ticks = [t for t in candidates if low <= t * (1 + 1e-9) and t <= high * (1 + 1e-9)]
    if len(ticks) > most:
        ticks = [t for t in ticks if math.isclose(math.log10(t), round(math.log10(t)))]
    if len(ticks) < 2:  # less than a factor 2 between them: the ends themselves
        ticks = sorted({low, high})
    return {
        "tickmode": "array",
        "tickvals": ticks,
        "ticktext": [f"{t:.3g}" for t in ticks],
        "minor": {"showgrid": False},
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
                # A fixed range, most severe on top: autorange pads a category axis for the
                # limit marks' size, which left rows of blank space at 200 columns.
                "range": [len(labels) - 0.5, -0.5],
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
            # The cell marks' legend, where the eye meets them: the chart has no other.
            xaxis={
                "type": "category",
                "automargin": True,
                "title": {"text": "monitor pass · ○ warn · ● alert"},
            },
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
            "ticklabelstandoff": 4,  # clear of the y axis' "0%" at the corner
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
        notes.append(_panel_title(name, "", x0, y1))
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
            # Trial numbers are whole: ticks on integers, one per trial while they are few.
            # The axis sits under the pruned/failed strip (y2), not between it and the plot.
            xaxis={
                "title": {"text": "trial"},
                "tickformat": "d",
                "anchor": "y2",
                "zeroline": False,
                **({"dtick": 1} if len({r["number"] for r in history}) <= 12 else {}),
            },
            yaxis={"title": {"text": "1 − R² (or log loss)"}, "domain": [0.14, 1]},
            yaxis2={"domain": [0, 0.08], "visible": False, "range": [-1, 1]},
        ),
    }


# --------------------------------------------------------------------- episodes


def episode_returns(
    episodes: Rows, worst: Sequence[Any] = (), title: str = "Episode returns: predicted vs true"
) -> Figure:
    """Predicted against true return of each episode (rows with ``episode_id``,
    ``true_return``, ``pred_return``, ``length``), with the y = x line; the ``worst``
    episode ids drawn apart (their traces are linked under the chart)."""
    rows = [r for r in episodes if _finite(r.get("true_return")) and _finite(r.get("pred_return"))]
    if not rows:
        return empty(title, "no episodes with logged rewards in this window")
    bad = {str(e) for e in worst}
    values = [v for r in rows for v in (r["true_return"], r["pred_return"])]
    low, high = min(values), max(values)
    data: list[dict[str, Any]] = []
    for name, part, color, symbol in (
        ("episodes", [r for r in rows if str(r["episode_id"]) not in bad], PALETTE[0], "circle"),
        ("worst episodes", [r for r in rows if str(r["episode_id"]) in bad], "#dc2626", "x"),
    ):
        if not part:
            continue
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": name,
                "x": [r["true_return"] for r in part],
                "y": [r["pred_return"] for r in part],
                "customdata": [[r["episode_id"], r.get("length")] for r in part],
                "marker": {"color": color, "size": 8, "symbol": symbol, "opacity": 0.75},
                "hovertemplate": "episode %{customdata[0]} (%{customdata[1]} steps)<br>"
                "true %{x:.4g}<br>predicted %{y:.4g}<extra></extra>",
            }
        )
    data.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": "y = x",
            "x": [low, high],
            "y": [low, high],
            "line": {"color": "#94a3b8", "dash": "dash", "width": 1.5},
            "hoverinfo": "skip",
        }
    )
    return {
        "data": data,
        "layout": layout(
            f"{title} · {len(rows)} episodes",
            xaxis={"title": {"text": "true return"}},
            yaxis={"title": {"text": "predicted return"}},
            legend={"orientation": "h", "x": 0, "y": 0, "yref": "container", "yanchor": "bottom"},
            margin={"l": 60, "r": 20, "t": 42, "b": 80},
        ),
    }


def reward_trace(steps: Rows, episode: Any, title: str = "Reward along episode") -> Figure:
    """Learned and logged reward at each step of one episode (rows with ``step``,
    ``y_true``, ``y_pred`` and, for ensembles, ``std``: a ±1 std band)."""
    title = f"{title} {episode}" if episode is not None else title
    rows = [r for r in steps if _finite(r.get("y_pred"))]
    if not rows:
        return empty(title, "pick an episode in the table of worst episodes")
    x = [r["step"] for r in rows]
    data: list[dict[str, Any]] = []
    if all(_finite(r.get("std")) for r in rows):
        upper = [r["y_pred"] + r["std"] for r in rows]
        lower = [r["y_pred"] - r["std"] for r in rows]
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "±1 std of the members",
                "x": x + x[::-1],
                "y": upper + lower[::-1],
                "fill": "toself",
                "fillcolor": "rgba(37,99,235,0.15)",
                "line": {"width": 0},
                "hoverinfo": "skip",
            }
        )
    truth = [r.get("y_true") if _finite(r.get("y_true")) else None for r in rows]
    if any(v is not None for v in truth):
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "logged",
                "x": x,
                "y": truth,
                "line": {"color": "#334155", "width": 1.5},
                "hovertemplate": "step %{x}<br>logged %{y:.4g}<extra></extra>",
            }
        )
    data.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": "learned",
            "x": x,
            "y": [r["y_pred"] for r in rows],
            "line": {"color": PALETTE[0], "width": 2},
            "hovertemplate": "step %{x}<br>learned %{y:.4g}<extra></extra>",
        }
    )
    return {
        "data": data,
        "layout": layout(
            title,
            xaxis={"title": {"text": "step"}, "tickformat": "d"},
            yaxis={"title": {"text": "target"}},
            legend={"orientation": "h", "x": 0, "y": 0, "yref": "container", "yanchor": "bottom"},
            margin={"l": 60, "r": 20, "t": 42, "b": 80},
        ),
    }


def uncertainty(sample: Rows, title: str = "Ensemble uncertainty vs error") -> Figure:
    """|predicted − true| against the members' standard deviation, per transition of a
    sample, with the mean error per std decile: a useful uncertainty rises with it."""
    rows = [
        (float(r["std"]), abs(float(r["y_pred"]) - float(r["y_true"])))
        for r in sample
        if _finite(r.get("std")) and _finite(r.get("y_true")) and _finite(r.get("y_pred"))
    ]
    if not rows:
        return empty(title, "a single-member model has no spread: train with n_members > 1")
    rows.sort()
    k = max(1, len(rows) // 10)
    bins = [rows[i : i + k] for i in range(0, len(rows), k)]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "markers",
                "name": "transitions",
                "x": [s for s, _ in rows],
                "y": [e for _, e in rows],
                "marker": {"color": PALETTE[0], "size": 5, "opacity": 0.35},
                "hovertemplate": "std %{x:.3g}<br>|error| %{y:.3g}<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "mean |error| per std decile",
                "x": [sum(s for s, _ in b) / len(b) for b in bins],
                "y": [sum(e for _, e in b) / len(b) for b in bins],
                "line": {"color": "#dc2626", "width": 2},
                "marker": {"symbol": "square", "size": 7},
                "hovertemplate": "std %{x:.3g}<br>mean |error| %{y:.3g}<extra></extra>",
            },
        ],
        "layout": layout(
            title,
            xaxis={"title": {"text": "std of the members' predictions"}},
            yaxis={"title": {"text": "|predicted − true|"}},
            legend={"orientation": "h", "x": 0, "y": 0, "yref": "container", "yanchor": "bottom"},
            margin={"l": 60, "r": 20, "t": 42, "b": 80},
        ),
    }


IMPORTANCE_TOP = 20
"""Features the booster-importance chart shows, most important first."""


def gain_importance(
    rows: Rows,
    title: str = "Feature importance (gain, from the boosters)",
    top: int = IMPORTANCE_TOP,
) -> Figure:
    """The boosters' own importance per feature (rows with ``feature`` and ``gain``; the
    mean over ensemble members), the ``top`` most important as horizontal bars."""
    ranked = sorted(
        (r for r in rows if _finite(r.get("gain"))), key=lambda r: r["gain"], reverse=True
    )
    if not ranked:
        return empty(title, "no importance: the MLP has no trees (rmlite explain ranks any model)")
    shown = ranked[:top]
    if len(shown) < len(ranked):
        title = f"{title} · the {len(shown)} most important of {len(ranked)}"
    total = sum(r["gain"] for r in ranked) or 1.0
    shown = shown[::-1]  # plotly draws the first bar at the bottom
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "name": "gain",
                "x": [r["gain"] for r in shown],
                "y": [str(r["feature"]) for r in shown],
                "customdata": [r["gain"] / total for r in shown],
                "marker": {"color": PALETTE[0]},
                "hovertemplate": "%{y}<br>gain %{x:.4g} (%{customdata:.1%} of the total)"
                "<extra></extra>",
            }
        ],
        "layout": layout(
            title,
            height=max(330, 90 + 22 * len(shown)),
            margin={"l": 10, "r": 30, "t": 42, "b": 48},
            xaxis={"title": {"text": "total gain (loss reduction of the splits)"}},
            yaxis={"type": "category", "automargin": True, "tickfont": {"size": 11}},
            showlegend=False,
        ),
    }


# ---------------------------------------------------------------------- dataset


def histogram(
    edges: Sequence[float],
    counts: Sequence[int],
    title: str,
    xlabel: str,
    ylabel: str,
    integer: bool = False,
) -> Figure:
    """Counts on precomputed bins (the page gets the bins, never the raw column);
    ``integer``: whole-number ticks (episode lengths)."""
    if not counts or not sum(counts):
        return empty(title, "nothing to count yet")
    centers = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
    widths = [b - a for a, b in itertools.pairwise(edges)]
    return {
        "data": [
            {
                "type": "bar",
                "name": ylabel,
                "x": centers,
                "y": list(counts),
                "width": widths,
                "customdata": [[a, b] for a, b in itertools.pairwise(edges)],
                "marker": {"color": PALETTE[0], "line": {"color": "#ffffff", "width": 1}},
                "hovertemplate": "%{customdata[0]:.4g} … %{customdata[1]:.4g}: %{y} "
                + ylabel
                + "<extra></extra>",
            }
        ],
        "layout": layout(
            title,
            xaxis={
                "title": {"text": xlabel},
                **({"tickformat": "d"} if integer else {}),
                **({"dtick": 1} if integer and edges[-1] - edges[0] <= 12 else {}),
            },
            yaxis={"title": {"text": ylabel}},
            showlegend=False,
            bargap=0,
        ),
    }


# ------------------------------------------------------------------- comparison


def compare_metrics(runs: Rows, title: str = "Hold-out metrics of the chosen runs") -> Figure:
    """One small panel per hold-out metric (each its own axis), one bar per run (rows with
    ``run_id`` and ``metrics``, a dict)."""
    names = [
        m
        for m in (*SCORE_METRICS, *ERROR_METRICS)
        if any(_finite((r.get("metrics") or {}).get(m)) for r in runs)
    ]
    if not runs or not names:
        return empty(title, "pick two or more runs with hold-out metrics in the table")
    columns = min(3, len(names))
    lines = math.ceil(len(names) / columns)
    gap_x, gap_y = 0.08, 0.45 / lines
    width = (1 - gap_x * (columns - 1)) / columns
    height = (1 - gap_y * (lines - 1)) / lines
    data: list[dict[str, Any]] = []
    axes: dict[str, Any] = {}
    notes = []
    labels = [f"run {r['run_id']}" for r in runs]
    for i, name in enumerate(names):
        suffix = "" if i == 0 else str(i + 1)
        col, line = i % columns, i // columns
        x0 = col * (width + gap_x)
        y1 = 1 - line * (height + gap_y)
        axes[f"xaxis{suffix}"] = {
            "domain": [x0, x0 + width],
            "anchor": f"y{suffix}",
            "type": "category",
            "tickfont": {"size": 10},
        }
        axes[f"yaxis{suffix}"] = {
            "domain": [y1 - height, y1],
            "anchor": f"x{suffix}",
            "nticks": 4,
            "tickformat": ".3~g",
            "tickfont": {"size": 10},
        }
        better = "↑ better" if name in SCORE_METRICS else "↓ better"
        notes.append(_panel_title(name, better, x0, y1))
        data.append(
            {
                "type": "bar",
                "name": name,
                "showlegend": False,
                "x": labels,
                "y": [
                    (r.get("metrics") or {}).get(name)
                    if _finite((r.get("metrics") or {}).get(name))
                    else None
                    for r in runs
                ],
                "marker": {"color": PALETTE[0]},
                # The value on each bar: near-equal runs (R² 0.92 and 0.96) look alike.
                "texttemplate": "%{y:.4g}",
                "textposition": "inside",
                "insidetextanchor": "end",
                "textfont": {"color": "white", "size": 11},
                "xaxis": f"x{suffix}",
                "yaxis": f"y{suffix}",
                "hovertemplate": f"%{{x}}: {name} %{{y:.4g}}<extra></extra>",
            }
        )
    return {
        "data": data,
        "layout": layout(
            title,
            height=90 + 170 * lines,
            annotations=notes,
            margin={"l": 50, "r": 20, "t": 64, "b": 40},
            **axes,
        ),
    }
