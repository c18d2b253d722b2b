"""Human-labelled pairwise benchmarks, loaded into :class:`~lm_eval_pandalm.types.PairItem` s with gold labels.

Built-in benchmarks (see :data:`BENCHMARKS`) are read through :mod:`.sources`, so they are checksum-verified and
work from an offline mirror. ``file:<path>`` loads a user's own JSON (a list) or JSON-lines file in PandaLM's
test-set format.

Decisions about messy rows, made once here so every consumer sees the same data:

* No row is ever dropped; a row that cannot be read raises :class:`BenchmarkFormatError` naming file, row and field.
* A JSON boolean where a response should be (six rows of PandaLM's test set: the model answered ``True``) becomes the
  text ``"True"``/``"False"``, and the item's ``metadata["coerced_fields"]`` lists the fields converted.
* Empty (or whitespace-only) responses and instructions are kept as they are: an empty response is a legitimate,
  bad response, and judging it is meaningful.
* A missing or ``null`` ``input`` is ``""``.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import PandaLMError
from ..types import Label, PairItem
from .sources import (
    AUTOJ_REPO,
    LLMBAR_REPO,
    PANDALM_REPO,
    SourceFile,
    iter_json_lines,
    read_utf8,
    resolve,
    source_file,
)

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkFormatError",
    "BenchmarkSpec",
    "benchmark_names",
    "llmbar_evaluator_file",
    "load_benchmark",
]

logger = logging.getLogger(__name__)

# PandaLM annotators: 0 = tie, 1 = response1 better, 2 = response2 better.
_PANDALM_LABELS = {0: Label.TIE, 1: Label.FIRST, 2: Label.SECOND}
# Auto-J: 0 = response 1 better, 1 = response 2 better, 2 = tie.
_AUTOJ_LABELS = {0: Label.FIRST, 1: Label.SECOND, 2: Label.TIE}
# LLMBar: 1 or 2, no ties.
_LLMBAR_LABELS = {1: Label.FIRST, 2: Label.SECOND}

_ANNOTATOR_FIELD = re.compile(r"annotator(\d+)$")


class BenchmarkFormatError(PandaLMError, ValueError):
    """A benchmark row that cannot be read: names the file, the 0-based row, the field and what was wrong."""

    def __init__(self, source: str | Path, row: int, field: str, problem: str, line: int | None = None) -> None:
        self.source = str(source)
        self.row = row
        self.field = field
        self.problem = problem
        self.line = line
        where = f"row {row}" if line is None else f"row {row} (line {line})"
        super().__init__(f"{self.source}: {where}: field {field!r}: {problem}")


@dataclass(frozen=True)
class Benchmark:
    """A loaded benchmark: pairs to judge and the human (gold) label of each."""

    name: str
    """Registry name (``pandalm``, ``llmbar-natural``...) or ``file:<path>``."""
    items: tuple[PairItem, ...]
    """The pairs, in file order; ``item.id`` is ``<name>/<row or idx>`` and ``item.metadata`` has the source row."""
    gold: tuple[Label, ...]
    """Human label of each item, aligned with :attr:`items`."""
    source: str
    """Path of the file the benchmark was read from."""

    def __post_init__(self) -> None:
        if len(self.items) != len(self.gold):
            raise ValueError(f"benchmark {self.name}: {len(self.items)} items but {len(self.gold)} gold labels")

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a built-in benchmark lives and how its rows are laid out."""

    name: str
    """Registry name."""
    file: SourceFile
    """The upstream file."""
    format: str
    """Row layout: ``pandalm``, ``autoj`` or ``llmbar``."""
    description: str
    """One line for listings."""
    llmbar_dir: str | None = None
    """For LLMBar-format sets, the set's folder in the LLMBar repository (its ``evaluators/`` live there)."""


