"""Loading the human-labelled benchmarks, including their messy rows, and users' own files."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest

from lm_eval_pandalm.data import (
    BENCHMARKS,
    BenchmarkFormatError,
    DataUnavailableError,
    benchmark_names,
    llmbar_evaluator_file,
    load_benchmark,
)
from lm_eval_pandalm.types import Label

LLMBAR_COUNTS = {
    "llmbar-natural": 100,
    "llmbar-neighbor": 134,
    "llmbar-gptinst": 92,
    "llmbar-gptout": 47,
    "llmbar-manual": 46,
}
# Rows of PandaLM's test set whose model output was the bare word True, stored as a JSON boolean.
BOOLEAN_ROWS = {
    157: ["response1"],
    158: ["response1"],
    159: ["response1"],
    161: ["response2"],
    162: ["response2"],
    164: ["response1"],
}


def test_registry_names() -> None:
    assert benchmark_names() == [
        "pandalm",
        "autoj",
        *LLMBAR_COUNTS,
        "mtbench",
        "faireval",
        "llmeval2",
    ]
    assert BENCHMARKS["llmeval2"].file.path == "Dataset/Processed/LLMEval^2/dataset.json"
    assert all(BENCHMARKS[name].file.sha256 for name in benchmark_names())


def test_pandalm_counts_and_gold(shared_data_dir: Path) -> None:
    bench = load_benchmark("pandalm")
    assert len(bench) == len(bench.gold) == 999
    assert Counter(bench.gold) == {Label.TIE: 105, Label.FIRST: 422, Label.SECOND: 472}
    first = bench.items[0]
    assert first.id == "pandalm/0"
    assert first.metadata["source_row"] == 0
    assert first.metadata["cmp_key"] == "bloom-7b_llama-7b"
    assert first.metadata["annotators"] == [2, 2, 2]
    assert Path(bench.source).resolve() == (shared_data_dir / BENCHMARKS["pandalm"].file.relpath).resolve()
    assert len({item.id for item in bench.items}) == 999


@pytest.mark.usefixtures("shared_data_dir")
def test_pandalm_booleans_are_coerced_and_recorded(caplog: pytest.LogCaptureFixture) -> None:
    # Parse afresh (not from the in-process cache) so the log line is emitted.
    from lm_eval_pandalm.data import benchmarks

    benchmarks._load_builtin.cache_clear()
    with caplog.at_level(logging.INFO, logger="lm_eval_pandalm.data.benchmarks"):
        bench = load_benchmark("pandalm")
    coerced = {
        item.metadata["source_row"]: item.metadata["coerced_fields"]
        for item in bench.items
        if "coerced_fields" in item.metadata
    }
    assert coerced == BOOLEAN_ROWS
    for row, fields in BOOLEAN_ROWS.items():
        for field in fields:
            assert getattr(bench.items[row], field) == "True"
    messages = [rec.getMessage() for rec in caplog.records if "boolean" in rec.getMessage()]
    assert len(messages) == 1 and " 6 rows" in messages[0]


@pytest.mark.usefixtures("shared_data_dir")
def test_pandalm_empty_strings_are_kept() -> None:
    bench = load_benchmark("pandalm")
    assert bench.items[18].response1 == ""
    assert bench.items[301].response2 == ""
    assert bench.items[364].response2 == "" and bench.items[364].input == ""
    assert bench.items[466].instruction == " "  # a whitespace-only instruction, kept as it is
    empty_responses = sum(1 for item in bench.items if "" in (item.response1, item.response2))
    assert empty_responses == 54


def test_autoj(shared_data_dir: Path) -> None:
    bench = load_benchmark("autoj")
    assert len(bench) == 1392
    assert Counter(bench.gold) == {Label.FIRST: 520, Label.SECOND: 499, Label.TIE: 373}
    assert len({item.metadata["scenario"] for item in bench.items}) == 58
    item = bench.items[17]
    assert item.id == "autoj/17" and item.input == ""
    raw = json.loads((shared_data_dir / BENCHMARKS["autoj"].file.relpath).read_text().splitlines()[17])
    assert (item.instruction, item.response1, item.response2) == (raw["prompt"], raw["response 1"], raw["response 2"])
    assert bench.items[568].response2 == ""


@pytest.mark.usefixtures("shared_data_dir")
@pytest.mark.parametrize(("name", "count"), list(LLMBAR_COUNTS.items()))
def test_llmbar_sets(name: str, count: int) -> None:
    bench = load_benchmark(name)
    assert len(bench) == count
    assert set(bench.gold) <= {Label.FIRST, Label.SECOND}
    assert bench.items[3].id == f"{name}/3"
    assert bench.items[3].metadata["source_row"] == 3


def test_processed_sets_need_the_network_or_a_mirror() -> None:
    with pytest.raises(DataUnavailableError, match="PANDALM_DATA_DIR"):
        load_benchmark("mtbench")


@pytest.mark.usefixtures("shared_data_dir")
def test_loading_is_cached_in_process() -> None:
    assert load_benchmark("llmbar-natural") is load_benchmark("LLMBar-Natural")


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ValueError) as info:
        load_benchmark("llmbar-natrual")
    message = str(info.value)
    assert "Did you mean 'llmbar-natural'?" in message
    assert all(name in message for name in benchmark_names())
    assert "file:<path>" in message


def test_llmbar_evaluator_file() -> None:
    file = llmbar_evaluator_file("llmbar-natural", "GPT-4")
    assert file.path == "Dataset/LLMBar/Natural/evaluators/GPT-4/Vanilla_NoRules/result.json"
    assert file.sha256 is not None
    assert llmbar_evaluator_file("mtbench", "PaLM2", "CoT").sha256 is None
    with pytest.raises(ValueError, match="not an LLMBar-format"):
        llmbar_evaluator_file("pandalm", "GPT-4")
    with pytest.raises(ValueError, match="invalid"):
        llmbar_evaluator_file("llmbar-natural", "../GPT-4")


# -- user files -----------------------------------------------------------------------------------------------------


_DROP = object()  # marks a field to leave out of a row


def _row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "instruction": "Say hi.",
        "input": "",
        "response1": "hi",
        "response2": "hello",
        "annotator1": 1,
        "annotator2": 1,
        "annotator3": 2,
    }
    row.update(overrides)
    return {k: v for k, v in row.items() if v is not _DROP}


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return f"file:{path}"


def test_user_jsonl_file(tmp_path: Path) -> None:
    rows = [
        _row(),
        _row(annotator1=0, annotator2=0, annotator3=_DROP),  # two annotators agreeing
        _row(annotator1=2, annotator2=_DROP, annotator3=_DROP, input=None),  # one annotator, null input
        _row(input=_DROP, response2=False, idx=7),
    ]
    bench = load_benchmark(_write_jsonl(tmp_path / "mine.jsonl", rows))
    assert bench.gold == (Label.FIRST, Label.TIE, Label.SECOND, Label.FIRST)
    assert [item.id for item in bench.items] == ["mine/0", "mine/1", "mine/2", "mine/7"]
    assert bench.items[2].input == "" and bench.items[3].input == ""
    assert bench.items[3].response2 == "False"
    assert bench.items[3].metadata["coerced_fields"] == ["response2"]


def test_user_json_list_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps([_row(), _row(annotator1="2", annotator2="2")]))
    bench = load_benchmark(f"file:{path}")
    assert bench.gold == (Label.FIRST, Label.SECOND)
    assert bench.name == f"file:{path.resolve()}"


@pytest.mark.parametrize(
    ("bad", "field", "problem"),
    [
        ({"response1": _DROP}, "response1", "missing"),
        ({"response2": 3}, "response2", "expected a string"),
        ({"instruction": None}, "instruction", "expected a string"),
        ({"instruction": True}, "instruction", "expected a string"),  # booleans are coerced in responses only
        ({"input": ["x"]}, "input", "expected a string or null"),
        ({"annotator2": 5}, "annotator2", "bad label 5"),
        ({"annotator3": True}, "annotator3", "bad label True"),
        ({"annotator1": _DROP, "annotator2": _DROP, "annotator3": _DROP}, "annotator1", "at least one annotatorN"),
        ({"annotator1": 0, "annotator2": 1, "annotator3": 2}, "annotator1..annotator3", "no strict majority"),
        ({"annotator3": _DROP, "annotator2": 2}, "annotator1..annotator2", "no strict majority"),
    ],
)
def test_malformed_user_rows_name_file_row_and_field(
    tmp_path: Path, bad: dict[str, object], field: str, problem: str
) -> None:
    path = tmp_path / "bad.jsonl"
    name = _write_jsonl(path, [_row(), _row(), _row(**bad)])
    with pytest.raises(BenchmarkFormatError) as info:
        load_benchmark(name)
    err = info.value
    assert (err.row, err.field, err.line) == (2, field, 3)
    message = str(err)
    assert str(path.resolve()) in message and "row 2" in message and repr(field) in message and problem in message


def test_malformed_user_row_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([_row(), "oops"]))
    with pytest.raises(BenchmarkFormatError, match=r"row 1: field '<row>': expected a JSON object"):
        load_benchmark(f"file:{path}")


def test_duplicate_idx_in_user_file(tmp_path: Path) -> None:
    name = _write_jsonl(tmp_path / "dup.jsonl", [_row(idx=1), _row(idx=1)])
    with pytest.raises(BenchmarkFormatError, match="duplicate idx 1, also used by row 0"):
        load_benchmark(name)


def test_user_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_benchmark(f"file:{tmp_path / 'missing.jsonl'}")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(_row()) + "\n{not json\n")
    with pytest.raises(ValueError, match="line 2"):
        load_benchmark(f"file:{broken}")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no rows"):
        load_benchmark(f"file:{empty}")


def test_user_file_edits_are_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    name = _write_jsonl(path, [_row()])
    assert len(load_benchmark(name)) == 1
    _write_jsonl(path, [_row(), _row(), _row()])
    assert len(load_benchmark(name)) == 3
