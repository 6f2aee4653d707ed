"""What features to build and what was fitted: FeatureSpec, FittedStats, FeatureFrame.

The plain data types of the feature pipeline, saved with models and passed between
layers; :mod:`rmlite.data.features` holds the transforms that build them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from rmlite.data import schema as S
from rmlite.exceptions import SchemaError

if TYPE_CHECKING:
    # Annotations only: the CLI builds its flags from FeatureSpec, and ``rmlite --help``
    # must not pay for NumPy and Polars (0.4 s); the methods that need them import them.
    import numpy as np
    import polars as pl

    from rmlite._typing import Float32Array, Float64Array, Int64Array

Target: TypeAlias = Literal["reward", "return", "event"]
Truncation: TypeAlias = Literal["mark", "bootstrap", "drop"]
Missing: TypeAlias = Literal["drop", "mean", "median", "ffill"]
Scaling: TypeAlias = Literal["none", "standard", "minmax", "robust", "clip"]


@dataclass(frozen=True)
class FeatureSpec:
    """What to build from a dataset: inputs, target, missing values, reward scaling.

    Saved with every model, so ``predict`` builds exactly what ``fit`` saw. Each field's
    ``help`` text is also the CLI's.

    Examples
    --------
    >>> spec = FeatureSpec(next_obs=True, delta=True, target="return", gamma=0.99)
    >>> FeatureSpec.from_dict(spec.to_dict()) == spec
    True
    """

    obs: bool = field(default=True, metadata={"help": "use the observation"})
    action: bool = field(default=True, metadata={"help": "use the action"})
    next_obs: bool = field(default=False, metadata={"help": "use the next observation"})
    delta: bool = field(default=False, metadata={"help": "use next_obs - obs"})
    step: bool = field(default=False, metadata={"help": "use the step index within the episode"})
    time_limit: int | None = field(
        default=None,
        metadata={"help": "add progress = step / TIME_LIMIT (the env's episode step limit)"},
    )
    lags: int = field(
        default=0,
        metadata={
            "help": "add obs and action of the LAGS previous steps (padded with the "
            "episode's first step, like Gymnasium's FrameStackObservation)"
        },
    )
    target: Target = field(
        default="reward",
        metadata={
            "help": "reward: immediate reward; return: discounted return-to-go; "
            "event: reward > EVENT_THRESHOLD as 0/1"
        },
    )
    gamma: float = field(default=0.99, metadata={"help": "discount of the return-to-go, in [0, 1]"})
    truncation: Truncation = field(
        default="mark",
        metadata={
            "help": "return of truncated/unfinished episodes, whose future is unknown: mark "
            "(keep, report the missing discount mass in FeatureFrame.tail), bootstrap (add "
            "gamma^k * mean training reward / (1 - gamma)), drop (drop rows whose missing "
            "mass exceeds TAIL_TOLERANCE)"
        },
    )
    tail_tolerance: float = field(
        default=0.01, metadata={"help": "with truncation=drop: largest missing mass kept"}
    )
    event_threshold: float = field(
        default=0.0, metadata={"help": "with target=event: a reward above this is an event"}
    )
    missing: Missing = field(
        default="drop",
        metadata={
            "help": "missing or non-finite inputs: drop the row, fill with the training "
            "mean or median, or forward-fill within the episode (then the mean)"
        },
    )
    missing_indicator: bool = field(
        default=False,
        metadata={"help": "add a 0/1 column for each input that had missing values in training"},
    )
    scaling: Scaling = field(
        default="none",
        metadata={
            "help": "target scaling fitted on training rows: none, standard, minmax, robust "
            "(median/IQR), or clip (rewards clipped to CLIP before the target is built)"
        },
    )
    clip: tuple[float, float] = field(
        default=(-1.0, 1.0), metadata={"help": "with scaling=clip: reward range kept"}
    )

    def validate(self) -> None:
        """Raise a :class:`SchemaError` naming the first parameter out of range."""
        choices = {
            "target": ("reward", "return", "event"),
            "truncation": ("mark", "bootstrap", "drop"),
            "missing": ("drop", "mean", "median", "ffill"),
            "scaling": ("none", "standard", "minmax", "robust", "clip"),
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise SchemaError(
                    f"The '{name}' parameter of FeatureSpec must be a str among "
                    f"{set(allowed)}. Got {value!r} instead."
                )
        if not (isinstance(self.gamma, int | float) and 0.0 <= self.gamma <= 1.0):
            raise SchemaError(
                f"The 'gamma' parameter of FeatureSpec must be a float in the range "
                f"[0.0, 1.0]. Got {self.gamma!r} instead."
            )
        if not (isinstance(self.lags, int) and 0 <= self.lags <= 64):
            raise SchemaError(
                f"The 'lags' parameter of FeatureSpec must be an int in the range [0, 64]. "
                f"Got {self.lags!r} instead."
            )
        if self.time_limit is not None and not (
            isinstance(self.time_limit, int) and self.time_limit > 0
        ):
            raise SchemaError(
                f"The 'time_limit' parameter of FeatureSpec must be a positive int or None. "
                f"Got {self.time_limit!r} instead."
            )
        if not 0.0 < self.tail_tolerance < 1.0:
            raise SchemaError(
                f"The 'tail_tolerance' parameter of FeatureSpec must be a float in the range "
                f"(0.0, 1.0). Got {self.tail_tolerance!r} instead."
            )
        if len(self.clip) != 2 or not self.clip[0] < self.clip[1]:
            raise SchemaError(
                f"The 'clip' parameter of FeatureSpec must be (low, high) with low < high. "
                f"Got {self.clip!r} instead."
            )
        if self.target == "return" and self.truncation == "bootstrap" and self.gamma >= 1.0:
            raise SchemaError(
                "FeatureSpec(truncation='bootstrap') needs gamma < 1: with gamma = 1 the "
                "bootstrap value mean_reward / (1 - gamma) is infinite. Use 'mark' or 'drop'."
            )
        if self.target == "event" and self.scaling not in ("none", "clip"):
            raise SchemaError(
                f"FeatureSpec(target='event') predicts a 0/1 event; scaling must be 'none'. "
                f"Got {self.scaling!r} instead."
            )
        if not any((self.obs, self.action, self.next_obs, self.delta, self.step)) and (
            self.time_limit is None and self.lags == 0
        ):
            raise SchemaError("FeatureSpec selects no input: enable obs, action or another input.")

    def columns_needed(self) -> list[str]:
        """Store columns this spec reads."""
        cols = [S.EPISODE, S.STEP, S.REWARD, S.TERMINATED, S.TRUNCATED]
        if self.obs or self.delta or self.lags:
            cols.append(S.OBS)
        if self.action or self.lags:
            cols.append(S.ACTION)
        if self.next_obs or self.delta:
            cols.append(S.NEXT_OBS)
        return cols

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (saved with models)."""
        out = asdict(self)
        out["clip"] = list(self.clip)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`; unknown keys are an error that names them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SchemaError(f"FeatureSpec has no parameter(s) {unknown}; known: {sorted(known)}.")
        values = dict(data)
        if "clip" in values:
            values["clip"] = tuple(values["clip"])
        return cls(**values)


@dataclass
class FittedStats:
    """Preprocessing learned on training rows and applied unchanged to any other rows."""

    feature_names: list[str]
    obs_dim: int
    action_dim: int
    fill_values: list[float] | None = None
    indicator_columns: list[str] = field(default_factory=list)
    target_center: float = 0.0
    target_scale: float = 1.0
    bootstrap_value: float = 0.0
    train_rows: int = 0

    def transform_target(self, y: Float64Array) -> Float64Array:
        """Apply the fitted target scaling."""
        return (y - self.target_center) / self.target_scale

    def inverse_transform_target(self, y: np.ndarray) -> np.ndarray:
        """Undo the target scaling (predictions back in reward units)."""
        import numpy as np

        return np.asarray(y, dtype=np.float64) * self.target_scale + self.target_center

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (saved with models)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FittedStats:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass
class FeatureFrame:
    """What a model trains on.

    Attributes
    ----------
    X
        C-contiguous float32 matrix, one row per kept transition.
    y
        Target as float32 (scaled as ``stats`` says); NaN where unknown if the target was
        not required.
    feature_names
        Column names of ``X``.
    groups
        Episode id of each row: split, cross-validate and hold out by it.
    steps
        Step of each row (with ``groups``, the key to join predictions back).
    tail
        Discount mass of the return-to-go missing because the episode was truncated or
        unfinished (gamma ** steps remaining); 0 where the return is complete.
    stats
        Preprocessing fitted on the training rows.
    spec
        The spec that built this frame.
    """

    X: Float32Array
    y: Float32Array
    feature_names: list[str]
    groups: Int64Array
    steps: Int64Array
    tail: Float32Array
    stats: FittedStats
    spec: FeatureSpec

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def to_polars(self) -> pl.DataFrame:
        """Keys, features and target as one frame (for ``rmlite features --out``)."""
        import polars as pl

        frame = pl.from_numpy(self.X, schema=self.feature_names, orient="row")
        return frame.with_columns(
            pl.Series(S.EPISODE, self.groups),
            pl.Series(S.STEP, self.steps),
            pl.Series("target", self.y),
            pl.Series("tail", self.tail),
        ).select(S.EPISODE, S.STEP, *self.feature_names, "target", "tail")


def feature_names(spec: FeatureSpec, obs_dim: int, action_dim: int) -> list[str]:
    """Names of the input columns a spec builds, in matrix order."""
    names: list[str] = []
    if spec.obs:
        names += [f"obs_{i}" for i in range(obs_dim)]
    if spec.action:
        names += [f"act_{i}" for i in range(action_dim)]
    if spec.next_obs:
        names += [f"next_obs_{i}" for i in range(obs_dim)]
    if spec.delta:
        names += [f"delta_{i}" for i in range(obs_dim)]
    if spec.step:
        names.append("step")
    if spec.time_limit is not None:
        names.append("progress")
    for k in range(1, spec.lags + 1):
        names += [f"obs_lag{k}_{i}" for i in range(obs_dim)]
        names += [f"act_lag{k}_{i}" for i in range(action_dim)]
    return names
