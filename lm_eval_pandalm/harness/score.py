"""Two-stage scoring: judge the samples of a finished ``lm_eval --log_samples`` run without regenerating.

The evaluated model and the judge then never need the GPU at the same time. Judgments go through the same judging
code and judgment cache as the in-run judge filter, so scoring a run that was already judged in-run reproduces its
verdicts from the cache without a forward pass. Results are written in lm-eval's results-JSON layout, with lm-eval's
own aggregation and stderr functions, next to one verdict line per sample.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..verdict_io import VerdictFileError, iter_json_objects
from .judging import DEFAULT_PROTOCOL, JudgmentSummary, judge_against_baseline, summary_metrics
from .pairwise import load_baselines
from .winrate import HIGHER_IS_BETTER, METRICS

__all__ = ["SampleSet", "ScoreResult", "find_sample_files", "read_samples", "score_samples"]

logger = logging.getLogger(__name__)

_SAMPLES_NAME = re.compile(r"^samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T[\d.\-]+)\.jsonl$")
_FILTER_NAME = "pandalm"
"""Filter key of the written metrics (the name the ``pandalm_pairwise`` task gives its judge filter)."""


@dataclass(frozen=True)
class SampleSet:
    """The logged samples of one task of one run."""

    task: str
    """Task name, from the file name ``samples_<task>_<date>.jsonl``."""
    path: Path
    """The samples file."""
    rows: list[dict[str, Any]]
    """One lm-eval sample per document (``doc``, ``resps``, ...), in file order."""
    lines: list[int]
    """The file line of each row, for error messages."""


@dataclass(frozen=True)
class ScoreResult:
    """What :func:`score_samples` wrote."""

    results_path: Path
    """The results JSON (lm-eval's layout)."""
    verdict_paths: dict[str, Path]
    """Per task, the JSONL with one judgment per sample."""
    results: dict[str, Any]
    """The content of the results JSON."""


def find_sample_files(samples: str | Path) -> list[Path]:
    """``samples_*.jsonl`` files named directly, or found anywhere under a run's output folder."""
    path = Path(samples).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("samples_*.jsonl") if p.is_file())
        if found:
            return found
        raise FileNotFoundError(f"no samples_*.jsonl under {path}; run lm_eval with --log_samples --output_path DIR")
    raise FileNotFoundError(f"{path}: no such file or folder (expected a samples_*.jsonl or lm-eval's --output_path)")


def read_samples(path: Path) -> SampleSet:
    """Read one samples file, checking that every line has what judging needs.

    Raises:
        VerdictFileError: A line is not JSON or lacks ``doc`` / ``resps``, naming the file, line and field.
    """
    match = _SAMPLES_NAME.match(path.name)
    task = match.group("task") if match else path.stem.removeprefix("samples_")
    rows, lines = [], []
    for line_no, row in iter_json_objects(path):
        for field in ("doc", "resps"):
            if field not in row:
                raise VerdictFileError(path, line_no, field, "missing (is this an lm-eval samples file?)")
        rows.append(row)
        lines.append(line_no)
    return SampleSet(task=task, path=path, rows=rows, lines=lines)


def _text_field(sample: SampleSet, row_index: int, doc: dict[str, Any], field: str, *, required: bool) -> str:
    value = doc.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise VerdictFileError(
            sample.path,
            sample.lines[row_index],
            f"doc.{field}",
            f"expected a string, got {type(value).__name__}"
            + (" (pass --baseline to supply baselines)" if field == "baseline" else ""),
        )
    return value


def _response(sample: SampleSet, row_index: int, row: dict[str, Any]) -> str:
    try:
        response = row["resps"][0][0]
    except (IndexError, KeyError, TypeError):
        response = None
    if not isinstance(response, str):
        raise VerdictFileError(sample.path, sample.lines[row_index], "resps", "expected [[generated text, ...]]")
    return response


def _aggregate(summaries: Sequence[JudgmentSummary], bootstrap_iters: int) -> dict[str, float | None]:
    """Per metric, lm-eval's own ``nanmean`` and its stderr (bootstrap, as lm-eval computes it in a run)."""
    from lm_eval.api.metrics import nanmean, stderr_for_metric

    per_doc = [summary_metrics(s) for s in summaries]
    out: dict[str, float | None] = {}
    for name in METRICS:
        values = [metrics[name.removeprefix("pandalm_")] for metrics in per_doc]
        value = float(nanmean(values)) if values else math.nan
        stderr_fn = stderr_for_metric(nanmean, bootstrap_iters)
        stderr = float(stderr_fn(values)) if stderr_fn is not None and len(values) > 1 else None
        out[f"{name},{_FILTER_NAME}"] = None if math.isnan(value) else value
        out[f"{name}_stderr,{_FILTER_NAME}"] = None if stderr is None or math.isnan(stderr) else stderr
    return out


