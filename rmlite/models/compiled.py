"""Compiled tree ensembles: LightGBM and XGBoost boosters as native code.

Treelite reads the booster, TL2cgen writes its trees as C, and the system's C compiler
(``gcc``, or ``$CC``) builds a shared library with one extra function of ours:
``rmlite_predict_batch``, which walks a whole float32 batch in one call. A tree walk
then costs what it costs; ``Booster.predict`` adds a per-call setup (tens of µs) and
LightGBM's generic node loop on top. Results match the booster within float32 rounding
(LightGBM: bit for bit; XGBoost: its own float32 sums).

Libraries are cached by content: the key is the SHA-256 of the booster's exact trees
(the ones it predicts with, early stopping's best included), the compiler versions and
this module's driver version. Callers choose the folder: ``<model>/.compiled/`` beside a
saved model (not one of the model's own files), else :func:`user_cache_dir`
(``$RMLITE_CACHE``, else ``$XDG_CACHE_HOME/rmlite``, else ``~/.cache/rmlite``).

The compiler is optional (``pip install 'rmlite[fast]'``: treelite, tl2cgen); without it,
or with ``RMLITE_COMPILED=0``, :func:`compile_members` returns None after one logged
warning and callers keep the booster.

Examples
--------
>>> import lightgbm as lgb, tempfile
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(500, 3)).astype(np.float32)
>>> booster = lgb.train({"verbose": -1}, lgb.Dataset(X, X[:, 0]), 20)
>>> fast = compile_booster("lightgbm", booster, 3, tempfile.mkdtemp())  # doctest: +SKIP
>>> bool(np.array_equal(fast(X), booster.predict(X)))  # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rmlite._typing import Float32Array, PathLike

logger = logging.getLogger("rmlite")

DRIVER_VERSION = 1
"""Bumped whenever the generated driver or the compile flags change (a new cache key)."""

COMPILE_MIN_ROWS = 200_000
"""Batch jobs (``relabel``, ``predict``) compile trees not yet cached from this many rows
on: compiling a 100-tree model takes about 5 s, which 200k rows repay (README "Fast
inference"); smaller jobs use a cached library when there is one."""

MAX_ROWS = {"lightgbm": float("inf"), "xgboost": 512}
"""Largest batch each engine's compiled trees take; larger ones go to the booster.
XGBoost's own predictor walks blocks of rows through a tree at a time and wins on big
batches of deep trees (measured, depth 6: compiled 37x faster at 1 row, 18x at 16, 0.5x
at 4,096); LightGBM's compiled trees won at every size measured."""

_PARALLEL_ROWS = 16_384  # below this a batch stays on one thread: handing it out costs more
_warned = False
_lock = threading.Lock()

# One call per batch: row i of X (float32, row-major) through the trees into out[i]. A
# float32 widened to double has its low 29 mantissa bits zero, so a value's low 32 bits
# never read as the -1 that marks a missing entry in TL2cgen's Entry union.
_DRIVER = """\
#include <math.h>
#include <stdint.h>
#include "header.h"

void rmlite_predict_batch(const float* X, int64_t n_rows, int32_t n_features,
                          int32_t pred_margin, double* out) {
  union Entry row[n_features];
  for (int64_t i = 0; i < n_rows; ++i) {
    const float* x = X + i * (int64_t)n_features;
    for (int32_t j = 0; j < n_features; ++j) {
      if (isnan(x[j])) { row[j].missing = -1; } else { row[j].fvalue = x[j]; }
    }
    LEAF_T result[N_TARGET * MAX_N_CLASS];
    for (int k = 0; k < N_TARGET * MAX_N_CLASS; ++k) { result[k] = 0; }
    predict(row, pred_margin, result);
    out[i] = (double)result[0];
  }
}
"""


def batch_plan(backend: str, rows: int) -> str:
    """What a one-off batch job of ``rows`` rows should do about compiled trees.

    ``"compile"`` (worth compiling now: :data:`COMPILE_MIN_ROWS`), ``"cached"`` (use a
    library if one is cached, never compile), ``"no"`` (too many rows for this engine's
    compiled trees to win, :data:`MAX_ROWS`, or not a tree engine).
    """
    if rows > MAX_ROWS.get(backend, 0):
        return "no"
    return "compile" if rows >= COMPILE_MIN_ROWS else "cached"


def compiler_available() -> bool:
    """Whether Treelite, TL2cgen and a C compiler are installed (and not switched off)."""
    if os.environ.get("RMLITE_COMPILED", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    have = all(importlib.util.find_spec(m) is not None for m in ("treelite", "tl2cgen"))
    return have and _c_compiler() is not None


def why_not_compiled() -> str:
    """One sentence on why compiled trees are off here ('' when they are on)."""
    if os.environ.get("RMLITE_COMPILED", "1").strip().lower() in ("0", "false", "no", "off"):
        return "RMLITE_COMPILED=0 switches compiled trees off"
    missing = [m for m in ("treelite", "tl2cgen") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (pip install 'rmlite[fast]')"
    if _c_compiler() is None:
        return "no C compiler found (install gcc, or set CC)"
    return ""


def _c_compiler() -> str | None:
    cc = os.environ.get("CC") or "gcc"
    return cc if shutil.which(cc) else None


def user_cache_dir() -> Path:
    """Where compiled trees go when no model folder is given (or it is read-only)."""
    root = os.environ.get("RMLITE_CACHE")
    if root:
        return Path(root) / "compiled"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "rmlite" / "compiled"


class CompiledTrees:
    """A compiled booster: ``self(X)`` predicts a float32 batch in one native call.

    ``X`` must be a C-contiguous float32 matrix of :attr:`n_features` columns (rmlite's
    own feature matrices are); NaN is a missing value, as in the booster. Returns
    float64 predictions: probabilities for binary objectives unless built with ``raw``.
    Batches of more than 16,384 rows are split over ``n_jobs`` threads (the native call
    releases the GIL).
    """

    def __init__(
        self,
        path: PathLike,
        n_features: int,
        raw: bool = False,
        n_jobs: int | None = 1,
        max_rows: float = float("inf"),
    ) -> None:
        self.max_rows = max_rows
        """Largest batch worth predicting here (see :data:`MAX_ROWS`); callers check it."""
        self.path = Path(path)
        self.n_features = int(n_features)
        self.raw = bool(raw)
        self.n_jobs = n_jobs
        self._load()

    def _load(self) -> None:
        lib = ctypes.CDLL(str(self.path))
        fn = lib.rmlite_predict_batch
        fn.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int64,
            ctypes.c_int32,
            ctypes.c_int32,
            ctypes.c_void_p,
        ]
        fn.restype = None
        lib.get_num_feature.restype = ctypes.c_int32
        used = int(lib.get_num_feature())
        if used > self.n_features:
            raise ValueError(
                f"{self.path}: the compiled trees read {used} features; the model has "
                f"{self.n_features}. Delete the file and let rmlite compile it again."
            )
        self._lib, self._fn = lib, fn

    def __call__(self, X: Float32Array, n_jobs: int | None = None) -> np.ndarray:
        if X.dtype != np.float32 or not X.flags.c_contiguous or X.shape[1] != self.n_features:
            raise ValueError(
                f"CompiledTrees takes a C-contiguous float32 matrix of {self.n_features} "
                f"columns; got {X.dtype} of shape {X.shape}."
            )
        n = len(X)
        out = np.empty(n, dtype=np.float64)
        margin = 1 if self.raw else 0
        if n < _PARALLEL_ROWS:  # per-step batches: one call, no thread bookkeeping
            if n:
                self._fn(_address(X), n, self.n_features, margin, _address(out))
            return out
        jobs = n_jobs if n_jobs is not None else self.n_jobs
        threads = (os.cpu_count() or 1) if jobs is None or jobs < 1 else int(jobs)
        if threads == 1:
            self._fn(X.ctypes.data, n, self.n_features, margin, out.ctypes.data)
            return out
        bounds = np.linspace(0, n, threads + 1).astype(np.int64)
        stride = X.strides[0]

        def part(k: int) -> None:
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            self._fn(X.ctypes.data + lo * stride, hi - lo, self.n_features, margin,
                     out.ctypes.data + 8 * lo)  # fmt: skip

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(part, range(threads)))
        return out

    def __getstate__(self) -> dict[str, Any]:
        # A loaded library does not pickle; its file does (reloaded on unpickling).
        return {k: v for k, v in self.__dict__.items() if k not in ("_lib", "_fn")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._load()

    def __repr__(self) -> str:
        return f"CompiledTrees({str(self.path)!r}, n_features={self.n_features})"


def _address(a: np.ndarray) -> int:
    """Address of a non-empty array's first byte.

    ``a.ctypes.data`` builds a helper object on every access (about 1.5 µs, twice per
    per-step prediction); the address of a ctypes view of a writable buffer costs a third
    of that.
    """
    if a.flags.writeable:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))  # type: ignore[arg-type]  # ndarray is a buffer
    return int(a.ctypes.data)


