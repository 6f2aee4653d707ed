"""``rmlite dashboard`` and ``rmlite report``: the store's models, watched.

The only package that imports the web stack (starlette, uvicorn; plotly only for the
``plotly.min.js`` its wheel ships, served or inlined, never fetched from a CDN):

- :mod:`~rmlite.dashboard.figures` builds every chart as a plain dict in plotly's JSON
  figure format, so the live page and the HTML report draw the same charts;
- :mod:`~rmlite.dashboard.data` reads the store in brief read-only opens, keeps the last
  good data while another process writes, and turns it into the page's JSON;
- :mod:`~rmlite.dashboard.page` is the one HTML page (live, or with its data inlined);
- :mod:`~rmlite.dashboard.app` is the Starlette app that uvicorn serves;
- :mod:`~rmlite.dashboard.report` writes the self-contained HTML report.

Nothing here writes to the store. Install with ``pip install 'rmlite[dashboard]'``.
"""

from __future__ import annotations
