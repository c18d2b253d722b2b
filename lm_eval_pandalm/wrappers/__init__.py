"""Wrappers that are themselves judges: judging in both orders, and caching judgments on disk."""

from __future__ import annotations

from .both_orders import RULES, BothOrdersJudge, OrderedJudgment, both_orders, combine_orders
from .cache import (
    CACHEABLE_STATES,
    CachedJudge,
    JudgmentCache,
    cache_enabled,
    cached,
    default_cache_path,
    maybe_cached,
)

__all__ = [
    "CACHEABLE_STATES",
    "RULES",
    "BothOrdersJudge",
    "CachedJudge",
    "JudgmentCache",
    "OrderedJudgment",
    "both_orders",
    "cache_enabled",
    "cached",
    "combine_orders",
    "default_cache_path",
    "maybe_cached",
]
