"""The dashboard and the report, as a user meets them: a real store, a real uvicorn
server started with ``rmlite dashboard`` in a subprocess, a real headless Chromium.

Chromium comes from the system (Debian's ``chromium``); Playwright never downloads one.
Without it the browser tests skip, unless ``RMLITE_REQUIRE_BROWSER=1`` (set by CI), which
makes them fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from rmlite import FeatureSpec, LogStore
from rmlite.evaluation.monitor import monitor_pass
from rmlite.pipeline import train
from rmlite.testing import rollout

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
HOSTILE = "x'; DROP TABLE runs; --"
CHARTS = ("accuracy", "curves", "scatter", "residuals", "drift", "trials")


def rmlite(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rmlite.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.status == 200
        return json.loads(response.read())


# ------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a dataset, a trained model (with learning curves), two real monitor
    passes and a small tuning study beside it; logs to ingest later."""
    root = tmp_path_factory.mktemp("dash")
    store = LogStore(root / "project.duckdb")
    store.ingest(rollout("Pendulum-v1", episodes=10, seed=0, max_steps=50), dataset="pend")
    model = root / "models" / "pend"
    train(store, "pend", FeatureSpec(), {"n_estimators": 40, "n_jobs": 1}, out=model)
    assert monitor_pass(store, model, "pend") is not None  # the hold-out episodes
    store.ingest(later(3, first_id=100), dataset="pend")
    assert monitor_pass(store, model, "pend") is not None  # new episodes, another policy seed
    later(7, first_id=200).write_parquet(root / "more.parquet")
    rollout("Pendulum-v1", episodes=2, seed=5, max_steps=30).write_parquet(root / "new.parquet")

    import optuna

    from rmlite.tuning import open_storage, resolve_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="pend-reward-lightgbm",
        storage=open_storage(resolve_storage(None, str(store.path))),
        sampler=optuna.samplers.TPESampler(seed=0),
    )
    study.optimize(lambda t: (t.suggest_float("learning_rate", 0.01, 0.3) - 0.1) ** 2, n_trials=6)
    return root


