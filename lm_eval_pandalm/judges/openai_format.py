"""What the OpenAI-compatible judge sends and how it reads the answers (no SDK, no network here).

* Chat mode: :func:`chat_messages` renders the package's pairwise prompt (``templates/pairwise_chat.j2``) or the
  user's own Jinja2 template; :func:`parse_chat_answer` turns the answer, and the first token's ``top_logprobs`` when
  there are any, into a :class:`~lm_eval_pandalm.types.Verdict`.
* Completions mode: :func:`completions_loglik` reads the log-likelihoods of PandaLM's three continuations from a
  completions answer that echoed the prompts with their token logprobs.

Kept apart from :mod:`lm_eval_pandalm.judges.openai_api` so that the loopback test server
(:mod:`lm_eval_pandalm.testing.openai_server`) renders and parses exactly what the judge does.
"""

from __future__ import annotations

import functools
import math
import urllib.parse
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from ..errors import JudgeLoadError
from ..prompt import clean_response
from ..types import Label, PairItem, Verdict, VerdictState

__all__ = [
    "CHAT_TEMPLATE",
    "CONTINUATIONS",
    "DEFAULT_SYSTEM_PROMPT",
    "chat_messages",
    "completions_loglik",
    "label_of_answer",
    "parse_chat_answer",
    "public_url",
    "response_verdict",
    "status_state",
    "template_source",
]

CONTINUATIONS: tuple[str, str, str] = ("1\n", "2\n", "Tie\n")
"""The three continuations scored in completions mode, as the local judge scores them."""
DEFAULT_SYSTEM_PROMPT = "You are a careful, impartial judge of the quality of AI assistants' responses."
"""The chat mode's system message unless the config gives another."""
CHAT_TEMPLATE = "pairwise_chat.j2"
"""The package's chat user-message template (under ``lm_eval_pandalm/templates/``)."""


# -- prompts ---------------------------------------------------------------------------------------------------------


@functools.cache
def template_source(path: str | None) -> str:
    if path is None:
        return resources.files("lm_eval_pandalm").joinpath("templates", CHAT_TEMPLATE).read_text(encoding="utf-8")
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise JudgeLoadError(f"chat template {path}: cannot be read ({exc.strerror or exc}); check the path") from None


@functools.cache
def _template(path: str | None) -> jinja2.Template:
    env = jinja2.Environment(keep_trailing_newline=False, autoescape=False, undefined=jinja2.StrictUndefined)
    try:
        return env.from_string(template_source(path))
    except jinja2.TemplateSyntaxError as exc:
        raise JudgeLoadError(f"chat template {path}: not valid Jinja2 (line {exc.lineno}: {exc.message})") from None


def chat_messages(
    item: PairItem, *, system_prompt: str = DEFAULT_SYSTEM_PROMPT, template: str | None = None
) -> list[dict[str, str]]:
    """The chat messages that ask a judge about ``item``: the system prompt, then the rendered user template.

    Args:
        item: The pair.
        system_prompt: The system message.
        template: Path of a Jinja2 user-message template (variables ``instruction``, ``input``, ``response1``,
            ``response2``); ``None`` for the package's ``templates/pairwise_chat.j2``.
    """
    user = _template(template).render(
        instruction=item.instruction,
        input=item.input,
        response1=clean_response(item.response1),
        response2=clean_response(item.response2),
    )
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


# -- answers ---------------------------------------------------------------------------------------------------------


def label_of_answer(text: str) -> Label | None:
    """The label a chat answer names when it is exactly ``1``, ``2`` or ``Tie`` (any case, one trailing period)."""
    answer = text.strip().removesuffix(".").strip()
    if answer in ("1", "2"):
        return Label(answer)
    return Label.TIE if answer.lower() == "tie" else None


def _label_of_token(token: str) -> Label | None:
    """The label a first answer token starts: ``1``, ``2``, or any start of ``Tie`` (``T``, ``Ti``, ``Tie``)."""
    text = token.strip().lower()
    if text in ("1", "2"):
        return Label(text)
    return Label.TIE if text and "tie".startswith(text) else None


def _first_token_probs(logprobs: Mapping[str, Any] | None) -> dict[Label, float] | None:
    """Probability mass per label among the first non-blank answer token's ``top_logprobs``; ``None`` when absent."""
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    if not content:
        return None
    first = next((entry for entry in content if str(entry.get("token", "")).strip()), None)
    if first is None:
        return None
    candidates = [(top.get("token"), top.get("logprob")) for top in first.get("top_logprobs") or []]
    mass = dict.fromkeys(Label, 0.0)
    for token, logprob in candidates or [(first.get("token"), first.get("logprob"))]:
        label = _label_of_token(str(token))
        if label is not None and isinstance(logprob, (int, float)) and math.isfinite(logprob):
            mass[label] += math.exp(logprob)
    return mass if sum(mass.values()) > 0 else None


