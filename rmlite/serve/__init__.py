"""The reward server: a saved reward model answering batched requests over HTTP.

``rmlite serve --model DIR`` lets agents in other processes, frameworks or languages use
a reward model: they POST batches of transitions (JSON or Arrow IPC) to ``/reward`` and
get one reward per row back. The server reloads the folder when a new training run
rewrites it, reports its latency (``/metrics``) and refuses malformed batches with a
400/413/415 naming the field and the expected shape.

- :mod:`rmlite.serve.model` holds the served model and swaps in a new one when
  ``model.json`` changes (:class:`ModelWatcher`).
- :mod:`rmlite.serve.codec` decodes and checks request bodies and encodes answers.
- :mod:`rmlite.serve.app` is the Starlette application and its uvicorn runner.

This package sits with the other user surfaces (dashboard, bench) above :mod:`rmlite.rl`,
whose :class:`~rmlite.rl.RewardFunction` makes the predictions. It imports starlette and
uvicorn (the ``serve`` extra, also in ``dashboard``) only inside
:func:`rmlite.serve.app.create_app` and :func:`rmlite.serve.app.serve`.
"""

from __future__ import annotations

from rmlite.serve.codec import RequestError
from rmlite.serve.model import ModelWatcher, ServedModel

__all__ = ["ModelWatcher", "RequestError", "ServedModel"]
