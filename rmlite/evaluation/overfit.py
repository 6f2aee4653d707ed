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


def explain_overfitting(report: Mapping[str, Any]) -> str:
    """An :func:`overfitting` report in one sentence a newcomer can read, verdict first.

    The loss ratio alone reads like an alarm on a healthy near-perfect fit (its losses
    are tiny, so their ratio is large): the sentence says whether the alarm fired and
    why, in terms of the R² on held-out against training episodes.

    Examples
    --------
    >>> curve = {"train": [1.0, 0.1, 0.01], "holdout": [1.0, 0.1, 0.052]}
    >>> explain_overfitting(overfitting([curve], train_r2=0.9995, holdout_r2=0.9990))
    'no overfitting alarm: the hold-out loss is 5.2x the training loss, but the hold-out R² is within 0.001 of the training R² and the hold-out loss is still at its lowest, so the model does as well on new episodes as on the ones it learned from.'
    >>> explain_overfitting(overfitting([curve], train_r2=0.99, holdout_r2=0.80))
    'overfitting alarm: the hold-out loss is 5.2x the training loss and the hold-out R² is 0.19 below the training R²: the model fits its training episodes better than new ones. Regularize, use fewer trees or epochs, or more data.'
    """
    ratio = report.get("ratio")
    if report.get("status") == "unknown" or ratio is None:
        return "not measured: no learning curves were recorded for this model."
    gap, rise = report.get("gap"), float(report.get("rise") or 0.0)
    low, high = report.get("band") or (1.1, 1.5)
    losses = f"the hold-out loss is {ratio:.2g}x the training loss"
    if gap is None:
        r2 = ""
    elif abs(gap) < 0.001:
        r2 = "the hold-out R² is within 0.001 of the training R²"
    elif gap > 0:
        r2 = f"the hold-out R² is {gap:.2g} below the training R²"
    else:
        r2 = f"the hold-out R² is {-gap:.2g} above the training R²"
    risen = (
        "the hold-out loss is still at its lowest"
        if rise < 0.005
        else f"the hold-out loss rose {rise:.0%} from its lowest"
    )
    if report.get("alarm"):
        why = r2 or risen
        return (
            f"overfitting alarm: {losses} and {why}: the model fits its training episodes "
            f"better than new ones. Regularize, use fewer trees or epochs, or more data."
        )
    if report.get("status") == "above band":
        nearly = "as well" if gap is not None and abs(gap) < 0.001 else "about as well"
        return (
            f"no overfitting alarm: {losses}, but {r2 + ' and ' if r2 else ''}{risen}, so the "
            f"model does {nearly} on new episodes as on the ones it learned from."
        )
    if report.get("status") == "below band":
        return (
            f"no overfitting: {losses} (under {low}x){', and ' + r2 if r2 else ''}; the "
            f"model may have room to fit more (more trees or epochs, a larger model)."
        )
    return f"no overfitting: {losses}, inside the usual {low}-{high}x{', and ' + r2 if r2 else ''}."
