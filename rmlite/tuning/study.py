"""Hyper-parameter tuning with Optuna: episode-grouped CV, pruning, persistent studies.

:func:`tune` searches an estimator's parameters on a matrix; :func:`tune_dataset` (what
``rmlite tune`` runs) does the same on a dataset of the store, may search the feature
spec too, then refits the best trial on every training episode, scores it on held-out
episodes, saves it and records it in the ``runs`` table with its trial number. How a
trial is scored is told in :mod:`rmlite.tuning.objective`.

Studies
    Persist in a storage (SQLite for one process, Optuna's journal file for several
    processes on one host or a shared file system, a SQL server URL for several hosts)
    so a killed session resumes: ``n_trials`` is the total the study should reach, and
    trials left RUNNING by a dead process are marked FAILED on resume (Optuna's heartbeat
    recovery exists only on SQL storages; this works on all of them). A trial that raises
    is recorded as FAILED with its error and the study goes on.

The ``rmlite.tuning`` package is the only one that imports optuna, lazily.

Examples
--------
>>> import numpy as np
>>> from rmlite import RewardRegressor
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(1200, 3)).astype(np.float32)
>>> y = X[:, 0] - X[:, 1] ** 2
>>> groups = np.repeat(np.arange(12), 100)
>>> result = tune(RewardRegressor(n_estimators=30, n_jobs=1, random_state=0), X, y,
...               groups=groups, n_trials=4, cv=3, seed=0)
>>> result.n_complete + result.n_pruned == 4, result.best_score > 0.8
(True, True)
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from rmlite._typing import PathLike
from rmlite.exceptions import ParameterError, RmliteError, SchemaError
from rmlite.tuning.objective import _Data, _Objective
from rmlite.tuning.spaces import SPEC_SPACE, Choice, Float, Int, split_params
from rmlite.tuning.spaces import search_space as _search_space  # tune()'s parameter shadows it
from rmlite.tuning.storage import _optuna, open_storage, recover_dead_trials, resolve_storage

if TYPE_CHECKING:
    from rmlite.data.features import FeatureSpec
    from rmlite.data.store import LogStore


@dataclass
class TuneProgress:
    """Where a tuning session stands, passed to the ``progress`` callback."""

    complete: int
    pruned: int
    failed: int
    running: int
    target: int | None
    best_value: float | None
    best_score: float | None
    metric: str


@dataclass
class TuneResult:
    """What a tuning session found (and, after a refit, produced)."""

    study_name: str
    storage: str
    metric: str
    """``r2`` (mean episode-grouped CV R², higher is better) or ``log_loss`` (lower)."""
    best_score: float
    best_value: float
    """The objective Optuna minimized: ``1 - r2`` or the log loss."""
    best_params: dict[str, Any]
    best_trial: int
    n_complete: int
    n_pruned: int
    n_failed: int
    recovered: list[int] = field(default_factory=list)
    """Trials left RUNNING by a dead process, marked FAILED when this session started."""
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    model: Any = None
    run_id: int | None = None
    model_path: str | None = None
    metrics: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    """Why the refit model's hold-out metrics mean little, when they do (too little data, or
    worse than the mean: :func:`rmlite.pipeline.quality_warnings`)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the model object)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}


def _counts(study: Any) -> dict[str, int]:
    optuna = _optuna()
    states = [t.state for t in study.get_trials(deepcopy=False)]
    s = optuna.trial.TrialState
    return {
        "complete": states.count(s.COMPLETE),
        "pruned": states.count(s.PRUNED),
        "failed": states.count(s.FAIL),
        "running": states.count(s.RUNNING),
    }


PRUNERS = ("median", "hyperband", "wilcoxon", "none")
"""Pruners by name (``rmlite tune --pruner``); ``pruning=True`` means ``"median"``."""

METRIC_NAMES = {"r2": "1 - R²", "log_loss": "log loss"}
"""What a study minimizes, as optuna-dashboard labels it (``Study.set_metric_names``)."""


