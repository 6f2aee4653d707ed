"""The one error path of ``rmlite``: every error a command can end in, mapped to a message
and an exit code.

:data:`RULES` is the table. A rule names an exception class by module and class name, so
the engines' error classes (Polars, Arrow, DuckDB, LightGBM, XGBoost, torch) are matched
without importing those libraries when the CLI starts. The first class in the exception's
MRO that has a rule wins, so a subclass's rule beats its base's.

Exit codes: 0 success, 2 bad input, 75 the store is busy with another process or the disk
is full (EX_TEMPFAIL: nothing was written; run it again later), 130 interrupted, 1 a bug in
rmlite (then the traceback, and a line asking for a report). With ``--json`` the error is
one JSON object on stdout, ``{"error": ..., "kind": ..., "exit_code": ...}``, so a caller
parses stdout whatever happens; the traceback of a bug still goes to stderr.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass

EXIT_BUG, EXIT_BAD_INPUT, EXIT_TEMPFAIL, EXIT_INTERRUPTED = 1, 2, 75, 130


@dataclass(frozen=True)
class Rule:
    """How one exception class is reported."""

    kind: str
    """A short machine-readable name (the ``kind`` of the JSON error)."""
    exit_code: int
    fix: str
    """What to do about it; appended to the exception's own text (empty: the rmlite
    message already says)."""


_DATA_FIX = (
    "A value in the input does not fit the type rmlite needs; check the file and column "
    "named above (rmlite check, or rmlite ingest --on-error quarantine to land the good rows)."
)

RULES: dict[str, Rule] = {
    # rmlite's own errors: their messages already name the thing and the fix.
    "rmlite.exceptions.StoreLockedError": Rule("store_locked", EXIT_TEMPFAIL, ""),
    "rmlite.exceptions.StoreFullError": Rule("disk_full", EXIT_TEMPFAIL, ""),
    "rmlite.exceptions.StoreOpenError": Rule("store_unusable", EXIT_BAD_INPUT, ""),
    "rmlite.exceptions.ConflictError": Rule("conflict", EXIT_BAD_INPUT, ""),
    "rmlite.exceptions.IngestError": Rule("bad_log", EXIT_BAD_INPUT, ""),
    "rmlite.exceptions.SchemaError": Rule("bad_log", EXIT_BAD_INPUT, ""),
    "rmlite.exceptions.ParameterError": Rule("bad_parameter", EXIT_BAD_INPUT, ""),
    "rmlite.exceptions.DatasetNotFoundError": Rule("unknown_dataset", EXIT_BAD_INPUT, ""),
    "rmlite.exceptions.ModelFileError": Rule("bad_model", EXIT_BAD_INPUT, ""),
    "rmlite.exceptions.NotFittedError": Rule("not_fitted", EXIT_BAD_INPUT, ""),
    "rmlite.exceptions.RmliteError": Rule("bad_input", EXIT_BAD_INPUT, ""),
    # Interrupts: Ctrl+C in Python code, or inside a DuckDB query.
    "builtins.KeyboardInterrupt": Rule("interrupted", EXIT_INTERRUPTED, ""),
    "_duckdb.InterruptException": Rule("interrupted", EXIT_INTERRUPTED, ""),
    # Files named on the command line.
    "builtins.FileNotFoundError": Rule(
        "file_not_found", EXIT_BAD_INPUT, "Check the path (it is relative to this folder)."
    ),
    "builtins.IsADirectoryError": Rule(
        "is_a_folder", EXIT_BAD_INPUT, "A file was expected; pass the path of a file."
    ),
    "builtins.NotADirectoryError": Rule(
        "not_a_folder", EXIT_BAD_INPUT, "A folder was expected; pass the path of a folder."
    ),
    "builtins.PermissionError": Rule(
        "permission_denied", EXIT_BAD_INPUT, "Check the permissions, or choose another path."
    ),
    # Polars: a value or a type that the computation cannot take.
    "polars.exceptions.ComputeError": Rule("bad_data", EXIT_BAD_INPUT, _DATA_FIX),
    "polars.exceptions.InvalidOperationError": Rule("bad_data", EXIT_BAD_INPUT, _DATA_FIX),
    "polars.exceptions.SchemaError": Rule("bad_data", EXIT_BAD_INPUT, _DATA_FIX),
    "polars.exceptions.SchemaFieldNotFoundError": Rule("bad_data", EXIT_BAD_INPUT, _DATA_FIX),
    "polars.exceptions.ColumnNotFoundError": Rule("bad_data", EXIT_BAD_INPUT, _DATA_FIX),
    "polars.exceptions.ShapeError": Rule("bad_data", EXIT_BAD_INPUT, _DATA_FIX),
    "polars.exceptions.DuplicateError": Rule("bad_data", EXIT_BAD_INPUT, _DATA_FIX),
    "polars.exceptions.NoDataError": Rule(
        "bad_data", EXIT_BAD_INPUT, "The input is empty; pass a file with rows."
    ),
    # Arrow: unreadable or inconsistent files.
    "pyarrow.lib.ArrowInvalid": Rule(
        "bad_file", EXIT_BAD_INPUT, "Check that the file is complete and of the type its name says."
    ),
    "pyarrow.lib.ArrowTypeError": Rule("bad_data", EXIT_BAD_INPUT, _DATA_FIX),
    "pyarrow.lib.ArrowNotImplementedError": Rule("bad_data", EXIT_BAD_INPUT, _DATA_FIX),
    # DuckDB: the store file and SQL typed by the user.
    "_duckdb.IOException": Rule(
        "store_io",
        EXIT_BAD_INPUT,
        "The store file could not be read or written; check --db, the disk and the permissions.",
    ),
    "_duckdb.CatalogException": Rule(
        "bad_sql",
        EXIT_BAD_INPUT,
        "A table or column named in the query does not exist; the tables are listed in the "
        'README (rmlite sql "SHOW TABLES").',
    ),
    "_duckdb.ParserException": Rule("bad_sql", EXIT_BAD_INPUT, "Fix the SQL syntax."),
    "_duckdb.BinderException": Rule("bad_sql", EXIT_BAD_INPUT, "Fix the names in the query."),
    "_duckdb.ConversionException": Rule("bad_data", EXIT_BAD_INPUT, _DATA_FIX),
    "_duckdb.OutOfRangeException": Rule("bad_data", EXIT_BAD_INPUT, _DATA_FIX),
    "_duckdb.InvalidInputException": Rule("bad_data", EXIT_BAD_INPUT, _DATA_FIX),
    # Engines: parameters they reject, model files they cannot load.
    "lightgbm.basic.LightGBMError": Rule(
        "engine_rejected",
        EXIT_BAD_INPUT,
        "LightGBM refused a parameter or the data; check the --param values (LightGBM's "
        "parameter list names each one's range).",
    ),
    "xgboost.core.XGBoostError": Rule(
        "engine_rejected",
        EXIT_BAD_INPUT,
        "XGBoost refused a parameter or the data; check the --param values (XGBoost's "
        "parameter list names each one's range).",
    ),
    "_pickle.UnpicklingError": Rule(
        "bad_model",
        EXIT_BAD_INPUT,
        "The model file holds something other than plain weights; rmlite loads weights only "
        "and never runs code from a model file. Retrain the model or restore its folder.",
    ),
    "pickle.UnpicklingError": Rule(
        "bad_model",
        EXIT_BAD_INPUT,
        "The model file holds something other than plain weights; rmlite loads weights only "
        "and never runs code from a model file. Retrain the model or restore its folder.",
    ),
}
"""Exception class (``module.QualName``) → how it is reported. Anything not here is a bug."""


def classify(exc: BaseException) -> tuple[str, Rule] | None:
    """The class name and rule for an exception, or None when it is a bug."""
    if isinstance(exc, RuntimeError) and "query interrupted" in str(exc).lower():
        # DuckDB's word for a Ctrl+C that arrived while it scanned an Arrow table.
        return "RuntimeError", RULES["builtins.KeyboardInterrupt"]
    for cls in type(exc).__mro__:
        name = f"{cls.__module__}.{cls.__qualname__}"
        rule = RULES.get(name)
        if rule is not None:
            return name, _refine(exc, rule)
    return None


def _refine(exc: BaseException, rule: Rule) -> Rule:
    # A full disk surfaces as an OSError or as a DuckDB IO error: report it as such.
    if rule.kind in ("disk_full", "store_locked", "store_unusable"):
        return rule  # rmlite's own message already says what happened
    text = str(exc).lower()
    if "no space left on device" in text or getattr(exc, "errno", None) == 28:
        return Rule(
            "disk_full",
            EXIT_TEMPFAIL,
            "The disk is full; nothing was written. Free some space and run the command again.",
        )
    return rule


def message(exc: BaseException, rule: Rule, command: str | None) -> str:
    """One paragraph: the exception's own text (its first lines), then the fix."""
    if rule.kind == "interrupted":
        # Loaded only if the command opened the store: no import at interrupt time.
        connection = sys.modules.get("rmlite.data.store._connection")
        if connection is not None and int(getattr(connection, "commits", 0)) > 0:
            return (
                "interrupted after this command's write had landed; the store holds it "
                "whole (rmlite datasets shows it)."
            )
        return "interrupted; the store is as it was before this command."
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > 600:
        text = text[:600] + " ..."
    if not isinstance(exc, _rmlite_error()):
        where = f"rmlite {command}: " if command else ""
        text = f"{where}{type(exc).__name__}: {text}"
    return f"{text} {rule.fix}".strip()


def _rmlite_error() -> type:
    from rmlite.exceptions import RmliteError

    return RmliteError


def report(exc: BaseException, *, json_mode: bool, command: str | None = None) -> int:
    """Print an exception the way its rule says; return the exit code."""
    found = classify(exc)
    if found is None:
        return _bug(exc, json_mode)
    _name, rule = found
    text = message(exc, rule, command)
    if json_mode:
        _emit({"error": text, "kind": rule.kind, "exit_code": rule.exit_code})
    else:
        print(f"error: {text}" if rule.kind != "interrupted" else text, file=sys.stderr)
    return rule.exit_code


def _bug(exc: BaseException, json_mode: bool) -> int:
    traceback.print_exception(exc, file=sys.stderr)
    plea = (
        "This is a bug in rmlite. Please report it to the rmlite maintainers with the "
        "command you ran, `rmlite --version` and the traceback above."
    )
    if json_mode:
        _emit(
            {
                "error": f"{type(exc).__name__}: {exc}. {plea}",
                "kind": "internal",
                "exit_code": EXIT_BUG,
            }
        )
    else:
        print(plea, file=sys.stderr)
    return EXIT_BUG


def _emit(payload: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()
