"""Per-document metrics of what judging cost: escalation, API calls and dollars (cascade judges, API judges).

Same calling convention and aggregation as :mod:`.winrate` (``aggregation: nanmean``, so lm-eval reports each with a
bootstrapped stderr); each reads the judge filter's :class:`~lm_eval_pandalm.harness.judging.JudgmentSummary`.

=======================  ========================================================================================
metric                   per document
=======================  ========================================================================================
``pandalm_escalated``    1 if a cascade sent the pair to its last stage, else 0; NaN for a judge that is no cascade
``pandalm_api_calls``    paid judgments the pair took (both orders, every stage); NaN when not known
``pandalm_cost_usd``     dollars the pair's judgments cost (estimated for replayed stages); NaN when not known
=======================  ========================================================================================
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

from .judging import JudgmentSummary

__all__ = ["HIGHER_IS_BETTER", "METRICS", "pandalm_api_calls", "pandalm_cost_usd", "pandalm_escalated"]


@functools.lru_cache(maxsize=8192)
def _summary(prediction: str) -> JudgmentSummary:
    return JudgmentSummary.from_json(prediction)


def _value(name: str, field: str, predictions: Sequence[Any]) -> float:
    # ValueError, never TypeError: lm-eval retries a metric that raises TypeError with another calling convention.
    if len(predictions) != 1:
        raise ValueError(f"{name} scores one document at a time, got {len(predictions)} predictions")
    prediction = predictions[0]
    if isinstance(prediction, (list, tuple)) and len(prediction) == 1:
        prediction = prediction[0]
    if not isinstance(prediction, str):
        raise ValueError(
            f"{name}: expected the JSON string written by the pandalm judge filter, got {prediction!r:.200}"
        )
    try:
        value = getattr(_summary(prediction), field)
    except ValueError as exc:
        raise ValueError(
            f"{name} reads the output of the pandalm judge filter, but got something else: {exc}. Add the filter "
            "(lm_eval_pandalm.harness.judge_filter.PandaLMJudgeFilter) to the task's filter_list before these metrics."
        ) from None
    return math.nan if value is None else float(value)


def pandalm_escalated(references: Sequence[Any], predictions: Sequence[Any], **kwargs: Any) -> float:
    """1 if the cascade escalated the pair to its last stage, 0 if a cheaper stage decided; NaN for other judges."""
    return _value("pandalm_escalated", "escalated", predictions)


def pandalm_api_calls(references: Sequence[Any], predictions: Sequence[Any], **kwargs: Any) -> float:
    """Paid judgments the pair took; NaN when the judge does not say."""
    return _value("pandalm_api_calls", "api_calls", predictions)


def pandalm_cost_usd(references: Sequence[Any], predictions: Sequence[Any], **kwargs: Any) -> float:
    """Dollars the pair's judgments cost; NaN when the judge does not say."""
    return _value("pandalm_cost_usd", "cost_usd", predictions)


METRICS: dict[str, Callable[..., float]] = {
    fn.__name__: fn for fn in (pandalm_escalated, pandalm_api_calls, pandalm_cost_usd)
}
"""Metric name → metric function, for registration with lm-eval."""

HIGHER_IS_BETTER: dict[str, bool] = {name: False for name in METRICS}
"""Less escalation, fewer calls and fewer dollars are better."""