def _pruner_name(pruning: bool | str | Any) -> str | None:
    """The name of a ``pruning`` argument, or None for an Optuna pruner object."""
    if pruning is True:
        return "median"
    if pruning is False or pruning is None:
        return "none"
    if isinstance(pruning, str):
        if pruning not in PRUNERS:
            raise ParameterError(
                f"The 'pruning' parameter must be True, False, an Optuna pruner or one of "
                f"{', '.join(PRUNERS)}. Got {pruning!r} instead."
            )
        return pruning
    return None


def _make_pruner(pruning: bool | str | Any, rounds: int) -> Any:
    optuna = _optuna()
    name = _pruner_name(pruning)
    if name is None:
        return pruning
    if name == "median":
        # Compare with trials at the same round of fold 0; leave the first tenth of the
        # rounds alone (every model is bad after two trees).
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, rounds // 10))
    if name == "hyperband":
        # Resource = rounds of fold 0; the first rung at the first report (a tenth).
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, rounds // 10), max_resource=rounds, reduction_factor=3
        )
    if name == "wilcoxon":
        import warnings

        with warnings.catch_warnings():  # experimental in Optuna: the interface may change
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=2)
    return optuna.pruners.NopPruner()


def _report_by(pruning: bool | str | Any) -> str:
    """What the objective reports: each fold's loss for Wilcoxon, else fold 0's curve."""
    optuna = _optuna()
    if _pruner_name(pruning) == "wilcoxon" or isinstance(pruning, optuna.pruners.WilcoxonPruner):
        return "fold"
    return "round"


def _optimize(
    objective: _Objective,
    storage: str,
    study_name: str,
    n_trials: int | None,
    timeout: float | None,
    pruning: Any,
    rounds: int,
    seed: int | None,
    parallel: bool,
    verbose: bool,
    callbacks: Sequence[Callable[..., None]] = (),
) -> None:
    """One worker's loop: until the study holds ``n_trials`` finished trials or time is up."""
    optuna = _optuna()
    if not verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study_name,
        storage=open_storage(storage) if isinstance(storage, str) else storage,
        sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=parallel),
        pruner=_make_pruner(pruning, rounds),
    )
    finished = (
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.FAIL,
    )
    done = len(study.get_trials(deepcopy=False, states=finished))
    if n_trials is not None and done >= n_trials:
        return
    cbs = list(callbacks)
    if n_trials is not None:
        cbs.append(optuna.study.MaxTrialsCallback(n_trials, states=finished))
    study.optimize(
        objective,
        n_trials=None if n_trials is None else n_trials - done,
        timeout=timeout,
        catch=(Exception,),
        callbacks=cbs,
    )


def _worker_main(args: tuple[Any, ...]) -> None:
    _optimize(*args)


