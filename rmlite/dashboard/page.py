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


PLOTLY_CDN = "https://cdn.plot.ly"
"""Where ``--plotly cdn`` reports load plotly.js from (plotly.py's own CDN)."""


def plotly_cdn_tag() -> str:
    """A ``<script>`` for the CDN copy of the installed plotly.js, pinned by its version and
    by a Subresource-Integrity hash of the wheel's file (as plotly.py's own
    ``include_plotlyjs="cdn"``), so the browser runs only those exact bytes."""
    import base64
    import hashlib

    from plotly.offline import get_plotlyjs_version

    digest = hashlib.sha256(plotly_js_path().read_bytes()).digest()
    return (
        f'<script src="{PLOTLY_CDN}/plotly-{get_plotlyjs_version()}.min.js" '
        f'integrity="sha256-{base64.b64encode(digest).decode()}" crossorigin="anonymous">'
        f"</script>"
    )


def render_report(title: str, data_json: str, plotly: str = "inline") -> str:
    """The report page, the data inlined. ``plotly="inline"``: plotly.js too (about 4.6 MB;
    the file opens offline and references nothing outside); ``"cdn"``: plotly.js from
    :data:`PLOTLY_CDN` (a small file that needs the network to draw)."""
    if plotly == "cdn":
        tag, csp = (
            plotly_cdn_tag(),
            _CSP_REPORT.replace(
                "script-src 'unsafe-inline'", f"script-src {PLOTLY_CDN} 'unsafe-inline'"
            ),
        )
    elif plotly == "inline":
        js = plotly_js_path().read_text(encoding="utf-8")
        tag, csp = f"<script>{_script_safe(js)}</script>", _CSP_REPORT
    else:
        raise ValueError(f"plotly must be 'inline' or 'cdn'; got {plotly!r}")
    return _PAGE.format(
        title=html.escape(title),
        csp=csp,
        plotly=tag,
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
.grid.tables { grid-template-columns: minmax(0, 2fr) minmax(0, 3fr); }
.card { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 10px 12px;
        min-width: 0; overflow: hidden; }
.card h2 { font-size: 14px; margin: 0 0 8px; }
.card .scroll { max-height: 260px; overflow: auto; }
.card .scroll.tall { max-height: none; }
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
td.path { white-space: normal; overflow-wrap: anywhere; min-width: 120px; }
td a, .link { color: #1d4ed8; text-decoration: none; cursor: pointer; }
td a:hover { text-decoration: underline; }
tr.chosen td { background: #eff6ff; }
nav.pages { display: flex; gap: 4px; }
nav.pages a { color: #cbd5e1; text-decoration: none; padding: 3px 10px; border-radius: 4px;
              font-size: 13px; }
nav.pages a.on { background: #334155; color: #fff; }
body.report nav.pages { display: none; }
section[hidden] { display: none; }
body.report section[data-page] { display: block; }
body.report section[data-page="compare"] { display: none; }
.section-title { font-size: 15px; margin: 18px 20px 0; color: #0f172a; }
body:not(.report) .section-title { display: none; }
.info { margin: 8px 20px 0; font-size: 13px; color: #334155; }
.info.bad { color: #dc2626; }
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
  <nav class="pages" id="pages">
    <a data-page="overview">overview</a><a data-page="model">model</a>
    <a data-page="dataset">dataset</a><a data-page="compare">compare runs</a>
  </nav>
  <span class="store" id="store"></span>
  <span class="status" id="status">loading…</span>
</header>
<div id="busy" role="status"></div>
<div id="notes"></div>
<div class="controls">
  <label>dataset <select id="dataset"><option value="">all datasets</option></select></label>
  <label>model <select id="model"></select></label>
  <label>history <select id="since">
    <option value="">all passes</option><option value="1h">last hour</option>
    <option value="1d">last day</option><option value="7d">last 7 days</option>
    <option value="30d">last 30 days</option></select></label>
</div>
<section data-page="overview">
<div class="kpis" id="kpis"></div>
<div class="grid tables">
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
  <div class="card"><button type="button" class="toggle" id="drift-toggle" data-expand="drift" hidden></button>
    <div class="chart" id="chart-drift"></div></div>
  <div class="card"><div class="chart" id="chart-drift_histograms"></div></div>
</div>
<div class="grid">
  <div class="card"><div class="chart" id="chart-drift_history"></div></div>
  <div class="card"><h2>Alerts</h2><div class="scroll"><table id="alerts"></table></div></div>
</div>
<div class="grid two">
  <div class="card"><div class="chart" id="chart-trials"></div></div>
  <div class="card" id="card-importance" hidden><div class="chart" id="chart-importance"></div></div>
</div>
</section>
<section data-page="model" hidden>
<h2 class="section-title">Episodes of the model's window</h2>
<p class="info" id="model-info"></p>
<div class="grid two">
  <div class="card" id="card-returns"><div class="chart" id="chart-returns"></div></div>
  <div class="card"><h2>Worst episodes (largest |predicted − true return|)</h2>
    <div class="scroll"><table id="worst"></table></div></div>
  <div class="card" id="card-trace"><div class="chart" id="chart-trace"></div></div>
  <div class="card" id="card-uncertainty"><div class="chart" id="chart-uncertainty"></div></div>
  <div class="card" id="card-gain"><button type="button" class="toggle" data-expand="gain" hidden></button>
    <div class="chart" id="chart-gain"></div></div>
</div>
</section>
<section data-page="dataset" hidden>
<h2 class="section-title">The dataset</h2>
<p class="info" id="dataset-info"></p>
<div class="grid two">
  <div class="card" id="card-lengths"><div class="chart" id="chart-lengths"></div></div>
  <div class="card" id="card-returns_hist"><div class="chart" id="chart-returns_hist"></div></div>
  <div class="card" id="card-rewards"><div class="chart" id="chart-rewards"></div></div>
  <div class="card"><h2>rmlite check</h2><div class="scroll tall"><table id="checks"></table></div></div>
</div>
<div class="grid">
  <div class="card"><h2>Relabels (reads or writes of this dataset)</h2>
    <div class="scroll"><table id="relabels"></table></div></div>
</div>
</section>
<section data-page="compare" hidden>
<div class="grid">
  <div class="card"><h2>Runs to compare (tick two or more)</h2>
    <div class="scroll"><table id="pick"></table></div></div>
  <div class="card" id="card-compare"><div class="chart" id="chart-compare"></div></div>
  <div class="card"><h2>Parameters and metrics side by side (those that differ first)</h2>
    <div class="scroll tall"><table id="params"></table></div></div>
</div>
</section>
{data}
<script>{script}</script>
</body>
</html>
"""

_SCRIPT = r"""
(function () {
  "use strict";
  const CHARTS = ["accuracy", "curves", "scatter", "residuals", "drift", "drift_histograms",
    "drift_history", "trials", "importance", "returns", "trace", "uncertainty", "gain",
    "lengths", "returns_hist", "rewards", "compare"];
  const OPTIONAL = ["importance", "returns", "trace", "uncertainty", "gain", "lengths",
    "returns_hist", "rewards", "compare"];  // hidden when the payload has no such chart
  const EXPANDED = {};  // top-k by default, every column on demand (drift, gain)
  let last = null;
  const POLL_MS = Number(document.body.dataset.pollMs) || 0;
  const inline = document.getElementById("rmlite-data");
  const $ = (id) => document.getElementById(id);
  const query = new URLSearchParams(location.search);
  const state = {
    page: query.get("page") || "overview",
    dataset: query.get("dataset") || "",
    model: query.get("model") || "",
    since: query.get("since") || "",
    episode: query.get("episode") || "",
    runs: query.get("runs") || "",
  };
  let version = null;
  let loading = false;

  function qs(extra) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...state, ...(extra || {}) })) {
      if (v && !(k === "page" && v === "overview")) q.set(k, v);
    }
    const text = q.toString();
    return text ? "?" + text : "";
  }
  const search = (extra) => qs(extra) || location.pathname;

  function csvOf(fig) {
    const quote = (v) => {
      const s = v === null || v === undefined ? "" : String(v);
      return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
    };
    const lines = [["trace", "x", "y", "z"]];
    for (const t of fig.data || []) {
      const name = t.name || t.type;
      if (t.type === "heatmap") {
        (t.y || []).forEach((y, i) => (t.x || []).forEach((x, j) => lines.push([name, x, y, t.z[i][j]])));
        continue;
      }
      const n = Math.max((t.x || []).length, (t.y || []).length);
      for (let i = 0; i < n; i++) lines.push([name, (t.x || [])[i], (t.y || [])[i], ""]);
    }
    return lines.map((r) => r.map(quote).join(",")).join("\n") + "\n";
  }

  function download(name, fig) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([csvOf(fig)], { type: "text/csv" }));
    a.download = "rmlite-" + name + ".csv";
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  function config(name) {
    return {
      displaylogo: false, responsive: true,
      toImageButtonOptions: { filename: "rmlite-" + name },
      modeBarButtonsToAdd: [{
        name: "csv", title: "Download the chart's data as CSV", icon: Plotly.Icons.disk,
        click: (gd) => download(name, { data: gd.data }),
      }],
    };
  }

  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return v.toLocaleString("en-US");
      return Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 ? v.toExponential(3) : v.toPrecision(4);
    }
    return String(v);
  }

  const PATHS = ["model_path", "model", "destination", "message", "check"];

  function table(id, rows, columns, empty, decorate) {
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
        if (typeof v === "number" && !(decorate && key === columns[0][0])) td.className = "num";
        if (key === "severity") td.className = "sev-" + v;
        if (key === "message") td.className = "wrap";
        else if (PATHS.includes(key)) td.className = "path";
      }
      if (decorate) decorate(tr, row);
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

  function showPage() {
    for (const s of document.querySelectorAll("section[data-page]")) {
      s.hidden = !inline && s.dataset.page !== state.page;
    }
    for (const a of document.querySelectorAll("#pages a")) {
      a.href = search({ page: a.dataset.page, episode: "" });
      a.className = a.dataset.page === state.page ? "on" : "";
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
    for (const n of [...(p.notes || []), ...(p.page_error ? [p.page_error] : [])]) {
      const d = document.createElement("div");
      d.textContent = n;
      notes.appendChild(d);
    }
    const sel = p.selected || {};
    options($("dataset"), (p.datasets || []).map((d) => [d.dataset, d.dataset]), sel.dataset, "all datasets");
    options($("model"), (p.models || []).map((m) => [m.path, m.label]), sel.model, null);
    $("since").value = p.since || "";
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
    renderModel(p.model_page);
    renderDataset(p.dataset_page);
    renderCompare(p);
    last = p;
    showPage();
    draw();
  }

  function renderModel(m) {
    if (!m) {
      $("model-info").textContent = state.page === "model" || inline
        ? "no model to score: train one (rmlite train --out DIR) and pick it above" : "";
      table("worst", [], [["episode_id", "episode"]], "no episodes scored");
      return;
    }
    const w = m.window || {};
    $("model-info").textContent = `${w.episodes} episodes (${fmt(w.transitions)} transitions) of ` +
      `${w.dataset} the model was not trained on, ${w.target} target, ` +
      `${w.members} member${w.members === 1 ? "" : "s"}. Click an episode for its trace.`;
    table("worst", m.worst || [], [["episode_id", "episode"], ["length", "steps"],
      ["true_return", "true return"], ["pred_return", "predicted"], ["error", "predicted − true"]],
      "no episodes with logged rewards", (tr, row) => {
        const td = tr.cells[0];
        const a = document.createElement("a");
        a.textContent = "episode " + row.episode_id;
        a.href = search({ page: "model", episode: String(row.episode_id) });
        a.dataset.episode = String(row.episode_id);
        td.replaceChildren(a);
        if (String(row.episode_id) === String(m.episode)) tr.className = "chosen";
      });
  }

  function renderDataset(d) {
    if (!d) {
      $("dataset-info").textContent = "";
      table("checks", [], [["check", "check"]], "no dataset");
      table("relabels", [], [["relabel_id", "relabel"]], "no dataset");
      return;
    }
    const s = d.summary || {};
    const info = $("dataset-info");
    info.textContent = `${d.dataset}: ${fmt(s.episodes)} episodes, ${fmt(s.transitions)} transitions, ` +
      `${fmt(s.terminated)} terminated, ${fmt(s.truncated)} truncated. ` +
      ((d.problems || []).length ? "check: " + d.problems.join("; ") : "check: no problems found");
    info.className = "info" + ((d.problems || []).length ? " bad" : "");
    table("checks", d.checks || [], [["check", "check"], ["value", "value"]], "nothing checked");
    table("relabels", d.relabels || [], [["relabel_id", "relabel"], ["source_dataset", "from"],
      ["destination", "to"], ["destination_kind", "kind"], ["model_path", "model"], ["gamma", "gamma"],
      ["pessimism", "pessimism"], ["rows", "rows"], ["created_at", "time"]],
      "no relabels: rmlite relabel writes one");
  }

  function renderCompare(p) {
    const c = p.compare_page;
    const chosen = new Set(((c && c.runs) || []).map(String));
    table("pick", p.runs || [], [["run_id", "run"], ["kind", "kind"], ["dataset", "dataset"],
      ["target", "target"], ["backend", "backend"], ["metric", "metric"], ["holdout", "hold-out"],
      ["model_path", "model"], ["created_at", "created"]], "no training runs yet", (tr, row) => {
        const box = document.createElement("input");
        box.type = "checkbox";
        box.value = String(row.run_id);
        box.checked = chosen.has(String(row.run_id));
        box.addEventListener("change", () => {
          const picked = [...document.querySelectorAll("#pick input:checked")].map((b) => b.value);
          state.runs = picked.join(",");
          navigate();
        });
        const label = document.createElement("label");
        label.append(box, " " + row.run_id);
        tr.cells[0].replaceChildren(label);
      });
    const runs = (c && c.runs) || [];
    table("params", (c && c.params) || [], [["param", "parameter"], ...runs.map((r) => ["run " + r, "run " + r])],
      "tick runs above to compare them", (tr, row) => { if (row.differs) tr.className = "chosen"; });
  }

  function draw() {
    const figures = Object.assign({}, (last && last.figures) || {},
      (last && last.model_page && last.model_page.figures) || {},
      (last && last.dataset_page && last.dataset_page.figures) || {},
      (last && last.compare_page && last.compare_page.figures) || {});
    const m = last && last.model_page;
    if (m && m.traces && m.traces[String(m.episode)]) figures.trace = m.traces[String(m.episode)];
    for (const button of document.querySelectorAll("button[data-expand]")) {
      const name = button.dataset.expand;
      const all = figures[name + "_all"];
      button.hidden = !all;
      if (all) {
        const n = new Set(all.data.flatMap((t) => t.y || [])).size;
        button.textContent = EXPANDED[name] ? "show the top ones only" : "show all " + n;
      }
    }
    for (const name of CHARTS) {
      const wide = EXPANDED[name] ? figures[name + "_all"] : null;
      const wideHistory = name === "drift_history" && EXPANDED.drift ? figures.drift_history_all : null;
      const fig = wide || wideHistory || figures[name];
      const card = $("card-" + name);
      if (card && OPTIONAL.includes(name)) card.hidden = !fig;
      const section = $("chart-" + name).closest("section");
      if (fig && !(section && section.hidden)) Plotly.react("chart-" + name, fig.data, fig.layout, config(name));
    }
  }

  for (const button of document.querySelectorAll("button[data-expand]")) {
    button.addEventListener("click", () => {
      EXPANDED[button.dataset.expand] = !EXPANDED[button.dataset.expand];
      draw();
    });
  }
  // The worst episodes' traces come with the data: switch without asking the server.
  $("worst").addEventListener("click", (event) => {
    const a = event.target.closest("a[data-episode]");
    const m = last && last.model_page;
    if (!a || !m || !m.traces || !m.traces[a.dataset.episode]) return;
    event.preventDefault();
    m.episode = a.dataset.episode;
    state.episode = a.dataset.episode;
    if (!inline) history.replaceState(null, "", search());
    renderModel(m);
    draw();
  });

  if (inline) {
    document.body.classList.add("report");
    render(JSON.parse(inline.textContent));
    return;
  }

  function navigate() {
    history.replaceState(null, "", search());
    load();
  }

  async function load() {
    if (loading) return;
    loading = true;
    try {
      const r = await fetch("/api/data" + qs(), { cache: "no-store" });
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

  $("dataset").addEventListener("change", () => { state.dataset = $("dataset").value; state.episode = ""; navigate(); });
  $("model").addEventListener("change", () => { state.model = $("model").value; state.episode = ""; navigate(); });
  $("since").addEventListener("change", () => { state.since = $("since").value; navigate(); });
  showPage();
  load().finally(() => setTimeout(poll, POLL_MS));
})();
"""
