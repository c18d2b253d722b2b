"""The escalation cascade: a judge made of ordered stages, cheapest first, and a policy that decides per item
whether a stage's verdict is kept or the item goes on to the next stage.

For each batch the cascade groups the items into *units* — a pair, whichever order it is asked in (with
``orders: both``; a presentation with ``orders: single``) — and runs the stages in turn on the units still open:
stage ``k`` judges them (both orders, in one batch, through the stage's judge and so its judgment cache), the
signals are computed, and the policy keeps or escalates each unit; the last stage keeps everything it sees. A failed
verdict always escalates. Before each paid stage a hard budget (if configured) is checked against the estimated cost:
units that would exceed it keep the cheaper verdict, marked ``not escalated: budget``, or fail with
:attr:`~lm_eval_pandalm.types.VerdictState.OVER_BUDGET` (``on_exhausted: fail``, or when nothing cheaper exists).

The verdict returned for an item is the deciding stage's own verdict in the order asked (``verdict: per-order``; its
``judge_id`` names the stage's judge) or its two orders averaged (``verdict: average``, which makes the cascade
order-invariant). Why each item ended where it did is kept per unit (:meth:`CascadeJudge.decision_for`, a
:class:`Decision`), and cumulative counts, calls, tokens and dollars in :attr:`CascadeJudge.stats`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from typing import Any

from ...judge import check_verdicts
from ...types import Label, PairItem, Verdict, VerdictState
from ..both_orders import combine_orders
from .config import BudgetConfig, PolicyConfig
from .policies import decide, reason_text, scores_for
from .records import CascadeStats, Decision, StageStep, winner_in_frame
from .reference import HiddenReference, TfidfReference
from .signals import SIGNALS, StageView
from .stages import Stage, Usage

__all__ = ["CascadeJudge", "CascadeStats", "Decision", "StageStep"]  # records re-exported from .records

logger = logging.getLogger(__name__)

_FINGERPRINT_VERSION = "cascade-v1"
_NO_VALUES: dict[str, Any] = {}
# Per-stage signals that keep text-derived values in the unit's context (cached with the static values).
_CONTEXT_SIGNALS = ("instruction_overlap_gap",)


class _Unit(StageView):
    """A pair as the cascade tracks it (the signals see it as a :class:`StageView`)."""

    __slots__ = ("budget", "decided", "final", "item", "key", "static", "steps", "swapped", "usage")

    # Built for every pair of every call: attributes are set directly (not through StageView.__init__), and the usage
    # record exists only once a paid stage judges the pair.
    def __init__(self, item: PairItem, key: tuple[str, str, str, str]) -> None:
        self.instruction, self.input, self.response1, self.response2 = key
        self.key = key
        self.item = item
        self.orders: list[tuple[Verdict, Verdict | None]] = []
        self.context: dict[str, Any] | None = None
        self.memo: tuple[int, Any] | None = None
        self.swapped: PairItem | None = None
        self.static: dict[str, Any] = _NO_VALUES  # replaced (never mutated) when there are static signals
        # Per stage reached: [signal values, score, outcome, reason].
        self.steps: list[list[Any]] = []
        self.decided = -1
        self.final: Verdict | None = None
        self.budget = False
        self.usage: Usage | None = None


class CascadeJudge:
    """A judge that escalates, per item, from cheaper stages to stronger ones; see the module docs.

    Build it from a YAML config with :func:`~lm_eval_pandalm.judges.make_judge` (``type: cascade``) or with
    :func:`~lm_eval_pandalm.wrappers.cascade.build.build_cascade`.

    Args:
        stages: Two or more stages, cheapest first.
        policy: The escalation policy.
        signals: Names of the signals to record (see :data:`~.signals.SIGNALS`).
        orders: ``both`` or ``single`` (see :data:`~.config.ORDERS`).
        verdict: ``per-order`` or ``average`` (see :data:`~.config.VERDICT_MODES`).
        budget: A hard spending cap, or ``None``.
        reference_items: The reference set of ``tfidf_distance`` / ``hidden_distance``.
        name: The cascade's ``judge_id``; default ``cascade(<stage>,...)``.
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        policy: PolicyConfig,
        signals: Sequence[str],
        *,
        orders: str = "both",
        verdict: str = "per-order",
        budget: BudgetConfig | None = None,
        reference_items: Sequence[PairItem] | None = None,
        reference_name: str | None = None,
        name: str | None = None,
    ) -> None:
        if len(stages) < 2:
            raise ValueError("a cascade needs at least two stages")
        self.stages = list(stages)
        self.policy = policy
        self.signal_names = list(signals)
        self.orders = orders
        self.verdict_mode = verdict
        self.budget = budget
        self.reference_name = reference_name
        self.judge_id = name or f"cascade({','.join(stage.name for stage in self.stages)})"
        self.order_invariant = verdict == "average"
        self.stats = CascadeStats([stage.name for stage in self.stages])
        self.spent_usd = 0.0
        self._per_stage = [n for n in self.signal_names if SIGNALS[n].per_stage]
        self._static = [n for n in self.signal_names if not SIGNALS[n].per_stage and SIGNALS[n].compute]
        self._tfidf: TfidfReference | None = None
        self._hidden: HiddenReference | None = None
        if "tfidf_distance" in self.signal_names:
            self._tfidf = TfidfReference(reference_items or [])
        if "hidden_distance" in self.signal_names:
            embedder = next((stage.embedder for stage in self.stages if stage.embedder is not None), None)
            self._hidden = HiddenReference(embedder, reference_items or [])
        self._records: dict[tuple[str, str, str, str], _Unit] = {}
        # Signals that depend on a pair's text only, by pair: computed once per cascade (and shared by the cascades
        # calibration builds from this one), however often the pair is judged again.
        self._static_cache: dict[tuple[str, str, str, str], tuple[dict[str, Any], dict[str, Any]]] = {}
        self._text_signals = (
            bool(self._static)
            or self._tfidf is not None
            or self._hidden is not None
            or any(name in self.signal_names for name in _CONTEXT_SIGNALS)
        )

    # -- identity -------------------------------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """JSON of the stages' fingerprints and prices, the policy, signals, orders, verdict mode and budget."""
        payload = {
            "judge": _FINGERPRINT_VERSION,
            "stages": [
                {"name": s.name, "judge": s.judge.fingerprint, "price": s.config.price, "model": s.config.model}
                for s in self.stages
            ],
            "policy": {k: v for k, v in vars(self.policy).items() if k not in ("routers", "calibration")},
            "signals": self.signal_names,
            "reference": self.reference_name,
            "orders": self.orders,
            "verdict": self.verdict_mode,
            "budget": None if self.budget is None else vars(self.budget),
        }
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)

    def __repr__(self) -> str:
        return f"CascadeJudge({self.stages!r}, policy={self.policy.type!r})"

    # -- judging --------------------------------------------------------------------------------------------------

    def __call__(self, items: Sequence[PairItem]) -> list[Verdict]:
        """Judge every item through the stages; one verdict per item, same order."""
        items = list(items)
        if not items:
            return []
        units, positions = self._group(items)
        self._run(units)
        return [self._verdict_of(units[u], flipped) for u, flipped in positions]

    def _group(self, items: list[PairItem]) -> tuple[list[_Unit], list[tuple[int, bool]]]:
        index: dict[tuple[str, str, str, str], tuple[int, bool]] = {}
        units: list[_Unit] = []
        positions: list[tuple[int, bool]] = []
        both = self.orders == "both"
        for item in items:
            key = (item.instruction, item.input, item.response1, item.response2)
            hit = index.get(key)
            if hit is None:
                other = index.get((item.instruction, item.input, item.response2, item.response1)) if both else None
                if other is not None and not other[1]:
                    hit = (other[0], True)
                    units[other[0]].swapped = item
                else:
                    hit = (len(units), False)
                    units.append(_Unit(item, key))
                index[key] = hit
            positions.append(hit)
        return units, positions

    def _run(self, units: list[_Unit]) -> None:
        stats = self.stats
        stats.units += len(units)
        both = self.orders == "both"
        last = len(self.stages) - 1
        active = list(range(len(units)))
        for k, stage in enumerate(self.stages):
            if k > 0 or stage.paid:
                active = self._apply_budget(k, active, units)
            if not active:
                break
            stats.reached[k] += len(active)
            batch: list[PairItem] = []
            for u in active:
                unit = units[u]
                batch.append(unit.item)
                if both:
                    if unit.swapped is None:
                        unit.swapped = unit.item.swapped()
                    batch.append(unit.swapped)
            verdicts = check_verdicts(stage.judge, batch, stage.judge(batch))
            stage_usage = stats.usage[k]
            if not stage.paid:  # counted in bulk: no per-pair record for what costs nothing
                stage_usage.judgments += len(verdicts)
                stage_usage.prompt_tokens += sum(v.prompt_tokens or 0 for v in verdicts)
                stage_usage.completion_tokens += sum(v.completion_tokens or 0 for v in verdicts)
            ok = VerdictState.OK
            pairs: list[tuple[Verdict, Verdict | None]]
            if both:
                pairs = list(zip(verdicts[::2], verdicts[1::2], strict=True))
                failed = [first.state is not ok or second.state is not ok for first, second in pairs]  # type: ignore[union-attr]
            else:
                pairs = [(first, None) for first in verdicts]
                failed = [first.state is not ok for first in verdicts]
            for u, pair in zip(active, pairs, strict=True):
                units[u].orders.append(pair)
            if stage.paid:
                for u, (first, second) in zip(active, pairs, strict=True):
                    unit = units[u]
                    if unit.usage is None:
                        unit.usage = Usage()
                    self.spent_usd += stage.account(unit.item, first, unit.usage, stage_usage)
                    if second is not None:
                        self.spent_usd += stage.account(unit.swapped, second, unit.usage, stage_usage)
            self._signals(k, stage, [units[u] for u in active])
            stats.failed[k] += sum(failed)
            if k == last:
                for u, fail in zip(active, failed, strict=True):
                    unit = units[u]
                    unit.steps[k][2:] = ["final", "verdict failed at the last stage" if fail else "last stage"]
                    unit.decided = k
                stats.kept[k] += len(active)
                break
            values = [units[u].steps[k][0] for u in active]
            scores = scores_for(self.policy, k, values)
            following = self.stages[k + 1]
            costs = [self._estimate(following, units[u]) if self.policy.max_usd else 0.0 for u in active]
            decisions = decide(self.policy, k, scores, failed, costs)
            escalated = []
            for u, score, fail, (escalate, reason) in zip(active, scores, failed, decisions, strict=True):
                unit = units[u]
                if escalate:
                    unit.steps[k][1:] = [score, "failed" if fail else "escalated", reason]
                    escalated.append(u)
                else:
                    unit.steps[k][1:] = [score, "kept", reason]
                    unit.decided = k
            stats.kept[k] += len(active) - len(escalated)
            # Least confident first: the order in which a hard budget lets units through.
            active = sorted(escalated, key=lambda u: (units[u].steps[k][1] is not None, units[u].steps[k][1] or 0.0))
        self._records.update((unit.key, unit) for unit in units)

    def _estimate(self, stage: Stage, unit: _Unit) -> float:
        cost = stage.estimate(unit.item)[2]
        return 2 * cost if self.orders == "both" else cost

    def _apply_budget(self, k: int, active: list[int], units: list[_Unit]) -> list[int]:
        """The units the hard budget lets into stage ``k`` (in priority order); the others are settled here."""
        budget = self.budget
        if budget is None:
            return active
        allowed = len(active)
        if k == 1 and budget.max_escalated_fraction is not None:
            allowed = min(allowed, math.floor(budget.max_escalated_fraction * len(units) + 1e-9))
        stage = self.stages[k]
        if budget.max_usd is not None and stage.paid:
            remaining = budget.max_usd - self.spent_usd
            count = 0
            for u in active[:allowed]:
                cost = self._estimate(stage, units[u])
                if cost > remaining + 1e-12:
                    break
                remaining -= cost
                count += 1
            allowed = count
        for u in active[allowed:]:
            self._stop_for_budget(k, units[u], budget)
        return active[:allowed]

    def _stop_for_budget(self, k: int, unit: _Unit, budget: BudgetConfig) -> None:
        name = self.stages[k].name
        if k == 0 or budget.on_exhausted == "fail":
            unit.final = Verdict.failed(
                self.judge_id,
                VerdictState.OVER_BUDGET,
                f"not judged by stage {name}: the cascade's budget is used up (spent ${self.spent_usd:.4f})",
            )
            unit.decided = k
            self.stats.over_budget += 1
        else:
            unit.decided = k - 1
            self.stats.not_escalated_budget += 1
        if unit.steps:  # the last stage it reached wanted to escalate it
            reason = reason_text(unit.steps[-1][3])
            unit.steps[-1][2:] = ["budget", f"not escalated: budget ({reason})"]
        else:  # stopped before its first stage
            unit.steps.append([{}, None, "budget", "not escalated: budget"])
        unit.budget = True
        if k > 0 and unit.final is None:
            self.stats.kept[k - 1] += 1

    def _signals(self, k: int, stage: Stage, units: list[_Unit]) -> None:
        if k == 0:
            self._static_signals(units)
        computes = [(name, SIGNALS[name].compute) for name in self._per_stage]
        for unit in units:
            values = dict(unit.static)
            for name, compute in computes:
                values[name] = compute(unit, k, stage)  # type: ignore[misc]
            unit.steps.append([values, None, "", ""])

    def _static_signals(self, units: list[_Unit]) -> None:
        if not self._text_signals:
            return
        cache = self._static_cache
        fresh = []
        for unit in units:
            known = cache.get(unit.key)
            if known is None:
                fresh.append(unit)
            else:
                unit.static, unit.context = known
        if not fresh:
            return
        units = fresh
        computes = [(name, SIGNALS[name].compute) for name in self._static]
        for unit in units:
            unit.context = {}
            unit.static = {name: compute(unit, 0, None) for name, compute in computes}  # type: ignore[misc]
            cache[unit.key] = (unit.static, unit.context)
        if self._tfidf is not None:
            distances = self._tfidf.distances([(u.instruction, u.input) for u in units])
            for unit, distance in zip(units, distances, strict=True):
                unit.static["tfidf_distance"] = distance
        if self._hidden is not None:
            distances = self._hidden.distances([u.item for u in units])
            for unit, distance in zip(units, distances, strict=True):
                unit.static["hidden_distance"] = distance

    def _verdict_of(self, unit: _Unit, flipped: bool) -> Verdict:
        if unit.final is not None:
            return unit.final
        first, second = unit.orders[unit.decided]
        if self.verdict_mode == "average" and second is not None:
            stage_id = first.judge_id
            combined = combine_orders(first, second.flipped(), rule="average", judge_id=stage_id)
            return combined.flipped() if flipped else combined
        if flipped:
            return second if second is not None else first.flipped()
        return first

    # -- records --------------------------------------------------------------------------------------------------

    def _lookup(self, item: PairItem) -> tuple[_Unit | None, bool]:
        """The unit of ``item``'s pair, and whether ``item`` shows it swapped."""
        unit = self._records.get((item.instruction, item.input, item.response1, item.response2))
        if unit is None and self.orders == "both":
            unit = self._records.get((item.instruction, item.input, item.response2, item.response1))
            return unit, True
        return unit, False

    def decision_for(self, item: PairItem) -> Decision | None:
        """Why ``item`` (in either order) got its verdict in this cascade's latest judgment of it (stage winners in
        ``item``'s frame); ``None`` if the cascade has not judged it."""
        unit, flip = self._lookup(item)
        return None if unit is None else self._decision(unit, flip)

    def stage_verdicts(self, item: PairItem, stage: int = -1) -> list[tuple[PairItem, Verdict]] | None:
        """Stage ``stage``'s verdicts on ``item``'s pair, one per order judged, each with the presentation it judged
        (the pair as first seen, then swapped); ``None`` if the pair did not reach that stage."""
        unit, _ = self._lookup(item)
        index = stage if stage >= 0 else len(self.stages) + stage
        if unit is None or not 0 <= index < len(unit.orders):
            return None
        first, second = unit.orders[index]
        out = [(unit.item, first)]
        if second is not None and unit.swapped is not None:
            out.append((unit.swapped, second))
        return out

    def unit_winners(self, item: PairItem) -> tuple[tuple[Label | None, ...], bool] | None:
        """The deciding stage's winners per order *in ``item``'s frame*, and whether a non-final stage decided."""
        unit, flip = self._lookup(item)
        if unit is None:
            return None
        if unit.final is not None:
            return (None,), False
        first, second = unit.orders[unit.decided]
        winners = [winner_in_frame(first, flip), winner_in_frame(second, not flip)] if second else []
        if second is None:
            winners = [winner_in_frame(first, flip)]
        labels = tuple(Label(w) if w is not None else None for w in winners)
        return labels, unit.decided < len(self.stages) - 1

    def _decision(self, unit: _Unit, flip: bool = False) -> Decision:
        steps = []
        for k, (values, score, outcome, why) in enumerate(unit.steps):
            winners: tuple[str | None, ...] = ()
            if k < len(unit.orders):
                first, second = unit.orders[k]
                winners = (winner_in_frame(first, flip),) + (
                    (winner_in_frame(second, not flip),) if second is not None else ()
                )
            steps.append(StageStep(self.stages[k].name, outcome, reason_text(why), score, values, winners))
        decided = unit.decided
        reason = " -> ".join(f"{step.stage}: {step.reason}" for step in steps)
        return Decision(
            stage=self.stages[decided].name,
            stage_index=decided,
            escalated=len(unit.orders) == len(self.stages),
            reason=reason,
            not_escalated_budget=unit.budget and unit.final is None,
            over_budget=unit.final is not None,
            steps=tuple(steps),
            usage=unit.usage if unit.usage is not None else Usage(),
        )
