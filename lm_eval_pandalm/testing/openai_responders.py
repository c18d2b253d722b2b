"""What the loopback OpenAI-compatible server answers with: chat answers from a judge, completions from a local model.

:class:`VerdictResponder` answers chat requests from any judge's verdicts (e.g. LLMBar's recorded GPT-4 verdicts,
``replay:GPT-4``); :class:`TinyModelScorer` scores completions prompts with a local causal LM and echoes their token
logprobs the way vLLM does. :class:`~lm_eval_pandalm.testing.openai_server.OpenAIServer` takes any callable of the
same shape (:data:`ChatResponder`, :data:`CompletionScorer`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..judge import Judge
from ..judges.openai_format import DEFAULT_SYSTEM_PROMPT, chat_messages
from ..types import Label, PairItem

__all__ = ["ChatAnswer", "ChatResponder", "CompletionScorer", "EchoedPrompt", "TinyModelScorer", "VerdictResponder"]


@dataclass(frozen=True)
class ChatAnswer:
    """What a chat responder says: the text and, optionally, the first token's top logprobs."""

    content: str
    """The assistant's message."""
    top_logprobs: Sequence[tuple[str, float]] | None = None
    """``(token, logprob)`` alternatives for the first token, most likely first; ``None`` for none."""


@dataclass(frozen=True)
class EchoedPrompt:
    """A completions prompt scored by a model: its tokens, their logprobs and one generated token, vLLM style."""

    tokens: Sequence[str]
    """Token strings of the prompt, then of the generated token."""
    token_logprobs: Sequence[float | None]
    """Logprob of each token given the ones before it (``None`` for the first)."""
    text: str
    """The prompt followed by the generated text."""
    prompt_tokens: int
    """How many of ``tokens`` belong to the prompt."""


ChatResponder = Callable[[Sequence[Mapping[str, Any]]], ChatAnswer]
"""Answers a chat request from its messages."""
CompletionScorer = Callable[[Sequence[str]], Sequence[EchoedPrompt]]
"""Scores the prompts of a completions request."""


class VerdictResponder:
    """Chat answers from a judge's verdicts on known pairs (both orders), as an API judge would answer.

    The user message is matched against the chat prompt of each item and of its swapped pair; the judge's verdict on
    that pair becomes the answer (``1``, ``2`` or ``Tie``) and its probabilities the first token's top logprobs. A
    failed verdict becomes an answer that names no label. An unknown prompt raises ``KeyError`` (the server answers
    400).

    Args:
        judge: Any judge, e.g. ``make_judge("replay:GPT-4")`` for LLMBar's recorded GPT-4 verdicts.
        items: The pairs the judge will be asked about.
        system_prompt: The system prompt the API judge sends (to render the same user message).
        template: The API judge's template path (``None``: the package's).
    """

    def __init__(
        self,
        judge: Judge,
        items: Sequence[PairItem],
        *,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        template: str | None = None,
    ) -> None:
        self.judge = judge
        self._items: dict[str, PairItem] = {}
        for item in items:
            for pair in (item, item.swapped()):
                content = chat_messages(pair, system_prompt=system_prompt, template=template)[-1]["content"]
                self._items[content] = pair
        self._lock = threading.Lock()

    def __call__(self, messages: Sequence[Mapping[str, Any]]) -> ChatAnswer:
        item = self._items[str(messages[-1]["content"])]
        with self._lock:
            verdict = self.judge([item])[0]
        if not verdict.ok or verdict.winner is None:
            return ChatAnswer("I cannot tell which response is better.")
        alternatives = [(label.value, math.log(p)) for label in Label if (p := verdict.prob(label)) > 0]
        alternatives.sort(key=lambda pair: -pair[1])
        return ChatAnswer(verdict.winner.value, alternatives)


class TinyModelScorer:
    """Scores completions prompts with a local causal LM, echoing token logprobs as vLLM's completions endpoint does.

    The prompt is tokenized with the tokenizer's special tokens (BOS), as vLLM does; token strings are the
    tokenizer's pieces (``convert_ids_to_tokens``) and one greedy token is generated. Imports torch and transformers.

    Args:
        model_dir: A folder ``from_pretrained`` can load, e.g. from
            :func:`~lm_eval_pandalm.testing.tiny_models.build_tiny_judge`.
    """

    def __init__(self, model_dir: str | Path) -> None:
        import torch
        import transformers

        self._torch = torch
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        self.model.eval()
        self._lock = threading.Lock()

    def __call__(self, prompts: Sequence[str]) -> list[EchoedPrompt]:
        torch = self._torch
        out = []
        with self._lock, torch.inference_mode():
            for prompt in prompts:
                ids = list(self.tokenizer(prompt)["input_ids"])
                logits = self.model(input_ids=torch.tensor([ids])).logits[0].float()
                logprobs = torch.log_softmax(logits, dim=-1)
                generated = int(logprobs[-1].argmax())
                values: list[float | None] = [None]
                values += [float(logprobs[i - 1, ids[i]]) for i in range(1, len(ids))]
                values.append(float(logprobs[-1, generated]))
                tokens = self.tokenizer.convert_ids_to_tokens([*ids, generated])
                text = prompt + str(self.tokenizer.decode([generated]))
                out.append(EchoedPrompt(tokens=tokens, token_logprobs=values, text=text, prompt_tokens=len(ids)))
        return out
