"""``pandalm score``'s outputs, in lm-eval's own formats: a results JSON and a judged samples file per task.

The results JSON has lm-eval's layout (``results``, ``group_subtasks``, ``configs``, ``versions``, ``n-shot``,
``higher_is_better``, ``n-samples``, ``config``, ...), so ``lm_eval.utils.make_table`` and lm-eval's loggers read it;
what the generating run recorded (its model, model arguments, task config, version, n-shot and original sample
counts) is carried over from its ``results_<date>.json`` when that file lies beside the samples. A stderr lm-eval
cannot compute is ``"N/A"`` (lm-eval's own spelling) and a metric with no value is ``null``, with the reason under
``pandalm_score.null_metrics``: the file is strict JSON.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..files import atomic_output
from ..judge import Judge
from .judging import JudgmentSummary, judging_record, summary_metrics
from .winrate import AGGREGATION, HIGHER_IS_BETTER, METRICS

__all__ = ["FILTER_NAME", "write_outputs"]

logger = logging.getLogger(__name__)

FILTER_NAME = "pandalm"
"""Filter key of the written metrics (the name the ``pandalm_pairwise`` task gives its judge filter)."""

_NULL_REASONS = {
    "pandalm_consistency": "no document was judged in both orders with both orders answered (first-order protocol, "
    "or every judgment failed)",
}
_RUN_INFO = ("config", "git_hash", "model_name", "model_name_sanitized", "model_source", "transformers_version")
"""Keys of the generating run's results JSON that describe the model and the run, carried over as they are."""
_DEFAULT_NULL_REASON = "every judgment failed: see pandalm_failed and the judging summary"


def _generating_results(sample_path: Path, date: str | None) -> dict[str, Any]:
    """The generating run's results JSON (same folder, same date stamp as the samples file), or ``{}``."""
    if date is None:
        return {}
    path = sample_path.with_name(f"results_{date}.json")
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning(
            "cannot read the generating run's results %s (%s); its model info is not carried over", path, exc
        )
        return {}
    return data if isinstance(data, dict) else {}


def _aggregate(summaries: Sequence[JudgmentSummary], bootstrap_iters: int) -> tuple[dict[str, Any], dict[str, str]]:
    """lm-eval's own ``nanmean`` and its bootstrap stderr per metric; and why a metric is null."""
    from lm_eval.api.metrics import nanmean, stderr_for_metric

    per_doc = [summary_metrics(s) for s in summaries]
    out: dict[str, Any] = {}
    nulls: dict[str, str] = {}
    for name in METRICS:
        values = [metrics[name.removeprefix("pandalm_")] for metrics in per_doc]
        known = [v for v in values if not math.isnan(v)]
        value = float(nanmean(values)) if known else None
        stderr: Any = "N/A"
        stderr_fn = stderr_for_metric(nanmean, bootstrap_iters)
        if value is not None and stderr_fn is not None and len(known) > 1:
            computed = float(stderr_fn(values))
            stderr = computed if math.isfinite(computed) else "N/A"
        if value is None:
            nulls[name] = _NULL_REASONS.get(name, _DEFAULT_NULL_REASON)
        out[f"{name},{FILTER_NAME}"] = value
        out[f"{name}_stderr,{FILTER_NAME}"] = stderr
    return out, nulls


def _judged_sample(row: Mapping[str, Any], summary: JudgmentSummary) -> dict[str, Any]:
    """One line of lm-eval's samples format with the judgment as the filtered response and the metrics' values."""
    sample = dict(row)
    # The generating run's own metric values (e.g. an in-run judge's, or NaN for metrics it could not compute) are
    # not this scoring's: drop them, so that only the values computed here are in the line.
    for name in row.get("metrics") or ():
        if isinstance(name, str):
            sample.pop(name, None)
    sample["filter"] = FILTER_NAME
    sample["filtered_resps"] = [summary.to_json()]
    sample["metrics"] = list(METRICS)
    for name, value in summary_metrics(summary).items():
        sample[f"pandalm_{name}"] = None if math.isnan(value) else value
    return sample


