"""The ``pandalm_pairwise`` task: its documents, its baseline sources, its options, and a whole lm-eval run.

The data tests read PandaLM's and self-instruct's files from the shared offline mirror (skipped without it); the
end-to-end test runs lm-eval with the tiny candidate and the tiny judge, as the README's offline smoke run does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from lm_eval_pandalm.config import ConfigError
from lm_eval_pandalm.harness import judging
from lm_eval_pandalm.harness.judging import JudgmentSummary
from lm_eval_pandalm.harness.pairwise import (
    KNOWN_MISMATCHES,
    SELF_INSTRUCT,
    BaselineError,
    PairwiseOptions,
    candidate_prompt,
    load_baselines,
    load_dataset,
    load_test_instructions,
    parse_options,
)

REPO = Path(__file__).resolve().parents[1]
METRICS = ("pandalm_win_rate", "pandalm_win", "pandalm_tie", "pandalm_loss", "pandalm_failed", "pandalm_consistency")


@pytest.fixture(autouse=True)
def _fresh_judges() -> Iterator[None]:
    yield
    judging.clear_judge_cache()


@pytest.fixture
def instructions(shared_data_dir: Path) -> list[dict[str, str]]:
    return load_test_instructions()


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


# -- documents and the self-instruct baseline -------------------------------------------------------------------


def test_test_instructions(instructions: list[dict[str, str]]) -> None:
    assert len(instructions) == 170
    assert instructions[0]["id"] == "pandalm-test/0" and instructions[0]["motivation_app"] == "Google Meet"
    assert instructions[0]["instruction"].startswith("Summarize a meeting")
    assert all(isinstance(row["input"], str) for row in instructions)


def test_self_instruct_baseline_matches_all_170(instructions: list[dict[str, str]]) -> None:
    baselines = load_baselines(SELF_INSTRUCT, instructions)
    assert len(baselines) == 170 and all(b.strip() for b in baselines)
    assert baselines[0].startswith("At the meeting, Rose analyzed data and presented her findings.")
    # The two rows whose text PandaLM's copy lost are matched by self-instruct id.
    by_id = dict(zip((row["id"] for row in instructions), baselines, strict=True))
    assert set(KNOWN_MISMATCHES) == {"pandalm-test/46", "pandalm-test/161"}
    assert by_id["pandalm-test/46"] == "Harry Potter"
    assert by_id["pandalm-test/161"] == "Everything would be better if more people were like you."


def test_self_instruct_baseline_reports_unmatched_instructions(instructions: list[dict[str, str]]) -> None:
    odd = [*instructions[:2], {"id": "x/1", "instruction": "Not in self-instruct.", "input": ""}]
    with pytest.raises(
        BaselineError, match=r"1 of the 3 PandaLM test instructions have no match.*Not in self-instruct"
    ):
        load_baselines(SELF_INSTRUCT, odd)


# -- file baselines ---------------------------------------------------------------------------------------------


def test_jsonl_baseline_matches_on_instruction_and_input(instructions: list[dict[str, str]], tmp_path: Path) -> None:
    rows = [
        # Extra whitespace is forgiven: matching collapses whitespace runs.
        {"instruction": f"  {row['instruction']}\n", "input": row["input"], "response": f"answer {i}"}
        for i, row in enumerate(instructions)
    ]
    rows.reverse()  # order does not matter
    for row in rows[:5]:
        row.pop("input") if not row["input"] else None  # input may be left out when empty
    path = _write_jsonl(tmp_path / "baseline.jsonl", rows)
    assert load_baselines(str(path), instructions) == [f"answer {i}" for i in range(170)]


def test_missing_baseline_names_the_file_and_the_instruction(
    instructions: list[dict[str, str]], tmp_path: Path
) -> None:
    rows = [{"instruction": r["instruction"], "input": r["input"], "response": "x"} for r in instructions[1:]]
    path = _write_jsonl(tmp_path / "partial.jsonl", rows)
    with pytest.raises(BaselineError) as info:
        load_baselines(str(path), instructions)
    message = str(info.value)
    assert str(path) in message and "no response for 1 of the 170 instructions" in message
    assert "Summarize a meeting" in message


def test_samples_file_baseline(instructions: list[dict[str, str]], tmp_path: Path) -> None:
    # The layout lm-eval's --log_samples writes (see the end-to-end test for a real one); one line per document and
    # filter, so each document may appear more than once.
    lines = []
    for filter_name in ("pandalm", "none"):
        for i, row in enumerate(instructions):
            lines.append(
                {
                    "doc_id": i,
                    "doc": {**row, "baseline": "ignored"},
                    "target": "ignored",
                    "resps": [[f"generated {i}"]],
                    "filtered_resps": ['{"outcome": "win"}' if filter_name == "pandalm" else f"generated {i}"],
                    "filter": filter_name,
                }
            )
    path = _write_jsonl(tmp_path / "samples_pandalm_pairwise_2026.jsonl", lines)
    assert load_baselines(str(path), instructions) == [f"generated {i}" for i in range(170)]

    lines[170]["resps"] = [["something else"]]
    _write_jsonl(path, lines)
    with pytest.raises(BaselineError, match="line 171: a different response to the same instruction"):
        load_baselines(str(path), instructions)


def test_bad_baseline_sources(instructions: list[dict[str, str]], tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="neither 'self-instruct' nor an existing file"):
        load_baselines(str(tmp_path / "nope.jsonl"), instructions)
    path = _write_jsonl(tmp_path / "bad.jsonl", [{"instruction": "Q", "answer": "x"}])
    with pytest.raises(BaselineError, match=r"line 1: field 'response'"):
        load_baselines(str(path), instructions)
    path = _write_jsonl(tmp_path / "other_task_samples.jsonl", [{"doc": {"question": "Q"}, "resps": [["x"]]}])
    with pytest.raises(BaselineError, match=r"line 1: field 'doc.instruction'"):
        load_baselines(str(path), instructions)
    path.write_text('{"instruction": "Q", "response": "x"}\nnot json\n')
    with pytest.raises(BaselineError, match="line 2"):
        load_baselines(str(path), instructions)


# -- options and the dataset function ----------------------------------------------------------------------------


def test_options_ignore_lm_eval_keys_and_catch_typos() -> None:
    lm_eval_keys = {"version": 1.0, "config_source": "x.yaml", "pretrained": "m", "backend": "causal", "dtype": "auto"}
    assert parse_options(lm_eval_keys) == PairwiseOptions()
    options = parse_options({**lm_eval_keys, "judge": "replay:human", "protocol": "paper", "prompt_format": "plain"})
    assert (options.judge, options.protocol, options.prompt_format) == ("replay:human", "paper", "plain")
    for typo, meant in (("baselines", "baseline"), ("protocl", "protocol"), ("judgee", "judge")):
        with pytest.raises(ConfigError, match=f"Did you mean '{meant}'"):
            parse_options({typo: "x"})
    with pytest.raises(ConfigError, match="unknown judging protocol 'sideways'"):
        parse_options({"protocol": "sideways"})
    with pytest.raises(ConfigError, match="prompt_format"):
        parse_options({"prompt_format": "chatml"})
    with pytest.raises(ConfigError, match="non-empty string"):
        parse_options({"judge": 3})


def test_candidate_prompt_formats() -> None:
    alpaca = candidate_prompt("Translate.", "Bonjour", "alpaca")
    assert alpaca.startswith("Below is an instruction that describes a task, paired with an input")
    assert alpaca.endswith("### Instruction:\nTranslate.\n\n### Input:\nBonjour\n\n### Response:\n")
    assert candidate_prompt("Translate.", "Bonjour", "plain") == "Translate.\n\nBonjour"
    with pytest.raises(ValueError, match="prompt_format"):
        candidate_prompt("Q", "", "chatml")


def test_load_dataset_builds_the_documents(shared_data_dir: Path) -> None:
    dataset = load_dataset(version=1.0, config_source="x.yaml", pretrained="m", judge="replay:human")
    docs = dataset["test"]
    assert len(docs) == 170
    doc = docs[0]
    assert set(doc) == {
        "id", "instruction", "input", "motivation_app", "prompt", "baseline", "baseline_source", "judge", "protocol",
    }  # fmt: skip
    assert (
        doc["judge"] == "replay:human" and doc["protocol"] == "both-orders" and doc["baseline_source"] == SELF_INSTRUCT
    )
    assert doc["prompt"] == candidate_prompt(doc["instruction"], doc["input"])


def test_load_dataset_rejects_a_bad_judge_before_reading_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANDALM_DATA_DIR", "/nonexistent")  # would fail later if the data were read first
    with pytest.raises(ConfigError, match="judge spec 'gpt4' not understood"):
        load_dataset(judge="gpt4")


# -- end to end ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_candidate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lm_eval_pandalm.testing.tiny_models import build_tiny_candidate

    return build_tiny_candidate(tmp_path_factory.mktemp("tiny") / "candidate")


def test_pandalm_pairwise_runs_in_lm_eval(
    shared_data_dir: Path,
    tiny_judge_dir: Path,
    tiny_candidate_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The README's offline smoke run through the Python API: 10 documents, tiny candidate, tiny judge."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("DISABLE_MULTIPROC", "1")
    judge = f"pandalm:{tiny_judge_dir}"
    tracker = EvaluationTracker(output_path=str(tmp_path / "results.json"))  # files go beside results.json
    results = simple_evaluate(
        model="hf",
        model_args={"pretrained": str(tiny_candidate_dir), "device": "cpu"},
        tasks=["pandalm"],  # the group, which holds pandalm_pairwise
        # simple_evaluate passes its metadata= only to a TaskManager it builds itself: give ours the options.
        task_manager=TaskManager(
            include_path=str(REPO / "task_configs"), include_defaults=False, metadata={"judge": judge}
        ),
        gen_kwargs={"max_gen_toks": 16},
        limit=10,
        bootstrap_iters=200,
        log_samples=True,
        evaluation_tracker=tracker,
    )
    assert results is not None
    figures = results["results"]["pandalm_pairwise"]
    assert figures["sample_len"] == 10
    for name in METRICS:
        value, stderr = figures[f"{name},pandalm"], figures[f"{name}_stderr,pandalm"]
        assert isinstance(value, float) and not math.isnan(value), name
        assert isinstance(stderr, float), name
    rates = [figures[f"pandalm_{o},pandalm"] for o in ("win", "tie", "loss")]
    assert math.isclose(sum(rates), 1.0)
    assert "pandalm_win_rate,pandalm" in results["results"]["pandalm"]  # the group reports the same figures
    # The length-controlled win rate, with its own stderr in the key lm-eval's make_table reads.
    lc, lc_stderr = figures["pandalm_lc_win_rate,pandalm"], figures["pandalm_lc_win_rate_stderr,pandalm"]
    assert 0 <= lc <= 1 and isinstance(lc_stderr, float) and lc_stderr >= 0
    from lm_eval.utils import make_table

    (row,) = [line for line in make_table(results).splitlines() if "pandalm_lc_win_rate" in line]
    assert f"{lc:.4f}" in row and f"{lc_stderr:.4f}" in row

    samples = results["samples"]["pandalm_pairwise"]
    assert len(samples) == 10
    for sample in samples:
        summary = JudgmentSummary.from_json(sample["filtered_resps"][0])
        assert summary.judge == judge and summary.protocol == "both-orders"
        assert summary.response == sample["resps"][0][0] and sample["target"] == sample["doc"]["baseline"]
        assert sample["pandalm_failed"] == float(summary.failed)
        if not summary.failed:
            assert summary.outcome in ("win", "tie", "loss") and summary.consistent is not None

    # Written as the lm_eval CLI writes them, the samples file serves as the baseline of a later run, for the
    # documents it covers.
    generated = [s["resps"][0][0] for s in samples]
    tracker.save_results_aggregated(results=results, samples=results["samples"])
    tracker.save_results_samples(task_name="pandalm_pairwise", samples=samples)
    (results_file,) = tmp_path.glob("results_*.json")
    saved = json.loads(results_file.read_text(encoding="utf-8"))["results"]["pandalm_pairwise"]
    assert saved["pandalm_win_rate,pandalm"] == figures["pandalm_win_rate,pandalm"]
    (samples_file,) = tmp_path.glob("samples_pandalm_pairwise_*.jsonl")
    instructions = load_test_instructions()
    assert load_baselines(str(samples_file), instructions[:10]) == generated
    with pytest.raises(BaselineError, match=r"no response for 160 of the 170 instructions.*without --limit"):
        load_baselines(str(samples_file), instructions)
