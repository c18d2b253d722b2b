"""Options that ``pandalm meta`` and ``pandalm judge`` share for cascades and paid judges (not a subcommand).

``--dry-run`` estimates calls, tokens and dollars and judges nothing; ``--plot FILE.png`` (meta) draws the
reliability diagram and, for a cascade, the reliability of its policy score and its accuracy-versus-spend curve. The
run figures of a cascade (``escalated_fraction``, ``api_calls``, ``tokens``, ``cost_usd``, per-stage counts, the
guarantee) join the ``--json`` object through :func:`extra_figures`.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..judge import Judge
from ..types import Label, PairItem, Verdict

__all__ = ["Recorder", "add_cascade_options", "dry_run_report", "extra_figures", "write_plot"]

logger = logging.getLogger(__name__)


def add_cascade_options(parser: argparse.ArgumentParser, *, plot: bool = False) -> None:
    """``--dry-run`` (and ``--plot FILE.png`` when ``plot``)."""
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="estimate the judgments, API calls, tokens and dollars the run would need, then stop (judges nothing)",
    )
    if plot:
        parser.add_argument(
            "--plot",
            metavar="FILE.png",
            help="write a reliability diagram (and for a cascade its score reliability and accuracy-vs-spend curve)",
        )


def dry_run_report(judge: Judge, items: Sequence[PairItem], *, both_orders: bool) -> None:
    """Print the dry-run estimate as one JSON object."""
    from ..wrappers.cascade.report import dry_run

    print(json.dumps(dry_run(judge, items, both_orders=both_orders), allow_nan=False))


def extra_figures(judge: Judge, items: Sequence[PairItem], gold: Sequence[Label] | None = None) -> dict[str, Any]:
    """A cascade's run figures for ``--json`` (``{}`` for other judges)."""
    from ..wrappers.cascade.report import cascade_figures

    return cascade_figures(judge, items, gold)


class Recorder:
    """A judge that passes everything to ``inner`` and keeps what it answered (for plots)."""

    def __init__(self, inner: Judge) -> None:
        self.inner = inner
        self.judge_id = inner.judge_id
        self.order_invariant = getattr(inner, "order_invariant", False)
        self.seen: list[tuple[PairItem, Verdict]] = []

    @property
    def fingerprint(self) -> str:
        """The inner judge's."""
        return self.inner.fingerprint

    def __call__(self, items: Sequence[PairItem]) -> list[Verdict]:
        """The inner judge's verdicts, recorded."""
        verdicts = self.inner(items)
        self.seen.extend(zip(items, verdicts, strict=True))
        return verdicts


def write_plot(
    path: str | Path,
    recorder: Recorder,
    items: Sequence[PairItem],
    gold: Sequence[Label],
    *,
    benchmark: str,
    accuracy_order_avg: float | None,
) -> None:
    """Draw the judge's plots into ``path`` (PNG)."""
    from .. import plots
    from ..wrappers.cascade.report import is_cascade

    truth: dict[tuple[str, str, str, str], Label] = {}
    for item, label in zip(items, gold, strict=True):
        truth[(item.instruction, item.input, item.response1, item.response2)] = label
        truth[(item.instruction, item.input, item.response2, item.response1)] = label.flipped()
    confidence, correct = [], []
    for item, verdict in recorder.seen:
        expected = truth.get((item.instruction, item.input, item.response1, item.response2))
        if expected is None or not verdict.ok:
            continue
        confidence.append(float(verdict.confidence))  # type: ignore[arg-type]
        correct.append(verdict.winner is expected)
    panels: list[Any] = [plots.reliability_panel(confidence, correct, title=f"{recorder.judge_id} verdicts")]
    judge = recorder.inner
    if is_cascade(judge):
        panels.extend(_cascade_panels(judge, items, gold, benchmark, accuracy_order_avg))
    plots.save(path, panels, title=f"{benchmark}")


def _cascade_panels(
    judge: Any, items: Sequence[PairItem], gold: Sequence[Label], benchmark: str, accuracy_order_avg: float | None
) -> list[Any]:
    from .. import plots
    from ..wrappers.cascade.calibration import collect_traces, sweep
    from ..wrappers.cascade.report import cascade_figures

    panels: list[Any] = []
    cascade = judge if hasattr(judge, "stages") else judge.inner
    scores, agree = [], []
    for item, label in zip(items, gold, strict=True):
        decision = cascade.decision_for(item)
        if decision is None or not decision.steps or decision.steps[0].score is None:
            continue
        step = decision.steps[0]
        scores.append(step.score)
        agree.append(all(w == label.value for w in step.winners))
    if scores:
        title = f"{cascade.stages[0].name}: {cascade.policy.score} score vs agreement"
        panels.append(plots.reliability_panel(scores, agree, title=title, xlabel="score"))
    free = all(not stage.paid or stage.judge.judge_id.startswith("replay:") for stage in cascade.stages)
    if not free:
        logger.warning(
            "accuracy-vs-spend curve skipped: it needs every stage's verdict on every pair, and %s has paid stages "
            "that are not replayed",
            cascade.judge_id,
        )
        return panels
    traces = collect_traces(cascade, benchmark, list(items), list(gold))
    points = sweep([traces], cascade.policy, [i / 20 for i in range(21)])
    figures = cascade_figures(cascade)
    operating = None
    if accuracy_order_avg is not None and figures.get("escalated_fraction") is not None:
        operating = (figures["cost_usd"], accuracy_order_avg)
    panels.append(plots.spend_panel(points, operating=operating, title=f"{cascade.judge_id}: accuracy vs spend"))
    return panels
