"""``lm-eval-pandalm``: lm-eval's own command line with this package's tasks and registrations present.

It is ``lm_eval`` (every subcommand and flag, legacy form included) with these differences (:data:`ADDITIONS`, also
in ``--help``):

- the package's task folder is on the include path without ``--include_path``; a user's own ``--include_path`` (on
  the command line or in a ``--config`` file) still works and comes after ours, so on a name clash the user's task
  wins;
- the package's filter, metrics and ``pandalm-replay`` model are registered;
- ``run`` takes ``--bootstrap_iters N``, handed to ``simple_evaluate`` (lm-eval 0.4.13's command line has no such
  flag, and its default of 100,000 resamples takes minutes on a CPU for a bootstrapped metric such as ``mcc``);
- a known error (bad input, a judge that cannot be loaded, missing data) is one line and exit status 2, Ctrl-C exits
  with 130 after saying what is safe in the judgment cache (``PANDALM_DEBUG=1`` shows tracebacks); the fixes it
  suggests are settings this command has (``PANDALM_DATA_DIR``, not ``pandalm``'s ``--data-dir``);
- a ``pandalm-replay`` run's output folder is named after the replayed judge (``pandalm-replay__<judge>``) rather
  than lm-eval's random name;
- a metric without a value (NaN: no document had one) is written as ``null`` with its stderr ``"N/A"`` and the
  reason under ``pandalm_null_metrics``, and a NaN per-document value in the samples as ``null``, so that the
  results and samples files are standard JSON.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import describe, report
from ..task_configs import tasks_dir
from .registration import MODEL_NAME, register

__all__ = ["ADDITIONS", "main"]

PROG = "lm-eval-pandalm"

ADDITIONS = f"""\
{PROG} is lm_eval with this package's additions:
  - its tasks (pandalm_pairwise, pandalm_pairwise_generate, pandalm_judge_*) are on the include path without
    --include_path (yours, if given, come after and win on a name clash);
  - its judge filter (pandalm_judge), pandalm_* metrics and {MODEL_NAME} model are registered;
  - run takes --bootstrap_iters N (lm_eval's command line has none; its 100,000 resamples take minutes on a CPU);
  - known errors are one line with exit status 2 (PANDALM_DEBUG=1 shows the traceback), Ctrl-C exits with 130;
  - a {MODEL_NAME} run's output folder is named after the replayed judge;
  - a metric with no value is written as null (reason under pandalm_null_metrics): the JSON files are standard JSON.
Settings from the environment: PANDALM_DATA_DIR (offline data mirror), PANDALM_CACHE_PATH / PANDALM_NO_CACHE=1
(judgment cache), PANDALM_CHUNK_SIZE, PANDALM_DEBUG."""
"""What ``lm-eval-pandalm --help`` says it adds to ``lm_eval``."""

# Fixes that the package's errors suggest in ``pandalm``'s terms, and what they are under lm-eval (which rejects
# pandalm's --data-dir, --cache and --no-cache).
_FIXES_FOR_LM_EVAL: tuple[tuple[str, str], ...] = (
    ("pass --data-dir DIR or set PANDALM_DATA_DIR", "set PANDALM_DATA_DIR"),
    ("point --cache (or PANDALM_CACHE_PATH)", "point PANDALM_CACHE_PATH"),
    ("or use --no-cache", "or set PANDALM_NO_CACHE=1"),
    ("(--cache PATH)", "(PANDALM_CACHE_PATH)"),
)
_NULL_REASON = (
    "no document had a value: every judgment failed (see pandalm_failed), or the metric does not apply to this run "
    "(pandalm_consistency with protocol first-order)"
)


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


def _error_line(exc: BaseException) -> str:
    """:func:`~lm_eval_pandalm.errors.describe`, with the fixes it suggests put in terms this command accepts."""
    line = describe(exc)
    for pandalm_fix, lm_eval_fix in _FIXES_FOR_LM_EVAL:
        line = line.replace(pandalm_fix, lm_eval_fix)
    return re.sub(r"--data-dir( DIR)?", "PANDALM_DATA_DIR", line)


def _iterations(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _add_our_options(cli: Any) -> None:
    """Say in ``--help`` what this command adds, and give ``run`` the ``--bootstrap_iters`` flag."""
    top = cli._parser
    top.prog = PROG
    top.description = f"{top.description}\n\n{ADDITIONS}"
    run = cli._subparsers.choices["run"]
    run.description = f"{run.description}\n\n{ADDITIONS}"
    run.add_argument(
        "--bootstrap_iters",
        type=_iterations,
        default=None,
        metavar="N",
        help=f"{PROG}: resamples for the bootstrapped stderrs, passed to simple_evaluate (default: lm-eval's 100000; "
        "0 computes no stderrs)",
    )


def _null_non_finite(results: dict[str, Any]) -> None:
    """NaN / infinite metrics become ``null`` (stderr ``"N/A"``), with the reason; NaN per-document values ``null``."""
    reasons: dict[str, dict[str, str]] = {}
    for section in ("results", "groups"):
        for task, metrics in (results.get(section) or {}).items():
            if not isinstance(metrics, dict):
                continue
            for key, value in list(metrics.items()):
                if not isinstance(value, float) or math.isfinite(value):
                    continue
                metrics[key] = "N/A" if "_stderr," in key else None
                if "_stderr," not in key:
                    reasons.setdefault(task, {})[key] = _NULL_REASON
                    metric, _, filter_key = key.partition(",")
                    stderr = f"{metric}_stderr,{filter_key}"
                    if stderr in metrics:
                        metrics[stderr] = "N/A"
    if reasons:
        results["pandalm_null_metrics"] = reasons
    for samples in (results.get("samples") or {}).values():
        for sample in samples:
            for name, value in sample.items():
                if isinstance(value, float) and not math.isfinite(value):
                    sample[name] = None


def _replay_run_name(results: dict[str, Any]) -> str:
    """``pandalm-replay__<judge>``: what the run replayed, as a folder name."""
    judge = str((results.get("config") or {}).get("judge") or "unknown").removeprefix("replay:")
    return f"{MODEL_NAME}__{judge}"


def _our_simple_evaluate(real: Callable[..., Any], bootstrap_iters: int | None) -> Callable[..., Any]:
    """lm-eval's ``simple_evaluate`` with ``--bootstrap_iters``, a named replay run and standard-JSON results."""

    def simple_evaluate(*args: Any, **kwargs: Any) -> Any:
        if bootstrap_iters is not None:
            kwargs["bootstrap_iters"] = bootstrap_iters
        results = real(*args, **kwargs)
        if not isinstance(results, dict):  # a non-zero rank of a distributed run
            return results
        _null_non_finite(results)
        tracker = kwargs.get("evaluation_tracker")
        if tracker is not None and kwargs.get("model") == MODEL_NAME:
            from lm_eval.loggers.evaluation_tracker import GeneralConfigTracker
            from lm_eval.utils import sanitize_model_name

            config = tracker.general_config_tracker
            if GeneralConfigTracker._get_model_name(kwargs.get("model_args")) is None:
                # lm-eval names the folder after model_args' pretrained= (or model=, path=...), which a replay
                # model has not, and else picks a random one.
                config.model_name = _replay_run_name(results)
                config.model_name_sanitized = sanitize_model_name(config.model_name)
        return results

    return simple_evaluate


def _execute(parser: Any, args: argparse.Namespace) -> int:
    import lm_eval

    if hasattr(args, "include_path"):
        args.include_path = _include_paths(args)
    bootstrap_iters = getattr(args, "bootstrap_iters", None)
    if hasattr(args, "bootstrap_iters"):
        del args.bootstrap_iters  # lm-eval's EvaluatorConfig refuses keys it does not know
    # lm-eval's `run` imports simple_evaluate from the package when it runs: hand it ours for this call only.
    had_own = "simple_evaluate" in vars(lm_eval)
    real = lm_eval.simple_evaluate
    lm_eval.simple_evaluate = _our_simple_evaluate(real, bootstrap_iters)  # type: ignore[attr-defined]
    try:
        parser.execute(args)
    finally:
        if had_own:
            lm_eval.simple_evaluate = real  # type: ignore[attr-defined]
        else:
            del lm_eval.simple_evaluate
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lm-eval-pandalm`` console script; returns the exit status."""
    from lm_eval._cli import HarnessCLI
    from lm_eval.utils import setup_logging

    saved_argv = sys.argv
    if argv is not None:
        # lm-eval's parser reads sys.argv itself (it inserts the legacy "run" subcommand there).
        sys.argv = [PROG, *argv]
    try:
        setup_logging()
        register()
        parser = HarnessCLI()
        _add_our_options(parser)
        args = parser.parse_args()

        def interrupted() -> str:
            from ..wrappers.cache import cache_report

            return cache_report()

        return report(PROG, lambda: _execute(parser, args), on_interrupt=interrupted, message=_error_line)
    finally:
        sys.argv = saved_argv


if __name__ == "__main__":
    sys.exit(main())
