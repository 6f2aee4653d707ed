"""What an ingest and a check report back: :class:`IngestReport` and :class:`CheckReport`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class IngestReport:
    """What one ingest did. Counts are transitions."""

    dataset: str
    sources: list[str]
    ingest_id: int
    rows_read: int
    rows_added: int
    rows_duplicate: int
    rows_conflicting: int
    rows_rejected: int
    episodes: int
    obs_dim: int
    action_dim: int
    next_obs_derived: bool
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return asdict(self)

    def __str__(self) -> str:
        parts = [
            f"{self.dataset}: {self.rows_added:,} transitions added",
            f"{self.rows_duplicate:,} already stored",
        ]
        if self.rows_conflicting:
            parts.append(f"{self.rows_conflicting:,} conflicting (quarantined)")
        if self.rows_rejected:
            parts.append(f"{self.rows_rejected:,} rejected (see the 'rejected' table)")
        return ", ".join(parts) + f" from {len(self.sources)} source(s) in {self.seconds:.2f} s"


@dataclass
class CheckReport:
    """Findings of :meth:`LogStore.check`: numbering, episode ends, values."""

    dataset: str
    episodes: dict[str, Any]
    values: dict[str, Any]
    next_obs: dict[str, Any]

    @property
    def problems(self) -> list[str]:
        """Human-readable list of what looks wrong; empty when the log is clean."""
        e, v, n = self.episodes, self.values, self.next_obs
        out = []
        if e["episodes_with_step_gaps"]:
            out.append(
                f"{e['episodes_with_step_gaps']} episodes have gaps in step numbering "
                f"({e['missing_steps']} steps missing; e.g. episodes {e['example_gap_episodes']})"
            )
        if e["episodes_not_starting_at_0"]:
            out.append(f"{e['episodes_not_starting_at_0']} episodes do not start at step 0")
        if e["episodes_unfinished"]:
            out.append(
                f"{e['episodes_unfinished']} episodes end with neither terminated nor truncated "
                f"(e.g. {e['example_unfinished_episodes']})"
            )
        if e["episodes_done_mid_episode"]:
            out.append(
                f"{e['episodes_done_mid_episode']} episodes are terminated/truncated before "
                f"their last step"
            )
        if n["next_obs_mismatch"]:
            out.append(
                f"{n['next_obs_mismatch']} transitions have next_obs different from the next "
                f"step's obs (e.g. [episode, step] {n['example_mismatches']}): an off-by-one?"
            )
        for col in (
            "reward_nan",
            "reward_inf",
            "obs_nan",
            "obs_inf",
            "action_nan",
            "action_inf",
            "next_obs_nan",
            "next_obs_inf",
        ):
            if v[col]:
                out.append(f"{v[col]} {col.replace('_', ' ')} values")
        if v["reward_null"]:
            out.append(f"{v['reward_null']} transitions have no reward")
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary, with the problem list."""
        return {
            "dataset": self.dataset,
            "episodes": self.episodes,
            "values": self.values,
            "next_obs": self.next_obs,
            "problems": self.problems,
        }
