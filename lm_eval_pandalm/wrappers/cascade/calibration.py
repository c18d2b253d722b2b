"""Calibrating a cascade on human-labelled data: a learned router and Trust-or-Escalate thresholds.

**Traces.** Every stage judges every calibration pair in both orders (through the stages' judges, so through the
judgment cache: replayed stages cost nothing, paid ones are paid once), and the signals are computed at every stage
exactly as the live cascade computes them. A unit *agrees* at a stage when every order's verdict equals the human
label: the conservative, pair-level event the guarantee is about.

**Router.** Per non-final stage, a logistic regression (scikit-learn) over the stage's signals predicts whether the
stage agrees; its coefficients are written into the config as plain numbers (:class:`~.config.RouterModel`).

**Thresholds** (Trust or Escalate, Jung et al., ICLR 2025). For a stage and a score, the thresholds ``λ`` are tested
from the highest score down (fixed-sequence testing): the null hypothesis "disagreement among the kept units
(score ≥ λ) exceeds α" is rejected when the exact binomial tail ``P(Bin(n, α) ≤ errors) ≤ δ`` (scipy); testing stops at
the first ``λ`` not rejected, and the lowest rejected ``λ`` is kept. Then, with probability at least ``1 − δ`` over
the calibration data, the kept units' disagreement is at most α on data from the same distribution. Thresholds that
keep too few units for the test to have power (:func:`min_testable`) are skipped; which ones those are depends on
the scores only, never on the labels, so the sequence stays fixed given the scores. Stages are calibrated in turn,
each on the units the earlier stages escalate. The guarantee holds *on data like the calibration data*;
leave-one-benchmark-out figures (:func:`leave_one_out`) show what happens on a benchmark the cascade was not
calibrated on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...types import Label, PairItem
from .build import with_policy
from .config import PolicyConfig, RouterModel
from .judge import CascadeJudge
from .policies import scores_for
from .reference import require

__all__ = [
    "CalibrationSet",
    "Trace",
    "calibrate",
    "collect_traces",
    "fit_router",
    "fixed_sequence_threshold",
    "leave_one_out",
    "sweep",
]

logger = logging.getLogger(__name__)


@dataclass
class Trace:
    """One calibration unit seen by every stage."""

    values: list[dict[str, Any]]
    """Signal values per stage."""
    agree: list[bool]
    """Per stage: every order's verdict equals the human label."""
    correct: list[float]
    """Per stage: share of the orders whose verdict equals the human label (LLMBar's order-averaged accuracy)."""
    failed: list[bool]
    """Per stage: some order's verdict failed."""
    cost: list[float]
    """Per stage: dollars of the unit's judgments (0 for unpaid stages)."""


@dataclass
class CalibrationSet:
    """The traces of one labelled benchmark."""

    name: str
    items: list[PairItem]
    gold: list[Label]
    traces: list[Trace] = field(default_factory=list)


def collect_traces(
    cascade: CascadeJudge, name: str, items: Sequence[PairItem], gold: Sequence[Label]
) -> CalibrationSet:
    """Judge every item with every stage (both orders) and record signals, agreement and cost per stage."""
    if len(items) != len(gold):
        raise ValueError(f"{name}: {len(items)} items but {len(gold)} gold labels")
    everything = PolicyConfig(type="threshold", score="consistent", thresholds=[None] * (len(cascade.stages) - 1))
    exhaustive = with_policy(cascade, everything, budget=False)
    exhaustive(list(items))
    data = CalibrationSet(name, list(items), list(gold))
    for item, label in zip(items, gold, strict=True):
        unit = exhaustive._records[(item.instruction, item.input, item.response1, item.response2)]
        trace = Trace([], [], [], [], [])
        for k, (first, second) in enumerate(unit.orders):
            stage = cascade.stages[k]
            winners = [first.winner if first.ok else None]
            if second is not None:
                winners.append(second.winner.flipped() if second.ok and second.winner else None)
            trace.values.append(unit.steps[k][0])
            trace.agree.append(all(w is label for w in winners))
            trace.correct.append(sum(w is label for w in winners) / len(winners))
            trace.failed.append(any(w is None for w in winners))
            cost = stage.account(unit.item, first)
            if second is not None and unit.swapped is not None:
                cost += stage.account(unit.swapped, second)
            trace.cost.append(cost)
        data.traces.append(trace)
    return data


def _feature_matrix(traces: Sequence[Trace], stage: int, features: Sequence[str]) -> list[list[float | None]]:
    rows = []
    for trace in traces:
        values = trace.values[stage]
        rows.append([None if values.get(f) is None else float(values[f]) for f in features])
    return rows


def usable_features(traces: Sequence[Trace], stage: int, candidates: Sequence[str]) -> list[str]:
    """The candidate signals that have a value for some unit at ``stage`` and are not constant."""
    out = []
    for name in candidates:
        seen = {float(t.values[stage][name]) for t in traces if t.values[stage].get(name) is not None}
        if len(seen) > 1:
            out.append(name)
    return out


