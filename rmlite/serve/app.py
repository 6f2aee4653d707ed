"""The reward server's Starlette application and its uvicorn runner.

Routes: ``POST /reward`` (a batch in, one reward per row out; JSON or Arrow IPC, answered
in the request's format), ``GET /health``, ``GET /info`` (dimensions, fields, feature
spec, fingerprint, reloads) and ``GET /metrics`` (request count, errors, rows, p50/p99 of
the server-side latency over the last 10,000 requests). Predictions run on the event
loop: they take micro- to milliseconds, and a hop to a worker thread would cost about as
much as a small batch's prediction.
"""

from __future__ import annotations

import collections
import socket
import sys
import threading
import time
from typing import Any

import numpy as np

from rmlite._typing import PathLike
from rmlite.exceptions import RmliteError
from rmlite.serve.codec import (
    ARROW_STREAM,
    RequestError,
    decode_arrow,
    decode_json,
    encode_arrow,
    encode_json,
)
from rmlite.serve.model import ModelWatcher

MAX_BODY_BYTES = 64 * 2**20
"""Default largest request body (64 MiB: about 2M transitions of 3+1+3 values in Arrow)."""
LOCAL_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
"""Host headers accepted by default (DNS rebinding guard)."""
LATENCY_WINDOW = 10_000


def _web() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"rmlite serve needs starlette and uvicorn ({exc.name} is missing): "
            f"pip install 'rmlite[serve]'"
        ) from exc


class Stats:
    """Request count, errors, rows and the latencies of the last requests (thread-safe)."""

    def __init__(self, window: int = LATENCY_WINDOW) -> None:
        self._lock = threading.Lock()
        self._latency: collections.deque[float] = collections.deque(maxlen=window)
        self.requests = 0
        self.rows = 0
        self.errors: collections.Counter[int] = collections.Counter()
        self.started = time.time()

    def record(self, seconds: float, rows: int = 0, status: int = 200) -> None:
        with self._lock:
            self.requests += 1
            self._latency.append(seconds)
            if status == 200:
                self.rows += rows
            else:
                self.errors[status] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            lat = np.array(self._latency, dtype=np.float64) * 1e3
            out: dict[str, Any] = {
                "requests": self.requests,
                "rows": self.rows,
                "errors": {str(k): v for k, v in sorted(self.errors.items())},
                "uptime_s": time.time() - self.started,
            }
        out["latency_ms"] = {
            "window": len(lat),
            "p50": float(np.percentile(lat, 50)) if len(lat) else None,
            "p99": float(np.percentile(lat, 99)) if len(lat) else None,
            "mean": float(lat.mean()) if len(lat) else None,
            "max": float(lat.max()) if len(lat) else None,
        }
        return out


async def _read_body(request: Any, max_bytes: int) -> bytes:
    """The body, refused with 413 past ``max_bytes`` (announced or streamed)."""
    announced = request.headers.get("content-length")
    too_large = RequestError(
        f"the body is larger than the server's limit of {max_bytes:,} bytes; send smaller "
        f"batches (or start rmlite serve with a larger --max-body-mb).",
        status=413,
    )
    if announced is not None and announced.isdigit() and int(announced) > max_bytes:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    model: PathLike | ModelWatcher,
    *,
    reload_every: float = 1.0,
    max_body_bytes: int = MAX_BODY_BYTES,
    allowed_hosts: list[str] | None = None,
) -> Any:
    """The Starlette application serving one model folder (watched for new versions)."""
    _web()
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    watcher = model if isinstance(model, ModelWatcher) else ModelWatcher(model, reload_every)
    stats = Stats()

    async def reward(request: Request) -> Response:
        started = time.perf_counter()
        served = watcher.current  # this request's model, whatever a reload does meanwhile
        try:
            media = request.headers.get("content-type", "application/json")
            media = media.split(";")[0].strip().lower()
            if media not in ("application/json", ARROW_STREAM):
                raise RequestError(
                    f"Content-Type {media!r} is not served; send application/json or "
                    f"{ARROW_STREAM}.",
                    status=415,
                )
            body = await _read_body(request, max_body_bytes)
            arrow = media == ARROW_STREAM
            batch = decode_arrow(body, served) if arrow else decode_json(body, served)
            try:
                reward = served.fn(batch.obs, batch.action, batch.next_obs, batch.step)
            except RmliteError as exc:  # the checks above should have caught it: say so
                raise RequestError(str(exc)) from exc
            if arrow:
                content, media_out = encode_arrow(reward, served.fingerprint), ARROW_STREAM
            else:
                content, media_out = encode_json(reward, served.fingerprint), "application/json"
        except RequestError as exc:
            stats.record(time.perf_counter() - started, status=exc.status)
            return JSONResponse(exc.payload(), status_code=exc.status)
        seconds = time.perf_counter() - started
        stats.record(seconds, rows=len(batch))
        headers = {
            "X-Rmlite-Model": served.fingerprint,
            # The server's share of the latency (W3C Server-Timing), for clients and benches.
            "Server-Timing": f"reward;dur={seconds * 1e3:.4f}",
        }
        return Response(content, media_type=media_out, headers=headers)

    def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": watcher.current.fingerprint})

    def info(request: Request) -> Response:
        served = watcher.current
        return JSONResponse(
            {
                **served.info,
                "loaded_at": served.loaded_at,
                "reloads": watcher.reloads,
                "reload_error": watcher.last_error,
                "max_body_bytes": max_body_bytes,
                "formats": ["application/json", ARROW_STREAM],
            }
        )

    def metrics(request: Request) -> Response:
        return JSONResponse(
            {**stats.snapshot(), "model": watcher.current.fingerprint, "reloads": watcher.reloads}
        )

    app = Starlette(
        routes=[
            Route("/reward", reward, methods=["POST"]),
            Route("/health", health),
            Route("/info", info),
            Route("/metrics", metrics),
        ],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or LOCAL_HOSTS)],
    )
    app.state.watcher = watcher
    app.state.stats = stats
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, so a taken port is a clear error before the model loads."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets
    # that say they are TCP; with proto 0 every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RmliteError(
            f"cannot listen on {host}:{port} ({exc.strerror}). Pass another --port, or stop "
            f"the process that uses it."
        ) from exc
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def serve(
    watcher: ModelWatcher,
    sock: socket.socket,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    allowed_hosts: list[str] | None = None,
) -> None:
    """Serve ``watcher``'s model on a bound socket until interrupted."""
    _web()
    import uvicorn

    app = create_app(watcher, max_body_bytes=max_body_bytes, allowed_hosts=allowed_hosts)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    watcher.start()
    try:
        server.run(sockets=[sock])
    finally:
        watcher.stop()
        sock.close()
        sys.stderr.flush()