def write_outputs(
    sets: Sequence[Any],
    summaries: Mapping[str, list[JudgmentSummary]],
    out_dir: Path,
    *,
    judge_spec: str,
    judge: Judge,
    protocol: str,
    baseline: str | None,
    bootstrap_iters: int,
) -> Any:
    """Write ``results_<date>.json`` and one ``samples_<task>_<date>.jsonl`` per task into ``out_dir``.

    Returns:
        A :class:`~lm_eval_pandalm.harness.score.ScoreResult`.
    """
    from .score import ScoreResult

    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S.000000")
    results: dict[str, Any] = {
        "results": {},
        "group_subtasks": {},
        "configs": {},
        "versions": {},
        "n-shot": {},
        "higher_is_better": {},
        "n-samples": {},
        "config": {},
    }
    nulls: dict[str, dict[str, str]] = {}
    records: dict[str, dict[str, Any]] = {}
    generating_files: dict[str, str | None] = {}
    samples_paths: dict[str, Path] = {}
    for sample in sets:
        task = sample.task
        judged = summaries[task]
        generating = _generating_results(sample.path, sample.date)
        generating_files[task] = str(sample.path.with_name(f"results_{sample.date}.json")) if generating else None
        metrics, nulls[task] = _aggregate(judged, bootstrap_iters)
        record = judging_record(judge_spec, protocol, judge, judged, baseline or "the documents' baseline field")
        records[task] = record
        results["results"][task] = {"alias": task, **metrics}
        results["group_subtasks"][task] = []
        config = dict(generating.get("configs", {}).get(task, {"task": task}))
        # The metrics computed here, by name: the generating run's list may be other metrics (bypass, for a
        # generation-only task) or function source (lm-eval dumps a !function metric so), which lm-eval's W&B and
        # Zeno loggers look up in the samples as metric names.
        config["metric_list"] = [
            {"metric": name, "aggregation": AGGREGATION, "higher_is_better": HIGHER_IS_BETTER[name]} for name in METRICS
        ]
        config["metadata"] = {**(config.get("metadata") or {}), "pandalm_judging": [record]}
        results["configs"][task] = config
        results["versions"][task] = generating.get("versions", {}).get(task, config["metadata"].get("version"))
        results["n-shot"][task] = generating.get("n-shot", {}).get(task, 0)
        results["higher_is_better"][task] = dict(HIGHER_IS_BETTER)
        original = generating.get("n-samples", {}).get(task, {}).get("original", len(judged))
        results["n-samples"][task] = {"original": original, "effective": len(judged)}
        for key in ("config", "git_hash", "model_name", "model_name_sanitized", "model_source", "transformers_version"):
            if (key in generating and key not in results) or (key == "config" and not results["config"]):
                results[key] = generating.get(key, results.get(key))
        path = out_dir / f"samples_{task}_{stamp}.jsonl"
        with atomic_output(path) as handle:
            for row, summary in zip(sample.rows, judged, strict=True):
                handle.write(json.dumps(_judged_sample(row, summary), ensure_ascii=False, allow_nan=False) + "\n")
        samples_paths[task] = path
        logger.warning("pandalm score %s: %s", task, record["summary"])
    results["date"] = time.time()
    results["pandalm_score"] = {
        "judging": records,
        "samples": {s.task: str(s.path) for s in sets},
        "generating_results": generating_files,
        "null_metrics": {task: reasons for task, reasons in nulls.items() if reasons},
    }
    results_path = out_dir / f"results_{stamp}.json"
    with atomic_output(results_path) as handle:
        handle.write(json.dumps(results, indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n")
    return ScoreResult(
        results_path=results_path, samples_paths=samples_paths, results=results, summaries=dict(summaries)
    )