def score_samples(
    samples: str | Path,
    judge: str,
    *,
    baseline: str | None = None,
    protocol: str = DEFAULT_PROTOCOL,
    output_path: str | Path | None = None,
    data_dir: str | Path | None = None,
    cache: str | Path | bool | None = None,
    bootstrap_iters: int = 100000,
) -> ScoreResult:
    """Judge every sample of a ``--log_samples`` run against its baseline and write lm-eval-style results.

    Args:
        samples: A ``samples_*.jsonl`` file or a run's ``--output_path`` folder (every samples file under it).
        judge: Judge SPEC.
        baseline: Where baselines come from when the documents do not carry a ``baseline`` field, or to replace
            it: ``self-instruct``, a samples file or a JSONL of responses (see
            :func:`lm_eval_pandalm.harness.pairwise.load_baselines`).
        protocol: ``both-orders`` (default), ``paper`` or ``first-order``.
        output_path: Folder for the outputs (default: the folder of the first samples file).
        data_dir: Data mirror (for ``self-instruct`` baselines and replay judges).
        cache: Judgment cache: a path, ``False`` for none, ``None`` for the default (``PANDALM_CACHE_PATH`` ...).
        bootstrap_iters: Bootstrap iterations for the stderr (lm-eval's default).

    Returns:
        The paths written and the results.
    """
    files = find_sample_files(samples)
    out_dir = Path(output_path) if output_path is not None else files[0].parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S")
    results: dict[str, Any] = {
        "results": {},
        "higher_is_better": {},
        "n-samples": {},
        "config": {
            "judge": judge,
            "protocol": protocol,
            "baseline": baseline or "documents' baseline field",
            "samples": [str(f) for f in files],
            "lm_eval_pandalm_version": __version__,
        },
        "date": time.time(),
    }
    verdict_paths: dict[str, Path] = {}
    for path in files:
        sample = read_samples(path)
        docs = [row["doc"] for row in sample.rows]
        instructions = [_text_field(sample, i, doc, "instruction", required=True) for i, doc in enumerate(docs)]
        inputs = [_text_field(sample, i, doc, "input", required=False) for i, doc in enumerate(docs)]
        responses = [_response(sample, i, row) for i, row in enumerate(sample.rows)]
        if baseline is None:
            baselines = [_text_field(sample, i, doc, "baseline", required=True) for i, doc in enumerate(docs)]
        else:
            rows = [
                {"instruction": ins, "input": inp, "id": str(doc.get("id", ""))}
                for ins, inp, doc in zip(instructions, inputs, docs, strict=True)
            ]
            baselines = load_baselines(baseline, rows, data_dir)
        logger.info("judging %d samples of %s from %s", len(responses), sample.task, path)
        summaries = judge_against_baseline(
            judge,
            instructions=instructions,
            inputs=inputs,
            responses=responses,
            baselines=baselines,
            protocol=protocol,
            data_dir=data_dir,
            cache=cache,
        )
        results["results"][sample.task] = {"alias": sample.task, **_aggregate(summaries, bootstrap_iters)}
        results["higher_is_better"][sample.task] = dict(HIGHER_IS_BETTER)
        results["n-samples"][sample.task] = {"original": len(summaries), "effective": len(summaries)}
        verdict_path = out_dir / f"verdicts_{sample.task}_{stamp}.jsonl"
        with verdict_path.open("w", encoding="utf-8") as handle:
            for row, summary in zip(sample.rows, summaries, strict=True):
                record = {"doc_id": row.get("doc_id"), "judgment": json.loads(summary.to_json())}
                record.update({f"pandalm_{k}": v for k, v in summary_metrics(summary).items()})
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        verdict_paths[sample.task] = verdict_path
    results_path = out_dir / f"results_pandalm_score_{stamp}.json"
    results_path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return ScoreResult(results_path=results_path, verdict_paths=verdict_paths, results=results)
