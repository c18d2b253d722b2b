"""`lm-eval-pandalm` and `pandalm score`: a full offline lm-eval run, then two-stage scoring of its samples.

Issue acceptance: the pairwise task runs end to end with tiny models through `lm-eval-pandalm` (no --include_path),
and `pandalm score` on that run's samples reproduces the same verdicts from the cache with zero forward passes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm_eval_pandalm.cli import main as pandalm_main
from lm_eval_pandalm.harness.judging import clear_judge_cache, judge_for_spec
from lm_eval_pandalm.harness.lm_eval_cli import _include_paths
from lm_eval_pandalm.harness.lm_eval_cli import main as lm_eval_pandalm_main
from lm_eval_pandalm.task_configs import tasks_dir

LIMIT = 4


@pytest.fixture(scope="module")
def candidate_dir(tmp_path_factory) -> Path:
    from lm_eval_pandalm.testing.tiny_models import build_tiny_candidate

    return build_tiny_candidate(tmp_path_factory.mktemp("tiny") / "candidate")


@pytest.fixture(scope="module")
def run(tmp_path_factory, candidate_dir, tiny_judge_dir, shared_data_dir):
    """One offline lm-eval-pandalm run of pandalm_pairwise with its own judgment cache; yields (out_dir, cache)."""
    out = tmp_path_factory.mktemp("run")
    cache = out / "judgments.sqlite"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PANDALM_DATA_DIR", str(shared_data_dir))
        mp.setenv("PANDALM_CACHE_PATH", str(cache))
        clear_judge_cache()
        lm_eval_pandalm_main(
            [
                "--model", "hf",
                "--model_args", f"pretrained={candidate_dir},dtype=float32",
                "--tasks", "pandalm_pairwise",
                "--metadata", json.dumps({"judge": f"pandalm:{tiny_judge_dir}"}),
                "--gen_kwargs", "max_gen_toks=8",
                "--limit", str(LIMIT),
                "--output_path", str(out),
                "--log_samples",
            ]
        )  # fmt: skip
        clear_judge_cache()
    return out, cache


def _only(pattern: str, folder: Path) -> Path:
    found = sorted(folder.rglob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_run_writes_win_rates_with_stderr_and_per_document_verdicts(run):
    out, _ = run
    results = json.loads(_only("results_*.json", out).read_text())["results"]["pandalm_pairwise"]
    for metric in ("pandalm_win_rate", "pandalm_win", "pandalm_tie", "pandalm_loss", "pandalm_failed"):
        assert f"{metric},pandalm" in results
        assert f"{metric}_stderr,pandalm" in results
    assert results["pandalm_failed,pandalm"] == 0
    samples = [json.loads(line) for line in _only("samples_pandalm_pairwise_*.jsonl", out).read_text().splitlines()]
    assert len(samples) == LIMIT
    for sample in samples:
        judgment = json.loads(sample["filtered_resps"][0])
        assert judgment["outcome"] in ("win", "tie", "loss")
        assert judgment["state"] == "ok" and isinstance(judgment["consistent"], bool)
        assert judgment["p_candidate"] + judgment["p_baseline"] + judgment["p_tie"] == pytest.approx(1)


def test_score_reproduces_the_run_from_the_cache_without_loading_the_judge(
    run, tiny_judge_dir, tmp_path, monkeypatch, capsys
):
    out, cache = run
    monkeypatch.setenv("PANDALM_CACHE_PATH", str(cache))
    clear_judge_cache()
    spec = f"pandalm:{tiny_judge_dir}"
    scored_dir = tmp_path / "scored"
    args = [
        "score",
        "--samples",
        str(out),
        "--judge",
        spec,
        "--output-path",
        str(scored_dir),
        "--bootstrap_iters",
        "50",
    ]
    assert pandalm_main(args) == 0
    judge = judge_for_spec(spec)  # the very judge `score` used (shared per process)
    assert not judge.inner.model_loaded and judge.inner.forward_calls == 0  # every verdict came from the cache
    assert judge.hits == 2 * LIMIT and judge.misses == 0
    printed = capsys.readouterr().out
    assert "|pandalm_pairwise|" in printed and "pandalm_win_rate" in printed and "±" in printed  # lm-eval's table

    samples = [json.loads(line) for line in _only("samples_pandalm_pairwise_*.jsonl", out).read_text().splitlines()]
    rescored = [json.loads(line) for line in _only("samples_*.jsonl", scored_dir).read_text().splitlines()]
    assert [r["doc_id"] for r in rescored] == [s["doc_id"] for s in samples]
    for sample, again in zip(samples, rescored, strict=True):
        assert again["doc"] == sample["doc"] and again["resps"] == sample["resps"] and again["filter"] == "pandalm"
        original, judgment = json.loads(sample["filtered_resps"][0]), json.loads(again["filtered_resps"][0])
        for key in ("outcome", "state", "consistent", "outcome_candidate_first", "outcome_candidate_second"):
            assert judgment[key] == original[key], key
        assert judgment["p_candidate"] == pytest.approx(original["p_candidate"])

    generating = json.loads(_only("results_*.json", out).read_text())
    text = _only("results_*.json", scored_dir).read_text()
    scored = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    for metric in ("pandalm_win_rate", "pandalm_win", "pandalm_tie", "pandalm_loss", "pandalm_failed"):
        value = scored["results"]["pandalm_pairwise"][f"{metric},pandalm"]
        assert value == pytest.approx(generating["results"]["pandalm_pairwise"][f"{metric},pandalm"])
    # The generating run's model info and counts are carried over; the judge that scored is recorded.
    assert scored["config"]["model"] == "hf" and scored["config"]["model_args"] == generating["config"]["model_args"]
    assert (
        scored["n-samples"]["pandalm_pairwise"]["original"] == generating["n-samples"]["pandalm_pairwise"]["original"]
    )
    [record] = scored["configs"]["pandalm_pairwise"]["metadata"]["pandalm_judging"]
    assert record["judge"] == spec and record["protocol"] == "both-orders" and record["fingerprint_sha256"]
    from lm_eval.utils import make_table

    assert "pandalm_consistency" in make_table(scored)
    clear_judge_cache()


def test_score_never_writes_into_the_generating_runs_folder(run, tmp_path, capsys):
    out, _ = run
    run_folder = _only("samples_pandalm_pairwise_*.jsonl", out).parent
    code = pandalm_main(["score", "--samples", str(out), "--judge", "replay:human", "--output-path", str(run_folder)])
    assert code == 2
    assert "latest results" in capsys.readouterr().err
    assert len(list(run_folder.glob("results_*.json"))) == 1


@pytest.mark.usefixtures("shared_data_dir")  # its judge or benchmark reads the data mirror
def test_score_reports_a_bad_samples_line(tmp_path, capsys):
    bad = tmp_path / "samples_mytask_2026-01-01T00-00-00.jsonl"
    bad.write_text('{"doc": {"instruction": "q"}, "resps": [["a"]]}\n{"doc": {"instruction": 3}, "resps": [["b"]]}\n')
    assert pandalm_main(["score", "--samples", str(bad), "--judge", "replay:human"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: line 2: field 'doc.instruction'" in err

    bad.write_text('{"doc": {"instruction": "q"}, "resps": [["a"]]}\n')
    assert pandalm_main(["score", "--samples", str(bad), "--judge", "replay:human"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: line 1: field 'doc.baseline'" in err and "--baseline" in err


def test_user_include_path_comes_after_ours_so_it_wins(tmp_path):
    import argparse

    ours = str(tasks_dir())
    assert _include_paths(argparse.Namespace(include_path=None, config=None)) == [ours]
    assert _include_paths(argparse.Namespace(include_path=str(tmp_path), config=None)) == [ours, str(tmp_path)]
    config = tmp_path / "run.yaml"
    config.write_text(f"include_path: {tmp_path}\n")
    assert _include_paths(argparse.Namespace(include_path=None, config=str(config))) == [ours, str(tmp_path)]


def test_pandalm_tasks_dir_prints_the_folder(capsys):
    assert pandalm_main(["tasks-dir"]) == 0
    assert capsys.readouterr().out.strip() == str(tasks_dir())


def test_two_stage_generation_loads_no_judge_then_score_judges(
    tmp_path, candidate_dir, tiny_judge_dir, shared_data_dir, monkeypatch
):
    monkeypatch.setenv("PANDALM_CACHE_PATH", str(tmp_path / "judgments.sqlite"))
    out = tmp_path / "run"
    # A judge that cannot be loaded: stage 1 must never try.
    metadata = json.dumps({"judge": f"pandalm:{tmp_path / 'no-such-judge'}"})
    lm_eval_pandalm_main(
        [
            "--model", "hf",
            "--model_args", f"pretrained={candidate_dir},dtype=float32",
            "--tasks", "pandalm_pairwise_generate",
            "--metadata", metadata,
            "--gen_kwargs", "max_gen_toks=8",
            "--limit", "3",
            "--output_path", str(out),
            "--log_samples",
        ]
    )  # fmt: skip
    samples = _only("samples_pandalm_pairwise_generate_*.jsonl", out)
    assert all("baseline" in json.loads(line)["doc"] for line in samples.read_text().splitlines())

    clear_judge_cache()
    score = ["score", "--samples", str(out), "--judge", f"pandalm:{tiny_judge_dir}", "--bootstrap_iters", "100"]
    assert pandalm_main(score) == 0
    run_folder = samples.parent
    assert list(run_folder.glob("results_*.json")) != [] and len(list(run_folder.glob("results_*.json"))) == 1
    scored_folder = run_folder.with_name(run_folder.name + "__pandalm_score")  # beside the run's folder, not in it
    scored = json.loads(_only("results_*.json", scored_folder).read_text())
    task = scored["results"]["pandalm_pairwise_generate"]
    # original: the whole task, as the generating run recorded it (it ran with --limit 3)
    assert scored["n-samples"]["pandalm_pairwise_generate"] == {"original": 170, "effective": 3}
    assert 0 <= task["pandalm_win_rate,pandalm"] <= 1 and task["pandalm_failed,pandalm"] == 0
    assert task["pandalm_win_rate_stderr,pandalm"] is not None
    clear_judge_cache()
