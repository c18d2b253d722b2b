"""An OpenAI-compatible API as a pairwise judge: GPT-4-class chat models, or a PandaLM model served by vLLM.

Two modes (``mode`` in :class:`OpenAIJudgeConfig`; what is sent and how answers are read is in
:mod:`~lm_eval_pandalm.judges.openai_format`):

``chat``
    GPT-4-class judges. The package's own pairwise prompt (``templates/pairwise_chat.j2``, or your own template); the
    answer must be exactly ``1``, ``2`` or ``Tie``. Probabilities come from the first token's ``top_logprobs`` when
    the server returns them (as AlpacaEval's weighted annotators read theirs), else the verdict is hard; any other
    answer is ``Verdict.failed(UNPARSED)``, never a guess.
``completions``
    A PandaLM-format model behind a completions endpoint (vLLM). PandaLM's own prompt followed by ``1\n``, ``2\n``
    and ``Tie\n``, sent in one request with ``echo=true``, ``logprobs=1`` and ``max_tokens=1`` (lm-eval's
    ``local-completions`` scores continuations the same way); each continuation's log-likelihood is the sum of its
    echoed token logprobs: the numbers the local judge (:mod:`~lm_eval_pandalm.judges.pandalm_local`) computes from
    the same weights.

Calls (:mod:`~lm_eval_pandalm.judges.openai_transport`): the ``openai`` SDK's ``AsyncOpenAI`` client, at most
``concurrency`` requests in flight, the SDK's own retries (``max_retries``; it honours ``Retry-After`` on 408, 409, 429
and 5xx answers and retries timeouts and broken connections with backoff) and a per-attempt ``timeout_s``. A call that
still fails is ``Verdict.failed(ERROR)`` (a 400 about the context length: ``OVER_CONTEXT``), never a tie; so is a 200
whose body is not a usable completion.

Money: every call ends in one :class:`~lm_eval_pandalm.ledger.SpendRecord` in the spend ledger, and every verdict
carries ``prompt_tokens``, ``completion_tokens``, ``cost_usd`` and ``latency_s`` (usage priced with
:mod:`lm_eval_pandalm.pricing`). With ``budget_usd``, a call starts only while the dollars spent plus the estimated
cost of the calls in flight and of its own fit the budget (:class:`~lm_eval_pandalm.ledger.SpendCap`); from the first
item that does not fit, the rest are ``Verdict.failed(OVER_BUDGET)`` without a call.

Secrets: the config holds only the *name* of the environment variable with the key (``api_key_env``). The key is read
once, sent only in the ``Authorization`` header, and is in no log line, fingerprint, cache entry, ledger record, error
message or ``repr``.

Every call goes through the judgment cache when the judge comes from :func:`~lm_eval_pandalm.judges.make_judge`; the
judge reports each verdict as it arrives (:meth:`OpenAIJudge.judge_incrementally`), so the cache stores every paid
answer at once: a killed run, re-run, pays again only for the calls that were in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import sqlite3
import time
import urllib.parse
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import JudgeLoadError
from ..ledger import SpendCap, SpendLedger, SpendRecord, default_ledger_path
from ..pricing import Price, cost_usd, estimate_tokens, price_for
from ..prompt import build_prompt, template_hash
from ..types import PairItem, Verdict, VerdictState
from .openai_format import (
    CONTINUATIONS,
    DEFAULT_SYSTEM_PROMPT,
    chat_messages,
    public_url,
    response_verdict,
    status_state,
    template_source,
)
from .openai_transport import ATTEMPTS, Connection, import_openai, make_client

__all__ = ["MODES", "OpenAIJudge", "OpenAIJudgeConfig"]

logger = logging.getLogger(__name__)

MODES = ("chat", "completions")
"""What :attr:`OpenAIJudgeConfig.mode` accepts."""
# Bump when the way a response becomes a verdict changes (part of the fingerprint).
_SCORING_VERSION = "openai-api-v1"
_ERROR_CHARS = 300
_PATHS = {"chat": "/chat/completions", "completions": "/completions"}
_NO_KEY = "EMPTY"  # what vLLM's docs pass when the server has no authentication; the SDK needs some string

T = TypeVar("T")


@dataclass
class OpenAIJudgeConfig:
    """Settings of :class:`OpenAIJudge` (YAML ``type: openai``)."""

    model: str = field(metadata={"help": "Model name the server knows (gpt-4, or the model vLLM serves)."})
    base_url: str = field(
        default="https://api.openai.com/v1", metadata={"help": "The API's base URL, e.g. http://localhost:8000/v1."}
    )
    api_key_env: str | None = field(
        default="OPENAI_API_KEY",
        metadata={"help": "NAME of the environment variable holding the API key; null for a server without auth."},
    )
    mode: str = field(
        default="chat",
        metadata={"help": "'chat' (our pairwise prompt, answer 1/2/Tie) or 'completions' (PandaLM prompt logprobs)."},
    )
    concurrency: int = field(default=8, metadata={"help": "Most requests in flight at once."})
    timeout_s: float = field(default=60.0, metadata={"help": "Timeout of one HTTP attempt, in seconds."})
    max_retries: int = field(
        default=4, metadata={"help": "Retries of a failed attempt by the openai SDK (honours Retry-After)."}
    )
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature (chat mode)."})
    max_tokens: int = field(default=8, metadata={"help": "Most tokens of the chat answer (it should be one label)."})
    logprobs: bool = field(
        default=True,
        metadata={"help": "Ask for the first token's top_logprobs (chat mode); false if the server has none."},
    )
    top_logprobs: int = field(default=5, metadata={"help": "How many top_logprobs to ask for (chat mode, 1-20)."})
    system_prompt: str = field(default=DEFAULT_SYSTEM_PROMPT, metadata={"help": "System message (chat mode)."})
    template: str | None = field(
        default=None,
        metadata={
            "help": "Path of your own Jinja2 user-message template (chat mode; variables instruction, input, "
            "response1, response2); default: the package's pairwise_chat.j2."
        },
    )
    input_price_per_mtok: float | None = field(
        default=None, metadata={"help": "Dollars per 1M prompt tokens; default: pricing.DEFAULT_PRICES[model]."}
    )
    output_price_per_mtok: float | None = field(
        default=None, metadata={"help": "Dollars per 1M completion tokens; default: pricing.DEFAULT_PRICES[model]."}
    )
    budget_usd: float | None = field(
        default=None, metadata={"help": "Hard cap on dollars spent by this judge; items past it are over_budget."}
    )
    ledger: str | None = field(
        default=None,
        metadata={"help": "Spend ledger file; default: $PANDALM_LEDGER_PATH, else spend.sqlite beside the cache."},
    )
    show_progress: bool = field(default=True, metadata={"help": "Show a tqdm bar over the calls (on a terminal)."})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not self.model:
            raise ValueError("model must name the model the server serves")
        url = urllib.parse.urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base_url must be an http(s) URL such as http://localhost:8000/v1, got {self.base_url!r}")
        if url.username is not None or url.password is not None:
            # HTTP client logs print the URL: a key inside it would end up in them.
            raise ValueError(
                "base_url must not contain credentials (user:password@host); give the key through api_key_env"
            )
        for name in ("concurrency", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 seconds, got {self.timeout_s}")
        if not 1 <= self.top_logprobs <= 20:
            raise ValueError(f"top_logprobs must be between 1 and 20, got {self.top_logprobs}")
        if (self.input_price_per_mtok is None) != (self.output_price_per_mtok is None):
            raise ValueError("give both input_price_per_mtok and output_price_per_mtok, or neither")
        self.price()  # validates the prices
        if self.budget_usd is not None:
            if not (math.isfinite(self.budget_usd) and self.budget_usd >= 0):
                raise ValueError(f"budget_usd must be a finite number of dollars >= 0, got {self.budget_usd!r}")
            if self.price() is None:
                raise ValueError(
                    f"budget_usd needs a price for model {self.model!r}, which has no default price: set "
                    "input_price_per_mtok and output_price_per_mtok"
                )

    def price(self) -> Price | None:
        """The price per token: the config's own, else :data:`~lm_eval_pandalm.pricing.DEFAULT_PRICES` of the model."""
        if self.input_price_per_mtok is not None and self.output_price_per_mtok is not None:
            return Price(self.input_price_per_mtok, self.output_price_per_mtok)
        return price_for(self.model)


