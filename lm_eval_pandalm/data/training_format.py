"""PandaLM's training tuples: reading, validating and writing them.

One example is ``{"inputs": {instruction, input, response1, response2}, "outputs": {evaluation_result,
evaluation_reason, reference_response}}`` with ``evaluation_result`` one of ``"1"``, ``"2"``, ``"Tie"``. This is the
format of PandaLM's released training data, of ``pandalm export-escalations`` and of
``python -m lm_eval_pandalm.testing.synthetic``. A file is a JSON list or JSON lines.

The parsing lives here, in the data layer, so that ``file:`` benchmarks can read a held-out training-format file
directly (the gold label is ``evaluation_result``); :mod:`lm_eval_pandalm.training` builds on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..types import Label, PairItem
from .benchmarks import BenchmarkFormatError

__all__ = ["TrainingExample", "is_training_row", "parse_training_rows", "training_record"]


@dataclass(frozen=True)
class TrainingExample:
    """One labelled pair to train a judge on."""

    item: PairItem
    """The pair, as shown to the judge."""
    label: Label
    """The verdict to learn."""
    reason: str = ""
    """PandaLM's ``evaluation_reason`` (may be empty)."""
    reference: str = ""
    """PandaLM's ``reference_response`` (may be empty)."""
    source: str = ""
    """File (or benchmark) the example came from, for error messages."""
    row: int = -1
    """0-based row in :attr:`source`."""

    def swapped(self) -> TrainingExample:
        """The example with the responses in the other order, label flipped and "Response 1/2" swapped in the reason.

        >>> from lm_eval_pandalm.types import PairItem, Label
        >>> ex = TrainingExample(PairItem("q", "a", "b"), Label.FIRST, "Response 1 beats response 2.")
        >>> s = ex.swapped()
        >>> (s.item.response1, s.label.value, s.reason)
        ('b', '2', 'Response 2 beats response 1.')
        """
        from dataclasses import replace

        return replace(
            self, item=self.item.swapped(), label=self.label.flipped(), reason=flip_response_mentions(self.reason)
        )


def flip_response_mentions(text: str) -> str:
    """Swap the numbers in "Response 1" / "Response 2" (any case, also "response1", "Output 1", "Assistant 2").

    >>> flip_response_mentions("response1 is longer than Response 2")
    'response2 is longer than Response 1'
    """
    import re

    return re.sub(
        r"\b(responses?|output|assistant|answer)(\s*)([12])\b",
        lambda m: f"{m.group(1)}{m.group(2)}{'2' if m.group(3) == '1' else '1'}",
        text,
        flags=re.IGNORECASE,
    )


def is_training_row(row: Any) -> bool:
    """Whether a decoded JSON row is in PandaLM's training format (has ``inputs`` and ``outputs`` objects)."""
    return (
        isinstance(row, Mapping) and isinstance(row.get("inputs"), Mapping) and isinstance(row.get("outputs"), Mapping)
    )


def _text(source: str, row: int, data: Mapping[str, Any], field: str, *, optional: bool, line: int | None) -> str:
    name = field.split(".")[-1]
    if name not in data or data[name] is None:
        if optional:
            return ""
        raise BenchmarkFormatError(source, row, field, "missing", line=line)
    value = data[name]
    if isinstance(value, bool) and field.startswith("inputs.response"):
        return "True" if value else "False"  # a model's literal output parsed as a JSON boolean, as in benchmarks
    if not isinstance(value, str):
        raise BenchmarkFormatError(source, row, field, f"expected a string, got {type(value).__name__}", line=line)
    return value


def parse_training_rows(
    rows: Sequence[Any], source: str, lines: Sequence[int] | None = None, id_prefix: str | None = None
) -> list[TrainingExample]:
    """Validate and convert decoded rows; every problem names the file, the 0-based row and the field.

    Raises:
        BenchmarkFormatError: A row is not an object, lacks ``inputs``/``outputs`` or a required field, or has a
            value of the wrong type or an ``evaluation_result`` other than 1, 2 or Tie.
    """
    examples = []
    prefix = id_prefix if id_prefix is not None else source
    for row, raw in enumerate(rows):
        line = lines[row] if lines is not None else None
        if not isinstance(raw, Mapping):
            raise BenchmarkFormatError(source, row, "<row>", f"expected a JSON object, got {type(raw).__name__}", line)
        for part in ("inputs", "outputs"):
            if not isinstance(raw.get(part), Mapping):
                problem = "missing" if part not in raw else f"expected an object, got {type(raw[part]).__name__}"
                raise BenchmarkFormatError(source, row, part, problem, line)
        inputs, outputs = raw["inputs"], raw["outputs"]
        result = outputs.get("evaluation_result")
        label = Label.parse(str(result)) if isinstance(result, str | int) and not isinstance(result, bool) else None
        if label is None or str(result).strip().lower() not in ("1", "2", "tie"):
            raise BenchmarkFormatError(
                source, row, "outputs.evaluation_result", f"bad verdict {result!r} (expected '1', '2' or 'Tie')", line
            )
        item = PairItem(
            instruction=_text(source, row, inputs, "inputs.instruction", optional=False, line=line),
            input=_text(source, row, inputs, "inputs.input", optional=True, line=line),
            response1=_text(source, row, inputs, "inputs.response1", optional=False, line=line),
            response2=_text(source, row, inputs, "inputs.response2", optional=False, line=line),
            id=f"{prefix}/{row}",
            metadata={"source_row": row, "gold": label.value},
        )
        examples.append(
            TrainingExample(
                item=item,
                label=label,
                reason=_text(source, row, outputs, "outputs.evaluation_reason", optional=True, line=line),
                reference=_text(source, row, outputs, "outputs.reference_response", optional=True, line=line),
                source=source,
                row=row,
            )
        )
    return examples


def training_record(item: PairItem, label: Label, reason: str = "", reference: str = "") -> dict[str, Any]:
    """One row of PandaLM's training format."""
    return {
        "inputs": {
            "instruction": item.instruction,
            "input": item.input,
            "response1": item.response1,
            "response2": item.response2,
        },
        "outputs": {"evaluation_result": label.value, "evaluation_reason": reason, "reference_response": reference},
    }
