"""The rmlite model folder: ``model.json`` plus one native file per ensemble member, written and checked here.

``model.json`` holds a manifest (``files``: each member file's size and SHA-256). Saving is
atomic (see :func:`write_model_folder`); loading checks every name and byte against the
manifest before an engine parses anything (:func:`read_member_files`), so a truncated,
flipped or swapped file is a :class:`~rmlite.exceptions.ModelFileError`, never a crash
inside LightGBM or a model that silently mixes two saves.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from rmlite._typing import PathLike
from rmlite.exceptions import ModelFileError

MODEL_FORMAT = "rmlite-model"
MODEL_FORMAT_VERSION = 2
"""2 adds the manifest (``files``: size and SHA-256 of every member file); 1 has none."""
READABLE_VERSIONS = (1, 2)

META_FILE = "model.json"
MAX_META_BYTES = 64 * 2**20
"""A ``model.json`` larger than this is refused before it is parsed."""

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")
_MEMBER_NAME = re.compile(r"member_[0-9]+(\.[0-9a-f]{16})?\.(txt|ubj|pt)")
_ESTIMATORS = ("RewardRegressor", "RewardClassifier", "PreferenceRewardModel")


def write_model_folder(model: Any, path: PathLike, extra: dict[str, Any]) -> Path:
    """Write any fitted rmlite model: one native file per ensemble member, plus model.json.

    ``model`` has ``backend``, ``members_``, ``device_``, ``curves_``, ``fit_seconds_``,
    ``n_features_in_`` and scikit-learn's ``get_params``; ``extra`` adds the keys of its
    own class. Every model class saves through here, so :func:`rmlite.load_model` reads them all.

    The save is atomic: everything is written (and synced) into a temporary folder beside
    ``path`` first. A new ``path`` is that folder renamed into place. An existing folder
    keeps its other files (``reference.parquet``, reports, studies): the member files move
    in under new names (they carry their content's hash), then ``model.json`` replaces the
    old one in one rename, the commit, and only then the old model's members are deleted.
    A crash at any moment leaves the old model or the new one, whole.
    """
    check_is_fitted(model, "members_")
    given = Path(path)
    if given.exists() and not given.is_dir():
        raise ModelFileError(f"{given}: exists and is not a folder; pick another path.")
    folder = given.resolve() if given.is_symlink() else given  # models/latest -> models/v3
    parent = folder.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    # os.mkdir, not tempfile.mkdtemp: the folder becomes the model's, with the usual
    # permissions (umask), not mkdtemp's owner-only ones.
    stage = parent / f".{folder.name}.saving-{secrets.token_hex(6)}"
    stage.mkdir()
    try:
        members, files = _write_members(model, stage)
        meta: dict[str, Any] = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "estimator": type(model).__name__,
            "params": _jsonable(model.get_params()),
            "n_features_in": int(model.n_features_in_),
            "feature_names": [str(c) for c in getattr(model, "feature_names_in_", [])] or None,
            "device_used": model.device_,
            "members": members,
            "files": files,
            "curves": model.curves_,
            "fit_seconds": model.fit_seconds_,
            "feature_spec": getattr(model, "feature_spec_", None),
            "feature_stats": getattr(model, "feature_stats_", None),
            "data_fingerprint": getattr(model, "data_fingerprint_", None),
            "metrics": getattr(model, "metrics_", None),
            "dataset": getattr(model, "dataset_", None),
            "train_episodes": getattr(model, "train_episodes_", None),
            **extra,
            "versions": _versions(model.backend),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        text = json.dumps(meta, indent=2, default=_json_default)
        _write_synced(stage / META_FILE, text.encode("utf-8"))
        _sync_dir(stage)
        _commit(stage, folder, list(files))
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return given


def _write_members(model: Any, stage: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each member's native file in ``stage``, renamed ``member_<i>.<hash>.<ext>``."""
    members: list[dict[str, Any]] = []
    files: dict[str, Any] = {}
    for i, member in enumerate(model.members_):
        name = f"member_{i}"
        record: dict[str, Any]
        if model.backend == "mlp":
            from rmlite.models.mlp import mlp_to_files

            info = mlp_to_files(member, stage, name)
            record = {"name": name, "mlp": info}
            written = info["file"]
        else:
            from rmlite.models.gbm import best_iteration, save_booster

            written = save_booster(model.backend, member, stage, name)
            record = {
                "name": name,
                "file": written,
                "best_iteration": best_iteration(model.backend, member),
            }
        data = (stage / written).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        # The content's hash in the name: a save into an existing folder never overwrites
        # a member file the old model.json still points at.
        final = f"{name}.{digest[:16]}{Path(written).suffix}"
        os.replace(stage / written, stage / final)
        _fsync_file(stage / final)
        if model.backend == "mlp":
            record["mlp"]["file"] = final
        else:
            record["file"] = final
        members.append(record)
        files[final] = {"size": len(data), "sha256": digest}
    return members, files


def _commit(stage: Path, folder: Path, files: list[str]) -> None:
    """Make the staged model the one at ``folder`` (see :func:`write_model_folder`)."""
    parent = folder.absolute().parent
    try:
        os.rename(stage, folder)  # a new folder (or an empty one): one atomic rename
        _sync_dir(parent)
        return
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
    old = _old_member_files(folder)
    for name in files:
        os.replace(stage / name, folder / name)
    _sync_dir(folder)
    os.replace(stage / META_FILE, folder / META_FILE)  # the commit
    _sync_dir(folder)
    for name in old - set(files):
        with contextlib.suppress(OSError):
            (folder / name).unlink()


def _old_member_files(folder: Path) -> set[str]:
    """Member files the folder's current model.json names (none if it has no readable one)."""
    try:
        meta = json.loads((folder / META_FILE).read_bytes())
        names = {_member_file(m) for m in meta["members"]}
    except Exception:  # no model there, or a damaged one: leave its files alone
        return set()
    # Only names rmlite gives members: a damaged model.json must not delete other files.
    return {n for n in names if isinstance(n, str) and _MEMBER_NAME.fullmatch(n)}


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem syncs folders
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------ reading


def read_model_meta(folder: Path) -> dict[str, Any]:
    """The checked ``model.json`` of a model folder; errors name the folder and what is wrong.

    Raises :class:`~rmlite.exceptions.ModelFileError` for anything but the model.json of
    a model this rmlite can read: missing, too large, not JSON, nested too deeply, of an
    unknown format, or with a field of the wrong type.
    """
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not folder.is_dir():
        raise ModelFileError(f"{folder}: no such model folder.")
    if not meta_path.is_file():
        raise ModelFileError(f"{folder}: not an rmlite model folder (no {META_FILE}).")
    if meta_path.stat().st_size > MAX_META_BYTES:
        raise ModelFileError(
            f"{meta_path}: {meta_path.stat().st_size} bytes, more than any rmlite model.json "
            f"({MAX_META_BYTES}); not a model file."
        )
    try:
        meta = json.loads(meta_path.read_bytes())
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, deep nesting
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ModelFileError(
            f"{meta_path}: unreadable model metadata ({reason}). The folder is damaged: "
            f"save or train the model again."
        ) from exc
    if not isinstance(meta, dict):
        raise ModelFileError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}.")
    if meta.get("format") != MODEL_FORMAT or meta.get("format_version") not in READABLE_VERSIONS:
        raise ModelFileError(
            f"{meta_path}: format {_short(meta.get('format'))} version "
            f"{_short(meta.get('format_version'))}; this rmlite reads {MODEL_FORMAT!r} "
            f"versions {', '.join(map(str, READABLE_VERSIONS))}."
        )
    _check_meta(meta, meta_path)
    return meta


