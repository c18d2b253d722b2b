"""The lm-eval task class of ``pandalm_pairwise`` and of any task judged by the pandalm judge filter.

lm-eval builds a task's filters only when it applies them, after generation; this class checks the judges its judge
filters name when the task is built, before generation, so that a missing or misspelt judge fails in seconds. The
judge is the filter's ``judge`` option, or, when that is a template such as ``"{{ judge }}"`` (``pandalm_pairwise``),
the ``judge`` option of ``--metadata`` (default ``pandalm:WeOpenML/PandaLM-7B-v1``).

lm-eval dumps each task's config into the results JSON (``configs``). A plain task would show the judge filter's
templates (``judge: "{{ judge }}"``) and nothing about the judge that actually ran. After its filters have run, this
task records what the judge filter judged (SPEC, resolved judge id and fingerprint, protocol, baseline, prompt
template hash, package version, outcome counts; see :func:`~lm_eval_pandalm.harness.judge_filter.take_records`) in
its ``metadata`` under ``pandalm_judging``, and replaces the filter's ``judge`` and ``protocol`` templates in the
dumped ``filter_list`` by the values they rendered to; its metric functions are dumped by name, not by source
(:func:`~lm_eval_pandalm.harness.registration.dump_config_with_names`). The cost metrics of
:mod:`~lm_eval_pandalm.harness.cascade_metrics` are left out of a document's scores where they do not apply (NaN: the
judge is no cascade, or does not say what it cost), so a run without a cascade reports no ``pandalm_escalated`` at
all rather than NaN. Name it in a task YAML with
``class: !function lm_eval_pandalm.harness.pairwise_task.PandaLMPairwiseTask`` (your own judged tasks can too).
"""

from __future__ import annotations

import copy
import math
from typing import Any

from lm_eval.api.task import ConfigurableTask

from .cascade_metrics import METRICS as COST_METRICS
from .judge_filter import current_task, take_records
from .registration import dump_config_with_names

__all__ = ["PandaLMPairwiseTask"]

_RESOLVED = ("judge", "protocol")


class PandaLMPairwiseTask(ConfigurableTask):
    """A generation task judged by the pandalm judge filter, whose dumped config records the judge that ran."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        config = dict(config or {})
        config.pop("class", None)  # lm-eval's task factory passes the key that named this class along
        # Before the dataset and long before generation; a judge-free variant (pandalm_pairwise_generate) has no
        # judge filter and checks nothing.
        from .judging import validate_judge_spec

        for spec in _judges(config.get("filter_list"), config.get("metadata") or {}):
            validate_judge_spec(spec)
        super().__init__(config=config, **kwargs)

    def dump_config(self) -> dict[str, Any]:
        """lm-eval's dump of the config, with the metric functions named rather than quoted."""
        return dump_config_with_names(self.config)

    def process_results(self, doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
        """lm-eval's per-document scores, less the cost metrics that do not apply to this judge (NaN)."""
        scores = super().process_results(doc, results)
        return {
            name: value
            for name, value in scores.items()
            if not (name in COST_METRICS and isinstance(value, float) and math.isnan(value))
        }

    def apply_filters(self) -> list[Any] | None:
        """Run the filters (judging happens here), then record what judged the task in its config."""
        take_records()  # whatever an earlier task left is not ours
        token = current_task.set(self.config.task)
        try:
            result = super().apply_filters()
        finally:
            current_task.reset(token)
        records = take_records()
        if records:
            metadata = dict(self._config.metadata or {})
            metadata["pandalm_judging"] = records
            self._config.metadata = metadata
            self._config.filter_list = _resolved_filter_list(self._config.filter_list, records)
        return result


def _judge_steps(filter_list: Any) -> list[dict[str, Any]]:
    """The pandalm judge filter's steps in a task's filter list."""
    if not isinstance(filter_list, list):
        return []
    return [
        step
        for pipeline in filter_list
        if isinstance(pipeline, dict)
        for step in pipeline.get("filter", [])
        if isinstance(step, dict) and "PandaLMJudgeFilter" in str(step.get("function", ""))
    ]


def _judges(filter_list: Any, metadata: dict[str, Any]) -> list[str]:
    """The judge SPECs a task's judge filters will use: plain options as they are, templates from ``--metadata``."""
    from .judging import DEFAULT_JUDGE

    specs = []
    for step in _judge_steps(filter_list):
        option = step.get("judge", DEFAULT_JUDGE)
        if isinstance(option, str) and "{" not in option:
            specs.append(option)
        else:
            from .pairwise import parse_options

            specs.append(parse_options(metadata).judge)
    return list(dict.fromkeys(specs))


def _resolved_filter_list(filter_list: Any, records: list[dict[str, Any]]) -> Any:
    """The filter list with the judge filter's ``judge`` / ``protocol`` templates replaced by what they rendered to
    (when every document rendered the same value)."""
    if not isinstance(filter_list, list):
        return filter_list
    values = {name: {record[name] for record in records} for name in _RESOLVED}
    resolved = copy.deepcopy(filter_list)
    for step in _judge_steps(resolved):
        for name in _RESOLVED:
            if len(values[name]) == 1 and isinstance(step.get(name), str) and "{" in step[name]:
                step[name] = next(iter(values[name]))
    return resolved
