"""A cascade's stages: a judge each, and what each judgment costs in calls, tokens and dollars.

A judgment's cost is read from the verdict when the judge reported it (an API judge's ``prompt_tokens``,
``completion_tokens`` and ``cost_usd``). Recorded verdicts (replay) carry none, so their tokens are *estimated* with
:func:`~lm_eval_pandalm.pricing.estimate_tokens` over the text the judge would have read (PandaLM's prompt around the
pair, plus the stage's ``prompt_overhead_tokens``) and wrote (the recorded completion, else ``completion_tokens``),
and priced with the stage's price; every figure computed from an estimate is marked so.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from ...judge import Judge
from ...pricing import Price
from ...types import PairItem, Verdict
from .config import StageConfig

__all__ = ["Stage", "Usage", "prompt_chars"]


@functools.cache
def _template_chars() -> tuple[int, int]:
    """Characters of PandaLM's prompt around the pair: (without input, with input)."""
    from ...prompt import build_prompt

    return len(build_prompt(PairItem("", "", ""))), len(build_prompt(PairItem("", "", "", input="x"))) - 1


def prompt_chars(instruction: str, input: str, response1: str, response2: str) -> int:
    """Length of PandaLM's prompt for a pair, from the lengths of its parts (no template rendering)."""
    without, with_input = _template_chars()
    base = with_input if input else without
    return base + len(instruction) + len(input) + len(response1.strip()) + len(response2.strip())


@dataclass
class Usage:
    """What one or more judgments cost."""

    judgments: int = 0
    """Verdicts the stage gave (one per order judged)."""
    api_calls: int = 0
    """Judgments of paid stages (a verdict served from the judgment cache still counts: it was paid once)."""
    cached: int = 0
    """Of the API calls, how many were served from the judgment cache (not paid again in this run)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    estimated: bool = False
    """Some token count or cost is an estimate (no count was reported)."""

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        """Add ``other`` into this one."""
        self.judgments += other.judgments
        self.api_calls += other.api_calls
        self.cached += other.cached
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd
        self.estimated = self.estimated or other.estimated

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "judgments": self.judgments,
            "api_calls": self.api_calls,
            "cached": self.cached,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens": self.tokens,
            "cost_usd": round(self.cost_usd, 8),
            "estimated": self.estimated,
        }


def _unwrap(judge: Any) -> Any:
    """The judge inside the cache wrapper (for attributes such as ``max_length`` and ``embed``)."""
    return getattr(judge, "inner", judge)


class Stage:
    """One stage at run time: its judge, price and how its judgments are accounted.

    Args:
        name: The stage's name in reports.
        judge: The stage's judge (usually built by :func:`~lm_eval_pandalm.judges.make_judge`, hence cached).
        config: The stage's settings (price, token estimates, context window).
    """

    def __init__(self, name: str, judge: Judge, config: StageConfig) -> None:
        self.name = name
        self.judge = judge
        self.config = config
        self.price: Price | None = config.resolved_price()
        self.paid = config.paid if config.paid is not None else self.price is not None
        inner = _unwrap(judge)
        context = config.context_tokens or getattr(inner, "max_length", None)
        self.context_tokens: int | None = int(context) if context else None
        self.embedder = inner if callable(getattr(inner, "embed", None)) else None

    def __repr__(self) -> str:
        return f"Stage({self.name!r}, {self.judge.judge_id!r}, paid={self.paid})"

    def estimate_prompt_tokens(self, view: Any) -> int:
        """Estimated prompt tokens for a pair (any object with instruction, input, response1, response2)."""
        chars = prompt_chars(view.instruction, view.input, view.response1, view.response2)
        return math.ceil(chars / 4) + self.config.prompt_overhead_tokens

    def estimate(self, item: PairItem) -> tuple[int, int, float]:
        """Estimated (prompt tokens, completion tokens, dollars) of one judgment of ``item``, before it is made."""
        prompt = self.estimate_prompt_tokens(item)
        completion = self.config.completion_tokens
        cost = self._cost(prompt, completion)
        return prompt, completion, cost

    def _cost(self, prompt: int, completion: int) -> float:
        if self.price is None:
            return 0.0
        return (prompt * self.price.input_per_mtok + completion * self.price.output_per_mtok) / 1_000_000

    def account(self, item: Any, verdict: Verdict, *totals: Usage) -> float:
        """Add what the judgment ``verdict`` of ``item`` cost into every one of ``totals``; returns its dollars.

        An unpaid stage's judgment counts, with the tokens its verdict reports (none are estimated for it): this is
        the per-item bookkeeping of every cascade call, so it avoids building a :class:`Usage` per judgment.
        """
        if not self.paid:
            prompt, completion = verdict.prompt_tokens or 0, verdict.completion_tokens or 0
            for total in totals:
                total.judgments += 1
                total.prompt_tokens += prompt
                total.completion_tokens += completion
            return 0.0
        prompt, completion, cost, estimated = self._counts(item, verdict)
        cached = verdict.source in ("cache", "cache-flipped")
        for total in totals:
            total.judgments += 1
            total.api_calls += 1
            total.cached += cached
            total.prompt_tokens += prompt
            total.completion_tokens += completion
            total.cost_usd += cost
            total.estimated = total.estimated or estimated
        return cost

    def _counts(self, item: Any, verdict: Verdict) -> tuple[int, int, float, bool]:
        """(prompt tokens, completion tokens, dollars, whether any is estimated) of one judgment."""
        estimated = False
        prompt = verdict.prompt_tokens
        if prompt is None:
            prompt, estimated = self.estimate_prompt_tokens(item), True
        completion = verdict.completion_tokens
        if completion is None:
            text = verdict.raw
            completion = math.ceil(len(text) / 4) or 1 if text else self.config.completion_tokens
            estimated = True
        if verdict.cost_usd is not None:
            return prompt, completion, verdict.cost_usd, estimated
        return prompt, completion, self._cost(prompt, completion), estimated or self.price is not None

    def usage(self, item: Any, verdict: Verdict) -> Usage:
        """What the judgment ``verdict`` of ``item`` cost."""
        total = Usage()
        self.account(item, verdict, total)
        return total
