"""PandaLM as a local judge (transformers), scoring verdicts by likelihood in one forward pass per pair.

PandaLM's reference code generates up to 512 tokens with 4-beam search and reads the verdict from the first line.
The verdict is the first thing the model writes (``1``, ``2`` or ``Tie``, then a newline), so its probability can be
read directly: this judge computes the log-likelihood of each of the three continuations ``1\\n``, ``2\\n`` and
``Tie\\n`` after the prompt and normalises them into :class:`~lm_eval_pandalm.types.Verdict` probabilities.

The three continuations share the prompt, so they are packed into one sequence, ``prompt + c1 + c2 + c3``, with a
tree-shaped attention mask: prompt tokens attend causally, and each continuation's tokens attend to the whole prompt
and to the earlier tokens of the same continuation only. Explicit position ids put every continuation right after
the prompt. One forward pass over ``len(prompt) + 5``-ish tokens thus gives exactly the numbers that three separate
passes would give, and only the handful of positions that predict a continuation token go through the LM head.
The last token of each continuation is never fed, since nothing reads the model's output after it.

Explanations (PandaLM's ``### Reason:`` and ``### Reference:``) are opt-in: ``explain=True`` in the config, or
:meth:`PandaLMJudge.explain` for chosen items only. They use PandaLM's generation settings; the scored verdict stands
and the written one is kept in ``Verdict.generated_winner``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from ..prompt import build_prompt, parse_output, template_hash
from ..types import PairItem, Verdict, VerdictState

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "CONTINUATIONS",
    "DEFAULT_MODEL",
    "PandaLMJudge",
    "PandaLMJudgeConfig",
    "pandalm_judge",
    "plan_batches",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "WeOpenML/PandaLM-7B-v1"
CONTINUATIONS: tuple[str, str, str] = ("1\n", "2\n", "Tie\n")
"""What PandaLM writes first for each label (same order as ``Label.FIRST, Label.SECOND, Label.TIE``)."""
# Every PandaLM prompt ends with this text, so continuation tokens computed after it are the ones the model sees.
_PROBE = "### Response 2:\nA response.\n\n### Evaluation:\n"
# Bump when the scoring method changes in a way that changes the numbers (part of the fingerprint).
_SCORING_VERSION = "tree-loglik-v1"
_DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_TRUNCATIONS = ("none", "left")
_ATTENTION = ("sdpa", "eager")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_TOKENIZER_FILES = (
    "config.json",
    "adapter_config.json",  # a LoRA adapter folder (pandalm train --use_lora): its base model and settings
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class PandaLMJudgeConfig:
    """Settings of :class:`PandaLMJudge`. Defaults follow PandaLM's reference code where it has one."""

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Hub id or local folder of the judge model."})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit) to load."})
    dtype: str = field(
        default="auto",
        metadata={
            "help": "Weights dtype: 'auto' (bfloat16 on CUDA, float32 on CPU), 'float32', 'bfloat16', 'float16'."
        },
    )
    device: str | None = field(
        default=None, metadata={"help": "Device to load the model on; None picks 'cuda' when available, else 'cpu'."}
    )
    device_map: str | None = field(
        default=None,
        metadata={
            "help": "accelerate device map (e.g. 'auto'); None uses 'auto' by itself when there is more than one GPU."
        },
    )
    attn_implementation: str = field(
        default="sdpa",
        metadata={"help": "'sdpa' or 'eager'. Flash attention cannot take the custom tree attention mask."},
    )
    max_batch_tokens: int = field(
        default=8192,
        metadata={"help": "Most padded tokens in one scoring forward pass (batch size x longest sequence)."},
    )
    max_batch_size: int = field(default=64, metadata={"help": "Most prompts in one scoring forward pass."})
    truncation: str = field(
        default="none",
        metadata={
            "help": "'none': a prompt longer than max_length gets state over_context. "
            "'left': drop the prompt's earliest tokens (keeping BOS) so that it fits."
        },
    )
    max_length: int | None = field(
        default=None, metadata={"help": "Context window in tokens; None reads the model's max_position_embeddings."}
    )
    explain: bool = field(
        default=False,
        metadata={"help": "Also generate PandaLM's reason and reference for every item (slow: beam search)."},
    )
    explain_num_beams: int = field(default=4, metadata={"help": "Beams for explanations (PandaLM: 4)."})
    explain_repetition_penalty: float = field(
        default=1.2, metadata={"help": "Repetition penalty for explanations (PandaLM: 1.2)."}
    )
    explain_max_new_tokens: int = field(default=512, metadata={"help": "Most tokens per explanation (PandaLM: 512)."})
    explain_early_stopping: bool = field(default=True, metadata={"help": "Beam-search early stopping (PandaLM: True)."})
    explain_batch_size: int = field(default=4, metadata={"help": "Prompts per generate() call in explain mode."})
    show_progress: bool = field(default=True, metadata={"help": "Show a tqdm bar when there is more than one batch."})

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")
        if self.truncation not in _TRUNCATIONS:
            raise ValueError(f"truncation must be one of {list(_TRUNCATIONS)}, got {self.truncation!r}")
        if self.attn_implementation not in _ATTENTION:
            raise ValueError(
                f"attn_implementation must be one of {list(_ATTENTION)}, got {self.attn_implementation!r}: the verdict "
                "is scored with a custom 4D attention mask, which only these implementations accept"
            )
        for name in ("max_batch_tokens", "max_batch_size", "explain_num_beams", "explain_max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.explain_batch_size < 1:
            raise ValueError(f"explain_batch_size must be at least 1, got {self.explain_batch_size}")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"max_length must be at least 2 (or None for the model's own), got {self.max_length}")

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of the settings, for error messages and config loaders."""
        return [f.name for f in dataclasses.fields(cls)]


def plan_batches(lengths: Sequence[int], max_tokens: int, max_size: int) -> list[list[int]]:
    """Group indices into batches of similar length, longest first, under a padded-token and a size budget.

    A sequence longer than ``max_tokens`` gets a batch of its own. Equal lengths keep their input order.

    >>> plan_batches([5, 9, 3, 9, 4], max_tokens=20, max_size=3)
    [[1, 3], [0, 4, 2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted longest first, so the batch's padded width is its first member's length.
        width = lengths[current[0]] if current else lengths[i]
        if current and (len(current) >= max_size or width * (len(current) + 1) > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class PandaLMJudge:
    """PandaLM-7B (or any causal LM trained on its format) judging pairs by verdict likelihood.

    Satisfies :class:`~lm_eval_pandalm.judge.Judge`. Verdict probabilities are the softmax of the log-likelihoods of
    ``1\\n``, ``2\\n`` and ``Tie\\n`` after PandaLM's prompt. Failures are states: ``OVER_CONTEXT`` for prompts that do
    not fit (unless ``truncation="left"``), ``ERROR`` for an item whose forward pass raised even on its own.

    Args:
        config: Settings; defaults to PandaLM-7B-v1 with PandaLM's decoding settings.
        model: An already loaded causal LM to use instead of loading ``config.model`` (it is not moved or cast).
        tokenizer: Its tokenizer; loaded from ``config.model`` when ``None``.

    Attributes:
        forward_calls: Number of scoring forward passes run so far.
        generate_calls: Number of ``generate()`` calls run so far (explain mode).
    """

    def __init__(
        self,
        config: PandaLMJudgeConfig | None = None,
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> None:
        self.config = config if config is not None else PandaLMJudgeConfig()
        self.judge_id = f"pandalm:{self.config.model}"
        self.forward_calls = 0
        self.generate_calls = 0
        self._fingerprint: str | None = None
        self._model: PreTrainedModel | None = None
        self._packing_ready = False

        if model is None:
            # Only the config and the tokenizer now: the weights load on the first forward pass, so a judge whose
            # verdicts are all cached never loads them.
            from .model_files import load_model_config

            model_config = load_model_config(self.config.model, self.config.revision)
            self._weights_source = self.config.model
            self._device, self._dtype = _planned_placement(self.config)
        else:
            model_config = model.config
            self._weights_source = getattr(model, "name_or_path", "") or ""
            self._adopt(model)
        if tokenizer is None:
            tokenizer = _load_tokenizer(self.config)
        self.tokenizer = tokenizer

        # PandaLM's special ids: pad 0 when the tokenizer has none (LLaMA's <unk>), BOS 1 and EOS 2 from the tokenizer.
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else model_config.eos_token_id
        self._prefix_ids = _special_prefix(tokenizer)
        self._continuation_ids = continuation_token_ids(tokenizer)
        self._max_continuation = max(len(ids) for ids in self._continuation_ids)
        self._packed_extra = sum(len(ids) - 1 for ids in self._continuation_ids)
        from .model_files import check_max_length

        self.max_length = check_max_length(self.judge_id, self.config.max_length, model_config)

    def _adopt(self, model: PreTrainedModel) -> None:
        """Take a loaded model into use: check its attention, read its device and dtype."""
        attn = getattr(model.config, "_attn_implementation", None)
        if attn not in _ATTENTION:
            raise ValueError(
                f"the judge model uses attention implementation {attn!r}, which cannot take the custom 4D attention "
                f"mask the verdict scoring needs; load it with attn_implementation='sdpa' (or 'eager'), or call "
                f"model.set_attn_implementation('sdpa')"
            )
        model.eval()
        embeddings = next(model.get_input_embeddings().parameters())
        self._device = embeddings.device
        self._dtype = embeddings.dtype
        self._keep_logits = _supports_logits_to_keep(model)
        self._model = model

    @property
    def model(self) -> PreTrainedModel:
        """The judge model, loaded on first use."""
        if self._model is None:
            self._adopt(_load_model(self.config))
        assert self._model is not None
        return self._model

    @property
    def model_loaded(self) -> bool:
        """Whether the weights have been loaded (a judge answered from the cache never loads them)."""
        return self._model is not None

    # -- construction ---------------------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: PandaLMJudgeConfig) -> PandaLMJudge:
        """Load ``config.model`` and build the judge."""
        return cls(config)

    @property
    def continuation_ids(self) -> list[list[int]]:
        """Token ids of ``1\\n``, ``2\\n`` and ``Tie\\n`` as scored after the prompt (see :data:`CONTINUATIONS`)."""
        return [list(ids) for ids in self._continuation_ids]

    def __repr__(self) -> str:
        return f"PandaLMJudge(model={self.config.model!r}, device={self._device}, dtype={self._dtype})"

    # -- Judge protocol -------------------------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """JSON of everything that determines the verdicts: model and weights identity, dtype, prompt template,
        continuations and their token ids, truncation, context length, and the explanation settings when
        ``explain`` is on. Weights of a local folder are identified by the hash of the files' contents."""
        if self._fingerprint is None:
            payload: dict[str, Any] = {
                "judge": "pandalm-local",
                "scoring": _SCORING_VERSION,
                "model": self.config.model,
                "revision": self.config.revision,
                "weights": _weights_identity(self._weights_source, self.config.revision, lambda: self.model),
                "dtype": str(self._dtype).removeprefix("torch."),
                "template": template_hash(),
                "continuations": list(CONTINUATIONS),
                "continuation_ids": self._continuation_ids,
                "prefix_ids": self._prefix_ids,
                "truncation": self.config.truncation,
                "truncated_scoring": "lm-eval-hf-v1" if self.config.truncation == "left" else None,
                "max_length": self.max_length,
            }
            if self.config.explain:
                payload["explain"] = self._explain_settings()
            self._fingerprint = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return self._fingerprint

    def __call__(self, items: Sequence[PairItem]) -> list[Verdict]:
        """Judge every item (one forward pass per item, batched); explanations too when ``config.explain``."""
        items = list(items)
        verdicts = self.score(items)
        if self.config.explain:
            verdicts = self._add_explanations(items, verdicts, range(len(items)))
        return verdicts

    # -- scoring --------------------------------------------------------------------------------------------------

    def score(self, items: Sequence[PairItem]) -> list[Verdict]:
        """Verdicts by likelihood only (never generates, whatever ``config.explain`` says)."""
        items = list(items)
        if not items:
            return []
        encoded, verdicts, overlong = self._encode(items)
        prompts = {i: ids for i, ids in enumerate(encoded) if ids is not None and i not in overlong}
        todo = list(prompts)
        lengths = [len(prompts[i]) + self._packed_extra for i in todo]
        batches = [
            [todo[j] for j in batch]
            for batch in plan_batches(lengths, self.config.max_batch_tokens, self.config.max_batch_size)
        ]
        show = self.config.show_progress and len(batches) > 1
        with torch.inference_mode():
            for batch in tqdm(batches, desc="PandaLM verdicts", unit="batch", disable=not show):
                self._score_with_retry(batch, prompts, verdicts)
            for i, (full, moved) in overlong.items():
                verdicts[i] = self._score_truncated(full, moved)
        done = [verdict for verdict in verdicts if verdict is not None]
        if len(done) != len(items):  # pragma: no cover - every item is either over context or scored
            raise RuntimeError(f"internal error: {len(items) - len(done)} items were neither scored nor failed")
        return done

    def _encode(
        self, items: Sequence[PairItem], *, warn: bool = True
    ) -> tuple[list[list[int] | None], list[Verdict | None], dict[int, tuple[list[int], int]]]:
        """Prompt token ids per item (``None`` where it does not fit), the OVER_CONTEXT verdicts already known, and,
        with ``truncation="left"``, the whole prompt of each over-long item with the number of its trailing tokens
        lm-eval counts as part of the continuation (scored by :func:`.truncated_scoring.left_truncated_loglik`; the
        ids returned for it are its BOS + tail, for generation)."""
        texts = [build_prompt(item) for item in items]
        raw_ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        prefix = self._prefix_ids
        budget = self.max_length - self._max_continuation  # prompt tokens that fit, BOS included
        encoded: list[list[int] | None] = []
        verdicts: list[Verdict | None] = []
        overlong: dict[int, tuple[list[int], int]] = {}
        for i, ids in enumerate(raw_ids):
            ids = prefix + list(ids)
            if len(ids) > budget and self.config.truncation == "left" and budget > len(prefix):
                stripped = self.tokenizer(texts[i].rstrip(), add_special_tokens=False)["input_ids"]
                overlong[i] = (ids, len(ids) - len(prefix) - len(stripped))
                ids = prefix + ids[len(ids) - (budget - len(prefix)) :]
            if len(ids) > budget:
                verdicts.append(self._over_context(len(ids)))
                encoded.append(None)
            else:
                encoded.append(ids)
                verdicts.append(None)
        if overlong and warn:
            logger.warning(
                "left-truncated %d of %d prompts to fit the judge's context of %d tokens",
                len(overlong),
                len(items),
                self.max_length,
            )
        return encoded, verdicts, overlong

    def _over_context(self, prompt_tokens: int) -> Verdict:
        needed = prompt_tokens + self._max_continuation
        return Verdict.failed(
            self.judge_id,
            VerdictState.OVER_CONTEXT,
            error=f"prompt and verdict need {needed} tokens ({prompt_tokens} prompt + {self._max_continuation} "
            f"verdict) but the judge's context is {self.max_length} tokens; shorten the responses or use "
            "set `truncation: left` in a judge YAML to drop the prompt's earliest tokens",
            prompt_tokens=prompt_tokens,
        )

    def _build_packing_spec(self) -> None:
        """Precompute the parts of packing and gathering that are the same for every row.

        Each row is ``prompt + c1[:-1] + c2[:-1] + c3[:-1]`` (the fed tokens; a continuation's last token is never
        fed since nothing reads the output after it). Kept positions per row, in order: the last prompt token, then
        every fed token. The output at a kept position predicts one continuation token; the last prompt position
        predicts the first token of all three continuations.
        """
        device = self._device
        feed = [ids[:-1] for ids in self._continuation_ids]
        extra = self._packed_extra
        rows, tokens, conts = [], [], []
        offset = 1
        for k, ids in enumerate(self._continuation_ids):
            for j, token in enumerate(ids):
                rows.append(0 if j == 0 else offset + j - 1)
                tokens.append(token)
                conts.append(k)
            offset += len(ids) - 1
        self._kept_per_row = offset
        self._gather_rows = torch.tensor(rows, device=device)
        self._gather_tokens = torch.tensor(tokens, device=device)
        self._gather_conts = torch.tensor(conts, device=device)

        segments = [k for k, f in enumerate(feed) for _ in f]
        self._feed_tokens = torch.tensor([t for f in feed for t in f], dtype=torch.long, device=device)
        self._feed_cols = torch.arange(extra, device=device)[None, :]
        self._feed_offsets = torch.tensor([j for f in feed for j in range(len(f))], device=device)[None, :]
        # Tree block over the fed tokens: query i sees key j when both belong to the same continuation and j <= i;
        # flattened, with the (query, key) offsets from the prompt's end where each row's mask gets it.
        closed = torch.finfo(self._dtype).min
        block = [0.0 if segments[i] == segments[j] and j <= i else closed for i in range(extra) for j in range(extra)]
        self._tree_block = torch.tensor(block, dtype=self._dtype, device=device)
        self._tree_queries = torch.arange(extra, device=device).repeat_interleave(extra)[None, :]
        self._tree_keys = torch.arange(extra, device=device).repeat(extra)[None, :]
        self._causal: torch.Tensor | None = None
        self._packing_ready = True

    def _pack(self, prompts: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        """Right-padded ``prompt + c1[:-1] + c2[:-1] + c3[:-1]`` rows, tree mask, position ids and kept positions."""
        device, batch, extra = self._device, len(prompts), self._packed_extra
        lengths = torch.tensor([len(p) for p in prompts], device=device)[:, None]  # (batch, 1)
        width = int(lengths.max()) + extra
        index = torch.arange(width, device=device)[None, :]  # (1, width)
        in_prompt = index < lengths
        # Row-major boolean assignment lays the concatenated prompts out left-aligned, one per row.
        input_ids = torch.full((batch, width), self._pad_id, dtype=torch.long, device=device)
        input_ids[in_prompt] = torch.tensor(list(itertools.chain.from_iterable(prompts)), device=device)
        position_ids = torch.where(in_prompt, index, 0)
        # The fed continuation tokens follow each prompt; each continuation starts at position len(prompt).
        feed_cols = lengths + self._feed_cols
        input_ids.scatter_(1, feed_cols, self._feed_tokens.expand(batch, -1))
        position_ids.scatter_(1, feed_cols, lengths + self._feed_offsets)
        keep = (index >= lengths - 1) & (index < lengths + extra)
        # The tree mask is the causal mask except on the continuation x continuation block of each row, where a
        # token sees only the earlier tokens of its own continuation. Causality already hides the padding (it comes
        # last) from every real token, and lets each padded query see at least itself, so no row is all -inf (NaN).
        mask = self._causal_mask(width).expand(batch, width, width).clone()
        if extra:
            rows = torch.arange(batch, device=device).repeat_interleave(extra * extra)
            queries = (lengths + self._tree_queries).reshape(-1)
            keys = (lengths + self._tree_keys).reshape(-1)
            mask[rows, queries, keys] = self._tree_block.repeat(batch)
        return {"input_ids": input_ids, "position_ids": position_ids, "attention_mask": mask[:, None], "keep": keep}

    def _causal_mask(self, width: int) -> torch.Tensor:
        """Additive causal mask ``(width, width)`` in the model's dtype: 0 on and below the diagonal, min above."""
        if self._causal is None or self._causal.shape[0] < width:
            size = -(-width // 256) * 256  # cached, grown in steps of 256 so that growing widths rarely rebuild it
            closed = torch.finfo(self._dtype).min
            self._causal = torch.full((size, size), closed, dtype=self._dtype, device=self._device).triu_(1)
        return self._causal[:width, :width]

    def _continuation_loglik(self, prompts: Sequence[list[int]]) -> torch.Tensor:
        """Log-likelihoods (float32, shape ``(len(prompts), 3)``) of the three continuations after each prompt."""
        model = self.model  # loads the weights on first use, which fixes the device the packing tensors go to
        if not self._packing_ready:
            self._build_packing_spec()
        packed = self._pack(prompts)
        keep = packed.pop("keep")
        self.forward_calls += 1
        if self._keep_logits:
            # The model's own head (with any logit scaling it applies) on the kept positions only.
            logits = model(**packed, use_cache=False, logits_to_keep=keep).logits
        else:
            logits = model(**packed, use_cache=False).logits[keep]
        batch = len(prompts)
        logprobs = torch.log_softmax(logits.view(batch, self._kept_per_row, -1).float(), dim=-1)
        device = logprobs.device  # the last device when the model is split over several GPUs
        picked = logprobs[:, self._gather_rows.to(device), self._gather_tokens.to(device)]  # (batch, cont. tokens)
        totals = torch.zeros(batch, len(CONTINUATIONS), dtype=torch.float32, device=device)
        return totals.index_add_(1, self._gather_conts.to(device), picked)

    def _score_truncated(self, full: list[int], moved: int) -> Verdict:
        """The verdict of an over-long prompt, left-truncated per continuation as lm-eval does."""
        from .truncated_scoring import left_truncated_loglik

        start = time.perf_counter()
        try:
            row = left_truncated_loglik(
                self.model, full, self._continuation_ids, moved, self.max_length, self._pad_id, self._device
            )
        except Exception as exc:  # as in _score_with_retry: the item fails alone, the others stand
            _release_cached_memory(self._device)
            logger.warning("judging a truncated item failed: %s: %s", type(exc).__name__, exc)
            return Verdict.failed(
                self.judge_id, VerdictState.ERROR, error=f"{type(exc).__name__}: {exc}", prompt_tokens=len(full)
            )
        self.forward_calls += 1
        top = max(row)
        return Verdict.from_probs(
            self.judge_id,
            *(math.exp(value - top) for value in row),
            prompt_tokens=min(len(full), self.max_length),
            completion_tokens=0,
            latency_s=time.perf_counter() - start,
        )

    def _score_with_retry(
        self, batch: list[int], by_index: dict[int, list[int]], verdicts: list[Verdict | None]
    ) -> None:
        """Score a batch; when it raises, retry it in halves, and mark an item ERROR only when it fails alone."""
        prompts = [by_index[i] for i in batch]
        start = time.perf_counter()
        try:
            loglik = self._continuation_loglik(prompts).double().cpu().tolist()
        except Exception as exc:  # any failure (CUDA OOM, a bad input) is isolated and reported
            _release_cached_memory(self._device)
            if len(batch) == 1:
                logger.warning("judging item %d failed: %s: %s", batch[0], type(exc).__name__, exc)
                verdicts[batch[0]] = Verdict.failed(
                    self.judge_id,
                    VerdictState.ERROR,
                    error=f"{type(exc).__name__}: {exc}",
                    prompt_tokens=len(prompts[0]),
                )
                return
            half = len(batch) // 2
            logger.warning(
                "a batch of %d prompts failed (%s: %s); retrying in halves", len(batch), type(exc).__name__, exc
            )
            self._score_with_retry(batch[:half], by_index, verdicts)
            self._score_with_retry(batch[half:], by_index, verdicts)
            return
        latency = (time.perf_counter() - start) / len(batch)
        for i, prompt, row in zip(batch, prompts, loglik, strict=True):
            top = max(row)
            probs = [math.exp(value - top) for value in row]
            verdicts[i] = Verdict.from_probs(
                self.judge_id,
                *probs,
                prompt_tokens=len(prompt),
                completion_tokens=0,
                latency_s=latency,
            )

    def embed(self, items: Sequence[PairItem]) -> list[list[float]]:
        """The judge's final hidden state at the last token of each item's prompt, L2-normalised.

        Used as a representation of the pair for out-of-domain distances (the cascade's ``hidden_distance``
        signal). A prompt longer than the context keeps its latest tokens. One forward pass per batch, without the
        verdict continuations.
        """
        items = list(items)
        if not items:
            return []
        texts = [build_prompt(item) for item in items]
        raw_ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        keep = self.max_length - len(self._prefix_ids)
        prompts = [self._prefix_ids + list(ids)[-keep:] for ids in raw_ids]
        out: list[list[float]] = [[] for _ in items]
        batches = plan_batches([len(p) for p in prompts], self.config.max_batch_tokens, self.config.max_batch_size)
        model = self.model  # loads the weights first: device and logits_to_keep support are read from them
        with torch.inference_mode():
            for batch in batches:
                width = max(len(prompts[i]) for i in batch)
                input_ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long, device=self._device)
                attention = torch.zeros((len(batch), width), dtype=torch.long, device=self._device)
                for row, i in enumerate(batch):
                    input_ids[row, : len(prompts[i])] = torch.tensor(prompts[i], device=self._device)
                    attention[row, : len(prompts[i])] = 1
                kwargs: dict[str, Any] = {"logits_to_keep": 1} if self._keep_logits else {}
                hidden = model(
                    input_ids=input_ids, attention_mask=attention, output_hidden_states=True, use_cache=False, **kwargs
                ).hidden_states[-1]
                last = torch.tensor([len(prompts[i]) - 1 for i in batch], device=hidden.device)
                vectors = hidden[torch.arange(len(batch), device=hidden.device), last].float()
                vectors = torch.nn.functional.normalize(vectors, dim=-1).cpu().tolist()
                for i, vector in zip(batch, vectors, strict=True):
                    out[i] = vector
        return out

    # -- explanations ---------------------------------------------------------------------------------------------

    def explain(
        self,
        items: Sequence[PairItem],
        indices: Iterable[int] | None = None,
        *,
        verdicts: Sequence[Verdict] | None = None,
    ) -> list[Verdict]:
        """Verdicts with PandaLM's written reason and reference for the items at ``indices`` (all when ``None``).

        Args:
            items: The pairs.
            indices: Which items to explain; the others get their scored verdict only.
            verdicts: Verdicts already scored for ``items`` by this judge (saves the scoring pass).

        Returns:
            One verdict per item. Explained ones carry ``reason``, ``reference``, ``raw`` (the generated text),
            ``generated_winner`` and ``completion_tokens``; the scored probabilities and winner are unchanged.
        """
        items = list(items)
        if verdicts is None:
            verdicts = self.score(items)
        elif len(verdicts) != len(items):
            raise ValueError(f"got {len(verdicts)} verdicts for {len(items)} items")
        chosen = range(len(items)) if indices is None else list(indices)
        for i in chosen:
            if not 0 <= i < len(items):
                raise IndexError(f"explain index {i} out of range for {len(items)} items")
        return self._add_explanations(items, list(verdicts), chosen)

    def _explain_settings(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "num_beams": cfg.explain_num_beams,
            "repetition_penalty": cfg.explain_repetition_penalty,
            "max_new_tokens": cfg.explain_max_new_tokens,
            "early_stopping": cfg.explain_early_stopping,
            "do_sample": False,
        }

    def _add_explanations(self, items: list[PairItem], verdicts: list[Verdict], chosen: Iterable[int]) -> list[Verdict]:
        targets = sorted({i for i in chosen if verdicts[i].ok})
        if not targets:
            return verdicts
        encoded, _, _ = self._encode([items[i] for i in targets], warn=False)  # the scoring pass warned already
        prompts = {i: ids for i, ids in zip(targets, encoded, strict=True) if ids is not None}
        order = sorted(prompts, key=lambda i: -len(prompts[i]))
        size = self.config.explain_batch_size
        batches = [order[start : start + size] for start in range(0, len(order), size)]
        texts: dict[int, tuple[str, int, float]] = {}
        show = self.config.show_progress and len(batches) > 1
        with torch.inference_mode():
            for batch in tqdm(batches, desc="PandaLM explanations", unit="batch", disable=not show):
                self._generate_with_retry(batch, prompts, texts)
        mismatches = 0
        for i, (text, n_tokens, latency) in texts.items():
            parsed = parse_output(text)
            verdict = dataclasses.replace(
                verdicts[i],
                raw=text,
                reason=parsed.reason,
                reference=parsed.reference,
                generated_winner=parsed.label,
                completion_tokens=n_tokens,
                latency_s=(verdicts[i].latency_s or 0.0) + latency,
            )
            mismatches += verdict.explain_mismatch
            verdicts[i] = verdict
        unparsed = sum(verdicts[i].generated_winner is None for i in texts)
        if mismatches:
            logger.warning(
                "%d of %d explanations name a different verdict than the scored one (see Verdict.explain_mismatch)",
                mismatches,
                len(texts),
            )
        if unparsed:
            logger.warning("%d of %d explanations name no verdict; the scored verdicts stand", unparsed, len(texts))
        return verdicts

    def _generate(self, prompts: Sequence[list[int]]) -> list[tuple[str, int]]:
        """PandaLM's beam search on left-padded prompts; the decoded new text and its token count per prompt."""
        cfg = self.config
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
            attention_mask[row, width - len(prompt) :] = 1
        # Stay inside the context window: PandaLM's 512 new tokens do not always fit after a long prompt.
        max_new_tokens = max(1, min(cfg.explain_max_new_tokens, self.max_length - width))
        self.generate_calls += 1
        output = self.model.generate(  # type: ignore[operator]
            input_ids=input_ids.to(self._device),
            attention_mask=attention_mask.to(self._device),
            num_beams=cfg.explain_num_beams,
            repetition_penalty=cfg.explain_repetition_penalty,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            early_stopping=cfg.explain_early_stopping,
            pad_token_id=self._pad_id,
            eos_token_id=self._eos_id,
        )
        results = []
        for row in output[:, width:].tolist():
            if self._eos_id in row:
                row = row[: row.index(self._eos_id) + 1]
            else:
                while row and row[-1] == self._pad_id:
                    row.pop()
            results.append((str(self.tokenizer.decode(row, skip_special_tokens=True)), len(row)))
        return results

    def _generate_with_retry(
        self, batch: list[int], prompts: dict[int, list[int]], texts: dict[int, tuple[str, int, float]]
    ) -> None:
        start = time.perf_counter()
        try:
            generated = self._generate([prompts[i] for i in batch])
        except Exception as exc:  # an explanation is extra: its failure leaves the scored verdict
            _release_cached_memory(self._device)
            if len(batch) == 1:
                logger.warning(
                    "explaining item %d failed (%s: %s); keeping its scored verdict", batch[0], type(exc).__name__, exc
                )
                return
            half = len(batch) // 2
            self._generate_with_retry(batch[:half], prompts, texts)
            self._generate_with_retry(batch[half:], prompts, texts)
            return
        latency = (time.perf_counter() - start) / len(batch)
        for i, (text, n_tokens) in zip(batch, generated, strict=True):
            texts[i] = (text, n_tokens, latency)


def pandalm_judge(model: str = DEFAULT_MODEL, **config_fields: Any) -> PandaLMJudge:
    """Load a PandaLM judge; keyword arguments are :class:`PandaLMJudgeConfig` fields.

    Raises:
        TypeError: For a keyword that is not a config field (the message lists the valid ones).
    """
    unknown = sorted(set(config_fields) - set(PandaLMJudgeConfig.field_names()))
    if unknown:
        raise TypeError(f"unknown PandaLMJudgeConfig field(s) {unknown}; valid: {PandaLMJudgeConfig.field_names()}")
    return PandaLMJudge(PandaLMJudgeConfig(model=model, **config_fields))


# -- helpers ----------------------------------------------------------------------------------------------------------


def continuation_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[list[int]]:
    """Token ids of ``1\\n``, ``2\\n`` and ``Tie\\n`` as the model sees them right after a PandaLM prompt.

    Computed as ``encode(PROBE + continuation)[len(encode(PROBE)):]`` with a probe ending like every prompt.

    Raises:
        ValueError: If the tokenizer merges a continuation with the end of the prompt (then no token boundary
            separates prompt and verdict and the likelihoods would be wrong).
    """
    probe = tokenizer(_PROBE, add_special_tokens=False)["input_ids"]
    result = []
    for text in CONTINUATIONS:
        full = tokenizer(_PROBE + text, add_special_tokens=False)["input_ids"]
        if full[: len(probe)] != probe or len(full) == len(probe):
            raise ValueError(
                f"the tokenizer does not keep a token boundary between the prompt and the verdict {text!r}: "
                f"{probe[-3:]} + ... became {full[len(probe) - 3 :]}; this judge needs a LLaMA-style tokenizer"
            )
        result.append(full[len(probe) :])
    return result


def _special_prefix(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The special tokens the tokenizer puts before a text; BOS when it adds none (PandaLM was trained with BOS)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            prefix = list(full[:start])
            break
    else:  # pragma: no cover - a tokenizer that changes the text's own tokens when adding special ones
        prefix = []
    if not prefix and tokenizer.bos_token_id is not None:
        logger.info("the tokenizer adds no BOS token; prepending BOS (id %d) as PandaLM does", tokenizer.bos_token_id)
        prefix = [tokenizer.bos_token_id]
    return prefix


def _supports_logits_to_keep(model: PreTrainedModel) -> bool:
    """Whether ``model.forward`` can compute logits at chosen positions only (a 2D boolean ``logits_to_keep``)."""
    if "logits_to_keep" not in inspect.signature(model.forward).parameters:
        return False
    try:
        from transformers import modeling_utils
    except ImportError:  # pragma: no cover
        return False
    # transformers 5 slices with a per-row boolean mask; older versions only take an int or positions shared by rows.
    return hasattr(modeling_utils, "slice_logits_to_keep")


def _release_cached_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _resolve_dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return _DTYPES[name]  # type: ignore[return-value]


def _placement(config: PandaLMJudgeConfig) -> tuple[str | None, str, torch.dtype]:
    """Device map, device and dtype the model will be loaded with."""
    device_map = config.device_map
    if device_map is None and config.device is None and torch.cuda.device_count() > 1:
        device_map = "auto"
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return device_map, device, _resolve_dtype(config.dtype, "cuda" if device_map is not None else device)


def _planned_placement(config: PandaLMJudgeConfig) -> tuple[torch.device, torch.dtype]:
    """Where the weights will be (their first device) and their dtype, before they are loaded."""
    device_map, device, dtype = _placement(config)
    return torch.device("cuda" if device_map is not None else device), dtype


def _load_model(config: PandaLMJudgeConfig) -> PreTrainedModel:
    from transformers import AutoModelForCausalLM

    device_map, device, dtype = _placement(config)
    logger.info("loading judge %s (revision %s, %s) on %s", config.model, config.revision, dtype, device_map or device)
    kwargs: dict[str, Any] = {
        "revision": config.revision,
        "dtype": dtype,
        "attn_implementation": config.attn_implementation,
    }
    if device_map is not None:
        kwargs["device_map"] = device_map
    model = AutoModelForCausalLM.from_pretrained(config.model, **kwargs)
    if device_map is None:
        model.to(device)  # type: ignore[arg-type]
    return model


def _load_tokenizer(config: PandaLMJudgeConfig) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(config.model, revision=config.revision)


# Content hashes of checkpoint files, keyed by (path, size, mtime): a rewritten file is hashed again.
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        from ..data.sources import sha256_file

        _FILE_HASHES[key] = sha256_file(path)
    return _FILE_HASHES[key]


def _checkpoint_dir_sha256(directory: Path) -> str | None:
    """sha256 over the names and contents of a checkpoint folder's weight, config and tokenizer files."""
    files = sorted(
        p for p in directory.iterdir() if p.is_file() and (p.suffix in _WEIGHT_SUFFIXES or p.name in _TOKENIZER_FILES)
    )
    if not any(p.suffix in _WEIGHT_SUFFIXES for p in files):
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0{_file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _hub_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit of the locally cached snapshot of ``repo_id`` at ``revision`` (None when unknown)."""
    if revision is not None and _COMMIT.match(revision):
        return revision
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # not a valid repo id, no cache: the caller falls back to hashing weights
        return None
    if isinstance(cached, str):
        commit = Path(cached).parent.name  # .../snapshots/<commit>/config.json
        if _COMMIT.match(commit):
            return commit
    return None


def _state_dict_sha256(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}\0{data.dtype}\0{tuple(data.shape)}\n".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _weights_identity(source: str, revision: str | None, model: Callable[[], torch.nn.Module]) -> dict[str, str]:
    """What identifies the weights: local folder content hash, else Hub commit, else the loaded tensors' hash
    (``model`` is called, loading the weights, only in that last case)."""
    if source and os.path.isdir(source):
        digest = _checkpoint_dir_sha256(Path(source))
        if digest is not None:
            return {"files_sha256": digest}
    elif source:
        commit = _hub_commit(source, revision)
        if commit is not None:
            return {"commit": commit}
    logger.info("identifying the judge's weights by hashing its tensors (no local folder or Hub commit known)")
    return {"tensors_sha256": _state_dict_sha256(model())}
