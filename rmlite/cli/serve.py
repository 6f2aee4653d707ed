"""``rmlite serve`` (a reward model over HTTP) and its benchmark ``rmlite bench serve``.

Registered by :func:`rmlite.cli.build_parser`. The web stack (starlette, uvicorn) and the
model load only when the command runs, so ``rmlite --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rmlite.cli._common import (
    EXIT_INTERNAL,
    EXIT_OK,
    Command,
    _bench_exit,
    _bench_log,
    _bench_progress,
    _Formatter,
)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from rmlite.serve.app import LOCAL_HOSTS, _web, bind, serve
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    from rmlite.serve.model import ModelWatcher

    try:
        _web()
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    sock = bind(args.host, args.port)  # a taken port fails before the model loads
    try:
        watcher = ModelWatcher(args.model, every=args.reload_every)
    except BaseException:
        sock.close()
        raise
    host, port = sock.getsockname()[:2]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    served = watcher.current
    if args.json:  # one line, once the socket listens and the model is loaded: scripts read it
        print(
            json.dumps(
                {
                    "url": url,
                    "host": host,
                    "port": port,
                    "model": served.fingerprint,
                    "fields": served.info["fields"],
                }
            ),
            flush=True,
        )
    else:
        fields = ", ".join(f"{k} {tuple(v)}" for k, v in served.info["fields"].items())
        print(
            f"rmlite serve: {args.model} ({served.fingerprint}) at {url}reward; fields: "
            f"{fields}. Ctrl+C to stop.",
            file=sys.stderr,
        )
    hosts = list(dict.fromkeys([*LOCAL_HOSTS, *args.allowed_host]))
    if host not in ("127.0.0.1", "::1", "localhost"):
        print(
            f"warning: listening on {host}: anyone who can reach this machine can query the "
            f"model. Use the default --host 127.0.0.1 unless you mean it.",
            file=sys.stderr,
        )
        hosts.append(host)
    serve(
        watcher,
        sock,
        max_body_bytes=int(args.max_body_mb * 2**20),
        allowed_hosts=hosts,
    )
    return EXIT_OK


def cmd_bench_serve(args: argparse.Namespace) -> int:
    from rmlite.bench.serve import bench_serve

    progress = _bench_progress(args)
    try:
        result = bench_serve(
            batches=tuple(args.batch or (1, 256)),
            requests=args.requests,
            seconds=args.seconds,
            model=args.model,
            log=None if args.json else _bench_log,
            progress=progress,
        )
    finally:
        progress.stop()
    return _bench_exit(args, result)


def add_commands(sub: Any, command: Command) -> None:
    """Register ``serve`` with the ``rmlite`` parser."""
    p = command(
        "serve",
        cmd_serve,
        "Serve a reward model over HTTP: POST batches of transitions to /reward as JSON "
        '({"obs": [[...]], "action": [[...]], "next_obs": [[...]]}) or as an Arrow IPC '
        "stream (application/vnd.apache.arrow.stream) and get one reward per row, in the "
        "same format. /info lists the fields and shapes the model needs, /metrics the "
        "request count and p50/p99 latency, /health says it is up. The folder is reloaded "
        "when a new training run rewrites it; wrong shapes or types get a 400 naming the "
        "field.",
        "rmlite serve --model models/pendulum --port 8060\n"
        "  curl -s localhost:8060/reward -H 'Content-Type: application/json' \\\n"
        '    -d \'{"obs": [[1, 0, 0]], "action": [[0.5]], "next_obs": [[1, 0, 0.1]]}\'',
        db=False,
    )
    p.add_argument("--model", required=True, help="model folder written by rmlite train")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, reachable from this machine only)",
    )
    p.add_argument("--port", type=int, default=8060, help="port to listen on (0: any free one)")
    p.add_argument(
        "--reload-every",
        type=float,
        default=1.0,
        help="seconds between checks of the folder's model.json for a new model (0: never)",
    )
    p.add_argument(
        "--max-body-mb", type=float, default=64.0, help="largest request body; larger get 413"
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another Host header to accept besides localhost names (repeatable)",
    )


def add_bench_commands(bench: Any) -> None:
    """Register ``bench serve`` under ``rmlite bench``."""
    b = bench.add_parser(
        "serve",
        help="Requests/s and p50/p99 latency of rmlite serve from a local client, JSON vs Arrow.",
        description="Start rmlite serve on 127.0.0.1 with the quickstart model (or --model) "
        "in a subprocess, then time sequential requests from one local client at each batch "
        "size, JSON and Arrow IPC bodies: requests/s, transitions/s, p50/p99 client-side "
        "latency, and the server's own p50/p99 from /metrics. Bounded by --requests and "
        "--seconds per case.",
        epilog="Example:\n  rmlite bench serve --batch 1 --batch 256 --requests 2000",
        formatter_class=_Formatter,
    )
    b.set_defaults(func=cmd_bench_serve)
    b.add_argument(
        "--batch",
        type=int,
        action="append",
        default=None,
        help="transitions per request (repeatable; default 1 and 256)",
    )
    b.add_argument("--requests", type=int, default=2000, help="requests per case, at most")
    b.add_argument("--seconds", type=float, default=10.0, help="time per case, at most")
    b.add_argument("--model", default=None, help="model folder (default: train the quickstart's)")
    b.add_argument("--json", action="store_true")