def run_study(
    objective: _Objective,
    *,
    storage: str,
    study_name: str,
    n_trials: int | None,
    timeout: float | None,
    pruning: Any = True,
    workers: int = 1,
    client: Any = None,
    seed: int | None = 0,
    verbose: bool = False,
    progress: Callable[[TuneProgress], None] | None = None,
    study_attrs: Mapping[str, Any] | None = None,
) -> tuple[Any, list[int]]:
    """Run a study to its target with 1 process, ``workers`` processes or Dask workers.

    ``study_attrs`` (what is tuned: dataset, feature spec, fixed parameters, folds, ...)
    are saved as the study's user attributes, for optuna-dashboard and for a later
    session: resuming a study made for another dataset, spec, metric or number of folds
    is an error, since its trials' values would not compare.
    """
    optuna = _optuna()
    if not verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    if n_trials is None and timeout is None:
        raise ParameterError("Pass n_trials or timeout (or both): a study needs an end.")
    if n_trials is not None and n_trials < 1:
        raise ParameterError(f"The 'n_trials' parameter must be >= 1. Got {n_trials!r}.")
    if workers < 1:
        raise ParameterError(f"The 'workers' parameter must be >= 1. Got {workers!r}.")
    if storage.startswith("sqlite:"):
        folder = os.path.dirname(storage[len("sqlite:///") :])
        if folder:
            os.makedirs(folder, exist_ok=True)
    rounds = int(
        objective.base.get(
            "max_epochs" if objective.base.get("backend") == "mlp" else "n_estimators", 100
        )
    )
    metric = "r2" if objective.objective == "regression" else "log_loss"
    objective.report_by = _report_by(pruning)
    if objective.report_by == "fold" and objective.cv < 5:
        raise ParameterError(
            f"The Wilcoxon pruner compares a trial with the best one fold by fold, and with "
            f"cv={objective.cv} it can never prune: the smallest one-sided p-value of "
            f"{objective.cv - 1} paired folds is {0.5 ** (objective.cv - 1):.3g}, above its "
            f"threshold 0.1. Use cv >= 5, or the median or hyperband pruner."
        )
    storage_obj = open_storage(storage)
    study = optuna.create_study(
        storage=storage_obj, study_name=study_name, direction="minimize", load_if_exists=True
    )
    if study.direction != optuna.study.StudyDirection.MINIMIZE:
        raise ParameterError(
            f"study {study_name!r} in {storage} maximizes; rmlite's studies minimize. Pass "
            f"another study name."
        )
    _describe_study(study, storage, metric, objective, pruning, study_attrs or {})
    recovered = recover_dead_trials(study, storage=storage_obj)

    def report(study: Any, _trial: Any = None) -> None:
        if progress is None:
            return
        counts = _counts(study)
        best = _best_value(study)
        progress(
            TuneProgress(
                **counts,
                target=n_trials,
                best_value=best,
                best_score=None if best is None else _score(best, metric),
                metric=metric,
            )
        )

    report(study)
    memory = storage == ":memory:"
    job = (objective, storage_obj if memory else storage, study_name, n_trials, timeout, pruning,
           rounds)  # fmt: skip
    if client is not None:
        _run_on_dask(client, job, seed, verbose, study, report, timeout)
    elif workers == 1:
        _optimize(*job, seed, False, verbose, [report])
    else:
        ctx = mp.get_context("spawn")
        procs = [
            ctx.Process(
                target=_worker_main,
                args=((*job, None if seed is None else seed + i, True, verbose),),
                daemon=True,
            )
            for i in range(workers)
        ]
        for p in procs:
            p.start()
        try:
            while any(p.is_alive() for p in procs):
                report(study)
                for p in procs:
                    p.join(timeout=1.0 / len(procs))
        finally:
            for p in procs:  # interrupted: the workers' RUNNING trials are recovered next time
                if p.is_alive():
                    p.terminate()
                    p.join(5)
        report(study)
    return study, recovered


def _describe_study(
    study: Any,
    storage: str,
    metric: str,
    objective: _Objective,
    pruning: Any,
    attrs: Mapping[str, Any],
) -> None:
    """Name the metric and save what is tuned as study attributes; refuse a mismatch."""
    import json
    import warnings

    optuna = _optuna()
    described = {
        **json.loads(json.dumps(dict(attrs), default=str)),  # attributes are JSON
        "metric": METRIC_NAMES[metric],
        "folds": objective.cv,
        "pruner": _pruner_name(pruning) or type(pruning).__name__,
        "intermediate_values": (
            "hold-out loss of each fold (step = fold)"
            if objective.report_by == "fold"
            else "hold-out loss of fold 0 after each boosting round or epoch (step = round)"
        ),
    }
    before = study.user_attrs
    for key in ("dataset", "feature_spec", "metric", "folds"):
        if key in before and key in described and before[key] != described[key]:
            was, now = before[key], described[key]
            if isinstance(was, dict) and isinstance(now, dict):  # name the fields that differ
                fields_ = sorted(k for k in {*was, *now} if was.get(k) != now.get(k))
                was = ", ".join(f"{k}={was.get(k)!r}" for k in fields_)
                now = ", ".join(f"{k}={now.get(k)!r}" for k in fields_)
            raise ParameterError(
                f"study {study.study_name!r} in {storage} was made for {key} {was}; this "
                f"session asks for {now}, whose values would not compare. Pass another "
                f"study name (--study NAME, or study_name=)."
            )
    for key, value in described.items():
        if before.get(key) != value:
            study.set_user_attr(key, value)
    if study.metric_names is None:
        with warnings.catch_warnings():  # experimental in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([METRIC_NAMES[metric]])


