"""The dashboard's one HTML page, live (data fetched from the app) or with data inlined.

The same page and script render both: the live app serves it with a ``<script src>``
pointing at its own copy of ``plotly.min.js`` and polls ``/api/version``; the report
inlines plotly.js and the data. A Content-Security-Policy forbids every request to
another origin, so the page cannot reach the network even by accident.
"""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path

# Plotly.js needs inline styles; 'unsafe-eval' for its compiled expressions in a few traces.
_CSP_LIVE = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'"
)
_CSP_REPORT = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'"
)


def plotly_js_path() -> Path:
    """``plotly.min.js`` as the installed plotly wheel ships it (no CDN)."""
    try:
        path = Path(str(resources.files("plotly").joinpath("package_data", "plotly.min.js")))
    except ModuleNotFoundError as exc:
        raise ImportError(
            "the dashboard needs plotly (for its plotly.min.js): pip install 'rmlite[dashboard]'"
        ) from exc
    if not path.is_file():
        raise ImportError(f"{path}: missing from the plotly package; reinstall plotly")
    return path


def render_live(store: str, poll_ms: int) -> str:
    """The page the app serves: data and plotly.js come from the app itself."""
    return _PAGE.format(
        title=html.escape(f"rmlite dashboard · {store}"),
        csp=_CSP_LIVE,
        plotly='<script src="/static/plotly.min.js"></script>',
        data="",
        poll_ms=int(poll_ms),
        style=_STYLE,
        script=_SCRIPT,
    )


def render_report(title: str, data_json: str) -> str:
    """A self-contained page: plotly.js and the data inlined, no reference outside."""
    js = plotly_js_path().read_text(encoding="utf-8")
    return _PAGE.format(
        title=html.escape(title),
        csp=_CSP_REPORT,
        plotly=f"<script>{_script_safe(js)}</script>",
        data=f'<script type="application/json" id="rmlite-data">{_script_safe(data_json)}</script>',
        poll_ms=0,
        style=_STYLE,
        script=_SCRIPT,
    )


def _script_safe(text: str) -> str:
    # Inside <script>, only "</" can end the element early; "<\/" means the same to JS
    # (in strings and regexes) and to JSON.parse (an escaped solidus).
    return text.replace("</", "<\\/")