def read_member_files(folder: Path, meta: dict[str, Any]) -> dict[str, bytes]:
    """The bytes of every member file ``meta`` names, checked before any engine sees them.

    Names must be plain file names inside the folder (no ``/``, ``..``, absolute paths or
    links leading out). With a manifest (format 2) each file must have the recorded size
    and SHA-256; the bytes returned are the bytes checked, so the engines parse exactly
    those. Format 1 folders (no manifest) get the checks possible without one.
    """
    folder = Path(folder)
    meta_path = folder / META_FILE
    names = [_member_file(m) for m in meta["members"]]
    manifest = meta.get("files")
    root = folder.resolve()
    out: dict[str, bytes] = {}
    for name in names:
        path = folder / name
        if path.is_symlink() and root not in path.resolve().parents:
            raise ModelFileError(
                f"{meta_path}: member file {name!r} is a link that leads out of the folder; "
                f"refused."
            )
        if not path.is_file():
            raise ModelFileError(
                f"{folder}: member file {name!r} is missing. The folder is incomplete: "
                f"save or train the model again."
            )
        data = path.read_bytes()
        if manifest is not None:
            entry = manifest[name]
            if len(data) != entry["size"]:
                raise ModelFileError(
                    f"{path}: {len(data)} bytes, but the manifest in {META_FILE} records "
                    f"{entry['size']}: the file is truncated or damaged. Save or train the "
                    f"model again."
                )
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise ModelFileError(
                    f"{path}: its SHA-256 differs from the manifest in {META_FILE}: the file "
                    f"is damaged or was changed. Save or train the model again."
                )
        elif name.endswith(".txt") and b"end of trees" not in data:
            # Format 1 has no manifest; a cut LightGBM text file crashes LightGBM itself.
            raise ModelFileError(
                f"{path}: not a complete LightGBM model (no 'end of trees'): truncated or "
                f"damaged. Retrain the model (this folder predates rmlite's manifest)."
            )
        out[name] = data
    return out


