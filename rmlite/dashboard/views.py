"""The model, dataset and comparison pages' data: read from the store, drawn by figures.

The live app and ``rmlite report`` both call these, so a page and the report show the
same views. A model's views come from scoring its window's episodes once (the newest
:data:`MAX_EPISODES` of those it was not trained on): per-step learned and logged
rewards, summed into episode returns, the worst episodes' traces, and the members'
spread against the error.

Examples
--------
>>> steps = pl.DataFrame({"episode_id": [1, 1, 2], "step": [0, 1, 0],
...                       "y_true": [1.0, 1.0, 0.0], "y_pred": [1.0, 0.5, 0.5]})
>>> episode_table(steps, "reward").rows()
[(1, 2, 2.0, 1.5, -0.5), (2, 1, 0.0, 0.5, 0.5)]
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from rmlite.dashboard import figures as F
from rmlite.dashboard.data import StoreReader, json_object, resolve_model_path, to_jsonable
from rmlite.data.store import LogStore

MAX_EPISODES = 200
"""Episodes a model page scores at most (the newest of its window)."""

WORST = 10
"""Episodes listed as the worst (largest |predicted − true return|), each with its trace."""

UNCERTAINTY_ROWS = 2000
"""Transitions the uncertainty-vs-error chart draws at most (a seeded sample)."""

HISTOGRAM_BINS = 30

RELABEL_COLUMNS = (
    "relabel_id",
    "source_dataset",
    "destination",
    "destination_kind",
    "model_path",
    "gamma",
    "pessimism",
    "rows",
    "rows_predicted",
    "created_at",
)
"""The relabels table's columns on the dataset page."""


@dataclass
class ModelViews:
    """One model scored on a window of a dataset's episodes."""

    dataset: str
    target: str
    members: int
    steps: pl.DataFrame
    """episode_id, step, y_true, y_pred and (ensembles) std: every step of the window."""
    episodes: pl.DataFrame
    """episode_id, length, true_return, pred_return, error (see :func:`episode_table`)."""
    importance: list[dict[str, Any]]
    """feature, gain: the boosters' own importance (none for the MLP)."""


def score_model(
    store: LogStore,
    model: Any,
    dataset: str,
    episodes: Sequence[int] | None = None,
    max_episodes: int = MAX_EPISODES,
) -> ModelViews:
    """Predict every step of a window of ``dataset`` with a loaded ``model``.

    ``episodes``: the window (default: the newest ``max_episodes`` episodes the model was
    not trained on, or all of them when it was trained on another dataset).
    """
    from rmlite.evaluation.frame import model_frame
    from rmlite.evaluation.monitor import default_episodes
    from rmlite.evaluation.reference import target_predictions

    chosen = list(episodes) if episodes is not None else default_episodes(store, model, dataset)
    chosen = sorted(int(e) for e in chosen)[-max_episodes:]
    frame = model_frame(store, model, dataset, require_target=False, episodes=chosen)
    y_true, y_pred = target_predictions(model, frame)
    columns: dict[str, Any] = {
        "episode_id": frame.groups.astype(np.int64),
        "step": frame.steps.astype(np.int64),
        "y_true": y_true,
        "y_pred": y_pred.astype(np.float64),
    }
    members = len(getattr(model, "members_", []) or [None])
    target = frame.spec.target
    if members > 1 and target != "event" and hasattr(model, "predict"):
        try:
            mean, std = model.predict(frame.X, return_std=True)
        except TypeError:  # an estimator without return_std: no spread to show
            pass
        else:
            # The scaling is affine: a spread in scaled units times the scale.
            inverse = frame.stats.inverse_transform_target
            columns["std"] = np.abs(inverse(mean + std) - inverse(mean))
    steps = pl.DataFrame(columns).with_columns(pl.col("y_true").fill_nan(None))
    importance: list[dict[str, Any]] = []
    try:
        gains = np.asarray(model.feature_importances_, dtype=np.float64)
    except (AttributeError, ValueError, TypeError):  # the MLP, a preference model
        gains = np.array([])
    if gains.size == len(frame.feature_names):
        importance = [
            {"feature": name, "gain": float(g)}
            for name, g in zip(frame.feature_names, gains, strict=True)
        ]
    return ModelViews(
        dataset=dataset,
        target=target,
        members=members,
        steps=steps,
        episodes=episode_table(steps, target),
        importance=importance,
    )


