"""``rmlite bench drift``: false alarms and detections of the drift rule, by window size.

Trains a LightGBM reward model on random-policy Pendulum-v1 episodes (as the monitoring
tests and notebook 04 do), then scores many windows of fresh episodes with
:func:`~rmlite.evaluation.monitor.evaluate_window`: windows from the same policy (every
drift alert is a false alarm) and windows after the two shifts of notebook 04, gravity 15
instead of 10 and a swing-up policy (every window should alert). Each window is judged by
the sample-size rule (episode-bootstrap thresholds) and by the fixed rule it replaced
(PSI 0.1 / 0.25, Wasserstein 0.1, windows under 10 episodes capped at warn), so the table
shows both, with the time a pass takes under each.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TARGET_FALSE_ALARMS = 0.05
"""The most same-policy windows that may raise a drift alert."""


def swing_up(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Notebook 04's other policy: full torque along the angular velocity."""
    return np.array([np.clip(2.0 * np.sign(obs[2]) + rng.normal(0, 0.3), -2, 2)], np.float32)


def bench_drift(
    sizes: Sequence[int] = (5, 10, 20, 50),
    windows: int = 40,
    shift_windows: int = 10,
    train_episodes: int = 40,
    pool: int | None = None,
    seed: int = 0,
    workdir: str | None = None,
    log: Callable[[str], None] | None = print,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Share of windows raising a drift alert, per window size, rule and kind of window.

    Parameters
    ----------
    sizes
        Window sizes in episodes.
    windows
        Same-policy windows per size (episodes drawn without replacement from a pool of
        fresh episodes, a different draw per window).
    shift_windows
        Windows per size and shift (gravity 15; swing-up policy).
    train_episodes
        Episodes the model trains on (80%; the rest is its hold-out).
    pool
        Fresh same-policy episodes to draw windows from (default: enough for 5 disjoint
        windows of the largest size, at least 200).
    progress
        Told each stage (and each window) as it starts.

    The result's ``targets`` maps each printed target (the false-alarm rate per window
    size) to whether it was met.
    """
    from rmlite.data.store import LogStore
    from rmlite.evaluation.drift import Thresholds
    from rmlite.evaluation.monitor import evaluate_window
    from rmlite.pipeline import train
    from rmlite.testing import rollout

    say = log or (lambda _m: None)
    stage = progress or (lambda _m: None)
    largest = max(sizes)
    pool = pool or max(200, 5 * largest)
    shift_pool = max(largest, 2 * largest if shift_windows > 1 else largest)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        folder = Path(tmp)
        store = LogStore(folder / "store.duckdb")
        say(f"rolling out {train_episodes} training episodes of Pendulum-v1, training LightGBM")
        stage(f"rolling out {train_episodes} training episodes, training LightGBM")
        store.ingest(rollout("Pendulum-v1", episodes=train_episodes, seed=seed), dataset="train")
        train(store, "train", params={"n_estimators": 200}, out=folder / "model", seed=seed)
        say(f"rolling out {pool} fresh episodes, and {shift_pool} per shift")
        stage(f"rolling out {pool} fresh episodes, and {shift_pool} per shift")
        store.ingest(rollout("Pendulum-v1", episodes=pool, seed=seed + 1000), dataset="same")
        store.ingest(
            rollout("Pendulum-v1", episodes=shift_pool, seed=seed + 2000, g=15.0),
            dataset="gravity",
        )
        store.ingest(
            rollout("Pendulum-v1", episodes=shift_pool, seed=seed + 3000, policy=swing_up),
            dataset="swing-up",
        )
        rules = {"sample-size": Thresholds(), "fixed": Thresholds(bootstrap=0)}
        counts = {"same": (pool, windows), "gravity": (shift_pool, shift_windows)}
        counts["swing-up"] = (shift_pool, shift_windows)
        rng = np.random.default_rng(seed)
        table: list[dict[str, Any]] = []
        seconds = dict.fromkeys(rules, 0.0)
        passes = dict.fromkeys(rules, 0)
        for size in sizes:
            for dataset, (available, n_windows) in counts.items():
                draws = [
                    np.sort(rng.choice(available, size=size, replace=False)).tolist()
                    for _ in range(n_windows)
                ]
                for rule, thresholds in rules.items():
                    alerted = 0
                    names: dict[str, int] = {}
                    for i, episodes in enumerate(draws):
                        stage(
                            f"{size} episodes, {dataset}, {rule} rule: window {i + 1}/{len(draws)}"
                        )
                        clock = time.perf_counter()
                        window = evaluate_window(
                            store, folder / "model", dataset, episodes, thresholds
                        )
                        seconds[rule] += time.perf_counter() - clock
                        passes[rule] += 1
                        drifted = [a["name"] for a in window.alerts if a["source"] == "drift"]
                        alerted += bool(drifted)
                        for name in drifted:
                            names[name] = names.get(name, 0) + 1
                    row = {
                        "episodes": size,
                        "windows": dataset,
                        "rule": rule,
                        "passes": len(draws),
                        "alerted": alerted,
                        "rate": alerted / len(draws) if draws else float("nan"),
                        "alerts": names,
                    }
                    table.append(row)
                    say(
                        f"{size:>3} episodes  {dataset:<9} {rule:<12} "
                        f"{alerted:>3}/{len(draws):<3} alerted {names or ''}"
                    )
    per_pass = {rule: seconds[rule] / max(passes[rule], 1) for rule in rules}
    false_alarms = {
        r["episodes"]: r["rate"]
        for r in table
        if r["windows"] == "same" and r["rule"] == "sample-size"
    }
    detected = {
        (r["windows"], r["episodes"]): r["rate"]
        for r in table
        if r["windows"] != "same" and r["rule"] == "sample-size"
    }
    result = {
        "table": table,
        "seconds_per_pass": per_pass,
        "ratio": per_pass["sample-size"] / per_pass["fixed"] if per_pass["fixed"] else None,
        "target_false_alarms": TARGET_FALSE_ALARMS,
        "false_alarms_met": all(v <= TARGET_FALSE_ALARMS for v in false_alarms.values()),
        "min_detection": min(detected.values()) if detected else None,
        "targets": {
            f"false alarms at {size} episodes <= {TARGET_FALSE_ALARMS:.0%}": rate
            <= TARGET_FALSE_ALARMS
            for size, rate in false_alarms.items()
        },
    }
    say(format_table(result))
    return result


def format_table(result: dict[str, Any]) -> str:
    """The benchmark's table: one row per window size; per kind of window, the share that
    alerted under the sample-size rule ("new") and under the fixed thresholds ("fixed")."""
    rows = result["table"]
    sizes = sorted({r["episodes"] for r in rows})
    kinds = list(dict.fromkeys(r["windows"] for r in rows))
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    cell = {(r["episodes"], r["windows"], r["rule"]): r for r in rows}
    short = {"sample-size": "new", "fixed": "fixed"}
    width = 13
    lines = [
        "windows raising a drift alert (same policy: false alarms, target <= "
        f"{result['target_false_alarms']:.0%}; gravity 15 and swing-up: detections)",
        ("episodes" + "".join(f"{k:^{width * len(rules)}}" for k in kinds)).rstrip(),
        " " * 8 + "".join(f"{short.get(rule, rule):>{width}}" for _ in kinds for rule in rules),
    ]
    for size in sizes:
        line = f"{size:>8}"
        for k in kinds:
            for rule in rules:
                r = cell.get((size, k, rule))
                line += f"{r['alerted']:>3}/{r['passes']:<3}{r['rate']:>6.1%}" if r else " " * width
        lines.append(line.rstrip())
    per = result["seconds_per_pass"]
    lines.append(
        f"seconds per pass: new {per['sample-size']:.3f}, fixed {per['fixed']:.3f} "
        f"(ratio {result['ratio']:.2f}x; limits computed once per window size)"
    )
    return "\n".join(lines)
