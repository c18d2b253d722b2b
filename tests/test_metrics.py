"""Agreement figures, checked against hand-computed values."""

import pytest

from lm_eval_pandalm.metrics import classification_report, first_position_rate
from lm_eval_pandalm.types import Label

F, S, T = Label.FIRST, Label.SECOND, Label.TIE


def test_macro_scores_match_a_hand_computation():
    gold = [F, F, S, S, T]
    pred = [F, S, S, S, F]
    report = classification_report(gold, pred)
    # class 1: P=1/2 R=1/2; class 2: P=2/3 R=1; Tie: P=0 (never predicted) R=0
    assert report.precision_macro == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    assert report.recall_macro == pytest.approx((0.5 + 1 + 0) / 3)
    assert report.f1_macro == pytest.approx((0.5 + 0.8 + 0) / 3)
    assert report.accuracy == pytest.approx(3 / 5)
    assert report.confusion["Tie"]["1"] == 1


def test_macro_runs_only_over_classes_present_in_gold():
    report = classification_report([F, S], [F, T])
    # Tie is absent from gold: the average is over classes 1 and 2 only.
    assert report.recall_macro == pytest.approx(0.5)
    assert report.precision_macro == pytest.approx(0.5)


def test_failed_judgments_are_neither_correct_nor_a_class():
    report = classification_report([F, S, T, T], [F, None, None, T])
    assert report.failed == 2
    assert report.accuracy == pytest.approx(0.5)
    assert report.accuracy_judged == pytest.approx(1.0)
    assert report.confusion["2"]["failed"] == 1
    # failed never counts as Tie: Tie's precision is 1/1 and its recall 1/2; class 2 is never predicted (P = 0)
    assert report.precision_macro == pytest.approx((1 + 0 + 1) / 3)
    assert report.recall_macro == pytest.approx((1 + 0 + 0.5) / 3)


def test_all_failed_has_no_judged_accuracy():
    assert classification_report([F], [None]).accuracy_judged is None


def test_length_mismatch_and_empty_input_are_errors():
    with pytest.raises(ValueError, match="gold has 1"):
        classification_report([F], [])
    with pytest.raises(ValueError, match="empty"):
        classification_report([], [])


def test_first_position_rate_counts_side_picks_only():
    assert first_position_rate([F, F, F, S]) == pytest.approx(0.75)
    # Ties and failed judgments pick no side: they are neither first nor second.
    assert first_position_rate([F, T, None, S]) == pytest.approx(0.5)
    assert first_position_rate([T, None]) is None
    assert first_position_rate([]) is None
