"""The reward server as a client meets it: ``rmlite serve`` in a subprocess on 127.0.0.1,
real HTTP requests (JSON and Arrow IPC), a model folder rewritten under it, hostile bodies.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from rmlite import FeatureSpec, LogStore
from rmlite.pipeline import train
from rmlite.rl import RewardFunction
from rmlite.serve.codec import ARROW_STREAM
from rmlite.testing import rollout

pytest.importorskip("uvicorn")

SPEC = FeatureSpec(next_obs=True, delta=True, step=True, time_limit=200)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two Pendulum-v1 models (different trees) and a real rollout to score."""
    root = tmp_path_factory.mktemp("serve")
    store = LogStore(root / "store.duckdb")
    store.ingest(rollout("Pendulum-v1", episodes=8, seed=0, max_steps=60), dataset="pend")
    for name, trees in (("a", 30), ("b", 12)):
        train(store, "pend", SPEC, {"n_estimators": trees, "n_jobs": 1}, out=root / name)
    log = rollout("Pendulum-v1", episodes=2, seed=9, max_steps=40)
    batch = {
        "obs": np.asarray(log["obs"].to_list(), dtype=np.float32),
        "action": np.asarray(log["action"].to_list(), dtype=np.float32),
        "next_obs": np.asarray(log["next_obs"].to_list(), dtype=np.float32),
        "step": log["step"].to_numpy(),
    }
    return {"root": root, "batch": batch}


class Server:
    """``rmlite serve`` in a subprocess, and a kept-alive client connection to it."""

    def __init__(self, model: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "rmlite.cli", "serve", "--model", str(model)),
                *("--port", "0", "--json", *extra),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 120)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            pytest.fail(f"rmlite serve did not start: {self.proc.communicate()[1][-3000:]}")
        self.started = json.loads(line)
        assert self.started["host"] == "127.0.0.1"
        self.port = int(self.started["port"])

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def get(self, path: str) -> Any:
        status, _, body = self.request("GET", path)
        assert status == 200, body
        return json.loads(body)

    def post_json(self, payload: Any) -> tuple[int, Any]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        status, _, answer = self.request(
            "POST", "/reward", body, {"Content-Type": "application/json"}
        )
        return status, json.loads(answer)

    def post_arrow(self, table: pa.Table) -> tuple[int, dict[str, str], bytes]:
        return self.request("POST", "/reward", ipc(table), {"Content-Type": ARROW_STREAM})

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def as_json(batch: dict[str, np.ndarray], rows: slice = slice(None)) -> dict[str, Any]:
    return {k: v[rows].tolist() for k, v in batch.items()}


def fixed(values: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])


@pytest.fixture(scope="module")
def server(project: dict[str, Any]) -> Iterator[Server]:
    """One server for the module, on a copy of model "a" that the last test rewrites."""
    live = project["root"] / "live"
    shutil.copytree(project["root"] / "a", live)
    srv = Server(live, "--max-body-mb", "0.05", "--reload-every", "0.1")
    yield srv
    srv.stop()


def test_rewards_are_the_models_in_json_and_arrow(server: Server, project: dict[str, Any]) -> None:
    batch = project["batch"]
    fn = RewardFunction(project["root"] / "a")
    expected = fn(batch["obs"], batch["action"], batch["next_obs"], batch["step"])
    assert server.get("/health") == {"status": "ok", "model": fn.fingerprint}
    info = server.get("/info")
    assert info["model"] == fn.fingerprint == server.started["model"]
    assert (info["obs_dim"], info["action_dim"], info["n_features"]) == (3, 1, 12)
    assert info["fields"] == {
        "obs": ["n", 3],
        "action": ["n", 1],
        "next_obs": ["n", 3],
        "step": ["n"],
    }
    assert info["feature_spec"] == SPEC.to_dict()

    status, answer = server.post_json(as_json(batch))
    assert status == 200 and answer["model"] == fn.fingerprint
    np.testing.assert_array_equal(answer["reward"], expected)  # float64 survives JSON exactly

    # Arrow: fixed-size lists of float32, and plain lists of float64, answered in Arrow.
    tables = [
        pa.table({k: fixed(batch[k]) for k in ("obs", "action", "next_obs")} | {"step": batch["step"]}),
        pa.table(
            {k: pa.array(batch[k].astype(np.float64).tolist()) for k in ("obs", "action", "next_obs")}
            | {"step": pa.array(batch["step"].astype(np.int32))}
        ),
    ]  # fmt: skip
    for table in tables:
        status, headers, body = server.post_arrow(table)
        assert status == 200 and headers["content-type"] == ARROW_STREAM
        answer_table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
        assert answer_table.schema.metadata[b"model"].decode() == fn.fingerprint
        np.testing.assert_array_equal(answer_table.column("reward").to_pylist(), expected)
        assert headers["x-rmlite-model"] == fn.fingerprint and "dur=" in headers["server-timing"]


