"""Recorded verdicts served as a judge, checked against the figures their publishers report."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from lm_eval_pandalm.data import BENCHMARKS, ChecksumMismatchError, llmbar_evaluator_file, load_benchmark
from lm_eval_pandalm.judge import Judge
from lm_eval_pandalm.judges.replay import MissingVerdictError, replay_judge
from lm_eval_pandalm.types import Label, PairItem, VerdictState
from lm_eval_pandalm.verdict_io import write_verdicts

# Every test here reads recorded verdicts from the shared offline mirror.
pytestmark = pytest.mark.usefixtures("shared_data_dir")

LLMBAR_SETS = ["llmbar-natural", "llmbar-neighbor", "llmbar-gptinst", "llmbar-gptout", "llmbar-manual"]
STRANGER = PairItem(instruction="Not in any benchmark.", response1="a", response2="b", id="stranger/0")


def _count(text: str) -> int:
    """LLMBar writes counts as ``"92 / 100 = 92.0%"``."""
    match = re.match(r"\s*(\d+)\s*/\s*\d+", text)
    assert match, text
    return int(match.group(1))


def _statistics(shared_data_dir: Path, benchmark: str, judge: str) -> dict:
    file = llmbar_evaluator_file(benchmark, judge, filename="statistics.json")
    return json.loads((shared_data_dir / file.relpath).read_text())


def _recorded_rows(shared_data_dir: Path, name: str) -> list[dict]:
    return json.loads((shared_data_dir / "WeOpenML/PandaLM/data" / name).read_text())


# -- PandaLM's recordings -------------------------------------------------------------------------------------------


def test_pandalm_7b_first_order_accuracy(shared_data_dir: Path) -> None:
    bench = load_benchmark("pandalm")
    judge = replay_judge("replay:pandalm-7b")
    assert isinstance(judge, Judge) and judge.judge_id == "replay:pandalm-7b"
    verdicts = judge(bench.items)
    assert all(v.ok and v.source == "replay" and v.judge_id == "replay:pandalm-7b" for v in verdicts)
    correct = sum(v.winner == gold for v, gold in zip(verdicts, bench.gold, strict=True))
    assert correct == 667 and round(correct / 999, 4) == 0.6677
    # Recorded 0 is PandaLM's Tie.
    rows = _recorded_rows(shared_data_dir, "pandalm-7b-testset-v1.json")
    assert Counter(v.winner for v in verdicts)[Label.TIE] == sum(row["pandalm_result"] == 0 for row in rows) == 107
    assert verdicts[0].reason == rows[0]["pandalm_reason"] and verdicts[0].reference == rows[0]["pandalm_reference"]


def test_gpt35_garbage_is_unparsed_and_each_row_gets_its_own_verdict(shared_data_dir: Path) -> None:
    bench = load_benchmark("pandalm")
    verdicts = replay_judge("gpt-3.5-turbo")(bench.items)
    unparsed = [v for v in verdicts if v.state is VerdictState.UNPARSED]
    assert len(unparsed) == 25
    assert all(v.raw == "garbage" and v.winner is None and "garbage" in v.error for v in unparsed)
    # The test set repeats some pairs, and gpt-3.5-turbo answered some repeats differently: matching prefers the
    # recording of the same row (same item id), so every row gets exactly its own recorded answer.
    rows = {row["idx"]: row for row in _recorded_rows(shared_data_dir, "gpt-3.5-turbo-testset-v1.json")}
    assert [v.raw for v in verdicts] == [rows[item.metadata["idx"]]["gpt_result"] for item in bench.items]


def test_repeated_pair_with_a_foreign_id_gets_the_first_recording() -> None:
    bench = load_benchmark("pandalm")
    judge = replay_judge("gpt-3.5-turbo")
    verdicts = judge(bench.items)
    by_key: dict[str, list[int]] = {}
    for row, item in enumerate(bench.items):
        by_key.setdefault(item.key, []).append(row)
    conflicting = [rows for rows in by_key.values() if len({verdicts[r].raw for r in rows}) > 1]
    assert len(conflicting) == 4
    rows = conflicting[0]
    foreign = PairItem(
        **{f: getattr(bench.items[rows[1]], f) for f in ("instruction", "input", "response1", "response2")}
    )
    assert judge([foreign])[0] == verdicts[rows[0]]


def test_one_order_recordings_do_not_serve_the_swapped_pair() -> None:
    bench = load_benchmark("pandalm")
    judge = replay_judge("pandalm-7b")
    with pytest.raises(MissingVerdictError) as info:
        judge([item.swapped() for item in bench.items])
    message = str(info.value)
    assert "recorded only with the responses in the other order" in message
    assert re.search(r"no recorded verdict for \d+ of 999 items", message)
    assert isinstance(info.value, KeyError)


# -- humans ---------------------------------------------------------------------------------------------------------


def test_human_replay_serves_both_orders() -> None:
    bench = load_benchmark("pandalm")
    judge = replay_judge("human")
    assert [v.winner for v in judge(bench.items)] == list(bench.gold)
    swapped = judge([item.swapped() for item in bench.items])
    assert [v.winner for v in swapped] == [gold.flipped() for gold in bench.gold]
    assert judge.loaded_sources == ("pandalm (gold labels)",)


def test_human_replay_reaches_other_benchmarks_lazily() -> None:
    bench = load_benchmark("autoj")
    judge = replay_judge("human")
    assert [v.winner for v in judge(bench.items[:50])] == list(bench.gold[:50])
    assert judge.loaded_sources == ("pandalm (gold labels)", "autoj (gold labels)")
    only_pandalm = replay_judge("human", benchmarks=["pandalm"])
    with pytest.raises(MissingVerdictError, match="autoj/0"):
        only_pandalm(bench.items[:3])


# -- LLMBar's recordings --------------------------------------------------------------------------------------------


def test_gpt4_natural_matches_llmbar_statistics(shared_data_dir: Path) -> None:
    bench = load_benchmark("llmbar-natural")
    stats = _statistics(shared_data_dir, "llmbar-natural", "GPT-4")
    judge = replay_judge("GPT-4")
    first = judge(bench.items)
    swapped = judge([item.swapped() for item in bench.items])
    first_correct = sum(v.winner == g for v, g in zip(first, bench.gold, strict=True))
    swapped_correct = sum(v.winner == g.flipped() for v, g in zip(swapped, bench.gold, strict=True))
    assert (first_correct, swapped_correct) == (_count(stats["correct_False"]), _count(stats["correct_True"]))
    assert (first_correct, swapped_correct) == (92, 95)
    # Only the set that holds the items was read; the Processed sets (not mirrored) were never needed.
    assert judge.loaded_sources == (
        "llmbar-natural (princeton-nlp/LLMBar/Dataset/LLMBar/Natural/evaluators/GPT-4/Vanilla_NoRules/result.json)",
    )


@pytest.mark.parametrize("judge_name", ["GPT-4", "ChatGPT", "LLaMA2"])
@pytest.mark.parametrize("bench_name", LLMBAR_SETS)
def test_llmbar_recordings_match_statistics(shared_data_dir: Path, bench_name: str, judge_name: str) -> None:
    bench = load_benchmark(bench_name)
    stats = _statistics(shared_data_dir, bench_name, judge_name)
    judge = replay_judge(judge_name, benchmarks=[bench_name])
    first = judge(bench.items)
    swapped = [v.flipped() for v in judge([item.swapped() for item in bench.items])]  # back to the original frame
    assert sum(v.winner == g for v, g in zip(first, bench.gold, strict=True)) == _count(stats["correct_False"])
    assert sum(v.winner == g for v, g in zip(swapped, bench.gold, strict=True)) == _count(stats["correct_True"])
    assert sum(a.winner == b.winner for a, b in zip(first, swapped, strict=True)) == _count(stats["equal"])


def test_swapped_verdict_is_in_the_swapped_frame() -> None:
    item = load_benchmark("llmbar-natural").items[0]
    judge = replay_judge("GPT-4", benchmarks=["llmbar-natural"])
    first, second = judge([item, item.swapped()])
    # LLMBar recorded "Output (a)" unswapped and "Output (b)" swapped: output_1 both times.
    assert (first.winner, first.raw) == (Label.FIRST, "Output (a)")
    assert (second.winner, second.raw) == (Label.SECOND, "Output (b)")


def test_llama2_refusal_is_unparsed_with_its_completion() -> None:
    bench = load_benchmark("llmbar-gptinst")
    judge = replay_judge("LLaMA2")
    verdicts = judge(bench.items)
    failed = [i for i, v in enumerate(verdicts) if not v.ok]
    assert failed == [82]
    verdict = verdicts[82]
    assert verdict.state is VerdictState.UNPARSED
    assert verdict.raw.startswith("I cannot provide a response")
    assert judge([bench.items[82].swapped()])[0].ok


def test_missing_verdicts_raise_with_sources(tmp_path: Path) -> None:
    judge = replay_judge("ChatGPT")
    items = [*load_benchmark("llmbar-manual").items[:2], STRANGER]
    with pytest.raises(MissingVerdictError) as info:
        judge(items)
    err = info.value
    assert err.missing_ids == ["stranger/0"]
    message = str(err)
    assert "no recorded verdict for 1 of 3 items" in message and "stranger/0" in message
    assert "llmbar-manual (" in message and "Searched:" in message
    # The Processed sets are not in the offline mirror: named, with the reason and the fix.
    assert "Could not load" in message and "MT-Bench" in message and "offline mode is on" in message
    assert "PANDALM_DATA_DIR" in message


def test_corrupted_recording_is_an_error_not_a_skip(tmp_path: Path, shared_data_dir: Path) -> None:
    bench = load_benchmark("llmbar-natural")
    result = llmbar_evaluator_file("llmbar-natural", "GPT-4")
    for relpath in (BENCHMARKS["llmbar-natural"].file.relpath, result.relpath):
        (tmp_path / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data_dir / relpath, tmp_path / relpath)
    (tmp_path / result.relpath).write_text((tmp_path / result.relpath).read_text().replace('"1"', '"2"', 1))
    judge = replay_judge("GPT-4", benchmarks=["llmbar-natural"], data_dir=tmp_path)
    with pytest.raises(ChecksumMismatchError):
        judge(bench.items[:1])


# -- names and fingerprints -----------------------------------------------------------------------------------------


def test_names_and_strategies() -> None:
    assert replay_judge("gpt-4").judge_id == "replay:GPT-4"
    cot = replay_judge("replay:GPT-4/CoT")
    assert cot.judge_id == "replay:GPT-4/CoT"
    assert replay_judge("GPT-4", strategy="CoT").fingerprint == cot.fingerprint
    assert cot.fingerprint != replay_judge("GPT-4").fingerprint
    assert replay_judge("GPT-4").fingerprint == replay_judge("replay:GPT-4").fingerprint
    assert replay_judge("GPT-4").fingerprint.startswith("replay:GPT-4|Vanilla_NoRules|sha256:")
    assert replay_judge("ChatGPT").fingerprint != replay_judge("GPT-4").fingerprint
    with pytest.raises(ValueError, match="Did you mean 'GPT-4'"):
        replay_judge("GPT4")
    with pytest.raises(ValueError, match="no strategies"):
        replay_judge("pandalm-7b/CoT")
    with pytest.raises(ValueError, match="only for"):
        replay_judge("GPT-4", benchmarks=["pandalm"])
    with pytest.raises(ValueError, match="invalid strategy"):
        replay_judge("GPT-4", strategy="../x")


def test_strategy_outside_the_mirror_is_missing_offline() -> None:
    judge = replay_judge("GPT-4/CoT", benchmarks=["llmbar-natural"])
    with pytest.raises(MissingVerdictError, match=r"CoT/result\.json unavailable, offline mode is on"):
        judge(load_benchmark("llmbar-natural").items[:1])


# -- own verdict files ----------------------------------------------------------------------------------------------


def test_own_jsonl_roundtrip(tmp_path: Path) -> None:
    bench = load_benchmark("llmbar-gptinst")
    items = [*bench.items[80:85], bench.items[80].swapped()]
    original = replay_judge("LLaMA2")(items)
    path = tmp_path / "verdicts.jsonl"
    write_verdicts(path, items, original)
    judge = replay_judge(str(path))
    assert judge.judge_id == "replay:LLaMA2"
    replayed = judge(items)
    assert [(v.state, v.winner, v.raw) for v in replayed] == [(v.state, v.winner, v.raw) for v in original]
    assert all(v.judge_id == "replay:LLaMA2" and v.source == "replay" for v in replayed)
    with pytest.raises(MissingVerdictError, match=re.escape(str(path))):
        judge([STRANGER])

    fingerprint = judge.fingerprint
    write_verdicts(path, items[:1], original[:1])
    assert replay_judge(f"replay:{path}").fingerprint != fingerprint
    with pytest.raises(FileNotFoundError):
        replay_judge(str(tmp_path / "absent.jsonl"))