_STYLE = """
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: #0f172a; background: #f1f5f9; }
header { display: flex; align-items: baseline; gap: 16px; padding: 12px 20px;
         background: #0f172a; color: #f8fafc; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; letter-spacing: .02em; }
header .store { color: #cbd5e1; font-family: ui-monospace, monospace; font-size: 12px; }
header .status { margin-left: auto; font-size: 12px; color: #86efac; }
header .status.off { color: #fca5a5; }
#busy { display: none; margin: 12px 20px 0; padding: 8px 12px; border-radius: 6px;
        background: #fef3c7; color: #92400e; border: 1px solid #fcd34d; font-size: 13px; }
#busy.on { display: block; }
#notes div { margin: 12px 20px 0; padding: 8px 12px; border-radius: 6px; background: #e0f2fe;
             color: #075985; border: 1px solid #7dd3fc; font-size: 13px; }
.controls { display: flex; gap: 20px; padding: 12px 20px 0; align-items: center; flex-wrap: wrap; }
.controls label { font-size: 13px; color: #334155; display: flex; gap: 6px; align-items: center; }
.controls select { font: inherit; padding: 4px 6px; border: 1px solid #cbd5e1; border-radius: 4px;
                   background: #fff; max-width: 560px; }
body.report .controls { display: none; }
.kpis { display: flex; gap: 12px; padding: 12px 20px 0; flex-wrap: wrap; }
.kpi { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 8px 14px;
       min-width: 120px; }
.kpi .v { font-size: 20px; font-weight: 600; }
.kpi .l { font-size: 12px; color: #64748b; }
.kpi.bad .v { color: #dc2626; }
.grid { display: grid; gap: 12px; padding: 12px 20px; }
.grid.two { grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); }
.card { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 10px 12px;
        min-width: 0; overflow: hidden; }
.card h2 { font-size: 14px; margin: 0 0 8px; }
.card .scroll { max-height: 260px; overflow: auto; }
.chart { width: 100%; min-height: 330px; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
th { text-align: left; color: #475569; font-weight: 600; border-bottom: 1px solid #cbd5e1;
     padding: 4px 8px; position: sticky; top: 0; background: #fff; }
td { padding: 3px 8px; border-bottom: 1px solid #f1f5f9; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.empty { color: #94a3b8; font-style: italic; }
td.wrap { white-space: normal; min-width: 280px; }
.sev-alert { color: #dc2626; font-weight: 600; } .sev-warn { color: #b45309; font-weight: 600; }
.toggle { float: right; position: relative; z-index: 2; font: inherit; font-size: 12px;
          padding: 3px 10px; border: 1px solid #cbd5e1; border-radius: 4px; background: #f8fafc;
          color: #1e293b; cursor: pointer; }
.toggle:hover { background: #e2e8f0; }
#overfitting { font-size: 13px; margin: 6px 0 0; color: #334155; }
#overfitting.alarm { color: #dc2626; font-weight: 600; }
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>{style}</style>
{plotly}
</head>
<body data-poll-ms="{poll_ms}">
<header>
  <h1>rmlite</h1>
  <span class="store" id="store"></span>
  <span class="status" id="status">loading…</span>
</header>
<div id="busy" role="status"></div>
<div id="notes"></div>
<div class="controls">
  <label>dataset <select id="dataset"><option value="">all datasets</option></select></label>
  <label>model <select id="model"></select></label>
</div>
<div class="kpis" id="kpis"></div>
<div class="grid two">
  <div class="card"><h2>Datasets</h2><div class="scroll"><table id="datasets"></table></div></div>
  <div class="card"><h2>Training runs</h2><div class="scroll"><table id="runs"></table></div></div>
</div>
<div class="grid two">
  <div class="card"><div class="chart" id="chart-accuracy"></div></div>
  <div class="card"><div class="chart" id="chart-curves"></div><p id="overfitting"></p></div>
  <div class="card"><div class="chart" id="chart-scatter"></div></div>
  <div class="card"><div class="chart" id="chart-residuals"></div></div>
</div>
<div class="grid two">
  <div class="card"><button type="button" class="toggle" id="drift-toggle" hidden></button>
    <div class="chart" id="chart-drift"></div></div>
  <div class="card"><div class="chart" id="chart-drift_histograms"></div></div>
</div>
<div class="grid">
  <div class="card"><div class="chart" id="chart-drift_history"></div></div>
</div>
<div class="grid two">
  <div class="card"><h2>Alerts</h2><div class="scroll"><table id="alerts"></table></div></div>
  <div class="card"><div class="chart" id="chart-trials"></div></div>
  <div class="card" id="card-importance" hidden><div class="chart" id="chart-importance"></div></div>
</div>
{data}
<script>{script}</script>
</body>
</html>
"""

