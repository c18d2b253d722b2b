"""Calibration of a cascade: the fixed-sequence binomial threshold, its guarantee, the router, and the simulation
(calibration figures and sweeps) agreeing with the live cascade."""

from __future__ import annotations

import math
import random

import pytest

from lm_eval_pandalm.testing.fakes import FakeJudge, PreferLonger
from lm_eval_pandalm.types import Label, PairItem, Verdict
from lm_eval_pandalm.wrappers.cascade import build_cascade
from lm_eval_pandalm.wrappers.cascade.build import with_policy
from lm_eval_pandalm.wrappers.cascade.calibration import (
    Trace,
    calibrate,
    collect_traces,
    fit_router,
    fixed_sequence_threshold,
    sweep,
)
from lm_eval_pandalm.wrappers.cascade.config import parse_cascade_mapping
from lm_eval_pandalm.wrappers.cascade.report import cascade_figures


def _binom_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def _reference_threshold(scores: list[float], agree: list[bool], alpha: float, delta: float) -> float | None:
    """Fixed-sequence testing written out plainly, for comparison."""
    min_kept = next(n for n in range(1, 10_000) if _binom_cdf(math.floor(n * alpha / 2), n, alpha) <= delta)
    chosen = None
    for value in sorted(set(scores), reverse=True):
        kept = [a for s, a in zip(scores, agree, strict=True) if s >= value]
        if len(kept) < min_kept:
            continue
        if _binom_cdf(len(kept) - sum(kept), len(kept), alpha) > delta:
            break
        chosen = value
    return chosen


def test_reference_binomial_is_scipy_s() -> None:
    from scipy.stats import binom

    assert _binom_cdf(3, 40, 0.1) == pytest.approx(binom.cdf(3, 40, 0.1))


def test_threshold_matches_the_plain_procedure() -> None:
    rng = random.Random(3)
    for _ in range(6):
        scores = [round(rng.random(), 2) for _ in range(100)]
        agree = [rng.random() < 0.4 + 0.6 * s for s in scores]
        got, info = fixed_sequence_threshold(scores, agree, alpha=0.15, delta=0.1)
        assert got == _reference_threshold(scores, agree, 0.15, 0.1)
        if got is not None:
            kept = [a for s, a in zip(scores, agree, strict=True) if s >= got]
            assert info["kept"] == len(kept) and info["errors"] == len(kept) - sum(kept)
            assert info["p_value"] <= 0.1


def test_no_threshold_when_nothing_can_be_certified() -> None:
    threshold, info = fixed_sequence_threshold([0.9] * 50, [False] * 25 + [True] * 25, alpha=0.1, delta=0.1)
    assert threshold is None and info["first_test"]["errors"] == 25
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        fixed_sequence_threshold([0.5], [True], alpha=0.0, delta=0.1)


def test_guarantee_holds_on_fresh_data_at_the_stated_rate() -> None:
    """Scores uniform on [0, 1], P(disagree | s) = 0.4 (1 - s): the kept set s >= t disagrees at rate 0.2 (1 - t).
    Over many calibration sets, that true rate may exceed alpha at most about delta of the time (and thresholds are
    found: the test is not vacuous)."""
    alpha, delta, n, runs = 0.1, 0.1, 600, 120
    rng = random.Random(11)
    violations = found = 0
    for _ in range(runs):
        scores = [rng.random() for _ in range(n)]
        agree = [rng.random() >= 0.4 * (1 - s) for s in scores]
        threshold, _ = fixed_sequence_threshold(scores, agree, alpha, delta)
        if threshold is not None:
            found += 1
            violations += 0.2 * (1 - threshold) > alpha
    assert found >= runs * 0.9
    assert violations / runs <= delta + 3 * math.sqrt(delta * (1 - delta) / runs)


def _trace(consistent: bool, agree: bool) -> Trace:
    values = {"consistent": consistent, "length_ratio": 1.0}
    return Trace([values, {}], [agree, True], [float(agree), 1.0], [False, False], [0.0, 1.0])


