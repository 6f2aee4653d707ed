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

from rmlite.exceptions import RmliteError

DEVICES = ("cpu", "cuda", "auto")


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
