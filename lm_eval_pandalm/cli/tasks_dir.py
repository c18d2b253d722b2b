"""``pandalm tasks-dir``: print the folder of the package's lm-eval task configs."""

from __future__ import annotations

import argparse

NAME = "tasks-dir"
HELP = "print the package's lm-eval task folder"
DESCRIPTION = (
    "Print the folder of the package's lm-eval task configs, for plain lm_eval:\n"
    '  lm_eval --include_path "$(pandalm tasks-dir)" --tasks pandalm_pairwise ...\n'
    "(lm-eval-pandalm puts it on the include path by itself.)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    """Print the folder."""
    from ..task_configs import tasks_dir

    print(tasks_dir())
    return 0
