"""`pandalm judge`: pairs JSONL in, verdict JSONL out, readable back as a replay judge."""

import json

import pytest

from lm_eval_pandalm.cli import main
from lm_eval_pandalm.data.benchmarks import load_benchmark
from lm_eval_pandalm.verdict_io import read_verdicts


def _write_pairs(path, items):
    with path.open("w") as handle:
        for item in items:
            row = {"id": item.id, "instruction": item.instruction, "input": item.input}
            row.update(response1=item.response1, response2=item.response2)
            handle.write(json.dumps(row) + "\n")


@pytest.mark.usefixtures("shared_data_dir")  # its judge or benchmark reads the data mirror
def test_judge_writes_verdicts_that_replay_reproduces(tmp_path, capsys):
    bench = load_benchmark("pandalm")
    pairs, out = tmp_path / "pairs.jsonl", tmp_path / "verdicts.jsonl"
    _write_pairs(pairs, bench.items[:12])
    args = ["judge", "--input", str(pairs), "--judge", "replay:human", "--output", str(out), "--chunk-size", "5"]
    assert main([*args, "--protocol", "both-orders"]) == 0
    written = read_verdicts(out)
    assert [item.id for item, _ in written] == [item.id for item in bench.items[:12]]
    assert [v.winner for _, v in written] == list(bench.gold[:12])
    assert "judged 12 pairs" in capsys.readouterr().out

    again = tmp_path / "again.jsonl"
    assert main(["judge", "--input", str(pairs), "--judge", f"replay:{out}", "--output", str(again)]) == 0
    assert [v.winner for _, v in read_verdicts(again)] == [v.winner for _, v in written]


@pytest.mark.usefixtures("shared_data_dir")  # its judge or benchmark reads the data mirror
def test_judge_reports_a_bad_pairs_file_by_line_and_field(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"instruction": "q", "response1": "a", "response2": "b"}\n{"instruction": "q", "response1": 3}\n')
    code = main(["judge", "--input", str(pairs), "--judge", "replay:human", "--output", str(tmp_path / "o.jsonl")])
    assert code == 2
    err = capsys.readouterr().err
    assert str(pairs) in err and "line 2" in err and "response" in err
