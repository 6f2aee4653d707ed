"""Where studies live: Optuna storages, lazy optuna import, dead-trial recovery, history."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from rmlite.exceptions import ParameterError

if TYPE_CHECKING:
    import optuna


def resolve_storage(storage: str | None, store_path: str | None, workers: int = 1) -> str:
    """Where a study lives, as ``sqlite:///PATH``, ``journal:PATH``, a SQL URL or ``:memory:``.

    Without ``storage``: beside the store, ``<store>.optuna.db`` (SQLite) for one worker
    and ``<store>.optuna.journal`` (Optuna's journal file, safe for parallel processes)
    for several, or when that journal already exists. A path ending in ``.journal`` or
    ``.log`` is a journal file; any other path a SQLite file.

    Examples
    --------
    >>> resolve_storage(None, "/data/project.duckdb")
    'sqlite:////data/project.duckdb.optuna.db'
    >>> resolve_storage(None, "/data/project.duckdb", workers=4)
    'journal:/data/project.duckdb.optuna.journal'
    """
    if storage is None:
        if store_path is None or store_path == ":memory:":
            return ":memory:"
        journal = os.path.abspath(store_path) + ".optuna.journal"
        if workers > 1 or os.path.exists(journal):
            return f"journal:{journal}"
        return f"sqlite:///{os.path.abspath(store_path)}.optuna.db"
    if storage == ":memory:" or "://" in storage or storage.startswith("journal:"):
        resolved = storage
    elif storage.endswith((".journal", ".log")):
        resolved = f"journal:{os.path.abspath(storage)}"
    else:
        resolved = f"sqlite:///{os.path.abspath(storage)}"
    if workers > 1 and (resolved == ":memory:" or resolved.startswith("sqlite:")):
        raise ParameterError(
            f"The 'storage' parameter {storage!r} cannot be shared by {workers} worker "
            f"processes: SQLite locks under parallel writers and memory is per process. Use a "
            f"journal file (--storage study.journal) or a SQL server URL."
        )
    return resolved


def open_storage(storage: str) -> Any:
    """The Optuna storage object of a :func:`resolve_storage` string."""
    optuna = _optuna()
    if storage == ":memory:":
        return optuna.storages.InMemoryStorage()
    if storage.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(storage[len("journal:") :]))
    return optuna.storages.RDBStorage(storage)


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - optuna is a core dependency
        raise ImportError(
            "tuning needs optuna: pip install 'rmlite' (or pip install optuna)."
        ) from exc
    return optuna


def recover_dead_trials(
    study: optuna.Study, stale_after: float = 600.0, *, storage: Any = None
) -> list[int]:
    """Mark trials left RUNNING by dead processes as FAILED; return their numbers.

    A trial records its worker (host, process id, heartbeat time) in its ``worker``
    attribute. It is dead when its process no longer exists on this host, or when its
    heartbeat is older than ``stale_after`` seconds (a process on another machine).
    Given the study's ``storage`` object, the reason is written in the trial's ``error``
    attribute too. Only public Optuna API is used: ``Study.tell`` by trial number, and
    the storage's documented ``BaseStorage`` methods.
    """
    optuna = _optuna()
    running = optuna.trial.TrialState.RUNNING
    host, now, dead = socket.gethostname(), time.time(), []
    for trial in study.get_trials(deepcopy=False, states=(running,)):
        # Studies written before the `worker` attribute kept host/pid/heartbeat apart.
        worker = trial.user_attrs.get("worker") or trial.user_attrs
        pid = worker.get("pid")
        if worker.get("host") == host and pid == os.getpid():
            continue
        gone = worker.get("host") == host and pid is not None and not _alive(int(pid))
        stale = now - float(worker.get("heartbeat", now)) > stale_after
        if gone or stale:
            why = f"process {pid} on {worker.get('host')} died" if gone else "no heartbeat"
            if storage is not None:
                with contextlib.suppress(RuntimeError):  # it finished meanwhile
                    study_id = storage.get_study_id_from_name(study.study_name)
                    trial_id = storage.get_trial_id_from_study_id_trial_number(
                        study_id, trial.number
                    )
                    storage.set_trial_user_attr(
                        trial_id, "error", f"{why}; marked failed when the study resumed"
                    )
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            dead.append(trial.number)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (killed, not yet reaped) still answers kill(pid, 0).
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[-1][:1] != "Z"
    return True


def study_files(store_path: str) -> list[str]:
    """The study storages kept beside a store that exist: SQLite file, then journal."""
    base = os.path.abspath(store_path)
    return [p for p in (base + ".optuna.db", base + ".optuna.journal") if os.path.exists(p)]


def trial_history(store_path: str) -> list[dict[str, Any]]:
    """Every trial of every study kept beside a store, in trial order per study.

    Reads ``<store>.optuna.db`` (SQLite) and ``<store>.optuna.journal`` where they exist;
    a store without studies gives an empty list. Each trial is a dict: ``storage``,
    ``study``, ``number``, ``state`` (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``,
    ``WAITING``), ``value`` (the minimized objective: ``1 - R²`` or the log loss; None
    unless complete), ``cv_r2`` (the mean fold R² of regression trials, else None),
    ``params``, ``error`` (why a trial failed), ``started_at`` and ``finished_at`` (ISO
    text or None) and ``duration_s``.

    Examples
    --------
    >>> trial_history("/nonexistent/project.duckdb")
    []
    """
    files = study_files(store_path)
    if not files:
        return []
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: list[dict[str, Any]] = []
    for path in files:
        storage = f"sqlite:///{path}" if path.endswith(".db") else f"journal:{path}"
        storage_obj = open_storage(storage)
        for name in optuna.study.get_all_study_names(storage=storage_obj):
            study = optuna.load_study(study_name=name, storage=storage_obj)
            for t in study.get_trials(deepcopy=False):
                value = t.value if t.state == optuna.trial.TrialState.COMPLETE else None
                out.append(
                    {
                        "storage": storage,
                        "study": name,
                        "number": t.number,
                        "state": t.state.name,
                        "value": value,
                        "cv_r2": t.user_attrs.get("cv_r2") if value is not None else None,
                        "params": dict(t.params),
                        "error": t.user_attrs.get("error"),
                        "started_at": t.datetime_start.isoformat() if t.datetime_start else None,
                        "finished_at": (
                            t.datetime_complete.isoformat() if t.datetime_complete else None
                        ),
                        "duration_s": t.duration.total_seconds() if t.duration else None,
                    }
                )
    return out
