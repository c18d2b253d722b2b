"""Configuration of an escalation cascade (YAML ``type: cascade``), as dataclasses.

A cascade config is one mapping; its nested parts (``stages``, ``policy``, ``budget``) are mappings too, each filled
into its own dataclass by :func:`~lm_eval_pandalm.config.dataclass_from_mapping`, so a misspelt key anywhere is an
error naming the part (``stages[1]``, ``policy``...) and listing the valid keys. Example::

    type: cascade
    stages:
      - {name: local, judge: "pandalm:WeOpenML/PandaLM-7B-v1"}
      - {name: gpt-4, judge: gpt4.yaml, model: gpt-4}
    policy: {type: threshold, score: consistent, thresholds: [1.0]}
    budget: {max_usd: 20}

Nothing here imports scikit-learn, scipy or a judge backend: checking a config is cheap.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...config import ConfigError, dataclass_from_mapping
from ...pricing import Price, price_for

__all__ = [
    "ON_EXHAUSTED",
    "ORDERS",
    "POLICY_TYPES",
    "VERDICT_MODES",
    "BudgetConfig",
    "CascadeConfig",
    "PolicyConfig",
    "RouterModel",
    "StageConfig",
]

ORDERS = ("both", "single")
"""``both``: every stage an item reaches judges it in both orders (the signals see both); ``single``: only the
order asked for (cheaper, no both-order signals)."""
VERDICT_MODES = ("per-order", "average")
"""``per-order``: the deciding stage's verdict on the order asked for; ``average``: its two orders averaged (the
cascade is then order-invariant; needs ``orders: both``)."""
POLICY_TYPES = ("threshold", "budget", "router", "calibrated")
ON_EXHAUSTED = ("keep", "fail")


def _finite(name: str, value: float, low: float | None = None, high: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be between {low} and {high}, got {value!r}")


@dataclass
class StageConfig:
    """One stage of a cascade: a judge, and what its judgments cost."""

    judge: str | dict[str, Any] = field(
        metadata={"help": "The stage's judge: a SPEC (pandalm:..., replay:..., a YAML file) or an inline judge config."}
    )
    name: str | None = field(default=None, metadata={"help": "Name in reports; default: the judge's id."})
    model: str | None = field(
        default=None, metadata={"help": "API model name whose list price (lm_eval_pandalm.pricing) prices the stage."}
    )
    price: dict[str, float] | None = field(
        default=None,
        metadata={"help": "Own price {input_per_mtok, output_per_mtok} in USD per 1M tokens; overrides 'model'."},
    )
    paid: bool | None = field(
        default=None, metadata={"help": "Count the stage's judgments as API calls; default: when it has a price."}
    )
    prompt_overhead_tokens: int = field(
        default=0,
        metadata={"help": "Tokens of the judge's own instructions around the pair, added to token estimates."},
    )
    completion_tokens: int = field(
        default=1, metadata={"help": "Completion tokens assumed when a verdict carries neither a count nor its text."}
    )
    context_tokens: int | None = field(
        default=None,
        metadata={"help": "The judge's context window, for the over_context signal; default: the judge's own."},
    )

    def __post_init__(self) -> None:
        if not isinstance(self.judge, (str, dict)) or not self.judge:
            raise ValueError(f"judge must be a SPEC string or a judge config mapping, got {self.judge!r}")
        if self.price is not None:
            unknown = set(self.price) - {"input_per_mtok", "output_per_mtok"}
            if unknown or len(self.price) != 2:
                raise ValueError(f"price needs exactly input_per_mtok and output_per_mtok, got {sorted(self.price)}")
            Price(**self.price)  # validates the numbers
        elif self.model is not None and price_for(self.model) is None:
            raise ValueError(
                f"model {self.model!r} has no list price in lm_eval_pandalm.pricing; give price: "
                "{input_per_mtok: ..., output_per_mtok: ...}"
            )
        for name in ("prompt_overhead_tokens", "completion_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.context_tokens is not None and self.context_tokens < 1:
            raise ValueError(f"context_tokens must be at least 1, got {self.context_tokens}")

    def resolved_price(self) -> Price | None:
        """The stage's price: its own, else its model's list price, else ``None`` (free)."""
        if self.price is not None:
            return Price(**self.price)
        return price_for(self.model) if self.model is not None else None


@dataclass
class RouterModel:
    """A fitted logistic regression over one stage's signals: the probability that the stage's verdict is right.

    Written by ``pandalm calibrate``; plain numbers, so a calibrated config needs no pickle and no scikit-learn to run.
    """

    features: list[str] = field(metadata={"help": "Signal names, in the order of the coefficients."})
    coef: list[float] = field(metadata={"help": "One coefficient per feature (on standardised features)."})
    intercept: float = field(metadata={"help": "The intercept."})
    mean: list[float] = field(metadata={"help": "Per-feature mean used to standardise (and to fill a missing value)."})
    scale: list[float] = field(metadata={"help": "Per-feature standard deviation used to standardise."})

    def __post_init__(self) -> None:
        n = len(self.features)
        if not n or any(len(getattr(self, name)) != n for name in ("coef", "mean", "scale")):
            raise ValueError("router: features, coef, mean and scale must be non-empty lists of the same length")
        for name in ("coef", "mean", "scale"):
            for value in getattr(self, name):
                _finite(f"router {name}", value)
        _finite("router intercept", self.intercept)
        if any(value <= 0 for value in self.scale):
            raise ValueError("router scale values must be > 0")

        # coef * (x - mean) / scale, folded into one weight and offset per feature (predict runs for every item).
        columns = zip(self.features, self.coef, self.mean, self.scale, strict=True)
        self._terms = [(name, coef / scale, mean) for name, coef, mean, scale in columns]

    def to_mapping(self) -> dict[str, Any]:
        """The fields, as a config mapping (what ``pandalm calibrate`` writes)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def predict(self, values: Mapping[str, Any]) -> float:
        """P(verdict right) for one item's signal values (a missing value counts as the calibration mean)."""
        z = self.intercept
        for name, weight, mean in self._terms:
            value = values.get(name)
            if value is not None:
                z += weight * (value - mean)
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


