"""The overfitting verdict of a reward model, read off its learning curves and hold-out scores.

The ratio of hold-out to training loss at the end of the learning curves, against
Christiano et al.'s band (:func:`overfitting`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def overfitting(
    curves: Sequence[Mapping[str, Sequence[float]]],
    *,
    train_r2: float | None = None,
    holdout_r2: float | None = None,
    band: tuple[float, float] = (1.1, 1.5),
    min_gap: float = 0.01,
    min_rise: float = 0.05,
) -> dict[str, Any]:
    """Is the model overfitting? Read off its learning curves and hold-out scores.

    ``ratio`` = final hold-out loss / final training loss, averaged over the ensemble's
    members (the ``"holdout"`` curve, else early stopping's ``"valid"``). Status: ``below
    band`` (ratio < band[0]: room to fit more), ``in band``, ``overfit`` (the alarm below),
    ``above band`` (ratio > band[1] without the alarm), or ``unknown`` without curves. ``rise`` = final hold-out loss / its minimum − 1: the
    hold-out loss climbing back while the training loss still falls.

    The alarm fires when the ratio is above the band and the overfitting costs something:
    the generalization gap ``train_r2 - holdout_r2`` is at least ``min_gap``, or the
    hold-out loss rose at least ``min_rise`` above its minimum. The ratio alone is not
    enough: a near-perfect fit of a deterministic reward has tiny losses whose ratio says
    nothing.

    Examples
    --------
    >>> curve = {"train": [1.0, 0.5, 0.1], "holdout": [1.1, 0.6, 0.4]}
    >>> report = overfitting([curve], train_r2=0.99, holdout_r2=0.9)
    >>> report["status"], report["alarm"], round(report["ratio"], 1)
    ('overfit', True, 4.0)
    """
    ratios, rises = [], []
    watched = None
    for curve in curves:
        train = list(curve.get("train") or [])
        for name in ("holdout", "valid"):
            held = list(curve.get(name) or [])
            if held and train:
                watched = watched or name
                ratios.append(held[-1] / train[-1] if train[-1] > 0 else float("inf"))
                rises.append(held[-1] / min(held) - 1.0 if min(held) > 0 else 0.0)
                break
    gap = None if train_r2 is None or holdout_r2 is None else float(train_r2 - holdout_r2)
    if not ratios:
        return {
            "status": "unknown",
            "alarm": False,
            "ratio": None,
            "gap": gap,
            "band": list(band),
            "rise": None,
            "curve": None,
            "message": "no training and hold-out learning curves were recorded for this model",
        }
    ratio = float(np.mean(ratios))
    rise = float(np.mean(rises))
    costly = rise >= min_rise or gap is None or gap >= min_gap
    alarm = ratio > band[1] and costly
    if alarm:
        status = "overfit"
    elif ratio > band[1]:
        status = "above band"
    elif ratio < band[0]:
        status = "below band"
    else:
        status = "in band"
    described = (
        f"{watched} loss is {ratio:.3g}x the training loss (band {band[0]}–{band[1]}), "
        f"{rise:.1%} above its minimum"
    )
    if gap is not None:
        described += f", R² gap {gap:.4f}"
    if alarm:
        message = f"overfitting: {described}. Regularize, use fewer trees/epochs or more data."
    elif status == "above band":
        message = (
            f"{described}: above the band, but the R² gap is under {min_gap} and the hold-out "
            f"loss rose less than {min_rise:.0%}, so no alarm."
        )
    else:
        message = f"{status}: {described}."
    return {
        "status": status,
        "alarm": bool(alarm),
        "ratio": ratio,
        "gap": gap,
        "band": list(band),
        "rise": rise,
        "curve": watched,
        "message": message,
    }