def booster_trees(backend: str, booster: Any) -> tuple[bytes, Any]:
    """The exact trees a booster predicts with (early stopping's best): bytes to hash,
    and the object Treelite reads."""
    from rmlite.models.gbm import best_iteration

    n_trees = best_iteration(backend, booster)  # type: ignore[arg-type]
    if backend == "lightgbm":
        text = booster.model_to_string(num_iteration=-1 if n_trees is None else n_trees)
        return text.encode(), text
    if backend == "xgboost":
        trees = booster if n_trees is None else booster[:n_trees]
        raw = bytes(trees.save_raw("json"))
        return raw, raw
    raise ValueError(f"compiled trees support lightgbm and xgboost; got backend {backend!r}")


def compile_key(backend: str, content: bytes, raw: bool = False) -> str:
    """Cache key of one booster's library: its trees, the compilers, the driver, the CPU."""
    import platform

    versions = {m: _version(m) for m in ("treelite", "tl2cgen")}
    header = json.dumps(
        [backend, raw, versions, DRIVER_VERSION, platform.machine(), platform.system()]
    ).encode()
    return hashlib.sha256(header + b"\0" + content).hexdigest()[:32]


def _version(module: str) -> str:
    import importlib.metadata as md

    try:
        return md.version(module)
    except md.PackageNotFoundError:
        return "absent"


