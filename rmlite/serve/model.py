"""The served model, and the watcher that swaps in a new one when its folder changes."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmlite._typing import PathLike
from rmlite.exceptions import RmliteError
from rmlite.rl.relabeling import RewardFunction


@dataclass(frozen=True)
class ServedModel:
    """One loaded model: the reward function and what ``/info`` says about it.

    Requests take the current one at their start and use it to the end, so a reload never
    changes the model under a request that is being answered.
    """

    fn: RewardFunction
    fingerprint: str
    signature: tuple[int, int]
    """``model.json``'s (mtime_ns, size) when it was read."""
    loaded_at: float
    uses_next_obs: bool
    uses_step: bool
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def obs_dim(self) -> int:
        return int(self.fn.stats.obs_dim)

    @property
    def action_dim(self) -> int:
        return int(self.fn.stats.action_dim)


def _signature(meta: Path) -> tuple[int, int]:
    st = meta.stat()
    return (st.st_mtime_ns, st.st_size)


def load_served(folder: PathLike) -> ServedModel:
    """Load a model folder for serving; per-step models only (no lags, no return-to-go)."""
    path = Path(folder)
    meta = path / "model.json"
    if not meta.is_file():
        raise RmliteError(
            f"{path}: not an rmlite model folder (no model.json). Pass the folder that "
            f"rmlite train --out wrote."
        )
    signature = _signature(meta)
    fn = RewardFunction(path)
    fn.check_per_step()
    spec = fn.spec
    uses_next_obs = bool(spec.next_obs or spec.delta)
    uses_step = bool(spec.step or spec.time_limit is not None)
    fingerprint = fn.fingerprint
    model = fn.model
    fields = {
        "obs": ["n", int(fn.stats.obs_dim)],
        "action": ["n", int(fn.stats.action_dim)],
    }
    if uses_next_obs:
        fields["next_obs"] = ["n", int(fn.stats.obs_dim)]
    if uses_step:
        fields["step"] = ["n"]
    info = {
        "model": fingerprint,
        "path": os.fspath(path.resolve()),
        "estimator": type(model).__name__,
        "backend": getattr(model, "backend", None),
        "n_members": int(getattr(model, "n_members", 1)),
        "target": spec.target,
        "obs_dim": int(fn.stats.obs_dim),
        "action_dim": int(fn.stats.action_dim),
        "n_features": len(fn.stats.feature_names),
        "feature_names": list(fn.stats.feature_names),
        "feature_spec": spec.to_dict(),
        "fields": fields,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(signature[0] / 1e9)),
    }
    return ServedModel(
        fn=fn,
        fingerprint=fingerprint,
        signature=signature,
        loaded_at=time.time(),
        uses_next_obs=uses_next_obs,
        uses_step=uses_step,
        info=info,
    )


class ModelWatcher:
    """The current model of a folder, reloaded in a background thread when it changes.

    A training run writes the members first and ``model.json`` last, so the watcher
    polls ``model.json``'s modification time and size every ``every`` seconds. A changed
    file is loaded into a new :class:`ServedModel` beside the old one, which keeps
    answering; the swap is one reference assignment. A folder caught half-written (or
    broken) leaves the old model in place, records the error, and is tried again when
    ``model.json`` changes again.
    """

    def __init__(self, folder: PathLike, every: float = 1.0) -> None:
        self.folder = Path(folder)
        self.every = float(every)
        self.current = load_served(self.folder)
        self.reloads = 0
        self.last_error: str | None = None
        self._failed: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Reload if ``model.json`` changed; True when a new model was swapped in."""
        meta = self.folder / "model.json"
        try:
            signature = _signature(meta)
        except OSError as exc:  # the folder is being replaced: keep serving the old model
            self.last_error = f"{meta}: {exc.strerror}"
            return False
        if signature in (self.current.signature, self._failed):
            return False
        try:
            served = load_served(self.folder)
        except Exception as exc:  # a half-written or broken folder must not stop the server
            self._failed = signature
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False
        self.current = served  # atomic: requests in flight keep the old object
        self.reloads += 1
        self._failed, self.last_error = None, None
        return True

    def start(self) -> None:
        """Poll in a daemon thread until :meth:`stop`."""
        if self._thread is not None or self.every <= 0:
            return

        def run() -> None:
            while not self._stop.wait(self.every):
                self.check()

        self._thread = threading.Thread(target=run, name="rmlite-serve-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
