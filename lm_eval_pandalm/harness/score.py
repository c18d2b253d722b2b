"""Two-stage scoring: judge the samples of a finished ``lm_eval --log_samples`` run without regenerating.

The evaluated model and the judge then never need the GPU at the same time. Judgments go through the same judging
code and judgment cache as the in-run judge filter (chunk by chunk, each chunk committed), so scoring a run that was
already judged in-run reproduces its verdicts from the cache without loading the judge's weights, and a killed
``pandalm score`` resumes where it stopped.

The output is an lm-eval run folder of its own (see :mod:`.score_output`): ``results_<date>.json`` in lm-eval's
results layout (lm-eval's own ``nanmean`` and stderr; ``lm_eval.utils.make_table`` reads it) and
``samples_<task>_<date>.jsonl`` in lm-eval's samples format with the judgment in ``filtered_resps``. It goes beside
the generating run's folder, never into it, so it cannot become that run's "latest results" by accident.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PandaLMError
from ..verdict_io import VerdictFileError, iter_json_objects
from .judging import DEFAULT_PROTOCOL, JudgmentSummary, judge_against_baseline, judge_for_spec
from .pairwise import load_baselines

__all__ = ["SampleSet", "ScoreResult", "find_sample_files", "read_samples", "score_samples"]

logger = logging.getLogger(__name__)

SAMPLES_NAME = re.compile(r"^samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T[\d.\-]+)\.jsonl$")


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

    @property
    def date(self) -> str | None:
        """The run's date stamp from the file name (lm-eval gives the results JSON the same one)."""
        match = SAMPLES_NAME.match(self.path.name)
        return match.group("date") if match else None


@dataclass(frozen=True)
class ScoreResult:
    """What :func:`score_samples` wrote."""

    results_path: Path
    """The results JSON (lm-eval's layout)."""
    samples_paths: dict[str, Path]
    """Per task, the judged samples (lm-eval's samples format)."""
    results: dict[str, Any]
    """The content of the results JSON."""
    summaries: dict[str, list[JudgmentSummary]]
    """Per task, the judgment of each sample, in file order."""


class OutputFolderError(PandaLMError, ValueError):
    """An output folder that would mix the scores into the generating run's own folder."""


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
        VerdictFileError: A line is not JSON (or not UTF-8), or lacks ``doc`` / ``resps``, naming the file, line and
            field.
    """
    match = SAMPLES_NAME.match(path.name)
    task = match.group("task") if match else path.stem.removeprefix("samples_")
    rows, lines = [], []
    for line_no, row in iter_json_objects(path):
        for field in ("doc", "resps"):
            if field not in row:
                raise VerdictFileError(path, line_no, field, "missing (is this an lm-eval samples file?)")
        rows.append(row)
        lines.append(line_no)
    if not rows:
        raise VerdictFileError(path, 1, "<file>", "no samples to score (the file is empty)")
    return SampleSet(task=task, path=path, rows=rows, lines=lines)


def _text_field(sample: SampleSet, row_index: int, doc: Any, field: str, *, required: bool) -> str:
    if not isinstance(doc, dict):
        raise VerdictFileError(sample.path, sample.lines[row_index], "doc", f"expected an object, got {doc!r:.80}")
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
    """The generated text: ``resps`` must be ``[[text, ...], ...]`` as lm-eval logs a ``generate_until`` task."""
    resps = row["resps"]
    ok = (
        isinstance(resps, list)
        and resps
        and isinstance(resps[0], list)
        and resps[0]
        and all(isinstance(text, str) for text in resps[0])
    )
    if not ok:
        raise VerdictFileError(
            sample.path,
            sample.lines[row_index],
            "resps",
            f"expected [[generated text, ...]] as lm-eval logs a generate_until task, got {resps!r:.120}",
        )
    return str(resps[0][0])


def _output_dir(files: Sequence[Path], output_path: str | Path | None) -> Path:
    """Where to write: ``output_path``, else a folder beside the first run folder (``<run folder>__pandalm_score``).

    Raises:
        OutputFolderError: ``output_path`` is a folder that holds samples being scored (the scores would become that
            run's latest results).
    """
    run_dirs = {f.parent.resolve() for f in files}
    if output_path is None:
        first = files[0].parent
        return first.parent / f"{first.name}__pandalm_score"
    out = Path(output_path).expanduser()
    if out.resolve() in run_dirs:
        raise OutputFolderError(
            f"--output-path {out} is the folder of the run being scored: its results_*.json would become that run's "
            f"latest results. Choose another folder (default: {files[0].parent.name}__pandalm_score beside it)"
        )
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
        judge: Judge SPEC (checked before anything is read or judged).
        baseline: Where baselines come from when the documents do not carry a ``baseline`` field, or to replace
            it: ``self-instruct``, a samples file or a JSONL of responses (see
            :func:`lm_eval_pandalm.harness.pairwise.load_baselines`).
        protocol: ``both-orders`` (default), ``paper`` or ``first-order``.
        output_path: Folder for the outputs (default: ``<run folder>__pandalm_score`` beside the run's folder).
        data_dir: Data mirror (for ``self-instruct`` baselines and replay judges).
        cache: Judgment cache: a path, ``False`` for none, ``None`` for the default (``PANDALM_CACHE_PATH`` ...).
        bootstrap_iters: Bootstrap iterations for the stderr (lm-eval's default).

    Returns:
        The paths written and the results.
    """
    from ..judges.registry import preflight_spec
    from .judging import check_protocol
    from .score_output import write_outputs

    check_protocol(protocol)
    preflight_spec(judge, data_dir=data_dir)
    files = find_sample_files(samples)
    out_dir = _output_dir(files, output_path)
    sets = [read_samples(path) for path in files]  # every file is checked before anything is judged
    inputs = [_pairs(sample, baseline, data_dir) for sample in sets]
    built = judge_for_spec(judge, data_dir, cache)
    summaries: dict[str, list[JudgmentSummary]] = {}
    for sample, (instructions, inputs_, responses, baselines) in zip(sets, inputs, strict=True):
        logger.info("judging %d samples of %s from %s", len(responses), sample.task, sample.path)
        summaries[sample.task] = judge_against_baseline(
            built,
            instructions=instructions,
            inputs=inputs_,
            responses=responses,
            baselines=baselines,
            protocol=protocol,
        )
    return write_outputs(
        sets,
        summaries,
        out_dir,
        judge_spec=judge,
        judge=built,
        protocol=protocol,
        baseline=baseline,
        bootstrap_iters=bootstrap_iters,
    )


def _pairs(
    sample: SampleSet, baseline: str | None, data_dir: str | Path | None
) -> tuple[list[str], list[str], list[str], list[str]]:
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
    return instructions, inputs, responses, baselines