# (body, content type, status, what the error must name) for every refused request.
def hostile(batch: dict[str, np.ndarray]) -> list[tuple[bytes, str, int, str]]:
    ok = as_json(batch, slice(0, 2))

    def j(**change: Any) -> bytes:
        return json.dumps({k: v for k, v in {**ok, **change}.items() if v is not None}).encode()

    arrow_ok = {k: fixed(batch[k][:2]) for k in ("obs", "action", "next_obs")}
    arrow_ok["step"] = pa.array(batch["step"][:2])
    return [
        (j(obs=[[1.0, 2.0, 3.0, 4.0]] * 2), "json", 400, r"'obs' must have rows of 3 numbers, shape \(n, 3\); got rows of 4"),
        (j(obs=[[1.0, 2.0, 3.0], [1.0, 2.0]]), "json", 400, r"'obs' must be a list of rows of 3 numbers, shape \(n, 3\); row 1 is a list of 2"),
        (j(action=[0.5, 0.5]), "json", 400, r"'action' must be a list of rows of 1 numbers, shape \(n, 1\); row 0 is a number"),
        (j(obs=[[1.0, "2", 3.0]] * 2), "json", 400, r"'obs' must hold numbers only, shape \(n, 3\); found \"2\" \(str\)"),
        (j(next_obs=[[1.0, None, 3.0]] * 2), "json", 400, r"'next_obs' must hold numbers only.*found null"),
        (j(obs=[[True, False, True]] * 2), "json", 400, r"'obs' must hold numbers only.*found true \(bool\)"),
        (j(next_obs=None), "json", 400, r"field 'next_obs' is missing: this model needs obs, action, next_obs, step"),
        (j(step=[0]), "json", 400, r"field 'step' has 1 rows but 'obs' has 2"),
        (j(step=[[0], [1]]), "json", 400, r"'step' must be a list of numbers, shape \(n,\); row 0 is a list of 1"),
        (j(obs="abc"), "json", 400, r"'obs' must be a list of rows of 3 numbers, shape \(n, 3\); got str"),
        (j(obs=[], action=[], next_obs=[], step=[]), "json", 400, r"'obs' holds no rows"),
        (b'{"obs": [[1, 2, 3]', "json", 400, r"the body is not valid JSON"),
        (b"[1, 2, 3]", "json", 400, r"must be a JSON object with the fields"),
        (b"\xff\xfe", "json", 400, r"not valid JSON"),
        (b"obs=1", "application/x-www-form-urlencoded", 415, r"Content-Type 'application/x-www-form-urlencoded' is not served"),
        (b"not arrow", "arrow", 400, r"the body is not an Arrow IPC stream"),
        (ipc(pa.table({**arrow_ok, "obs": fixed(batch["obs"][:2, :2])})), "arrow", 400, r"column 'obs' must have rows of 3 values, shape \(n, 3\); got fixed_size_list of 2"),
        (ipc(pa.table({**arrow_ok, "obs": pa.array([[1.0, 2.0, 3.0], [1.0, 2.0]])})), "arrow", 400, r"column 'obs' must have rows of 3 values, shape \(n, 3\); found a row of 2"),
        (ipc(pa.table({**arrow_ok, "obs": pa.array(["a", "b"])})), "arrow", 400, r"column 'obs' must be fixed_size_list<float>\[3\] or list<float>.*got Arrow type string"),
        (ipc(pa.table({**arrow_ok, "action": pa.array([[0.5], None])})), "arrow", 400, r"column 'action' has null rows or values"),
        (ipc(pa.table({k: v for k, v in arrow_ok.items() if k != "step"})), "arrow", 400, r"column 'step' is missing"),
        (ipc(pa.table({**arrow_ok, "step": pa.array(["0", "1"])})), "arrow", 400, r"column 'step' must be a number per row, shape \(n,\); got Arrow type string"),
        (json.dumps(as_json(batch) | {"obs": [[0.0] * 3] * 3000}).encode(), "json", 413, r"larger than the server's limit of 52,428 bytes"),
    ]  # fmt: skip


def test_bad_requests_get_a_clear_error_and_the_server_goes_on(
    server: Server, project: dict[str, Any]
) -> None:
    before = server.get("/metrics")
    cases = hostile(project["batch"])
    for body, kind, status, message in cases:
        media = {"json": "application/json", "arrow": ARROW_STREAM}.get(kind, kind)
        got, _, answer = server.request("POST", "/reward", body, {"Content-Type": media})
        error = json.loads(answer)
        assert got == status, (message, error)
        assert re.search(message, error["error"]), (message, error)
    # A Host header that is not this machine (DNS rebinding) and a GET on /reward.
    got, _, answer = server.request("GET", "/health", headers={"Host": "evil.example"})
    assert got == 400 and b"Invalid host header" in answer
    assert server.request("GET", "/reward")[0] == 405
    # Field errors name the field and the expected shape for programs too.
    status, error = server.post_json(as_json(project["batch"], slice(0, 1)) | {"obs": [[1.0]]})
    assert status == 400 and error["field"] == "obs" and error["expected"] == ["n", 3]
    # Still serving, and the metrics counted every request once.
    status, answer = server.post_json(as_json(project["batch"], slice(0, 3)))
    assert status == 200 and len(answer["reward"]) == 3
    after = server.get("/metrics")
    assert after["requests"] - before["requests"] == len(cases) + 2
    refused = sum(after["errors"].values()) - sum(before["errors"].values())
    assert refused == len(cases) + 1
    assert after["errors"]["413"] >= 1 and after["errors"]["415"] >= 1
    assert after["rows"] - before["rows"] == 3
    assert 0 < after["latency_ms"]["p50"] <= after["latency_ms"]["p99"]