def compile_booster(
    backend: str,
    booster: Any,
    n_features: int,
    cache_dir: PathLike | None = None,
    *,
    raw: bool = False,
    only_cached: bool = False,
) -> CompiledTrees | None:
    """The booster's compiled library, from the cache or compiled now (seconds).

    Parameters
    ----------
    backend
        ``"lightgbm"`` or ``"xgboost"``.
    booster
        The native booster (``best_iteration`` respected).
    n_features
        Width of the matrices it will be given.
    cache_dir
        Folder for the library (created); None or not writable: :func:`user_cache_dir`.
    raw
        Margins instead of probabilities for binary objectives.
    only_cached
        Return None instead of compiling when the library is not cached yet.
    """
    content, source = booster_trees(backend, booster)
    key = compile_key(backend, content, raw)
    name = f"{backend}-{key}.so"
    folders = [Path(cache_dir)] if cache_dir is not None else []
    folders.append(user_cache_dir())
    for folder in folders:
        if (folder / name).is_file():
            return CompiledTrees(folder / name, n_features, raw, max_rows=MAX_ROWS[backend])
    if only_cached:
        return None
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = tempfile.mkdtemp(prefix=".build-", dir=folder)
        except OSError:
            continue  # a read-only model folder: the user cache instead
        logger.info(
            "rmlite: compiling the %s trees of one member (once; cached in %s)", backend, folder
        )
        try:
            library = _build(backend, source, Path(probe))
            # Atomic: another process compiling the same trees at once writes the same file.
            os.replace(library, folder / name)
        finally:
            shutil.rmtree(probe, ignore_errors=True)
        return CompiledTrees(folder / name, n_features, raw, max_rows=MAX_ROWS[backend])
    raise OSError(f"no writable folder for compiled trees among {[str(f) for f in folders]}")


