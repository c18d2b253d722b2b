"""What a cascade remembers: per-pair :class:`Decision` records and cumulative :class:`CascadeStats`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...types import Verdict
from .stages import Usage

__all__ = ["CascadeStats", "Decision", "StageStep", "winner_in_frame"]


@dataclass(frozen=True)
class StageStep:
    """What happened to one unit at one stage."""

    stage: str
    """The stage's name."""
    outcome: str
    """``kept`` (this stage decided), ``escalated``, ``failed`` (escalated because a verdict failed), ``budget``
    (would have escalated; the hard budget stopped it) or ``final`` (the last stage)."""
    reason: str
    """Why, in words (e.g. ``consistent 1 >= 1``)."""
    score: float | None
    """The policy's score at this stage (``None`` at the last stage or when no score exists)."""
    signals: dict[str, Any]
    """Every recorded signal's value at this stage."""
    winners: tuple[str | None, ...]
    """The stage's winner per order judged, in the frame of the item asked about (``None`` for a failed order)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "stage": self.stage,
            "outcome": self.outcome,
            "reason": self.reason,
            "score": self.score,
            "signals": self.signals,
            "winners": list(self.winners),
        }


@dataclass(frozen=True)
class Decision:
    """Why one unit (a pair, in both orders) got the verdict it got."""

    stage: str
    """The deciding stage's name (for an ``over_budget`` failure: the stage the budget did not allow)."""
    stage_index: int
    escalated: bool
    """The unit reached the last stage."""
    reason: str
    """One line: each stage's reason in turn, e.g. ``local: consistent 0 < 1 -> gpt-4: last stage``."""
    not_escalated_budget: bool
    """The policy asked to escalate but the hard budget did not allow it."""
    over_budget: bool
    """The unit's verdict is an ``over_budget`` failure."""
    steps: tuple[StageStep, ...]
    usage: Usage
    """What the unit's judgments cost, over every stage and order."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (used by ``--log_samples`` and ``pandalm export-escalations``)."""
        return {
            "stage": self.stage,
            "escalated": self.escalated,
            "reason": self.reason,
            "not_escalated_budget": self.not_escalated_budget,
            "over_budget": self.over_budget,
            **{k: v for k, v in self.usage.to_dict().items() if k != "judgments"},
            "steps": [step.to_dict() for step in self.steps],
        }


@dataclass
class CascadeStats:
    """Counts over every call of a cascade (per unit; a unit is a pair judged in both orders)."""

    stage_names: list[str]
    units: int = 0
    reached: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)
    not_escalated_budget: int = 0
    over_budget: int = 0

    def __post_init__(self) -> None:
        n = len(self.stage_names)
        self.reached = self.reached or [0] * n
        self.kept = self.kept or [0] * n
        self.failed = self.failed or [0] * n
        self.usage = self.usage or [Usage() for _ in range(n)]


def winner_in_frame(verdict: Verdict | None, flip: bool) -> str | None:
    """A verdict's winner as text, flipped into the other frame when ``flip``; ``None`` for a failed verdict."""
    if verdict is None or not verdict.ok or verdict.winner is None:
        return None
    return (verdict.winner.flipped() if flip else verdict.winner).value
