"""Examples to token ids: PandaLM's prompt and target, loss on the target only, and a truncation policy.

The prompt is :func:`lm_eval_pandalm.prompt.build_prompt` (the judge scores exactly that text); the target is
``{result}\\n\\n### Reason: {reason}\\n\\n### Reference: {reference}\\n`` followed by EOS, as PandaLM's outputs read.
The ids are those of ``prompt + target`` tokenized together, which is how :class:`~lm_eval_pandalm.judges.
pandalm_local.PandaLMJudge` tokenizes the verdict after the prompt; the prompt's tokens get label ``-100``.

Truncation never cuts the target. When ``prompt + target`` is longer than ``max_length``:

* ``responses`` (default): the longer of the two responses loses tokens from its end until the example fits;
* ``drop``: the example is left out (counted in the log);
* ``error``: :class:`~lm_eval_pandalm.training.data.TrainingDataError` naming file and row.

An example whose target alone cannot fit is an error under every policy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..data.training_format import TrainingExample
from ..prompt import build_prompt
from .data import TrainingDataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["CLASSIFIER_LABELS", "TRUNCATION_POLICIES", "encode_classifier", "encode_generative", "setup_tokenizer"]

logger = logging.getLogger(__name__)

TRUNCATION_POLICIES = ("responses", "drop", "error")
CLASSIFIER_LABELS = ("1", "2", "Tie")
"""Class index -> verdict of the classifier judge (the order of ``Verdict.from_probs``)."""


def setup_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """PandaLM's tokenizer set-up: BOS added, pad = ``<unk>`` (id 0 for LLaMA) when there is no pad, right padding."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def target_text(ex: TrainingExample, keep_reference: bool = True) -> str:
    """PandaLM's output for ``ex``; without the reference section when ``keep_reference`` is false.

    >>> from lm_eval_pandalm.types import PairItem, Label
    >>> target_text(TrainingExample(PairItem("q", "a", "b"), Label.SECOND, "shorter", "b"))
    '2\\n\\n### Reason: shorter\\n\\n### Reference: b\\n'
    """
    text = f"{ex.label.value}\n\n### Reason: {ex.reason.strip()}\n"
    if keep_reference:
        text += f"\n### Reference: {ex.reference.strip()}\n"
    return text


def _prefix(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    from ..judges.pandalm_local import _special_prefix

    return _special_prefix(tokenizer)


def _shorten(tokenizer: PreTrainedTokenizerBase, ex: TrainingExample, excess: int) -> TrainingExample | None:
    """``ex`` with the longer response cut by about ``excess`` tokens from its end; ``None`` when nothing is left."""
    item = ex.item
    both = [tokenizer(r, add_special_tokens=False)["input_ids"] for r in (item.response1, item.response2)]
    which = 0 if len(both[0]) >= len(both[1]) else 1
    ids = both[which]
    if not ids:
        return None
    cut = str(tokenizer.decode(ids[: max(0, len(ids) - excess)], skip_special_tokens=True))
    new = replace(item, response1=cut) if which == 0 else replace(item, response2=cut)
    return replace(ex, item=new)


def _fit(
    tokenizer: PreTrainedTokenizerBase, ex: TrainingExample, target: str, max_length: int, truncation: str, eos: bool
) -> tuple[list[int], int] | None:
    """``(ids, prompt length)`` of ``ex`` fitted into ``max_length`` by the policy; ``None`` when dropped."""
    prefix = _prefix(tokenizer)
    tail = [tokenizer.eos_token_id] if eos and tokenizer.eos_token_id is not None else []
    current = ex
    for _ in range(20):  # each round removes at least the measured excess; a handful suffices
        prompt = build_prompt(current.item)
        prompt_ids = prefix + tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = prefix + tokenizer(prompt + target, add_special_tokens=False)["input_ids"] + tail
        if ids[: len(prompt_ids)] != prompt_ids:
            raise TrainingDataError(
                f"{ex.source}: row {ex.row}: the tokenizer merges the end of the prompt with the verdict; the judge "
                "needs a token boundary there (a LLaMA-style tokenizer)"
            )
        excess = len(ids) - max_length
        if excess <= 0:
            return ids, len(prompt_ids)
        if truncation == "drop":
            return None
        if truncation == "error":
            raise TrainingDataError(
                f"{ex.source}: row {ex.row}: {len(ids)} tokens, over max_length {max_length}; set truncation: "
                "responses (cut the longer response) or drop, or raise max_length"
            )
        shorter = _shorten(tokenizer, current, excess)
        if shorter is None or shorter.item == current.item:
            raise TrainingDataError(
                f"{ex.source}: row {ex.row}: the verdict, reason and reference need {len(ids) - len(prompt_ids)} "
                f"tokens and cannot fit in max_length {max_length} even with empty responses; raise max_length"
            )
        current = shorter
    raise TrainingDataError(f"{ex.source}: row {ex.row}: could not fit the example into max_length {max_length}")


def _encode_each(
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[tuple[TrainingExample, str]],
    max_length: int,
    truncation: str,
    eos: bool,
) -> list[tuple[TrainingExample, list[int], int]]:
    """``(example, ids, prompt length)`` per ``(example, target)`` that the policy keeps; the dropped are logged."""
    if truncation not in TRUNCATION_POLICIES:
        raise ValueError(f"truncation must be one of {TRUNCATION_POLICIES}, got {truncation!r}")
    kept = []
    for ex, target in rows:
        fitted = _fit(tokenizer, ex, target, max_length, truncation, eos=eos)
        if fitted is not None:
            kept.append((ex, *fitted))
    if len(kept) < len(rows):
        dropped = len(rows) - len(kept)
        logger.warning("dropped %d of %d examples longer than max_length %d", dropped, len(rows), max_length)
    return kept


def encode_generative(
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[tuple[TrainingExample, bool]],
    max_length: int,
    truncation: str = "responses",
) -> list[dict[str, Any]]:
    """``{"input_ids", "labels"}`` per ``(example, keep_reference)``; labels are ``-100`` on the prompt.

    Raises:
        TrainingDataError: See the module's truncation policy.
    """
    rows = [(ex, target_text(ex, keep_ref)) for ex, keep_ref in examples]
    return [
        {"input_ids": ids, "labels": [-100] * n_prompt + ids[n_prompt:]}
        for _, ids, n_prompt in _encode_each(tokenizer, rows, max_length, truncation, eos=True)
    ]


def encode_classifier(
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TrainingExample],
    max_length: int,
    truncation: str = "responses",
) -> list[dict[str, Any]]:
    """``{"input_ids", "labels"}`` per example for the classifier: the prompt only, the label as a class index."""
    fitted = _encode_each(tokenizer, [(ex, "") for ex in examples], max_length, truncation, eos=False)
    return [{"input_ids": ids, "labels": CLASSIFIER_LABELS.index(ex.label.value)} for ex, ids, _ in fitted]
