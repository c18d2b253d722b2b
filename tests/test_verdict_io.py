"""The package's own JSON-lines files: verdicts written and read back, and pairs to judge."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from lm_eval_pandalm.types import Label, PairItem, Verdict, VerdictState
from lm_eval_pandalm.verdict_io import (
    VerdictFileError,
    item_from_dict,
    item_to_dict,
    read_pairs,
    read_verdicts,
    write_verdicts,
)

ITEMS = [
    PairItem(instruction="Add.", input="2 + 2", response1="4", response2="5", id="math/0", metadata={"row": 0}),
    PairItem(instruction="Greet in French.", response1="Bonjour", response2="", reference="Bonjour !"),
    PairItem(instruction="Écris « salut ».", response1="salut", response2="Salut", id="fr/1", metadata={"n": [1, 2]}),
]
VERDICTS = [
    Verdict.from_probs("pandalm:test", 0.7, 0.2, 0.1, raw="1\n\n### Reason: right.", reason="right.", latency_s=0.25),
    Verdict.hard("replay:x", Label.TIE, source="replay"),
    Verdict.failed("pandalm:test", VerdictState.UNPARSED, error="no verdict", raw="hmm"),
]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_item_dict_roundtrip() -> None:
    for item in ITEMS:
        data = item_to_dict(item)
        assert set(data) == {"instruction", "input", "response1", "response2", "reference", "id", "metadata"}
        back = item_from_dict(json.loads(json.dumps(data)))
        assert back == item and back.metadata == item.metadata and back.key == item.key


def test_item_from_dict_defaults_and_errors() -> None:
    item = item_from_dict({"instruction": "i", "response1": "a", "response2": "b", "input": None})
    assert item.input == "" and item.reference is None and item.id == item.key and item.metadata == {}
    assert item_from_dict({"instruction": "i", "response1": "a", "response2": "b", "id": 7}).id == "7"
    with pytest.raises(ValueError, match="'response2': missing"):
        item_from_dict({"instruction": "i", "response1": "a"})
    with pytest.raises(ValueError, match="'respons1': unknown field"):
        item_from_dict({"instruction": "i", "respons1": "a", "response1": "a", "response2": "b"})
    with pytest.raises(ValueError, match="'response1': expected a string"):
        item_from_dict({"instruction": "i", "response1": True, "response2": "b"})


def test_write_and_read_verdicts_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "out" / "verdicts.jsonl"
    write_verdicts(path, ITEMS, VERDICTS)
    records = _lines(path)
    assert [r["id"] for r in records] == [item.id for item in ITEMS]
    assert [r["key"] for r in records] == [item.key for item in ITEMS]
    assert records[0]["verdict"]["winner"] == "1" and records[0]["item"]["metadata"] == {"row": 0}
    assert "Écris « salut »." in path.read_text(encoding="utf-8")  # UTF-8, not \\u escapes
    back = read_verdicts(path)
    assert [item for item, _ in back] == ITEMS
    assert [item.metadata for item, _ in back] == [item.metadata for item in ITEMS]
    # How this run obtained a verdict (source) is not part of the file: it must not depend on the cache's state.
    assert [verdict for _, verdict in back] == [replace(v, source=None) for v in VERDICTS]
    assert all("source" not in r["verdict"] for r in records)


def test_write_verdicts_appends(tmp_path: Path) -> None:
    path = tmp_path / "verdicts.jsonl"
    write_verdicts(path, ITEMS[:1], VERDICTS[:1])
    write_verdicts(path, ITEMS[1:], VERDICTS[1:])
    assert [verdict for _, verdict in read_verdicts(path)] == [replace(v, source=None) for v in VERDICTS]
    with pytest.raises(ValueError, match="3 items but 2 verdicts"):
        write_verdicts(path, ITEMS, VERDICTS[:2])


def test_append_after_a_partial_line_starts_a_fresh_line(tmp_path: Path) -> None:
    path = tmp_path / "verdicts.jsonl"
    write_verdicts(path, ITEMS[:1], VERDICTS[:1])
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"id": "cut off by a cra')
    write_verdicts(path, ITEMS[1:2], VERDICTS[1:2])
    assert len(path.read_text().splitlines()) == 3
    with pytest.raises(VerdictFileError) as info:
        read_verdicts(path)
    assert (info.value.line, info.value.field) == (2, "<line>")


def _write_records(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def _good_record(index: int = 0) -> dict:
    item, verdict = ITEMS[index], VERDICTS[index]
    return {"id": item.id, "key": item.key, "item": item_to_dict(item), "verdict": verdict.to_dict()}


@pytest.mark.parametrize(
    ("bad", "field", "problem"),
    [
        ("{not json", "<line>", "not valid JSON"),
        ("[1, 2]", "<line>", "expected a JSON object"),
        ({"id": "x"}, "item", "missing"),
        ({**_good_record(), "verdict": "1"}, "verdict", "expected an object"),
        ({**_good_record(), "verdict": {"judge_id": "j", "state": "ok"}}, "verdict", "not a valid verdict"),
        ({**_good_record(), "verdict": {"judge_id": "j", "state": "maybe"}}, "verdict", "not a valid verdict"),
        ({**_good_record(), "item": {"instruction": "i", "response1": "a"}}, "item.response2", "missing"),
        ({**_good_record(), "key": "0" * 64}, "key", "is not the content key"),
        ({**_good_record(), "id": "other"}, "id", "differs from item.id"),
    ],
)
def test_read_verdicts_errors_name_file_line_and_field(tmp_path: Path, bad: object, field: str, problem: str) -> None:
    path = _write_records(tmp_path / "v.jsonl", [_good_record(0), "", bad])
    with pytest.raises(VerdictFileError) as info:
        read_verdicts(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), 3, field)
    assert str(path) in str(err) and "line 3" in str(err) and problem in str(err)


def test_read_pairs(tmp_path: Path) -> None:
    path = _write_records(
        tmp_path / "pairs.jsonl",
        [
            {"instruction": "Add.", "input": "2 + 2", "response1": "4", "response2": "5", "id": "math/0"},
            "",
            {"instruction": "Greet.", "response1": "hi", "response2": "", "reference": "hello", "metadata": {"a": 1}},
        ],
    )
    items = read_pairs(path)
    assert [item.id for item in items] == ["math/0", items[1].key]
    assert items[1].input == "" and items[1].reference == "hello" and items[1].metadata == {"a": 1}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"instruction": "i", "response2": "b"}, "response1"),
        ({"instruction": "i", "response1": "a", "response2": "b", "input": 3}, "input"),
        ({"instruction": "i", "response1": "a", "response2": "b", "metadata": [1]}, "metadata"),
        ({"instruction": "i", "response1": "a", "response2": "b", "label": 1}, "label"),
    ],
)
def test_read_pairs_errors(tmp_path: Path, bad: dict, field: str) -> None:
    good = {"instruction": "i", "response1": "a", "response2": "b"}
    path = _write_records(tmp_path / "pairs.jsonl", [good, good, bad])
    with pytest.raises(VerdictFileError) as info:
        read_pairs(path)
    assert (info.value.line, info.value.field) == (3, field)
    assert f"{path}: line 3: field {field!r}" in str(info.value)
