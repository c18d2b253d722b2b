"""lm-eval task configs of lm_eval_pandalm (YAML only; installed as ``lm_eval_pandalm.task_configs``).

Point lm-eval at this folder with ``lm_eval --include_path "$(pandalm tasks-dir)"``, or use ``lm-eval-pandalm``.
lm-eval scans include paths for ``*.yaml`` only, so this module is never imported by it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["tasks_dir"]


def tasks_dir() -> Path:
    """The installed folder of the package's lm-eval task configs (for ``--include_path``)."""
    return Path(__file__).resolve().parent
