"""The log contract: column names, types and meaning of a transition, written once.

A *transition* is one step of agent-environment interaction, named as in Gymnasium::

    obs --action--> (reward, next_obs, terminated, truncated)

Every log that reaches the store is normalized to these columns, and every other module
refers to them through the constants below, never through string literals.

Examples
--------
>>> from rmlite.data import schema
>>> schema.KEY
('dataset', 'episode_id', 'step')
>>> schema.VECTOR_COLUMNS
('obs', 'action', 'next_obs')
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Final

from rmlite.exceptions import SchemaError

DATASET: Final = "dataset"
"""Name of the dataset the transition belongs to (a project may hold many). VARCHAR."""

EPISODE: Final = "episode_id"
"""Episode identifier, unique within a dataset. BIGINT. Splits always group by it. Text ids
(``"run-a/ep-17"``, UUIDs) are kept in ``episode_keys`` and an integer key stands here."""

STEP: Final = "step"
"""Position of the transition inside its episode, from 0. BIGINT."""

OBS: Final = "obs"
"""Observation the action was taken in: a float32 vector, the same length in a dataset."""

ACTION: Final = "action"
"""Action taken: a float32 vector. A discrete action is stored as a vector of length 1."""

REWARD: Final = "reward"
"""Reward received for the transition. DOUBLE; NULL where the log has no reward."""

NEXT_OBS: Final = "next_obs"
"""Observation after the action: float32 vector, NULL where it is unknown (for example the
last step of an episode whose log did not record it)."""

TERMINATED: Final = "terminated"
"""True when the episode ended in a terminal state of the MDP (no bootstrapping past it)."""

TRUNCATED: Final = "truncated"
"""True when the episode was cut short (time limit, reset) and its future is unknown."""

TIMESTAMP: Final = "timestamp"
"""Optional wall-clock time of the transition, in UTC. TIMESTAMP (TIMESTAMPTZ in the
``data.<dataset>`` views); numbers are Unix seconds."""

EXTRA: Final = "extra"
"""Every other source column, kept as it was, as one JSON object per transition."""

DATASET_NAME_MAX: Final = 200
"""Longest dataset name, in characters."""


def check_dataset_name(name: object) -> str:
    r"""Refuse a dataset name that cannot be shown safely: empty, not text, longer than
    :data:`DATASET_NAME_MAX`, padded with spaces, or holding control characters (a name
    with an escape sequence would repaint the terminal of whoever lists the datasets).

    Examples
    --------
    >>> check_dataset_name("walker-v5")
    'walker-v5'
    >>> check_dataset_name("bad\x1b[31mname")
    Traceback (most recent call last):
    ...
    rmlite.exceptions.SchemaError: The dataset name 'bad\x1b[31mname' holds a control character ('\x1b'); use letters, digits and punctuation.
    """
    if not isinstance(name, str) or not name.strip():
        raise SchemaError(f"The dataset name must be a non-empty string. Got {name!r} instead.")
    if not name.isprintable():
        bad = next(ch for ch in name if not ch.isprintable())
        raise SchemaError(
            f"The dataset name {name!r} holds a control character ({bad!r}); use letters, "
            f"digits and punctuation."
        )
    if name != name.strip():
        raise SchemaError(f"The dataset name {name!r} starts or ends with spaces; strip them.")
    if len(name) > DATASET_NAME_MAX:
        raise SchemaError(
            f"The dataset name is {len(name)} characters long; at most {DATASET_NAME_MAX} "
            f"are allowed."
        )
    return name


KEY: Final = (DATASET, EPISODE, STEP)
"""A transition's identity. Re-ingesting a key adds nothing; other values are a conflict."""

VECTOR_COLUMNS: Final = (OBS, ACTION, NEXT_OBS)
"""Columns holding vectors (DuckDB ``FLOAT[]``, Arrow ``list<float32>``)."""

VALUE_COLUMNS: Final = (OBS, ACTION, REWARD, NEXT_OBS, TERMINATED, TRUNCATED)
"""Columns compared when a key arrives again: any difference is a conflict."""

COLUMNS: Final = (
    DATASET,
    EPISODE,
    STEP,
    OBS,
    ACTION,
    REWARD,
    NEXT_OBS,
    TERMINATED,
    TRUNCATED,
    TIMESTAMP,
    EXTRA,
)
"""Canonical column order of the ``transitions`` table (besides bookkeeping columns)."""

