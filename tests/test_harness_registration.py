"""Importing the lm-eval adapter adds our names and changes nothing else about lm-eval.

lm-eval's registries fill themselves lazily and only while empty, so a careless registration hides every built-in.
The checks below are modelled on lm-eval's own task-manager and registry tests; each runs in a fresh interpreter,
once with ``import lm_eval_pandalm.harness`` first and once without, and the answers must agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

CHECKS = textwrap.dedent(
    """
    import json, sys, tempfile
    from pathlib import Path
    if sys.argv[1] == "with":
        import lm_eval_pandalm.harness  # noqa: F401
    from lm_eval.api import registry
    from lm_eval.tasks import TaskManager

    out = {}
    out["hf_model"] = registry.get_model("hf").__name__
    out["acc_metric"] = registry.get_metric("acc").__name__
    out["mean_aggregation"] = registry.get_aggregation("mean").__name__
    out["regex_filter"] = registry.get_filter("regex").__name__
    out["models"] = sorted(registry.model_registry.keys())
    out["metrics"] = sorted(registry.metric_registry.keys())
    out["filters"] = sorted(registry.filter_registry.keys())

    tm = TaskManager()
    out["n_tasks"] = len(tm.all_tasks)
    out["tasks_sorted"] = tm.all_tasks == sorted(tm.all_tasks)
    out["groups"] = tm.all_groups[:50]
    out["tags"] = tm.all_tags[:50]
    out["arc_easy_yaml"] = str(tm.task_index["arc_easy"].yaml_path.name)

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "zzz_probe.yaml").write_text(
            "task: zzz_probe\\ndataset_path: json\\noutput_type: generate_until\\ntag: zzz_probe_tag\\n"
        )
        custom = TaskManager(include_path=tmp, include_defaults=False)
        out["custom_only"] = custom.all_tasks
        mixed = TaskManager(include_path=tmp)
        out["custom_added"] = "zzz_probe" in mixed.all_tasks and "arc_easy" in mixed.all_tasks
    print(json.dumps(out))
    """
)

OURS = {"models": {"pandalm-replay"}, "filters": {"pandalm_judge"}}


def _run(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHECKS, mode], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def both() -> tuple[dict, dict]:
    return _run("without"), _run("with")


def test_lm_eval_checks_pass_with_the_adapter_imported(both):
    _, with_ours = both
    assert with_ours["hf_model"] == "HFLM"
    assert with_ours["acc_metric"] and with_ours["mean_aggregation"] == "mean"
    assert with_ours["n_tasks"] > 1000 and with_ours["tasks_sorted"]
    assert with_ours["custom_only"] == ["zzz_probe", "zzz_probe_tag"]
    assert with_ours["custom_added"]


def test_importing_the_adapter_changes_nothing_but_adds_our_names(both):
    without, with_ours = both
    for key in ("hf_model", "acc_metric", "mean_aggregation", "regex_filter", "n_tasks", "groups", "tags"):
        assert with_ours[key] == without[key], key
    assert with_ours["arc_easy_yaml"] == without["arc_easy_yaml"]
    assert with_ours["custom_only"] == without["custom_only"]
    assert set(without["models"]) <= set(with_ours["models"])
    assert set(with_ours["models"]) - set(without["models"]) == OURS["models"]
    assert set(with_ours["filters"]) - set(without["filters"]) == OURS["filters"]
    added_metrics = set(with_ours["metrics"]) - set(without["metrics"])
    assert added_metrics and all(name.startswith("pandalm_") for name in added_metrics)
    assert set(without["metrics"]) <= set(with_ours["metrics"])


def test_tasks_dir_is_on_disk_and_holds_the_task_configs():
    from lm_eval_pandalm.task_configs import tasks_dir

    folder = tasks_dir()
    assert (folder / "pandalm").is_dir() and (folder / "pandalm_judge").is_dir()
    assert any(folder.glob("**/*.yaml"))
