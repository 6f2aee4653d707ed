"""A float32 feature matrix on disk, read in row chunks: the streaming path's ``X``.

When the feature matrix of a dataset does not fit in memory, the store writes it here in
chunks of whole episodes (:meth:`rmlite.LogStore.features` with ``stream_to=``), and the
engines read it back a chunk at a time: LightGBM through a ``lightgbm.Sequence``, XGBoost
through a ``DataIter`` into ``ExtMemQuantileDMatrix``, the MLP as shuffled chunks.

The file is the raw C-order float32 matrix and nothing else (``np.fromfile`` can read
it); its shape lives in the object. Reads are plain ``pread``s into fresh arrays, never a
memory map: a map of a 10 GB file would count against an address-space limit
(``RLIMIT_AS``, cgroups) and inflate the resident size the user watches.

Indexing with a boolean mask or an array of row numbers gives a *view*: the same file,
a subset of its rows, still read in chunks. Slices read rows at once.

Examples
--------
>>> import tempfile, os
>>> folder = tempfile.mkdtemp()
>>> with MatrixFile.create(os.path.join(folder, "X.f32"), n_cols=2) as writer:
...     writer.append(np.arange(6, dtype=np.float32).reshape(3, 2))
...     writer.append(np.full((1, 2), 9.0, dtype=np.float32))
>>> X = writer.result
>>> X.shape
(4, 2)
>>> X[1:3].tolist()
[[2.0, 3.0], [4.0, 5.0]]
>>> view = X[np.array([True, False, False, True])]
>>> view.shape, view.to_numpy().tolist()
((2, 2), [[0.0, 1.0], [9.0, 9.0]])
>>> [chunk.shape for chunk in X.iter_chunks(3)]
[(3, 2), (1, 2)]
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from rmlite._typing import Float32Array, PathLike

DEFAULT_CHUNK_BYTES = 64 * 2**20
"""Bytes of matrix read at once by :meth:`MatrixFile.iter_chunks` when no row count is
given: large enough that a read costs little per row, small beside any memory budget."""


class MatrixFile:
    """An (n_rows, n_cols) float32 matrix in a file, or a subset of its rows.

    Parameters
    ----------
    path
        The file: ``n_file_rows * n_cols`` float32 values in C order.
    n_file_rows, n_cols
        The file's shape.
    rows
        Row numbers of this view in the file (non-decreasing; repeats allowed, as a
        bootstrap resample makes them); None for every row. Held as int32 below 2**31
        file rows.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(
        self,
        path: PathLike,
        n_file_rows: int,
        n_cols: int,
        rows: npt.NDArray[np.integer] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.n_file_rows = int(n_file_rows)
        self.n_cols = int(n_cols)
        if rows is not None:
            # Row numbers of a file under 2**31 rows fit int32: half the memory a view
            # holds beside the engine (100 MB for 24M training rows).
            rows = np.asarray(rows, dtype=np.int32 if self.n_file_rows < 2**31 else np.int64)
            if len(rows) and (rows[0] < 0 or rows[-1] >= self.n_file_rows):
                raise IndexError(f"row numbers out of range for {self.n_file_rows} rows")
            if len(rows) > 1 and bool(np.any(rows[1:] < rows[:-1])):
                raise ValueError("MatrixFile views take row numbers in non-decreasing order.")
        self.rows = rows

    # ------------------------------------------------------------------ shape

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.n_cols)

    def __len__(self) -> int:
        return self.n_file_rows if self.rows is None else len(self.rows)

    @property
    def nbytes(self) -> int:
        """Bytes the view would take in memory."""
        return len(self) * self.n_cols * 4

    def __repr__(self) -> str:
        view = "" if self.rows is None else f" (a view of {self.n_file_rows:,} rows)"
        return f"MatrixFile({self.path!r}, shape={self.shape}){view}"

    # ------------------------------------------------------------------ reads

    def _read_file_rows(self, lo: int, hi: int) -> Float32Array:
        """File rows [lo, hi) as a fresh (hi - lo, n_cols) array."""
        out = np.empty((max(hi - lo, 0), self.n_cols), dtype=np.float32)
        if hi <= lo:
            return out
        want = out.nbytes
        view = out.data.cast("B")
        with open(self.path, "rb", buffering=0) as fh:
            got = 0
            offset = lo * self.n_cols * 4
            while got < want:
                n = os.preadv(fh.fileno(), [view[got:]], offset + got)
                if n == 0:
                    raise OSError(f"{self.path}: the matrix file is shorter than its shape says.")
                got += n
        return out

    def read(self, lo: int, hi: int) -> Float32Array:
        """Rows [lo, hi) of this view as an in-memory array."""
        lo, hi = max(0, lo), min(len(self), hi)
        if self.rows is None:
            return self._read_file_rows(lo, hi)
        rows = self.rows[lo:hi]
        if not len(rows):
            return np.empty((0, self.n_cols), dtype=np.float32)
        first, last = int(rows[0]), int(rows[-1])
        span = self.chunk_rows()
        if last + 1 - first <= max(span, 4 * len(rows)):
            # One covering read, then a gather: the rows of a view come in episode runs,
            # so the read holds few rows that are not wanted.
            return self._read_file_rows(first, last + 1)[rows - first]
        # Rows scattered over a long range (a sample): covering blocks of bounded size.
        out = np.empty((len(rows), self.n_cols), dtype=np.float32)
        bounds = np.arange(first, last + 1 + span, span)
        cuts = np.searchsorted(rows, bounds)
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
            if b > a:
                hi_row = int(rows[b - 1]) + 1
                out[a:b] = self._read_file_rows(int(rows[a]), hi_row)[rows[a:b] - rows[a]]
        return out

    def iter_chunks(self, chunk_rows: int | None = None) -> Iterator[Float32Array]:
        """This view's rows in order, ``chunk_rows`` at a time."""
        step = chunk_rows or self.chunk_rows()
        for lo in range(0, len(self), step):
            yield self.read(lo, lo + step)

    def chunk_rows(self, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
        """Rows in a chunk of about ``chunk_bytes``."""
        return max(1, chunk_bytes // max(1, self.n_cols * 4))

    def to_numpy(self) -> Float32Array:
        """The whole view in memory (for views that fit)."""
        return self.read(0, len(self))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.to_numpy()
        return out if dtype is None else out.astype(dtype, copy=False)

    # ----------------------------------------------------------------- views

    def take(self, index: Any) -> MatrixFile:
        """A view of some rows: a boolean mask or row numbers of this view."""
        index = np.asarray(index)
        if index.dtype == bool:
            if len(index) != len(self):
                raise IndexError(
                    f"boolean index of {len(index)} entries for a matrix of {len(self)} rows"
                )
            index = np.flatnonzero(index)
        index = index.astype(np.int64, copy=False)
        if len(index) > 1 and bool(np.any(index[1:] < index[:-1])):
            # A view reads its rows in order; sorting keeps the set of rows (engines see
            # rows, not their order), and the caller's labels must follow the same order.
            raise ValueError("MatrixFile views take row numbers in non-decreasing order.")
        rows = index if self.rows is None else self.rows[index]
        return MatrixFile(self.path, self.n_file_rows, self.n_cols, rows)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            lo, hi, stride = key.indices(len(self))
            if stride != 1:
                return self.take(np.arange(lo, hi, stride))
            return self.read(lo, hi)
        if isinstance(key, int | np.integer):
            i = int(key) + (len(self) if key < 0 else 0)
            return self.read(i, i + 1)[0]
        return self.take(key)

    # ----------------------------------------------------------------- writing

    @classmethod
    def create(cls, path: PathLike, n_cols: int) -> MatrixWriter:
        """A writer that appends row blocks to a new file at ``path``."""
        return MatrixWriter(path, n_cols)


class MatrixWriter:
    """Appends float32 row blocks to a new matrix file; ``result`` once closed."""

    def __init__(self, path: PathLike, n_cols: int) -> None:
        self.path = os.fspath(path)
        self.n_cols = int(n_cols)
        self.n_rows = 0
        self._fh = open(self.path, "wb")  # noqa: SIM115  (closed in close())
        self.result: MatrixFile | None = None

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[1] != self.n_cols:
            raise ValueError(
                f"{self.path}: appending a block of shape {block.shape} to a matrix of "
                f"{self.n_cols} columns."
            )
        self._fh.write(block.data.cast("B"))
        self.n_rows += block.shape[0]

    def close(self) -> MatrixFile:
        if self.result is None:
            self._fh.close()
            self.result = MatrixFile(self.path, self.n_rows, self.n_cols)
        return self.result

    def __enter__(self) -> MatrixWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
