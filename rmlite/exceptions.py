"""The one exception tree of rmlite.

Every error rmlite raises on purpose derives from :class:`RmliteError`, so callers can
catch the library's errors without catching their own bugs. Errors about bad input
also derive from :class:`ValueError`, so generic code that expects ``ValueError`` for
bad values keeps working.

Warnings (a result that exists but means little) derive from :class:`RmliteWarning`;
the CLI prints the same messages in its output and in ``--json``'s ``warnings`` list.
"""

from __future__ import annotations

from typing import Any


class RmliteError(Exception):
    """Root of every error rmlite raises on purpose."""


class SchemaError(RmliteError, ValueError):
    """A log does not meet the log contract (missing column, wrong type, bad shape)."""


class IngestError(SchemaError):
    """An ingest was refused; the store was left exactly as it was."""


class ConflictError(IngestError):
    """A transition key arrived again with different values; nothing was overwritten."""


class ParameterError(RmliteError, ValueError):
    """A parameter is out of range, unknown, or of the wrong type; the message names it."""


class DatasetNotFoundError(RmliteError, KeyError):
    """A dataset name that the store does not hold."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ModelFileError(RmliteError, ValueError):
    """A model folder is damaged, tampered with or malformed; the message names the file
    and what is wrong. Nothing of it reached an engine."""


class StoreLockedError(RmliteError, OSError):
    """Another process holds the store file open (for writing, or for reading while this
    one needs to write); the message names the process when DuckDB gives its PID."""


class StoreOpenError(RmliteError, OSError):
    """The store file cannot be opened for a reason that waiting will not cure: the path is
    a folder, not a DuckDB file, damaged, in a missing folder, or not writable."""


class StoreFullError(RmliteError, OSError):
    """The disk ran full while writing the store; the write was rolled back."""


class RmliteWarning(UserWarning):
    """Root of every warning rmlite issues on purpose (filter them all with this class)."""


class SmallSampleWarning(RmliteWarning):
    """Too little data for a number to mean much: a model trained on a handful of episodes
    or on fewer rows than its features need, a drift test on a window or reference of too
    few episodes. The number is still reported; the message says what would be enough."""


class ModelQualityWarning(RmliteWarning):
    """A model scores worse than predicting the mean (hold-out R² below 0, or a Brier
    score above the event rate's): its predictions carry no signal on those episodes."""


_lazy: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    # NotFittedError must subclass scikit-learn's so that sklearn tooling recognizes it,
    # but importing sklearn costs about a second; build the class on first use so that
    # `import rmlite` and `rmlite --help` stay instant.
    if name != "NotFittedError":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _lazy:
        from sklearn.exceptions import NotFittedError as _SkNotFittedError

        class NotFittedError(RmliteError, _SkNotFittedError):
            """An estimator or preprocessing step was used before ``fit``."""

        NotFittedError.__module__ = __name__
        _lazy[name] = NotFittedError
    return _lazy[name]