@dataclass
class PolicyConfig:
    """How a cascade decides, per item and stage, whether to go on to the next stage.

    Every policy ranks items by a confidence *score* (a signal, or the router's probability that the stage is right);
    a failed verdict always escalates whatever the policy says.
    """

    type: str = field(
        default="threshold",
        metadata={
            "help": "threshold: keep where score >= threshold; budget: escalate the least confident fraction / "
            "dollars; router: threshold on the learned router; calibrated: thresholds fitted by pandalm calibrate."
        },
    )
    score: str = field(
        default="consistent",
        metadata={"help": "Confidence score: a signal name (entropies count as 1 - value) or 'router'."},
    )
    thresholds: list[float | None] | None = field(
        default=None,
        metadata={"help": "Per non-final stage, the least score that keeps the stage's verdict (null: keep none)."},
    )
    fraction: float | None = field(
        default=None, metadata={"help": "budget: escalate at most this fraction of each batch, least confident first."}
    )
    max_usd: float | None = field(
        default=None, metadata={"help": "budget: escalate, least confident first, until this many dollars per call."}
    )
    router: list[dict[str, Any]] | None = field(
        default=None, metadata={"help": "Per non-final stage, a fitted router (written by pandalm calibrate)."}
    )
    alpha: float | None = field(default=None, metadata={"help": "calibrated: allowed disagreement on kept items."})
    delta: float | None = field(default=None, metadata={"help": "calibrated: allowed probability of a failed bound."})
    calibration: dict[str, Any] | None = field(
        default=None, metadata={"help": "What pandalm calibrate measured (informational; written by it)."}
    )
    routers: list[RouterModel] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.type not in POLICY_TYPES:
            raise ValueError(f"policy type must be one of {', '.join(POLICY_TYPES)}, got {self.type!r}")
        if self.type == "budget" and self.fraction is None and self.max_usd is None:
            raise ValueError("a budget policy needs fraction (0..1) or max_usd")
        if self.fraction is not None:
            _finite("policy fraction", self.fraction, 0.0, 1.0)
        if self.max_usd is not None:
            _finite("policy max_usd", self.max_usd, 0.0)
        for name in ("alpha", "delta"):
            value = getattr(self, name)
            if value is not None:
                _finite(f"policy {name}", value, 0.0, 1.0)
        if self.type == "calibrated" and (self.alpha is None or self.delta is None or self.thresholds is None):
            raise ValueError(
                "a calibrated policy needs alpha, delta and thresholds; write it with pandalm calibrate "
                "(--alpha A --delta D)"
            )
        if self.type == "router" or self.score == "router":
            if not self.router:
                raise ValueError("policy score 'router' needs fitted routers; write them with pandalm calibrate")
            self.score = "router"
        if self.router:
            self.routers = [
                dataclass_from_mapping(RouterModel, model, source=f"policy router[{i}]")
                for i, model in enumerate(self.router)
            ]
        if self.thresholds is not None:
            for value in self.thresholds:
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise ValueError(f"policy thresholds must be numbers (or null: keep none), got {value!r}")

    def threshold(self, stage: int) -> float | None:
        """The least score that keeps stage ``stage``'s verdict; ``None`` keeps nothing.

        Without ``thresholds``, a threshold policy keeps a score of 1 (a boolean signal that holds, e.g. both
        orders agree) and a router policy a probability of 0.5.
        """
        if self.thresholds is not None:
            return self.thresholds[stage]
        return 0.5 if self.score == "router" else 1.0