def episode_table(steps: pl.DataFrame, target: str) -> pl.DataFrame:
    """Per episode: length, logged and predicted return, and predicted − logged.

    A reward (or event) model's return is the sum over the episode's steps; a
    return-to-go model's is its value at the first step.
    """
    if not steps.height:
        return pl.DataFrame(
            schema={
                "episode_id": pl.Int64,
                "length": pl.UInt32,
                "true_return": pl.Float64,
                "pred_return": pl.Float64,
                "error": pl.Float64,
            }
        )
    if target == "return":
        first = steps.sort("episode_id", "step").group_by("episode_id", maintain_order=True)
        agg = first.agg(
            pl.len().alias("length"),
            pl.col("y_true").first().alias("true_return"),
            pl.col("y_pred").first().alias("pred_return"),
        )
    else:
        agg = steps.group_by("episode_id", maintain_order=True).agg(
            pl.len().alias("length"),
            # An episode with a missing reward has no true return (not a partial sum).
            pl.when(pl.col("y_true").null_count() == 0)
            .then(pl.col("y_true").sum())
            .otherwise(None)
            .alias("true_return"),
            pl.col("y_pred").sum().alias("pred_return"),
        )
    return agg.with_columns((pl.col("pred_return") - pl.col("true_return")).alias("error")).sort(
        "episode_id"
    )


def worst_episodes(episodes: pl.DataFrame, k: int = WORST) -> list[dict[str, Any]]:
    """The ``k`` episodes whose predicted return is furthest from the logged one."""
    known = episodes.filter(pl.col("error").is_not_null())
    if not known.height:
        return []
    ranked = known.with_columns(pl.col("error").abs().alias("abs_error")).sort(
        "abs_error", descending=True
    )
    return [_plain(r) for r in ranked.head(k).drop("abs_error").to_dicts()]


def model_figures(views: ModelViews, episode: int | None = None) -> dict[str, Any]:
    """Figures and tables of a model page: episode returns, the worst episodes (each with
    its trace), one chosen episode's trace, uncertainty vs error, booster importance."""
    worst = worst_episodes(views.episodes)
    ids = [w["episode_id"] for w in worst]
    known = set(views.episodes["episode_id"].to_list()) if views.episodes.height else set()
    chosen = episode if episode in known else (ids[0] if ids else None)
    traces = {
        str(e): trace_figure(views, e) for e in dict.fromkeys([*ids, chosen]) if e is not None
    }
    sample = views.steps
    if "std" in sample.columns and sample.height > UNCERTAINTY_ROWS:
        sample = sample.sample(UNCERTAINTY_ROWS, seed=0)
    figures = {
        "returns": F.episode_returns(_rows(views.episodes), ids),
        "trace": traces.get(str(chosen)) or F.reward_trace([], None),
        "uncertainty": F.uncertainty(_rows(sample) if "std" in sample.columns else []),
        "gain": F.gain_importance(views.importance),
    }
    if len(views.importance) > F.IMPORTANCE_TOP:
        figures["gain_all"] = F.gain_importance(views.importance, top=len(views.importance))
    return {
        "figures": figures,
        "traces": traces,
        "worst": worst,
        "episode": chosen,
        "window": {
            "dataset": views.dataset,
            "episodes": views.episodes.height,
            "transitions": views.steps.height,
            "members": views.members,
            "target": views.target,
        },
    }


def trace_figure(views: ModelViews, episode: int) -> dict[str, Any]:
    """Learned vs logged reward along one episode of the window."""
    steps = views.steps.filter(pl.col("episode_id") == episode).sort("step")
    return F.reward_trace(_rows(steps), episode, title=f"Learned vs logged {views.target}, episode")


