"""What a judgment costs: per-model token prices and a token estimate for text whose tokens were not counted.

Part of the core (standard library only). API judges price every call with :func:`cost_usd`; a cascade prices the
stages it replays or has not called yet with :func:`estimate_tokens`, and says that the figure is an estimate.

Prices are configuration, not facts this package vouches for: providers change them. :data:`DEFAULT_PRICES` holds
list prices in US dollars per million tokens as published by OpenAI for the models PandaLM and LLMBar used; a judge
config may give its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_PRICES", "Price", "cost_usd", "estimate_tokens", "price_for"]


@dataclass(frozen=True)
class Price:
    """Price of one model's tokens, in US dollars per million tokens."""

    input_per_mtok: float
    """Dollars per million prompt (input) tokens."""
    output_per_mtok: float
    """Dollars per million completion (output) tokens."""

    def __post_init__(self) -> None:
        for name in ("input_per_mtok", "output_per_mtok"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"Price.{name} must be a finite number >= 0 (dollars per 1M tokens), got {value!r}")


DEFAULT_PRICES: Mapping[str, Price] = {
    # OpenAI list prices (USD per 1M tokens) of the models in PandaLM's and LLMBar's recordings.
    "gpt-4": Price(30.0, 60.0),
    "gpt-4-0613": Price(30.0, 60.0),
    "gpt-4-turbo": Price(10.0, 30.0),
    "gpt-4o": Price(2.5, 10.0),
    "gpt-4o-mini": Price(0.15, 0.6),
    "gpt-3.5-turbo": Price(0.5, 1.5),
}
"""Model name to :class:`Price`, used when a judge config gives none."""


def price_for(model: str, prices: Mapping[str, Price] | None = None) -> Price | None:
    """The price of ``model`` from ``prices`` (default :data:`DEFAULT_PRICES`); ``None`` when unknown.

    >>> price_for("gpt-4").input_per_mtok, price_for("my-local-model") is None
    (30.0, True)
    """
    table = DEFAULT_PRICES if prices is None else prices
    return table.get(model)


def cost_usd(price: Price, prompt_tokens: int, completion_tokens: int) -> float:
    """Dollars for one call.

    >>> round(cost_usd(Price(30.0, 60.0), 1000, 10), 6)
    0.0306
    """
    if prompt_tokens < 0 or completion_tokens < 0:
        raise ValueError(f"token counts must be >= 0, got {prompt_tokens} and {completion_tokens}")
    return (prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) / 1_000_000


def estimate_tokens(text: str) -> int:
    """A rough token count for English text (about four characters per token, at least one token).

    Use it only where no tokenizer count exists (recordings without usage, ``--dry-run`` estimates), and report the
    result as an estimate.

    >>> estimate_tokens("Which response is better?")
    7
    """
    return max(1, math.ceil(len(text) / 4))