@dataclass
class BudgetConfig:
    """A hard spending cap: once reached, the cascade stops paying."""

    max_usd: float | None = field(
        default=None, metadata={"help": "Most dollars this cascade spends over its lifetime (estimated before paying)."}
    )
    max_escalated_fraction: float | None = field(
        default=None, metadata={"help": "Most fraction of each batch's items sent beyond the first stage."}
    )
    on_exhausted: str = field(
        default="keep",
        metadata={
            "help": "keep: an item the cap stops keeps the cheaper verdict, marked 'not escalated: budget'; "
            "fail: it gets state over_budget."
        },
    )

    def __post_init__(self) -> None:
        if self.on_exhausted not in ON_EXHAUSTED:
            raise ValueError(f"budget on_exhausted must be one of {', '.join(ON_EXHAUSTED)}, got {self.on_exhausted!r}")
        if self.max_usd is not None:
            _finite("budget max_usd", self.max_usd, 0.0)
        if self.max_escalated_fraction is not None:
            _finite("budget max_escalated_fraction", self.max_escalated_fraction, 0.0, 1.0)


DEFAULT_SIGNALS = (
    "max_prob",
    "margin",
    "entropy",
    "entropy_both",
    "consistent",
    "stage_agreement",
    "over_context",
    "length_ratio",
    "picked_longer",
    "instruction_overlap_gap",
    "has_code",
    "has_math",
    "non_english",
)
"""Signals recorded when a config names none: every signal that needs no fitted reference set."""


