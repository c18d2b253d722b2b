"""Register the package's filter, metrics, aggregations and model with lm-eval's registries, safely.

lm-eval 0.4.13 fills its registries lazily: ``get_model`` imports ``lm_eval.models`` only while the model registry is
empty, and ``get_metric`` imports ``lm_eval.api.metrics`` only while the metric registry is empty. Registering one of
ours into an empty registry first would therefore hide every built-in. :func:`register` imports lm-eval's own
modules first and then adds our names, skipping names that are already taken, so it changes nothing for lm-eval's own
tasks (``tests/test_harness_registration.py`` runs lm-eval task-manager checks to show it).

Task YAMLs of this package reference everything by ``!function lm_eval_pandalm...`` paths, so they work whether or
not this registration ran; the names are for users' own YAMLs and for ``--model pandalm-replay``.
"""

from __future__ import annotations

import logging
from typing import Any

from ..task_configs import tasks_dir

__all__ = ["FILTER_NAME", "MODEL_NAME", "dump_config_with_names", "register", "tasks_dir"]

logger = logging.getLogger(__name__)

FILTER_NAME = "pandalm_judge"
"""Registry name of :class:`lm_eval_pandalm.harness.judge_filter.PandaLMJudgeFilter`."""
MODEL_NAME = "pandalm-replay"
"""Registry name of :class:`lm_eval_pandalm.harness.replay_model.PandaLMReplayLM`."""

_registered = False


def register() -> None:
    """Add the package's names to lm-eval's registries (idempotent; built-ins are loaded first)."""
    global _registered
    if _registered:
        return
    # Built-ins first: see the module docstring for why the order matters.
    import lm_eval.api.metrics
    import lm_eval.filters
    import lm_eval.models  # noqa: F401
    from lm_eval.api import registry

    from . import cascade_metrics
    from .judge_filter import PandaLMJudgeFilter
    from .meta_tasks import AGGREGATIONS
    from .replay_model import PandaLMReplayLM
    from .winrate import HIGHER_IS_BETTER, METRICS

    if FILTER_NAME not in registry.filter_registry:
        registry.register_filter(FILTER_NAME)(PandaLMJudgeFilter)
    for name, aggregation in AGGREGATIONS.items():
        if name not in registry.aggregation_registry:
            registry.register_aggregation(name)(aggregation)
    directions = {**HIGHER_IS_BETTER, **cascade_metrics.HIGHER_IS_BETTER}
    for name, metric in {**METRICS, **cascade_metrics.METRICS}.items():
        if name not in registry.metric_registry:
            registry.register_metric(metric=name, higher_is_better=directions[name], aggregation="nanmean")(metric)
    if MODEL_NAME not in registry.model_registry:
        registry.register_model(MODEL_NAME)(PandaLMReplayLM)
    _registered = True
    logger.debug("registered %s, %s and %d metrics with lm-eval", FILTER_NAME, MODEL_NAME, len(METRICS))


def _function_name(key: str, value: Any) -> Any:
    if not callable(value):
        return value
    if key == "aggregation":
        from lm_eval.api import registry

        # The registered name, where there is one, so that the dumped config resolves again.
        for name, registered in registry.AGGREGATION_REGISTRY.items():
            if registered is value:
                return name
    # lm-eval names a metric given as a function by its __name__ (the key of its results and per-sample values).
    return getattr(value, "__name__", str(value))


def dump_config_with_names(config: Any) -> dict[str, Any]:
    """A task config as lm-eval dumps it into the results' ``configs``, with metric functions named, not quoted.

    lm-eval's ``TaskConfig.to_dict`` writes a ``metric`` or ``aggregation`` given as a function (``!function ...``)
    as the function's source code; its W&B and Zeno loggers then look that source up as a metric name and fail. Here
    each is its name: a metric's ``__name__`` (the key lm-eval gives its values), an aggregation's registered name,
    else its ``__name__``. The other fields are as lm-eval dumps them.
    """
    out: dict[str, Any] = config.to_dict()
    if isinstance(config.metric_list, list):
        out["metric_list"] = [
            {key: _function_name(key, value) for key, value in entry.items()} if isinstance(entry, dict) else entry
            for entry in config.metric_list
        ]
    return out
