"""The length-controlled win rate as lm-eval metrics: ``pandalm_lc_win_rate`` and its stderr.

Per document, :func:`pandalm_lc_win_rate` reads the judge filter's JSON summary (the prediction) and the baseline
(the reference: ``doc_to_target: baseline``) and passes on ``(p_candidate + p_tie / 2, len(candidate) -
len(baseline))``, or NaNs when the judgment failed. The aggregation :func:`lc_win_rate` fits the GLM of
:mod:`lm_eval_pandalm.ranking.length_control` over the judged documents and returns the win rate at zero length
difference.

lm-eval 0.4.13 computes a stderr only for its own aggregations (``mean`` in closed form, a listed few by bootstrap);
for any other it writes ``N/A``. So the stderr is a metric of its own, ``pandalm_lc_win_rate_stderr`` (the
delta-method stderr of the same fit), listed right after ``pandalm_lc_win_rate`` in the task YAML: lm-eval writes
each metric's ``<name>_stderr`` key after its value, so this metric's value lands in the very key
``pandalm_lc_win_rate_stderr,<filter>`` that ``make_table`` shows as the LC win rate's stderr. ::

    - metric: !function lm_eval_pandalm.harness.length_metric.pandalm_lc_win_rate
      aggregation: !function lm_eval_pandalm.harness.length_metric.lc_win_rate
      higher_is_better: true
    - metric: !function lm_eval_pandalm.harness.length_metric.pandalm_lc_win_rate_stderr
      aggregation: !function lm_eval_pandalm.harness.length_metric.lc_win_rate_stderr
      higher_is_better: false
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .judging import JudgmentSummary

__all__ = ["lc_win_rate", "lc_win_rate_stderr", "pandalm_lc_win_rate", "pandalm_lc_win_rate_stderr"]


def _point(name: str, references: Sequence[Any], predictions: Sequence[Any]) -> tuple[float, float]:
    if len(predictions) != 1 or len(references) != 1:
        raise ValueError(f"{name} scores one document at a time, got {len(predictions)} predictions")
    prediction, baseline = predictions[0], references[0]
    if isinstance(prediction, (list, tuple)) and len(prediction) == 1:
        prediction = prediction[0]
    if not isinstance(prediction, str) or not isinstance(baseline, str):
        raise ValueError(
            f"{name}: expected the pandalm judge filter's JSON string as prediction and the baseline text as "
            f"reference (doc_to_target: baseline), got {prediction!r:.100} and {baseline!r:.100}"
        )
    summary = JudgmentSummary.from_json(prediction)
    if summary.failed or summary.p_candidate is None:
        return (math.nan, math.nan)
    return (summary.p_candidate + (summary.p_tie or 0.0) / 2, float(len(summary.response) - len(baseline)))


def pandalm_lc_win_rate(references: Sequence[Any], predictions: Sequence[Any], **kwargs: Any) -> tuple[float, float]:
    """``(judge's preference for the candidate, length difference)`` of one document; NaNs when failed."""
    return _point("pandalm_lc_win_rate", references, predictions)


def pandalm_lc_win_rate_stderr(
    references: Sequence[Any], predictions: Sequence[Any], **kwargs: Any
) -> tuple[float, float]:
    """The same per-document pair, aggregated into the stderr (see the module docstring)."""
    return _point("pandalm_lc_win_rate_stderr", references, predictions)


def _fit(items: Sequence[Sequence[float]]) -> Any:
    from ..ranking.length_control import length_controlled_win_rate

    judged = [(float(y), float(d)) for y, d in items if not math.isnan(y)]
    if not judged:
        return None
    return length_controlled_win_rate([min(1.0, max(0.0, y)) for y, _ in judged], [d for _, d in judged])


def lc_win_rate(items: Sequence[Sequence[float]]) -> float:
    """The length-controlled win rate of the judged documents; NaN when none was judged."""
    fit = _fit(items)
    return math.nan if fit is None else fit.lc_win_rate


def lc_win_rate_stderr(items: Sequence[Sequence[float]]) -> float:
    """Delta-method stderr of :func:`lc_win_rate`; NaN when no document was judged."""
    fit = _fit(items)
    return math.nan if fit is None else fit.lc_stderr