def _run_on_dask(
    client: Any,
    job: tuple[Any, ...],
    seed: int | None,
    verbose: bool,
    study: Any,
    report: Callable[[Any], None],
    timeout: float | None,
) -> None:
    if job[1] == ":memory:" or not isinstance(job[1], str):
        raise ParameterError(
            "Optuna trials on Dask workers need a storage every worker can reach: a journal "
            "file on a shared file system or a SQL server URL, not memory."
        )
    from rmlite.distributed import run_on_workers

    run_on_workers(
        client,
        _worker_main,
        [(*job, None if seed is None else seed + i, True, verbose) for i in range(1000)],
        poll=lambda: report(study),
        timeout=None if timeout is None else timeout + 120.0,
    )
    report(study)


def _best_value(study: Any) -> float | None:
    try:
        return float(study.best_value)
    except ValueError:  # no complete trial yet
        return None


def _score(value: float, metric: str) -> float:
    return 1.0 - value if metric == "r2" else value


def _summary(study: Any, storage: str, metric: str, recovered: list[int]) -> TuneResult:
    optuna = _optuna()
    counts = _counts(study)
    errors = [
        f"trial {t.number}: {t.user_attrs.get('error', 'failed')}"
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    ]
    if counts["complete"] == 0:
        first = f" First error: {errors[0]}" if errors else ""
        raise RmliteError(
            f"study {study.study_name!r} has no complete trial ({counts['pruned']} pruned, "
            f"{counts['failed']} failed).{first}"
        )
    best = study.best_trial
    return TuneResult(
        study_name=study.study_name,
        storage=storage,
        metric=metric,
        best_score=_score(float(best.value), metric),
        best_value=float(best.value),
        best_params=dict(best.params),
        best_trial=best.number,
        n_complete=counts["complete"],
        n_pruned=counts["pruned"],
        n_failed=counts["failed"],
        recovered=recovered,
        errors=errors[:20],
    )


def _check_estimator(estimator: Any) -> tuple[dict[str, Any], str]:
    from rmlite.estimators.reward import RewardClassifier, RewardRegressor

    if not isinstance(estimator, RewardRegressor | RewardClassifier):
        raise ParameterError(
            f"The 'estimator' parameter must be a RewardRegressor or RewardClassifier. "
            f"Got {type(estimator).__name__} instead."
        )
    estimator.check_params()
    if estimator.n_members != 1:
        raise ParameterError(
            "The 'n_members' parameter must be 1 while tuning (tune one model, then fit an "
            f"ensemble with the best parameters). Got {estimator.n_members}."
        )
    objective = "binary" if isinstance(estimator, RewardClassifier) else "regression"
    return estimator.get_params(deep=False), objective


