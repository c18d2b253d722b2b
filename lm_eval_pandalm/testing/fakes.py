"""Deterministic stand-in judges, so that wrappers and whole evaluations can be tested offline without a model.

:class:`FakeJudge` satisfies the :class:`~lm_eval_pandalm.judge.Judge` protocol. It answers each item with a *rule*
(any callable ``PairItem -> Verdict``) and records every call it receives, so tests can assert how often the judge
was consulted and on which items. The default rule, :class:`PreferLonger`, prefers the longer response and has a
position-bias knob that makes the two orders of a pair disagree, which is what order-swapping wrappers need to be
tested against.

Example:
    >>> from lm_eval_pandalm.types import PairItem
    >>> judge = FakeJudge()
    >>> judge([PairItem("Greet", "Hi", "Hello there")])[0].winner
    <Label.SECOND: '2'>
    >>> judge.calls, len(judge.items_seen)
    (1, 1)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from ..types import Label, PairItem, Verdict, VerdictState

__all__ = ["FakeJudge", "FakeJudgeConfig", "FakeJudgeError", "Fixed", "PreferLonger", "Rule", "fake_judge_from_config"]

logger = logging.getLogger(__name__)

Rule = Callable[[PairItem], Verdict]
"""How a :class:`FakeJudge` answers one item."""


class FakeJudgeError(RuntimeError):
    """Raised by a :class:`FakeJudge` on the calls it was told to fail (simulates a crash mid-run)."""


@dataclass(frozen=True)
class PreferLonger:
    """Rule that prefers the longer response, with probabilities derived from the lengths.

    The weights are ``(len(response1) + 1) * (1 + position_bias)`` for response 1, ``len(response2) + 1`` for
    response 2 and ``tie_weight`` for a tie, normalised by :meth:`Verdict.from_probs`. Without position bias, two
    responses of equal length give equal probabilities and hence a ``Tie``.

    >>> PreferLonger(position_bias=0.5)(PairItem("Q", "abc", "abc")).winner  # bias favours the response shown first
    <Label.FIRST: '1'>
    """

    position_bias: float = 0.0
    """Extra weight on the response shown first: 0 is none, 0.5 multiplies its weight by 1.5. Must be > -1."""
    tie_weight: float = 1.0
    """Unnormalised weight of a tie; must be >= 0."""

    def __post_init__(self) -> None:
        if not self.position_bias > -1:
            raise ValueError(f"position_bias must be > -1, got {self.position_bias!r}")
        if not self.tie_weight >= 0:
            raise ValueError(f"tie_weight must be >= 0, got {self.tie_weight!r}")

    def __call__(self, item: PairItem) -> Verdict:
        w1 = (len(item.response1) + 1) * (1 + self.position_bias)
        w2 = len(item.response2) + 1
        words = len(" ".join((item.instruction, item.input, item.response1, item.response2)).split())
        return Verdict.from_probs(
            "fake",
            w1,
            w2,
            self.tie_weight,
            raw=f"lengths {len(item.response1)} vs {len(item.response2)}",
            prompt_tokens=words,
            completion_tokens=0,
            latency_s=0.0,
        )


@dataclass(frozen=True)
class Fixed:
    """Rule that gives the same answer to every item: a hard verdict for a :class:`Label`, or a failed verdict for a
    failure :class:`VerdictState`.

    >>> Fixed(VerdictState.ERROR)(PairItem("Q", "a", "b")).state
    <VerdictState.ERROR: 'error'>
    """

    outcome: Label | VerdictState
    """The label every item gets, or the failure state every item ends in."""

    def __post_init__(self) -> None:
        if self.outcome is VerdictState.OK:
            raise ValueError("Fixed(VerdictState.OK) names no winner; pass a Label for usable verdicts")

    def __call__(self, item: PairItem) -> Verdict:
        if isinstance(self.outcome, Label):
            return Verdict.hard("fake", self.outcome)
        return Verdict.failed("fake", self.outcome, f"fake judge always fails with {self.outcome.value}")


def _describe(rule: Rule) -> str:
    # Functions are described by their qualified name, not repr(), whose memory address would change the default
    # fingerprint between processes; rule objects such as PreferLonger have a stable dataclass repr.
    qualname = getattr(rule, "__qualname__", None)
    if qualname is not None:
        return f"{getattr(rule, '__module__', '?')}.{qualname}"
    return repr(rule)


class FakeJudge:
    """A deterministic judge for tests that records every call.

    Args:
        rule: How to answer one item; defaults to :class:`PreferLonger` without position bias. The ``judge_id`` of
            whatever the rule returns is replaced by this judge's, so rules need not know it.
        judge_id: The judge's identity.
        fingerprint: The cache fingerprint; defaults to one derived from ``judge_id`` and the rule, which is stable
            across processes for rule objects and module-level functions (not for lambdas' closures' contents).
        raise_on_calls: 1-based numbers of the calls on which to raise :class:`FakeJudgeError` instead of answering,
            to simulate a crash part-way through a run. The failing call is still recorded.
        order_invariant: Declare the judge order-invariant (see :func:`~lm_eval_pandalm.judge.is_order_invariant`);
            only true of a rule without position bias.

    Attributes:
        calls: How many times the judge has been called.
        batches: The items of each call, in call order.
    """

    def __init__(
        self,
        rule: Rule | None = None,
        judge_id: str = "fake",
        fingerprint: str | None = None,
        raise_on_calls: Iterable[int] = (),
        order_invariant: bool = False,
    ) -> None:
        self.rule: Rule = rule if rule is not None else PreferLonger()
        self.order_invariant = order_invariant
        self.judge_id = judge_id
        self._fingerprint = fingerprint if fingerprint is not None else f"fake/{judge_id}/{_describe(self.rule)}"
        self.raise_on_calls = frozenset(raise_on_calls)
        self.calls = 0
        self.batches: list[list[PairItem]] = []

    @property
    def fingerprint(self) -> str:
        """The cache fingerprint given at construction (or derived from the id and rule)."""
        return self._fingerprint

    @property
    def items_seen(self) -> list[PairItem]:
        """Every item the judge was asked about, across all calls, in order."""
        return [item for batch in self.batches for item in batch]

    def reset(self) -> None:
        """Forget the recorded calls (the call counter restarts, so ``raise_on_calls`` applies afresh)."""
        self.calls = 0
        self.batches = []

    def __call__(self, items: Sequence[PairItem]) -> list[Verdict]:
        """Judge every item with the rule; one verdict per item, same order."""
        batch = list(items)
        self.calls += 1
        self.batches.append(batch)
        logger.debug("fake judge %s: call %d with %d items", self.judge_id, self.calls, len(batch))
        if self.calls in self.raise_on_calls:
            raise FakeJudgeError(f"fake judge {self.judge_id!r} told to fail on call {self.calls}")
        verdicts = []
        for item in batch:
            verdict = self.rule(item)
            if not isinstance(verdict, Verdict):
                raise TypeError(f"FakeJudge rule {_describe(self.rule)} returned {type(verdict).__name__}, not Verdict")
            verdicts.append(replace(verdict, judge_id=self.judge_id))
        return verdicts

    def __repr__(self) -> str:
        return f"FakeJudge(rule={self.rule!r}, judge_id={self.judge_id!r}, fingerprint={self._fingerprint!r})"


@dataclass
class FakeJudgeConfig:
    """A :class:`FakeJudge` named by a YAML judge config (``type: fake``), so whole runs through the command lines
    and lm-eval can be tested, interrupted and resumed without a model.

    Verdicts follow :class:`PreferLonger`. Like a model judge it is cached.
    """

    name: str = field(default="fake", metadata={"help": "Judge id suffix: the judge is 'fake:<name>'."})
    position_bias: float = field(default=0.0, metadata={"help": "PreferLonger's extra weight on response 1."})
    delay_s: float = field(default=0.0, metadata={"help": "Seconds to sleep per item (to interrupt a run midway)."})
    log_path: str | None = field(
        default=None, metadata={"help": "Append each judged item's content key to this file, flushed at once."}
    )
    fail_after: int | None = field(
        default=None, metadata={"help": "Raise FakeJudgeError once this many items have been judged (a crash)."}
    )


class _LoggingFakeJudge(FakeJudge):
    def __init__(self, config: FakeJudgeConfig) -> None:
        rule = PreferLonger(position_bias=config.position_bias)
        super().__init__(rule, judge_id=f"fake:{config.name}")
        self.config = config
        self.judged = 0

    def __call__(self, items: Sequence[PairItem]) -> list[Verdict]:
        import os
        import time

        verdicts = []
        for item in items:
            if self.config.fail_after is not None and self.judged >= self.config.fail_after:
                raise FakeJudgeError(f"fake judge told to fail after {self.config.fail_after} items")
            if self.config.delay_s:
                time.sleep(self.config.delay_s)
            verdicts.extend(super().__call__([item]))
            self.judged += 1
            if self.config.log_path:
                with open(self.config.log_path, "a", encoding="utf-8") as log:
                    log.write(item.key + "\n")
                    log.flush()
                    os.fsync(log.fileno())
        return verdicts


def fake_judge_from_config(config: FakeJudgeConfig) -> FakeJudge:
    """The judge a ``type: fake`` judge config describes."""
    return _LoggingFakeJudge(config)