def test_router_learns_an_informative_signal_and_predicts_like_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = random.Random(5)
    traces = []
    for _ in range(300):
        consistent = rng.random() < 0.5
        traces.append(_trace(consistent, rng.random() < (0.9 if consistent else 0.2)))
    router = fit_router(traces, 0, ["consistent"])
    assert router.coef[0] > 0
    assert router.predict({"consistent": True}) > 0.8 > 0.3 > router.predict({"consistent": False})
    x = [[(float(t.values[0]["consistent"]) - router.mean[0]) / router.scale[0]] for t in traces]
    sk = LogisticRegression(max_iter=2000).fit(x, [t.agree[0] for t in traces])
    z_consistent = (1.0 - router.mean[0]) / router.scale[0]
    assert router.predict({"consistent": True}) == pytest.approx(sk.predict_proba([[z_consistent]])[0][1], abs=1e-4)
    with pytest.raises(ValueError, match="no usable signal"):
        fit_router(traces, 0, [])


def _benchmark(seed: int, n: int) -> tuple[list[PairItem], list[Label]]:
    """Pairs where the longer response is right, except for a share of "hard" pairs where the shorter one is."""
    rng = random.Random(seed)
    items, gold = [], []
    for i in range(n):
        a, b = rng.randint(5, 60), rng.randint(5, 60)
        hard = rng.random() < 0.2
        items.append(PairItem(f"Task {seed}-{i}", "x" * a, "y" * b))
        longer = Label.FIRST if a > b else Label.SECOND if b > a else Label.TIE
        gold.append(longer.flipped() if hard else longer)
    return items, gold


def _oracle(gold_of: dict[str, Label]) -> FakeJudge:
    def rule(item: PairItem) -> Verdict:
        label = gold_of.get(item.key)
        if label is None:
            label = gold_of[item.swapped().key].flipped()
        return Verdict.hard("strong", label)

    return FakeJudge(rule, judge_id="strong")


def test_calibration_figures_and_sweeps_agree_with_the_live_cascade() -> None:
    sets_raw = [_benchmark(seed, 150) for seed in (1, 2)]
    gold_of = {item.key: label for items, gold in sets_raw for item, label in zip(items, gold, strict=True)}
    cheap = FakeJudge(PreferLonger(position_bias=0.4), judge_id="cheap")
    config = parse_cascade_mapping(
        {"stages": [{"name": "cheap", "judge": "fake:c"}, {"name": "strong", "judge": "fake:s", "model": "gpt-4"}]}
    )
    judge = build_cascade(config, judges=[cheap, _oracle(gold_of)])
    sets = [collect_traces(judge, f"set{i}", items, gold) for i, (items, gold) in enumerate(sets_raw)]
    policy = calibrate(judge, sets, alpha=0.2, delta=0.1, score="router")
    assert policy.type == "calibrated" and policy.thresholds and policy.thresholds[0] is not None
    live = with_policy(judge, policy)
    items = [item for s in sets for item in s.items]
    gold = [label for s in sets for label in s.gold]
    live(items)
    figures = cascade_figures(live, items, gold)
    # The calibration's own figures are what the live cascade does on the same data.
    assert figures["escalated_fraction"] == pytest.approx(policy.calibration["reach"][1])  # type: ignore[index]
    kept = policy.calibration["stages"][0]  # type: ignore[index]
    assert figures["guarantee"]["kept_units"] == kept["kept"]
    assert figures["guarantee"]["agreement_kept"] == pytest.approx(1 - kept["errors"] / kept["kept"])
    assert figures["guarantee"]["agreement_kept"] >= 0.8
    points = sweep(sets, policy, [0.0, 0.5, 1.0])
    cheap_accuracy = sum(t.correct[0] for s in sets for t in s.traces) / len(items)
    assert points[0]["escalated_fraction"] == 0.0 and points[0]["accuracy"] == pytest.approx(cheap_accuracy)
    assert points[2]["escalated_fraction"] == 1.0 and points[2]["accuracy"] == 1.0  # the oracle decides all
    assert points[0]["cost_usd"] == 0 < points[1]["cost_usd"] < points[2]["cost_usd"]
