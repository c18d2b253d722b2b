"""The escalation cascade with fake stages: routing, failures, budgets, orders, signals and configuration errors.

Stage judges are :class:`~lm_eval_pandalm.testing.fakes.FakeJudge` s, so each test can see exactly which items each
stage was asked about. ``cheap`` prefers the longer response with a strong bias for the response shown first, so its
two orders agree only when one response is more than three times longer than the other; ``strong`` prefers the
longer response without bias.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from lm_eval_pandalm.config import ConfigError
from lm_eval_pandalm.judges import make_judge
from lm_eval_pandalm.meta import evaluate_judge
from lm_eval_pandalm.testing.fakes import FakeJudge, PreferLonger
from lm_eval_pandalm.types import Label, PairItem, Verdict, VerdictState
from lm_eval_pandalm.wrappers.cascade import CascadeJudge, build_cascade
from lm_eval_pandalm.wrappers.cascade.config import parse_cascade_mapping
from lm_eval_pandalm.wrappers.cascade.report import cascade_figures, dry_run

# Responses of very different lengths: cheap's orders agree. Close lengths: they disagree.
CLEAR = [PairItem(f"Question {i}?", "A" * (5 + i), "B" * (40 + 10 * i), id=f"clear{i}") for i in range(3)]
CLOSE = [PairItem(f"Other {i}?", "C" * (20 + i), "D" * (22 + 2 * i), id=f"close{i}") for i in range(3)]


def fakes(cheap_rule: Any = None, strong_rule: Any = None) -> tuple[FakeJudge, FakeJudge]:
    cheap = FakeJudge(cheap_rule or PreferLonger(position_bias=2.0), judge_id="cheap")
    strong = FakeJudge(strong_rule or PreferLonger(), judge_id="strong")
    return cheap, strong


def cascade(judges: tuple[FakeJudge, ...], **config: Any) -> CascadeJudge:
    stages = config.pop("stages", [{"name": "cheap", "judge": "fake:cheap"}, {"name": "strong", "judge": "fake:x"}])
    mapping = {"stages": stages, "policy": {"type": "threshold", "score": "consistent"}, **config}
    return build_cascade(parse_cascade_mapping(mapping), judges=list(judges))


def test_consistent_pairs_are_kept_and_the_others_escalate_in_both_orders() -> None:
    cheap, strong = fakes()
    judge = cascade((cheap, strong))
    verdicts = judge(CLEAR + CLOSE)
    assert [v.judge_id for v in verdicts] == ["cheap"] * 3 + ["strong"] * 3
    assert all(v.winner is Label.SECOND for v in verdicts)  # the longer response, whoever decided
    # One batch per stage; the strong stage sees only the escalated pairs, each in both orders.
    assert cheap.calls == 1 and len(cheap.items_seen) == 12
    assert strong.calls == 1
    assert sorted(i.id for i in strong.items_seen) == sorted(2 * [i.id for i in CLOSE])
    decision = judge.decision_for(CLOSE[0])
    assert decision is not None and decision.escalated and decision.stage == "strong"
    assert decision.steps[0].outcome == "escalated" and decision.steps[0].reason == "consistent 0 < 1"
    assert decision.steps[0].signals["consistent"] is False
    kept = judge.decision_for(CLEAR[0])
    assert kept is not None and not kept.escalated and kept.reason == "cheap: consistent 1 >= 1"
    figures = cascade_figures(judge)
    assert figures["escalated_fraction"] == 0.5 and figures["units"] == 6
    assert [s["reached"] for s in figures["stages"]] == [6, 3] and [s["kept"] for s in figures["stages"]] == [3, 3]
    assert figures["api_calls"] == 0  # no stage has a price


def test_a_failed_verdict_always_escalates_and_a_failed_last_stage_stays_failed() -> None:
    def cheap_rule(item: PairItem) -> Verdict:
        if "FAIL" in item.instruction:
            return Verdict.failed("cheap", VerdictState.UNPARSED, "no verdict")
        return PreferLonger()(item)

    def strong_rule(item: PairItem) -> Verdict:
        if "BOTH" in item.instruction:
            return Verdict.failed("strong", VerdictState.ERROR, "API failure")
        return PreferLonger()(item)

    items = [PairItem("FAIL once", "a", "bbbb"), PairItem("FAIL BOTH", "a", "bbbb"), PairItem("fine", "a", "bbbb")]
    cheap, strong = fakes(cheap_rule, strong_rule)
    # max_prob >= 0 keeps every verdict the cheap stage has: only failure can escalate.
    judge = cascade((cheap, strong), policy={"type": "threshold", "score": "max_prob", "thresholds": [0.0]})
    first, both, fine = judge(items)
    assert first.ok and first.judge_id == "strong"
    assert both.state is VerdictState.ERROR and both.judge_id == "strong"  # not the cheaper stage's failure or tie
    assert fine.judge_id == "cheap"
    assert judge.decision_for(items[0]).steps[0].reason == "verdict failed"  # type: ignore[union-attr]
    assert cascade_figures(judge)["stages"][1]["failed"] == 1


def test_hard_budget_lets_the_least_confident_through_and_marks_the_rest() -> None:
    items = CLEAR + CLOSE
    cheap, strong = fakes()
    priced = [{"name": "cheap", "judge": "fake:c"}, {"name": "strong", "judge": "fake:s", "model": "gpt-4"}]
    probe = cascade(fakes(), stages=priced)
    per_unit = 2 * probe.stages[1].estimate(items[0])[2]
    budget = {"max_usd": 2.5 * per_unit}  # room for two escalations of this size
    judge = cascade(
        (cheap, strong), stages=priced, policy={"type": "budget", "score": "margin", "fraction": 1.0}, budget=budget
    )
    verdicts = judge(items)
    figures = cascade_figures(judge)
    assert figures["stages"][1]["reached"] == 2 and figures["not_escalated_budget"] == 4
    assert figures["cost_usd"] <= budget["max_usd"]
    margins = [judge.decision_for(item).steps[0].score for item in items]  # type: ignore[union-attr]
    escalated = [v.judge_id == "strong" for v in verdicts]
    assert sorted(m for m, e in zip(margins, escalated, strict=True) if e) == sorted(margins)[:2]
    stopped = next(item for item, e in zip(items, escalated, strict=True) if not e)
    decision = judge.decision_for(stopped)
    assert decision is not None and decision.not_escalated_budget
    assert decision.reason.startswith("cheap: not escalated: budget")
    # The cap holds across calls: a second batch gets only what is left, and a pair too dear for it keeps cheap's.
    (dear,) = judge([PairItem("New?", "x" * 3000, "y" * 3100)])
    assert dear.judge_id == "cheap" and cascade_figures(judge)["cost_usd"] == figures["cost_usd"]


def test_budget_can_fail_items_instead_and_a_paid_first_stage_cannot_keep_anything() -> None:
    priced = [{"name": "cheap", "judge": "fake:c"}, {"name": "strong", "judge": "fake:s", "model": "gpt-4"}]
    judge = cascade(fakes(), stages=priced, budget={"max_usd": 0.0, "on_exhausted": "fail"})
    verdicts = judge(CLEAR + CLOSE)
    assert [v.state for v in verdicts[3:]] == [VerdictState.OVER_BUDGET] * 3 and all(v.ok for v in verdicts[:3])
    all_paid = [{"name": "a", "judge": "fake:a", "model": "gpt-4o-mini"}, {"name": "b", "judge": "fake:b"}]
    cheap, strong = fakes()
    judge = cascade((cheap, strong), stages=all_paid, budget={"max_usd": 0.0})
    assert all(v.state is VerdictState.OVER_BUDGET for v in judge(CLEAR))
    assert cheap.calls == 0 and strong.calls == 0
    assert cascade_figures(judge)["over_budget"] == 3


def test_budget_policy_escalates_the_least_confident_fraction() -> None:
    items = CLEAR + CLOSE
    judge = cascade(fakes(), policy={"type": "budget", "score": "margin", "fraction": 0.5})
    verdicts = judge(items)
    margins = [judge.decision_for(item).steps[0].score for item in items]  # type: ignore[union-attr]
    escalated = sorted(m for m, v in zip(margins, verdicts, strict=True) if v.judge_id == "strong")
    assert len(escalated) == 3 and escalated == sorted(margins)[:3]


def test_both_presentations_of_a_pair_are_one_unit() -> None:
    cheap, strong = fakes()
    judge = cascade((cheap, strong))
    item = CLOSE[0]
    first, second = judge([item, item.swapped()])
    assert cheap.calls == 1 and len(cheap.items_seen) == 2 and len(strong.items_seen) == 2
    assert second == strong([item.swapped()])[0]  # the strong stage's verdict on the swapped presentation
    assert first.winner is Label.SECOND and second.winner is Label.FIRST
    averaged = cascade(fakes(), verdict="average")
    assert averaged.order_invariant and not judge.order_invariant
    a, b = averaged([item, item.swapped()])
    assert math.isclose(a.p_first, b.p_second) and a.winner.flipped() is b.winner  # type: ignore[union-attr]


def test_meta_both_orders_judges_each_presentation_once_per_stage() -> None:
    cheap, strong = fakes()
    judge = cascade((cheap, strong))
    gold = [Label.SECOND] * 6
    result = evaluate_judge(judge, CLEAR + CLOSE, gold, "both-orders")
    assert len(cheap.items_seen) == 12 and len(strong.items_seen) == 6
    assert result.accuracy_order_avg == 1.0
    guarantee = cascade_figures(judge, CLEAR + CLOSE, gold)["guarantee"]
    assert guarantee["kept_units"] == 3 and guarantee["agreement_kept"] == 1.0


def test_single_order_cascade_judges_only_the_order_asked() -> None:
    cheap, strong = fakes()
    judge = cascade((cheap, strong), orders="single", policy={"type": "threshold", "score": "max_prob"})
    judge(CLEAR)
    assert len(cheap.items_seen) == 3
    assert judge.decision_for(CLEAR[0]).steps[0].signals["consistent"] is None  # type: ignore[union-attr]


def test_signals_are_recorded_per_item_and_stage() -> None:
    items = [
        PairItem("Fix this code:\n```python\ndef f(x): return x +\n```", "def f(x): return x + 1", "It works."),
        PairItem("Solve 12 * 7 = ?", "84", "The answer is eighty-four, which I computed carefully by hand."),
        PairItem("这是什么意思？请解释这个句子的含义。", "意思是你好", "It means hello."),
        PairItem("Name a fruit that is red.", "An apple is a red fruit.", "Bananas are yellow and long fruits."),
    ]
    stages = [{"name": "cheap", "judge": "fake:c", "context_tokens": 10}, {"name": "strong", "judge": "fake:s"}]
    judge = cascade(fakes(), stages=stages, policy={"type": "threshold", "score": "max_prob", "thresholds": [2.0]})
    judge(items)
    code, maths, chinese, fruit = (judge.decision_for(i).steps for i in items)  # type: ignore[union-attr]
    assert code[0].signals["has_code"] and not fruit[0].signals["has_code"]
    assert maths[0].signals["has_math"] and not fruit[0].signals["has_math"]
    assert chinese[0].signals["non_english"] and not fruit[0].signals["non_english"]
    assert maths[0].signals["length_ratio"] == pytest.approx((62 + 1) / (2 + 1))
    assert code[0].signals["over_context"] > 1  # the prompt is longer than a 10-token context
    # The strong stage prefers the longer response: for the fruit pair, the one sharing fewer instruction words.
    assert fruit[1].signals["picked_longer"] == 1.0 and fruit[1].signals["instruction_overlap_gap"] < 0
    assert fruit[1].signals["stage_agreement"] is not None and fruit[0].signals["stage_agreement"] is None
    assert 0 <= fruit[0].signals["entropy_both"] <= 1


@pytest.mark.usefixtures("shared_data_dir")  # its judge or benchmark reads the data mirror
def test_tfidf_distance_to_the_reference_set() -> None:
    reference = [PairItem("Write a poem about the sea and its waves.", "a", "b"), PairItem("List colours.", "", "")]
    config = parse_cascade_mapping(
        {"stages": ["fake:a", "fake:b"], "signals": ["tfidf_distance"], "reference": "pandalm"}
    )
    judge = CascadeJudge(
        build_cascade(config, judges=list(fakes())).stages,
        config.policy_config,
        config.signal_names(),
        reference_items=reference,
    )
    near = PairItem("Write a poem about the sea waves.", "a", "b")
    far = PairItem("Explain quantum tunnelling.", "a", "b")
    judge([near, far])
    d_near = judge.decision_for(near).steps[0].signals["tfidf_distance"]  # type: ignore[union-attr]
    d_far = judge.decision_for(far).steps[0].signals["tfidf_distance"]  # type: ignore[union-attr]
    assert 0 <= d_near < 0.5 and d_far == pytest.approx(1.0)


def test_dry_run_estimates_without_judging() -> None:
    cheap, strong = fakes()
    priced = [{"name": "cheap", "judge": "fake:c"}, {"name": "strong", "judge": "fake:s", "model": "gpt-4"}]
    judge = cascade((cheap, strong), stages=priced)
    estimate = dry_run(judge, CLEAR + CLOSE, both_orders=True)
    assert cheap.calls == 0 and strong.calls == 0
    assert estimate["units"] == 6 and estimate["api_calls_upper_bound"] == 12
    judge(CLEAR + CLOSE)
    spent = cascade_figures(judge)["cost_usd"]
    assert 0 < spent <= estimate["cost_usd_upper_bound"]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"stages": ["replay:GPT-4"]}, "at least two stages"),
        ({"stages": ["replay:LLaMA2", {"judge": "replay:GPT-4", "prise": 1}]}, r"stages\[1\].*'prise'.*Did you mean"),
        ({"stages": ["replay:LLaMA2", "replay:GPT-4"], "policy": {"type": "magic"}}, "policy type must be one of"),
        ({"stages": ["replay:LLaMA2", "replay:GPT-4"], "signals": ["consistant"]}, "Did you mean 'consistent'"),
        ({"stages": ["replay:LLaMA2", "replay:GPT-4"], "signals": ["tfidf_distance"]}, "give reference"),
        ({"stages": ["replay:LLaMA2", "replay:GPT-4"], "policy": {"type": "calibrated"}}, "pandalm calibrate"),
        ({"stages": ["replay:LLaMA2", {"judge": "replay:GPT-4", "model": "gpt-9"}]}, "no list price"),
        ({"stages": ["replay:LLaMA2", "replay:GPT-4"], "budget": {"on_exhausted": "panic"}}, "on_exhausted"),
        ({"stages": ["replay:LLaMA2", "replay:GPT-4"], "policy": {"thresholds": [1, 2]}}, "one per non-final"),
    ],
)
def test_config_errors_name_the_part_and_the_fix(mapping: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_judge({"type": "cascade", **mapping})


def test_cascade_spec_string_is_refused_with_the_yaml_hint() -> None:
    with pytest.raises(ConfigError, match="YAML judge config"):
        make_judge("cascade:replay:GPT-4")