def _build(backend: str, source: Any, workdir: Path) -> Path:
    """Generate C with TL2cgen, add the batch driver, compile; return the library path."""
    import tl2cgen
    import treelite

    with _native_stdout_to_log():
        if backend == "lightgbm":
            model_file = workdir / "model.txt"
            model_file.write_text(source)
            model = treelite.frontend.load_lightgbm_model(str(model_file))
        else:
            model = treelite.frontend.from_xgboost_json(source)
        n_trees = int(model.num_tree)
        src = workdir / "src"
        # Several translation units compile in parallel and keep gcc's memory small.
        units = max(1, min(16, n_trees // 25))
        tl2cgen.generate_c_code(model, src, params={"parallel_comp": units} if units > 1 else {})
        header = (src / "header.h").read_text()
        leaf = "double" if "double* result" in header.split("void predict(", 1)[1] else "float"
        (src / "rmlite_batch.c").write_text(f"#define LEAF_T {leaf}\n{_DRIVER}")
        recipe = json.loads((src / "recipe.json").read_text())
        recipe["sources"].append({"name": "rmlite_batch", "length": 1})
        (src / "recipe.json").write_text(json.dumps(recipe))
        cc = _c_compiler() or "gcc"
        # -O1 after TL2cgen's -O3 (the last one wins): measured on 100 trees of 31 leaves,
        # 40% less compile time for the same prediction speed (the code is branches).
        library = tl2cgen.create_shared(
            cc, src, nthread=os.cpu_count() or 1, long_build_time_warning=False, options=["-O1"]
        )
    return Path(library)


@contextlib.contextmanager
def _native_stdout_to_log() -> Iterator[None]:
    """Send what TL2cgen prints while compiling to the debug log, not the user's terminal.

    Its native log lines (and the notice that its bundled Treelite is older than the
    installed one, harmless for the models rmlite writes) go to file descriptors 1 and 2
    from C++, past Python's ``sys.stdout``.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile() as sink:
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()) as python_out,
                contextlib.redirect_stderr(python_out),
            ):
                yield
        finally:
            with contextlib.suppress(Exception):  # C's stdio buffers, written at exit otherwise
                ctypes.CDLL(None).fflush(None)
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            text = sink.read().decode(errors="replace") + python_out.getvalue()
            if text.strip():
                logger.debug("tl2cgen: %s", text.strip())


def compile_members(
    backend: str,
    members: list[Any],
    n_features: int,
    cache_dir: PathLike | None = None,
    *,
    only_cached: bool = False,
) -> list[CompiledTrees] | None:
    """Compiled libraries of an ensemble's boosters, or None (booster fallback).

    None when the compiler is not installed, is switched off, or fails (each logged
    once as a warning: predictions then come from the boosters, as before), and, with
    ``only_cached``, when a member is not compiled yet.
    """
    global _warned
    if backend not in ("lightgbm", "xgboost"):
        return None
    reason = why_not_compiled()
    if not reason:
        try:
            out = []
            for member in members:
                compiled = compile_booster(
                    backend, member, n_features, cache_dir, only_cached=only_cached
                )
                if compiled is None:
                    return None
                out.append(compiled)
            return out
        except Exception as exc:  # a compiler error must never stop predictions
            reason = f"compiling failed ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    with _lock:
        if not _warned:
            _warned = True
            logger.warning(
                "rmlite: compiled tree inference is off, predictions use the booster: %s.",
                reason,
            )
    return None