def fit_router(traces: Sequence[Trace], stage: int, features: Sequence[str], *, c: float = 1.0) -> RouterModel:
    """A logistic regression predicting, from the signals at ``stage``, whether the stage agrees with humans.

    Missing values are replaced by the feature's mean; features are standardised. When every unit agrees (or
    none does) the router is the constant rate.
    """
    np = require("numpy")
    linear = require("sklearn.linear_model")
    if not features:
        raise ValueError(f"no usable signal to fit a router on at stage {stage} (all missing or constant)")
    rows = _feature_matrix(traces, stage, features)
    x = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
    mean = np.nanmean(x, axis=0)
    mean = np.where(np.isnan(mean), 0.0, mean)
    x = np.where(np.isnan(x), mean, x)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = (x - mean) / scale
    y = np.array([t.agree[stage] for t in traces], dtype=int)
    if y.min() == y.max():
        rate = min(max(float(y.mean()), 1e-6), 1 - 1e-6)
        coef, intercept = [0.0] * len(features), math.log(rate / (1 - rate))
    else:
        model = linear.LogisticRegression(C=c, max_iter=2000).fit(z, y)
        coef, intercept = [float(v) for v in model.coef_[0]], float(model.intercept_[0])
    return RouterModel(
        features=list(features),
        coef=[round(v, 6) for v in coef],
        intercept=round(intercept, 6),
        mean=[round(float(v), 6) for v in mean],
        scale=[round(float(v), 6) for v in scale],
    )


def fixed_sequence_threshold(
    scores: Sequence[float | None], agree: Sequence[bool], alpha: float, delta: float
) -> tuple[float | None, dict[str, Any]]:
    """The lowest threshold whose kept units pass the exact binomial test, tested from the highest down.

    Returns:
        ``(threshold, info)``; the threshold is ``None`` when no threshold passes (the stage keeps nothing), and
        ``info`` has the kept count, the errors among them and the binomial p-value of the chosen threshold.
    """
    stats = require("scipy.stats")
    np = require("numpy")
    if not 0 < alpha < 1 or not 0 < delta < 1:
        raise ValueError(f"alpha and delta must be strictly between 0 and 1, got {alpha} and {delta}")
    scored = sorted(((s, a) for s, a in zip(scores, agree, strict=True) if s is not None), key=lambda p: -p[0])
    min_kept = min_testable(alpha, delta)
    info: dict[str, Any] = {"kept": 0, "errors": 0, "p_value": None, "min_testable": min_kept, "first_test": None}
    if not scored:
        return None, info
    values = np.array([s for s, _ in scored], dtype=float)
    errors = np.cumsum([not a for _, a in scored])
    # The candidate thresholds are the distinct scores; threshold values[i] keeps the units up to the last tie of it.
    last = np.flatnonzero(np.append(values[1:] != values[:-1], True))
    kept = last + 1
    testable = kept >= min_kept
    last, kept = last[testable], kept[testable]
    if not len(kept):
        return None, info
    errs = errors[last]
    p_values = stats.binom.cdf(errs, kept, alpha)
    first = {"threshold": round(float(values[last[0]]), 6), "kept": int(kept[0]), "errors": int(errs[0])}
    info["first_test"] = {**first, "p_value": round(float(p_values[0]), 6)}
    failing = np.flatnonzero(p_values > delta)
    passed = int(failing[0]) if len(failing) else len(p_values)  # the sequence stops at the first failure
    if passed == 0:
        return None, info
    j = passed - 1
    info.update(kept=int(kept[j]), errors=int(errs[j]), p_value=round(float(p_values[j]), 6))
    return float(values[last[j]]), info


def min_testable(alpha: float, delta: float) -> int:
    """The fewest kept units worth a test: the smallest ``n`` at which a disagreement rate of ``alpha / 2`` passes.

    Testing from the very top (a handful of units) would spend the one failure the sequence allows on hypotheses
    that almost never pass; starting where the test has power is still a fixed sequence, as it depends on ``n``
    (the scores) only.

    >>> min_testable(0.1, 0.1), min_testable(0.2, 0.1)
    (38, 18)
    """
    stats = require("scipy.stats")
    n = 1
    while stats.binom.cdf(math.floor(n * alpha / 2), n, alpha) > delta:
        n += 1
    return n


