"""A judge that cannot be used fails before any work: before generation in lm-eval, before judging in `pandalm`.

Issue 6 (hardening), item 1, and item 8's max_length check.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm_eval_pandalm.cli import main
from lm_eval_pandalm.errors import JudgeLoadError
from lm_eval_pandalm.judges import preflight_spec


def test_missing_model_folder_is_one_line_not_an_hf_traceback(capsys) -> None:
    assert main(["meta", "--benchmark", "pandalm", "--judge", "pandalm:/no/such/dir", "--limit", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pandalm meta: error: judge model '/no/such/dir': no such folder" in err
    assert "Repo id" not in err and "Traceback" not in err


def test_hub_id_not_in_the_local_cache_offline(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    with pytest.raises(JudgeLoadError, match="not in the local Hugging Face cache and offline mode is on"):
        preflight_spec("pandalm:WeOpenML/PandaLM-7B-v1")


def test_folder_that_is_not_a_model(tmp_path) -> None:
    (tmp_path / "weights").mkdir()
    with pytest.raises(JudgeLoadError, match=r"has no config\.json"):
        preflight_spec(f"pandalm:{tmp_path / 'weights'}")
    (tmp_path / "weights" / "config.json").write_text("{}")
    with pytest.raises(JudgeLoadError, match="has no weights"):
        preflight_spec(f"pandalm:{tmp_path / 'weights'}")


def test_unknown_replay_name_suggests_the_closest(capsys) -> None:
    assert main(["meta", "--benchmark", "pandalm", "--judge", "replay:gpt4", "--limit", "2"]) == 2
    assert "Did you mean 'GPT-4'?" in capsys.readouterr().err


def test_replay_recordings_that_are_not_available(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PANDALM_DATA_DIR", str(tmp_path / "empty-mirror"))
    monkeypatch.setenv("PANDALM_OFFLINE", "1")
    from lm_eval_pandalm.data import DataUnavailableError

    with pytest.raises(DataUnavailableError, match="not available"):
        preflight_spec("replay:pandalm-7b")


def test_max_length_above_the_models_context_is_an_error(tiny_judge_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "judge.yaml"
    config.write_text(f"type: pandalm\nmodel: {tiny_judge_dir}\nmax_length: 100000\n")
    with pytest.raises(JudgeLoadError, match="max_length 100000 is more than the model's context of 1024"):
        preflight_spec(str(config))
    preflight_spec(f"pandalm:{tiny_judge_dir}")  # the tiny judge itself is fine


class _CountingLM:
    """lm-eval's dummy model, counting the generation requests it receives."""

    def __init__(self) -> None:
        from lm_eval.models.dummy import DummyLM

        class Counting(DummyLM):
            requests = 0

            def generate_until(self, requests, disable_tqdm: bool = False):
                Counting.requests += len(requests)
                return super().generate_until(requests, disable_tqdm)

        self.cls = Counting
        self.lm = Counting()


@pytest.mark.parametrize("judge", ["replay:nope", "pandalm:/no/such/dir", "pandalm:WeOpenML/PandaLM-7B-v1"])
def test_pandalm_pairwise_fails_before_generation(shared_data_dir, judge, monkeypatch, tmp_path) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from lm_eval_pandalm.errors import PandaLMError
    from lm_eval_pandalm.task_configs import tasks_dir

    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    counting = _CountingLM()
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata={"judge": judge})
    with pytest.raises((PandaLMError, ValueError)):
        lm_eval.simple_evaluate(model=counting.lm, tasks=["pandalm_pairwise"], task_manager=manager, limit=2)
    assert counting.cls.requests == 0


def test_the_examples_judged_task_fails_before_generation_offline(monkeypatch, tmp_path) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    examples = Path(__file__).resolve().parents[1] / "examples"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "judged_task_data.jsonl").write_text(
        json.dumps({"question": "Name a colour.", "context": "", "reference_answer": "Red."}) + "\n"
    )
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    counting = _CountingLM()
    manager = TaskManager(include_path=str(examples), include_defaults=False)
    with pytest.raises(JudgeLoadError, match="not in the local Hugging Face cache"):
        lm_eval.simple_evaluate(model=counting.lm, tasks=["my_judged_task"], task_manager=manager, limit=1)
    assert counting.cls.requests == 0