# ---------------------------------------------------------------------- dataset


def dataset_views(store: LogStore, dataset: str) -> dict[str, Any]:
    """A dataset page: episode length, return and reward distributions, the ``check``
    findings, and the relabels that read or wrote it."""
    episodes = store.episodes(dataset)
    # Counted in DuckDB: a dataset of any size sends the page HISTOGRAM_BINS numbers.
    reward_edges, reward_counts = store.reward_histogram(dataset, HISTOGRAM_BINS)
    report = store.check(dataset)
    checks = report.to_dict()
    rows = [
        {"check": f"{part}: {key.replace('_', ' ')}", "value": value}
        for part in ("episodes", "values", "next_obs")
        for key, value in (checks.get(part) or {}).items()
        if not isinstance(value, dict | list)
    ]
    relabels = store.relabels(dataset)
    shown = [c for c in RELABEL_COLUMNS if c in relabels.columns]
    ended = (
        episodes.select(
            pl.col("terminated").sum().alias("terminated"),
            pl.col("truncated").sum().alias("truncated"),
        ).row(0, named=True)
        if episodes.height
        else {"terminated": 0, "truncated": 0}
    )
    return {
        "dataset": dataset,
        "summary": {
            "episodes": episodes.height,
            "transitions": int(episodes["length"].sum()) if episodes.height else 0,
            "terminated": int(ended["terminated"] or 0),
            "truncated": int(ended["truncated"] or 0),
        },
        "problems": report.problems,
        "checks": [_plain(r) for r in rows],
        "relabels": [_plain(r) for r in relabels.select(shown).to_dicts()]
        if relabels.height
        else [],
        "figures": {
            "lengths": _histogram(
                episodes["length"].to_numpy() if episodes.height else np.array([]),
                "Episode length",
                "steps",
                "episodes",
                integer=True,
            ),
            "returns_hist": _histogram(
                episodes["return"].drop_nulls().to_numpy() if episodes.height else np.array([]),
                "Episode return (logged)",
                "return",
                "episodes",
            ),
            "rewards": _counted_histogram(
                reward_edges,
                reward_counts,
                "Reward per transition (logged)",
                "reward",
                "transitions",
            ),
        },
    }


def _histogram(
    values: np.ndarray, title: str, xlabel: str, ylabel: str, integer: bool = False
) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return F.empty(title, "nothing to count yet")
    low, high = float(values.min()), float(values.max())
    if integer:
        # Whole-number bins (lengths): a bin per value while they are few.
        span = int(high - low) + 1
        step = max(1, int(np.ceil(span / HISTOGRAM_BINS)))
        edges = np.arange(low - 0.5, high + 0.5 + step, step)
    else:
        edges = np.histogram_bin_edges(values, bins=HISTOGRAM_BINS if high > low else 1)
    counts, edges = np.histogram(values, bins=edges)
    return _counted_histogram(edges, counts, title, xlabel, ylabel, integer)


def _counted_histogram(
    edges: np.ndarray,
    counts: np.ndarray,
    title: str,
    xlabel: str,
    ylabel: str,
    integer: bool = False,
) -> dict[str, Any]:
    """A histogram of counts already made (by :func:`_histogram`, or by the store:
    :meth:`LogStore.reward_histogram`), its total in the title."""
    if not counts.size:
        return F.empty(title, "nothing to count yet")
    n = int(counts.sum())
    return F.histogram(edges.tolist(), counts.tolist(), f"{title} · {n:,}", xlabel, ylabel, integer)


# ------------------------------------------------------------------- comparison


