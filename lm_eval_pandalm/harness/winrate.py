"""The ``pandalm_winrate`` metric family: per-document numbers read from the judge filter's output.

Each metric has lm-eval's metric signature (``references``, ``predictions``, one element each) and reads the
prediction, the JSON of a :class:`~lm_eval_pandalm.harness.judging.JudgmentSummary` written by
:class:`~lm_eval_pandalm.harness.judge_filter.PandaLMJudgeFilter`. Use them with ``aggregation: nanmean``: a failed
judgment gives NaN for the rates (it is neither a tie nor a loss) and ``nanmean`` averages over the judged documents
only; lm-eval bootstraps the stderr of ``nanmean``, so every rate is reported with one. In a task YAML::

    metric_list:
      - metric: !function lm_eval_pandalm.harness.winrate.pandalm_win_rate
        aggregation: nanmean
        higher_is_better: true

lm-eval names a metric given as a function by its ``__name__``, so the results carry ``pandalm_win_rate,<filter>``
and ``pandalm_win_rate_stderr,<filter>``.

=======================  ========================================================================================
metric                   per document
=======================  ========================================================================================
``pandalm_win_rate``     1 win, 0.5 tie, 0 loss; NaN when the judgment failed
``pandalm_win``          1 if the candidate won, else 0; NaN when failed
``pandalm_tie``          1 if tie, else 0; NaN when failed
``pandalm_loss``         1 if the baseline won, else 0; NaN when failed
``pandalm_failed``       1 if the judgment failed (unparsed, over the judge's context, error), else 0; never NaN
``pandalm_consistency``  1 if both orders named the same winner, else 0; NaN for ``first-order`` or a failed order
=======================  ========================================================================================
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from .judging import JudgmentSummary, summary_metrics

__all__ = [
    "AGGREGATION",
    "HIGHER_IS_BETTER",
    "METRICS",
    "pandalm_consistency",
    "pandalm_failed",
    "pandalm_loss",
    "pandalm_tie",
    "pandalm_win",
    "pandalm_win_rate",
]

AGGREGATION = "nanmean"
"""The lm-eval aggregation every metric of the family is meant for."""


@functools.lru_cache(maxsize=8192)
def _metrics_of(prediction: str) -> dict[str, float]:
    # Six metrics read the same string per document: parse it once.
    return summary_metrics(JudgmentSummary.from_json(prediction))


def _value(name: str, metric: str, predictions: Sequence[Any]) -> float:
    # ValueError, never TypeError: lm-eval retries a metric that raises TypeError with another calling convention,
    # which would hide the real problem.
    if len(predictions) != 1:
        raise ValueError(f"{name} scores one document at a time, got {len(predictions)} predictions")
    prediction = predictions[0]
    if isinstance(prediction, (list, tuple)) and len(prediction) == 1:
        prediction = prediction[0]  # the judge filter's output without a take_first after it
    if not isinstance(prediction, str):
        raise ValueError(
            f"{name}: expected the JSON string written by the pandalm judge filter, got {prediction!r:.200}"
        )
    try:
        return _metrics_of(prediction)[metric]
    except ValueError as exc:
        raise ValueError(
            f"{name} reads the output of the pandalm judge filter "
            f"(lm_eval_pandalm.harness.judge_filter.PandaLMJudgeFilter), but got something else: {exc}. Add the "
            "filter to the task's filter_list before these metrics."
        ) from None


def pandalm_win_rate(references: Sequence[Any], predictions: Sequence[Any], **kwargs: Any) -> float:
    """1 for a win, 0.5 for a tie, 0 for a loss; NaN when the judgment failed."""
    return _value("pandalm_win_rate", "win_rate", predictions)


def pandalm_win(references: Sequence[Any], predictions: Sequence[Any], **kwargs: Any) -> float:
    """1 if the candidate won, 0 otherwise; NaN when the judgment failed."""
    return _value("pandalm_win", "win", predictions)


def pandalm_tie(references: Sequence[Any], predictions: Sequence[Any], **kwargs: Any) -> float:
    """1 for a tie, 0 otherwise; NaN when the judgment failed."""
    return _value("pandalm_tie", "tie", predictions)


def pandalm_loss(references: Sequence[Any], predictions: Sequence[Any], **kwargs: Any) -> float:
    """1 if the baseline won, 0 otherwise; NaN when the judgment failed."""
    return _value("pandalm_loss", "loss", predictions)


def pandalm_failed(references: Sequence[Any], predictions: Sequence[Any], **kwargs: Any) -> float:
    """1 if the judgment failed, 0 otherwise (never NaN)."""
    return _value("pandalm_failed", "failed", predictions)


def pandalm_consistency(references: Sequence[Any], predictions: Sequence[Any], **kwargs: Any) -> float:
    """1 if both orders named the same winner, 0 if not; NaN for ``first-order`` or when an order failed."""
    return _value("pandalm_consistency", "consistency", predictions)


METRICS: dict[str, Callable[..., float]] = {
    fn.__name__: fn
    for fn in (pandalm_win_rate, pandalm_win, pandalm_tie, pandalm_loss, pandalm_failed, pandalm_consistency)
}
"""Metric name → metric function, for registration with lm-eval (see :mod:`.registration`)."""

HIGHER_IS_BETTER: dict[str, bool] = {
    "pandalm_win_rate": True,
    "pandalm_win": True,
    # A tie is better than a loss and worse than a win; lm-eval needs a direction, and more ties is no improvement.
    "pandalm_tie": False,
    "pandalm_loss": False,
    "pandalm_failed": False,
    "pandalm_consistency": True,
}
"""Metric name → whether a higher value is better."""
