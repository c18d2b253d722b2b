"""The package's task YAMLs pass lm-eval's own task checks (issue 6, item 7).

lm-eval checks every task its CI sees changed with ``tests/test_tasks.py::BaseTasks`` (and finds the changed tasks
with ``tests/utils.py``, which reads every changed ``*.yaml`` as a task or a group). The checks below are the same,
applied to each task of ``task_configs/``, and the naming rule that makes ``utils.py`` work: a YAML file is a task
(``task: NAME``) or a group (``group:`` with a ``task:`` list); an include-only template is named ``_<x>_yaml``, as
lm-eval names its own (``_default_template_yaml``), so neither lm-eval's task index nor its CI takes it for a task.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from lm_eval_pandalm.task_configs import tasks_dir

LIMIT = 10
GROUPS = ("pandalm_judge", "pandalm_judge_both")
TASKS = sorted(path.stem for path in tasks_dir().rglob("pandalm_*.yaml") if path.stem not in GROUPS)


def test_every_yaml_is_a_task_or_a_group_and_templates_are_named_like_lm_evals() -> None:
    from lm_eval.tasks._yaml_loader import load_yaml

    files = [path for path in tasks_dir().rglob("*") if path.is_file() and "yaml" in path.name]
    assert files
    for path in files:
        config = load_yaml(str(path), resolve_func=False)
        if path.suffix == ".yaml":
            # What lm-eval's tests/utils.py `parser` reads from every changed .yaml.
            assert isinstance(config.get("task"), (str, list)), f"{path}: neither a task nor a group"
            if isinstance(config["task"], list):
                assert isinstance(config.get("group"), str), f"{path}: a task list without a group"
        else:
            assert path.name.startswith("_") and path.name.endswith("_yaml"), path
            assert "task" not in config, f"{path}: a template names no task"


@pytest.fixture(scope="module")
def tasks(tmp_path_factory, shared_data_dir: Path) -> dict[str, Any]:
    from lm_eval.tasks import TaskManager

    judge = tmp_path_factory.mktemp("judge") / "fake.yaml"
    judge.write_text("type: fake\nname: task-checks\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PANDALM_DATA_DIR", str(shared_data_dir))
        manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata={"judge": str(judge)})
        loaded = manager.load(TASKS)["tasks"]
    assert sorted(loaded) == TASKS
    return loaded


def _docs(task: Any) -> list[dict[str, Any]]:
    return list(islice(task.test_docs() if task.has_test_docs() else task.validation_docs(), LIMIT))


@pytest.mark.parametrize("name", TASKS)
def test_lm_evals_base_task_checks(tasks: dict[str, Any], name: str) -> None:
    task = tasks[name]
    # test_download
    task.download(task.config.dataset_kwargs)
    assert task.dataset is not None
    # test_has_* / test_check_*_docs
    for split in ("training", "validation", "test"):
        has = getattr(task, f"has_{split}_docs")()
        assert has in (True, False)
        if has:
            assert task._config[f"{split}_split"] is not None
    # test_should_decontaminate
    assert task.should_decontaminate() in (True, False)
    docs = _docs(task)
    assert len(docs) == LIMIT
    # test_doc_to_text: no prompt ends in whitespace when the target delimiter is whitespace
    texts = [task.doc_to_text(doc) for doc in docs]
    assert not task.multiple_input
    delimiter = task.config.target_delimiter
    for text in texts:
        assert isinstance(text, str)
        assert not (delimiter.isspace() and text and text[-1].isspace()), (name, repr(delimiter), repr(text[-30:]))
    # test_create_choices / test_doc_to_target
    if "multiple_choice" in task._config.output_type:
        choices = [task.doc_to_choice(doc) for doc in docs]
        assert all(isinstance(x, list) and isinstance(x[0], str) for x in choices)
        assert all(isinstance(task.doc_to_target(doc), (int, str)) for doc in docs)
    # test_build_all_requests / test_construct_requests
    task.build_all_requests(rank=1, limit=LIMIT, world_size=1)
    assert task.instances is not None
    requests = [task.construct_requests(doc=doc, ctx=task.doc_to_text(doc)) for doc in docs]
    assert len(requests) == LIMIT


def test_pairwise_prompt_bytes_are_unchanged(tasks: dict[str, Any]) -> None:
    """The zero-shot generation context is the Alpaca prompt itself, "### Response:\\n" and all."""
    task = tasks["pandalm_pairwise"]
    doc = _docs(task)[0]
    assert task.config.target_delimiter == ""
    context = task.fewshot_context(doc, num_fewshot=0)
    assert context == doc["prompt"] and context.endswith("### Response:\n")
