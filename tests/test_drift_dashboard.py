"""The drift views of the dashboard and the report, at 2 and at 57 features: a real store,
``rmlite dashboard`` in a subprocess, headless Chromium (the helpers of test_dashboard)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from test_dashboard import ARTIFACTS, Watched, chromium_path, free_port, get, rmlite

from rmlite import FeatureSpec, LogStore
from rmlite.evaluation.monitor import monitor_pass
from rmlite.pipeline import train
from rmlite.testing import rollout

DRIFT_CHARTS = ("drift", "drift_history", "drift_histograms")


def build_project(root: Path, env: str, spec: FeatureSpec, episodes: int, steps: int) -> Path:
    """A store with a model of ``env`` and three monitor passes (hold-out, two new logs)."""
    store = LogStore(root / "project.duckdb")
    store.ingest(rollout(env, episodes=episodes, seed=0, max_steps=steps), dataset="log")
    model = root / "model"
    train(store, "log", spec, {"n_estimators": 30, "n_jobs": 1}, out=model)
    assert monitor_pass(store, model, "log") is not None
    for seed, first in ((1, 10_000), (2, 20_000)):
        more = rollout(env, episodes=episodes // 2, seed=seed, max_steps=steps)
        store.ingest(more.with_columns(pl.col("episode_id") + first), dataset="log")
        assert monitor_pass(store, model, "log") is not None
    return root


PROJECTS = {
    # Two features: MountainCarContinuous position and velocity (no action).
    "2": ("MountainCarContinuous-v0", FeatureSpec(action=False), 16, 60),
    # 57: Walker2d-v5 obs, action, next_obs and their difference.
    "57": ("Walker2d-v5", FeatureSpec(next_obs=True, delta=True), 40, 60),
}


class Projects(dict[str, Path]):
    """Each project built on first use (the 57-feature one only by the slow tests)."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        super().__init__()
        self.factory = factory

    def __missing__(self, key: str) -> Path:
        env, spec, episodes, steps = PROJECTS[key]
        self[key] = build_project(self.factory.mktemp(f"f{key}"), env, spec, episodes, steps)
        return self[key]


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> Projects:
    return Projects(tmp_path_factory)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (as in test_dashboard)."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"], headless=True)
        yield b
        b.close()


@pytest.fixture
def serve(projects: Projects) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(key: str) -> str:
        port = free_port()
        db = str(projects[key] / "project.duckdb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "rmlite.cli", "dashboard", "--db", db, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        import time

        deadline = time.monotonic() + 30
        while True:
            try:
                get(base + "/api/version", timeout=1)
                return base
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("dashboard did not start") from None
                time.sleep(0.1)

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=10)


def overflowing(page: Any) -> list[str]:
    """Elements whose box reaches past the viewport's width (and what they are)."""
    return page.evaluate(
        """() => {
          const width = document.documentElement.clientWidth;
          const out = [];
          for (const el of document.querySelectorAll('.card, .chart, .main-svg, table, header, .kpis')) {
            const box = el.getBoundingClientRect();
            if (box.width > 0 && (box.right > width + 1 || box.left < -1)) {
              out.push(`${el.tagName}#${el.id}.${el.className.baseVal ?? el.className}: ` +
                       `${Math.round(box.left)}..${Math.round(box.right)} of ${width}`);
            }
          }
          return out;
        }"""
    )


def tick_labels(page: Any, chart: str) -> list[str]:
    return page.locator(f"#chart-{chart} .yaxislayer-above .ytick text").all_text_contents()


def check_drift_views(w: Watched, features: int, name: str, base: str | None = None) -> None:
    page = w.page
    if base is not None:
        # The limits drawn are the ones applied: raised above the fixed 0.1 for these
        # small windows, and each bar's warn mark where its row says.
        drift = get(base + "/api/data")["figures"]["drift"]
        marks = next(t for t in drift["data"] if t["name"] == "warn limit")
        assert max(marks["x"]) > 0.1, marks["x"]
    for chart in DRIFT_CHARTS:
        page.wait_for_selector(f"#chart-{chart} svg.main-svg", timeout=15_000)
    columns = features + 3  # and reward, prediction, residual
    shown = min(columns, 25)
    labels = tick_labels(page, "drift")
    assert len(labels) == shown, labels
    # Names are whole, not cut ("next_o"): every label is a feature name or a [kind].
    assert all(label.startswith(("obs_", "act_", "next_obs_", "delta_", "[")) for label in labels)
    # The heat-map: one row per column shown, one column per monitor pass (three).
    heat = page.locator("#chart-drift_history .xaxislayer-above .xtick text").all_text_contents()
    assert heat == ["pass 1", "pass 2", "pass 3"]
    assert len(tick_labels(page, "drift_history")) == shown
    assert page.locator("#chart-drift_histograms .bars .point").count() > 0
    # Limits drawn per column, as applied: one warn and one alert mark per bar and panel.
    marks = page.locator("#chart-drift .scatterlayer .point").count()
    assert marks == 4 * shown
    assert overflowing(page) == []
    toggle = page.locator("#drift-toggle")
    if columns > 25:
        assert toggle.is_visible() and f"show all {columns}" in toggle.inner_text()
        toggle.click()
        page.wait_for_function(
            f"document.querySelectorAll('#chart-drift .yaxislayer-above .ytick').length === {columns}"
        )
        assert len(tick_labels(page, "drift_history")) == columns
        assert overflowing(page) == []
        page.screenshot(path=str(ARTIFACTS / f"{name}-all.png"), full_page=True)
        toggle.click()
    else:
        assert not toggle.is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert w.problems == []


@pytest.mark.parametrize("features", [2, pytest.param(57, marks=pytest.mark.slow)])
def test_drift_views_render_and_fit_at_1400px(
    serve: Any, browser: Any, projects: Projects, features: int
) -> None:
    base = serve(str(features))
    w = Watched(browser, (base + "/", "data:"))
    try:
        w.page.goto(base + "/")
        check_drift_views(w, features, f"drift-{features}-features", base)
    finally:
        w.close()


@pytest.mark.slow
def test_report_draws_the_drift_views(browser: Any, projects: Projects, tmp_path: Path) -> None:
    root = projects["57"]
    out = tmp_path / "report.html"
    done = rmlite("report", "--db", str(root / "project.duckdb"), "--model", str(root / "model"),
                  "--dataset", "log", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    w = Watched(browser, (out.as_uri(), "data:"))
    try:
        w.page.goto(out.as_uri())
        check_drift_views(w, 57, "report-drift-57-features")
    finally:
        w.close()
