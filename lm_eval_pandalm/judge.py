"""The judge protocol: a batch of pairs in, one verdict per pair out.

Every judge in the package (local model, replay, API) and every wrapper around a judge (both orders, cache, later
escalation) satisfies :class:`Judge`, so wrappers compose freely.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from .types import PairItem, Verdict

__all__ = ["Judge", "check_verdicts", "is_order_invariant"]


@runtime_checkable
class Judge(Protocol):
    """Something that judges pairwise items, batch first.

    Implementations must return exactly one :class:`Verdict` per item, in order, and report failures as verdict
    states rather than raising for a single bad item.

    A judge may also have a boolean ``order_invariant`` attribute: ``True`` declares that its verdict on a swapped
    pair is always the flip of its verdict on the pair (a both-orders combination, human labels). Wrappers may then
    reuse one order's verdict for the other; without the declaration a judge is taken to be order-sensitive, as
    every single-pass model judge is (see :func:`is_order_invariant`).

    A judge that pays per item (an API judge) may also have ``judge_incrementally(items, on_verdict)``: the same as
    calling it, but it calls ``on_verdict(index, verdict)`` as each verdict arrives, so that the judgment cache can
    store every paid answer at once rather than at the end of a chunk.
    """

    judge_id: str
    """Human-readable identity, e.g. ``pandalm:WeOpenML/PandaLM-7B-v1`` or ``replay:GPT-4``."""

    @property
    def fingerprint(self) -> str:
        """Everything that determines the judge's output (model and revision or weight hash, prompt template hash,
        decoding settings), as a string. Equal fingerprints must mean interchangeable verdicts: the judgment cache
        keys on it."""
        ...

    def __call__(self, items: Sequence[PairItem]) -> list[Verdict]:
        """Judge every item; one verdict per item, same order."""
        ...


def check_verdicts(judge: Judge, items: Sequence[PairItem], verdicts: Sequence[Verdict]) -> list[Verdict]:
    """Raise if a judge broke the one-verdict-per-item contract; wrappers call this on what they receive."""
    if len(verdicts) != len(items):
        raise RuntimeError(f"judge {judge.judge_id!r} returned {len(verdicts)} verdicts for {len(items)} items")
    return list(verdicts)


def is_order_invariant(judge: object) -> bool:
    """Whether ``judge`` declares that its verdict on a swapped pair is the flip of its verdict on the pair.

    Only an explicit ``order_invariant = True`` counts: a judge that says nothing is order-sensitive.

    >>> class Plain: ...
    >>> is_order_invariant(Plain())
    False
    """
    return getattr(judge, "order_invariant", False) is True