def _llmbar(name: str, set_dir: str, description: str) -> BenchmarkSpec:
    return BenchmarkSpec(
        name=name,
        file=source_file(LLMBAR_REPO, f"{set_dir}/dataset.json"),
        format="llmbar",
        description=description,
        llmbar_dir=set_dir,
    )


BENCHMARKS: Mapping[str, BenchmarkSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            BenchmarkSpec(
                "pandalm",
                source_file(PANDALM_REPO, "data/testset-v1.json"),
                "pandalm",
                "PandaLM test set: 999 pairs, majority of 3 annotators, ties allowed",
            ),
            BenchmarkSpec(
                "autoj",
                source_file(AUTOJ_REPO, "data/test/testdata_pairwise.jsonl"),
                "autoj",
                "Auto-J pairwise test set: 1392 pairs in 58 scenarios, ties allowed",
            ),
            _llmbar("llmbar-natural", "Dataset/LLMBar/Natural", "LLMBar Natural: 100 pairs, no ties"),
            _llmbar("llmbar-neighbor", "Dataset/LLMBar/Adversarial/Neighbor", "LLMBar Adversarial/Neighbor: 134 pairs"),
            _llmbar("llmbar-gptinst", "Dataset/LLMBar/Adversarial/GPTInst", "LLMBar Adversarial/GPTInst: 92 pairs"),
            _llmbar("llmbar-gptout", "Dataset/LLMBar/Adversarial/GPTOut", "LLMBar Adversarial/GPTOut: 47 pairs"),
            _llmbar("llmbar-manual", "Dataset/LLMBar/Adversarial/Manual", "LLMBar Adversarial/Manual: 46 pairs"),
            _llmbar("mtbench", "Dataset/Processed/MT-Bench", "MT-Bench human judgments, as processed by LLMBar"),
            _llmbar("faireval", "Dataset/Processed/FairEval", "FairEval, as processed by LLMBar"),
            _llmbar("llmeval2", "Dataset/Processed/LLMEval^2", "LLMEval^2, as processed by LLMBar"),
        )
    }
)
"""Built-in benchmarks by name. ``file:<path>`` is accepted by :func:`load_benchmark` in addition."""

LLMBAR_FORMAT_BENCHMARKS: tuple[str, ...] = tuple(name for name, spec in BENCHMARKS.items() if spec.format == "llmbar")


def benchmark_names() -> list[str]:
    """Names of the built-in benchmarks, in registry order."""
    return list(BENCHMARKS)


def _spec(name: str) -> BenchmarkSpec:
    key = name.strip().lower()
    if key in BENCHMARKS:
        return BENCHMARKS[key]
    close = difflib.get_close_matches(key, list(BENCHMARKS), n=1, cutoff=0.4)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown benchmark {name!r}.{hint} Valid names: {', '.join(BENCHMARKS)}; "
        f"or file:<path> for your own JSON/JSONL file in PandaLM test-set format."
    )


def llmbar_evaluator_file(
    benchmark: str, judge: str, strategy: str = "Vanilla_NoRules", filename: str = "result.json"
) -> SourceFile:
    """LLMBar's recorded output of ``judge`` with prompting ``strategy`` on an LLMBar-format benchmark.

    Args:
        benchmark: One of the LLMBar-format benchmark names (``llmbar-natural``, ..., ``mtbench``...).
        judge: LLMBar's evaluator folder name (``GPT-4``, ``ChatGPT``, ``LLaMA2``...).
        strategy: LLMBar's strategy folder name.
        filename: ``result.json`` (per-item outputs) or ``statistics.json`` (LLMBar's own figures).

    Raises:
        ValueError: ``benchmark`` is not LLMBar-format, or a name would leave the evaluator folder.
    """
    spec = _spec(benchmark)
    if spec.llmbar_dir is None:
        valid = ", ".join(LLMBAR_FORMAT_BENCHMARKS)
        raise ValueError(f"{spec.name} is not an LLMBar-format benchmark; those are {valid}")
    for label, part in (("judge", judge), ("strategy", strategy), ("filename", filename)):
        if not part or "/" in part or part in (".", ".."):
            raise ValueError(f"invalid LLMBar {label} {part!r}")
    return source_file(LLMBAR_REPO, f"{spec.llmbar_dir}/evaluators/{judge}/{strategy}/{filename}")


