"""Request bodies in, rewards out: JSON and Arrow IPC, checked against the served model.

A batch is ``obs`` (n, obs_dim), ``action`` (n, action_dim), ``next_obs`` (n, obs_dim,
when the model's features use it) and ``step`` (n, when they use the step index). JSON
bodies hold them as lists of rows; Arrow IPC stream bodies as columns, vectors either
``fixed_size_list<float>`` or ``list<float>`` of equal lengths. Anything else is a
:class:`RequestError` that names the field, the expected shape and what came instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rmlite.exceptions import RmliteError
from rmlite.serve.model import ServedModel

ARROW_STREAM = "application/vnd.apache.arrow.stream"
"""The media type of Arrow IPC stream bodies (requests and answers)."""


@dataclass
class Batch:
    """A checked batch, ready for :class:`~rmlite.rl.RewardFunction`."""

    obs: np.ndarray
    action: np.ndarray
    next_obs: np.ndarray | None
    step: np.ndarray | None

    def __len__(self) -> int:
        return len(self.obs)


class RequestError(RmliteError, ValueError):
    """A request the server refuses: HTTP ``status``, the ``field`` at fault, the shape expected."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        expected: Any = None,
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.field, self.expected, self.status = field, expected, status

    def payload(self) -> dict[str, Any]:
        """The JSON body of the error answer."""
        out: dict[str, Any] = {"error": str(self)}
        if self.field is not None:
            out["field"] = self.field
        if self.expected is not None:
            out["expected"] = self.expected
        return out


def _fields(model: ServedModel) -> dict[str, int | None]:
    """Each field the model needs and its row width (None: one number per row)."""
    out: dict[str, int | None] = {"obs": model.obs_dim, "action": model.action_dim}
    if model.uses_next_obs:
        out["next_obs"] = model.obs_dim
    if model.uses_step:
        out["step"] = None
    return out


def _shape(width: int | None) -> str:
    return "(n,)" if width is None else f"(n, {width})"


def _check_rows(arrays: dict[str, np.ndarray]) -> int:
    rows = {name: len(a) for name, a in arrays.items()}
    n = rows["obs"]
    if n == 0:
        raise RequestError("field 'obs' holds no rows; send at least one.", field="obs")
    for name, count in rows.items():
        if count != n:
            raise RequestError(
                f"field {name!r} has {count} rows but 'obs' has {n}: every field holds one "
                f"row per transition.",
                field=name,
                expected=[n],
            )
    return n


def _batch(model: ServedModel, arrays: dict[str, np.ndarray]) -> Batch:
    _check_rows(arrays)
    return Batch(
        obs=arrays["obs"],
        action=arrays["action"],
        next_obs=arrays.get("next_obs"),
        step=arrays.get("step"),
    )


# ---------------------------------------------------------------------------- JSON


def _json_field(name: str, value: Any, width: int | None) -> np.ndarray:
    expected = ["n"] if width is None else ["n", width]
    what = "a list of numbers" if width is None else f"a list of rows of {width} numbers"
    if not isinstance(value, list):
        raise RequestError(
            f"field {name!r} must be {what}, shape {_shape(width)}; got {type(value).__name__}.",
            field=name,
            expected=expected,
        )
    if not value:  # no rows: refused by the row check, with the message for that
        return np.zeros((0,) if width is None else (0, width), dtype=np.float32)
    try:
        array = np.asarray(value)
    except ValueError:  # NumPy refuses ragged nesting
        array = np.asarray(value, dtype=object)
    if array.dtype.kind not in "iuf" or array.ndim != (1 if width is None else 2):
        if array.dtype.kind in "iuf" or array.dtype == object:
            lengths = [len(r) if isinstance(r, list) else None for r in value]
            bad = next(
                (i for i, n in enumerate(lengths) if (width is None) != (n is None) or n != width),
                None,
            )
            if bad is not None:
                got = "a number" if lengths[bad] is None else f"a list of {lengths[bad]}"
                raise RequestError(
                    f"field {name!r} must be {what}, shape {_shape(width)}; row {bad} is {got}.",
                    field=name,
                    expected=expected,
                )
        raise RequestError(
            f"field {name!r} must hold numbers only, shape {_shape(width)}; found "
            f"{_non_number(value)}.",
            field=name,
            expected=expected,
        )
    if width is not None and array.shape[1] != width:
        raise RequestError(
            f"field {name!r} must have rows of {width} numbers, shape {_shape(width)}; got "
            f"rows of {array.shape[1]}.",
            field=name,
            expected=expected,
        )
    return array.astype(np.int64 if width is None else np.float32, copy=False)


def _non_number(value: list[Any]) -> str:
    for row in value:
        for x in row if isinstance(row, list) else [row]:
            if isinstance(x, bool) or not isinstance(x, int | float):
                return f"{json.dumps(x)} ({type(x).__name__})"
    return "values that are not numbers"


