"""Stricter inputs (issue 6, item 8; item 7's resps check): mistakes are errors naming the file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm_eval_pandalm.cli import main
from lm_eval_pandalm.config import ConfigError, load_yaml_mapping
from lm_eval_pandalm.judges import make_judge
from lm_eval_pandalm.types import Label, PairItem, Verdict
from lm_eval_pandalm.verdict_io import VerdictFileError, read_verdicts, write_verdicts


def test_a_key_given_twice_in_a_yaml_config_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "judge.yaml"
    config.write_text("type: replay\nname: human\nname: GPT-4\n")
    with pytest.raises(ConfigError, match=r"judge.yaml: key 'name' is given twice \(lines 2 and 3\)"):
        load_yaml_mapping(config)


def test_list_elements_are_type_checked(tmp_path: Path) -> None:
    config = tmp_path / "judge.yaml"
    config.write_text("type: replay\nname: human\nbenchmarks: [pandalm, 3]\n")
    with pytest.raises(ConfigError, match=r"'benchmarks' = \['pandalm', 3\] is not of type list\[str\]"):
        make_judge(str(config))


def test_a_winner_that_contradicts_its_probabilities_is_refused() -> None:
    with pytest.raises(ValueError, match="contradicts its probabilities"):
        Verdict(judge_id="j", p_first=0.8, p_second=0.1, p_tie=0.1, winner=Label.SECOND)
    # Tie is the winner when 1 and 2 are equally likely (Verdict.from_probs decides so).
    assert Verdict(judge_id="j", p_first=0.4, p_second=0.4, p_tie=0.2, winner=Label.TIE).ok


def test_a_recorded_verdict_that_contradicts_itself_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    item = PairItem("Q", "a", "b", id="x")
    write_verdicts(path, [item], [Verdict.from_probs("j", 0.7, 0.2, 0.1)])
    record = json.loads(path.read_text())
    record["verdict"]["winner"] = "2"
    path.write_text(path.read_text() + json.dumps(record) + "\n")
    with pytest.raises(VerdictFileError, match=r"line 2: field 'verdict'.*contradicts its probabilities"):
        read_verdicts(path)


def test_conflicting_recordings_of_one_pair_are_reported_with_their_ids(tmp_path: Path, capsys) -> None:
    path = tmp_path / "v.jsonl"
    items = [PairItem("Q", "a", "b", id="x"), PairItem("R", "c", "d", id="y")]
    write_verdicts(path, items, [Verdict.hard("j", Label.FIRST), Verdict.hard("j", Label.TIE)])
    write_verdicts(path, items[:1], [Verdict.hard("j", Label.SECOND)])
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"instruction": "Q", "response1": "a", "response2": "b", "id": "x"}) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["judge", "--input", str(pairs), "--judge", f"replay:{path}", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "different verdicts are recorded for the same pair and id (ids: x)" in err


@pytest.mark.parametrize(
    ("resps", "why"), [('"a plain string"', "plain string"), ('["flat", "list"]', "flat list")], ids=["str", "flat"]
)
@pytest.mark.usefixtures("shared_data_dir")  # its judge or benchmark reads the data mirror
def test_score_refuses_resps_that_are_not_lists_of_generations(tmp_path: Path, capsys, resps: str, why: str) -> None:
    samples = tmp_path / "samples_mytask_2026-01-01T00-00-00.jsonl"
    good = {"doc": {"instruction": "q", "baseline": "b"}, "resps": [["an answer"]]}
    samples.write_text(
        json.dumps(good) + "\n" + f'{{"doc": {{"instruction": "q", "baseline": "b"}}, "resps": {resps}}}\n'
    )
    assert main(["score", "--samples", str(samples), "--judge", "replay:human"]) == 2
    err = capsys.readouterr().err
    assert f"{samples}: line 2: field 'resps': expected [[generated text, ...]]" in err, why
