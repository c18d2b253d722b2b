"""Value types shared by every judge: pairwise items, verdict labels and verdicts.

This module is the bottom of the dependency graph: it imports nothing from the rest of the package and nothing
heavier than the standard library.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Label", "PairItem", "Verdict", "VerdictState", "content_key"]

# Probabilities from a model are float32-ish; a sum this close to 1 is 1.
_PROB_TOLERANCE = 1e-4


class Label(str, enum.Enum):
    """The three verdicts a pairwise judge can give, spelled as PandaLM writes them."""

    FIRST = "1"
    SECOND = "2"
    TIE = "Tie"

    def flipped(self) -> Label:
        """The same judgment seen with the two responses swapped.

        >>> Label.FIRST.flipped(), Label.TIE.flipped()
        (<Label.SECOND: '2'>, <Label.TIE: 'Tie'>)
        """
        if self is Label.FIRST:
            return Label.SECOND
        if self is Label.SECOND:
            return Label.FIRST
        return Label.TIE

    @classmethod
    def parse(cls, text: str) -> Label | None:
        """Read a verdict from the start of a judge's output; ``None`` when it names none.

        Accepts ``1``, ``2`` and ``Tie`` (case-insensitive for ``Tie``), optionally followed by other text on
        later lines, which is how PandaLM writes its output.

        >>> Label.parse("Tie\\n\\n### Reason: ..."), Label.parse("garbage")
        (<Label.TIE: 'Tie'>, None)
        """
        head = text.strip().split("\n", 1)[0].strip()
        if head in ("1", "2"):
            return cls(head)
        if head.lower() == "tie":
            return cls.TIE
        return None


class VerdictState(str, enum.Enum):
    """Whether a judgment produced a usable verdict, and if not, why not.

    A verdict in any state other than ``OK`` has no winner and no probabilities. Nothing in this package counts it
    as a tie or a loss unless a protocol says so by name (``pandalm-legacy`` counts ``UNPARSED`` as a tie, because
    that is how PandaLM's own table was computed).
    """

    OK = "ok"
    UNPARSED = "unparsed"
    """The judge answered, but its answer names no verdict."""
    OVER_CONTEXT = "over_context"
    """The prompt does not fit the judge's context window and truncation was not asked for."""
    ERROR = "error"
    """The judge could not be run on this item (exception, API failure, ...)."""
    OVER_BUDGET = "over_budget"
    """Not judged: a spending cap was reached before this item (never cached: a larger budget judges it)."""


def _winner_fits(winner: Label, p_first: float, p_second: float, p_tie: float) -> bool:
    """Whether ``winner`` is a most probable label (Tie also when 1 and 2 are equally likely and at least as likely
    as a tie, as :meth:`Verdict.from_probs` decides)."""
    top = max(p_first, p_second, p_tie)
    prob = {Label.FIRST: p_first, Label.SECOND: p_second, Label.TIE: p_tie}[winner]
    if prob >= top - _PROB_TOLERANCE:
        return True
    return winner is Label.TIE and math.isclose(p_first, p_second, abs_tol=_PROB_TOLERANCE)


def content_key(instruction: str, input: str, response1: str, response2: str) -> str:
    """Stable, order-sensitive key of a pair's content (hex sha256).

    The key is what caches and recorded-verdict replay match on, so it must not depend on ids, metadata or
    Python's hash seed. Swapping the responses changes the key.
    """
    payload = json.dumps([instruction, input, response1, response2], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PairItem:
    """One pairwise comparison: an instruction, an optional input, and two responses to compare."""

    instruction: str
    """The task given to both responders."""
    response1: str
    """The response shown first (``Response 1`` in PandaLM's prompt)."""
    response2: str
    """The response shown second."""
    input: str = ""
    """Optional further context for the instruction; empty when there is none."""
    reference: str | None = None
    """Optional reference answer (not part of PandaLM's prompt; other judges may use it)."""
    id: str = ""
    """Caller's identifier, carried through untouched. Empty means "use the content key"."""
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """Anything else the caller wants carried along (source row, models compared, gold label...)."""

    def __post_init__(self) -> None:
        for name in ("instruction", "input", "response1", "response2"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"PairItem.{name} must be a string, got {type(value).__name__}: {value!r}")
        if not self.id:
            object.__setattr__(self, "id", self.key)

    @property
    def key(self) -> str:
        """Order-sensitive content key; see :func:`content_key`."""
        return content_key(self.instruction, self.input, self.response1, self.response2)

    def swapped(self) -> PairItem:
        """The same pair with the two responses in the other order (same id and metadata)."""
        return replace(self, response1=self.response2, response2=self.response1)


@dataclass(frozen=True)
class Verdict:
    """A judge's answer on one :class:`PairItem`.

    Build usable verdicts with :meth:`from_probs` or :meth:`hard`, and failed ones with :meth:`failed`; the
    constructor checks that the fields agree with the state.
    """

    judge_id: str
    """Which judge produced this (e.g. ``pandalm:WeOpenML/PandaLM-7B-v1``)."""
    state: VerdictState = VerdictState.OK
    """``OK``, or what went wrong."""
    p_first: float | None = None
    """Probability that response 1 is better; ``None`` unless ``state`` is ``OK``."""
    p_second: float | None = None
    """Probability that response 2 is better."""
    p_tie: float | None = None
    """Probability of a tie."""
    winner: Label | None = None
    """The most probable label; ``None`` unless ``state`` is ``OK``."""
    raw: str | None = None
    """The judge's raw text output, when it produced one."""
    reason: str | None = None
    """The judge's explanation (PandaLM's ``### Reason:``), when asked for."""
    reference: str | None = None
    """The judge's reference answer (PandaLM's ``### Reference:``), when asked for."""
    generated_winner: Label | None = None
    """The verdict the judge *wrote* when it generated an explanation; may differ from the scored ``winner``."""
    error: str | None = None
    """Human-readable detail for a failed state."""
    prompt_tokens: int | None = None
    """Tokens the judge read."""
    completion_tokens: int | None = None
    """Tokens the judge wrote (0 for likelihood scoring)."""
    cost_usd: float | None = None
    """Money spent on this judgment, when known (API judges)."""
    latency_s: float | None = None
    """Wall time attributed to this judgment."""
    source: str | None = None
    """Where the verdict came from when not freshly computed (``cache``, ``cache-flipped``, ``replay``)."""

    def __post_init__(self) -> None:
        probs = (self.p_first, self.p_second, self.p_tie)
        if self.state is VerdictState.OK:
            values = [p for p in probs if p is not None]
            if len(values) != 3 or self.winner is None:
                raise ValueError("a Verdict in state OK needs p_first, p_second, p_tie and winner")
            if not math.isclose(sum(values), 1.0, abs_tol=_PROB_TOLERANCE) or min(values) < 0:
                raise ValueError(f"verdict probabilities must be >= 0 and sum to 1, got {probs}")
            if not _winner_fits(self.winner, *values):
                raise ValueError(
                    f"verdict winner {self.winner.value!r} contradicts its probabilities (first, second, tie) = "
                    f"{probs}: the winner must be the most probable label (Tie when 1 and 2 are equally likely)"
                )
        elif any(p is not None for p in probs) or self.winner is not None:
            raise ValueError(f"a Verdict in state {self.state.value} has no winner and no probabilities")

    # -- constructors -------------------------------------------------------------------------------------------

    @classmethod
    def from_probs(cls, judge_id: str, p_first: float, p_second: float, p_tie: float, **fields: Any) -> Verdict:
        """A usable verdict from (possibly unnormalised, non-negative) probabilities.

        The winner is the most probable label. When responses 1 and 2 are exactly equally likely and more likely
        than a tie, the judge cannot separate them and the winner is ``Tie``.

        >>> Verdict.from_probs("j", 0.5, 0.5, 0.0).winner
        <Label.TIE: 'Tie'>
        """
        total = p_first + p_second + p_tie
        if not total > 0:
            raise ValueError(f"probabilities must have a positive sum, got {(p_first, p_second, p_tie)}")
        p1, p2, pt = p_first / total, p_second / total, p_tie / total
        if p1 == p2 and p1 >= pt:
            winner = Label.TIE
        else:
            winner = max(((p1, Label.FIRST), (p2, Label.SECOND), (pt, Label.TIE)), key=lambda pair: pair[0])[1]
        return cls(judge_id=judge_id, p_first=p1, p_second=p2, p_tie=pt, winner=winner, **fields)

    @classmethod
    def hard(cls, judge_id: str, label: Label, **fields: Any) -> Verdict:
        """A verdict that puts all probability on one label (recorded verdicts, API judges without logprobs)."""
        probs = {lab: 1.0 if lab is label else 0.0 for lab in Label}
        return cls(
            judge_id=judge_id,
            p_first=probs[Label.FIRST],
            p_second=probs[Label.SECOND],
            p_tie=probs[Label.TIE],
            winner=label,
            **fields,
        )

    @classmethod
    def failed(cls, judge_id: str, state: VerdictState, error: str, **fields: Any) -> Verdict:
        """A verdict that could not be obtained; ``state`` says why and ``error`` gives the detail."""
        if state is VerdictState.OK:
            raise ValueError("Verdict.failed needs a failure state, not OK")
        return cls(judge_id=judge_id, state=state, error=error, **fields)

    # -- views ----------------------------------------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        """True when the verdict is usable (has a winner and probabilities)."""
        return self.state is VerdictState.OK

    @property
    def confidence(self) -> float | None:
        """Probability of the winning label; ``None`` for a failed verdict."""
        if not self.ok:
            return None
        return max(self.p_first, self.p_second, self.p_tie)  # type: ignore[type-var]

    @property
    def explain_mismatch(self) -> bool:
        """True when the judge wrote a different verdict in its explanation than the one it scored highest."""
        return self.generated_winner is not None and self.winner is not None and self.generated_winner != self.winner

    def prob(self, label: Label) -> float:
        """Probability of ``label``; raises for a failed verdict."""
        if not self.ok:
            raise ValueError(f"verdict in state {self.state.value} has no probabilities")
        return {Label.FIRST: self.p_first, Label.SECOND: self.p_second, Label.TIE: self.p_tie}[label]  # type: ignore[return-value]

    def flipped(self) -> Verdict:
        """The same verdict expressed for the swapped pair (probabilities and labels of 1 and 2 exchanged)."""
        return replace(
            self,
            p_first=self.p_second,
            p_second=self.p_first,
            winner=self.winner.flipped() if self.winner else None,
            generated_winner=self.generated_winner.flipped() if self.generated_winner else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; :meth:`from_dict` reads it back."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = value.value if isinstance(value, enum.Enum) else value
        out["confidence"] = self.confidence
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """Inverse of :meth:`to_dict` (derived keys such as ``confidence`` are ignored)."""
        fields_ = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields_["state"] = VerdictState(fields_.get("state", "ok"))
        for name in ("winner", "generated_winner"):
            if fields_.get(name) is not None:
                fields_[name] = Label(fields_[name])
        return cls(**fields_)