def decode_json(body: bytes, model: ServedModel) -> Batch:
    """Check and convert a JSON body ``{"obs": [[...]], "action": [[...]], ...}``."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"the body is not valid JSON ({exc}).") from exc
    fields = _fields(model)
    if not isinstance(data, dict):
        raise RequestError(
            f"the body must be a JSON object with the fields {sorted(fields)}; got "
            f"{type(data).__name__}."
        )
    arrays: dict[str, np.ndarray] = {}
    for name, width in fields.items():
        if name not in data:
            raise RequestError(
                f"field {name!r} is missing: this model needs {', '.join(fields)} (shape "
                f"{_shape(width)} for {name!r}).",
                field=name,
                expected=["n"] if width is None else ["n", width],
            )
        arrays[name] = _json_field(name, data[name], width)
    return _batch(model, arrays)


def encode_json(reward: np.ndarray, fingerprint: str) -> bytes:
    """``{"reward": [...], "model": fingerprint}``."""
    return json.dumps({"reward": reward.tolist(), "model": fingerprint}).encode()


# --------------------------------------------------------------------------- Arrow


def _arrow_field(name: str, column: pa.ChunkedArray, width: int | None) -> np.ndarray:
    expected = ["n"] if width is None else ["n", width]
    arr = column.combine_chunks()
    typ = arr.type
    if width is None:
        if not (pa.types.is_integer(typ) or pa.types.is_floating(typ)):
            raise RequestError(
                f"column {name!r} must be a number per row, shape (n,); got Arrow type {typ}.",
                field=name,
                expected=expected,
            )
        if arr.null_count:
            raise RequestError(
                f"column {name!r} has {arr.null_count} null values.", field=name, expected=expected
            )
        return _numbers(arr).astype(np.int64, copy=False)
    is_list = pa.types.is_list(typ) or pa.types.is_large_list(typ)
    if not (is_list or pa.types.is_fixed_size_list(typ)) or not (
        pa.types.is_floating(typ.value_type) or pa.types.is_integer(typ.value_type)
    ):
        raise RequestError(
            f"column {name!r} must be fixed_size_list<float>[{width}] or list<float> with "
            f"{width} values per row; got Arrow type {typ}.",
            field=name,
            expected=expected,
        )
    if pa.types.is_fixed_size_list(typ) and typ.list_size != width:
        raise RequestError(
            f"column {name!r} must have rows of {width} values, shape {_shape(width)}; got "
            f"fixed_size_list of {typ.list_size}.",
            field=name,
            expected=expected,
        )
    flat = arr.flatten()  # honours slices and offsets
    if arr.null_count or flat.null_count:
        raise RequestError(
            f"column {name!r} has null rows or values; send numbers (NaN for missing).",
            field=name,
            expected=expected,
        )
    if is_list and not _equal_lengths(arr, width):
        lengths = pc.list_value_length(arr)
        bad = pc.min_max(pc.filter(lengths, pc.not_equal(lengths, width)))["min"].as_py()
        raise RequestError(
            f"column {name!r} must have rows of {width} values, shape {_shape(width)}; "
            f"found a row of {bad}.",
            field=name,
            expected=expected,
        )
    return _numbers(flat).astype(np.float32, copy=False).reshape(len(arr), width)


def _equal_lengths(arr: pa.Array, width: int) -> bool:
    """Every row of a list column holds ``width`` values (fixed-size lists always do)."""
    if pa.types.is_fixed_size_list(arr.type):
        return True
    dtype = np.int64 if pa.types.is_large_list(arr.type) else np.int32
    offsets = np.frombuffer(
        arr.buffers()[1],
        dtype=dtype,
        count=len(arr) + 1,
        offset=arr.offset * np.dtype(dtype).itemsize,
    )
    return bool((np.diff(offsets) == width).all())


def _numbers(values: pa.Array) -> np.ndarray:
    """A null-free numeric Arrow array as NumPy, zero-copy (pyarrow's to_numpy imports pandas)."""
    typ = values.type
    kind = "f" if pa.types.is_floating(typ) else "i" if pa.types.is_signed_integer(typ) else "u"
    dtype = np.dtype(f"<{kind}{typ.bit_width // 8}")
    return np.frombuffer(
        values.buffers()[1], dtype=dtype, count=len(values), offset=values.offset * dtype.itemsize
    )


def decode_arrow(body: bytes, model: ServedModel) -> Batch:
    """Check and convert an Arrow IPC stream body with columns obs/action/next_obs/step."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise RequestError(f"the body is not an Arrow IPC stream ({exc}).") from exc
    fields = _fields(model)
    arrays: dict[str, np.ndarray] = {}
    for name, width in fields.items():
        if name not in table.column_names:
            raise RequestError(
                f"column {name!r} is missing: this model needs {', '.join(fields)}; the "
                f"stream has {table.column_names}.",
                field=name,
                expected=["n"] if width is None else ["n", width],
            )
        arrays[name] = _arrow_field(name, table.column(name), width)
    return _batch(model, arrays)


def encode_arrow(reward: np.ndarray, fingerprint: str) -> bytes:
    """An Arrow IPC stream of one float64 column ``reward``; the model in its metadata."""
    schema = pa.schema([pa.field("reward", pa.float64())], metadata={"model": fingerprint})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(
            pa.record_batch([pa.array(np.asarray(reward, dtype=np.float64))], schema=schema)
        )
    return bytes(sink.getvalue())