# -- row parsing ----------------------------------------------------------------------------------------------------


class _RowReader:
    """Field accessors for one file that raise :class:`BenchmarkFormatError` with file, row and field."""

    def __init__(self, source: str, lines: Sequence[int] | None = None) -> None:
        self.source = source
        self.lines = lines
        self.coerced_rows: list[int] = []

    def error(self, row: int, field: str, problem: str) -> BenchmarkFormatError:
        line = self.lines[row] if self.lines is not None else None
        return BenchmarkFormatError(self.source, row, field, problem, line=line)

    def obj(self, raw: Any, row: int) -> Mapping[str, Any]:
        if not isinstance(raw, Mapping):
            raise self.error(row, "<row>", f"expected a JSON object, got {type(raw).__name__}")
        return raw

    def text(self, row: int, data: Mapping[str, Any], field: str) -> str:
        if field not in data:
            raise self.error(row, field, "missing")
        value = data[field]
        if not isinstance(value, str):
            raise self.error(row, field, f"expected a string, got {type(value).__name__}: {_short(value)}")
        return value

    def optional_text(self, row: int, data: Mapping[str, Any], field: str) -> str:
        value = data.get(field)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.error(row, field, f"expected a string or null, got {type(value).__name__}: {_short(value)}")
        return value

    def response(self, row: int, data: Mapping[str, Any], field: str, coerced: list[str]) -> str:
        """A response: text, or a JSON boolean that a model's literal output ``True``/``False`` was parsed into."""
        value = data.get(field)
        if isinstance(value, bool):
            coerced.append(field)
            return "True" if value else "False"
        return self.text(row, data, field)

    def label(self, row: int, data: Mapping[str, Any], field: str, mapping: Mapping[int, Label], meaning: str) -> Label:
        if field not in data:
            raise self.error(row, field, f"missing (expected {meaning})")
        value = data[field]
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().isdigit():
            number = int(value.strip())
        if number is None or number not in mapping:
            raise self.error(row, field, f"bad label {value!r} (expected {meaning})")
        return mapping[number]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _meta(name: str, row: int, coerced: list[str], **fields: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"benchmark": name, "source_row": row}
    meta.update({k: v for k, v in fields.items() if v is not None})
    if coerced:
        meta["coerced_fields"] = list(coerced)
    return meta


def _pandalm_gold(reader: _RowReader, row: int, data: Mapping[str, Any]) -> tuple[Label, list[int]]:
    fields = sorted((int(m.group(1)), key) for key in data if (m := _ANNOTATOR_FIELD.match(key)))
    if not fields:
        raise reader.error(row, "annotator1", "missing: need at least one annotatorN label (0 = tie, 1, 2)")
    meaning = "0 = tie, 1 = response1 better, 2 = response2 better"
    labels = [reader.label(row, data, key, _PANDALM_LABELS, meaning) for _, key in fields]
    raw = [int(data[key]) for _, key in fields]
    (top, count), *_ = Counter(labels).most_common(1)
    if count * 2 <= len(labels):
        split = ", ".join(f"{key}={data[key]}" for _, key in fields)
        names = f"{fields[0][1]}..{fields[-1][1]}" if len(fields) > 1 else fields[0][1]
        raise reader.error(row, names, f"no strict majority among {len(labels)} annotators ({split})")
    return top, raw


_RowParser = Callable[[int, Mapping[str, Any], list[str]], tuple[PairItem, Label]]


