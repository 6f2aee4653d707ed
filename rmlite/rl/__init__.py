"""Closing the RL loop: collect rollouts, relabel datasets, learned-reward env wrappers, Minari.

``collect`` holds the public functions; the Gymnasium wrappers live in :mod:`rmlite.rl.gym`.
"""

from __future__ import annotations

from rmlite.rl.collect import (
    CollectReport,
    RelabelReport,
    RewardFunction,
    collect,
    collect_log,
    export_minari,
    import_minari,
    load_policy,
    relabel,
)

__all__ = [
    "CollectReport",
    "RelabelReport",
    "RewardFunction",
    "collect",
    "collect_log",
    "export_minari",
    "import_minari",
    "load_policy",
    "relabel",
]
