"""Verdicts, labels and items: the invariants every judge relies on."""

import pytest

from lm_eval_pandalm import Label, PairItem, Verdict, VerdictState


def test_from_probs_normalises_and_picks_the_winner():
    verdict = Verdict.from_probs("j", 2.0, 1.0, 1.0)
    assert (verdict.p_first, verdict.p_second, verdict.p_tie) == pytest.approx((0.5, 0.25, 0.25))
    assert verdict.winner is Label.FIRST
    assert verdict.confidence == pytest.approx(0.5)
    assert verdict.ok


def test_ok_verdict_refuses_probabilities_that_do_not_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        Verdict(judge_id="j", p_first=0.5, p_second=0.4, p_tie=0.0, winner=Label.FIRST)


def test_failed_verdict_has_no_winner_and_no_probabilities():
    verdict = Verdict.failed("j", VerdictState.UNPARSED, "said 'garbage'", raw="garbage")
    assert not verdict.ok
    assert verdict.winner is None and verdict.confidence is None
    with pytest.raises(ValueError):
        verdict.prob(Label.TIE)
    with pytest.raises(ValueError):
        Verdict(judge_id="j", state=VerdictState.ERROR, p_first=1.0, p_second=0.0, p_tie=0.0, winner=Label.FIRST)
    with pytest.raises(ValueError):
        Verdict.failed("j", VerdictState.OK, "not a failure")


def test_flipping_twice_is_identity_and_exchanges_first_and_second():
    verdict = Verdict.from_probs("j", 0.7, 0.2, 0.1, generated_winner=Label.SECOND)
    flipped = verdict.flipped()
    assert flipped.winner is Label.SECOND and flipped.p_first == pytest.approx(0.2)
    assert flipped.generated_winner is Label.FIRST
    assert flipped.flipped() == verdict


def test_verdict_dict_round_trip():
    verdict = Verdict.hard("replay:x", Label.TIE, raw="Tie", reason="same", source="replay")
    assert Verdict.from_dict(verdict.to_dict()) == verdict
    failed = Verdict.failed("j", VerdictState.OVER_CONTEXT, "too long", prompt_tokens=5000)
    assert Verdict.from_dict(failed.to_dict()) == failed


def test_item_key_is_content_based_and_order_sensitive():
    a = PairItem(instruction="Say hi", response1="hi", response2="hello", id="x", metadata={"m": 1})
    b = PairItem(instruction="Say hi", response1="hi", response2="hello", id="y")
    assert a.key == b.key
    assert a.swapped().key != a.key
    assert a.swapped().swapped() == a
    assert (
        PairItem(instruction="i", response1="a", response2="b").id
        == PairItem(instruction="i", response1="a", response2="b").key
    )


def test_item_refuses_non_string_fields():
    with pytest.raises(TypeError, match="response1"):
        PairItem(instruction="i", response1=True, response2="b")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "label"),
    [("1", Label.FIRST), ("2\n\n### Reason: x", Label.SECOND), ("tie", Label.TIE), ("garbage", None), ("", None)],
)
def test_label_parse(text, label):
    assert Label.parse(text) is label
