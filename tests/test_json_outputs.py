"""Standard JSON from the command lines, and `pandalm score`'s outputs and inputs (issue 6, item 7).

`pandalm judge --json` and its verdict file are standard JSON (no NaN / Infinity; `meta --json`, `spend --json` and
`calibrate --json` are checked in their own tests). Beyond the end-to-end run of test_lm_eval_pandalm_cli.py,
`pandalm score`'s results JSON names its metrics (lm-eval's W&B and Zeno loggers look each `metric` up in the
samples), both of its files are standard JSON, and `resps` that is not lm-eval's list of lists is an error naming the
file, line and field instead of judging the first character of a string.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lm_eval_pandalm.cli import main
from lm_eval_pandalm.harness.judging import clear_judge_cache
from lm_eval_pandalm.harness.winrate import METRICS

STAMP = "2026-01-01T00-00-00.000000"
TASK = "mytask"


def strict_json(text: str) -> Any:
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))


@pytest.fixture(autouse=True)
def _fresh_judges():
    clear_judge_cache()
    yield
    clear_judge_cache()


def fake_judge(folder: Path) -> str:
    path = folder / "fake.yaml"
    path.write_text("type: fake\nname: score-outputs\n", encoding="utf-8")
    return str(path)


def write_run(folder: Path, resps: list[Any]) -> Path:
    """A generating run's folder: samples with the given resps, and a results JSON as lm-eval dumps !function
    metrics (their source)."""
    folder.mkdir(parents=True)
    rows = [
        {"doc_id": i, "doc": {"instruction": f"Question {i}?", "baseline": "b" * (i + 1)}, "resps": r, "metrics": []}
        for i, r in enumerate(resps)
    ]
    samples = folder / f"samples_{TASK}_{STAMP}.jsonl"
    samples.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    source = "def pandalm_win_rate(references, predictions, **kwargs):\n    return 1.0\n"
    generating = {
        "results": {TASK: {}},
        "configs": {TASK: {"task": TASK, "metric_list": [{"metric": source, "aggregation": "nanmean"}]}},
        "n-samples": {TASK: {"original": len(rows), "effective": len(rows)}},
        "config": {"model": "hf", "model_args": "pretrained=x"},
    }
    (folder / f"results_{STAMP}.json").write_text(json.dumps(generating), encoding="utf-8")
    return samples


def test_results_name_the_metrics_computed_and_both_files_are_strict_json(tmp_path, capsys) -> None:
    write_run(tmp_path / "run", [[["a"]], [["bb"]], [["ccc"]], [["dddd"]]])
    out = tmp_path / "scored"
    args = ["score", "--samples", str(tmp_path / "run"), "--judge", fake_judge(tmp_path), "--protocol", "first-order"]
    assert main([*args, "--output-path", str(out), "--bootstrap_iters", "10"]) == 0
    [results_file] = out.glob("results_*.json")
    results = strict_json(results_file.read_text())
    metric_list = results["configs"][TASK]["metric_list"]
    assert [m["metric"] for m in metric_list] == list(METRICS)
    assert all(m["aggregation"] == "nanmean" for m in metric_list)
    # first-order: no consistency; null with the reason, and no stderr
    assert results["results"][TASK]["pandalm_consistency,pandalm"] is None
    assert results["pandalm_score"]["null_metrics"][TASK]["pandalm_consistency"]
    [samples_file] = out.glob("samples_*.jsonl")
    for line in samples_file.read_text().splitlines():
        sample = strict_json(line)
        # What lm-eval's W&B logger does with the config: look every listed metric up in each sample.
        assert all(m["metric"] in sample for m in metric_list)
        assert sample["pandalm_consistency"] is None


@pytest.mark.parametrize(
    ("resps", "what"),
    [
        ("a plain string", "a plain string"),
        (["a flat list"], "a flat list"),
        ([], "an empty list"),
        ([[3]], "a number"),
    ],
)
def test_resps_that_are_not_a_list_of_lists_of_text_are_an_error(tmp_path, capsys, resps, what) -> None:
    samples = write_run(tmp_path / "run", [[["fine"]], resps])
    code = main(
        ["score", "--samples", str(samples), "--judge", fake_judge(tmp_path), "--output-path", str(tmp_path / "o")]
    )
    assert code == 2, what
    err = capsys.readouterr().err
    assert f"{samples}: line 2: field 'resps'" in err and "expected [[generated text, ...]]" in err, what
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("results_*.json"))


def test_judge_json_and_verdict_file_are_strict_json(tmp_path, capsys) -> None:
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"instruction": f"Q{i}?", "response1": "a" * i, "response2": "b", "id": f"p{i}"} for i in range(4)]
    pairs.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    out = tmp_path / "verdicts.jsonl"
    assert main(["judge", "--input", str(pairs), "--judge", fake_judge(tmp_path), "--output", str(out), "--json"]) == 0
    figures = strict_json(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["judged"] == 4
    assert [strict_json(line)["id"] for line in out.read_text().splitlines()] == ["p0", "p1", "p2", "p3"]
