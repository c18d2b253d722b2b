"""How the OpenAI-compatible judge makes its calls: the SDK's async client on an event loop of the judge's own.

:class:`Connection` keeps an event loop in a daemon thread and one ``AsyncOpenAI`` client on it for the judge's
lifetime, so open connections and the TLS context serve every call, and a caller that is itself inside an event loop
can still call the judge synchronously. The client uses the SDK's aiohttp transport when it is installed (about half
the CPU per request of the httpx default, measured in ``benchmarks/bench_api_judge.py``), and an httpx request hook
counts the HTTP attempts of each call (:data:`ATTEMPTS`), retries included, for the spend ledger.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..errors import JudgeLoadError

__all__ = ["ATTEMPTS", "Connection", "import_openai", "make_client"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPTS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("pandalm_openai_attempts", default=None)
"""Set by a call to a one-element list; every HTTP attempt made within that call's task adds one to it."""


async def _count_attempt(request: Any) -> None:
    """httpx request hook: counts the HTTP attempts of the call running in this task (the SDK's retries included)."""
    counter = ATTEMPTS.get()
    if counter is not None:
        counter[0] += 1


def import_openai() -> Any:
    try:
        import openai
    except ImportError:
        raise JudgeLoadError(
            "the openai judge needs the openai package: pip install 'lm_eval_pandalm[openai]'"
        ) from None
    return openai


def _http_client(openai: Any) -> Any:
    """The SDK's aiohttp-backed HTTP client (about half the CPU per request of its httpx default, which matters at
    tens of requests per second), else its httpx default; both count every attempt in :data:`ATTEMPTS`."""
    hooks = {"request": [_count_attempt]}
    aiohttp_client = getattr(openai, "DefaultAioHttpClient", None)
    if aiohttp_client is not None:
        try:
            return aiohttp_client(event_hooks=hooks)
        except (RuntimeError, ImportError):  # the SDK's aiohttp extra is not installed
            pass
    return openai.DefaultAsyncHttpxClient(event_hooks=hooks)


def make_client(api_key: str, base_url: str, max_retries: int, timeout_s: float) -> Any:
    openai = import_openai()
    return openai.AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        max_retries=max_retries,
        timeout=timeout_s,
        http_client=_http_client(openai),
    )


class Connection:
    """An event loop in a daemon thread and an ``AsyncOpenAI`` client on it, kept for the judge's lifetime.

    Keeping them means open connections and the TLS context serve every call instead of being rebuilt per batch, and
    a caller that is itself inside an event loop can still call the judge synchronously. It holds no reference to
    the judge, so a judge that is garbage collected closes its connection (see ``weakref.finalize`` in
    :class:`OpenAIJudge`); so does the end of the interpreter.
    """

    def __init__(self, make_client: Callable[[], Any]) -> None:
        self._make_client = make_client
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # a forked child has the loop but not its thread
                self._loop, self._client, self._pid = asyncio.new_event_loop(), None, os.getpid()
                self._thread = threading.Thread(target=self._loop.run_forever, name="openai-judge", daemon=True)
                self._thread.start()
            return self._loop

    def run(self, factory: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        """Run ``factory(client)`` on the loop and wait for it; Ctrl-C cancels the calls in flight."""

        async def with_client() -> T:
            if self._client is None:  # made on the loop: the HTTP client binds to it
                self._client = self._make_client()
            return await factory(self._client)

        future = asyncio.run_coroutine_threadsafe(with_client(), self._running_loop())
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def close(self) -> None:
        """Close the client and stop the loop (a later :meth:`run` starts afresh)."""
        with self._lock:
            loop, client, thread = self._loop, self._client, self._thread
            self._loop = self._client = self._thread = None
        if loop is None or self._pid != os.getpid() or not loop.is_running():
            return
        if client is not None:
            try:
                asyncio.run_coroutine_threadsafe(client.close(), loop).result(timeout=10)
            except Exception as exc:  # closing is best effort: the connections die with the process anyway
                logger.debug("closing the API client failed: %s", exc)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        loop.close()
