"""Killing a real process at a chosen moment, for the tests that show a killed run loses (almost) nothing."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

__all__ = ["KillError", "sigkill_when"]


class KillError(RuntimeError):
    """The process ended, or did not get far enough in time, before it could be killed."""


def sigkill_when(
    process: subprocess.Popen, ready: Callable[[], bool], timeout_s: float = 240.0, poll_s: float = 0.01
) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` is true, and wait for it to die.

    Raises:
        KillError: The process exited first (its stderr's tail in the message, when it was piped), or ``ready()``
            stayed false for ``timeout_s`` seconds (the process is killed anyway).
    """
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None:
            tail = process.stderr.read().decode(errors="replace")[-2000:] if process.stderr else ""
            raise KillError(f"the run ended (exit {process.returncode}) before it could be killed: {tail}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=30)
            raise KillError(f"the run did not reach the point to kill it at within {timeout_s:.0f} s")
        time.sleep(poll_s)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
