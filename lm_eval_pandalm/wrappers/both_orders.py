"""Judge every pair in both orders, to cancel (and measure) the judge's position bias.

A pairwise judge tends to prefer whichever response it reads first (or second). :class:`BothOrdersJudge` asks its
inner judge about each pair as given, ``(1, 2)``, and swapped, ``(2, 1)``, in one batch; it maps the swapped verdict
back into the original frame and combines the two by a named rule. The per-order verdicts stay available through
:meth:`BothOrdersJudge.judge_with_orders`, which also says whether the two orders agreed.

Swapping an item and flipping its verdict back is an identity, which is what makes the mapping safe
(alpaca_eval-style reversible processor):

    >>> from lm_eval_pandalm.types import PairItem, Verdict
    >>> item = PairItem("Say hi.", "Hi!", "Hello there, friend.")
    >>> item.swapped().swapped() == item and item.swapped().key != item.key
    True
    >>> verdict = Verdict.from_probs("j", 0.7, 0.2, 0.1, generated_winner=Label.FIRST)
    >>> verdict.flipped().winner, verdict.flipped().flipped() == verdict
    (<Label.SECOND: '2'>, True)

Combining a verdict with the mapped-back verdict of the other order:

    >>> second = Verdict.from_probs("j", 0.2, 0.7, 0.1).flipped()  # judged as (2, 1), mapped back to (1, 2)
    >>> combine_orders(verdict, second, rule="average", judge_id="both").winner
    <Label.FIRST: '1'>
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..judge import Judge, check_verdicts
from ..types import Label, PairItem, Verdict

__all__ = ["RULES", "BothOrdersJudge", "OrderedJudgment", "both_orders", "combine_orders"]

logger = logging.getLogger(__name__)

RULES = ("average", "paper")
"""Names of the rules that combine the two orders' verdicts.

``average``: average the two orders' probabilities and take the most probable label (:meth:`Verdict.from_probs`;
exactly equal probabilities for 1 and 2 give ``Tie``).

