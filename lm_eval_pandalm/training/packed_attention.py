"""Attention for padding-free batches that costs what the examples cost: SDPA run on each packed example in turn.

A padding-free batch is one row of concatenated examples whose position ids restart at 0 for every example. With
``attn_implementation="sdpa"``, transformers turns that row into a dense ``(T, T)`` block-diagonal mask over the whole
row, so attention costs ``T**2`` for ``T = sum(lengths)``: more than the padded batch's ``B * max(lengths)**2``, and on
CPU (no FlashAttention varlen kernel) enough to make padding-free training slower than padding. This implementation
(registered under :data:`PACKED_SDPA`) builds no mask and runs causal SDPA on each example's slice of the row, so
attention costs ``sum(length**2)``; rows without packing (padded batches, inference with a cache) go to transformers'
own SDPA unchanged.

Example boundaries come from ``cu_seq_lens_q`` when the collator gives them
(``DataCollatorWithFlattening(return_flash_attn_kwargs=True)``), else from the position ids.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch

__all__ = ["PACKED_SDPA", "register_packed_sdpa"]

PACKED_SDPA = "pandalm_packed_sdpa"
"""The ``attn_implementation`` name under which :func:`register_packed_sdpa` registers the packed attention."""


def _boundaries(query: torch.Tensor, kwargs: dict[str, Any]) -> list[int] | None:
    """Start offsets of the packed examples plus the row length; ``None`` when the row is not packed."""
    if query.shape[0] != 1:
        return None
    cu = kwargs.get("cu_seq_lens_q")
    if cu is not None:
        bounds = [int(v) for v in cu.tolist()]
    else:
        position_ids = kwargs.get("position_ids")
        if position_ids is None or position_ids.shape[-1] != query.shape[2]:
            return None
        starts = torch.nonzero(position_ids.reshape(-1) == 0).flatten().tolist()
        if not starts or starts[0] != 0:
            return None
        bounds = [*starts, query.shape[2]]
    return bounds if len(bounds) > 2 and bounds[-1] == query.shape[2] else None


def packed_sdpa_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: ``(B, H, T, D)`` in, ``(B, T, H, D)`` out."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    bounds = _boundaries(query, kwargs) if attention_mask is None else None
    if bounds is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)  # type: ignore[no-any-return]
    kwargs = {k: v for k, v in kwargs.items() if k not in ("is_causal", "position_ids")}
    parts = [
        sdpa_attention_forward(
            module, query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], None, is_causal=True, **kwargs
        )[0]
        for s, e in itertools.pairwise(bounds)
    ]
    return torch.cat(parts, dim=1), None


def _packed_sdpa_mask(
    batch_size: int,
    q_length: int,
    kv_length: int,
    q_offset: int = 0,
    kv_offset: int = 0,
    attention_mask: torch.Tensor | None = None,
    **kwargs: Any,
) -> torch.Tensor | None:
    """No mask for one unpadded row attending to itself (packed or not: the attention finds the boundaries);
    transformers' SDPA mask for everything else (padding, a cache, several rows)."""
    from transformers.masking_utils import sdpa_mask

    if batch_size == 1 and attention_mask is None and q_length == kv_length and q_offset == 0 and kv_offset == 0:
        return None
    return sdpa_mask(  # type: ignore[no-any-return]
        batch_size, q_length, kv_length, q_offset, kv_offset, attention_mask=attention_mask, **kwargs
    )


def register_packed_sdpa() -> str:
    """Register the packed attention with transformers (idempotent); returns its ``attn_implementation`` name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(PACKED_SDPA, _packed_sdpa_mask)
    return PACKED_SDPA
