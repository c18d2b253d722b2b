"""Verdict likelihoods of a prompt longer than the judge's context, left-truncated exactly as lm-eval's ``hf`` model
truncates it in the ``pandalm_judge_*`` tasks, so that ``pandalm meta --truncation left`` and those tasks agree.

lm-eval scores a continuation by ``(context + continuation)[-(max_length + 1):]`` (dropping the earliest tokens, BOS
first, separately for each continuation, so a longer continuation keeps less of the prompt), and moves the prompt's
trailing whitespace (PandaLM's final ``\\n``) into the continuation. Here each of the three continuations is one row
of a left-padded batch cut the same way, and its log-likelihood is the sum over the same tokens lm-eval sums.
Only over-long prompts take this path; the rest keep the packed single-row scoring of
:mod:`~lm_eval_pandalm.judges.pandalm_local`, whose numbers lm-eval's agree with when nothing is cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["left_truncated_loglik"]


def left_truncated_loglik(
    model: Any,
    prompt_ids: Sequence[int],
    continuations: Sequence[Sequence[int]],
    moved: int,
    max_length: int,
    pad_id: int,
    device: torch.device,
) -> list[float]:
    """Log-likelihood of each continuation after ``prompt_ids``, cut to the context as lm-eval cuts it.

    Args:
        model: A causal LM.
        prompt_ids: The whole prompt's token ids, special prefix (BOS) included.
        continuations: Token ids of each continuation (``1\\n``, ``2\\n``, ``Tie\\n``).
        moved: How many of the prompt's last tokens lm-eval counts as part of the continuation (its trailing
            whitespace).
        max_length: The judge's context in tokens.
        pad_id: Padding token id.
        device: Where the model's inputs go.

    Returns:
        One log-likelihood per continuation (float), lm-eval's numbers for the same tokens.
    """
    rows, scored = [], []
    for continuation in continuations:
        sequence = (list(prompt_ids) + list(continuation))[-(max_length + 1) :]
        rows.append(sequence[:-1])
        scored.append(sequence[len(sequence) - (moved + len(continuation)) :])  # the tokens lm-eval sums
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        input_ids[r, width - len(row) :] = torch.tensor(row)
        attention[r, width - len(row) :] = 1
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    keep = max(len(tokens) for tokens in scored)
    logits = model(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        position_ids=positions.to(device),
        use_cache=False,
    ).logits[:, -keep:]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    out = []
    for r, tokens in enumerate(scored):
        n = len(tokens)
        picked = logprobs[r, keep - n :].gather(-1, torch.tensor(tokens, device=logprobs.device)[:, None])
        out.append(float(picked.sum()))
    return out
