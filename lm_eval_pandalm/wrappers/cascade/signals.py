"""Per-item signals a cascade records at each stage, and from which its policy decides whether to go on.

Three kinds (:data:`SIGNALS` lists them all):

* **confidence** — read from the stage's verdicts: ``max_prob``, ``margin``, ``entropy`` (first order), ``entropy_both``
  (of the two orders' averaged probabilities, as SCOPE uses), ``consistent`` (both orders name the same winner) and
  ``stage_agreement`` (share of the cheaper stages' verdicts naming this stage's winner);
* **out-of-domain** — read from the pair itself: ``over_context`` (prompt tokens over the judge's context window),
  ``tfidf_distance`` (1 − the highest TF-IDF cosine similarity of the instruction to a reference set, scikit-learn),
  ``hidden_distance`` (the same with the local judge's final hidden state, for judges that have ``embed``),
  ``has_code``, ``has_math``, ``non_english`` and ``length_ratio`` (longer over shorter response);
* **judge behaviour** — ``picked_longer`` (+1 the stage prefers the longer response, −1 the shorter) and
  ``instruction_overlap_gap`` (word overlap with the instruction of the preferred response minus the other's): judges
  fooled by adversarial pairs tend to prefer the longer, off-instruction answer.

A failed verdict always escalates; that is not a signal but a rule (see :mod:`.policies`). Every value is a float,
a bool or ``None`` (not available: a failed order, a single-order cascade, the first stage's ``stage_agreement``).
Entropies are normalised by ln 3, so every confidence signal lies in [0, 1]; as a policy *score*, a signal whose
higher values mean less confidence (entropy) counts as ``1 − value`` (:func:`score_value`).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...types import Label, Verdict

__all__ = [
    "SIGNALS",
    "SignalSpec",
    "StageView",
    "check_signal_names",
    "score_value",
]

Value = float | bool | None

_LN3 = math.log(3.0)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Detectors read at most this much of each text: enough to tell what a pair is about, and linear time stays small.
_SCAN = 4000
_CODE_MARKERS = (
    *("```", "\ndef ", "def __", "#include", "\nimport ", "function(", "=>", "};", ");", "){", ") {", "</"),
    *("print(", "public static", "SELECT ", "console.log", "++", "!=", "=="),
)
_MATH = re.compile(r"\\frac|\\sqrt|\$[^$\n]{1,80}\$|\d\s*[-+*/^×÷=]\s*\d")
_MATH_WORDS = ("solve", "equation", "integral", "derivative", "calculate", "sum of", "probability", "prime number")
_STOPWORDS = frozenset(
    {
        *("the", "a", "an", "of", "to", "and", "or", "in", "on", "for", "is", "are", "be", "with", "that", "this"),
        *("it", "as", "by", "at", "from", "you", "your", "was", "were", "not", "have", "has"),
    }
)


class StageView:
    """What the signals see of one item at one stage: the pair and the verdicts of every stage reached so far.

    ``orders[k]`` is stage ``k``'s ``(first, second)``: the verdict on the pair as given and the verdict on the
    swapped pair *in the swapped frame* (its ``FIRST`` is the original ``response2``); ``second`` is ``None`` in a
    single-order cascade. ``context`` (``None`` until a signal needs it) holds per-item values computed once and
    shared by every stage.
    """

    __slots__ = ("context", "input", "instruction", "memo", "orders", "response1", "response2")

    def __init__(self, instruction: str, input: str, response1: str, response2: str) -> None:
        self.instruction = instruction
        self.input = input
        self.response1 = response1
        self.response2 = response2
        self.orders: list[tuple[Verdict, Verdict | None]] = []
        self.context: dict[str, Any] | None = None
        self.memo: tuple[int, Any] | None = None


def _probs(view: StageView, stage: int) -> tuple[float, float, float] | None:
    """Stage ``stage``'s probabilities (1, 2, tie) in the pair's frame, averaged over the orders it judged."""
    memo = view.memo  # several signals read the same stage's probabilities: compute them once
    if memo is not None and memo[0] == stage:
        return memo[1]  # type: ignore[no-any-return]
    probs = _average(view, stage)
    view.memo = (stage, probs)
    return probs


def _average(view: StageView, stage: int) -> tuple[float, float, float] | None:
    first, second = view.orders[stage]
    if not first.ok or (second is not None and not second.ok):
        return None
    p1, p2, pt = first.p_first, first.p_second, first.p_tie
    if second is None:
        return p1, p2, pt  # type: ignore[return-value]
    return (p1 + second.p_second) / 2, (p2 + second.p_first) / 2, (pt + second.p_tie) / 2  # type: ignore[operator]


def _winner(probs: tuple[float, float, float] | None) -> Label | None:
    if probs is None:
        return None
    p1, p2, pt = probs
    if p1 == p2 and p1 >= pt:
        return Label.TIE
    return Label.FIRST if p1 >= max(p2, pt) else (Label.SECOND if p2 >= pt else Label.TIE)


def _entropy(probs: Sequence[float]) -> float:
    return -sum(p * math.log(p) for p in probs if p > 0) / _LN3


def _max_prob(view: StageView, stage: int, info: Any) -> Value:
    probs = _probs(view, stage)
    return None if probs is None else max(probs)


def _margin(view: StageView, stage: int, info: Any) -> Value:
    probs = _probs(view, stage)
    if probs is None:
        return None
    top = sorted(probs, reverse=True)
    return top[0] - top[1]


def _entropy_first(view: StageView, stage: int, info: Any) -> Value:
    first = view.orders[stage][0]
    return _entropy((first.p_first, first.p_second, first.p_tie)) if first.ok else None  # type: ignore[arg-type]


def _entropy_both(view: StageView, stage: int, info: Any) -> Value:
    if view.orders[stage][1] is None:
        return None
    probs = _probs(view, stage)
    return None if probs is None else _entropy(probs)


_FLIPPED = {Label.FIRST: Label.SECOND, Label.SECOND: Label.FIRST, Label.TIE: Label.TIE, None: None}


def _consistent(view: StageView, stage: int, info: Any) -> Value:
    first, second = view.orders[stage]
    if second is None or first.winner is None or second.winner is None:  # a failed verdict has no winner
        return None
    return first.winner is _FLIPPED[second.winner]


def _stage_agreement(view: StageView, stage: int, info: Any) -> Value:
    if stage == 0:
        return None
    winner = _winner(_probs(view, stage))
    if winner is None:
        return None
    votes = agree = 0
    for first, second in view.orders[:stage]:
        for verdict, flip in ((first, False), (second, True)):
            if verdict is None or not verdict.ok or verdict.winner is None:
                continue
            votes += 1
            agree += (verdict.winner.flipped() if flip else verdict.winner) is winner
    return agree / votes if votes else None


def _lengths(view: StageView) -> tuple[int, int]:
    return len(view.response1.strip()), len(view.response2.strip())


def _length_ratio(view: StageView, stage: int, info: Any) -> Value:
    a, b = _lengths(view)
    return (max(a, b) + 1) / (min(a, b) + 1)


def _picked_longer(view: StageView, stage: int, info: Any) -> Value:
    winner = _winner(_probs(view, stage))
    if winner is None:
        return None
    a, b = _lengths(view)
    if winner is Label.TIE or a == b:
        return 0.0
    return 1.0 if (winner is Label.FIRST) == (a > b) else -1.0


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text[:_SCAN].lower())) - _STOPWORDS


def _overlap_gap(view: StageView, stage: int, info: Any) -> Value:
    winner = _winner(_probs(view, stage))
    if winner is None:
        return None
    if winner is Label.TIE:
        return 0.0
    if view.context is None:
        view.context = {}
    gaps = view.context.get("overlap")
    if gaps is None:
        task = _words(f"{view.instruction} {view.input}")
        size = max(1, len(task))
        gaps = view.context["overlap"] = (
            len(task & _words(view.response1)) / size - len(task & _words(view.response2)) / size
        )
    return gaps if winner is Label.FIRST else -gaps


def _text(view: StageView) -> str:
    return "\n".join(part[:_SCAN] for part in (view.instruction, view.input, view.response1, view.response2))


def _has_code(view: StageView, stage: int, info: Any) -> Value:
    text = _text(view)
    return any(marker in text for marker in _CODE_MARKERS)


def _has_math(view: StageView, stage: int, info: Any) -> Value:
    task = f"{view.instruction} {view.input}"[:_SCAN].lower()
    return any(word in task for word in _MATH_WORDS) or _MATH.search(_text(view)) is not None


def _non_english(view: StageView, stage: int, info: Any) -> Value:
    text = f"{view.instruction} {view.input}"[:_SCAN]
    if not text.isascii():
        letters = [c for c in text if c.isalpha()]
        if letters and sum(not c.isascii() for c in letters) / len(letters) > 0.2:
            return True
    words = _WORD.findall(text.lower())
    # Latin-script languages other than English: almost none of English's commonest words in a long enough text.
    return len(words) >= 12 and sum(w in _STOPWORDS for w in words) / len(words) < 0.03


def _over_context(view: StageView, stage: int, info: Any) -> Value:
    context = info.context_tokens
    if not context:
        return None
    first = view.orders[stage][0]
    tokens = first.prompt_tokens if first.prompt_tokens is not None else info.estimate_prompt_tokens(view)
    return tokens / context


@dataclass(frozen=True)
class SignalSpec:
    """One signal: how to compute it and how to read it."""

    name: str
    kind: str
    """``confidence``, ``ood`` or ``behaviour``."""
    direction: int
    """+1: higher means more confident; −1: higher means less (as a score: 1 − value); 0: neither (router input)."""
    compute: Callable[[StageView, int, Any], Value] | None
    """``(view, stage index, stage info) -> value``; ``None`` for signals computed in batch by :mod:`.reference`."""
    per_stage: bool
    """Depends on the stage's verdicts (else computed once per item and repeated at each stage)."""
    needs_reference: bool = False
    help: str = ""