def _collect(rows: Sequence[Any], reader: _RowReader, parse_row: _RowParser) -> tuple[list[PairItem], list[Label]]:
    """Run ``parse_row(row, data, coerced)`` on every row; rows whose responses were coerced are remembered."""
    items: list[PairItem] = []
    gold: list[Label] = []
    for row, raw in enumerate(rows):
        coerced: list[str] = []
        item, label = parse_row(row, reader.obj(raw, row), coerced)
        if coerced:
            reader.coerced_rows.append(row)
        items.append(item)
        gold.append(label)
    return items, gold


def _parse_pandalm(
    rows: Sequence[Any], reader: _RowReader, name: str, id_prefix: str, require_idx: bool
) -> tuple[list[PairItem], list[Label]]:
    seen_ids: dict[str, int] = {}

    def parse_row(row: int, data: Mapping[str, Any], coerced: list[str]) -> tuple[PairItem, Label]:
        idx = data.get("idx")
        if idx is None and require_idx:
            raise reader.error(row, "idx", "missing")
        if idx is not None and (isinstance(idx, bool) or not isinstance(idx, int | str)):
            raise reader.error(row, "idx", f"expected an integer or string, got {type(idx).__name__}")
        label, annotators = _pandalm_gold(reader, row, data)
        item_id = f"{id_prefix}/{idx if idx is not None else row}"
        if item_id in seen_ids:
            raise reader.error(row, "idx", f"duplicate idx {idx!r}, also used by row {seen_ids[item_id]}")
        seen_ids[item_id] = row
        item = PairItem(
            instruction=reader.text(row, data, "instruction"),
            input=reader.optional_text(row, data, "input"),
            response1=reader.response(row, data, "response1", coerced),
            response2=reader.response(row, data, "response2", coerced),
            id=item_id,
            metadata=_meta(
                name,
                row,
                coerced,
                idx=idx,
                cmp_key=data.get("cmp_key"),
                motivation_app=data.get("motivation_app"),
                annotators=annotators,
                gold=label.value,
            ),
        )
        return item, label

    return _collect(rows, reader, parse_row)


def _parse_autoj(rows: Sequence[Any], reader: _RowReader, name: str) -> tuple[list[PairItem], list[Label]]:
    def parse_row(row: int, data: Mapping[str, Any], coerced: list[str]) -> tuple[PairItem, Label]:
        label = reader.label(row, data, "label", _AUTOJ_LABELS, "0 = response 1 better, 1 = response 2 better, 2 = tie")
        item = PairItem(
            instruction=reader.text(row, data, "prompt"),
            input="",
            response1=reader.response(row, data, "response 1", coerced),
            response2=reader.response(row, data, "response 2", coerced),
            id=f"{name}/{row}",
            metadata=_meta(name, row, coerced, scenario=data.get("scenario"), gold=label.value),
        )
        return item, label

    return _collect(rows, reader, parse_row)


def _parse_llmbar(rows: Sequence[Any], reader: _RowReader, name: str) -> tuple[list[PairItem], list[Label]]:
    def parse_row(row: int, data: Mapping[str, Any], coerced: list[str]) -> tuple[PairItem, Label]:
        label = reader.label(row, data, "label", _LLMBAR_LABELS, "1 = output_1 better, 2 = output_2 better")
        item = PairItem(
            instruction=reader.text(row, data, "input"),
            input="",
            response1=reader.response(row, data, "output_1", coerced),
            response2=reader.response(row, data, "output_2", coerced),
            id=f"{name}/{row}",
            metadata=_meta(name, row, coerced, gold=label.value),
        )
        return item, label

    return _collect(rows, reader, parse_row)


def _log_coerced(reader: _RowReader) -> None:
    if reader.coerced_rows:
        logger.info(
            "%s: %d rows had a JSON boolean as a response; read as the text 'True'/'False' (rows %s; see "
            "item.metadata['coerced_fields'])",
            reader.source,
            len(reader.coerced_rows),
            ", ".join(map(str, reader.coerced_rows)),
        )


# -- loading --------------------------------------------------------------------------------------------------------


