"""What the ``pandalm`` subcommands share: help formatting, the judge and cache options, and safe output files."""

from __future__ import annotations

import argparse

from ..files import OutputError, atomic_output, check_output_is_not_an_input

__all__ = [
    "JUDGE_HELP",
    "HelpFormatter",
    "OutputError",
    "add_judge_arguments",
    "atomic_output",
    "cache_setting",
    "cache_write_status",
    "check_output_is_not_an_input",
]

JUDGE_HELP = (
    "judge SPEC: pandalm:<model id or path>, replay:<name> (pandalm-7b, gpt-3.5-turbo, human, GPT-4, ChatGPT, "
    "LLaMA2, GPT-4/<strategy>, or a verdict .jsonl), or a YAML judge config file"
)


def _shows_default(action: argparse.Action) -> bool:
    """Whether ``--help`` states the option's default: not for flags, positionals, nothing or an empty list."""
    if not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
        return False
    return not (isinstance(action.default, list | tuple | str) and not action.default)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (when it has one) and keeps the description's own line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or not _shows_default(action):
            return text
        return f"{text} (default: %(default)s)"


def add_judge_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--judge``, ``--data-dir``, ``--cache`` / ``--no-cache`` and ``-v``."""
    parser.add_argument("--judge", required=required, metavar="SPEC", help=JUDGE_HELP)
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="local mirror of the benchmark data laid out as <owner>/<repo>/<path> (default: env PANDALM_DATA_DIR, "
        "else download into the user cache)",
    )
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache", metavar="PATH", help="judgment cache file (default: env PANDALM_CACHE_PATH or the user cache)"
    )
    cache.add_argument("--no-cache", action="store_true", help="do not read or write the judgment cache")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")


def cache_setting(args: argparse.Namespace) -> str | bool | None:
    """The ``cache`` argument of :func:`~lm_eval_pandalm.judges.make_judge` that the options ask for."""
    if args.no_cache:
        return False
    return args.cache


def cache_write_status() -> int:
    """0, or 2 after printing why, when storing verdicts in a judgment cache failed during the run.

    The outputs are complete either way (the verdicts were kept); the status says the cache will not spare a re-run.
    """
    import sys

    from ..errors import EXIT_USAGE
    from ..wrappers.cache import cache_write_errors

    errors = cache_write_errors()
    for error in errors:
        print(f"pandalm: error: {error}", file=sys.stderr)
    return EXIT_USAGE if errors else 0
