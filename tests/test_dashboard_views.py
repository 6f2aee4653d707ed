"""Every page and view of the dashboard and the report on a real MuJoCo log
(Walker2d-v5, the README tour's log): rendered in headless Chromium, nothing past the viewport at 1,400 and
1,920 px, the selection in shareable URLs, CSV export; screenshots into ``artifacts/``.

One store, one ``rmlite dashboard`` and one browser serve every test of the module.
"""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from test_dashboard import ARTIFACTS, Watched, chromium_path, free_port, get, rmlite

from rmlite import FeatureSpec, LogStore, RewardRegressor
from rmlite.evaluation.monitor import monitor_pass
from rmlite.pipeline import train
from rmlite.rl.relabeling import relabel
from rmlite.testing import rollout
from rmlite.tuning import resolve_storage, tune

ENV = "Walker2d-v5"


def gentle(obs: Any, rng: Any) -> Any:
    """The README tour's policy: random actions within ±0.3, so the walker stays up for
    20-70 steps (the full random policy falls in about 20)."""
    return rng.uniform(-0.3, 0.3, 6)


WIDTHS = (1400, pytest.param(1920, marks=pytest.mark.slow))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Walker2d: 40 episodes (1,657 transitions), an ensemble of three boosters and a
    single one (two runs to compare), two monitor passes (the 8 hold-out episodes, then 8
    new ones), one relabel. The models are good (hold-out R² above 0.9, no warning), so
    the screenshots show what a user's working project looks like."""
    root = tmp_path_factory.mktemp("views")
    store = LogStore(root / "project.duckdb")
    store.ingest(rollout(ENV, episodes=40, seed=0, policy=gentle), dataset="walker")
    params = {"n_estimators": 100, "n_jobs": 1}
    spec = FeatureSpec(next_obs=True)  # 40 features; obs and action alone give R² 0.89
    for name, extra in (("ensemble", {"n_members": 3}), ("single", {})):
        result = train(store, "walker", spec, {**params, **extra}, out=root / name)
        assert result.metrics["holdout"]["r2"] > 0.9 and result.warnings == [], result.metrics
    assert monitor_pass(store, root / "ensemble", "walker") is not None
    more = rollout(ENV, episodes=8, seed=1, policy=gentle)
    store.ingest(more.with_columns(pl.col("episode_id") + 1000), dataset="walker")
    assert monitor_pass(store, root / "ensemble", "walker") is not None
    relabel(store, root / "single", "walker", "walker-relabeled")
    # A small study beside the store, so the trials chart has trials (and no third run).
    frame = store.features("walker", spec)
    tune(RewardRegressor(n_estimators=30, n_jobs=1), frame.X, frame.y, groups=frame.groups,
         n_trials=6, cv=2, storage=resolve_storage(None, store.path),
         study_name="walker-reward-lightgbm", refit=False)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rmlite.cli", "dashboard", "--db",
         str(project / "project.duckdb"), "--port", str(port), "--poll", "0.5"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                get(base + "/api/version", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("dashboard did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"], headless=True)
        yield b
        b.close()


def overflowing(page: Any) -> list[str]:
    """Boxes past the viewport's right edge, and tables wider than their card (clipped)."""
    return page.evaluate(
        """() => {
          const width = document.documentElement.clientWidth;
          const out = [];
          const shown = (el) => el.getClientRects().length > 0;
          for (const el of document.querySelectorAll(
              'header, .controls, .kpis, .card, .chart, .main-svg, table, .info')) {
            const box = el.getBoundingClientRect();
            if (shown(el) && box.width > 0 && (box.right > width + 1 || box.left < -1)) {
              out.push(`${el.tagName}#${el.id}: ${Math.round(box.left)}..${Math.round(box.right)} of ${width}`);
            }
          }
          for (const el of document.querySelectorAll('.scroll')) {
            if (shown(el) && el.scrollWidth > el.clientWidth + 1) {
              out.push(`table #${el.querySelector('table').id} clipped: ${el.scrollWidth} > ${el.clientWidth}`);
            }
          }
          if (document.documentElement.scrollWidth > width + 1) out.push('page scrolls sideways');
          return out;
        }"""
    )


