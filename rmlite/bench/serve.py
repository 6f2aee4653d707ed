"""``rmlite bench serve``: throughput and latency of ``rmlite serve`` from a local client.

The server runs as a user runs it (``rmlite serve`` in a subprocess, on 127.0.0.1, a free
port); one client sends sequential requests on a kept-alive connection. The baseline,
measured in the same run, is the same model called in-process
(:class:`~rmlite.rl.RewardFunction`) on the same batch: what the HTTP hop costs on top.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ARROW_STREAM = "application/vnd.apache.arrow.stream"


def _start_server(model: str) -> tuple[subprocess.Popen[str], str, int]:
    """``rmlite serve`` on 127.0.0.1 and a free port; waits (at most 120 s) for it to listen."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rmlite.cli", "serve", "--model", model, "--port", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise RuntimeError(f"rmlite serve did not start: {err.strip()[-2000:]}")
    info = json.loads(line)
    return proc, str(info["host"]), int(info["port"])


def _connect(host: str, port: int) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.connect()
    # Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add ~40 ms per request.
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def _transitions(batch: int, obs_dim: int, action_dim: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(batch, obs_dim)).astype(np.float32)
    action = rng.uniform(-2, 2, (batch, action_dim)).astype(np.float32)
    next_obs = (obs + rng.normal(scale=0.1, size=obs.shape)).astype(np.float32)
    return {"obs": obs, "action": action, "next_obs": next_obs, "step": np.arange(batch)}


def _encode(arrays: dict[str, np.ndarray], fields: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps({k: arrays[k].tolist() for k in fields}).encode()
    import pyarrow as pa

    columns = {}
    for name, shape in fields.items():
        values = arrays[name]
        if len(shape) == 1:
            columns[name] = pa.array(values)
        else:
            columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), shape[1])
    table = pa.table(columns)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def _decode(body: bytes, fmt: str) -> np.ndarray:
    if fmt == "json":
        return np.asarray(json.loads(body)["reward"], dtype=np.float64)
    import polars as pl
    import pyarrow as pa

    column = pa.ipc.open_stream(pa.py_buffer(body)).read_all().column("reward")
    return pl.Series(column.combine_chunks()).to_numpy()


