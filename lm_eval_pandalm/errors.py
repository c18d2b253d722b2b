"""Errors caused by the user's input or environment, and how the command lines report them.

A :class:`PandaLMError` (or an ``OSError``, or one of the package's validation errors) is something the user can fix:
the command lines print it as one line naming the bad value and the fix, and exit with status 2. Anything else is a
bug and keeps its traceback. ``--debug`` or ``PANDALM_DEBUG=1`` shows the traceback of every error.

This module is part of the core: it imports only the standard library.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Callable

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "JudgeLoadError",
    "PandaLMError",
    "debug_enabled",
    "describe",
    "is_known",
    "report",
]

EXIT_USAGE = 2
"""Exit status of a known error (bad input, unusable file, judge that cannot be loaded)."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""

_TRUE = frozenset({"1", "true", "yes", "on"})

_OS_FIXES = {
    errno.ENOSPC: "free some space, or point the output and the judgment cache (--cache PATH) to another disk",
    errno.EISDIR: "give a file's path, not a folder's",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EACCES: "check the permissions, or write somewhere else",
    errno.EROFS: "the file system is read-only: write somewhere else",
    errno.ENOENT: "check the path",
}


class PandaLMError(Exception):
    """Base of the errors a user can fix: bad input, an unusable file, a judge that cannot be loaded.

    The message names the bad value and the fix; the command lines print it as one line and exit with status 2.
    """


class JudgeLoadError(PandaLMError, ValueError):
    """A judge SPEC names something that cannot be loaded (no such model folder, not in the local cache offline...)."""


def debug_enabled(flag: bool = False) -> bool:
    """True when ``flag`` is set or ``$PANDALM_DEBUG`` is ``1``, ``true``, ``yes`` or ``on``."""
    return flag or os.environ.get("PANDALM_DEBUG", "").strip().lower() in _TRUE


def is_known(exc: BaseException) -> bool:
    """Whether ``exc`` is the user's to fix (reported in one line) rather than a bug (reported with a traceback)."""
    if isinstance(exc, (PandaLMError, OSError, UnicodeDecodeError)):
        return True
    # The package's validation errors are ValueErrors (ConfigError, VerdictFileError, BenchmarkFormatError, ...);
    # KeyError is excluded by design (a MissingVerdictError is also a PandaLMError).
    return isinstance(exc, ValueError)


def describe(exc: BaseException) -> str:
    """One line for a known error: the message, and for an ``OSError`` the file and the fix."""
    if isinstance(exc, OSError) and not isinstance(exc, PandaLMError):
        what = exc.strerror or str(exc) or type(exc).__name__
        where = f"{exc.filename}: " if exc.filename is not None else ""
        fix = _OS_FIXES.get(exc.errno or -1)
        return f"{where}{what}" + (f" ({fix})" if fix else "")
    if isinstance(exc, UnicodeDecodeError):
        return f"input is not UTF-8 text: {exc}"
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def report(
    prog: str,
    run: Callable[[], int],
    *,
    debug: bool = False,
    on_interrupt: Callable[[], str] | None = None,
    message: Callable[[BaseException], str] = describe,
) -> int:
    """Run a command's body and turn what it raises into an exit status.

    Args:
        prog: The command's name, which starts every error line (``pandalm judge: error: ...``).
        run: The body; returns the exit status.
        debug: Re-raise every error with its traceback (also when ``$PANDALM_DEBUG`` is set).
        on_interrupt: What to say after Ctrl-C (e.g. how many verdicts are safe in the cache).
        message: The one line for a known error (default :func:`describe`); a command whose options differ from
            ``pandalm``'s (``lm-eval-pandalm``) rewrites the fixes it suggests.

    Returns:
        ``run``'s status; :data:`EXIT_USAGE` after a known error; :data:`EXIT_INTERRUPTED` after Ctrl-C.
    """
    debug = debug_enabled(debug)
    try:
        return run()
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        detail = on_interrupt() if on_interrupt is not None else ""
        print(f"{prog}: interrupted" + (f"; {detail}" if detail else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug or not is_known(exc):
            raise
        print(f"{prog}: error: {message(exc)}", file=sys.stderr)
        return EXIT_USAGE