_SCRIPT = r"""
(function () {
  "use strict";
  const CHARTS = ["accuracy", "curves", "scatter", "residuals", "drift", "drift_histograms",
    "drift_history", "trials", "importance"];
  const EXPANDABLE = ["drift", "drift_history"];  // top-k by default, every column on demand
  let showAll = false;
  let last = null;
  const CONFIG = { displaylogo: false, responsive: true };
  const POLL_MS = Number(document.body.dataset.pollMs) || 0;
  const inline = document.getElementById("rmlite-data");
  const $ = (id) => document.getElementById(id);
  let version = null;
  let loading = false;

  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return v.toLocaleString("en-US");
      return Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 ? v.toExponential(3) : v.toPrecision(4);
    }
    return String(v);
  }

  function table(id, rows, columns, empty) {
    const t = $(id);
    t.replaceChildren();
    const head = t.createTHead().insertRow();
    for (const [, label] of columns) {
      const th = document.createElement("th");
      th.textContent = label;
      head.appendChild(th);
    }
    const body = t.createTBody();
    if (!rows.length) {
      const cell = body.insertRow().insertCell();
      cell.colSpan = columns.length;
      cell.className = "empty";
      cell.textContent = empty;
      return;
    }
    for (const row of rows) {
      const tr = body.insertRow();
      for (const [key] of columns) {
        const td = tr.insertCell();
        const v = row[key];
        td.textContent = fmt(v);
        if (typeof v === "number") td.className = "num";
        if (key === "severity") td.className = "sev-" + v;
        if (key === "message") td.className = "wrap";
      }
    }
  }

  function options(select, items, selected, first) {
    const keep = selected ?? "";
    select.replaceChildren();
    if (first) select.add(new Option(first, ""));
    for (const [value, label] of items) select.add(new Option(label, value));
    select.value = keep;
    if (select.value !== keep) select.selectedIndex = 0;
  }

  function setBusy(note) {
    const el = $("busy");
    el.textContent = note || "";
    el.className = note ? "on" : "";
  }

  function kpis(items) {
    const box = $("kpis");
    box.replaceChildren();
    for (const k of items || []) {
      const div = document.createElement("div");
      div.className = "kpi" + (k.bad ? " bad" : "");
      const v = document.createElement("div");
      v.className = "v";
      v.textContent = fmt(k.value);
      const l = document.createElement("div");
      l.className = "l";
      l.textContent = k.label;
      div.append(v, l);
      box.appendChild(div);
    }
  }

  function render(p) {
    version = p.version;
    document.body.dataset.version = p.version || "";
    $("store").textContent = p.store || "";
    const status = $("status");
    if (p.report) {
      status.textContent = p.report;
    } else {
      status.textContent = p.error ? "error: " + p.error : "live · data read at " + (p.read_at || "—");
    }
    status.className = "status" + (p.error ? " off" : "");
    setBusy(p.busy);
    const notes = $("notes");
    notes.replaceChildren();
    for (const n of p.notes || []) {
      const d = document.createElement("div");
      d.textContent = n;
      notes.appendChild(d);
    }
    const sel = p.selected || {};
    options($("dataset"), (p.datasets || []).map((d) => [d.dataset, d.dataset]), sel.dataset, "all datasets");
    options($("model"), (p.models || []).map((m) => [m.path, m.label]), sel.model, null);
    kpis(p.kpis);
    table("datasets", p.datasets || [], [["dataset", "name"], ["transitions", "transitions"],
      ["episodes", "episodes"], ["updated_at", "updated"]], "no datasets yet: rmlite ingest …");
    table("runs", p.runs || [], [["run_id", "run"], ["kind", "kind"], ["dataset", "dataset"],
      ["target", "target"], ["backend", "backend"], ["metric", "metric"], ["holdout", "hold-out"],
      ["model_path", "model"], ["created_at", "created"]], "no training runs yet: rmlite train …");
    table("alerts", p.alerts || [], [["pass_id", "pass"], ["severity", "severity"], ["source", "source"],
      ["name", "name"], ["message", "message"], ["created_at", "time"]], "no alerts");
    const of = p.overfitting;
    const ofEl = $("overfitting");
    ofEl.textContent = of ? (of.message || "overfitting: " + of.status) : "";
    ofEl.className = of && of.alarm ? "alarm" : "";
    last = p;
    draw();
  }

  function draw() {
    const figures = (last && last.figures) || {};
    const toggle = $("drift-toggle");
    const all = figures.drift_all;
    toggle.hidden = !all;
    if (all) {
      const n = new Set(all.data.flatMap((t) => t.y || [])).size;
      toggle.textContent = showAll ? "show the most severe only" : "show all " + n + " columns";
    }
    for (const name of CHARTS) {
      const wide = EXPANDABLE.includes(name) && showAll ? figures[name + "_all"] : null;
      const fig = wide || figures[name];
      const card = $("card-" + name);  // optional charts (importance: the report only)
      if (card) card.hidden = !fig;
      if (fig) Plotly.react("chart-" + name, fig.data, fig.layout, CONFIG);
    }
  }

  $("drift-toggle").addEventListener("click", () => {
    showAll = !showAll;
    draw();
  });

  if (inline) {
    document.body.classList.add("report");
    render(JSON.parse(inline.textContent));
    return;
  }

  async function load() {
    if (loading) return;
    loading = true;
    try {
      const q = new URLSearchParams();
      if ($("dataset").value) q.set("dataset", $("dataset").value);
      if ($("model").value) q.set("model", $("model").value);
      const r = await fetch("/api/data?" + q.toString(), { cache: "no-store" });
      render(await r.json());
    } finally {
      loading = false;
    }
  }

  async function poll() {
    try {
      const r = await fetch("/api/version", { cache: "no-store" });
      const v = await r.json();
      setBusy(v.busy);
      if (v.error) {
        $("status").textContent = "error: " + v.error;
        $("status").className = "status off";
      }
      if (v.version && v.version !== version && !v.busy && !v.error) await load();
    } catch (e) {
      $("status").textContent = "server unreachable; retrying";
      $("status").className = "status off";
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  $("dataset").addEventListener("change", load);
  $("model").addEventListener("change", load);
  load().finally(() => setTimeout(poll, POLL_MS));
})();
"""