class OpenAIJudge:
    """A pairwise judge behind an OpenAI-compatible API; see the module docs for the two modes.

    Satisfies :class:`~lm_eval_pandalm.judge.Judge`; order-sensitive (the API model reads the responses in order).

    Args:
        config: The settings.

    Raises:
        JudgeLoadError: The ``openai`` package is missing, or the environment variable ``config.api_key_env`` is
            not set.

    Attributes:
        calls: API calls made so far (one per item judged; retries are not calls).
    """

    def __init__(self, config: OpenAIJudgeConfig) -> None:
        import_openai()
        self.config = config
        self.judge_id = f"openai:{config.model}" if config.mode == "chat" else f"openai-completions:{config.model}"
        self._api_key = self._read_key(config.api_key_env)
        self._price = config.price()
        self._budget = SpendCap(config.budget_usd)
        self._endpoint = f"{public_url(config.base_url)} {config.mode}"
        self.ledger_path = Path(config.ledger).expanduser() if config.ledger else default_ledger_path()
        """Where this judge records its calls."""
        self._ledger: SpendLedger | None = SpendLedger(self.ledger_path)  # opened now: a bad file fails before a call
        self._ledger_pid = os.getpid()
        self._ledger_failed = False
        self.calls = 0
        self._connection = Connection(
            functools.partial(make_client, self._api_key, config.base_url, config.max_retries, config.timeout_s)
        )
        weakref.finalize(self, self._connection.close)
        self._fingerprint = self._make_fingerprint()
        self._fingerprint_sha256 = hashlib.sha256(self._fingerprint.encode("utf-8")).hexdigest()
        if self._price is None:
            logger.warning("no price known for model %r: calls are recorded without a cost", config.model)

    @classmethod
    def from_config(cls, config: OpenAIJudgeConfig) -> OpenAIJudge:
        """Build the judge (reads the API key from the environment)."""
        return cls(config)

    @staticmethod
    def _read_key(env_name: str | None) -> str:
        if env_name is None:
            return _NO_KEY
        value = os.environ.get(env_name, "").strip()
        if not value:
            raise JudgeLoadError(
                f"environment variable {env_name} holds no API key: export {env_name}=<your key>, or set api_key_env "
                "in the judge config to the variable that holds it (null for a server without authentication)"
            )
        return value

    def __repr__(self) -> str:
        return f"OpenAIJudge(model={self.config.model!r}, mode={self.config.mode!r}, endpoint={self._endpoint!r})"

    # -- Judge protocol -------------------------------------------------------------------------------------------

    def _make_fingerprint(self) -> str:
        cfg = self.config
        payload: dict[str, Any] = {
            "judge": "openai-api",
            "scoring": _SCORING_VERSION,
            "mode": cfg.mode,
            "base_url": public_url(cfg.base_url),
            "model": cfg.model,
        }
        if cfg.mode == "chat":
            payload.update(
                system_prompt=cfg.system_prompt,
                template_sha256=hashlib.sha256(template_source(cfg.template).encode("utf-8")).hexdigest(),
                temperature=cfg.temperature,
                max_tokens=cfg.max_tokens,
                top_logprobs=cfg.top_logprobs if cfg.logprobs else None,
            )
        else:
            payload.update(template=template_hash(), continuations=list(CONTINUATIONS))
        return json.dumps(payload, sort_keys=True, separators=(",", ":"))

    @property
    def fingerprint(self) -> str:
        """JSON of what determines the verdicts: endpoint (without credentials), model, mode, prompt and decoding
        settings. Never the key, and nothing that only changes speed or cost (concurrency, retries, prices)."""
        return self._fingerprint

    @property
    def spent_usd(self) -> float:
        """Dollars this judge has spent so far (known costs only)."""
        return self._budget.spent

    def __call__(self, items: Sequence[PairItem]) -> list[Verdict]:
        """Judge every item, ``concurrency`` calls at a time; one verdict per item, same order."""
        return self.judge_incrementally(items)

    def judge_incrementally(
        self, items: Sequence[PairItem], on_verdict: Callable[[int, Verdict], None] | None = None
    ) -> list[Verdict]:
        """Judge every item and report each verdict as soon as its call ends.

        Args:
            items: The pairs.
            on_verdict: Called with ``(index, verdict)`` as each call ends, in completion order (the judgment cache
                uses it to store every paid answer at once).

        Returns:
            One verdict per item, in input order.
        """
        items = list(items)
        if not items:
            return []
        return self._connection.run(lambda client: self._judge_all(client, items, on_verdict))

    def estimate(self, items: Sequence[PairItem]) -> dict[str, Any]:
        """What judging ``items`` would cost at most, without a call: ``calls``, ``prompt_tokens`` and
        ``completion_tokens`` (estimated: about four characters per token; completions at ``max_tokens``), and
        ``cost_usd`` (``None`` without a price)."""
        prompt = completion = 0
        for item in items:
            _, _, p, c = self._request(item)
            prompt, completion = prompt + p, completion + c
        cost = cost_usd(self._price, prompt, completion) if self._price is not None else None
        return {
            "calls": len(items),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cost_usd": cost,
            "estimated": True,
        }

    # -- calls ----------------------------------------------------------------------------------------------------

    def _request(self, item: PairItem) -> tuple[str, dict[str, Any], int, int]:
        """Route, request arguments, and estimated prompt and (most) completion tokens of one item's call."""
        cfg = self.config
        if cfg.mode == "chat":
            messages = chat_messages(item, system_prompt=cfg.system_prompt, template=cfg.template)
            kwargs: dict[str, Any] = {
                "model": cfg.model,
                "messages": messages,
                "temperature": cfg.temperature,
                "max_tokens": cfg.max_tokens,
            }
            if cfg.logprobs:
                kwargs.update(logprobs=True, top_logprobs=cfg.top_logprobs)
            # A few tokens of chat framing per message, as OpenAI counts them.
            prompt_tokens = sum(estimate_tokens(m["content"]) + 4 for m in messages)
            return "chat", kwargs, prompt_tokens, cfg.max_tokens
        prompt = build_prompt(item)
        prompts = [prompt + continuation for continuation in CONTINUATIONS]
        kwargs = {
            "model": cfg.model,
            "prompt": prompts,
            "max_tokens": 1,
            "temperature": 0.0,
            "echo": True,
            "logprobs": 1,
        }
        return "completions", kwargs, sum(estimate_tokens(p) for p in prompts), len(prompts)

    async def _judge_all(
        self, client: Any, items: list[PairItem], on_verdict: Callable[[int, Verdict], None] | None
    ) -> list[Verdict]:
        from tqdm.auto import tqdm

        openai = import_openai()
        semaphore = asyncio.Semaphore(self.config.concurrency)
        show = self.config.show_progress and len(items) > 1
        bar = tqdm(total=len(items), desc=f"asking {self.judge_id}", unit="call", disable=None if show else True)

        async def one(index: int, item: PairItem) -> Verdict:
            async with semaphore:
                verdict = await self._judge_one(openai, client, item)
            bar.update(1)
            if on_verdict is not None:
                on_verdict(index, verdict)
            return verdict

        try:
            verdicts = await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
        finally:
            bar.close()
        failed = sum(not v.ok for v in verdicts)
        logger.info(
            "%s: %d items, %d failed; $%.4f spent by this judge so far",
            self.judge_id,
            len(items),
            failed,
            self.spent_usd,
        )
        return list(verdicts)

    async def _judge_one(self, openai: Any, client: Any, item: PairItem) -> Verdict:
        route, kwargs, est_prompt, est_completion = self._request(item)
        estimate = cost_usd(self._price, est_prompt, est_completion) if self._price is not None else 0.0
        if not self._budget.reserve(estimate):
            return Verdict.failed(
                self.judge_id,
                VerdictState.OVER_BUDGET,
                error=f"not judged: the budget of ${self._budget.cap:g} is spent (${self._budget.spent:.4f} spent); "
                "raise budget_usd to judge it",
            )
        attempts = [0]
        token = ATTEMPTS.set(attempts)
        start = time.perf_counter()
        usage: Any = None
        try:
            # The client's own POST (the SDK's documented way to call any route): the same retries, timeouts and
            # auth as ``create()``, without re-validating a request body built here or building response models
            # (cast_to=object gives the decoded JSON), which cost milliseconds of CPU per call.
            response = await client.post(_PATHS[route], cast_to=object, body=kwargs)
            usage = response.get("usage") if isinstance(response, dict) else None
            verdict = response_verdict(self.judge_id, route, response)
        except openai.APIStatusError as exc:
            verdict = self._status_failure(exc)
        except openai.APIError as exc:  # timeout or broken connection after the SDK's retries
            verdict = self._failure(VerdictState.ERROR, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a 200 whose body is not a usable completion (malformed JSON, missing fields)
            verdict = self._failure(VerdictState.ERROR, f"unusable response body: {type(exc).__name__}: {exc}")
        finally:
            ATTEMPTS.reset(token)
        latency = time.perf_counter() - start
        self.calls += 1
        prompt_tokens, completion_tokens, estimated = self._tokens(usage, verdict, est_prompt, route)
        cost = None
        if self._price is not None and prompt_tokens is not None and completion_tokens is not None:
            cost = cost_usd(self._price, prompt_tokens, completion_tokens)
        self._budget.settle(estimate, cost)
        verdict = dataclasses.replace(
            verdict,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            latency_s=latency,
        )
        self._record(item, verdict, estimated, max(0, attempts[0] - 1))
        return verdict

    def _status_failure(self, exc: Any) -> Verdict:
        message = str(getattr(exc, "message", "") or exc)
        state = status_state(exc.status_code, f"{message} {getattr(exc, 'code', '') or ''}")
        return self._failure(state, f"HTTP {exc.status_code}: {message}")

    def _failure(self, state: VerdictState, error: str) -> Verdict:
        return Verdict.failed(self.judge_id, state, error=self._scrub(error)[:_ERROR_CHARS])

    def _scrub(self, text: str) -> str:
        """``text`` with the API key blanked out (a server or proxy may echo it back in an error)."""
        if self._api_key != _NO_KEY and self._api_key in text:
            text = text.replace(self._api_key, "***")
        return text

    @staticmethod
    def _tokens(usage: Any, verdict: Verdict, est_prompt: int, route: str) -> tuple[int | None, int | None, bool]:
        """Prompt and completion tokens of a call, and whether they are estimates (the server sent no usage)."""
        prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        completion = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if isinstance(prompt, int) and isinstance(completion, int) and prompt >= 0 and completion >= 0:
            return prompt, completion, False
        if verdict.state is VerdictState.ERROR:
            return None, None, False  # nothing was answered: nothing to estimate
        answer = estimate_tokens(verdict.raw) if route == "chat" and verdict.raw else len(CONTINUATIONS)
        return est_prompt, answer, True

    # -- ledger ---------------------------------------------------------------------------------------------------

    def _record(self, item: PairItem, verdict: Verdict, estimated: bool, retries: int) -> None:
        if self._ledger_failed:  # a write failed earlier in this run (logged then)
            return
        if self._ledger is None or self._ledger_pid != os.getpid():  # closed, or a forked worker: reopen
            self._ledger, self._ledger_pid = SpendLedger(self.ledger_path), os.getpid()
        record = SpendRecord(
            time=time.time(),
            judge_id=self.judge_id,
            fingerprint_sha256=self._fingerprint_sha256,
            model=self.config.model,
            endpoint=self._endpoint,
            item_key=item.key,
            outcome=verdict.state.value,
            prompt_tokens=verdict.prompt_tokens,
            completion_tokens=verdict.completion_tokens,
            tokens_estimated=estimated,
            cost_usd=verdict.cost_usd,
            latency_s=verdict.latency_s or 0.0,
            retries=retries,
            error=verdict.error,
        )
        try:
            self._ledger.record(record)
        except sqlite3.Error as exc:  # the verdict is paid for: keep it even when the ledger cannot take the record
            self._ledger_failed = True
            logger.error(
                "could not write the spend ledger %s (%s); later calls of this judge are not recorded there",
                self.ledger_path,
                exc,
            )

    def close(self) -> None:
        """Close the HTTP client, stop the judge's event loop and close the spend ledger (checkpointing its file).

        A later call opens them again."""
        self._connection.close()
        if self._ledger is not None and self._ledger_pid == os.getpid():
            self._ledger.close()
            self._ledger = None
