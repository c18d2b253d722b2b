"""Meta-evaluation: how well does a judge agree with human labels on a benchmark?

A *protocol* says how a judge is asked and how its verdicts become predictions:

* ``first-order``: each pair judged once, in the benchmark's order.
* ``pandalm-legacy``: as ``first-order``, but an unparsed verdict counts as Tie. This is how the table in PandaLM's
  README was computed (its GPT-3.5 "garbage" answers fell into the tie class); use it only to reproduce that table.
* ``both-orders``: each pair judged in both orders, probabilities averaged; also reports the accuracy averaged over
  every (item, order) judgment and the positional agreement between the two orders (LLMBar's ``correct_average`` and
  ``equal``), and the first-position preference rate (how often the judge picks the response it was shown first).
* ``paper``: both orders, PandaLM's published rule: agreeing orders give their winner, conflicting orders give Tie.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .judge import Judge
from .metrics import ClassificationReport, classification_report, first_position_rate
from .types import Label, PairItem, Verdict, VerdictState

__all__ = ["PROTOCOLS", "MetaResult", "evaluate_judge"]

PROTOCOLS = ("first-order", "pandalm-legacy", "both-orders", "paper")


@dataclass(frozen=True)
class MetaResult:
    """A judge's agreement with human labels under one protocol."""

    judge: str
    """The judge's id."""
    protocol: str
    """One of :data:`PROTOCOLS`."""
    report: ClassificationReport
    """Agreement of the protocol's final predictions with the gold labels."""
    failed_by_state: dict[str, int]
    """Failed final predictions, by verdict state."""
    accuracy_order_avg: float | None = None
    """Both-order protocols: correctness averaged over every (item, order) judgment, failed ones counting as not
    correct (LLMBar's ``correct_average``)."""
    positional_agreement: float | None = None
    """Both-order protocols: share of items whose two orders agree; a failed order does not agree (LLMBar's
    ``equal``)."""
    accuracy_first_order: float | None = None
    """Both-order protocols: accuracy of the (1, 2) order alone."""
    llmbar_equal: float | None = None
    """Both-order protocols: LLMBar's own ``equal``: share of items whose two orders give the same answer, where two
    failed orders count as the same answer (unlike :attr:`positional_agreement`, where a failed order never
    agrees)."""
    first_position_rate: float | None = None
    """Both-order protocols: of the 2n presentations (each item in each order) whose verdict picks a side, the share
    that picks the response shown first (ties and failed ones left out; ``None`` when none picks a side). 0.5 for a
    judge that ignores the order, 1.0 for one that always picks the first slot."""
    outcomes: tuple[tuple[str, str | None], ...] = ()
    """``(state, error)`` of every final verdict, for :func:`~lm_eval_pandalm.failures.failure_summary`."""

    def to_dict(self) -> dict[str, object]:
        """Flat JSON-ready dict: the report's fields at top level plus the protocol's own figures."""
        out: dict[str, object] = {"judge": self.judge, "protocol": self.protocol}
        out.update(self.report.to_dict())
        out["failed_by_state"] = self.failed_by_state
        if self.protocol in ("both-orders", "paper"):
            out["accuracy_order_avg"] = self.accuracy_order_avg
            out["positional_agreement"] = self.positional_agreement
            out["accuracy_first_order"] = self.accuracy_first_order
            out["llmbar_equal"] = self.llmbar_equal
            out["first_position_rate"] = self.first_position_rate
        return out


def _prediction(verdict: Verdict, *, unparsed_is_tie: bool = False) -> Label | None:
    if verdict.ok:
        return verdict.winner
    if unparsed_is_tie and verdict.state is VerdictState.UNPARSED:
        return Label.TIE
    return None


def _failed_by_state(verdicts: Sequence[Verdict], predictions: Sequence[Label | None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for verdict, prediction in zip(verdicts, predictions, strict=True):
        if prediction is None:
            counts[verdict.state.value] = counts.get(verdict.state.value, 0) + 1
    return counts


def evaluate_judge(judge: Judge, items: Sequence[PairItem], gold: Sequence[Label], protocol: str) -> MetaResult:
    """Judge ``items`` under ``protocol`` and compare with ``gold``.

    Args:
        judge: Any judge; for both-order protocols it must be able to judge swapped pairs.
        items: The pairs, in the benchmark's order.
        gold: Human label per item.
        protocol: One of :data:`PROTOCOLS`.

    Returns:
        The agreement figures.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid protocols: {', '.join(PROTOCOLS)}")
    if len(items) != len(gold):
        raise ValueError(f"{len(items)} items but {len(gold)} gold labels")

    if protocol in ("first-order", "pandalm-legacy"):
        verdicts = judge(items)
        predictions = [_prediction(v, unparsed_is_tie=protocol == "pandalm-legacy") for v in verdicts]
        return MetaResult(
            judge=judge.judge_id,
            protocol=protocol,
            report=classification_report(gold, predictions),
            failed_by_state=_failed_by_state(verdicts, predictions),
            outcomes=tuple((v.state.value, v.error) for v in verdicts),
        )

    # Imported here so that the first-order path does not need the wrappers package.
    from .wrappers.both_orders import BothOrdersJudge

    rule = "paper" if protocol == "paper" else "average"
    judgments = BothOrdersJudge(judge, rule=rule).judge_with_orders(items)
    combined = [j.combined for j in judgments]
    predictions = [_prediction(v) for v in combined]
    first = [_prediction(j.first) for j in judgments]
    second = [_prediction(j.second) for j in judgments]
    n = len(items)
    first_correct = sum(p == g for p, g in zip(first, gold, strict=True))
    second_correct = sum(p == g for p, g in zip(second, gold, strict=True))
    return MetaResult(
        judge=judge.judge_id,
        protocol=protocol,
        report=classification_report(gold, predictions),
        failed_by_state=_failed_by_state(combined, predictions),
        accuracy_order_avg=(first_correct + second_correct) / (2 * n),
        positional_agreement=sum(bool(j.consistent) for j in judgments) / n,
        accuracy_first_order=first_correct / n,
        llmbar_equal=sum(a == b for a, b in zip(first, second, strict=True)) / n,
        # The swapped order's verdicts are mapped back to the original frame; flipped again, they are what the judge
        # saw, where FIRST is the slot shown first.
        first_position_rate=first_position_rate(first + [p.flipped() if p is not None else None for p in second]),
        outcomes=tuple((v.state.value, v.error) for v in combined),
    )
