"""The dashboard against hostile requests and damaged inputs, through a real uvicorn server
started with ``rmlite dashboard`` and, for the page, headless Chromium (Debian's, driven by
Playwright; see test_dashboard.py): foreign ``Host:`` headers, a recorded model whose
model.json has an unexpected shape, queries probing for model folders, a store file that
is damaged or deleted while the server runs.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rmlite import FeatureSpec, LogStore
from rmlite.pipeline import train
from rmlite.testing import rollout

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(port: int, path: str, host: str | None = None) -> tuple[int, bytes]:
    """One GET to 127.0.0.1:port with the given Host header (default: the address itself)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host or f"127.0.0.1:{port}")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def api(port: int, path: str) -> dict[str, Any]:
    status, body = request(port, path)
    assert status == 200, (status, body[:500])
    return dict(json.loads(body))


def start(db: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rmlite.cli",
            "dashboard",
            "--db",
            str(db),
            "--port",
            str(port),
            "--poll",
            "0.5",
            "--json",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            request(port, "/api/version")
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                stop(proc)
                raise AssertionError(f"dashboard did not start: {proc.stderr.read()}") from None  # type: ignore[union-attr]
            time.sleep(0.1)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with two recorded models: ``good``, and ``bad`` whose model.json holds a
    string where a list belongs; plus an unrecorded model folder."""
    root = tmp_path_factory.mktemp("hostile-dash")
    store = LogStore(root / "project.duckdb")
    store.ingest(rollout("Pendulum-v1", episodes=5, seed=0, max_steps=40), dataset="pend")
    params = {"n_estimators": 20, "n_jobs": 1}
    train(store, "pend", FeatureSpec(), params, out=root / "models" / "good")
    train(store, "pend", FeatureSpec(), params, out=root / "models" / "bad")
    meta_path = root / "models" / "bad" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["curves"] = "abc"
    meta_path.write_text(json.dumps(meta))
    shutil.copytree(root / "models" / "good", root / "unrecorded")
    return root


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[int]:
    proc, port = start(project / "project.duckdb", "--allowed-host", "dash.example")
    try:
        yield port
    finally:
        stop(proc)


# ------------------------------------------------------------------------ Host header


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("evil.example", 400),
        ("evil.example:{port}", 400),
        ("localhost.evil.example", 400),
        ("127.0.0.1.nip.io", 400),
        ("localhost:{port}", 200),
        ("127.0.0.1:{port}", 200),
        ("[::1]:{port}", 200),
        ("dash.example", 200),  # --allowed-host
    ],
)
def test_only_allowed_host_names_are_answered(server: int, host: str, status: int) -> None:
    for path in ("/", "/api/data", "/api/version"):
        got, body = request(server, path, host.format(port=server))
        assert got == status, (path, host, got)
        if status == 400:
            assert b"Invalid host header" in body and b"pend" not in body


# ---------------------------------------------------------- malformed model metadata


def test_a_malformed_model_json_is_a_note_on_that_model_only(server: int, project: Path) -> None:
    bad = os.path.realpath(project / "models" / "bad")
    data = api(server, "/api/data?" + urllib.parse.urlencode({"model": bad}))
    assert data["selected"]["model"] == bad
    assert any("unexpected shape" in n and "'curves'" in n for n in data["notes"]), data["notes"]
    assert data["datasets"] and data["runs"]  # the rest of the page is there
    good = api(
        server,
        "/api/data?"
        + urllib.parse.urlencode({"model": os.path.realpath(project / "models" / "good")}),
    )
    assert not any("unexpected shape" in n for n in good["notes"])
    assert good["overfitting"] is not None


@pytest.mark.parametrize(
    "text",
    [
        '{"curves": ' + "[" * 5000 + "]" * 5000 + "}",  # nested too deeply for a parser
        '{"curves": [{"train": "x"}], "metrics": "abc"}',
        '{"metrics": {"train": [1, 2]}, "feature_spec": {"target": 5}}',
        "[1, 2, 3]",
        "not json at all",
    ],
    ids=["deep", "curve-strings", "metrics-list", "array", "not-json"],
)
def test_any_model_json_shape_keeps_api_data_answering(
    server: int, project: Path, text: str
) -> None:
    meta_path = project / "models" / "bad" / "model.json"
    saved = meta_path.read_text()
    try:
        meta_path.write_text(text)
        os.utime(meta_path, (time.time() + 1, time.time() + 1))  # past the reader's cache
        bad = os.path.realpath(project / "models" / "bad")
        data = api(server, "/api/data?" + urllib.parse.urlencode({"model": bad}))
        assert any("unexpected shape" in n for n in data["notes"]), data["notes"]
    finally:
        meta_path.write_text(saved)


def test_the_page_shows_the_note_and_draws_the_rest(server: int, project: Path) -> None:
    from test_dashboard import CHARTS, Watched, chromium_path  # the same browser harness

    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{server}"
    bad = os.path.realpath(project / "models" / "bad")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable, args=["--no-sandbox"], headless=True
        )
        w = Watched(browser, (base,))
        try:
            w.page.goto(base + "/")
            for name in CHARTS:
                w.page.wait_for_selector(f"#chart-{name} svg.main-svg", timeout=30_000)
            w.page.select_option("#model", bad)
            w.page.wait_for_selector("#notes div", timeout=15_000)
            assert "unexpected shape" in w.page.inner_text("#notes")
            assert "pend" in w.page.inner_text("#datasets")
            for name in CHARTS:
                w.page.wait_for_selector(f"#chart-{name} svg.main-svg", timeout=15_000)
            assert w.problems == []
        finally:
            w.close()
            browser.close()


# ------------------------------------------------------------- probing for model folders


def test_queries_cannot_tell_whether_a_model_folder_exists(server: int, project: Path) -> None:
    """An unrecorded folder that holds a model.json and a path that holds nothing get the
    same answer (the query's text echoed as given), so the page is no file-system probe."""

    def answer(name: str) -> dict[str, Any]:
        query = f"{project}/models/../{name}"
        data = api(server, "/api/data?" + urllib.parse.urlencode({"model": query}))
        text = json.dumps({"notes": data["notes"], "selected": data["selected"]})
        return dict(json.loads(text.replace(name, "NAME")))

    assert (project / "unrecorded" / "model.json").is_file()
    assert answer("unrecorded") == answer("missing")
    assert "no model" in answer("missing")["notes"][0]


# ------------------------------------------------------------ damaged or missing store


def test_a_damaged_or_deleted_store_is_shown_as_such_not_as_busy(
    project: Path, tmp_path: Path
) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copy(project / "project.duckdb", db)
    proc, port = start(db)
    try:
        assert api(port, "/api/version")["error"] is None

        def settled(expect: str) -> dict[str, Any]:
            deadline = time.monotonic() + 20
            while True:
                state = api(port, "/api/version")
                if state["error"] and expect in state["error"]:
                    return state
                assert time.monotonic() < deadline, state
                time.sleep(0.3)

        with open(db, "r+b") as f:  # same file, random bytes: a damaged store
            f.write(os.urandom(4096))
        state = settled("not a DuckDB store")
        assert state["busy"] is None
        data = api(port, "/api/data")
        assert "not a DuckDB store" in (data["error"] or "") and data["busy"] is None
        db.unlink()
        assert settled("missing")["busy"] is None
    finally:
        stop(proc)