def bench_serve(
    batches: tuple[int, ...] = (1, 256),
    requests: int = 2000,
    seconds: float = 10.0,
    model: str | None = None,
    episodes: int = 40,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Requests/s and p50/p99 latency of ``rmlite serve`` at each batch size, JSON vs Arrow.

    Each case (batch size x body format) sends at most ``requests`` requests and runs at
    most ``seconds`` seconds, after 20 warm-up requests. Latency is client-side (send,
    server, read and decode the answer; bodies are encoded once) and server-side (the
    ``Server-Timing`` header). The answer of every case is checked against the model
    called in-process, whose time per call on the same batch is the baseline.
    ``progress`` is told each stage as it starts. It prints no target: the numbers are
    ratios against that baseline and between the two formats.
    """
    from rmlite.rl.relabeling import RewardFunction

    say = log or (lambda _m: None)
    stage = progress or (lambda _m: None)
    started = time.perf_counter()
    info: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rmlite-bench-serve-") as tmp:
        if model is None:
            from rmlite.bench.rl import _quickstart_model

            say(f"training the quickstart reward model on {episodes} Pendulum-v1 episodes")
            stage(f"training the quickstart reward model on {episodes} Pendulum-v1 episodes")
            fitted, info = _quickstart_model(episodes, seed)
            model = str(Path(tmp) / "model")
            fitted.save(model)
        fn = RewardFunction(model)
        say(f"starting rmlite serve --model {model} on 127.0.0.1")
        stage("starting rmlite serve")
        proc, host, port = _start_server(model)
        try:
            conn = _connect(host, port)
            conn.request("GET", "/info")
            served = json.loads(conn.getresponse().read())
            fields = served["fields"]
            cases = []
            for batch in batches:
                arrays = _transitions(batch, served["obs_dim"], served["action_dim"], seed)
                expected = fn(
                    arrays["obs"],
                    arrays["action"],
                    arrays["next_obs"] if "next_obs" in fields else None,
                    arrays["step"] if "step" in fields else None,
                )
                direct = []
                deadline = time.perf_counter() + seconds
                for _ in range(requests):
                    t = time.perf_counter()
                    fn(arrays["obs"], arrays["action"], arrays["next_obs"], arrays["step"])
                    direct.append(time.perf_counter() - t)
                    if t > deadline:
                        break
                direct_p50 = float(np.median(direct)) * 1e3
                for fmt in ("json", "arrow"):
                    stage(f"batch {batch:,}, {fmt}: at most {requests:,} requests, {seconds:g} s")
                    # A fresh connection per case: uvicorn closes one idle for 5 s.
                    conn.close()
                    conn = _connect(host, port)
                    body = _encode(arrays, fields, fmt)
                    headers = {
                        "Content-Type": "application/json" if fmt == "json" else ARROW_STREAM
                    }
                    client: list[float] = []
                    server: list[float] = []
                    deadline = time.perf_counter() + seconds
                    for i in range(20 + requests):
                        t = time.perf_counter()
                        conn.request("POST", "/reward", body=body, headers=headers)
                        response = conn.getresponse()
                        answer = response.read()
                        reward = _decode(answer, fmt)
                        elapsed = time.perf_counter() - t
                        if response.status != 200:
                            raise RuntimeError(
                                f"rmlite serve answered {response.status}: {answer!r}"
                            )
                        if i == 0:
                            np.testing.assert_allclose(reward, expected, rtol=1e-6, atol=1e-9)
                        if i >= 20:
                            client.append(elapsed)
                            timing = response.getheader("Server-Timing", "")
                            server.append(float(timing.rsplit("dur=", 1)[-1]) / 1e3)
                            if time.perf_counter() > deadline:
                                break
                    total = float(np.sum(client))
                    case: dict[str, Any] = {
                        "batch": batch,
                        "format": fmt,
                        "requests": len(client),
                        "body_bytes": len(body),
                        "requests_per_s": len(client) / total,
                        "transitions_per_s": batch * len(client) / total,
                        "client_p50_ms": float(np.percentile(client, 50)) * 1e3,
                        "client_p99_ms": float(np.percentile(client, 99)) * 1e3,
                        "server_p50_ms": float(np.percentile(server, 50)) * 1e3,
                        "server_p99_ms": float(np.percentile(server, 99)) * 1e3,
                        "in_process_p50_ms": direct_p50,
                    }
                    case["client_p50_vs_in_process"] = case["client_p50_ms"] / direct_p50
                    cases.append(case)
                    say(
                        f"batch {batch:>5} {fmt:>5}: {case['requests_per_s']:,.0f} req/s, "
                        f"{case['transitions_per_s']:,.0f} transitions/s; p50 "
                        f"{case['client_p50_ms']:.3f} ms, p99 {case['client_p99_ms']:.3f} ms "
                        f"(server {case['server_p50_ms']:.3f} / {case['server_p99_ms']:.3f} ms; "
                        f"in-process {direct_p50:.3f} ms: x{case['client_p50_vs_in_process']:.1f})"
                    )
            conn.close()
            conn = _connect(host, port)
            conn.request("GET", "/metrics")
            metrics = json.loads(conn.getresponse().read())
            conn.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    by = {(c["batch"], c["format"]): c for c in cases}
    arrow_vs_json = {
        str(b): by[(b, "arrow")]["requests_per_s"] / by[(b, "json")]["requests_per_s"]
        for b in batches
    }
    for b, ratio in arrow_vs_json.items():
        say(f"batch {b}: Arrow x{ratio:.2f} the requests/s of JSON")
    return {
        "host": "127.0.0.1",
        "model": served["model"],
        "backend": served.get("backend"),
        **info,
        "cases": cases,
        "arrow_vs_json_requests_per_s": arrow_vs_json,
        "server_metrics": metrics,
        "requests_per_case": requests,
        "seconds_per_case": seconds,
        "load_average_1min": os.getloadavg()[0],
        "seconds_total": time.perf_counter() - started,
    }
