"""The README's commands are the ones CI runs: keep them from drifting apart."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)]


def test_ci_runs_the_readme_test_command():
    readme_blocks = _bash_blocks((ROOT / "README.md").read_text())
    test_command = next(block for block in readme_blocks if "pytest" in block)
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_readme_main_job_comes_first_and_is_the_lm_eval_run():
    first = _bash_blocks((ROOT / "README.md").read_text())[0]
    assert first.startswith("pip install") and "lm-eval-pandalm" in first and "--tasks pandalm_pairwise" in first


def test_pre_commit_hooks_are_local_and_offline():
    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert all(repo["repo"] == "local" for repo in config["repos"]), "a remote hook repository needs the network"
    assert all(hook["language"] == "system" for hook in hooks), "system hooks run the tools the dev extra installed"
    entries = " ".join(hook["entry"] for hook in hooks)
    assert "ruff check" in entries and "ruff format" in entries and "mypy lm_eval_pandalm" in entries
