"""`lm-eval-pandalm` as a user meets it: --help, --bootstrap_iters, one-line errors, and outputs lm-eval's tools read.

Issue 6 (hardening), items 5 and 7: what the command adds to `lm_eval` is in `--help`; `--bootstrap_iters` reaches
`simple_evaluate`; known errors are one line (exit 2, Ctrl-C 130) suggesting fixes this command accepts; the results
JSON names its metric functions (not their source), is standard JSON (no NaN), and a `pandalm-replay` run's folder
is named after the replayed judge.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from lm_eval_pandalm.harness.judging import clear_judge_cache
from lm_eval_pandalm.harness.lm_eval_cli import main


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses NaN / Infinity."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))


@pytest.fixture(autouse=True)
def _only_our_tasks(monkeypatch):
    """lm-eval indexes its ~14,000 built-in tasks for every run (7 s here); none of them is what is tested."""
    import lm_eval.tasks

    class OurTasksOnly(lm_eval.tasks.TaskManager):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["include_defaults"] = False
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", OurTasksOnly)
    monkeypatch.setenv("DISABLE_MULTIPROC", "1")  # bootstrap in-process: a pool costs more than a few draws
    clear_judge_cache()
    _log_to_the_real_stderr()
    yield
    _log_to_the_real_stderr()
    clear_judge_cache()


def _log_to_the_real_stderr() -> None:
    # lm-eval's setup_logging binds its handler to sys.stderr once per process; under capsys that stream is closed
    # after the test, and every later log line would print a "Logging error" traceback.
    for handler in logging.getLogger("lm_eval").handlers:
        if type(handler) is logging.StreamHandler:  # not pytest's capture handlers (subclasses)
            handler.stream = sys.__stderr__  # not setStream: it flushes the old, closed, stream


def fake_judge(folder: Path) -> str:
    path = folder / "fake.yaml"
    path.write_text("type: fake\nname: hardening\n", encoding="utf-8")
    return str(path)


def _only(pattern: str, folder: Path) -> Path:
    found = sorted(folder.rglob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_help_says_what_it_adds_to_lm_eval(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    top = capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    run = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    for text in (top, run):
        assert "lm-eval-pandalm is lm_eval with" in text
        assert "--include_path" in text and "pandalm-replay" in text and "--bootstrap_iters" in text
        assert "PANDALM_DATA_DIR" in text
    assert "--bootstrap_iters N lm-eval-pandalm: resamples" in run and "(default: lm-eval's 100000; 0 computes" in run


def test_replay_run_bootstrap_iters_folder_name_and_named_metrics(shared_data_dir, tmp_path) -> None:
    out = tmp_path / "out"
    args = ["--model", "pandalm-replay", "--model_args", "judge=pandalm-7b", "--tasks", "pandalm_judge_testset"]
    code = main([*args, "--limit", "30", "--bootstrap_iters", "20", "--output_path", str(out), "--log_samples"])
    assert code == 0
    results_file = _only("results_*.json", out)
    # Named after the replayed judge, not lm-eval's random 8 characters.
    assert results_file.parent.name == "pandalm-replay__pandalm-7b"
    results = strict_json(results_file.read_text())
    assert results["model_name"] == "pandalm-replay__pandalm-7b"
    assert results["config"]["bootstrap_iters"] == 20
    task = results["results"]["pandalm_judge_testset"]
    assert isinstance(task["mcc_stderr,none"], float)  # bootstrapped, with the 20 draws asked for
    metric_list = results["configs"]["pandalm_judge_testset"]["metric_list"]
    assert [(m["metric"], m["aggregation"]) for m in metric_list] == [
        ("acc", "mean"),
        ("f1_macro", "pandalm_f1_macro"),  # the registered name of the !function aggregation, not its source
        ("mcc", "matthews_corrcoef"),
    ]


def test_bootstrap_iters_zero_means_no_stderr_and_negative_is_refused(shared_data_dir, tmp_path, capsys) -> None:
    args = ["--model", "pandalm-replay", "--model_args", "judge=pandalm-7b", "--tasks", "pandalm_judge_testset"]
    assert main([*args, "--limit", "10", "--bootstrap_iters", "0"]) == 0
    assert "mcc" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        main([*args, "--bootstrap_iters", "-1"])
    assert refused.value.code == 2 and "must be 0 or more" in capsys.readouterr().err


def test_pairwise_results_and_samples_are_standard_json_with_named_metrics(shared_data_dir, tmp_path) -> None:
    out = tmp_path / "out"
    metadata = json.dumps({"judge": fake_judge(tmp_path), "protocol": "first-order"})
    code = main(
        [
            "--model", "dummy", "--tasks", "pandalm_pairwise", "--metadata", metadata, "--limit", "3",
            "--bootstrap_iters", "10", "--output_path", str(out), "--log_samples",
        ]
    )  # fmt: skip
    assert code == 0
    results = strict_json(_only("results_*.json", out).read_text())
    task = results["results"]["pandalm_pairwise"]
    # A judge that is no cascade and says nothing of cost: the cost metrics are absent, not NaN.
    assert not any(key.startswith(("pandalm_escalated", "pandalm_api_calls", "pandalm_cost_usd")) for key in task)
    # First-order: no document has a consistency; null, with the reason, and no stderr.
    assert task["pandalm_consistency,pandalm"] is None and task["pandalm_consistency_stderr,pandalm"] == "N/A"
    assert "first-order" in results["pandalm_null_metrics"]["pandalm_pairwise"]["pandalm_consistency,pandalm"]
    assert isinstance(task["pandalm_win_rate,pandalm"], float)
    from lm_eval.utils import make_table

    assert "pandalm_win_rate" in make_table(results)
    names = [m["metric"] for m in results["configs"]["pandalm_pairwise"]["metric_list"]]
    assert names[:6] == [
        "pandalm_win_rate",
        "pandalm_win",
        "pandalm_tie",
        "pandalm_loss",
        "pandalm_failed",
        "pandalm_consistency",
    ]
    for line in _only("samples_pandalm_pairwise_*.jsonl", out).read_text().splitlines():
        sample = strict_json(line)
        assert sample["pandalm_consistency"] is None
        assert all(name in sample for name in names[:5])


def test_a_judge_that_cannot_be_loaded_is_one_line_and_exit_2(tmp_path, capsys) -> None:
    metadata = json.dumps({"judge": "pandalm:/no/such/judge"})
    assert main(["--model", "dummy", "--tasks", "pandalm_pairwise", "--metadata", metadata, "--limit", "1"]) == 2
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if ": error: " in line]
    assert line.startswith("lm-eval-pandalm: error: judge model '/no/such/judge': no such folder")
    assert "Traceback" not in err


def test_missing_data_suggests_pandalm_data_dir_not_data_dir(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PANDALM_DATA_DIR", str(tmp_path / "empty-mirror"))
    monkeypatch.setenv("PANDALM_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    metadata = json.dumps({"judge": fake_judge(tmp_path)})
    assert main(["--model", "dummy", "--tasks", "pandalm_pairwise", "--metadata", metadata, "--limit", "1"]) == 2
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if ": error: " in line]
    assert line.startswith("lm-eval-pandalm: error: ") and "is not available" in line
    assert "set PANDALM_DATA_DIR" in line and "--data-dir" not in err and "Traceback" not in err


def test_ctrl_c_exits_130(monkeypatch, capsys) -> None:
    from lm_eval.config.evaluate_config import EvaluatorConfig

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(EvaluatorConfig, "process_tasks", interrupted)
    assert main(["--model", "dummy", "--tasks", "pandalm_pairwise", "--limit", "1"]) == 130
    err = capsys.readouterr().err
    assert "lm-eval-pandalm: interrupted" in err and "Traceback" not in err