def tune(
    estimator: Any,
    X: Any,
    y: Any,
    *,
    groups: Any,
    n_trials: int | None = 20,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    search_space: Mapping[str, Any] | None = None,
    cv: int = 3,
    pruning: bool | Any = True,
    workers: int = 1,
    client: Any = None,
    seed: int | None = 0,
    refit: bool = True,
    verbose: bool = False,
    progress: Callable[[TuneProgress], None] | None = None,
) -> TuneResult:
    """Tune an estimator's parameters by episode-grouped cross-validation with Optuna.

    Parameters
    ----------
    estimator
        A :class:`~rmlite.RewardRegressor` or :class:`~rmlite.RewardClassifier`: its
        backend and parameters are the starting point; the search space overrides them.
    X, y, groups
        Rows, targets and episode ids (folds never split an episode).
    n_trials
        Finished trials (complete, pruned or failed) the study should hold: a resumed
        study runs only the rest.
    timeout
        Seconds for this session (each worker), or None.
    storage
        Where the study lives: None (in memory), ``sqlite:///PATH``, a ``.journal`` file
        (several processes), a SQL server URL (several hosts). See :func:`resolve_storage`.
    study_name
        Name of the study in the storage (default ``rmlite-<backend>``); an existing one
        is resumed.
    search_space
        Overrides of :data:`DEFAULT_SPACES` (see :func:`search_space`).
    cv
        Episode-grouped folds per trial.
    pruning
        ``"median"`` (or True): Optuna's median pruner on fold 0's learning curve;
        ``"hyperband"``: Hyperband on the same curve, rounds as the resource;
        ``"wilcoxon"``: a signed-rank test against the best trial, fold by fold (needs
        ``cv >= 5``); ``"none"`` (or False); or an Optuna pruner object. See
        :mod:`rmlite.tuning.objective` for what each one sees.
    workers
        Processes running trials in parallel (needs a journal or SQL storage).
    client
        A ``dask.distributed.Client``: trials run on its workers instead.
    seed
        Seeds the sampler (worker ``i`` uses ``seed + i``).
    refit
        Fit the best parameters on all rows into ``result.model``.
    verbose
        Keep Optuna's per-trial log lines.
    progress
        Called with a :class:`TuneProgress` after every trial.
    """
    base, objective_kind = _check_estimator(estimator)
    if cv < 2:
        raise ParameterError(f"The 'cv' parameter must be an int >= 2. Got {cv!r}.")
    X_arr = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
    y_arr = np.asarray(y, dtype=np.float32)
    groups_arr = np.asarray(groups)
    if not (len(X_arr) == len(y_arr) == len(groups_arr)):
        raise SchemaError(
            f"X, y and groups must have one entry per row; got {len(X_arr)}, {len(y_arr)} and "
            f"{len(groups_arr)}."
        )
    space = _search_space(base["backend"], search_space)
    objective = _Objective(
        _Data(X_arr, y_arr, groups_arr), base, objective_kind, space, cv, list(base)
    )
    resolved = resolve_storage(storage, None, workers)
    name = study_name or f"rmlite-{base['backend']}"
    started = time.perf_counter()
    study, recovered = run_study(
        objective,
        storage=resolved,
        study_name=name,
        n_trials=n_trials,
        timeout=timeout,
        pruning=pruning,
        workers=workers,
        client=client,
        seed=seed,
        verbose=verbose,
        progress=progress,
        study_attrs={
            "rows": len(X_arr),
            "features": int(X_arr.shape[1]),
            "episodes": len(np.unique(groups_arr)),
            "fixed_params": _fixed_params(base, space),
        },
    )
    metric = "r2" if objective_kind == "regression" else "log_loss"
    result = _summary(study, resolved, metric, recovered)
    if refit:
        params, _ = split_params(base, study.best_trial.params | _fixed(space), list(base))
        from sklearn.base import clone

        result.model = clone(estimator).set_params(**params).fit(X_arr, y_arr, groups=groups_arr)
    result.seconds = time.perf_counter() - started
    return result


def _fixed(space: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in space.items() if not isinstance(v, Float | Int | Choice)}


def _fixed_params(base: Mapping[str, Any], space: Mapping[str, Any]) -> dict[str, Any]:
    """The estimator's parameters that the search leaves alone."""
    searched = {k for k, v in space.items() if isinstance(v, Float | Int | Choice)}
    return {
        k: v for k, v in {**base, **_fixed(space)}.items() if k not in searched and v is not None
    }


