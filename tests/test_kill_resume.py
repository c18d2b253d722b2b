"""A run killed half-way loses at most one chunk: `pandalm judge`, `score`, `meta` and the in-run lm-eval filter.

Issue 6 (hardening), item 2 and acceptance 1. Each run is a real process killed with SIGKILL while it judges; the
fake judge appends the content key of every item it judges to a log file (flushed and synced at once), so the items
judged twice (before the kill, and again by the re-run) can be counted. The chunk size is 4.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from lm_eval_pandalm.testing.processes import sigkill_when

CHUNK = 4
TIMEOUT_S = 240


def fake_judge(folder: Path, name: str, delay_s: float = 0.03, **settings: object) -> tuple[str, Path]:
    """A judge YAML for the fake judge logging to ``<name>.log``; the verdicts (and the cache fingerprint) do not
    depend on the log file or the delay, so runs with different logs share one cache."""
    log = folder / f"{name}.log"
    config = folder / f"{name}.yaml"
    lines = ["type: fake", "name: killed", "position_bias: 0.3", f"delay_s: {delay_s}", f"log_path: {log}"]
    lines += [f"{key}: {json.dumps(value)}" for key, value in settings.items()]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(config), log


def env(cache: Path) -> dict[str, str]:
    return {**os.environ, "PANDALM_CHUNK_SIZE": str(CHUNK), "PANDALM_CACHE_PATH": str(cache), "PYTHONUNBUFFERED": "1"}


def logged(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").split() if log.exists() else []


def kill_when_judging(command: list[str], log: Path, cache: Path, after: int) -> None:
    """Start ``command`` and SIGKILL it once ``after`` items are logged as judged."""
    process = subprocess.Popen(command, env=env(cache), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sigkill_when(process, lambda: len(logged(log)) >= after, timeout_s=TIMEOUT_S, poll_s=0.02)
    assert process.returncode == -signal.SIGKILL


def resume_and_count(first: list[str], command: list[str], log: Path, cache: Path, total: int) -> None:
    done = subprocess.run(command, env=env(cache), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    second = logged(log)
    rejudged = set(first) & set(second)
    what = command[3] if command[1] == "-m" else "in-run filter"
    print(f"{what}: killed after {len(set(first))} of {total} judged; {len(rejudged)} judged again on resume")
    assert len(rejudged) <= CHUNK, f"{len(rejudged)} items judged again after the kill"
    assert len(set(first) | set(second)) == total  # everything was judged, once or (at most a chunk) twice
    assert len(second) < total  # the re-run did not start from scratch


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lm_eval_pandalm.cli", *args]


def test_pandalm_judge_killed_half_way(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"instruction": f"Q{i}", "response1": "x" * i, "response2": "y" * (60 - i)} for i in range(60)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cache = tmp_path / "c.sqlite"
    spec1, log1 = fake_judge(tmp_path, "first")
    args = ["judge", "--input", str(pairs), "--output", str(tmp_path / "v.jsonl"), "--protocol", "both-orders"]
    kill_when_judging(cli(*args, "--judge", spec1), log1, cache, after=30)
    spec2, log2 = fake_judge(tmp_path, "second", delay_s=0)
    resume_and_count(logged(log1), cli(*args, "--judge", spec2), log2, cache, total=120)
    assert len((tmp_path / "v.jsonl").read_text().splitlines()) == 60


def test_pandalm_score_killed_half_way(tmp_path: Path) -> None:
    samples = tmp_path / "run" / "samples_mytask_2026-01-01T00-00-00.000000.jsonl"
    samples.parent.mkdir()
    rows = [
        {
            "doc_id": i,
            "doc": {"instruction": f"Q{i}", "input": "", "baseline": "b" * (i % 9)},
            "resps": [["a" * (i + 1)]],
        }
        for i in range(40)
    ]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cache = tmp_path / "c.sqlite"
    spec1, log1 = fake_judge(tmp_path, "first")
    args = ["score", "--samples", str(samples), "--bootstrap_iters", "10"]
    kill_when_judging(cli(*args, "--judge", spec1), log1, cache, after=30)
    spec2, log2 = fake_judge(tmp_path, "second", delay_s=0)
    resume_and_count(logged(log1), cli(*args, "--judge", spec2), log2, cache, total=80)


def test_pandalm_meta_killed_half_way(tmp_path: Path, shared_data_dir: Path) -> None:
    cache = tmp_path / "c.sqlite"
    spec1, log1 = fake_judge(tmp_path, "first")
    args = ["meta", "--benchmark", "pandalm", "--limit", "40", "--protocol", "both-orders"]
    kill_when_judging(cli(*args, "--judge", spec1), log1, cache, after=30)
    spec2, log2 = fake_judge(tmp_path, "second", delay_s=0)
    from lm_eval_pandalm.data import load_benchmark

    items = load_benchmark("pandalm").items[:40]
    total = len({key for item in items for key in (item.key, item.swapped().key)})
    resume_and_count(logged(log1), cli(*args, "--judge", spec2), log2, cache, total=total)


_IN_RUN = """
import sys
import lm_eval
from lm_eval.tasks import TaskManager
from lm_eval_pandalm.task_configs import tasks_dir

manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata={"judge": sys.argv[1]})
lm_eval.simple_evaluate(model="dummy", tasks=["pandalm_pairwise"], task_manager=manager, limit=30, bootstrap_iters=0)
"""


def test_the_in_run_judge_filter_killed_half_way(tmp_path: Path, shared_data_dir: Path) -> None:
    cache = tmp_path / "c.sqlite"
    spec1, log1 = fake_judge(tmp_path, "first")
    kill_when_judging([sys.executable, "-c", _IN_RUN, spec1], log1, cache, after=25)
    spec2, log2 = fake_judge(tmp_path, "second", delay_s=0)
    resume_and_count(logged(log1), [sys.executable, "-c", _IN_RUN, spec2], log2, cache, total=60)