SIGNALS: Mapping[str, SignalSpec] = {
    spec.name: spec
    for spec in (
        SignalSpec("max_prob", "confidence", 1, _max_prob, True, help="highest probability, orders averaged"),
        SignalSpec("margin", "confidence", 1, _margin, True, help="highest minus second probability"),
        SignalSpec("entropy", "confidence", -1, _entropy_first, True, help="entropy / ln 3 of the first order"),
        SignalSpec("entropy_both", "confidence", -1, _entropy_both, True, help="entropy / ln 3, orders averaged"),
        SignalSpec("consistent", "confidence", 1, _consistent, True, help="both orders name the same winner"),
        SignalSpec("stage_agreement", "confidence", 1, _stage_agreement, True, help="cheaper stages agreeing"),
        SignalSpec("over_context", "ood", -1, _over_context, True, help="prompt tokens / judge's context window"),
        SignalSpec("tfidf_distance", "ood", -1, None, False, True, help="1 - TF-IDF similarity to the reference set"),
        SignalSpec("hidden_distance", "ood", -1, None, False, True, help="1 - hidden-state similarity to reference"),
        SignalSpec("has_code", "ood", -1, _has_code, False, help="code in the instruction or responses"),
        SignalSpec("has_math", "ood", -1, _has_math, False, help="maths in the instruction or responses"),
        SignalSpec("non_english", "ood", -1, _non_english, False, help="instruction not in English"),
        SignalSpec("length_ratio", "ood", 0, _length_ratio, False, help="longer / shorter response (characters)"),
        SignalSpec("picked_longer", "behaviour", 0, _picked_longer, True, help="+1 prefers the longer response"),
        SignalSpec("instruction_overlap_gap", "behaviour", 0, _overlap_gap, True, help="preferred minus other overlap"),
    )
}
"""Every signal by name."""


def check_signal_names(names: Sequence[str], *, reference: str | None) -> None:
    """Raise ``ValueError`` for an unknown signal (with the closest name) or a reference signal without a reference."""
    for name in names:
        if name not in SIGNALS:
            close = difflib.get_close_matches(name, list(SIGNALS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown signal {name!r}.{hint} Valid signals: {', '.join(SIGNALS)}")
        if SIGNALS[name].needs_reference and reference is None:
            raise ValueError(
                f"signal {name!r} measures the distance to a reference set: give reference: <benchmark or file:PATH>"
            )


def score_value(name: str, value: Value) -> float | None:
    """A signal's value as a confidence score: numbers as they are, booleans as 1/0, ``1 − value`` for signals whose
    higher values mean less confidence (``None`` stays ``None``).

    >>> score_value("consistent", True), score_value("entropy_both", 0.25)
    (1.0, 0.75)
    """
    if value is None:
        return None
    number = float(value)
    return 1.0 - number if SIGNALS[name].direction < 0 else number