def calibrate(
    cascade: CascadeJudge,
    sets: Sequence[CalibrationSet],
    *,
    alpha: float,
    delta: float,
    score: str = "router",
    features: Sequence[str] | None = None,
) -> PolicyConfig:
    """Fit a calibrated policy (routers if ``score == 'router'``, and thresholds) on the traces of ``sets``."""
    traces = [t for s in sets for t in s.traces]
    if not traces:
        raise ValueError("no calibration data")
    n_stages = len(cascade.stages)
    candidates = list(features) if features is not None else list(cascade.signal_names)
    routers: list[dict[str, Any]] = []
    thresholds: list[float | None] = []
    details = []
    reach = [1.0]
    active = traces
    for k in range(n_stages - 1):
        if score == "router":
            usable = usable_features(active, k, candidates) if active else []
            model = fit_router(active, k, usable) if active and usable else _constant_router(candidates[:1])
            routers.append(model.to_mapping())
            policy_k = PolicyConfig(type="router", score="router", router=[model.to_mapping()] * (n_stages - 1))
        else:
            policy_k = PolicyConfig(type="threshold", score=score)
        scores = scores_for(policy_k, k, [t.values[k] for t in active])
        # A failed verdict always escalates: such units are never kept, so they are not in the test.
        eligible = [(s, t.agree[k]) for s, t in zip(scores, active, strict=True) if not t.failed[k]]
        threshold, info = fixed_sequence_threshold([s for s, _ in eligible], [a for _, a in eligible], alpha, delta)
        # Not rounded: the threshold is a calibration unit's exact score, so the live cascade keeps the same units.
        thresholds.append(threshold)
        nxt = [
            t
            for s, t in zip(scores, active, strict=True)
            if t.failed[k] or s is None or threshold is None or s < threshold
        ]
        info["stage"] = cascade.stages[k].name
        info["units"] = len(active)
        info["escalated"] = len(nxt)
        details.append(info)
        reach.append(len(nxt) / len(traces))
        active = nxt
    calibration = {
        "benchmarks": [s.name for s in sets],
        "units": len(traces),
        "reach": [round(r, 6) for r in reach],
        "stages": details,
    }
    return PolicyConfig(
        type="calibrated",
        score=score,
        thresholds=thresholds,
        router=routers or None,
        alpha=alpha,
        delta=delta,
        calibration=calibration,
    )


def _constant_router(features: Sequence[str]) -> RouterModel:
    return RouterModel(features=list(features) or ["consistent"], coef=[0.0], intercept=0.0, mean=[0.0], scale=[1.0])


def leave_one_out(
    cascade: CascadeJudge,
    sets: Sequence[CalibrationSet],
    *,
    alpha: float,
    delta: float,
    score: str = "router",
    features: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """For each set: calibrate on the others, run the cascade on it, and report what it achieved."""
    from ...meta import evaluate_judge
    from .report import cascade_figures

    rows = []
    for held in sets:
        others = [s for s in sets if s is not held]
        policy = calibrate(cascade, others, alpha=alpha, delta=delta, score=score, features=features)
        live = with_policy(cascade, policy)
        result = evaluate_judge(live, held.items, held.gold, "both-orders")
        figures = cascade_figures(live, held.items, held.gold)
        strong = sum(t.correct[-1] for t in held.traces) / len(held.traces)
        rows.append(
            {
                "held_out": held.name,
                "n": len(held.items),
                "accuracy_order_avg": result.accuracy_order_avg,
                "accuracy": result.report.accuracy,
                "last_stage_accuracy_order_avg": strong,
                "escalated_fraction": figures["escalated_fraction"],
                "cost_usd": figures["cost_usd"],
                "agreement_kept": figures["guarantee"].get("agreement_kept"),
                "kept_units": figures["guarantee"].get("kept_units"),
                "target": 1 - alpha,
                "met": figures["guarantee"].get("met_on_this_data"),
            }
        )
    return rows


def sweep(sets: Sequence[CalibrationSet], policy: PolicyConfig, fractions: Sequence[float]) -> list[dict[str, float]]:
    """Accuracy versus spend when every non-final stage escalates its least confident ``fraction`` of units.

    Computed from the traces (no judge is called): one point per fraction, with the order-averaged accuracy, the
    escalated fraction (units reaching the last stage) and the dollars spent.
    """
    traces = [t for s in sets for t in s.traces]
    n_stages = len(traces[0].agree) if traces else 0
    points = []
    for fraction in fractions:
        active = list(range(len(traces)))
        decided: dict[int, int] = {}
        cost = 0.0
        for k in range(n_stages):
            cost += sum(traces[i].cost[k] for i in active)
            if k == n_stages - 1:
                decided.update({i: k for i in active})
                break
            scores = scores_for(policy, k, [traces[i].values[k] for i in active]) if policy.score else []
            order = sorted(
                range(len(active)),
                key=lambda j: (not traces[active[j]].failed[k], scores[j] is not None, scores[j] or 0.0),
            )
            n_escalate = max(sum(traces[active[j]].failed[k] for j in order), math.floor(fraction * len(active) + 1e-9))
            escalate = {active[j] for j in order[:n_escalate]}
            decided.update({i: k for i in active if i not in escalate})
            active = [i for i in active if i in escalate]
        accuracy = sum(traces[i].correct[k] for i, k in decided.items()) / len(traces)
        reached = sum(1 for k in decided.values() if k == n_stages - 1)
        points.append(
            {"fraction": fraction, "accuracy": accuracy, "escalated_fraction": reached / len(traces), "cost_usd": cost}
        )
    return points
