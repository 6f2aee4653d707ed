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
"""Episode identifier, unique within a dataset. BIGINT. Splits always group by it."""

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
"""Optional wall-clock time of the transition. TIMESTAMP; numbers are Unix seconds."""

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
