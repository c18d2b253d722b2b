"""Building a :class:`~.judge.CascadeJudge` from its config: each stage's judge through ``make_judge`` (so through
the judgment cache when the backend is cacheable), and the reference set of the distance signals."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...judge import Judge
from .config import CascadeConfig, PolicyConfig
from .judge import CascadeJudge
from .stages import Stage

__all__ = ["build_cascade", "with_policy"]


def build_cascade(
    config: CascadeConfig,
    *,
    data_dir: str | Path | None = None,
    cache: str | Path | bool | None = None,
    judges: Sequence[Judge] | None = None,
) -> CascadeJudge:
    """The cascade a config describes.

    Args:
        config: The cascade's settings.
        data_dir: Data mirror (replay stages and the reference benchmark read from it).
        cache: Judgment cache setting handed to every stage's :func:`~lm_eval_pandalm.judges.make_judge`.
        judges: Already built stage judges to use instead of building them (same order as the stages).
    """
    from ...judges.registry import make_judge

    if judges is not None and len(judges) != len(config.stage_configs):
        raise ValueError(f"{len(judges)} judges given for {len(config.stage_configs)} stages")
    stages = []
    for i, stage_config in enumerate(config.stage_configs):
        judge = judges[i] if judges is not None else make_judge(stage_config.judge, data_dir=data_dir, cache=cache)
        stages.append(Stage(config.stage_name(i), judge, stage_config))
    reference_items = None
    if config.reference is not None and any(
        name in ("tfidf_distance", "hidden_distance") for name in config.signal_names()
    ):
        from .reference import load_reference_items

        reference_items = load_reference_items(config.reference, data_dir)
    return CascadeJudge(
        stages,
        config.policy_config,
        config.signal_names(),
        orders=config.orders,
        verdict=config.verdict,
        budget=config.budget_config,
        reference_items=reference_items,
        reference_name=config.reference,
        name=config.name,
    )


def with_policy(cascade: CascadeJudge, policy: PolicyConfig, *, budget: bool = True) -> CascadeJudge:
    """A fresh cascade over the same stage judges and signals with another policy (calibration, sweeps)."""
    reference = None
    if cascade._tfidf is not None:
        reference = cascade._tfidf
    signals = list(cascade.signal_names)
    for router in policy.routers:
        for name in router.features:
            if name not in signals:
                signals.append(name)
    if policy.score != "router" and policy.score not in signals:
        signals.append(policy.score)
    fresh = CascadeJudge(
        cascade.stages,
        policy,
        signals,
        orders=cascade.orders,
        verdict=cascade.verdict_mode,
        budget=cascade.budget if budget else None,
        reference_items=[],
        reference_name=cascade.reference_name,
        name=cascade.judge_id,
    )
    # Share the fitted reference sets and the text signals already computed instead of computing them again.
    fresh._tfidf = reference
    fresh._hidden = cascade._hidden
    if fresh._static == cascade._static:
        fresh._static_cache = cascade._static_cache
    return fresh
