"""Policies: per item and stage, keep the stage's verdict or go on to the next stage.

Every policy ranks the items of a stage by a confidence *score* (:func:`scores_for`: a signal read as a confidence,
or a fitted router's probability that the stage's verdict is right) and decides from it:

* ``threshold`` / ``router`` / ``calibrated``: keep where ``score >= thresholds[stage]`` (a ``null`` threshold keeps
  nothing); ``calibrated`` thresholds come from :mod:`.calibration` with an (α, δ) guarantee;
* ``budget``: escalate the least confident first, up to ``fraction`` of the batch or ``max_usd`` of the next stage's
  estimated cost per call.

A failed verdict escalates whatever the policy says, and an item without a score escalates too: neither has a
verdict the policy could vouch for. The hard budget (:class:`~.config.BudgetConfig`) is applied afterwards by the
cascade, on top of any policy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .config import PolicyConfig
from .signals import score_value

__all__ = ["Reason", "decide", "reason_text", "scores_for"]

Reason = str | tuple[str, float, bool, float]
"""Why a unit was kept or escalated: text, or ``(score name, score, kept, threshold)``, which :func:`reason_text`
spells out (formatting is left until a record is read: the cascade decides for every pair of every call)."""


def reason_text(reason: Reason) -> str:
    """A :data:`Reason` in words.

    >>> reason_text(("consistent", 0.0, False, 1.0))
    'consistent 0 < 1'
    """
    if isinstance(reason, str):
        return reason
    name, score, kept, threshold = reason
    return f"{name} {score:.4g} {'>=' if kept else '<'} {threshold:.4g}"


def scores_for(policy: PolicyConfig, stage: int, values: Sequence[Mapping[str, Any]]) -> list[float | None]:
    """The policy's confidence score of each item at ``stage``, from the item's signal values there."""
    if policy.score == "router":
        router = policy.routers[stage]
        return [router.predict(v) for v in values]
    name = policy.score
    return [score_value(name, v.get(name)) for v in values]


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"


def decide(
    policy: PolicyConfig,
    stage: int,
    scores: Sequence[float | None],
    failed: Sequence[bool],
    next_costs: Sequence[float],
) -> list[tuple[bool, Reason]]:
    """Whether each item escalates from ``stage``, and why.

    Args:
        policy: The policy.
        stage: Index of the (non-final) stage deciding.
        scores: Each item's score at this stage (:func:`scores_for`).
        failed: Whether each item's verdict at this stage failed (it then escalates).
        next_costs: Estimated dollars of taking each item to the next stage (for ``budget`` with ``max_usd``).

    Returns:
        ``(escalate, reason)`` per item.
    """
    out: list[tuple[bool, Reason] | None] = [None] * len(scores)
    candidates = []
    for i, (score, fail) in enumerate(zip(scores, failed, strict=True)):
        if fail:
            out[i] = (True, "verdict failed")
        elif score is None:
            out[i] = (True, f"no {policy.score} score")
        else:
            candidates.append(i)
    if policy.type == "budget":
        _decide_budget(policy, scores, next_costs, candidates, out, already=len(scores) - len(candidates))
    else:
        threshold = policy.threshold(stage)
        name = policy.score
        for i in candidates:
            if threshold is None:
                out[i] = (True, f"{name} {_fmt(scores[i])}: the policy keeps nothing at this stage")
            else:
                score = scores[i]
                kept = score >= threshold  # type: ignore[operator]
                out[i] = (not kept, (name, score, kept, threshold))  # type: ignore[assignment]
    return [entry if entry is not None else (True, "undecided") for entry in out]


def _decide_budget(
    policy: PolicyConfig,
    scores: Sequence[float | None],
    next_costs: Sequence[float],
    candidates: list[int],
    out: list[tuple[bool, Reason] | None],
    already: int,
) -> None:
    """Escalate the least confident candidates first, within the policy's fraction and dollar caps."""
    n = len(scores)
    limit = n if policy.fraction is None else math.floor(policy.fraction * n + 1e-9)
    slots = max(0, limit - already)
    dollars = math.inf if policy.max_usd is None else policy.max_usd
    dollars -= sum(next_costs[i] for i, entry in enumerate(out) if entry is not None)
    order = sorted(candidates, key=lambda i: (scores[i], i))
    for rank, i in enumerate(order):
        if slots > 0 and next_costs[i] <= dollars:
            slots -= 1
            dollars -= next_costs[i]
            out[i] = (True, f"{policy.score} {_fmt(scores[i])}: among the least confident (rank {rank + 1} of {n})")
        else:
            why = "fraction" if slots <= 0 else "dollar cap"
            out[i] = (False, f"{policy.score} {_fmt(scores[i])}: kept, the policy's {why} is used up")
