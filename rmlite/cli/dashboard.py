"""Commands that show the store: ``dashboard`` (live, in a browser) and ``report`` (HTML).

Registered by :func:`rmlite.cli.build_parser`. The web stack (starlette, uvicorn, plotly)
is imported only inside the commands, so ``rmlite --help`` stays instant; without it the commands say which extra to install.
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
    _console,
    _emit_json,
    _port,
    _Progress,
    progress_enabled,
)


def _missing(exc: ImportError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return EXIT_INTERNAL


def cmd_dashboard(args: argparse.Namespace) -> int:
    from rmlite.data.store import default_path

    try:
        from rmlite.dashboard.app import bind, host_names, serve
    except ImportError as exc:
        return _missing(exc)
    db = args.db or default_path()
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    if args.json:  # one line, printed as soon as the socket listens: scripts read it
        print(json.dumps({"url": url, "store": db, "host": host, "port": port}), flush=True)
    else:
        print(f"rmlite dashboard: {db} at {url} (read-only; Ctrl+C to stop)", file=sys.stderr)
    if host not in ("127.0.0.1", "::1", "localhost"):
        print(
            f"warning: listening on {host}: anyone who can reach this machine can read the "
            f"store's metrics. Use the default --host 127.0.0.1 unless you mean it. Requests "
            f"must name this host as --allowed-host NAME (or the address bound).",
            file=sys.stderr,
        )
    try:
        serve(
            db,
            sock,
            poll_ms=int(args.poll * 1000),
            allowed_hosts=host_names(host, args.allowed_host or []),
        )
    except ImportError as exc:
        return _missing(exc)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from rmlite.data.store import LogStore

    try:
        from rmlite.dashboard.report import write_report
    except ImportError as exc:
        return _missing(exc)
    progress = _Progress(enabled=progress_enabled(args))
    try:
        summary = write_report(
            LogStore(args.db),
            args.model,
            args.dataset,
            args.out,
            progress=progress,
            plotly=args.plotly,
        )
    except ImportError as exc:
        return _missing(exc)
    finally:
        progress.stop()
    if args.json:
        _emit_json(summary)
    else:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in list(summary["metrics"].items())[:4])
        _console().print(
            f"{summary['out']}: {args.model} on {args.dataset} ({shown}; "
            f"{len(summary['alerts'])} alert(s); overfitting "
            f"{(summary['overfitting'] or {}).get('status', 'unknown')}), "
            f"{summary['bytes'] / 1e6:.1f} MB, "
            + ("self-contained" if args.plotly == "inline" else "plotly.js from the CDN")
        )
    return EXIT_OK


def add_commands(sub: Any, command: Command) -> None:
    """Register ``dashboard`` and ``report`` with the ``rmlite`` parser."""
    p = command(
        "dashboard",
        cmd_dashboard,
        "Serve a live dashboard of the store: datasets, runs, accuracy over time, "
        "predicted vs true, learning curves, drift, alerts, tuning trials; a model page "
        "(episode returns, reward traces, uncertainty, importance), a dataset page and a "
        "run comparison, each with its selection in the URL. Read-only; it updates as new "
        "logs, runs and monitor passes land.",
        "rmlite dashboard --db project.duckdb --port 8050   # then open http://127.0.0.1:8050/\n"
        "  rmlite dashboard --db project.duckdb --host 0.0.0.0 --allowed-host dash.example.org",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, reachable from this machine only)",
    )
    p.add_argument("--port", type=_port, default=8050, help="port to listen on (0: any free one)")
    p.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="also answer requests for this host name, repeatable (--allowed-host "
        "dash.example.org); localhost, 127.0.0.1, [::1] and the --host address are always "
        "allowed, any other Host: header gets HTTP 400",
    )
    p.add_argument(
        "--poll",
        type=float,
        default=1.0,
        help="seconds between the page's checks for new data",
    )

    p = command(
        "report",
        cmd_report,
        "Write one self-contained HTML report for a model on a dataset: accuracy against "
        "ground truth (episodes not used in training), predicted vs true, residuals, "
        "learning curves with the overfitting alarm, drift, alerts, tuning trials.",
        "rmlite report --model models/walker --dataset walker --out report.html",
    )
    p.add_argument("--model", required=True, help="model folder written by rmlite train")
    p.add_argument("--dataset", required=True, help="dataset to score the model on")
    p.add_argument("--out", required=True, help="HTML file to write")
    p.add_argument(
        "--plotly",
        choices=("inline", "cdn"),
        default="inline",
        help="inline: plotly.js inside the file (adds about 4.6 MB; opens offline); "
        "cdn: a small file that loads plotly.js from cdn.plot.ly (needs the network)",
    )
