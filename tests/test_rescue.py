"""When judging fails after generation (out of memory, a server down), the generations are not lost.

Issue 6 (hardening), item 1: the judge filter saves every document's generation as a samples file, says where in
the error, and `pandalm score` judges that file later, the verdicts already judged coming from the cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm_eval_pandalm.cli import main
from lm_eval_pandalm.harness.judge_filter import JudgingFailedError
from lm_eval_pandalm.harness.judging import clear_judge_cache

LIMIT = 12


def judge_yaml(folder: Path, name: str, **settings: object) -> str:
    path = folder / f"{name}.yaml"
    lines = ["type: fake", "name: rescue", f"log_path: {folder / (name + '.log')}"]
    path.write_text("\n".join(lines + [f"{k}: {json.dumps(v)}" for k, v in settings.items()]) + "\n")
    return str(path)


def test_generations_are_saved_and_scored_later(shared_data_dir, tmp_path, monkeypatch, capsys) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from lm_eval_pandalm.task_configs import tasks_dir

    monkeypatch.setenv("PANDALM_RESCUE_DIR", str(tmp_path / "rescued"))
    monkeypatch.setenv("PANDALM_CACHE_PATH", str(tmp_path / "c.sqlite"))
    monkeypatch.setenv("PANDALM_CHUNK_SIZE", "4")
    clear_judge_cache()
    failing = judge_yaml(tmp_path, "failing", fail_after=10)  # dies in the third chunk
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata={"judge": failing})
    with pytest.raises(JudgingFailedError) as raised:
        lm_eval.simple_evaluate(model="dummy", tasks=["pandalm_pairwise"], task_manager=manager, limit=LIMIT)
    rescued = raised.value.rescue_path
    message = str(raised.value)
    assert str(rescued) in message and "pandalm score --samples" in message and "failed after generation" in message
    rows = [json.loads(line) for line in rescued.read_text().splitlines()]
    assert len(rows) == LIMIT and all(row["resps"] == [["lol"]] for row in rows)  # the dummy model's answers
    assert all(row["doc"]["instruction"] and row["doc"]["baseline"] for row in rows)
    clear_judge_cache()

    working = judge_yaml(tmp_path, "working")
    assert main(["score", "--samples", str(rescued), "--judge", working, "--bootstrap_iters", "10"]) == 0
    # The two chunks judged before the failure were committed: only the rest was judged again.
    assert len((tmp_path / "working.log").read_text().split()) == 2 * LIMIT - 8
    out = capsys.readouterr().out
    assert "pandalm_win_rate" in out and f"judged {LIMIT}: {LIMIT} ok" in out
    clear_judge_cache()


def test_results_record_the_judge_that_ran_and_the_resolved_filter_options(shared_data_dir, tmp_path, monkeypatch):
    """Issue 6, item 6: the results JSON says what judged, and the dumped filter config shows resolved values."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from lm_eval_pandalm.task_configs import tasks_dir

    monkeypatch.setenv("PANDALM_CACHE_PATH", str(tmp_path / "c.sqlite"))
    clear_judge_cache()
    spec = judge_yaml(tmp_path, "recorded")
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata={"judge": spec})
    out = lm_eval.simple_evaluate(
        model="dummy", tasks=["pandalm_pairwise"], task_manager=manager, limit=4, bootstrap_iters=0
    )
    config = out["configs"]["pandalm_pairwise"]
    [record] = config["metadata"]["pandalm_judging"]
    assert record["judge"] == spec and record["judge_id"] == "fake:rescue" and record["protocol"] == "both-orders"
    assert record["baseline"] == "self-instruct" and len(record["prompt_template_sha256"]) == 64
    assert record["fingerprint"].startswith("fake/") and record["judged"] == 4 and record["failed_by_state"] == {}
    [judge_step] = [step for step in config["filter_list"][0]["filter"] if "judge" in step]
    assert judge_step["judge"] == spec and judge_step["protocol"] == "both-orders"  # not "{{ judge }}"
    assert judge_step["instruction"] == "{{ instruction }}"  # per-document templates stay templates
    clear_judge_cache()