def compare_runs(runs: pl.DataFrame, run_ids: Sequence[int]) -> dict[str, Any]:
    """Chosen runs side by side: their hold-out metrics (small multiples) and a table of
    every parameter, the ones that differ first."""
    if not runs.height or not run_ids:
        return {"runs": [], "params": [], "figures": {"compare": F.compare_metrics([])}}
    chosen = runs.filter(pl.col("run_id").is_in(list(run_ids))).sort("run_id")
    picked = []
    for r in chosen.iter_rows(named=True):
        params = json_object(r.get("params"))
        picked.append(
            {
                "run_id": r["run_id"],
                "metrics": json_object(r.get("metrics")).get("holdout") or {},
                "params": {
                    "backend": r.get("backend"),
                    "target": r.get("target"),
                    "dataset": r.get("dataset"),
                    **_flat(params),
                },
            }
        )
    keys = list(dict.fromkeys(k for p in picked for k in p["params"]))
    table = []
    for key in keys:
        values = [p["params"].get(key) for p in picked]
        row = {"param": key, "differs": len({json.dumps(v, default=str) for v in values}) > 1}
        row.update({f"run {p['run_id']}": _cell(p["params"].get(key)) for p in picked})
        table.append(row)
    table.sort(key=lambda r: not r["differs"])
    metrics = [
        m for m in (*F.SCORE_METRICS, *F.ERROR_METRICS) if any(m in p["metrics"] for p in picked)
    ]
    scores = []
    for name in metrics:
        row = {"param": f"hold-out {name}", "differs": True}
        row.update({f"run {p['run_id']}": p["metrics"].get(name) for p in picked})
        scores.append(row)
    table = scores + table
    return {
        "runs": [p["run_id"] for p in picked],
        "params": [_plain(r) for r in table],
        "figures": {"compare": F.compare_metrics(picked)},
    }


def _flat(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameters (``backend_params``) as ``parent.key`` rows; lists as JSON text."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            out[f"{prefix}{key}"] = json.dumps(value)
        else:
            out[f"{prefix}{key}"] = value
    return out


def _cell(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool) or value is None else str(value)


def _rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [_plain(r) for r in frame.to_dicts()] if frame.height else []


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    out = to_jsonable(dict(row))
    assert isinstance(out, dict)
    return out


# ------------------------------------------------------------------------ pages

PAGES = ("overview", "model", "dataset", "compare")
"""The live page's views; ``?page=`` picks one, the rest of the query its selection."""


def page_sections(
    reader: StoreReader,
    body: Mapping[str, Any],
    page: str,
    *,
    episode: int | None = None,
    run_ids: Sequence[int] = (),
) -> dict[str, Any]:
    """The chosen page's own data, added to the overview's ``body`` (its selection of
    dataset and model). Only names the store returned reach the store; a model folder or
    dataset that fails to read becomes a note."""
    selected = body.get("selected") or {}
    model, dataset = selected.get("model"), selected.get("dataset")
    out: dict[str, Any] = {}
    try:
        if page == "model" and model:
            dataset = dataset or _dataset_of(body, model)
            folder = resolve_model_path(model, reader.path)
            if folder is not None and dataset:
                stamp = os.stat(os.path.join(folder, "model.json")).st_mtime_ns

                def score(store: LogStore) -> ModelViews:
                    from rmlite.estimators.loading import load_model

                    return score_model(store, load_model(folder), dataset)

                views = reader.cached(("model", folder, stamp, dataset), score)
                if views is not None:
                    out["model_page"] = model_figures(views, episode)
        elif page == "dataset":
            names = [d["dataset"] for d in body.get("datasets") or []]
            chosen = str(dataset or (names[0] if names else ""))
            if chosen in names:
                out["dataset_page"] = reader.cached(
                    ("dataset", chosen), lambda store: dataset_views(store, chosen)
                )
        elif page == "compare":
            known = [r["run_id"] for r in body.get("runs") or []]
            wanted = [r for r in run_ids if r in known] or known[:2]
            runs = reader.cached(("runs",), lambda store: store.runs())
            if runs is not None:
                out["compare_page"] = compare_runs(runs, wanted)
    except Exception as exc:  # a damaged folder or log: a note, never a broken page
        out["page_error"] = f"the {page} view could not be drawn: {exc}"
    return out


def _dataset_of(body: Mapping[str, Any], model: str) -> str | None:
    for option in body.get("models") or []:
        if option.get("path") == model:
            return option.get("dataset")
    return None