def _read_rows(path: Path) -> tuple[list[Any], list[int] | None]:
    """Rows of a JSON list or a JSON-lines file (sniffed from the first character), with line numbers for JSONL."""
    text = read_utf8(path)
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from exc
        return rows, None
    numbered = list(iter_json_lines(text.splitlines(), path))
    return [value for _, value in numbered], [lineno for lineno, _ in numbered]


@functools.lru_cache(maxsize=32)
def _load_builtin(name: str, path: str, mtime_ns: int, size: int) -> Benchmark:
    # mtime_ns and size are part of the cache key only: a changed file is re-read.
    spec = BENCHMARKS[name]
    rows, lines = _read_rows(Path(path))
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of rows, got {type(rows).__name__}")
    reader = _RowReader(path, lines)
    if spec.format == "pandalm":
        items, gold = _parse_pandalm(rows, reader, name, name, require_idx=True)
    elif spec.format == "autoj":
        items, gold = _parse_autoj(rows, reader, name)
    else:
        items, gold = _parse_llmbar(rows, reader, name)
    _log_coerced(reader)
    logger.debug("loaded benchmark %s: %d items from %s", name, len(items), path)
    return Benchmark(name=name, items=tuple(items), gold=tuple(gold), source=path)


@functools.lru_cache(maxsize=32)
def _load_user_file(path: str, mtime_ns: int, size: int) -> Benchmark:
    rows, lines = _read_rows(Path(path))
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of rows or JSON lines, got a JSON {type(rows).__name__}")
    if not rows:
        raise ValueError(f"{path}: no rows")
    from .training_format import is_training_row, parse_training_rows

    if is_training_row(rows[0]):
        # PandaLM's training format (a held-out split written for training): the verdict is the gold label.
        examples = parse_training_rows(rows, path, lines, id_prefix=Path(path).stem)
        items, gold = [ex.item for ex in examples], [ex.label for ex in examples]
        return Benchmark(name=f"file:{path}", items=tuple(items), gold=tuple(gold), source=path)
    reader = _RowReader(path, lines)
    items, gold = _parse_pandalm(rows, reader, f"file:{path}", Path(path).stem, require_idx=False)
    _log_coerced(reader)
    return Benchmark(name=f"file:{path}", items=tuple(items), gold=tuple(gold), source=path)


def load_benchmark(name: str, data_dir: str | Path | None = None) -> Benchmark:
    """Load a benchmark by name, verified and cached in-process.

    Args:
        name: A name from :func:`benchmark_names`, or ``file:<path>`` for a JSON list / JSON-lines file in PandaLM's
            test-set format (``instruction``, optional ``input``, ``response1``, ``response2``, one or more
            ``annotatorN`` labels with 0 = tie, 1 = response1 better, 2 = response2 better, optional ``idx``). The
            gold label of a user row is the strict majority of its annotators. A file in PandaLM's training format
            (``inputs`` / ``outputs`` objects, see :mod:`.training_format`) is read too, with
            ``evaluation_result`` as the gold label.
        data_dir: Offline mirror laid out as ``<owner>/<repo>/<path>``; defaults to ``$PANDALM_DATA_DIR`` (see
            :func:`~lm_eval_pandalm.data.sources.resolve`).

    Returns:
        The benchmark. Loading the same file again returns the same object.

    Raises:
        ValueError: Unknown name (the message suggests the closest one and lists all).
        BenchmarkFormatError: A row is malformed.
        FileNotFoundError: A ``file:`` path does not exist.
        ChecksumMismatchError: A built-in file does not match its pinned sha256.
        DataUnavailableError: A built-in file is not available offline and cannot be downloaded.
    """
    if name.startswith("file:"):
        path = Path(name[len("file:") :]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"benchmark file {path} does not exist (from {name!r})")
        stat = path.stat()
        return _load_user_file(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    spec = _spec(name)
    path = resolve(spec.file, data_dir)
    stat = path.stat()
    return _load_builtin(spec.name, str(path.resolve()), stat.st_mtime_ns, stat.st_size)
