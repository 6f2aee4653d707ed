"""Closing the RL loop: collect rollouts, relabel datasets, learned-reward env wrappers, Minari.

``collect`` rolls out Gymnasium envs into the store, ``relabel`` holds :class:`RewardFunction`
and dataset relabelling, ``minari`` moves datasets to and from Minari, ``export`` writes a
model as one ONNX graph; the Gymnasium
wrappers live in :mod:`rmlite.rl.gym`, the Stable-Baselines3 ``VecEnv`` wrapper in
:mod:`rmlite.rl.sb3` (imported only by its users: it needs stable-baselines3).
"""

from __future__ import annotations

from rmlite.rl.export import export_onnx
from rmlite.rl.minari import export_minari, import_minari
from rmlite.rl.relabeling import RelabelReport, RewardFunction, relabel
from rmlite.rl.rollouts import CollectReport, collect, collect_log, load_policy

__all__ = [
    "CollectReport",
    "RelabelReport",
    "RewardFunction",
    "collect",
    "collect_log",
    "export_minari",
    "export_onnx",
    "import_minari",
    "load_policy",
    "relabel",
]
