"""Agreement between a judge's verdicts and human labels.

Pure functions over labels: no judges, no I/O. A failed judgment is passed as ``None``: it is never a correct
answer, it never counts towards any class's precision, and it is reported on its own (``failed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .types import Label

__all__ = ["ClassificationReport", "classification_report", "first_position_rate"]

FAILED = "failed"
"""Column name for failed judgments in a confusion matrix."""


@dataclass(frozen=True)
class ClassificationReport:
    """Judge-versus-human agreement on one set of items."""

    n: int
    """Items evaluated (failed ones included)."""
    correct: int
    """Items whose verdict equals the human label."""
    failed: int
    """Items with no usable verdict."""
    accuracy: float
    """``correct / n``: a failed judgment is not a correct one (as LLMBar counts it)."""
    accuracy_judged: float | None
    """``correct / (n - failed)``: accuracy on the items the judge did answer; ``None`` if it answered none."""
    precision_macro: float
    """Precision averaged over the classes present in the gold labels (0 for a class never predicted)."""
    recall_macro: float
    """Recall averaged over the classes present in the gold labels (failed judgments count against recall)."""
    f1_macro: float
    """Per-class F1 averaged over the classes present in the gold labels."""
    confusion: dict[str, dict[str, int]]
    """``confusion[gold][predicted]`` counts; predicted includes ``"failed"``."""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict of every field."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def classification_report(gold: Sequence[Label], predicted: Sequence[Label | None]) -> ClassificationReport:
    """Accuracy, macro precision/recall/F1 and confusion of ``predicted`` against ``gold``.

    Macro averages run over the classes that occur in ``gold`` (so a tie-free benchmark is not penalised for
    a judge that never says Tie, and a judge is not rewarded for a class no human used), matching how PandaLM's
    README table was computed.

    >>> r = classification_report([Label.FIRST, Label.SECOND], [Label.FIRST, None])
    >>> r.accuracy, r.failed, r.recall_macro
    (0.5, 1, 0.5)
    """
    if len(gold) != len(predicted):
        raise ValueError(f"gold has {len(gold)} labels but predicted has {len(predicted)}")
    if not gold:
        raise ValueError("cannot score an empty set of items")
    columns = [label.value for label in Label] + [FAILED]
    confusion = {label.value: dict.fromkeys(columns, 0) for label in Label}
    for g, p in zip(gold, predicted, strict=True):
        confusion[g.value][p.value if p is not None else FAILED] += 1

    classes = [label.value for label in Label if any(g is label for g in gold)]
    precisions, recalls, f1s = [], [], []
    for cls in classes:
        tp = confusion[cls][cls]
        predicted_as = sum(confusion[row][cls] for row in confusion)
        actual = sum(confusion[cls].values())
        precision = tp / predicted_as if predicted_as else 0.0
        recall = tp / actual
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)

    n = len(gold)
    correct = sum(confusion[label.value][label.value] for label in Label)
    failed = sum(p is None for p in predicted)
    return ClassificationReport(
        n=n,
        correct=correct,
        failed=failed,
        accuracy=correct / n,
        accuracy_judged=correct / (n - failed) if n > failed else None,
        precision_macro=sum(precisions) / len(classes),
        recall_macro=sum(recalls) / len(classes),
        f1_macro=sum(f1s) / len(classes),
        confusion=confusion,
    )


def first_position_rate(presented: Sequence[Label | None]) -> float | None:
    """Share of the judgments that pick a side in which the side picked is the one shown first.

    ``presented`` holds one prediction per presentation of a pair, in the frame the judge saw it (``FIRST`` is the
    response shown first). Ties and failed judgments pick no side and are left out; ``None`` when none picks one.
    Over both orders of every pair, a judge that ignores the order scores exactly 0.5 whatever the labels, and one
    that always picks the first slot scores 1.0, which makes this the position bias on its own scale (positional
    agreement mixes it with plain inconsistency).

    >>> first_position_rate([Label.FIRST, Label.FIRST, Label.SECOND, Label.TIE, None])
    0.6666666666666666
    >>> first_position_rate([Label.TIE, None]) is None
    True
    """
    sides = [p for p in presented if p is Label.FIRST or p is Label.SECOND]
    if not sides:
        return None
    return sum(p is Label.FIRST for p in sides) / len(sides)
