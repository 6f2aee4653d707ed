"""Which device a model trains on: ``"cpu"``, ``"cuda"`` or ``"auto"``.

GPU presence is read from the CUDA driver itself (``libcuda``), not from torch: the CPU
build of torch reports no GPU even where one exists, and XGBoost silently falls back to
the CPU when asked for one it cannot see. Asking for CUDA where there is none is an
error, never a silent CPU run.

Examples
--------
>>> resolve_device("cpu")
'cpu'
>>> resolve_device("auto") in ("cpu", "cuda")
True
"""

from __future__ import annotations

import ctypes
import functools
import os

from rmlite.exceptions import RmliteError

DEVICES = ("cpu", "cuda", "auto")

SMALL_FIT_ROWS = 20_000
"""Below this many training rows a default fit runs on one thread (see :func:`fit_threads`)."""


def fit_threads(n_jobs: int | None, rows: int | None = None) -> int:
    """CPU threads for one fit: the one rule every backend (LightGBM, XGBoost, the MLP) uses.

    ``n_jobs=-1`` means every core this process may use and an int >= 1 that many threads.
    The default (``None``) is one thread when the fit has fewer than
    :data:`SMALL_FIT_ROWS` rows, else the physical cores (hyper-threads share a core's
    floating-point units and only add contention). A small fit has too little work per
    boosting round to share: its threads spend their time waiting on each other, and on a
    busy machine a thread that is not scheduled stalls all the others at every barrier.
    Measured on 2 cores with both loaded by other processes, a 3,200-row LightGBM fit
    (500 trees) took 118-159 s on 2 threads and 4-10 s on one.

    Examples
    --------
    >>> fit_threads(3), fit_threads(None, rows=3_200)
    (3, 1)
    >>> fit_threads(None, rows=1_000_000) == physical_cores()
    True
    """
    if n_jobs is not None and n_jobs > 0:
        return int(n_jobs)
    if n_jobs == -1:
        return _usable_cpus()
    if rows is not None and rows < SMALL_FIT_ROWS:
        return 1
    return physical_cores()


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@functools.cache
def physical_cores() -> int:
    """Physical cores this process may use (distinct core ids in ``/proc/cpuinfo``, at most
    the CPUs in its affinity mask); the logical CPU count where that cannot be read."""
    usable = _usable_cpus()
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return usable
    cores, physical = set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical = value.strip()
        elif key == "core id":
            cores.add((physical, value.strip()))
    return max(1, min(usable, len(cores))) if cores else usable


class DeviceError(RmliteError, ValueError):
    """A device was requested that this machine or build does not have."""


@functools.cache
def cuda_device_count() -> int:
    """Number of CUDA devices the driver sees (0 without a driver or a GPU)."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return int(count.value)
    return 0


def resolve_device(device: str) -> str:
    """``"auto"`` → ``"cuda"`` when a GPU is present, else ``"cpu"``; check ``"cuda"``."""
    if device not in DEVICES:
        raise DeviceError(
            f"The 'device' parameter must be a str among {set(DEVICES)}. Got {device!r} instead."
        )
    if device == "auto":
        return "cuda" if cuda_device_count() > 0 else "cpu"
    if device == "cuda" and cuda_device_count() == 0:
        raise DeviceError(
            "device='cuda' was requested but no CUDA device is visible (no NVIDIA driver or "
            "GPU on this machine). Use device='cpu', or device='auto' to use a GPU only "
            "where one exists."
        )
    return device
