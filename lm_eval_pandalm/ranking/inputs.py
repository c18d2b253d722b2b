"""Read N candidates' answers into :class:`~.compare.Answers`: JSONL files of responses, or lm-eval samples.

* A responses file has one JSON object per line: ``instruction``, optional ``input``, and the response as
  ``response`` (or ``output``), optionally an ``id``.
* An lm-eval samples file (``samples_<task>_<date>.jsonl`` of a ``pandalm_pairwise`` or
  ``pandalm_pairwise_generate`` run with ``--log_samples``) has the instruction in ``doc.instruction`` (and
  ``doc.input``) and the generated text in ``resps[0][0]``.

Rows are matched across candidates by ``id`` when every row of every file has one, else by ``(instruction,
input)``. Every candidate must answer the same instructions, each once: a missing or repeated one is an error that
names the file and line, not a silently shrunk comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..verdict_io import VerdictFileError, iter_json_objects
from .compare import Answers, CompareInputError

__all__ = ["parse_named", "read_answers"]

_Row = tuple[Any, str, str, str, int]  # key, instruction, input, response, line


def parse_named(specs: Sequence[str], flag: str) -> list[tuple[str, Path]]:
    """``NAME=PATH`` arguments; a bare ``PATH`` is named after its file stem."""
    out = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).stem, spec
        if not name or not path:
            raise CompareInputError(f"{flag} {spec!r}: expected NAME=PATH")
        out.append((name, Path(path).expanduser()))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise CompareInputError(f"{flag}: candidate names must be distinct, got {names} (use NAME=PATH)")
    return out


def _text(path: Path, line: int, data: Any, field: str, label: str, *, required: bool) -> str:
    value = data.get(field) if isinstance(data, dict) else None
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise VerdictFileError(path, line, label, f"expected a string, got {type(value).__name__}")
    return value


def _responses_rows(path: Path) -> list[_Row]:
    rows = []
    for line, data in iter_json_objects(path):
        field = "response" if "response" in data else "output"
        response = _text(path, line, data, field, "response", required=True)
        instruction = _text(path, line, data, "instruction", "instruction", required=True)
        input_ = _text(path, line, data, "input", "input", required=False)
        rows.append((data.get("id"), instruction, input_, response, line))
    return rows


def _samples_rows(path: Path) -> list[_Row]:
    rows = []
    for line, data in iter_json_objects(path):
        doc = data.get("doc")
        if not isinstance(doc, dict):
            raise VerdictFileError(path, line, "doc", "missing or not an object (is this an lm-eval samples file?)")
        resps = data.get("resps")
        if not (isinstance(resps, list) and resps and isinstance(resps[0], list) and resps[0]):
            raise VerdictFileError(path, line, "resps", "expected [[generated text, ...]] (a generate_until task)")
        if not isinstance(resps[0][0], str):
            raise VerdictFileError(path, line, "resps", "expected the generated text as a string")
        instruction = _text(path, line, doc, "instruction", "doc.instruction", required=True)
        input_ = _text(path, line, doc, "input", "doc.input", required=False)
        key = doc.get("id", data.get("doc_id"))
        rows.append((key, instruction, input_, resps[0][0], line))
    return rows


def read_answers(named: Sequence[tuple[str, Path]], kind: str) -> Answers:
    """Every candidate's responses, aligned on the first file's instruction order.

    Args:
        named: ``(candidate name, file)`` pairs.
        kind: ``responses`` (JSONL of responses) or ``samples`` (lm-eval samples files).

    Raises:
        CompareInputError: Fewer than two candidates, or the files do not answer the same instructions.
        VerdictFileError: A line lacks a field it needs (file, line and field named).
    """
    if len(named) < 2:
        raise CompareInputError(f"compare needs at least two candidates, got {len(named)}")
    reader = _responses_rows if kind == "responses" else _samples_rows
    tables = []
    for _, path in named:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        rows = reader(path)
        if not rows:
            raise VerdictFileError(path, 1, "<file>", "no rows (the file is empty)")
        tables.append((path, rows))
    by_id = all(row[0] is not None for _, rows in tables for row in rows)
    keyed = []
    for path, rows in tables:
        seen: dict[Any, tuple[str, str, str, int]] = {}
        for key, instruction, input_, response, line in rows:
            k = str(key) if by_id else (instruction, input_)
            if k in seen:
                raise VerdictFileError(path, line, "id" if by_id else "instruction", f"repeats line {seen[k][3]}")
            seen[k] = (instruction, input_, response, line)
        keyed.append((path, seen))
    first_path, first = keyed[0]
    for path, table in keyed[1:]:
        missing = [k for k in first if k not in table]
        extra = [k for k in table if k not in first]
        if missing or extra:
            what = f"lacks {len(missing)} of {first_path}'s instructions" if missing else ""
            what += ("; " if what else "") + (f"has {len(extra)} that {first_path} lacks" if extra else "")
            example = (missing or extra)[0]
            raise CompareInputError(
                f"{path}: {what} (e.g. {example!r:.120}); every candidate must answer the same instructions"
            )
    keys = list(first)
    return Answers(
        names=[name for name, _ in named],
        instructions=[(first[k][0], first[k][1]) for k in keys],
        responses=[[table[k][2] for k in keys] for _, table in keyed],
    )
