"""A real OpenAI-compatible HTTP server on 127.0.0.1, for testing and benchmarking API judges offline.

:class:`OpenAIServer` listens on a free loopback port (standard library ``http.server``, one thread per connection)
and implements ``POST /v1/chat/completions`` and ``POST /v1/completions`` well enough for the ``openai`` SDK:

* chat answers come from a :data:`ChatResponder`; :class:`VerdictResponder` answers from any judge, e.g. LLMBar's
  recorded GPT-4 verdicts replayed (``replay:GPT-4``), with the first token's ``top_logprobs`` when asked for;
* completions answers come from a :data:`CompletionScorer`; :class:`TinyModelScorer` runs a local causal LM (the tiny
  PandaLM-format judge of :mod:`~lm_eval_pandalm.testing.tiny_models`) and echoes the prompt's token logprobs the way
  vLLM does (``echo=true``, ``logprobs``, one generated token);
* latency (``latency_s``) and faults (:func:`random_faults`, :func:`periodic_faults`, or any ``fault_for``): 429 with
  ``Retry-After``, 500, a stall past the client's timeout, a malformed or a truncated 200 body, an answer without
  logprobs; and :meth:`OpenAIServer.hold_after` stalls every request after the first N answers until released;
* counting: HTTP attempts, answers and faults in total and per prompt (:meth:`OpenAIServer.attempts_for`), the
  tokens it reported in the ``usage`` of the answers it delivered, and the ``Authorization`` headers it saw.

Example::

    with OpenAIServer(chat=VerdictResponder(make_judge("replay:GPT-4"), items)) as server:
        judge = OpenAIJudge(OpenAIJudgeConfig(model="gpt-4", base_url=server.url, api_key_env=None))
        verdicts = judge(items)
        assert server.stats.answered == len(items)
"""

from __future__ import annotations

import collections
import hashlib
import http.server
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from ..judges.openai_format import CONTINUATIONS, chat_messages
from ..prompt import build_prompt
from ..types import PairItem
from .openai_responders import (
    ChatAnswer,
    ChatResponder,
    CompletionScorer,
    EchoedPrompt,
    TinyModelScorer,
    VerdictResponder,
)

__all__ = [
    "FAULT_KINDS",
    "ChatAnswer",
    "ChatResponder",
    "CompletionScorer",
    "EchoedPrompt",
    "OpenAIServer",
    "ServerStats",
    "TinyModelScorer",
    "VerdictResponder",
    "periodic_faults",
    "prompt_key",
    "random_faults",
]

logger = logging.getLogger(__name__)

FAULT_KINDS = ("rate_limit", "server_error", "timeout", "malformed", "truncated", "no_logprobs")
"""Faults the server can inject: 429 with ``Retry-After``; 500; no answer until the client gives up; a 200 whose body is
not JSON; a 200 whose body stops half-way (the connection closes early); a valid answer without logprobs."""


def prompt_key(text: str) -> str:
    """Short key of a prompt text, under which the server counts requests."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _default_count_tokens(text: str) -> int:
    # Deliberately not the client's estimate (four characters per token): budget tests need estimates that miss.
    return max(1, len(text.split()))


def random_faults(
    rate: float, kinds: Sequence[str] = FAULT_KINDS, *, seed: int = 0
) -> Callable[[int, str], str | None]:
    """A ``fault_for`` that fails each attempt with probability ``rate``, with a kind drawn from ``kinds``.

    Deterministic for a seed and a sequence of requests (the draw depends on the attempt number only).
    """
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown or not 0 <= rate <= 1:
        raise ValueError(f"rate must be in [0, 1] and kinds among {FAULT_KINDS}; got {rate}, {unknown}")

    def fault_for(attempt: int, key: str) -> str | None:
        rng = random.Random(seed * 1_000_003 + attempt)
        return rng.choice(list(kinds)) if rng.random() < rate else None

    return fault_for


def periodic_faults(every: int, kinds: Sequence[str] = FAULT_KINDS) -> Callable[[int, str], str | None]:
    """A ``fault_for`` that fails every ``every``-th attempt (``every=5``: 20%), cycling through ``kinds`` in order.

    >>> fault_for = periodic_faults(5)
    >>> [fault_for(n, "") for n in (4, 5, 10, 35)]
    [None, 'rate_limit', 'server_error', 'rate_limit']
    """
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown or every < 1 or not kinds:
        raise ValueError(f"every must be >= 1 and kinds among {FAULT_KINDS}; got {every}, {unknown or list(kinds)}")

    def fault_for(attempt: int, key: str) -> str | None:
        if attempt % every:
            return None
        return kinds[(attempt // every - 1) % len(kinds)]

    return fault_for


@dataclass
class ServerStats:
    """What the server saw and sent. Tokens count only answers delivered whole, with a ``usage`` block."""

    requests: int = 0
    """HTTP requests received (every attempt, retries included)."""
    answered: int = 0
    """Valid answers delivered (``no_logprobs`` answers included)."""
    prompt_tokens: int = 0
    """Sum of ``usage.prompt_tokens`` over the answers delivered."""
    completion_tokens: int = 0
    """Sum of ``usage.completion_tokens`` over the answers delivered."""
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    """Faults injected, by kind (plus ``held`` for requests stalled by :meth:`OpenAIServer.hold_after`)."""
    attempts_by_prompt: collections.Counter[str] = field(default_factory=collections.Counter)
    """HTTP attempts per :func:`prompt_key` of the pair's prompt."""
    answered_by_prompt: collections.Counter[str] = field(default_factory=collections.Counter)
    """Valid answers per prompt key."""
    authorizations: collections.Counter[str] = field(default_factory=collections.Counter)
    """``Authorization`` header values received, with counts."""


