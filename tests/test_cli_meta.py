"""Acceptance figures of `pandalm meta` on recorded verdicts (issue 2, items 1 and 2)."""

import json
import re

import pytest

from lm_eval_pandalm.cli import main

LLMBAR_SETS = {
    "llmbar-natural": "Natural",
    "llmbar-neighbor": "Adversarial/Neighbor",
    "llmbar-gptinst": "Adversarial/GPTInst",
    "llmbar-gptout": "Adversarial/GPTOut",
    "llmbar-manual": "Adversarial/Manual",
}


def run_meta(capsys, *args):
    assert main(["meta", "--json", "--no-cache", *args]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("judge", "figures"),
    [
        ("replay:pandalm-7b", (0.6677, 0.5738, 0.5750, 0.5743)),
        ("replay:gpt-3.5-turbo", (0.7107, 0.5879, 0.5736, 0.5755)),
    ],
)
@pytest.mark.usefixtures("shared_data_dir")  # its judge or benchmark reads the data mirror
def test_pandalm_readme_table_is_reproduced(capsys, judge, figures):
    result = run_meta(capsys, "--benchmark", "pandalm", "--judge", judge, "--protocol", "pandalm-legacy")
    measured = tuple(round(result[k], 4) for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro"))
    assert measured == figures
    assert result["n"] == 999


@pytest.mark.usefixtures("shared_data_dir")  # its judge or benchmark reads the data mirror
def test_first_order_keeps_unparsed_verdicts_apart(capsys):
    result = run_meta(capsys, "--benchmark", "pandalm", "--judge", "replay:gpt-3.5-turbo")
    assert result["failed"] == 25
    assert result["failed_by_state"] == {"unparsed": 25}
    assert sum(result["confusion"][label]["failed"] for label in result["confusion"]) == 25


def _percent(text: str) -> float:
    return float(re.search(r"([\d.]+)%\s*$", text).group(1)) / 100


@pytest.mark.parametrize("judge", ["GPT-4", "ChatGPT", "LLaMA2"])
@pytest.mark.parametrize("bench_name", list(LLMBAR_SETS))
def test_llmbar_statistics_are_reproduced(capsys, shared_data_dir, bench_name, judge):
    stats_path = (
        shared_data_dir
        / "princeton-nlp/LLMBar/Dataset/LLMBar"
        / LLMBAR_SETS[bench_name]
        / f"evaluators/{judge}/Vanilla_NoRules/statistics.json"
    )
    stats = json.loads(stats_path.read_text())
    both = run_meta(capsys, "--benchmark", bench_name, "--judge", f"replay:{judge}", "--protocol", "both-orders")
    assert both["accuracy_order_avg"] == pytest.approx(_percent(stats["correct_average"]), abs=5e-4)
    assert both["positional_agreement"] == pytest.approx(_percent(stats["equal"]), abs=5e-4)
    assert both["llmbar_equal"] == pytest.approx(_percent(stats["equal"]), abs=5e-4)
    first = run_meta(capsys, "--benchmark", bench_name, "--judge", f"replay:{judge}", "--protocol", "first-order")
    assert first["accuracy"] == pytest.approx(_percent(stats["correct_False"]), abs=5e-4)


@pytest.mark.usefixtures("shared_data_dir")  # its judge or benchmark reads the data mirror
def test_paper_rule_turns_conflicts_into_ties(capsys):
    result = run_meta(capsys, "--benchmark", "llmbar-natural", "--judge", "replay:ChatGPT", "--protocol", "paper")
    # ChatGPT disagrees with itself across orders on 32 of the 100 Natural pairs; LLMBar has no tie labels.
    assert sum(result["confusion"][label]["Tie"] for label in result["confusion"]) == 32
    assert result["positional_agreement"] == pytest.approx(0.68)


@pytest.mark.usefixtures("shared_data_dir")  # its judge or benchmark reads the data mirror
def test_one_order_recordings_cannot_serve_both_orders(capsys):
    assert main(["meta", "--benchmark", "pandalm", "--judge", "replay:pandalm-7b", "--protocol", "both-orders"]) == 2
    assert "no recorded verdict" in capsys.readouterr().err.lower()


@pytest.mark.usefixtures("shared_data_dir")  # its judge or benchmark reads the data mirror
def test_limit_and_human_readable_table(capsys):
    assert main(["meta", "--benchmark", "pandalm", "--judge", "replay:human", "--limit", "20"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^n\s+20$", out, re.M)
    assert re.search(r"^accuracy\s+1\.0000$", out, re.M)


@pytest.mark.usefixtures("shared_data_dir")  # its judge or benchmark reads the data mirror
def test_unknown_benchmark_is_a_clear_error(capsys):
    assert main(["meta", "--benchmark", "llmbar-natrual", "--judge", "replay:human"]) == 2
    assert "llmbar-natural" in capsys.readouterr().err


def test_llmbar_equal_counts_two_failed_orders_as_agreeing(capsys, tmp_path):
    """positional_agreement: a failed order never agrees; llmbar_equal (LLMBar's own definition): two failed agree."""
    from lm_eval_pandalm.meta import evaluate_judge
    from lm_eval_pandalm.testing.fakes import FakeJudge, Fixed
    from lm_eval_pandalm.types import Label, PairItem, VerdictState

    items = [PairItem(f"Q{i}", "a", "b") for i in range(4)]
    result = evaluate_judge(FakeJudge(Fixed(VerdictState.UNPARSED)), items, [Label.FIRST] * 4, "both-orders")
    assert result.positional_agreement == 0.0 and result.llmbar_equal == 1.0
    assert result.to_dict()["llmbar_equal"] == 1.0


@pytest.mark.usefixtures("shared_data_dir")  # its judge or benchmark reads the data mirror
def test_meta_json_is_strict_json_and_says_what_failed(capsys):
    assert main(["meta", "--json", "--benchmark", "pandalm", "--judge", "replay:gpt-3.5-turbo"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    json.loads(out[-1], parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    summary = next(line for line in out if line.startswith("judged 999:"))
    assert "unparsed" in summary and "names no verdict" in summary


def test_first_position_rate_measures_position_bias_in_both_orders():
    """0.5 for a judge that ignores the order, 1.0 for one that always picks the slot shown first; in --json."""
    from lm_eval_pandalm.meta import evaluate_judge
    from lm_eval_pandalm.testing.fakes import FakeJudge, Fixed, PreferLonger
    from lm_eval_pandalm.types import Label, PairItem

    items = [PairItem(f"Q{i}", "a" * (i + 1), "b" * (5 - i)) for i in range(5)]  # item 2: equal lengths
    gold = [Label.SECOND, Label.SECOND, Label.TIE, Label.FIRST, Label.FIRST]
    fair = evaluate_judge(FakeJudge(PreferLonger()), items, gold, "both-orders")
    assert fair.first_position_rate == 0.5 and fair.positional_agreement == 1.0
    always_first = evaluate_judge(FakeJudge(Fixed(Label.FIRST)), items, gold, "both-orders")
    assert always_first.first_position_rate == 1.0 and always_first.positional_agreement == 0.0
    # A mild bias tips only the equal-length pair (slot 1 in both its orders); each other pair gives one of each.
    mild = evaluate_judge(FakeJudge(PreferLonger(position_bias=0.5)), items, gold, "both-orders")
    assert mild.first_position_rate == pytest.approx(6 / 10)
    assert evaluate_judge(FakeJudge(), items, gold, "first-order").first_position_rate is None
    assert mild.to_dict()["first_position_rate"] == pytest.approx(0.6)  # what `pandalm meta --json` prints