``paper``: PandaLM's published protocol, defined on labels only: if both orders name the same winner, that winner,
otherwise ``Tie``. The result is a hard verdict (all probability on that label); the averaged probabilities of the
same pair are ``combine_orders(j.first, j.second, rule="average", ...)`` of its :class:`OrderedJudgment`.
"""

_Number = TypeVar("_Number", int, float)


def _check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown both-orders rule {rule!r}; valid rules: {', '.join(RULES)}")
    return rule


def _sum_present(a: _Number | None, b: _Number | None) -> _Number | None:
    """Sum of the values that are known; ``None`` only when neither is."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def combine_orders(first: Verdict, second: Verdict, *, rule: str = "average", judge_id: str) -> Verdict:
    """Combine the verdicts of the two orders of one pair.

    Args:
        first: Verdict on the pair as given, order ``(1, 2)``.
        second: Verdict on the swapped pair, already mapped back into the original frame with
            :meth:`Verdict.flipped`.
        rule: One of :data:`RULES`.
        judge_id: The ``judge_id`` of the combined verdict.

    Returns:
        The combined verdict. If either order failed, it is failed too, in the failing order's state (the first
        order's when both failed), with an error naming the order(s); a failure is never turned into a tie and never
        replaced by the order that worked. Token counts, cost and latency are the sums of the two orders' (``None``
        only where neither knows it). ``raw``, ``reason``, ``reference`` and ``generated_winner`` are the first
        order's, so that the explanation and the verdict written with it stay together. ``source`` is kept when both
        orders share it and is ``None`` otherwise.

    Raises:
        ValueError: ``rule`` is not one of :data:`RULES`.
    """
    _check_rule(rule)
    fields = {
        "raw": first.raw,
        "reason": first.reason,
        "reference": first.reference,
        "prompt_tokens": _sum_present(first.prompt_tokens, second.prompt_tokens),
        "completion_tokens": _sum_present(first.completion_tokens, second.completion_tokens),
        "cost_usd": _sum_present(first.cost_usd, second.cost_usd),
        "latency_s": _sum_present(first.latency_s, second.latency_s),
        "source": first.source if first.source == second.source else None,
    }
    if not first.ok or not second.ok:
        failures = [(name, v) for name, v in (("(1, 2)", first), ("(2, 1)", second)) if not v.ok]
        detail = "; ".join(f"order {name} failed ({v.state.value}): {v.error}" for name, v in failures)
        fields["raw"] = failures[0][1].raw
        return Verdict.failed(judge_id, failures[0][1].state, detail, **fields)
    fields["generated_winner"] = first.generated_winner
    if rule == "average":
        return Verdict.from_probs(
            judge_id,
            first.p_first + second.p_first,  # type: ignore[operator]
            first.p_second + second.p_second,  # type: ignore[operator]
            first.p_tie + second.p_tie,  # type: ignore[operator]
            **fields,
        )
    label = first.winner if first.winner == second.winner else Label.TIE
    return Verdict.hard(judge_id, label, **fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class OrderedJudgment:
    """Both orders' verdicts on one pair, and their combination."""

    first: Verdict
    """Verdict on the pair as given, order ``(1, 2)``."""
    second: Verdict
    """Verdict on the swapped pair, order ``(2, 1)``, mapped back into the original frame (its ``FIRST`` still means
    the original ``response1``)."""
    combined: Verdict
    """The two combined by the judge's rule; what :class:`BothOrdersJudge` returns when called."""

    @property
    def consistent(self) -> bool | None:
        """Whether both orders name the same winner (positional consistency); ``None`` when either order failed."""
        if not self.first.ok or not self.second.ok:
            return None
        return self.first.winner == self.second.winner


class BothOrdersJudge:
    """A judge that asks its inner judge about every pair in both orders and combines the answers.

    Each call makes exactly one call to the inner judge, on the items followed by their swapped copies, so batched
    backends see a single batch of ``2 * len(items)``.

    Args:
        inner: The judge to ask.
        rule: How to combine the two orders; one of :data:`RULES` (default ``"average"``).

    Raises:
        ValueError: ``rule`` is not one of :data:`RULES`.
    """

    order_invariant = True
    """Both rules are symmetric in the two orders: the verdict on a swapped pair is the flip of the verdict on it."""

    def __init__(self, inner: Judge, rule: str = "average") -> None:
        self.inner = inner
        self.rule = _check_rule(rule)
        self.judge_id = f"both-orders[{rule}]({inner.judge_id})"

    @property
    def fingerprint(self) -> str:
        """``both-orders/<rule>/`` followed by the inner judge's fingerprint."""
        return f"both-orders/{self.rule}/{self.inner.fingerprint}"

    def judge_with_orders(self, items: Sequence[PairItem]) -> list[OrderedJudgment]:
        """Judge every item in both orders; one :class:`OrderedJudgment` per item, same order."""
        items = list(items)
        if not items:
            return []
        batch = items + [item.swapped() for item in items]
        verdicts = check_verdicts(self.inner, batch, self.inner(batch))
        n = len(items)
        judgments = []
        for first, swapped in zip(verdicts[:n], verdicts[n:], strict=True):
            second = swapped.flipped()
            combined = combine_orders(first, second, rule=self.rule, judge_id=self.judge_id)
            judgments.append(OrderedJudgment(first=first, second=second, combined=combined))
        if logger.isEnabledFor(logging.DEBUG):
            judged = [j.consistent for j in judgments if j.consistent is not None]
            logger.debug(
                "%s: %d items, %d judged in both orders, %d consistent",
                self.judge_id,
                n,
                len(judged),
                sum(judged),
            )
        return judgments

    def __call__(self, items: Sequence[PairItem]) -> list[Verdict]:
        """Judge every item in both orders; the combined verdicts, one per item, same order."""
        return [judgment.combined for judgment in self.judge_with_orders(items)]

    def __repr__(self) -> str:
        return f"BothOrdersJudge({self.inner!r}, rule={self.rule!r})"


def both_orders(inner: Judge, rule: str = "average") -> BothOrdersJudge:
    """Wrap ``inner`` so that every pair is judged in both orders; see :class:`BothOrdersJudge`."""
    return BothOrdersJudge(inner, rule=rule)