class OpenAIServer:
    """An OpenAI-compatible server on ``127.0.0.1``, started by :meth:`start` (or ``with``) and stopped by :meth:`stop`.

    Args:
        chat: Answers ``/v1/chat/completions``; ``None`` answers 404 there.
        completions: Scores ``/v1/completions`` prompts; ``None`` answers 404 there.
        latency_s: Seconds to wait before each answer (simulates the model's time).
        fault_for: ``(attempt number, prompt key) -> fault kind or None``, consulted on every request.
        api_key: When set, requests must carry ``Authorization: Bearer <api_key>`` (else 401).
        count_tokens: The server's token count of a text (for ``usage`` in chat answers).
        retry_after: ``Retry-After`` header value of a 429 (seconds; the SDK also accepts fractions).
        timeout_stall_s: How long a ``timeout`` fault stalls before closing the connection without an answer.
    """

    def __init__(
        self,
        *,
        chat: ChatResponder | None = None,
        completions: CompletionScorer | None = None,
        latency_s: float = 0.0,
        fault_for: Callable[[int, str], str | None] | None = None,
        api_key: str | None = None,
        count_tokens: Callable[[str], int] = _default_count_tokens,
        retry_after: str = "0.05",
        timeout_stall_s: float = 2.0,
    ) -> None:
        self.chat = chat
        self.completions = completions
        self.latency_s = latency_s
        self.fault_for = fault_for
        self.api_key = api_key
        self.count_tokens = count_tokens
        self.retry_after = retry_after
        self.timeout_stall_s = timeout_stall_s
        self.stats = ServerStats()
        self._lock = threading.Lock()
        self._hold_after: int | None = None
        self._released = threading.Event()
        self._stopping = threading.Event()
        self._httpd: _ThreadingServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifetime -------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to give an OpenAI client (``http://127.0.0.1:<port>/v1``)."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> OpenAIServer:
        """Listen on a free loopback port and serve in a background thread."""
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = _ThreadingServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="openai-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; stalled requests are let go."""
        self._stopping.set()
        self._released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- control --------------------------------------------------------------------------------------------------

    def hold_after(self, answers: int) -> None:
        """From the ``answers``-th valid answer on, stall every further request (no answer) until :meth:`release`."""
        with self._lock:
            self._hold_after = answers
            self._released.clear()

    def release(self) -> None:
        """Let stalled requests go (their connections close without an answer) and stop holding."""
        with self._lock:
            self._hold_after = None
        self._released.set()

    def reset_stats(self) -> ServerStats:
        """Start counting afresh; returns the counts so far."""
        with self._lock:
            old, self.stats = self.stats, ServerStats()
        return old

    def attempts_for(self, item: PairItem, mode: str = "chat", **prompt_options: Any) -> int:
        """HTTP attempts received for ``item`` in that order (``prompt_options``: the judge's ``system_prompt`` and
        ``template`` in chat mode)."""
        return self.stats.attempts_by_prompt[self.key_of(item, mode, **prompt_options)]

    @staticmethod
    def key_of(item: PairItem, mode: str = "chat", **prompt_options: Any) -> str:
        """The :func:`prompt_key` under which the server counts ``item``'s requests."""
        if mode == "chat":
            return prompt_key(chat_messages(item, **prompt_options)[-1]["content"])
        return prompt_key(build_prompt(item))


class _ThreadingServer(http.server.ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops the SYNs of a client that opens many connections at once, and the
    # client's kernel retries them only after a second: far more than the latencies this server simulates.
    request_queue_size = 256


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    server_state: OpenAIServer

    def log_message(self, format: str, *args: Any) -> None:  # the request line only; never headers
        logger.debug("openai test server: " + format, *args)

    def do_POST(self) -> None:
        state = self.server_state
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        route = self.path.rstrip("/")
        if route.endswith("/chat/completions"):
            kind, text = "chat", str((body.get("messages") or [{}])[-1].get("content", ""))
        elif route.endswith("/completions"):
            prompts = body.get("prompt") or [""]
            first = prompts[0] if isinstance(prompts, list) else str(prompts)
            kind, text = "completions", first.removesuffix(CONTINUATIONS[0])
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        key = prompt_key(text)
        with state._lock:
            state.stats.requests += 1
            attempt = state.stats.requests
            state.stats.attempts_by_prompt[key] += 1
            state.stats.authorizations[self.headers.get("Authorization", "")] += 1
            held = state._hold_after is not None and state.stats.answered >= state._hold_after
            if held:
                state.stats.faults["held"] += 1
        if held:
            state._released.wait()
            self.close_connection = True
            return
        if state.api_key is not None and self.headers.get("Authorization") != f"Bearer {state.api_key}":
            self._json(401, {"error": {"message": "invalid API key", "code": "invalid_api_key"}})
            return
        fault = state.fault_for(attempt, key) if state.fault_for is not None else None
        if state.latency_s:
            time.sleep(state.latency_s)
        if fault is not None:
            with state._lock:
                state.stats.faults[fault] += 1
            if self._send_fault(fault):
                return
        try:
            if kind == "chat":
                payload = self._chat(body, with_logprobs=fault != "no_logprobs")
            else:
                payload = self._completions(body, with_logprobs=fault != "no_logprobs")
        except (KeyError, ValueError) as exc:
            self._json(400, {"error": {"message": f"cannot answer: {exc}"}})
            return
        if payload is None:
            self._json(404, {"error": {"message": f"this server has no {kind} endpoint"}})
            return
        usage = payload["usage"]
        with state._lock:
            state.stats.answered += 1
            state.stats.answered_by_prompt[key] += 1
            state.stats.prompt_tokens += usage["prompt_tokens"]
            state.stats.completion_tokens += usage["completion_tokens"]
        self._json(200, payload)

    # -- answers --------------------------------------------------------------------------------------------------

    def _chat(self, body: Mapping[str, Any], *, with_logprobs: bool) -> dict[str, Any] | None:
        state = self.server_state
        if state.chat is None:
            return None
        messages = body.get("messages") or []
        answer = state.chat(messages)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": answer.content},
            "finish_reason": "stop",
            "logprobs": None,
        }
        if with_logprobs and body.get("logprobs") and answer.top_logprobs:
            top = list(answer.top_logprobs)[: int(body.get("top_logprobs") or 1)]
            choice["logprobs"] = {
                "content": [
                    {
                        "token": top[0][0],
                        "logprob": top[0][1],
                        "bytes": None,
                        "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in top],
                    }
                ]
            }
        prompt_tokens = sum(state.count_tokens(str(m.get("content", ""))) for m in messages)
        completion_tokens = state.count_tokens(answer.content)
        return {
            "id": f"chatcmpl-{state.stats.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [choice],
            "usage": _usage(prompt_tokens, completion_tokens),
        }

    def _completions(self, body: Mapping[str, Any], *, with_logprobs: bool) -> dict[str, Any] | None:
        state = self.server_state
        if state.completions is None:
            return None
        prompts = body.get("prompt")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts or [])
        if not body.get("echo"):
            raise ValueError("this server only scores prompts (echo=true)")
        scored = state.completions(prompts)
        choices = []
        for index, echoed in enumerate(scored):
            offsets, position = [], 0
            for token in echoed.tokens:  # vLLM: cumulative lengths of the token strings, not of the text
                offsets.append(position)
                position += len(token)
            logprobs = None
            if with_logprobs:
                logprobs = {
                    "tokens": list(echoed.tokens),
                    "token_logprobs": list(echoed.token_logprobs),
                    "top_logprobs": None,
                    "text_offset": offsets,
                }
            choices.append({"index": index, "text": echoed.text, "finish_reason": "length", "logprobs": logprobs})
        return {
            "id": f"cmpl-{state.stats.requests}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": choices,
            "usage": _usage(sum(e.prompt_tokens for e in scored), len(scored)),
        }

    # -- faults and plumbing --------------------------------------------------------------------------------------

    def _send_fault(self, fault: str) -> bool:
        """Send the fault; ``False`` when the fault is in the answer's content (the caller answers)."""
        state = self.server_state
        if fault == "rate_limit":
            self._json(429, {"error": {"message": "rate limit reached", "code": "rate_limit_exceeded"}},
                       headers={"Retry-After": state.retry_after})  # fmt: skip
        elif fault == "server_error":
            self._json(500, {"error": {"message": "the server had an error"}}, headers={"retry-after-ms": "20"})
        elif fault == "timeout":
            state._stopping.wait(state.timeout_stall_s)
            self.close_connection = True
        elif fault == "malformed":
            self._raw(200, b'{"id": "broken", "choices": [{"index": 0, "message": ')
        elif fault == "truncated":
            whole = json.dumps({"id": "cut", "object": "chat.completion", "choices": []}).encode()
            self._raw(200, whole[: len(whole) // 2], length=len(whole))
            self.close_connection = True
        else:
            return False
        return True

    def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        self._raw(status, json.dumps(payload, allow_nan=False).encode("utf-8"), headers=headers)

    def _raw(
        self, status: int, data: bytes, *, length: int | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data) if length is None else length))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client gave up (timeout) and closed the connection
            self.close_connection = True


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
