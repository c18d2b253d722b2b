"""BothOrdersJudge: one inner call per batch, rules for combining the orders, failures, positional consistency."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lm_eval_pandalm.judge import Judge
from lm_eval_pandalm.testing.fakes import FakeJudge, Fixed, PreferLonger
from lm_eval_pandalm.types import Label, PairItem, Verdict, VerdictState
from lm_eval_pandalm.wrappers import RULES, BothOrdersJudge, OrderedJudgment, both_orders, combine_orders

A_B = PairItem("Pick one.", "A", "B")


def by_first_response(table: dict[str, Verdict]):
    """A rule whose answer depends only on which response is shown first (so the two orders can be set apart)."""

    def rule(item: PairItem) -> Verdict:
        return table[item.response1]

    return rule


def probs(verdict: Verdict) -> tuple[float, float, float]:
    return (verdict.p_first, verdict.p_second, verdict.p_tie)  # type: ignore[return-value]


def test_one_inner_call_on_items_then_swapped_items() -> None:
    items = [PairItem("Q1", "short", "much longer"), PairItem("Q2", "x", "y"), PairItem("Q3", "abc", "")]
    fake = FakeJudge()
    verdicts = both_orders(fake)(items)

    assert len(verdicts) == 3
    assert fake.calls == 1
    assert fake.batches[0] == items + [item.swapped() for item in items]


def test_empty_batch_does_not_call_inner() -> None:
    fake = FakeJudge()
    assert both_orders(fake)([]) == []
    assert fake.calls == 0


def test_is_a_judge_with_wrapped_identity() -> None:
    fake = FakeJudge(fingerprint="fp")
    judge = both_orders(fake, rule="paper")
    assert isinstance(judge, Judge)
    assert judge.fingerprint == "both-orders/paper/fp"
    assert "fake" in judge.judge_id and "paper" in judge.judge_id
    assert both_orders(fake).fingerprint == "both-orders/average/fp"


def test_average_rule_averages_probabilities_in_the_original_frame() -> None:
    rule = by_first_response(
        {
            "A": Verdict.from_probs("x", 0.6, 0.3, 0.1),  # order (1, 2): A shown first
            "B": Verdict.from_probs("x", 0.2, 0.7, 0.1),  # order (2, 1): prefers A, shown second
        }
    )
    [judgment] = both_orders(FakeJudge(rule)).judge_with_orders([A_B])

    assert probs(judgment.second) == pytest.approx((0.7, 0.2, 0.1))
    assert probs(judgment.combined) == pytest.approx((0.65, 0.25, 0.1))
    assert judgment.combined.winner is Label.FIRST
    assert judgment.consistent is True


def test_average_rule_turns_pure_position_bias_into_an_exact_tie() -> None:
    # The judge always prefers whichever response it reads first, with the same probabilities.
    biased = Verdict.from_probs("x", 0.6, 0.3, 0.1)
    [judgment] = both_orders(FakeJudge(lambda item: biased)).judge_with_orders([A_B])

    assert judgment.first.winner is Label.FIRST and judgment.second.winner is Label.SECOND
    assert judgment.consistent is False
    assert judgment.combined.p_first == judgment.combined.p_second
    assert judgment.combined.winner is Label.TIE


@pytest.mark.parametrize(
    ("in_order", "swapped", "expected"),
    [
        (Label.FIRST, Label.SECOND, Label.FIRST),  # both orders prefer response 1
        (Label.SECOND, Label.FIRST, Label.SECOND),  # both orders prefer response 2
        (Label.TIE, Label.TIE, Label.TIE),
        (Label.FIRST, Label.FIRST, Label.TIE),  # position bias: conflict
        (Label.FIRST, Label.TIE, Label.TIE),  # one order undecided: conflict
    ],
)
def test_paper_rule_keeps_agreement_and_ties_conflicts(in_order: Label, swapped: Label, expected: Label) -> None:
    rule = by_first_response({"A": Verdict.hard("x", in_order), "B": Verdict.hard("x", swapped)})
    [judgment] = both_orders(FakeJudge(rule), rule="paper").judge_with_orders([A_B])

    assert judgment.combined.winner is expected
    assert judgment.combined.prob(expected) == 1.0
    assert judgment.consistent is (in_order is swapped.flipped())


def test_paper_rule_is_hard_even_with_soft_inner_verdicts() -> None:
    rule = by_first_response({"A": Verdict.from_probs("x", 0.5, 0.4, 0.1), "B": Verdict.from_probs("x", 0.5, 0.3, 0.2)})
    [judgment] = both_orders(FakeJudge(rule), rule="paper").judge_with_orders([A_B])
    assert judgment.combined.winner is Label.TIE
    assert probs(judgment.combined) == (0.0, 0.0, 1.0)
    # The averaged probabilities stay available from the per-order verdicts.
    average = combine_orders(judgment.first, judgment.second, rule="average", judge_id="avg")
    assert probs(average) == pytest.approx((0.4, 0.45, 0.15))
    assert average.winner is Label.SECOND


@pytest.mark.parametrize("rule_name", RULES)
@pytest.mark.parametrize("failing_response", ["A", "B"])
def test_failure_in_one_order_fails_the_combination(rule_name: str, failing_response: str) -> None:
    table = {"A": Verdict.hard("x", Label.FIRST), "B": Verdict.hard("x", Label.SECOND)}
    table[failing_response] = Verdict.failed("x", VerdictState.UNPARSED, "no verdict in output", raw="hmm")
    [judgment] = both_orders(FakeJudge(by_first_response(table)), rule=rule_name).judge_with_orders([A_B])

    assert judgment.combined.state is VerdictState.UNPARSED
    assert judgment.combined.winner is None and judgment.combined.p_tie is None
    assert judgment.consistent is None
    failed_order = "(1, 2)" if failing_response == "A" else "(2, 1)"
    other_order = "(2, 1)" if failing_response == "A" else "(1, 2)"
    error = judgment.combined.error or ""
    assert f"order {failed_order} failed" in error
    assert other_order not in error
    assert judgment.combined.raw == "hmm"


def test_both_orders_failing_takes_the_first_orders_state() -> None:
    rule = by_first_response(
        {
            "A": Verdict.failed("x", VerdictState.OVER_CONTEXT, "too long"),
            "B": Verdict.failed("x", VerdictState.ERROR, "boom"),
        }
    )
    [verdict] = both_orders(FakeJudge(rule))([A_B])
    assert verdict.state is VerdictState.OVER_CONTEXT
    error = verdict.error or ""
    assert "(1, 2)" in error and "too long" in error
    assert "(2, 1)" in error and "boom" in error


def test_consistency_per_item() -> None:
    items = [
        PairItem("Q", "a long and detailed answer", "no"),  # length gap beats the position bias in both orders
        PairItem("Q", "same", "size"),  # equal lengths: the bias decides, so each order picks its first response
        PairItem("Q", "x", "y", id="failing"),
    ]
    length_rule = PreferLonger(position_bias=0.5)

    def rule(item: PairItem) -> Verdict:
        if item.id == "failing":
            return Verdict.failed("x", VerdictState.ERROR, "boom")
        return length_rule(item)

    judgments = both_orders(FakeJudge(rule)).judge_with_orders(items)
    assert [j.consistent for j in judgments] == [True, False, None]
    assert judgments[1].combined.winner is Label.TIE


def test_counts_cost_and_latency_are_summed_and_text_comes_from_the_first_order() -> None:
    rule = by_first_response(
        {
            "A": Verdict.hard(
                "x", Label.FIRST, reason="A is right", reference="ref", prompt_tokens=10, cost_usd=0.25, latency_s=1.0
            ),
            "B": Verdict.hard("x", Label.SECOND, reason="B is wrong", prompt_tokens=12, latency_s=0.5),
        }
    )
    [verdict] = both_orders(FakeJudge(rule, judge_id="inner"))([A_B])
    assert verdict.judge_id == "both-orders[average](inner)"
    assert verdict.prompt_tokens == 22
    assert verdict.completion_tokens is None
    assert verdict.cost_usd == 0.25
    assert verdict.latency_s == pytest.approx(1.5)
    assert (verdict.reason, verdict.reference) == ("A is right", "ref")


def test_position_independent_judge_sees_the_same_verdict_in_both_orders() -> None:
    items = [PairItem("Q", "short", "a bit longer"), PairItem("Q", "the longest one here", "mid")]
    for judgment in both_orders(FakeJudge(PreferLonger())).judge_with_orders(items):
        assert judgment.consistent is True
        assert probs(judgment.first) == pytest.approx(probs(judgment.second))
        assert probs(judgment.combined) == pytest.approx(probs(judgment.first))


def test_swap_then_flip_back_is_the_identity() -> None:
    verdicts = [
        Verdict.from_probs("j", 0.7, 0.2, 0.1, generated_winner=Label.SECOND, reason="r"),
        Verdict.hard("j", Label.TIE),
        Verdict.failed("j", VerdictState.UNPARSED, "no label"),
    ]
    for verdict in verdicts:
        assert verdict.flipped().flipped() == verdict
    assert A_B.swapped().swapped() == A_B
    # Judging the swapped item and flipping back gives the verdict on the original item.
    judge = FakeJudge(PreferLonger())
    item = PairItem("Q", "tiny", "considerably longer")
    direct, via_swap = judge([item, item.swapped()])
    assert probs(via_swap.flipped()) == pytest.approx(probs(direct))
    assert via_swap.flipped().winner is direct.winner


def test_unknown_rule_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'majority'.*average, paper"):
        BothOrdersJudge(FakeJudge(), rule="majority")
    with pytest.raises(ValueError, match="average, paper"):
        combine_orders(Verdict.hard("j", Label.TIE), Verdict.hard("j", Label.TIE), rule="vote", judge_id="j")


def test_inner_judge_breaking_the_contract_is_an_error() -> None:
    class Short(FakeJudge):
        def __call__(self, items):
            return super().__call__(items)[:-1]

    with pytest.raises(RuntimeError, match="returned 1 verdicts for 2 items"):
        both_orders(Short(Fixed(Label.FIRST)))([A_B])


def test_ordered_judgment_is_frozen() -> None:
    verdict = Verdict.hard("j", Label.FIRST)
    judgment = OrderedJudgment(first=verdict, second=verdict, combined=verdict)
    with pytest.raises(AttributeError):
        judgment.first = replace(verdict, reason="changed")  # type: ignore[misc]
