"""Writing output files safely: never over an input, and never half-written (temporary file, then rename).

Core module: standard library only.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import PandaLMError

__all__ = ["OutputError", "atomic_output", "check_output_is_not_an_input"]


class OutputError(PandaLMError, ValueError):
    """An output path that would destroy an input, or cannot be written."""


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
