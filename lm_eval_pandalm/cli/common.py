"""What the ``pandalm`` subcommands share: help formatting, the judge and cache options, and safe output files."""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import PandaLMError

__all__ = [
    "JUDGE_HELP",
    "HelpFormatter",
    "OutputError",
    "add_judge_arguments",
    "atomic_output",
    "cache_setting",
    "check_output_is_not_an_input",
]

JUDGE_HELP = (
    "judge SPEC: pandalm:<model id or path>, replay:<name> (pandalm-7b, gpt-3.5-turbo, human, GPT-4, ChatGPT, "
    "LLaMA2, GPT-4/<strategy>, or a verdict .jsonl), or a YAML judge config file"
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (when it has one) and keeps the description's own line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class OutputError(PandaLMError, ValueError):
    """An output path that would destroy an input, or cannot be written."""


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


def check_output_is_not_an_input(output: str | Path, inputs: dict[str, str | Path | None], *, flag: str) -> None:
    """Refuse an output path that is one of the inputs (it would be destroyed before it is read).

    Raises:
        OutputError: ``output`` names the same file as one of ``inputs`` (``{description: path}``).
    """
    target = Path(output).expanduser().resolve()
    for what, path in inputs.items():
        if path is None:
            continue
        source = Path(path).expanduser().resolve()
        if source == target:
            raise OutputError(
                f"{flag} {output} is also the {what}; writing it would destroy the input. Choose another file"
            )


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[IO[str]]:
    """Write a text file through a temporary file beside it, renamed over ``path`` only on success.

    A run that is killed or fails leaves ``path`` as it was (an earlier complete output stays complete).

    Raises:
        OutputError: ``path`` is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give the path of a file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
