"""Training data for judges: loading every supported source, auditing it, a leak-free split and augmentation.

Sources (:func:`load_examples`):

* a JSON / JSON-lines file in PandaLM's training format (PandaLM's data, ``pandalm export-escalations``, the
  synthetic generator);
* a human-labelled benchmark of the registry (``pandalm``, ``llmbar-natural``...) or ``file:<path>`` in PandaLM's
  test-set format: the gold label is the verdict and there is no reason or reference.

:func:`audit` finds exact duplicates (dropped, reported) and label conflicts: the same pair with different labels,
or the swapped pair with a label that is not the flip. Conflicts are an error by default, because training on both
answers teaches nothing but noise. :func:`split_by_instruction` keeps every instruction on one side of the split.
"""

from __future__ import annotations

import json
import logging
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..data.benchmarks import BENCHMARKS, load_benchmark
from ..data.sources import iter_json_lines, read_utf8
from ..data.training_format import TrainingExample, is_training_row, parse_training_rows
from ..errors import PandaLMError

__all__ = [
    "CONFLICT_POLICIES",
    "DataAudit",
    "TrainingDataError",
    "audit",
    "augment",
    "load_examples",
    "split_by_instruction",
]

logger = logging.getLogger(__name__)

CONFLICT_POLICIES = ("error", "drop", "keep")


class TrainingDataError(PandaLMError, ValueError):
    """Training data that cannot be used as it is (conflicting labels, an example that cannot fit, no examples)."""


def load_examples(source: str, data_dir: str | Path | None = None) -> list[TrainingExample]:
    """Examples from a training-format file, a registry benchmark name, or ``file:<path>`` (test-set format).

    Raises:
        BenchmarkFormatError: A row is malformed (names file, row and field).
        FileNotFoundError: The file does not exist.
        TrainingDataError: The source has no examples.
    """
    if source.strip().lower() in BENCHMARKS or source.startswith("file:"):
        bench = load_benchmark(source, data_dir=data_dir)
        examples = [
            TrainingExample(item=item, label=label, source=bench.source, row=i)
            for i, (item, label) in enumerate(zip(bench.items, bench.gold, strict=True))
        ]
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"training data {source!r}: no such file (give a JSON/JSONL file in PandaLM's training format, a "
                f"benchmark name ({', '.join(BENCHMARKS)}) or file:<path>)"
            )
        text = read_utf8(path)
        lines: list[int] | None
        if text.lstrip().startswith("["):
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as exc:
                raise TrainingDataError(f"{path}: not valid JSON: {exc}") from exc
            lines = None
        else:
            numbered = list(iter_json_lines(text.splitlines(), path))
            rows, lines = [v for _, v in numbered], [n for n, _ in numbered]
        if rows and not is_training_row(rows[0]):
            # Not the training format: read it as a benchmark file (test-set format), whose loader validates it.
            return load_examples(f"file:{path}")
        examples = parse_training_rows(rows, str(path), lines, id_prefix=path.stem)
    if not examples:
        raise TrainingDataError(f"training data {source!r} has no examples")
    return examples


@dataclass
class DataAudit:
    """What :func:`audit` found."""

    duplicates: list[tuple[str, int, int]] = field(default_factory=list)
    """``(source, row, first row)`` of every exact duplicate (same pair, same label) that was dropped."""
    conflicts: list[tuple[str, int, int]] = field(default_factory=list)
    """``(source, row, other row)`` of every example whose label contradicts an earlier one."""

    def summary(self) -> str:
        """One line for logs."""
        return f"{len(self.duplicates)} exact duplicates dropped, {len(self.conflicts)} label conflicts"


def _key(ex: TrainingExample) -> tuple[str, str, str, str]:
    return (ex.item.instruction, ex.item.input, ex.item.response1, ex.item.response2)


