"""Synthetic judge-training data in PandaLM's training format, with a rule a tiny model can learn.

Every response is made of the tiny tokenizer's vocabulary (:mod:`.tiny_models`). The rule: a *good* response
contains at least one word of :data:`GOOD_WORDS` and none of :data:`BAD_WORDS`; a *bad* response the reverse. The
better response is the good one; a tie is two plain responses (neither kind of word). Which side is better is drawn
with probability ``first_rate`` for response 1, so a position-biased training set is one flag away
(``--first-rate 0.9``).

Instructions are distinct per example and train and test never share one.

Command line::

    python -m lm_eval_pandalm.testing.synthetic DIR [--train 800] [--test 200] [--first-rate 0.5]
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from pathlib import Path

from ..data.training_format import TrainingExample, training_record
from ..types import Label, PairItem
from .tiny_models import _ADJECTIVES, _NOUNS, _VERBS

__all__ = ["BAD_WORDS", "GOOD_WORDS", "main", "synthetic_examples", "write_split"]

GOOD_WORDS = ("clear", "useful", "careful", "simple")
"""Words that make a response good."""
BAD_WORDS = ("slow", "cold", "quiet", "ancient")
"""Words that make a response bad."""
_PLAIN = tuple(a for a in _ADJECTIVES if a not in GOOD_WORDS + BAD_WORDS)


def _response(rng: random.Random, kind: str) -> str:
    words = []
    for _ in range(rng.randint(5, 10)):
        words.append(rng.choice(_NOUNS) if rng.random() < 0.6 else rng.choice(_PLAIN))
    marks = {"good": GOOD_WORDS, "bad": BAD_WORDS}.get(kind)
    if marks:
        for _ in range(rng.randint(1, 2)):
            words.insert(rng.randint(0, len(words)), rng.choice(marks))
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def synthetic_examples(
    n: int, *, seed: int = 0, first_rate: float = 0.5, tie_rate: float = 0.1, start: int = 0
) -> list[TrainingExample]:
    """``n`` labelled examples following the module's rule.

    Args:
        n: Number of examples.
        seed: Random seed (same seed, same examples).
        first_rate: Probability that response 1 is the better one, among non-tie examples.
        tie_rate: Share of ties (two plain responses).
        start: Number of the first example; it is part of the instruction, so disjoint ranges give disjoint
            instructions.
    """
    if not 0.0 <= first_rate <= 1.0 or not 0.0 <= tie_rate <= 1.0:
        raise ValueError(f"first_rate and tie_rate must be in [0, 1], got {first_rate} and {tie_rate}")
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        instruction = f"{rng.choice(_VERBS).capitalize()} the {rng.choice(_PLAIN)} {rng.choice(_NOUNS)} number {i}."
        if rng.random() < tie_rate:
            r1, r2, label = _response(rng, "plain"), _response(rng, "plain"), Label.TIE
            reason = "Both responses are plain and neither is better."
            reference = _response(rng, "plain")
        else:
            good, bad = _response(rng, "good"), _response(rng, "bad")
            first = rng.random() < first_rate
            r1, r2 = (good, bad) if first else (bad, good)
            label = Label.FIRST if first else Label.SECOND
            n_good, n_bad = ("1", "2") if first else ("2", "1")
            reason = f"Response {n_good} is clear and useful, while response {n_bad} is slow and cold."
            reference = good
        item = PairItem(instruction=instruction, response1=r1, response2=r2, id=f"synthetic/{i}")
        out.append(TrainingExample(item=item, label=label, reason=reason, reference=reference))
    return out


def write_split(path: str | Path, examples: Sequence[TrainingExample]) -> Path:
    """Write examples as PandaLM training JSON lines."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as handle:
        for ex in examples:
            handle.write(json.dumps(training_record(ex.item, ex.label, ex.reason, ex.reference)) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Write ``DIR/train.jsonl`` and ``DIR/test.jsonl``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m lm_eval_pandalm.testing.synthetic",
        description="Write synthetic PandaLM training data (train.jsonl, test.jsonl) that a tiny judge can learn.",
    )
    parser.add_argument("directory", type=Path, help="output folder")
    parser.add_argument("--train", type=int, default=800, help="training examples")
    parser.add_argument("--test", type=int, default=200, help="test examples")
    parser.add_argument("--first-rate", type=float, default=0.5, help="P(response 1 is better) in the training set")
    parser.add_argument("--test-first-rate", type=float, default=0.5, help="P(response 1 is better) in the test set")
    parser.add_argument("--tie-rate", type=float, default=0.1, help="share of ties")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)
    args.directory.mkdir(parents=True, exist_ok=True)
    train = synthetic_examples(args.train, seed=args.seed, first_rate=args.first_rate, tie_rate=args.tie_rate)
    test = synthetic_examples(
        args.test, seed=args.seed + 1, first_rate=args.test_first_rate, tie_rate=args.tie_rate, start=args.train
    )
    write_split(args.directory / "train.jsonl", train)
    write_split(args.directory / "test.jsonl", test)
    print(f"wrote {len(train)} examples to {args.directory / 'train.jsonl'} and {len(test)} to test.jsonl")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