def drawn(page: Any, *charts: str) -> None:
    for chart in charts:
        page.wait_for_selector(f"#chart-{chart} svg.main-svg", timeout=20_000)


def shoot(w: Watched, name: str) -> None:
    """A full-page screenshot into artifacts/, in a 256-colour palette: the pages are flat
    UI colours, and the 1,400 px ones are committed (each under about 300 KB)."""
    ARTIFACTS.mkdir(exist_ok=True)
    width = w.page.viewport_size["width"]
    path = ARTIFACTS / f"{name}-{width}.png"
    w.page.screenshot(path=str(path), full_page=True)
    try:
        from PIL import Image
    except ImportError:  # Pillow is not a test dependency: keep the full-colour file
        return
    with Image.open(path) as shot:
        small = shot.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


@pytest.fixture
def tab(browser: Any, server: str) -> Iterator[Any]:
    opened: list[Watched] = []

    def open_tab(query: str, width: int = 1400) -> Watched:
        w = Watched(browser, (server + "/", "data:", "blob:"))
        w.page.set_viewport_size({"width": width, "height": 900})
        w.page.goto(server + "/" + query)
        opened.append(w)
        return w

    yield open_tab
    for w in opened:
        assert w.problems == []
        w.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_overview_fits_and_reads(tab: Any, width: int) -> None:
    w = tab("", width)
    drawn(w.page, "accuracy", "curves", "scatter", "drift", "drift_history", "trials")
    # One small panel per metric, each on its own axis, and the marks' shapes in a legend.
    axes = w.page.locator("#chart-accuracy .yaxislayer-above").count()
    assert axes >= 4, axes
    legend = w.page.locator("#chart-accuracy .legendtext").all_text_contents()
    assert {"monitor pass", "training hold-out"} <= set(legend), legend
    # Log ticks read as numbers, not "5, 2, 0.1, 5, 2".
    ticks = w.page.locator("#chart-curves .yaxislayer-above .ytick text").all_text_contents()
    assert ticks and all(t.replace(".", "", 1).isdigit() for t in ticks), ticks
    assert not any(t in ("2", "5") for t in ticks) or len(set(ticks)) == len(ticks)
    # Each alert once (the overfitting alarm of both passes is one row).
    messages = w.page.locator("#alerts td.wrap").all_text_contents()
    assert len(messages) == len(set(messages)), messages
    assert overflowing(w.page) == []
    shoot(w, "page-overview")


@pytest.mark.slow  # the server loads and scores two models (about 15 s)
@pytest.mark.parametrize("width", WIDTHS)
def test_model_page_draws_every_view(tab: Any, project: Path, width: int) -> None:
    model = str(project / "ensemble")
    w = tab("?" + urllib.parse.urlencode({"page": "model", "model": model}), width)
    page = w.page
    drawn(page, "returns", "trace", "uncertainty", "gain")
    # Predicted vs true returns: one point per scored episode, the worst ten apart.
    points = page.locator("#chart-returns .scatterlayer .point").count()
    assert points >= 10, points
    assert page.locator("#worst tbody tr").count() == 10
    assert page.locator("#chart-uncertainty .scatterlayer .point").count() > 100
    legend = page.locator("#chart-trace .legendtext").all_text_contents()
    assert {"learned", "logged", "±1 std of the members"} <= set(legend), legend
    assert page.locator("#chart-gain .bars .point").count() == 20  # top 20 of 40
    assert overflowing(page) == []
    shoot(w, "page-model")

    # A worst episode's link shows its trace and puts it in the URL, to share.
    link = page.locator("#worst a").nth(3)
    episode = link.get_attribute("data-episode")
    link.click()
    page.wait_for_function(
        f"document.querySelector('#chart-trace .gtitle').textContent.endsWith(' {episode}')"
    )
    assert f"episode={episode}" in page.url
    # ... and the same URL, opened afresh, shows the same view.
    again = tab(page.url.replace(page.url.split("/?")[0] + "/", ""), width)
    drawn(again.page, "trace")
    title = again.page.locator("#chart-trace .gtitle").text_content()
    assert title is not None and title.endswith(f" {episode}")
    assert again.page.locator("#model").input_value() == model


