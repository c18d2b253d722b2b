"""What a cascade reports: run figures for ``--json``, a dry-run estimate, and per-item fields for logged samples.

* :func:`cascade_figures`: ``escalated_fraction`` (units that reached the last stage), ``api_calls``, ``tokens``,
  ``cost_usd`` (paid stages; ``cost_estimated`` says whether any count was estimated), per-stage counts, budget
  counts, and the guarantee: the policy's (α, δ) and, given gold labels, the agreement achieved on the kept units;
* :func:`dry_run`: calls, tokens and dollars a run would need, before any paid call (upper bound: every unit reaches
  every stage; expected: the escalation rates measured at calibration, when the policy has them);
* :func:`summary_fields`: ``stage``, ``escalated``, ``decision``, ``api_calls``, ``cost_usd`` of one item, for lm-eval.

Every function also accepts a judge that is not a cascade (``is_cascade`` tells them apart).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ...types import Label, PairItem
from .judge import CascadeJudge
from .stages import Usage

__all__ = ["cascade_figures", "dry_run", "is_cascade", "summary_fields"]


def is_cascade(judge: object) -> bool:
    """Whether ``judge`` is a cascade (also behind a cache wrapper)."""
    return isinstance(getattr(judge, "inner", judge), CascadeJudge) or isinstance(judge, CascadeJudge)


def _cascade(judge: object) -> CascadeJudge:
    return judge if isinstance(judge, CascadeJudge) else judge.inner  # type: ignore[attr-defined,return-value]


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def cascade_figures(
    judge: object, items: Sequence[PairItem] | None = None, gold: Sequence[Label] | None = None
) -> dict[str, Any]:
    """The cascade's figures over everything it judged so far; ``{}`` for a judge that is not a cascade.

    Args:
        judge: The cascade.
        items: The items judged, with ``gold``, to measure the agreement achieved on the units kept by non-final
            stages (the quantity the calibrated guarantee bounds).
        gold: Human label per item.
    """
    if not is_cascade(judge):
        return {}
    cascade = _cascade(judge)
    stats = cascade.stats
    total = Usage()
    stages = []
    for i, stage in enumerate(cascade.stages):
        usage = stats.usage[i]
        if stage.paid:
            total.add(usage)
        stages.append(
            {
                "name": stage.name,
                "judge": stage.judge.judge_id,
                "paid": stage.paid,
                "reached": stats.reached[i],
                "kept": stats.kept[i],
                "failed": stats.failed[i],
                **usage.to_dict(),
            }
        )
    out: dict[str, Any] = {
        "cascade": cascade.judge_id,
        "units": stats.units,
        "escalated_fraction": _ratio(stats.reached[-1], stats.units),
        "api_calls": total.api_calls,
        "api_calls_cached": total.cached,
        "tokens": total.tokens,
        "prompt_tokens": total.prompt_tokens,
        "completion_tokens": total.completion_tokens,
        "cost_usd": round(total.cost_usd, 6),
        "cost_estimated": total.estimated,
        "not_escalated_budget": stats.not_escalated_budget,
        "over_budget": stats.over_budget,
        "stages": stages,
        "guarantee": _guarantee(cascade, items, gold),
    }
    return out


def _guarantee(cascade: CascadeJudge, items: Sequence[PairItem] | None, gold: Sequence[Label] | None) -> dict[str, Any]:
    policy = cascade.policy
    out: dict[str, Any] = {"policy": policy.type, "score": policy.score}
    if policy.type == "calibrated":
        out.update(alpha=policy.alpha, delta=policy.delta)
        out["statement"] = (
            f"on data like the calibration data, a kept verdict agrees with humans in both orders with probability "
            f">= {1 - policy.alpha:.3g}, except with probability <= {policy.delta:.3g}"  # type: ignore[operator]
        )
        if policy.calibration:
            out["calibrated_on"] = policy.calibration.get("benchmarks")
    if items is not None and gold is not None:
        seen: set[tuple[str, str, frozenset[str]]] = set()
        kept = agree = 0
        for item, label in zip(items, gold, strict=True):
            key = (item.instruction, item.input, frozenset((item.response1, item.response2)))
            if key in seen:
                continue
            seen.add(key)
            winners = cascade.unit_winners(item)
            if winners is None or not winners[1]:
                continue
            kept += 1
            agree += all(w is label for w in winners[0])
        out["kept_units"] = kept
        out["agreement_kept"] = _ratio(agree, kept)
        if policy.type == "calibrated" and kept:
            out["target"] = 1 - policy.alpha  # type: ignore[operator]
            out["met_on_this_data"] = agree / kept >= 1 - policy.alpha  # type: ignore[operator]
    return out


def dry_run(judge: object, items: Sequence[PairItem], *, both_orders: bool = False) -> dict[str, Any]:
    """Calls, tokens and dollars judging ``items`` would take, estimated from their text; nothing is judged.

    Args:
        judge: A cascade, or any judge (its price is then unknown unless it has a ``price`` attribute, a
            :class:`~lm_eval_pandalm.pricing.Price`).
        items: The items the command would hand the judge (before any both-orders wrapping).
        both_orders: The command judges every item in both orders (``--protocol both-orders`` / ``paper``).
    """
    requests = list(items) + ([item.swapped() for item in items] if both_orders else [])
    if not is_cascade(judge):
        from ...pricing import estimate_tokens
        from ...prompt import build_prompt

        tokens = sum(estimate_tokens(build_prompt(item)) for item in requests)
        price = getattr(getattr(judge, "inner", judge), "price", None)
        cost = None if price is None else tokens * price.input_per_mtok / 1_000_000
        return {"dry_run": True, "judgments": len(requests), "prompt_tokens_estimated": tokens, "cost_usd": cost}
    cascade = _cascade(judge)
    units, _ = cascade._group(requests)
    per_unit = 2 if cascade.orders == "both" else 1
    rates = _expected_reach(cascade)
    stages = []
    upper = expected = 0.0
    calls_upper = calls_expected = 0.0
    for i, stage in enumerate(cascade.stages):
        prompt = completion = 0
        cost = 0.0
        for unit in units:
            p, c, d = stage.estimate(unit.item)
            prompt += per_unit * p
            completion += per_unit * c
            cost += per_unit * d
        judgments = per_unit * len(units)
        reach = rates[i] if rates is not None else None
        if stage.paid:
            upper += cost
            calls_upper += judgments
            if reach is not None:
                expected += cost * reach
                calls_expected += judgments * reach
        stages.append(
            {
                "name": stage.name,
                "paid": stage.paid,
                "judgments_upper_bound": judgments,
                "expected_reach": reach,
                "prompt_tokens_estimated": prompt,
                "completion_tokens_estimated": completion,
                "cost_usd_upper_bound": round(cost, 6),
            }
        )
    out: dict[str, Any] = {
        "dry_run": True,
        "units": len(units),
        "api_calls_upper_bound": int(calls_upper),
        "cost_usd_upper_bound": round(upper, 6),
        "api_calls_expected": None if rates is None else math.ceil(calls_expected),
        "cost_usd_expected": None if rates is None else round(expected, 6),
        "estimated": True,
        "stages": stages,
    }
    if cascade.budget is not None and cascade.budget.max_usd is not None:
        out["budget_max_usd"] = cascade.budget.max_usd
    return out


def _expected_reach(cascade: CascadeJudge) -> list[float] | None:
    calibration = cascade.policy.calibration or {}
    reach = calibration.get("reach")
    if isinstance(reach, list) and len(reach) == len(cascade.stages):
        return [float(r) for r in reach]
    return None


def summary_fields(judge: object, item: PairItem) -> dict[str, Any]:
    """Per-item fields for lm-eval's logged samples: which stage decided and why, calls and dollars.

    Returns ``{}`` for a judge that is not a cascade, or an item it has not judged.
    """
    if not is_cascade(judge):
        return {}
    decision = _cascade(judge).decision_for(item)
    if decision is None:
        return {}
    return {
        "stage": decision.stage,
        "escalated": decision.escalated,
        "decision": decision.reason,
        "api_calls": decision.usage.api_calls,
        "cost_usd": decision.usage.cost_usd,
    }