def tune_dataset(
    store: LogStore,
    dataset: str,
    spec: FeatureSpec | None = None,
    params: dict[str, Any] | None = None,
    *,
    n_trials: int | None = 20,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    search_space: Mapping[str, Any] | None = None,
    search_spec: bool = False,
    cv: int = 3,
    pruning: bool | Any = True,
    workers: int = 1,
    client: Any = None,
    holdout: float = 0.2,
    seed: int = 0,
    out: PathLike | None = None,
    verbose: bool = False,
    progress: Callable[[TuneProgress], None] | None = None,
) -> TuneResult:
    """Tune a reward model on a dataset; refit, score on the hold-out, save and record it.

    The hold-out episodes (the same split as :func:`rmlite.pipeline.train` with this
    ``seed``) never reach a trial. The study lives beside the store unless ``storage``
    says otherwise (see :func:`resolve_storage`), named ``<dataset>-<target>-<backend>``
    by default. ``search_spec=True`` adds :data:`SPEC_SPACE` (``gamma`` for a return
    target, ``next_obs``) to the search. Other arguments are those of :func:`tune`.
    """
    from rmlite.data import schema as S
    from rmlite.data.features import FeatureSpec
    from rmlite.pipeline import make_estimator, quality_warnings, score, split_episodes

    spec = spec or FeatureSpec()
    spec.validate()
    params = {"random_state": seed, **(params or {})}
    estimator = make_estimator(spec.target, params)
    base, objective_kind = _check_estimator(estimator)
    if cv < 2:
        raise ParameterError(f"The 'cv' parameter must be an int >= 2. Got {cv!r}.")
    overrides = dict(search_space or {})
    if search_spec:
        spec_space = dict(SPEC_SPACE)
        if spec.target != "return":
            spec_space.pop("gamma")
        overrides = {**spec_space, **overrides}
    space = _search_space(base["backend"], overrides)

    episodes = store.episodes(dataset, keys=True)[S.EPISODE].to_numpy()
    train_eps, hold_eps = split_episodes(episodes, holdout, seed)
    data = _Data(
        store_path=store.path, dataset=dataset, spec=spec.to_dict(), train_episodes=train_eps
    )
    objective = _Objective(data, base, objective_kind, space, cv, list(base))
    objective.rows({})  # bad data fails here, before any trial
    resolved = resolve_storage(storage, store.path, workers)
    name = study_name or f"{dataset}-{spec.target}-{base['backend']}"
    started = time.perf_counter()
    study, recovered = run_study(
        objective,
        storage=resolved,
        study_name=name,
        n_trials=n_trials,
        timeout=timeout,
        pruning=pruning,
        workers=workers,
        client=client,
        seed=seed,
        verbose=verbose,
        progress=progress,
        study_attrs={
            "dataset": dataset,
            "store": store.path,
            "feature_spec": spec.to_dict(),
            "searched_spec": sorted(k for k in SPEC_SPACE if k in space),
            "fixed_params": _fixed_params(base, space),
            "holdout": holdout,
            "seed": seed,
            "train_episodes": len(train_eps),
        },
    )
    metric = "r2" if objective_kind == "regression" else "log_loss"
    result = _summary(study, resolved, metric, recovered)

    # Refit the best trial on every training episode; score on the hold-out.
    best_params, spec_overrides = split_params(
        base, study.best_trial.params | _fixed(space), list(base)
    )
    best_spec = FeatureSpec.from_dict({**spec.to_dict(), **spec_overrides})
    frame = store.features(dataset, best_spec, train_episodes=train_eps)
    in_train = np.isin(frame.groups, train_eps)
    model = make_estimator(best_spec.target, best_params)
    model.fit(frame.X[in_train], frame.y[in_train], groups=frame.groups[in_train])
    metrics = {
        "holdout": score(model, frame, ~in_train),
        "train": score(model, frame, in_train),
        "cv": {"metric": metric, "value": result.best_score, "folds": cv},
        "study": {"name": name, "storage": resolved, "trial": result.best_trial},
    }
    result.warnings = quality_warnings(
        metrics["holdout"],
        best_spec.target,
        train_episodes=len(train_eps),
        train_rows=int(in_train.sum()),
        n_features=len(frame.feature_names),
        holdout_episodes=len(hold_eps),
    )
    model.feature_spec_ = best_spec.to_dict()
    model.feature_stats_ = frame.stats.to_dict()
    model.data_fingerprint_ = store.fingerprint(dataset)
    model.metrics_ = metrics
    model.dataset_ = dataset
    model_path = str(model.save(out)) if out is not None else None
    result.seconds = time.perf_counter() - started
    result.run_id = store.record_run(
        {
            "kind": "tune",
            "dataset": dataset,
            "target": best_spec.target,
            "backend": model.backend,
            "device": model.device_,
            "params": model.get_params(),
            "feature_spec": best_spec.to_dict(),
            "metrics": metrics,
            "data_fingerprint": model.data_fingerprint_,
            "model_path": model_path,
            "trial_number": result.best_trial,
            "duration_s": result.seconds,
        }
    )
    result.model, result.model_path = model, model_path
    result.metrics = {"holdout": metrics["holdout"], "train": metrics["train"]}
    return result