def test_a_single_booster_has_no_uncertainty_view(tab: Any, project: Path) -> None:
    w = tab("?" + urllib.parse.urlencode({"page": "model", "model": str(project / "single")}))
    drawn(w.page, "returns", "uncertainty")
    assert "n_members > 1" in w.page.inner_text("#chart-uncertainty")


@pytest.mark.parametrize("width", WIDTHS)
def test_dataset_page(tab: Any, width: int) -> None:
    w = tab("?page=dataset&dataset=walker", width)
    drawn(w.page, "lengths", "returns_hist", "rewards")
    info = w.page.inner_text("#dataset-info")
    assert "48 episodes" in info and "1,996 transitions" in info, info
    assert w.page.locator("#checks tbody tr").count() > 3
    assert "walker-relabeled" in w.page.inner_text("#relabels")
    assert overflowing(w.page) == []
    shoot(w, "page-dataset")


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_page_puts_runs_side_by_side(tab: Any, width: int) -> None:
    w = tab("?page=compare", width)
    drawn(w.page, "compare")
    assert w.page.locator("#pick input:checked").count() == 2
    params = w.page.inner_text("#params")
    assert "n_members" in params and "hold-out r2" in params
    assert overflowing(w.page) == []
    shoot(w, "page-compare")
    # Unticking one run leaves one in the URL and in the chart.
    w.page.locator("#pick input:checked").first.uncheck()
    w.page.wait_for_function("location.search.includes('runs=')")
    w.page.wait_for_function("document.querySelectorAll('#params th').length === 2")


def test_time_range_and_csv_export(tab: Any, server: str) -> None:
    # Both passes ran within the last hour: the range keeps them; the query string says so.
    data = get(server + "/api/data?since=1h")
    assert data["since"] == "1h" and data["figures"]["accuracy"]["data"]
    w = tab("?since=1h")
    drawn(w.page, "accuracy")
    assert w.page.locator("#since").input_value() == "1h"
    with w.page.expect_download() as info:
        w.page.locator("#chart-accuracy").hover()
        w.page.locator("#chart-accuracy .modebar-btn[data-title*='CSV']").click()
    text = Path(info.value.path()).read_text()
    assert text.startswith("trace,x,y,z\n") and "monitor pass" in text