FLAT_PREFIXES: Final[dict[str, tuple[str, ...]]] = {
    OBS: ("obs_", "observation_", "observations_", "state_", "s_"),
    ACTION: ("act_", "action_", "actions_", "a_"),
    NEXT_OBS: ("next_obs_", "next_observation_", "next_observations_", "next_state_", "s2_"),
}
"""Prefixes recognized for vectors flattened into numbered columns (``obs_0, obs_1, ...``)."""

ALIASES: Final[dict[str, tuple[str, ...]]] = {
    EPISODE: (EPISODE, "episode", "episode_index", "ep", "episode_idx"),
    STEP: (STEP, "t", "timestep", "step_id", "step_index"),
    OBS: (OBS, "observation", "observations", "state", "states"),
    ACTION: (ACTION, "actions", "act"),
    REWARD: (REWARD, "rewards"),
    NEXT_OBS: (NEXT_OBS, "next_observation", "next_observations", "next_state", "next_states"),
    TERMINATED: (TERMINATED, "terminals", "terminal", "terminations"),
    TRUNCATED: (TRUNCATED, "timeouts", "timeout", "truncations"),
    TIMESTAMP: (TIMESTAMP, "time", "ts", "wall_time"),
}
"""Names recognized for each canonical column when no mapping is given, in order of
preference. ``done`` is deliberately absent: it mixes terminated and truncated."""

TABLES: Final = (
    "transitions",
    "episode_keys",
    "datasets",
    "ingests",
    "rejected",
    "runs",
    "relabels",
    "preferences",
    "monitor_passes",
    "metrics",
    "drift",
    "alerts",
    "monitor_samples",
    "drift_histograms",
)
"""Tables of the store. ``transitions`` holds the logs; the others are bookkeeping
(``runs``: one row per training run with its parameters and metrics; ``relabels``: one row
per relabel, with the model, feature spec and gamma that produced the new rewards;
``preferences``: judged pairs of segments, see :data:`PREFERENCE_COLUMNS`).

Monitoring (``rmlite monitor``) writes one ``monitor_passes`` row per pass over newly
ingested episodes, and, keyed by its ``pass_id``: ``metrics`` (one row per metric against
the ground-truth rewards), ``drift`` (one row per feature, plus ``reward``, ``prediction``
and ``residual``, with PSI, KS and the Wasserstein distance in reference standard
deviations), ``alerts`` (what crossed a threshold, and why) and ``monitor_samples`` (a
sample of predicted-vs-true rewards for the dashboard's scatter plot)."""

PREFERENCE_COLUMNS: Final = (
    DATASET,
    "episode_a",
    "start_a",
    "stop_a",
    "episode_b",
    "start_b",
    "stop_b",
    "label",
    "margin",
    "annotator",
    TIMESTAMP,
)
"""Columns of the ``preferences`` table: one judged pair of segments per row.

Segment A is the steps ``start_a <= step < stop_a`` of episode ``episode_a`` (half-open,
like Python's ``range``), segment B likewise. ``label`` is P(A preferred over B) as
judged, in [0, 1]: 1 = A, 0 = B, 0.5 = a tie, anything between a soft label. ``margin``
(optional, >= 0) says by how much the preferred segment should win; ``annotator`` names
who judged (empty when unknown); ``timestamp`` when."""

PREFERENCE_KEY: Final = (
    DATASET,
    "episode_a",
    "start_a",
    "stop_a",
    "episode_b",
    "start_b",
    "stop_b",
    "annotator",
)
"""A judgement's identity: one annotator's verdict on one pair. Re-ingesting it adds
nothing; the same key with another label or margin is a conflict, never overwritten."""