_RECORDS = (
    "feature_spec",
    "feature_stats",
    "data_fingerprint",
    "metrics",
    "dataset",
    "train_episodes",
)
"""What a model folder records about the data and spec it was trained on (``<key>_``)."""


def restore_fitted(model: Any, folder: Path, meta: dict[str, Any], blobs: dict[str, bytes]) -> None:
    """Set the fitted state every model folder holds: width and feature names, the device,
    the members (from the checked bytes ``blobs``), learning curves and the training records."""
    from rmlite.models.device import resolve_device

    model.n_features_in_ = int(meta["n_features_in"])
    if meta.get("feature_names"):
        model.feature_names_in_ = np.asarray(meta["feature_names"], dtype=object)
    model.device_ = meta.get("device_used", "cpu")
    if model.device_ == "cuda":
        model.device_ = resolve_device("auto")
    model.members_ = load_members(model.backend, folder, meta, blobs)
    model.curves_ = meta.get("curves", [])
    model.fit_seconds_ = meta.get("fit_seconds", 0.0)
    for key in _RECORDS:
        if meta.get(key) is not None:
            setattr(model, f"{key}_", meta[key])


def load_members(
    backend: str, folder: Path, meta: dict[str, Any], blobs: dict[str, bytes]
) -> list[Any]:
    """The fitted members, parsed by their engine from the checked bytes ``blobs``."""
    members: list[Any] = []
    for member in meta["members"]:
        data = blobs[_member_file(member)]
        if backend == "mlp":
            from rmlite.models.mlp import mlp_from_files

            members.append(mlp_from_files(folder, member["name"], member["mlp"], data=data))
        else:
            from rmlite.models.gbm import load_booster

            members.append(
                load_booster(
                    backend,  # type: ignore[arg-type]
                    folder,
                    member["file"],
                    member.get("best_iteration"),
                    data=data,
                )
            )
    return members


def _member_file(member: Any) -> str:
    """The file name a member record points at (format 1 MLPs: ``<name>.pt``)."""
    if "mlp" in member:
        return str(member["mlp"].get("file", f"{member['name']}.pt"))
    return str(member["file"])


# ----------------------------------------------------------- checking model.json


