"""Judge-training data: the training format, validation errors, audit, leak-free split, augmentation, encoding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm_eval_pandalm.data import BenchmarkFormatError, load_benchmark
from lm_eval_pandalm.data.training_format import TrainingExample, flip_response_mentions, training_record
from lm_eval_pandalm.testing.synthetic import BAD_WORDS, GOOD_WORDS, synthetic_examples
from lm_eval_pandalm.testing.synthetic import main as synthetic_main
from lm_eval_pandalm.training.data import TrainingDataError, audit, augment, load_examples, split_by_instruction
from lm_eval_pandalm.types import Label, PairItem


def _row(instruction: str = "Say hi.", r1: str = "Hi.", r2: str = "Go away.", result: object = "1") -> dict:
    return {
        "inputs": {"instruction": instruction, "input": "", "response1": r1, "response2": r2},
        "outputs": {
            "evaluation_result": result,
            "evaluation_reason": "Response 1 is polite.",
            "reference_response": "Hi.",
        },
    }


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_training_format_jsonl_and_json_list(tmp_path: Path) -> None:
    rows = [_row(), _row("Say bye.", result="Tie")]
    a = load_examples(str(_write_jsonl(tmp_path / "a.jsonl", rows)))
    (tmp_path / "b.json").write_text(json.dumps(rows), encoding="utf-8")
    b = load_examples(str(tmp_path / "b.json"))
    assert [e.label for e in a] == [e.label for e in b] == [Label.FIRST, Label.TIE]
    assert a[0].reason == "Response 1 is polite." and a[0].reference == "Hi."


@pytest.mark.parametrize(
    ("row", "field"),
    [
        (
            {"inputs": {"instruction": "q", "response1": "a", "response2": "b"}, "outputs": {}},
            "outputs.evaluation_result",
        ),
        (_row(result="3"), "outputs.evaluation_result"),
        ({"inputs": {"instruction": "q", "response1": "a"}, "outputs": {"evaluation_result": "1"}}, "inputs.response2"),
        (
            {"inputs": {"instruction": 5, "response1": "a", "response2": "b"}, "outputs": {"evaluation_result": "1"}},
            "inputs.instruction",
        ),
        ({"inputs": "x", "outputs": {}}, "inputs"),
    ],
)
def test_validation_errors_name_file_row_and_field(tmp_path: Path, row: dict, field: str) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", [_row(), row])
    with pytest.raises(BenchmarkFormatError) as info:
        load_examples(str(path))
    assert info.value.row == 1 and info.value.field == field and info.value.line == 2
    assert str(path) in str(info.value)


def test_escalation_export_rows_are_read(tmp_path: Path) -> None:
    from lm_eval_pandalm.cli.export_escalations import training_record as export_record
    from lm_eval_pandalm.types import Verdict

    item = PairItem("Say hi.", "Hi.", "No.")
    verdict = Verdict.from_probs("x", 0.8, 0.1, 0.1, reason="Response 1 greets.")
    path = _write_jsonl(tmp_path / "esc.jsonl", [export_record(item, verdict)])
    (ex,) = load_examples(str(path))
    assert ex.item.response1 == "Hi." and ex.label is Label.FIRST and ex.reason == "Response 1 greets."


def test_benchmark_file_reads_training_format(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "test.jsonl", [_row(), _row("Say bye.", result="2")])
    bench = load_benchmark(f"file:{path}")
    assert bench.gold == (Label.FIRST, Label.SECOND) and bench.items[1].instruction == "Say bye."


def test_test_set_format_file_is_training_data(tmp_path: Path) -> None:
    row = {"instruction": "q", "response1": "a", "response2": "b", "annotator1": 2}
    (ex,) = load_examples(str(_write_jsonl(tmp_path / "t.jsonl", [row])))
    assert ex.label is Label.SECOND and ex.reason == ""


def test_audit_drops_duplicates_and_reports_conflicts(tmp_path: Path) -> None:
    rows = [_row(), _row(), _row(result="2"), _row(r1="Go away.", r2="Hi.", result="1"), _row("Other.")]
    examples = load_examples(str(_write_jsonl(tmp_path / "d.jsonl", rows)))
    with pytest.raises(TrainingDataError, match=r"row 2 contradicts row 0"):
        audit(examples)
    kept, report = audit(examples, conflicts="keep")
    assert [r for _, r, _ in report.duplicates] == [1]
    assert [r for _, r, _ in report.conflicts] == [2, 3]  # same pair relabelled; its swap not flipped
    assert len(kept) == 4
    dropped, _ = audit(examples, conflicts="drop")
    assert [e.row for e in dropped] == [4]
    consistent = [_row(), _row(r1="Go away.", r2="Hi.", result="2")]
    kept, report = audit(load_examples(str(_write_jsonl(tmp_path / "c.jsonl", consistent))))
    assert len(kept) == 2 and not report.conflicts


def test_split_keeps_instructions_on_one_side() -> None:
    examples = synthetic_examples(60, seed=3)
    examples += [TrainingExample(PairItem(e.item.instruction, "x", "y"), Label.TIE) for e in examples[:30]]
    train, test = split_by_instruction(examples, 0.2, seed=1)
    assert len(train) + len(test) == 90 and 0.2 * 90 <= len(test) < 0.35 * 90
    assert not {e.item.instruction for e in train} & {e.item.instruction for e in test}
    assert split_by_instruction(examples, 0.2, seed=1) == (train, test)


def test_swap_augmentation_flips_label_and_reason() -> None:
    examples = synthetic_examples(400, seed=0, tie_rate=0.0)
    out = augment(examples, swap_ratio=0.5, ref_drop_ratio=0.25, seed=0)
    swapped = [(a, b) for a, (b, _) in zip(examples, out, strict=True) if a.item.response1 != b.item.response1]
    assert 150 < len(swapped) < 250
    for original, new in swapped:
        assert new.item.response1 == original.item.response2 and new.label is original.label.flipped()
        assert new.reason == flip_response_mentions(original.reason) != original.reason
    assert 60 < sum(not keep for _, keep in out) < 140
    assert all(b is a for a, (b, _) in zip(examples, augment(examples, 0.0, 0.0), strict=True))


def test_synthetic_rule_and_cli(tmp_path: Path) -> None:
    for ex in synthetic_examples(200, seed=5, first_rate=0.9):
        words = {r: set(r.lower().rstrip(".").split()) for r in (ex.item.response1, ex.item.response2)}
        good = [bool(words[r] & set(GOOD_WORDS)) for r in (ex.item.response1, ex.item.response2)]
        bad = [bool(words[r] & set(BAD_WORDS)) for r in (ex.item.response1, ex.item.response2)]
        expected = Label.FIRST if good[0] and bad[1] else Label.SECOND if good[1] and bad[0] else Label.TIE
        assert ex.label is expected
    biased = synthetic_examples(500, seed=5, first_rate=0.9, tie_rate=0.0)
    assert sum(e.label is Label.FIRST for e in biased) > 400
    assert synthetic_main([str(tmp_path), "--train", "30", "--test", "10"]) == 0
    train, test = load_examples(str(tmp_path / "train.jsonl")), load_examples(str(tmp_path / "test.jsonl"))
    assert len(train) == 30 and len(test) == 10
    assert not {e.item.instruction for e in train} & {e.item.instruction for e in test}
    assert json.loads((tmp_path / "test.jsonl").read_text().splitlines()[0]) == training_record(
        test[0].item, test[0].label, test[0].reason, test[0].reference
    )


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from lm_eval_pandalm.testing.tiny_models import build_tokenizer
    from lm_eval_pandalm.training.encoding import setup_tokenizer

    return setup_tokenizer(build_tokenizer(tmp_path_factory.mktemp("tok")))


def test_encoding_masks_prompt_and_matches_judge_verdict_tokens(tiny_tokenizer) -> None:
    from lm_eval_pandalm.judges.pandalm_local import continuation_token_ids
    from lm_eval_pandalm.prompt import build_prompt
    from lm_eval_pandalm.training.encoding import encode_generative, target_text

    conts = continuation_token_ids(tiny_tokenizer)
    examples = synthetic_examples(6, seed=2, tie_rate=0.5)
    features = encode_generative(tiny_tokenizer, [(e, True) for e in examples], max_length=1024)
    for ex, feat in zip(examples, features, strict=True):
        n_prompt = sum(label == -100 for label in feat["labels"])
        prompt_ids = tiny_tokenizer(build_prompt(ex.item))["input_ids"]
        assert feat["input_ids"][:n_prompt] == prompt_ids  # BOS + the exact prompt the judge scores
        target = feat["labels"][n_prompt:]
        verdict = conts[["1", "2", "Tie"].index(ex.label.value)]
        assert target[: len(verdict)] == verdict  # the verdict tokens the judge reads, in the loss
        assert target[-1] == tiny_tokenizer.eos_token_id
        assert tiny_tokenizer.decode(target, skip_special_tokens=True) == target_text(ex)


def test_truncation_never_cuts_the_verdict(tiny_tokenizer) -> None:
    from lm_eval_pandalm.training.encoding import encode_generative

    long = TrainingExample(PairItem("Say hi.", "river " * 200, "Hi."), Label.SECOND, "Response 2 is short.", "Hi.")
    (feat,) = encode_generative(tiny_tokenizer, [(long, True)], max_length=160)
    assert len(feat["input_ids"]) <= 160
    target = tiny_tokenizer.decode([t for t in feat["labels"] if t != -100], skip_special_tokens=True)
    assert target.startswith("2\n\n### Reason: Response 2 is short.") and target.endswith("### Reference: Hi.\n")
    assert encode_generative(tiny_tokenizer, [(long, True)], max_length=160, truncation="drop") == []
    with pytest.raises(TrainingDataError, match=r"row -1: .* over max_length 160"):
        encode_generative(tiny_tokenizer, [(long, True)], max_length=160, truncation="error")
    with pytest.raises(TrainingDataError, match="cannot fit"):
        encode_generative(tiny_tokenizer, [(long, True)], max_length=60)