@pytest.mark.slow  # two reports, each scoring the model twice (about 30 s)
def test_report_carries_the_model_and_dataset_views(
    browser: Any, project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    done = rmlite("report", "--db", str(project / "project.duckdb"), "--model",
                  str(project / "ensemble"), "--dataset", "walker", "--out", str(out), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["bytes"] > 4_000_000  # plotly.js inlined
    w = Watched(browser, (out.as_uri(), "data:", "blob:"))
    try:
        w.page.goto(out.as_uri())
        drawn(w.page, "accuracy", "returns", "trace", "uncertainty", "lengths", "rewards")
        messages = w.page.locator("#alerts td.wrap").all_text_contents()
        assert len(messages) == len(set(messages)), messages
        # Trace links switch the trace inside the file (no server).
        link = w.page.locator("#worst a").nth(2)
        episode = link.get_attribute("data-episode")
        link.click()
        w.page.wait_for_function(
            f"document.querySelector('#chart-trace .gtitle').textContent.endsWith(' {episode}')"
        )
        assert overflowing(w.page) == []
        shoot(w, "report")
        assert w.problems == []
    finally:
        w.close()
    small = tmp_path / "cdn.html"
    done = rmlite("report", "--db", str(project / "project.duckdb"), "--model",
                  str(project / "single"), "--dataset", "walker", "--out", str(small),
                  "--plotly", "cdn", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = small.read_text()
    assert json.loads(done.stdout)["bytes"] < 1_000_000
    assert 'src="https://cdn.plot.ly/plotly-' in html and 'integrity="sha256-' in html


def test_doctests_and_a_plotly_choice_that_does_not_exist(tmp_path: Path) -> None:
    from rmlite.dashboard import data, figures, views
    from rmlite.dashboard.report import build_report
    from rmlite.exceptions import ParameterError

    for module in (figures, views, data):
        assert doctest.testmod(module).failed == 0, module.__name__
    with pytest.raises(ParameterError, match="plotly must be 'inline' or 'cdn'; got 'web'"):
        build_report(LogStore(tmp_path / "s.duckdb"), tmp_path, "d", plotly="web")
    assert not (tmp_path / "s.duckdb").exists()


def test_two_hundred_columns_stay_legible(browser: Any, tmp_path: Path) -> None:
    """Drift of 200 features (and the three model columns) over 12 passes, drawn from
    made-up rows into the report page: the 25 worst by default, all 203 on demand, every
    name whole, nothing past 1,400 px."""
    import numpy as np

    from rmlite.dashboard.data import drift_figures, dumps
    from rmlite.dashboard.page import render_report

    rng = np.random.default_rng(0)
    names = [f"next_obs_{i}_long_feature_name" for i in range(200)]
    kinds = ["feature"] * 200 + ["reward", "prediction", "residual"]
    history = []
    for pass_id in range(1, 13):
        psi = rng.gamma(1.0, 0.03 * pass_id / 6, size=len(kinds))
        for name, kind, p in zip(
            [*names, "reward", "prediction", "residual"], kinds, psi, strict=True
        ):
            severity = "alert" if p >= 0.25 else "warn" if p >= 0.1 else "ok"
            history.append({"pass_id": pass_id, "kind": kind, "name": name, "psi": float(p),
                            "wasserstein": float(p) * 2, "severity": severity})  # fmt: skip
    latest = [r for r in history if r["pass_id"] == 12]
    payload = {"figures": drift_figures(latest, history_rows=history), "report": "200 columns"}
    out = tmp_path / "wide.html"
    out.write_text(render_report("200 columns", dumps(payload)))
    w = Watched(browser, (out.as_uri(), "data:"))
    try:
        page = w.page
        page.goto(out.as_uri())
        drawn(page, "drift", "drift_history")
        labels = page.locator("#chart-drift .yaxislayer-above .ytick text").all_text_contents()
        assert len(labels) == 25 and all(label in (*names, "[reward]", "[prediction]",
                                                   "[residual]") for label in labels)  # fmt: skip
        heat = page.locator("#chart-drift_history .xaxislayer-above .xtick text")
        assert heat.count() == 12
        assert overflowing(page) == []
        page.locator("#drift-toggle").click()
        page.wait_for_function(
            "document.querySelectorAll('#chart-drift .yaxislayer-above .ytick').length === 203"
        )
        assert page.locator("#chart-drift_history .yaxislayer-above .ytick text").count() == 203
        assert overflowing(page) == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "drift-200-features-1400.png"), full_page=True)
        assert w.problems == []
    finally:
        w.close()


def test_page_queries_only_select(server: str, project: Path) -> None:
    """Hostile or stale query values fall back to a default view; none reaches SQL."""
    hostile = "1; DROP TABLE runs; --"
    for query in (
        {"page": "../../etc", "since": hostile},
        {"page": "model", "episode": hostile, "model": str(project / "ensemble")},
        {"page": "compare", "runs": f"{hostile},99999999999999999999999"},
        {"page": "dataset", "dataset": hostile},
    ):
        data = get(server + "/api/data?" + urllib.parse.urlencode(query), timeout=30)
        assert data["page"] in ("overview", "model", "compare", "dataset"), data["page"]
        assert data["since"] is None and "page_error" not in data, data.get("page_error")
    assert get(server + "/api/data?page=compare&runs=x")["compare_page"]["runs"] == [1, 2]
    assert LogStore(project / "project.duckdb").runs().height == 2