def audit(examples: Sequence[TrainingExample], conflicts: str = "error") -> tuple[list[TrainingExample], DataAudit]:
    """Drop exact duplicates and handle label conflicts (``conflicts``: ``error``, ``drop`` both sides, ``keep``).

    A swapped pair whose label is the flip of the original's is consistent (that is what swap augmentation makes) and
    kept.

    Raises:
        TrainingDataError: With ``conflicts="error"``, on the first conflicts (file and rows named).
    """
    if conflicts not in CONFLICT_POLICIES:
        raise ValueError(f"conflicts must be one of {CONFLICT_POLICIES}, got {conflicts!r}")
    report = DataAudit()
    seen: dict[tuple[str, str, str, str], int] = {}
    kept: list[TrainingExample] = []
    bad: set[int] = set()
    for ex in examples:
        key = _key(ex)
        swapped_key = (key[0], key[1], key[3], key[2])
        if key in seen:
            first = kept[seen[key]]
            if first.label is ex.label:
                report.duplicates.append((ex.source, ex.row, first.row))
                continue
            report.conflicts.append((ex.source, ex.row, first.row))
            bad.update((seen[key], len(kept)))
        elif swapped_key in seen and key != swapped_key:
            first = kept[seen[swapped_key]]
            if first.label.flipped() is not ex.label:
                report.conflicts.append((ex.source, ex.row, first.row))
                bad.update((seen[swapped_key], len(kept)))
        seen.setdefault(key, len(kept))
        kept.append(ex)
    if report.conflicts and conflicts == "error":
        shown = "; ".join(f"{src}: row {row} contradicts row {other}" for src, row, other in report.conflicts[:5])
        more = f" (and {len(report.conflicts) - 5} more)" if len(report.conflicts) > 5 else ""
        raise TrainingDataError(
            f"{len(report.conflicts)} label conflicts (the same pair, or its swap, with another verdict): {shown}{more}"
            "; fix the data or set conflicts: drop (drops both sides) or keep"
        )
    if conflicts == "drop":
        kept = [ex for i, ex in enumerate(kept) if i not in bad]
    if report.duplicates or report.conflicts:
        logger.warning("training data: %s (conflicts: %s)", report.summary(), conflicts)
    return kept, report


def split_by_instruction(
    examples: Sequence[TrainingExample], test_fraction: float, seed: int = 0
) -> tuple[list[TrainingExample], list[TrainingExample]]:
    """Split into (train, held-out) so that no instruction appears on both sides.

    Instructions are shuffled with ``seed`` and taken for the held-out side until it holds at least
    ``test_fraction`` of the examples.

    >>> from lm_eval_pandalm.types import PairItem, Label
    >>> exs = [TrainingExample(PairItem(q, "a", str(i)), Label.FIRST) for i, q in enumerate("aabbccdd")]
    >>> train, test = split_by_instruction(exs, 0.25)
    >>> len(test), {e.item.instruction for e in train} & {e.item.instruction for e in test}
    (2, set())
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[ex.item.instruction.strip()].append(i)
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    target = test_fraction * len(examples)
    held: set[int] = set()
    for name in names:
        if len(held) >= target:
            break
        held.update(groups[name])
    if len(held) == len(examples):
        raise TrainingDataError(
            f"cannot split {len(examples)} examples with {len(groups)} distinct instructions into train and held-out "
            "sides; give an eval_file or more varied data"
        )
    train = [ex for i, ex in enumerate(examples) if i not in held]
    test = [ex for i, ex in enumerate(examples) if i in held]
    return train, test


def augment(
    examples: Sequence[TrainingExample], swap_ratio: float, ref_drop_ratio: float, seed: int = 0
) -> list[tuple[TrainingExample, bool]]:
    """Swap augmentation and reference dropping, decided once per example with ``seed``.

    Each example is replaced by its swap (:meth:`TrainingExample.swapped`: responses, label and "Response 1/2" in
    the reason) with probability ``swap_ratio``, as JudgeLM does; its reference is dropped from the target with
    probability ``ref_drop_ratio``.

    Returns:
        ``(example, keep_reference)`` per example, in order.
    """
    for name, value in (("swap_ratio", swap_ratio), ("ref_drop_ratio", ref_drop_ratio)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    rng = random.Random(seed)
    out = []
    for ex in examples:
        swap = rng.random() < swap_ratio
        keep_ref = rng.random() >= ref_drop_ratio
        out.append((ex.swapped() if swap else ex, keep_ref))
    return out