@dataclass(frozen=True)
class ColumnMapping:
    """Where the canonical columns are found in a source log.

    Every field is optional: unset fields are found by their canonical name, then by the
    aliases in :data:`ALIASES`, then (for vectors) as numbered columns with one of the
    prefixes in :data:`FLAT_PREFIXES`. A vector field may name one list column or give a
    glob pattern (``'state_*'``) matching scalar columns, ordered by their numeric suffix.

    Examples
    --------
    >>> ColumnMapping(reward="r", obs="state_*").reward
    'r'
    """

    episode: str | None = field(
        default=None,
        metadata={
            "help": "column holding episode ids; absent: episodes are cut after "
            "terminated/truncated rows, in file order"
        },
    )
    step: str | None = field(
        default=None,
        metadata={"help": "column holding the step index; absent: row order within episode"},
    )
    obs: str | None = field(
        default=None,
        metadata={"help": "observation list column, or a glob of scalar columns ('state_*')"},
    )
    action: str | None = field(
        default=None,
        metadata={"help": "action list or scalar column, or a glob of scalar columns"},
    )
    reward: str | None = field(default=None, metadata={"help": "reward column"})
    next_obs: str | None = field(
        default=None,
        metadata={
            "help": "next-observation list column or glob; absent: derived from the next "
            "step of the same episode"
        },
    )
    terminated: str | None = field(
        default=None, metadata={"help": "terminated flag column (absent: all false)"}
    )
    truncated: str | None = field(
        default=None, metadata={"help": "truncated flag column (absent: all false)"}
    )
    timestamp: str | None = field(default=None, metadata={"help": "timestamp column"})

    def items(self) -> list[tuple[str, str]]:
        """The (canonical column, source name) pairs that were set."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out.append((_FIELD_TO_COLUMN[f.name], value))
        return out


_FIELD_TO_COLUMN: Final = {
    "episode": EPISODE,
    "step": STEP,
    "obs": OBS,
    "action": ACTION,
    "reward": REWARD,
    "next_obs": NEXT_OBS,
    "terminated": TERMINATED,
    "truncated": TRUNCATED,
    "timestamp": TIMESTAMP,
}


# ------------------------------------------------------------------ the store, described
# The text of the store's COMMENT ON statements (``duckdb_tables()``, ``duckdb_columns()``,
# ``DESCRIBE`` in DuckDB's own CLI). The columns of ``transitions`` take their text from
# the constants' docstrings above, so the log contract is written once.

VIEW_SCHEMA: Final = "data"
"""Schema of the per-dataset views: ``data.<dataset>`` (``SELECT * FROM data.walker``) has
one row per transition with the episode ids as ingested, ``obs``/``action``/``next_obs`` as
fixed-size ``FLOAT[n]`` arrays (``array_distance``, ``array_cosine_similarity`` work on
them) and ``timestamp`` as ``TIMESTAMPTZ``."""

LEGACY_SCHEMA: Final = "legacy"
"""Schema of views keeping renamed columns readable: ``legacy.datasets`` (``name``) and
``legacy.relabels`` (``target``, ``target_kind``)."""

_AT = "when it was written, in UTC"
TABLE_DOCS: Final[dict[str, str]] = {
    "transitions": "One row per logged transition (obs --action--> reward, next_obs), keyed "
    "by (dataset, episode_id, step). Per-dataset views with fixed-size arrays: data.<dataset>.",
    "episode_keys": "Text episode ids ('run-a/ep-17', UUIDs) of datasets that use them, with "
    "the integer key that transitions, preferences and monitor_samples hold in their place.",
    "datasets": "One row per dataset: its vector sizes and when it was created and updated.",
    "ingests": "One row per ingest (rmlite ingest, collect, relabel) with its row counts.",
    "rejected": "Rows refused by ingests run with --on-error quarantine, with the reason.",
    "runs": "One row per training or tuning run: parameters, feature spec, metrics, model.",
    "relabels": "One row per relabel: the source dataset, the model and feature spec that "
    "predicted the new rewards, and where they were written.",
    "preferences": "Judged pairs of segments: segment A is steps [start_a, stop_a) of "
    "episode_a, segment B likewise; label = P(A preferred).",
    "monitor_passes": "One row per rmlite monitor pass over newly ingested episodes.",
    "metrics": "Accuracy of a monitor pass against the logged rewards, one row per metric.",
    "drift": "Drift of a monitor pass against the training window, one row per column.",
    "alerts": "Thresholds a monitor pass crossed, with the reason.",
    "monitor_samples": "A sample of predicted vs logged rewards kept by a monitor pass.",
    "drift_histograms": "Reference-vs-current histograms of the columns of a monitor pass "
    "(shares per bin over shared edges), for the dashboard.",
}
"""What each table of the store holds (its ``COMMENT ON TABLE``)."""

COLUMN_DOCS: Final[dict[str, dict[str, str]]] = {
    "transitions": {"ingest_id": "The ingest that landed the row (ingests.ingest_id)."},
    "episode_keys": {
        DATASET: "The dataset (datasets.dataset).",
        "episode_key": "The integer key stored in transitions.episode_id, from 0 per dataset.",
        EPISODE: "The episode id as ingested (text).",
    },
    "datasets": {
        DATASET: "Name of the dataset.",
        "obs_dim": "Length of every obs and next_obs vector.",
        "action_dim": "Length of every action vector (1 for a discrete action).",
        "action_discrete": "True when the actions were integers (a discrete action space).",
        "created_at": "First ingest, in UTC.",
        "updated_at": "Latest ingest, in UTC.",
    },
    "ingests": {
        "ingest_id": "Increasing id of the ingest.",
        DATASET: "The dataset ingested into.",
        "sources": "Files or tables read.",
        "rows_read": "Rows read from the sources.",
        "rows_added": "Transitions new to the store.",
        "rows_duplicate": "Transitions already stored with the same values (nothing added).",
        "rows_rejected": "Bad rows quarantined (see rejected).",
        "rows_conflicting": "Keys stored with other values (never overwritten).",
        "finished_at": "When the ingest committed, in UTC.",
    },
    "rejected": {
        "ingest_id": "The ingest that refused the row.",
        DATASET: "The dataset ingested into.",
        "source": "File or table the row came from.",
        "source_row": "Row number in the source, from 0.",
        "reason": "Why the row was refused.",
        "record": "The row as read, as JSON.",
        "rejected_at": _AT.capitalize() + ".",
    },
    "runs": {
        "run_id": "Increasing id of the run.",
        "kind": "train, tune, distributed or preferences.",
        DATASET: "The dataset trained on.",
        "target": "What the model predicts: reward, return (discounted return-to-go), event "
        "or preferences. The same word as FeatureSpec.target.",
        "backend": "lightgbm, xgboost or mlp.",
        "device": "cpu or cuda.",
        "params": "Estimator parameters (JSON).",
        "feature_spec": "The FeatureSpec (JSON).",
        "metrics": "Hold-out and training metrics (JSON).",
        "data_fingerprint": "Hash of the dataset's content when trained.",
        "model_path": "Folder the model was saved in.",
        "trial_number": "Optuna trial of the best parameters (tuning runs).",
        "duration_s": "Wall-clock seconds.",
        "created_at": _AT.capitalize() + ".",
    },
    "relabels": {
        "relabel_id": "Increasing id of the relabel.",
        "source_dataset": "Dataset whose transitions were relabeled (only read).",
        "source_fingerprint": "Hash of the source's content when relabeled.",
        "destination": "Where the new rewards went: a new dataset's name, or a Parquet file.",
        "destination_kind": "dataset or parquet.",
        "ingest_id": "The ingest that landed the new dataset (NULL for a file).",
        "model_path": "Folder of the model that predicted the rewards.",
        "model_fingerprint": "Hash of that model.",
        "feature_spec": "The model's FeatureSpec (JSON).",
        "gamma": "Discount of a return target.",
        "pessimism": "K in mean - K*std over an ensemble's members.",
        "rescale": "Linear map onto [low, high] (JSON), if asked for.",
        "rows": "Transitions written.",
        "rows_predicted": "Transitions with a predicted reward (the others are NULL).",
        "created_at": _AT.capitalize() + ".",
    },
    "preferences": {
        DATASET: "The dataset whose episodes the segments come from.",
        "episode_a": "Episode of segment A (its key, for datasets with text ids).",
        "start_a": "First step of segment A.",
        "stop_a": "Step after the last of segment A (half-open range).",
        "episode_b": "Episode of segment B (its key, for datasets with text ids).",
        "start_b": "First step of segment B.",
        "stop_b": "Step after the last of segment B (half-open range).",
        "label": "P(A preferred over B) as judged: 1 = A, 0 = B, 0.5 = a tie.",
        "margin": "By how much the preferred segment should win (optional).",
        "annotator": "Who judged (empty when unknown).",
        TIMESTAMP: "When it was judged, in UTC.",
        "ingest_id": "The ingest that landed the pair.",
    },
    "monitor_passes": {
        "pass_id": "Increasing id of the pass.",
        DATASET: "The dataset monitored.",
        "model_path": "Folder of the model monitored.",
        "model_fingerprint": "Hash of that model.",
        "reference": "What drift is measured against (the model's training window).",
        "first_ingest_id": "Oldest ingest the pass covered.",
        "last_ingest_id": "Newest ingest the pass covered.",
        "episodes": "Episodes scored.",
        "rows": "Transitions scored.",
        "alerts": "Alerts raised.",
        "started_at": "Start of the pass, in UTC.",
        "finished_at": "End of the pass, in UTC.",
    },
    "metrics": {
        "pass_id": "The monitor pass (monitor_passes.pass_id).",
        DATASET: "The dataset monitored.",
        "model_fingerprint": "Hash of the model.",
        "metric": "r2, rmse, mae, spearman, episode_return_mae; auc, log_loss, brier, ece.",
        "value": "The metric's value.",
        "created_at": _AT.capitalize() + ".",
    },
    "drift": {
        "pass_id": "The monitor pass (monitor_passes.pass_id).",
        DATASET: "The dataset monitored.",
        "model_fingerprint": "Hash of the model.",
        "kind": "feature, or reward / prediction / residual.",
        "name": "The column compared.",
        "psi": "Population stability index (0.1 warns, 0.25 alerts).",
        "ks": "Kolmogorov-Smirnov statistic.",
        "ks_pvalue": "Its p-value (decides only on windows of at most 1,000 rows).",
        "wasserstein": "Wasserstein distance in reference standard deviations.",
        "severity": "ok, warn or alert.",
        "created_at": _AT.capitalize() + ".",
        "psi_warn": "The PSI this column warned at, for this window's size (NULL before "
        "the sample-size rule).",
        "psi_alert": "The PSI this column alerted at, for this window's size.",
        "psi_joint": "The PSI at which this column alerts together with a Wasserstein "
        "distance at or above wasserstein_alert.",
        "wasserstein_warn": "The Wasserstein distance this column warned at.",
        "wasserstein_alert": "The Wasserstein distance this column alerted at.",
        "psi_expected": "The PSI a same-distribution window of this size gives on average.",
    },
    "drift_histograms": {
        "pass_id": "The monitor pass (monitor_passes.pass_id).",
        "kind": "feature, or reward / prediction / residual.",
        "name": "The column.",
        "edges": "Bin edges shared by both histograms.",
        "reference": "Share of the reference window in each bin.",
        "current": "Share of the pass's window in each bin.",
    },
    "alerts": {
        "pass_id": "The monitor pass (monitor_passes.pass_id).",
        DATASET: "The dataset monitored.",
        "model_fingerprint": "Hash of the model.",
        "severity": "warn or alert.",
        "source": "What crossed a threshold: drift, accuracy, overfitting, ...",
        "name": "The column or metric concerned.",
        "message": "What happened, in words.",
        "created_at": _AT.capitalize() + ".",
    },
    "monitor_samples": {
        "pass_id": "The monitor pass (monitor_passes.pass_id).",
        EPISODE: "Episode (its key, for datasets with text ids).",
        STEP: "Step within the episode.",
        "y_true": "Logged reward (or target).",
        "y_pred": "Predicted reward (or target).",
    },
}
"""What each column of the store's tables means (its ``COMMENT ON COLUMN``); the columns of
``transitions`` named in :data:`COLUMNS` take the docstrings of the constants above."""


def column_docs() -> dict[str, dict[str, str]]:
    """:data:`COLUMN_DOCS` with the ``transitions`` columns' text taken from the docstrings
    of this module's constants (:data:`OBS`, :data:`REWARD`, ...): one source of truth.

    Examples
    --------
    >>> column_docs()["transitions"]["reward"][:36]
    'Reward received for the transition. '
    """
    import ast
    import inspect
    import itertools
    import sys

    tree = ast.parse(inspect.getsource(sys.modules[__name__]))
    by_value: dict[str, str] = {}
    for node, after in itertools.pairwise(tree.body):
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if (
            isinstance(target, ast.Name)
            and isinstance(node, ast.AnnAssign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            by_value[node.value.value] = " ".join(after.value.value.split()).replace("``", "")
    docs = {table: dict(cols) for table, cols in COLUMN_DOCS.items()}
    docs["transitions"] = {**{c: by_value[c] for c in COLUMNS}, **docs["transitions"]}
    return docs
