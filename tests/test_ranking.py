"""Ratings, schedules and the compare pipeline on simulated candidates (acceptance 2, few seeds) and real inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lm_eval_pandalm.cli import main
from lm_eval_pandalm.ranking.compare import compare_answers
from lm_eval_pandalm.ranking.ratings import Counts, fit_ratings, rate
from lm_eval_pandalm.ranking.simulate import ScriptedJudge, World, adaptive_study, coverage_study, judge_ratings
from lm_eval_pandalm.ranking.tournament import Tournament, against_baseline, all_pairs, run_adaptive
from lm_eval_pandalm.wrappers.cache import cached


def _counts() -> Counts:
    counts = Counts.empty(["a", "b", "c"])
    counts.add(0, 1, wins_a=60, wins_b=30, ties=10)
    counts.add(1, 2, wins_a=55, wins_b=40, ties=5)
    counts.add(0, 2, wins_a=70, wins_b=25, ties=5)
    return counts


def test_bootstrap_is_seeded_and_intervals_bracket_the_fit() -> None:
    first, again, other = (rate(_counts(), rounds=300, seed=s) for s in (7, 7, 8))
    assert first == again
    assert first.ci_low != other.ci_low
    for rating, low, high in zip(first.ratings, first.ci_low, first.ci_high, strict=True):
        assert low < rating < high
    assert first.best == "a" and first.best_separated
    assert ("a", "c") in first.better and ("a", "b") in first.better
    # a > b > c makes a > c implied: the partial-order graph drops it when b > c is significant too.
    if ("b", "c") in first.better:
        assert ("a", "c") not in first.hasse_edges()


def test_ties_count_half_a_win_each() -> None:
    only_ties, split = Counts.empty(["a", "b"]), Counts.empty(["a", "b"])
    only_ties.add(0, 1, ties=40)
    split.add(0, 1, wins_a=20, wins_b=20)
    assert np.allclose(fit_ratings(only_ties), 0) and np.allclose(fit_ratings(split), 0)
    leaning = Counts.empty(["a", "b"])
    leaning.add(0, 1, wins_a=30, wins_b=10, ties=20)  # 40 of 60 points: odds 2
    assert fit_ratings(leaning)[0] - fit_ratings(leaning)[1] == pytest.approx(np.log(2), abs=0.01)


def test_schedules_play_what_they_say() -> None:
    assert len(all_pairs(4, 3)) == 6 * 3
    games = against_baseline(4, 3, baseline=2)
    assert set(games[:, 1]) == {2} and len(games) == 9
    world = World([0.0, 1.0], 5, error=0.0, seed=0)
    tournament = Tournament(["x", "y"], 5)
    tournament.play(all_pairs(2, 5), world.play)
    with pytest.raises(ValueError, match="twice"):
        tournament.play(all_pairs(2, 5), world.play)


def test_scripted_judge_errs_at_its_rate() -> None:
    world = World(np.zeros(2), 20000, error=0.15, seed=3, both_orders=False)
    games = np.stack([np.zeros(20000, int), np.ones(20000, int), np.arange(20000)], axis=1)
    codes = world.play(games)
    truth = world.quality[0] > world.quality[1]
    assert (codes == 0).mean() == pytest.approx(0.5, abs=0.02)
    assert ((codes == 0) != truth).mean() == pytest.approx(0.15, abs=0.01)


def test_coverage_study_few_seeds() -> None:
    # The full study (200 seeds, 1000 rounds) is in BENCHMARKS.md; a few seeds must already recover the order.
    out = coverage_study(seeds=4, rounds=200)
    assert out["exact_order_recovered"] == 1.0
    assert 0.6 <= out["coverage_of_judge_ratings"] <= 1.0
    # The erring judge compresses the ratings: intervals around its ratings miss most true strengths.
    assert out["coverage_of_true_strengths"] < 0.5
    assert judge_ratings([0, 1], 0.0)[1] - judge_ratings([0, 1], 0.0)[0] == pytest.approx(1.0, abs=1e-3)


def test_adaptive_schedule_finds_the_best_with_few_judgments() -> None:
    strengths = np.append(np.linspace(-2, 1, 11), 2.0)  # the best is clearly the best
    for seed in range(3):
        world = World(strengths, 170, error=0.15, seed=seed)
        tournament = Tournament([f"c{i}" for i in range(12)], 170)
        result = run_adaptive(tournament, world.play, confidence=0.95, seed=seed)
        assert result.stop == "separated" and result.top == [11]
        assert tournament.games_played < 0.3 * tournament.all_pairs_games


def test_adaptive_study_reports_its_figures() -> None:
    # The full study (80 candidates, 200 seeds) is in BENCHMARKS.md; this checks the figures it reports.
    out = adaptive_study(seeds=2, n=12, n_instructions=30, budget_share=0.5)
    assert 0 <= out["best_found"] <= 1 and 0 <= out["best_found_all_pairs"] <= 1
    assert out["judgment_share_max"] <= 0.5 + 1e-9
    assert sum(out["stops"].values()) == 2 and 0 <= out["sample_best_found"] <= 1


def test_adaptive_schedule_respects_its_budget() -> None:
    world = World(np.linspace(0, 0.01, 6), 30, error=0.3, seed=1)  # nearly equal: never separated
    tournament = Tournament([f"c{i}" for i in range(6)], 30)
    result = run_adaptive(tournament, world.play, budget=120, seed=1)
    assert result.stop == "budget" and not result.separated
    assert tournament.games_played == 120


class _Counting:
    def __init__(self, inner: ScriptedJudge) -> None:
        self.inner, self.judge_id, self.fingerprint, self.items = inner, inner.judge_id, inner.fingerprint, 0

    def __call__(self, items):  # type: ignore[no-untyped-def]
        self.items += len(items)
        return self.inner(items)


def test_compare_answers_judges_both_orders_through_the_cache(tmp_path: Path) -> None:
    world = World([1.5, 0.5, -0.5, -1.5], 30, error=0.1, seed=2)
    scripted = ScriptedJudge(world)
    answers = scripted.answers(["w", "x", "y", "z"])
    counting = _Counting(scripted)
    judge = cached(counting, tmp_path / "cache.sqlite")  # type: ignore[arg-type]
    result = compare_answers(answers, judge, schedule="all-pairs", rounds=200)
    assert counting.items == 2 * 6 * 30 and result.judgments == 2 * 6 * 30
    assert [r["name"] for r in result.table.rows()] == ["w", "x", "y", "z"]
    again = compare_answers(answers, judge, schedule="all-pairs", rounds=200)
    assert counting.items == 2 * 6 * 30  # every judgment came from the cache
    assert again.counts.pairs() == result.counts.pairs()
    baseline = compare_answers(answers, judge, schedule="baseline", baseline="z", rounds=200)
    assert {(p["a"], p["b"]) for p in baseline.counts.pairs()} == {("w", "z"), ("x", "z"), ("y", "z")}


def _fake_judge(tmp_path: Path) -> Path:
    config = tmp_path / "fake.yaml"
    config.write_text(f"type: fake\nname: rank\nlog_path: {tmp_path / 'judged.log'}\n")
    return config


def test_compare_cli_on_response_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    instructions = [f"Say something about {topic}." for topic in ("cats", "dogs", "rain", "tea", "maps")]
    paths = []
    for name, words in (("short", 1), ("medium", 4), ("long", 9)):
        path = tmp_path / f"{name}.jsonl"
        rows = [
            {"instruction": ins, "response": " ".join(["word"] * words) + f" {i}"} for i, ins in enumerate(instructions)
        ]
        path.write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))  # order differs from the others
        paths.append(f"{name}={path}")
    cache = tmp_path / "cache.sqlite"
    args = ["compare", "--judge", str(_fake_judge(tmp_path)), "--cache", str(cache), "--json", "--bootstrap", "200"]
    args += [x for p in paths for x in ("--responses", p)]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # The fake judge prefers the longer response.
    assert [r["name"] for r in summary["ratings"]] == ["long", "medium", "short"]
    pair = next(p for p in summary["pairs"] if {p["a"], p["b"]} == {"short", "long"})
    assert pair["wins_a" if pair["a"] == "long" else "wins_b"] == 5
    judged = (tmp_path / "judged.log").read_text().split()
    assert len(judged) == 2 * 3 * 5 == summary["judgments"]
    assert main(args) == 0  # again: all from the cache
    assert len((tmp_path / "judged.log").read_text().split()) == len(judged)


def test_compare_cli_on_lm_eval_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = []
    for name, text in (("a", "a fairly long and detailed answer"), ("b", "short")):
        path = tmp_path / f"samples_pandalm_pairwise_generate_{name}.jsonl"
        rows = [
            {"doc_id": i, "doc": {"instruction": f"task {i}", "input": ""}, "resps": [[f"{text} {i}"]]}
            for i in range(4)
        ]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths += ["--samples", f"{name}={path}"]
    assert main(["compare", "--judge", str(_fake_judge(tmp_path)), "--no-cache", "--json", *paths]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["pairs"] == [{"a": "a", "b": "b", "wins_a": 4, "wins_b": 0, "ties": 0, "failed": 0}]


def test_compare_cli_rejects_mismatched_instructions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    one.write_text('{"instruction": "x", "response": "1"}\n{"instruction": "y", "response": "1"}\n')
    two.write_text('{"instruction": "x", "response": "2"}\n')
    args = ["compare", "--judge", str(_fake_judge(tmp_path)), "--no-cache", "--responses", str(one)]
    assert main([*args, "--responses", str(two)]) == 2
    err = capsys.readouterr().err
    assert "two.jsonl" in err and "lacks 1" in err


def test_length_control_moves_towards_true_quality() -> None:
    from lm_eval_pandalm.ranking.length_control import length_study

    out = length_study(seeds=8)
    for name in ("terse-strong", "verbose-weak"):
        row = out[name]
        assert abs(row["lc_win_rate"] - row["true_win_rate"]) < abs(row["raw_win_rate"] - row["true_win_rate"]) / 2
    # Raw win rates rank the verbose weak candidate first; length-controlled ones rank by quality.
    assert out["verbose-weak"]["raw_win_rate"] > out["terse-strong"]["raw_win_rate"]
    assert out["terse-strong"]["lc_win_rate"] > out["plain"]["lc_win_rate"] > out["verbose-weak"]["lc_win_rate"]


def test_length_controlled_metric_reads_the_judge_filter_output() -> None:
    from lm_eval_pandalm.harness.judging import JudgmentSummary
    from lm_eval_pandalm.harness.length_metric import lc_win_rate, lc_win_rate_stderr, pandalm_lc_win_rate

    def doc(p: float | None, response: str) -> str:
        state, outcome = ("ok", "win" if p > 0.5 else "loss") if p is not None else ("error", None)  # type: ignore[operator]
        probs = (p, None if p is None else 1 - p, None if p is None else 0.0)
        return JudgmentSummary(
            outcome, state, *probs, None, None, None, None, None, "j", "both-orders", response
        ).to_json()

    items = [
        pandalm_lc_win_rate(["base line"], [doc(p, "x" * n)]) for p, n in ((0.9, 30), (0.2, 2), (0.7, 20), (0.4, 5))
    ]
    items.append(pandalm_lc_win_rate(["base line"], [doc(None, "failed")]))
    assert items[0] == (0.9, 21.0) and all(np.isnan(items[-1]))
    assert 0 < lc_win_rate(items) < 1 and lc_win_rate_stderr(items) > 0
    with pytest.raises(ValueError, match="baseline text"):
        pandalm_lc_win_rate([None], [doc(0.9, "x")])


def test_compare_reports_length_controlled_win_rates(tmp_path: Path) -> None:
    world = World([0.5, 0.0, -0.5], 40, error=0.1, seed=4)
    scripted = ScriptedJudge(world)
    result = compare_answers(scripted.answers(["a", "b", "c"]), scripted, schedule="baseline", baseline="c", rounds=100)
    rows = {r["name"]: r for r in result.extra["length_controlled"]}
    assert set(rows) == {"a", "b"} and rows["a"]["games"] == 40
    assert rows["a"]["win_rate"] > rows["b"]["win_rate"]


def test_compare_answers_adaptive_schedule_through_the_judge() -> None:
    from lm_eval_pandalm.ranking.report import to_json

    world = World([2.0, 0.6, 0.3, 0.0, -0.3, -0.6], 80, error=0.1, seed=5)
    scripted = ScriptedJudge(world)
    result = compare_answers(scripted.answers(), scripted, schedule="adaptive", confidence=0.9, rounds=100, seed=5)
    summary = to_json(result)
    assert summary["adaptive"]["stop"] == "separated" and summary["best"] == "c0"
    assert summary["judgments"] < summary["all_pairs_judgments"] == 2 * 15 * 80
