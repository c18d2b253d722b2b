"""``lm-eval-pandalm``: lm-eval's own command line with this package's tasks and registrations present.

It is ``lm_eval`` (every subcommand and flag, legacy form included) with two differences: the package's task folder
is on the include path without ``--include_path``, and the package's filter, metrics and ``pandalm-replay`` model are
registered. A user's own ``--include_path`` (on the command line or in a ``--config`` file) still works and comes
after ours, so on a name clash the user's task wins.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..task_configs import tasks_dir
from .registration import register

__all__ = ["main"]


def _as_list(value: object) -> list[str]:
    if not value:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _include_paths(args: argparse.Namespace) -> list[str]:
    """Our task folder first, then the user's include path(s), which therefore override ours."""
    user = getattr(args, "include_path", None)
    if not user and getattr(args, "config", None):
        from lm_eval.config.evaluate_config import EvaluatorConfig

        user = EvaluatorConfig.load_yaml_config(args.config).get("include_path")
    ours = str(tasks_dir())
    return [ours, *(path for path in _as_list(user) if Path(path).resolve() != Path(ours).resolve())]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``lm-eval-pandalm`` console script."""
    from lm_eval._cli import HarnessCLI
    from lm_eval.utils import setup_logging

    saved_argv = sys.argv
    if argv is not None:
        # lm-eval's parser reads sys.argv itself (it inserts the legacy "run" subcommand there).
        sys.argv = ["lm-eval-pandalm", *argv]
    try:
        setup_logging()
        register()
        parser = HarnessCLI()
        args = parser.parse_args()
        if hasattr(args, "include_path"):
            args.include_path = _include_paths(args)
        parser.execute(args)
    finally:
        sys.argv = saved_argv


if __name__ == "__main__":
    main()