def parse_chat_answer(judge_id: str, content: str | None, logprobs: Mapping[str, Any] | None = None) -> Verdict:
    """A chat answer as a verdict: probabilities from the first token's ``top_logprobs`` when given, else hard.

    Args:
        judge_id: The verdict's judge id.
        content: The assistant message.
        logprobs: The choice's ``logprobs`` object as JSON (``{"content": [{"token", "logprob", "top_logprobs"}]}``).

    >>> parse_chat_answer("j", "Tie").winner, parse_chat_answer("j", "Response 1 is better").state.value
    (<Label.TIE: 'Tie'>, 'unparsed')
    """
    text = content or ""
    label = label_of_answer(text)
    if label is None:
        return Verdict.failed(
            judge_id, VerdictState.UNPARSED, error=f"answer is not exactly 1, 2 or Tie: {text[:80]!r}", raw=text
        )
    mass = _first_token_probs(logprobs)
    if mass is None:
        return Verdict.hard(judge_id, label, raw=text)
    return Verdict.from_probs(
        judge_id, mass[Label.FIRST], mass[Label.SECOND], mass[Label.TIE], raw=text, generated_winner=label
    )


def completions_loglik(choices: Sequence[Mapping[str, Any]]) -> list[float]:
    """Log-likelihoods of ``1\\n``, ``2\\n``, ``Tie\\n`` from the echoed logprobs of the three prompts.

    Args:
        choices: The answer's ``choices`` as JSON, each with ``index`` and ``logprobs`` (``tokens``,
            ``token_logprobs``).

    Raises:
        ValueError: The answer does not hold three echoed prompts with token logprobs.
    """
    if len(choices) != len(CONTINUATIONS):
        raise ValueError(f"expected {len(CONTINUATIONS)} choices (one per continuation), got {len(choices)}")
    ordered = sorted(choices, key=lambda choice: int(choice.get("index", 0)))
    tokens, logprobs = [], []
    for choice in ordered:
        lp = choice.get("logprobs") or {}
        echoed, values = lp.get("tokens"), lp.get("token_logprobs")
        if not echoed or not isinstance(values, list) or len(echoed) != len(values):
            raise ValueError("the server echoed no prompt logprobs (does it support echo=true with logprobs?)")
        tokens.append(list(echoed))
        logprobs.append(values)
    prefix = 0
    while all(prefix < len(t) for t in tokens) and len({t[prefix] for t in tokens}) == 1:
        prefix += 1
    totals = []
    for text, values in zip(CONTINUATIONS, logprobs, strict=True):
        scored = values[prefix:-1]  # the last token is the one generated token (max_tokens=1)
        if not scored or any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in scored):
            raise ValueError(f"no usable echoed logprobs for the continuation {text!r} after {prefix} prompt tokens")
        totals.append(math.fsum(scored))
    return totals


def public_url(url: str) -> str:
    """``url`` without credentials, query or fragment (what may appear in ids, fingerprints and the ledger)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def response_verdict(judge_id: str, route: str, response: Any) -> Verdict:
    """The verdict in a chat (``route="chat"``) or completions answer, decoded from JSON.

    Raises:
        ValueError, TypeError, KeyError, AttributeError: The answer is not a completion with a usable choice (the
            caller reports state ``ERROR``).
    """
    if not isinstance(response, Mapping):
        raise ValueError(f"the response is not a JSON object but {type(response).__name__}")
    choices = response.get("choices")
    if not choices:
        raise ValueError("the response has no choices")
    if route == "chat":
        choice = choices[0]
        content = choice["message"].get("content")
        if content is not None and not isinstance(content, str):
            raise ValueError(f"the message content is not text but {type(content).__name__}")
        return parse_chat_answer(judge_id, content, choice.get("logprobs"))
    loglik = completions_loglik(choices)
    top = max(loglik)
    return Verdict.from_probs(judge_id, *(math.exp(value - top) for value in loglik))


def status_state(status_code: int, message: str) -> VerdictState:
    """The state of a call the server refused: ``OVER_CONTEXT`` for a 400 about the context length (vLLM's and
    OpenAI's wording), else ``ERROR``.

    >>> status_state(400, "This model's maximum context length is 2048 tokens").value
    'over_context'
    """
    text = message.lower()
    if status_code == 400 and ("context length" in text or "context_length" in text):
        return VerdictState.OVER_CONTEXT
    return VerdictState.ERROR