def test_serve_refuses_what_it_cannot_serve(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rmlite.cli", "serve", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = run("--model", str(tmp_path / "nothing"), "--port", "0")
    assert done.returncode == 2 and "not an rmlite model folder (no model.json)" in done.stderr
    help_text = run("--help").stdout
    assert "Example:" in help_text and "rmlite serve --model models/pendulum" in help_text


# Last: it rewrites the module server's model folder.
def test_reloads_when_a_new_model_is_written(server: Server, project: dict[str, Any]) -> None:
    folder = project["root"] / "live"
    batch = as_json(project["batch"], slice(0, 5))
    old, new = (RewardFunction(project["root"] / name) for name in ("a", "b"))
    assert old.fingerprint != new.fingerprint
    status, answer = server.post_json(batch)
    assert status == 200 and answer["model"] == old.fingerprint
    # A half-written model.json (a training run caught mid-write) keeps the old model.
    text = (project["root"] / "b" / "model.json").read_text()
    (folder / "model.json").write_text(text[: len(text) // 2])
    deadline = time.monotonic() + 20
    while server.get("/info")["reload_error"] is None and time.monotonic() < deadline:
        time.sleep(0.1)
    info = server.get("/info")
    assert "unreadable model metadata" in info["reload_error"]
    assert info["model"] == old.fingerprint and info["reloads"] == 0
    assert server.post_json(batch)[1]["model"] == old.fingerprint
    # The run finishes: members, then model.json (what rmlite train writes last).
    for path in (project["root"] / "b").iterdir():
        if path.name != "model.json":
            shutil.copy(path, folder / path.name)
    shutil.copy(project["root"] / "b" / "model.json", folder / "model.json.tmp")
    os.replace(folder / "model.json.tmp", folder / "model.json")
    while server.get("/health")["model"] != new.fingerprint and time.monotonic() < deadline:
        time.sleep(0.1)
    status, answer = server.post_json(batch)
    assert status == 200 and answer["model"] == new.fingerprint
    b = {k: np.asarray(v) for k, v in batch.items()}
    expected = new(b["obs"], b["action"], b["next_obs"], b["step"])
    np.testing.assert_allclose(answer["reward"], expected, rtol=1e-6)
    info = server.get("/info")
    assert info["reloads"] == 1 and info["reload_error"] is None


@pytest.mark.slow
def test_bench_serve_reports_both_formats(project: dict[str, Any]) -> None:
    from rmlite.bench import bench_serve

    result = bench_serve(batches=(1, 16), requests=30, seconds=5, model=str(project["root"] / "a"))
    cases = {(c["batch"], c["format"]): c for c in result["cases"]}
    assert set(cases) == {(1, "json"), (1, "arrow"), (16, "json"), (16, "arrow")}
    for case in cases.values():
        assert 0 < case["requests"] <= 30 and case["requests_per_s"] > 0
        assert case["client_p50_ms"] <= case["client_p99_ms"]
        assert 0 < case["server_p50_ms"] <= case["client_p50_ms"]
    assert result["server_metrics"]["requests"] >= 4 * (20 + 1)  # warm-ups included
    assert set(result["arrow_vs_json_requests_per_s"]) == {"1", "16"}


def test_a_reload_leaves_requests_in_flight_on_their_model(
    project: dict[str, Any], tmp_path: Path
) -> None:
    from rmlite.serve import ModelWatcher

    folder = tmp_path / "m"
    shutil.copytree(project["root"] / "a", folder)
    watcher = ModelWatcher(folder, every=0)  # checked by hand here
    b = project["batch"]
    in_flight = watcher.current  # what a request took at its start
    before = in_flight.fn(b["obs"], b["action"], b["next_obs"], b["step"])
    assert watcher.check() is False  # nothing changed
    for path in (project["root"] / "b").iterdir():
        shutil.copy(path, folder / path.name)
    assert watcher.check() is True and watcher.reloads == 1
    assert watcher.current is not in_flight
    assert watcher.current.fingerprint == RewardFunction(project["root"] / "b").fingerprint
    # The request that started before the swap finishes on the model it started with.
    np.testing.assert_array_equal(
        in_flight.fn(b["obs"], b["action"], b["next_obs"], b["step"]), before
    )
    assert not np.array_equal(
        watcher.current.fn(b["obs"], b["action"], b["next_obs"], b["step"]), before
    )