@dataclass
class CascadeConfig:
    """An escalation cascade (YAML ``type: cascade``): ordered stages, and a policy deciding per item whether to go
    on to the next stage."""

    stages: list[Any] = field(
        metadata={"help": "Two or more stages, cheapest first: each a SPEC string or a mapping of StageConfig fields."}
    )
    policy: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "PolicyConfig fields (type, score, thresholds, ...)."}
    )
    budget: dict[str, Any] | None = field(default=None, metadata={"help": "BudgetConfig fields: a hard spending cap."})
    signals: list[str] | None = field(
        default=None, metadata={"help": "Signals to record per item and stage; default: all that need no reference."}
    )
    reference: str | None = field(
        default=None,
        metadata={"help": "Benchmark (or file:PATH) whose instructions are the reference set of tfidf_distance."},
    )
    orders: str = field(default="both", metadata={"help": "both: every stage judges both orders; single: one order."})
    verdict: str = field(
        default="per-order", metadata={"help": "per-order: the deciding stage's verdict per order; average: averaged."}
    )
    name: str | None = field(default=None, metadata={"help": "The cascade's id in reports; default: its stages."})
    stage_configs: list[StageConfig] = field(init=False, default_factory=list)
    policy_config: PolicyConfig = field(init=False)
    budget_config: BudgetConfig | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.stages, list) or len(self.stages) < 2:
            raise ValueError("a cascade needs a list of at least two stages, cheapest first")
        self.stage_configs = []
        for i, stage in enumerate(self.stages):
            data = {"judge": stage} if isinstance(stage, str) else stage
            if not isinstance(data, Mapping):
                raise ValueError(f"stages[{i}] must be a SPEC string or a mapping, got {type(stage).__name__}")
            if "judge" not in data and "type" in data:
                data = {"judge": dict(data)}  # an inline judge config written as the stage itself
            self.stage_configs.append(dataclass_from_mapping(StageConfig, data, source=f"stages[{i}]"))
        names = [self.stage_name(i) for i in range(len(self.stage_configs))]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must differ (give each a name), got {names}")
        self.policy_config = dataclass_from_mapping(PolicyConfig, self.policy, source="policy")
        n_deciding = len(self.stage_configs) - 1
        for what in ("thresholds", "routers"):
            values = getattr(self.policy_config, what)
            if values and len(values) != n_deciding:
                raise ValueError(
                    f"policy {what.rstrip('s')}s: one per non-final stage ({n_deciding}), got {len(values)}"
                )
        self.budget_config = (
            None if self.budget is None else dataclass_from_mapping(BudgetConfig, self.budget, source="budget")
        )
        if self.orders not in ORDERS:
            raise ValueError(f"orders must be one of {', '.join(ORDERS)}, got {self.orders!r}")
        if self.verdict not in VERDICT_MODES:
            raise ValueError(f"verdict must be one of {', '.join(VERDICT_MODES)}, got {self.verdict!r}")
        if self.verdict == "average" and self.orders != "both":
            raise ValueError("verdict: average needs orders: both")
        from .signals import check_signal_names

        check_signal_names(self.signal_names(), reference=self.reference)

    def stage_name(self, index: int) -> str:
        """The name of stage ``index``: its own, else its judge SPEC (a mapping is named by its position)."""
        stage = self.stage_configs[index]
        if stage.name:
            return stage.name
        return stage.judge if isinstance(stage.judge, str) else f"stage{index}"

    def signal_names(self) -> list[str]:
        """The signals to record: the configured ones, plus any the policy's score or routers read."""
        names = list(self.signals) if self.signals is not None else list(DEFAULT_SIGNALS)
        needed = [self.policy_config.score] if self.policy_config.score != "router" else []
        for router in self.policy_config.routers:
            needed.extend(router.features)
        for name in needed:
            if name not in names:
                names.append(name)
        return names


def parse_cascade_mapping(data: Mapping[str, Any], *, source: str = "cascade config") -> CascadeConfig:
    """A :class:`CascadeConfig` from a mapping (``type: cascade`` allowed, other backends refused)."""
    data = dict(data)
    kind = data.pop("type", "cascade")
    if kind != "cascade":
        raise ConfigError(f"{source}: type must be 'cascade', got {kind!r}")
    return dataclass_from_mapping(CascadeConfig, data, source=source)
