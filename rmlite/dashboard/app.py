"""The live dashboard: a Starlette app that uvicorn serves, reading the store briefly.

Routes: ``/`` (the page), ``/static/plotly.min.js`` (from the installed plotly wheel),
``/api/version`` (the store's version; the page polls it and re-fetches on change),
``/api/data?page=overview|model|dataset|compare&dataset=NAME&model=PATH&episode=ID&runs=1,2
&since=1h|1d|7d|30d`` (tables and figures as JSON; the page keeps the same query in its
own URL, so a link shows the same view). Every endpoint is a
plain function that Starlette runs in its thread pool, so a read that waits on a
writer's lock never blocks the event loop. Query values only ever select among names
the store returned; they never reach SQL text.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

from rmlite.dashboard.data import SINCE, StoreReader, dumps
from rmlite.dashboard.page import plotly_js_path, render_live
from rmlite.dashboard.views import PAGES, page_sections
from rmlite.exceptions import RmliteError

POLL_MS = 1000
"""How often the page asks for the store's version."""

DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]")
"""``Host:`` names the dashboard answers by default. Any other gets HTTP 400, so a web
page cannot read the store through DNS rebinding (its requests carry its own host name)."""


def _int(text: str | None) -> int | None:
    """A whole number from the query string, or None (never an error page)."""
    text = (text or "").strip()
    if not text.lstrip("-").isdigit() or len(text) > 19:
        return None
    return int(text)


def _web() -> Any:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"rmlite dashboard needs starlette and uvicorn ({exc.name} is missing): "
            f"pip install 'rmlite[dashboard]'"
        ) from exc


def create_app(store_path: str, poll_ms: int = POLL_MS, allowed_hosts: Sequence[str] = ()) -> Any:
    """The Starlette application for one store file (read-only; never holds it open).

    Requests must name one of :data:`DEFAULT_ALLOWED_HOSTS` or ``allowed_hosts`` in their
    ``Host:`` header (Starlette's ``TrustedHostMiddleware``); others get HTTP 400.
    """
    _web()
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, Response
    from starlette.routing import Route

    reader = StoreReader(store_path)
    page = render_live(store_path, poll_ms)
    plotly_js = plotly_js_path()
    no_store = {"Cache-Control": "no-store"}

    def json_response(payload: Any) -> Response:
        return Response(dumps(payload), media_type="application/json", headers=no_store)

    def index(request: Request) -> Response:
        return HTMLResponse(page, headers=no_store)

    def plotly(request: Request) -> Response:
        return FileResponse(
            plotly_js, media_type="text/javascript", headers={"Cache-Control": "max-age=3600"}
        )

    def version(request: Request) -> Response:
        return json_response(reader.check())

    def data(request: Request) -> Response:
        q = request.query_params
        page = str(q.get("page")) if q.get("page") in PAGES else "overview"
        since = q.get("since") if q.get("since") in SINCE else None
        body = reader.payload(q.get("dataset") or None, q.get("model") or None, since=since)
        body["page"] = page
        body["since"] = since
        if not body.get("error"):
            body.update(
                page_sections(
                    reader,
                    body,
                    page,
                    episode=_int(q.get("episode")),
                    run_ids=[i for i in map(_int, q.get("runs", "").split(",")) if i is not None],
                )
            )
        return json_response(body)

    def favicon(request: Request) -> Response:
        return Response(status_code=204)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/static/plotly.min.js", plotly),
            Route("/api/version", version),
            Route("/api/data", data),
            Route("/favicon.ico", favicon),
        ],
        middleware=[
            Middleware(
                TrustedHostMiddleware,
                allowed_hosts=[*DEFAULT_ALLOWED_HOSTS, *(h.lower() for h in allowed_hosts)],
            )
        ],
    )
    app.state.reader = reader
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, so a taken port is a clear error before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RmliteError(
            f"cannot listen on {host}:{port} ({exc.strerror}). Pass another --port, or stop "
            f"the process that uses it."
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def host_names(bound: str, extra: Sequence[str] = ()) -> list[str]:
    """``Host:`` names to allow besides the defaults: ``extra`` and the address bound
    (unless it is a wildcard: then only the names given are reachable)."""
    names = [h.strip().lower() for h in extra if h.strip()]
    if bound not in ("0.0.0.0", "::", ""):
        names.append(f"[{bound}]" if ":" in bound else bound)
    return names


def serve(
    store_path: str, sock: socket.socket, poll_ms: int = POLL_MS, allowed_hosts: Sequence[str] = ()
) -> None:
    """Serve the dashboard on a bound socket until interrupted (see :func:`create_app`)."""
    _web()
    import uvicorn

    if not os.path.exists(store_path):
        raise RmliteError(
            f"{store_path}: no store here yet. Ingest a log first (rmlite ingest ...) or pass "
            f"--db with the path of an existing store."
        )
    app = create_app(store_path, poll_ms, allowed_hosts)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        sys.stderr.flush()