def _check_meta(meta: dict[str, Any], where: Path) -> None:
    """Every field the loaders read has the type they expect; else ModelFileError."""

    def need(ok: bool, field: str, expected: str, got: Any) -> None:
        if not ok:
            raise ModelFileError(
                f"{where}: field {field!r} must be {expected}; got {_short(got)}. The file "
                f"is damaged or was edited: save or train the model again."
            )

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    def integer(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def numbers(v: Any) -> bool:
        return isinstance(v, list) and all(number(x) for x in v)

    need(
        meta.get("estimator") in _ESTIMATORS,
        "estimator",
        f"one of {_ESTIMATORS}",
        meta.get("estimator"),
    )
    params: Any = meta.get("params")
    need(isinstance(params, dict), "params", "an object", params)
    backend = params.get("backend")
    need(
        backend in ("lightgbm", "xgboost", "mlp"),
        "params.backend",
        "lightgbm, xgboost or mlp",
        backend,
    )
    n_features: Any = meta.get("n_features_in")
    need(integer(n_features) and n_features >= 1, "n_features_in", "an int >= 1", n_features)
    names = meta.get("feature_names")
    need(
        names is None
        or (
            isinstance(names, list)
            and len(names) == n_features
            and all(isinstance(n, str) for n in names)
        ),
        "feature_names",
        f"null or a list of {n_features} strings",
        names,
    )
    need(
        isinstance(meta.get("device_used", "cpu"), str),
        "device_used",
        "a string",
        meta.get("device_used"),
    )
    members: Any = meta.get("members")
    need(isinstance(members, list) and len(members) >= 1, "members", "a non-empty list", members)
    for i, m in enumerate(members):
        at = f"members[{i}]"
        need(
            isinstance(m, dict) and isinstance(m.get("name"), str), at, "an object with a 'name'", m
        )
        if backend == "mlp":
            mlp = m.get("mlp")
            need(isinstance(mlp, dict), f"{at}.mlp", "an object (an MLP member)", mlp)
            need(
                isinstance(mlp.get("config"), dict),
                f"{at}.mlp.config",
                "an object",
                mlp.get("config"),
            )
            need(
                integer(mlp.get("n_features")) and mlp["n_features"] == n_features,
                f"{at}.mlp.n_features",
                f"{n_features}",
                mlp.get("n_features"),
            )
            for key in ("x_mean", "x_std"):
                need(
                    numbers(mlp.get(key)) and len(mlp[key]) == n_features,
                    f"{at}.mlp.{key}",
                    f"a list of {n_features} numbers",
                    mlp.get(key),
                )
            for key in ("y_mean", "y_std"):
                need(number(mlp.get(key)), f"{at}.mlp.{key}", "a number", mlp.get(key))
            history = mlp.get("history")
            need(
                isinstance(history, dict) and all(numbers(v) for v in history.values()),
                f"{at}.mlp.history",
                "an object of number lists",
                history,
            )
            need(
                integer(mlp.get("best_epoch")),
                f"{at}.mlp.best_epoch",
                "an int",
                mlp.get("best_epoch"),
            )
            if meta["format_version"] >= 2:
                need(
                    isinstance(mlp.get("file"), str),
                    f"{at}.mlp.file",
                    "a file name",
                    mlp.get("file"),
                )
        else:
            need(isinstance(m.get("file"), str), f"{at}.file", "a file name", m.get("file"))
            best = m.get("best_iteration")
            need(
                best is None or (integer(best) and best >= 0),
                f"{at}.best_iteration",
                "null or an int >= 0",
                best,
            )
        file = _member_file(m)
        need(
            bool(_PLAIN_NAME.fullmatch(file)) and file != META_FILE,
            f"{at} file",
            "a plain file name inside the folder (letters, digits, '_', '.', '-'; no '/' or "
            "'..'; not model.json)",
            file,
        )
    if meta["format_version"] >= 2:
        files: Any = meta.get("files")
        need(isinstance(files, dict), "files", "an object (the manifest)", files)
        for i, m in enumerate(members):
            entry = files.get(_member_file(m))
            need(
                isinstance(entry, dict)
                and integer(entry.get("size"))
                and entry["size"] >= 0
                and isinstance(entry.get("sha256"), str)
                and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) is not None,
                f"files[{_member_file(m)!r}]",
                f"the manifest entry of members[{i}]: {{size, sha256}}",
                entry,
            )
    curves = meta.get("curves", [])
    need(
        isinstance(curves, list)
        and all(
            isinstance(c, dict) and all(v is None or numbers(v) for v in c.values()) for c in curves
        ),
        "curves",
        "a list of objects of number lists",
        curves,
    )
    need(number(meta.get("fit_seconds", 0.0)), "fit_seconds", "a number", meta.get("fit_seconds"))
    classes = meta.get("classes")
    need(
        classes is None
        or (
            isinstance(classes, list)
            and all(isinstance(c, str | int | float | bool) for c in classes)
        ),
        "classes",
        "null or a list of labels",
        classes,
    )
    odds = meta.get("odds_factor")
    need(odds is None or number(odds), "odds_factor", "null or a number", odds)
    for key in ("feature_spec", "feature_stats", "metrics"):
        need(
            meta.get(key) is None or isinstance(meta[key], dict),
            key,
            "null or an object",
            meta.get(key),
        )
    for key in ("data_fingerprint", "dataset"):
        need(
            meta.get(key) is None or isinstance(meta[key], str),
            key,
            "null or a string",
            meta.get(key),
        )
    episodes = meta.get("train_episodes")
    need(
        episodes is None or (isinstance(episodes, list) and all(integer(e) for e in episodes)),
        "train_episodes",
        "null or a list of ints",
        episodes,
    )


def _short(value: Any) -> str:
    """A value for an error message: its repr, cut to 80 characters."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<{type(value).__name__} nested too deeply>"
    return text if len(text) <= 80 else text[:77] + "..."


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return _jsonable(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot save {type(value).__name__} in model.json")


def _versions(backend: str) -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for package in (
        "rmlite",
        "numpy",
        "scikit-learn",
        "polars",
        "duckdb",
        backend if backend != "mlp" else "torch",
    ):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            continue
    return out