def later(seed: int, first_id: int) -> pl.DataFrame:
    """Ten more Pendulum episodes, numbered from ``first_id`` (new keys, same dataset)."""
    log = rollout("Pendulum-v1", episodes=10, seed=seed, max_steps=50)
    return log.with_columns(pl.col("episode_id") + first_id)


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[str]:
    """``rmlite dashboard`` on a free port, as a user starts it (default host)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rmlite.cli",
            "dashboard",
            "--db",
            str(project / "project.duckdb"),
            "--port",
            str(port),
            "--poll",
            "0.5",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline() or "{}")
        assert started.get("host") == "127.0.0.1", started
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                get(base + "/api/version", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(f"dashboard did not start: {proc.stderr.read()}") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    required = os.environ.get("RMLITE_REQUIRE_BROWSER") == "1"
    if found is None:
        if required:
            pytest.fail(
                "RMLITE_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)"
            )
        pytest.skip("no chromium on PATH (apt-get install chromium); browser tests skipped")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if required:
            pytest.fail("RMLITE_REQUIRE_BROWSER=1 but playwright is not installed")
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (which downloads nothing)."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"], headless=True)
        yield b
        b.close()


class Watched:
    """A page whose console errors, failed requests and off-host requests are kept."""

    def __init__(self, browser: Any, allowed: tuple[str, ...]) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on(
            "requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}")
        )
        self.page.on(
            "response",
            lambda r: (
                self.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None
            ),
        )
        self.page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith(allowed)
                else self.problems.append(f"request outside the page's origin: {r.url}")
            ),
        )

    def charts_drawn(self) -> None:
        for name in CHARTS:
            self.page.wait_for_selector(f"#chart-{name} svg.main-svg", timeout=15_000)

    def close(self) -> None:
        self.page.close()


# ---------------------------------------------------------------------- tests


def test_page_draws_every_chart_and_follows_a_new_ingest(
    server: str, browser: Any, project: Path
) -> None:
    w = Watched(browser, (server + "/", "data:"))
    try:
        w.page.goto(server + "/")
        w.charts_drawn()
        page = w.page
        assert page.locator("#chart-scatter .scatterlayer .point").count() == 500
        assert page.locator("#chart-drift .bars .point").count() >= 4  # obs, action, reward...
        assert page.locator("#chart-curves .scatterlayer .trace").count() >= 2  # train, valid
        assert page.locator("#chart-trials .scatterlayer .point").count() >= 6
        assert "pend" in page.inner_text("#datasets")
        assert "models/pend" in page.inner_text("#runs")
        assert "drift" in page.inner_text("#alerts")
        assert "overfitting" in page.inner_text("#overfitting").lower()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        page.evaluate("window.notReloaded = true")
        started = time.monotonic()
        done = rmlite(
            "ingest",
            str(project / "new.parquet"),
            "--db",
            str(project / "project.duckdb"),
            "--dataset",
            "pend-live",
            "--quiet",
        )
        assert done.returncode == 0, done.stderr
        page.wait_for_function(
            "document.querySelector('#datasets').innerText.includes('pend-live')", timeout=5_000
        )
        assert time.monotonic() - started < 8

        # A monitor pass written by another process appears too.
        db = str(project / "project.duckdb")
        done = rmlite("ingest", str(project / "more.parquet"), "--db", db, "--dataset", "pend",
                      "--quiet")  # fmt: skip
        assert done.returncode == 0, done.stderr
        done = rmlite("monitor", "--db", db, "--model", str(project / "models" / "pend"),
                      "--dataset", "pend")  # fmt: skip
        assert done.returncode == 0, done.stderr
        page.wait_for_function(
            "[...document.querySelectorAll('.kpi')].some(k => k.innerText.includes('monitor passes')"
            " && k.querySelector('.v').innerText === '3')",
            timeout=5_000,
        )
        assert "pass 3" in page.inner_text("#chart-scatter")
        assert page.evaluate("window.notReloaded") is True
        assert w.problems == []
    finally:
        w.close()


def test_a_writer_holding_the_store_leaves_the_last_data_and_a_note(
    server: str, browser: Any, project: Path
) -> None:
    w = Watched(browser, (server + "/", "data:"))
    db = project / "project.duckdb"
    try:
        w.page.goto(server + "/")
        w.charts_drawn()
        before = get(server + "/api/data")
        # Another process opens the store for writing (DuckDB's exclusive lock) and holds it.
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time\n"
                "from rmlite import LogStore\n"
                "with LogStore(sys.argv[1]).connect(write=True):\n"
                "    print('locked', flush=True)\n"
                "    time.sleep(4)\n",
                str(db),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            # Version checks are shared for half a second, so the note may take that long.
            deadline = time.monotonic() + 2
            while True:
                t = time.monotonic()
                version = get(server + "/api/version", timeout=2)
                assert time.monotonic() - t < 1, "the server must answer while the store is held"
                if version["busy"] or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert version["busy"].startswith("store busy, showing data from ")
            t = time.monotonic()
            data = get(server + "/api/data", timeout=2)
            assert time.monotonic() - t < 1
            assert data["busy"].startswith("store busy") and data["datasets"] == before["datasets"]
            w.page.wait_for_selector("#busy.on", timeout=3_000)
            assert "store busy, showing data from" in w.page.inner_text("#busy")
            assert "pend" in w.page.inner_text("#datasets")
        finally:
            assert holder.wait(timeout=10) == 0
        w.page.wait_for_selector("#busy:not(.on)", state="attached", timeout=5_000)
        assert get(server + "/api/version")["busy"] is None
        assert w.problems == []
    finally:
        w.close()


def test_query_values_never_reach_sql(server: str, project: Path) -> None:
    for query in (
        {"dataset": HOSTILE},
        {"model": HOSTILE},
        {"dataset": "pend", "model": "../../etc"},
    ):
        data = get(server + "/api/data?" + urllib.parse.urlencode(query))
        assert data["notes"], query
        assert data["selected"]["dataset"] in (None, "pend")
        assert data["selected"]["model"] != HOSTILE
    tables = LogStore(project / "project.duckdb").sql(
        "SELECT table_name FROM information_schema.tables"
    )["table_name"]
    assert "runs" in tables.to_list()
    assert LogStore(project / "project.duckdb").runs().height >= 1


def test_the_server_listens_on_loopback_only(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:  # the address this host would use outward; no packet is sent
            probe.connect(("10.254.254.254", 1))
            outward = probe.getsockname()[0]
        except OSError:
            outward = "127.0.0.1"
    if outward.startswith("127."):
        pytest.skip("this host has no non-loopback address to try")
    with socket.socket() as s, pytest.raises(OSError, match=r"refused|timed out|unreachable"):
        s.settimeout(2)
        s.connect((outward, port))


@pytest.mark.slow  # 20-120 s of subprocesses on 2 busy cores; the default run stays short
def test_report_is_one_self_contained_file_that_renders(
    project: Path, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    done = rmlite(
        "report",
        "--db",
        str(project / "project.duckdb"),
        "--model",
        str(project / "models" / "pend"),
        "--dataset",
        "pend",
        "--out",
        str(out),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["out"] == str(out) and summary["transitions_sampled"] > 0
    assert "r2" in summary["metrics"]
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    html = out.read_text()
    assert not re.search(r"<script[^>]*\ssrc\s*=", html, flags=re.I)
    assert not re.search(r"<link[^>]*\shref\s*=\s*[\"']?(https?:)?//", html, flags=re.I)
    assert not re.search(r"<(img|iframe|source)[^>]*\ssrc\s*=\s*[\"']?https?:", html, flags=re.I)

    w = Watched(browser, (out.as_uri(), "data:"))
    try:
        w.page.goto(out.as_uri())
        w.charts_drawn()
        assert w.page.locator("#chart-scatter .scatterlayer .point").count() > 0
        # The report alone ranks the features (mean |SHAP|, rmlite explain's table).
        w.page.wait_for_selector("#chart-importance svg.main-svg", timeout=15_000)
        assert w.page.locator("#chart-importance .barlayer .point").count() == 4
        assert "report" in w.page.inner_text("#status")
        ARTIFACTS.mkdir(exist_ok=True)
        w.page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        assert w.problems == []
    finally:
        w.close()


def test_report_and_dashboard_refuse_bad_input_clearly(project: Path, tmp_path: Path) -> None:
    db = str(project / "project.duckdb")
    missing = rmlite("report", "--db", db, "--model", str(tmp_path / "nope"), "--dataset", "pend",
                     "--out", str(tmp_path / "r.html"))  # fmt: skip
    assert missing.returncode == 2 and "nope" in missing.stderr
    unknown = rmlite("report", "--db", db, "--model", str(project / "models" / "pend"),
                     "--dataset", "pendd", "--out", str(tmp_path / "r.html"))  # fmt: skip
    assert unknown.returncode == 2 and "did you mean 'pend'" in unknown.stderr
    assert not (tmp_path / "r.html").exists()
    no_store = rmlite("dashboard", "--db", str(tmp_path / "none.duckdb"), "--port", "0")
    assert no_store.returncode == 2 and "no store here yet" in no_store.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = rmlite("dashboard", "--db", db, "--port", str(taken.getsockname()[1]))
    assert busy.returncode == 2 and "cannot listen on 127.0.0.1" in busy.stderr


def test_help_stays_light() -> None:
    code = (
        "import sys\n"
        "from rmlite.cli import build_parser\n"
        "build_parser()\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'plotly')]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = rmlite("--help")
    assert "dashboard" in out.stdout and "report" in out.stdout


def test_event_models_get_a_reliability_diagram(tmp_path: Path) -> None:
    from rmlite.dashboard import figures as F
    from rmlite.dashboard.report import build_report

    rng = np.random.default_rng(0)
    p = rng.uniform(size=4000)
    calibrated = [
        {"y_true": float(u < q), "y_pred": float(q)}
        for u, q in zip(rng.uniform(size=4000), p, strict=True)
    ]
    figure = F.calibration(calibrated)
    observed, predicted = figure["data"][0]["y"], figure["data"][0]["x"]
    assert (
        np.allclose(observed, predicted, atol=0.06)
        and "ECE 0.0" in figure["layout"]["title"]["text"]
    )

    store = LogStore(tmp_path / "store.duckdb")
    store.ingest(rollout("Pendulum-v1", episodes=15, seed=0), dataset="pend")
    spec = FeatureSpec(target="event", event_threshold=-1.0)  # "near upright" as the event
    train(store, "pend", spec, {"n_estimators": 40}, out=tmp_path / "event")
    assert monitor_pass(store, tmp_path / "event", "pend") is not None
    html = build_report(store, tmp_path / "event", "pend").html
    assert "Calibration" in html and "observed event rate" in html
