"""The package's own JSON-lines formats: recorded verdicts, and pairs to judge.

A verdict file has one JSON object per line::

    {"id": ..., "key": ..., "item": {"instruction", "input", "response1", "response2", "reference", "id",
     "metadata"}, "verdict": {...Verdict.to_dict()...}}

``key`` is the item's order-sensitive content key; it is checked on reading, so an edited item is caught rather than
silently matched to the wrong verdict. A pairs file has one pair per line (``instruction``, optional ``input``,
``response1``, ``response2``, optional ``id``, ``reference``, ``metadata``).

Errors name the file, the 1-based line number and the field.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from .data.sources import JsonLinesError, iter_json_lines, utf8_lines
from .errors import PandaLMError
from .types import PairItem, Verdict

__all__ = [
    "VerdictFileError",
    "item_from_dict",
    "item_to_dict",
    "iter_json_objects",
    "read_pairs",
    "read_verdicts",
    "verdict_record",
    "write_verdict_lines",
    "write_verdicts",
]

logger = logging.getLogger(__name__)

_ITEM_FIELDS = ("instruction", "input", "response1", "response2", "reference", "id", "metadata")


class VerdictFileError(PandaLMError, ValueError):
    """A line of a verdict or pairs file that cannot be read; names the file, line and field."""

    def __init__(self, path: str | Path, line: int, field: str, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.problem = problem
        super().__init__(f"{self.path}: line {line}: field {field!r}: {problem}")


class _FieldError(ValueError):
    """Raised by :func:`item_from_dict`; carries the offending field so callers can add file and line."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"field {field!r}: {problem}")


def item_to_dict(item: PairItem) -> dict[str, Any]:
    """JSON-ready dict of a :class:`PairItem`; :func:`item_from_dict` reads it back.

    Raises:
        TypeError: ``item.metadata`` holds something JSON cannot represent (raised when serialised).
    """
    return {
        "instruction": item.instruction,
        "input": item.input,
        "response1": item.response1,
        "response2": item.response2,
        "reference": item.reference,
        "id": item.id,
        "metadata": dict(item.metadata),
    }


def item_from_dict(data: Mapping[str, Any]) -> PairItem:
    """Build a :class:`PairItem` from a dict as written by :func:`item_to_dict` or a pairs file.

    ``input`` and ``reference`` may be missing or ``null``; ``id`` may be missing (the content key is used) or an
    integer (read as its decimal text);
    ``metadata`` may be missing. Unknown keys are an error, so a misspelt field is not silently ignored.

    Raises:
        ValueError: A field is missing or has the wrong type; the message names the field.
    """
    if not isinstance(data, Mapping):
        raise _FieldError("<item>", f"expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_ITEM_FIELDS))
    if unknown:
        raise _FieldError(unknown[0], f"unknown field; valid fields are {', '.join(_ITEM_FIELDS)}")
    fields: dict[str, Any] = {}
    for name in ("instruction", "response1", "response2"):
        if name not in data:
            raise _FieldError(name, "missing")
        if not isinstance(data[name], str):
            raise _FieldError(name, f"expected a string, got {type(data[name]).__name__}")
        fields[name] = data[name]
    item_id = data.get("id")
    if isinstance(item_id, int) and not isinstance(item_id, bool):
        item_id = str(item_id)  # numeric ids are common in hand-written files
    for name in ("input", "reference", "id"):
        value = item_id if name == "id" else data.get(name)
        if value is not None and not isinstance(value, str):
            raise _FieldError(name, f"expected a string or null, got {type(value).__name__}")
    fields["input"] = data.get("input") or ""
    fields["reference"] = data.get("reference")
    fields["id"] = item_id or ""
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise _FieldError("metadata", f"expected an object or null, got {type(metadata).__name__}")
    fields["metadata"] = dict(metadata or {})
    return PairItem(**fields)


def _ends_without_newline(path: Path) -> bool:
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) != b"\n"


def verdict_record(item: PairItem, verdict: Verdict) -> dict[str, Any]:
    """The JSON object of one verdict-file line.

    The verdict's ``source`` (``cache``, ``cache-flipped``) is left out: it says how this run obtained the verdict,
    not what the verdict is, and a file must not depend on what happened to be cached.
    """
    data = verdict.to_dict()
    data.pop("source", None)
    return {"id": item.id, "key": item.key, "item": item_to_dict(item), "verdict": data}


def write_verdict_lines(handle: IO[str], items: Sequence[PairItem], verdicts: Sequence[Verdict]) -> None:
    """Write one verdict line per (item, verdict) to an open text file, flushing after each.

    Raises:
        ValueError: ``items`` and ``verdicts`` differ in length.
    """
    if len(items) != len(verdicts):
        raise ValueError(f"write_verdicts: {len(items)} items but {len(verdicts)} verdicts")
    for item, verdict in zip(items, verdicts, strict=True):
        handle.write(json.dumps(verdict_record(item, verdict), ensure_ascii=False, allow_nan=False) + "\n")
    handle.flush()


def write_verdicts(path: str | Path, items: Sequence[PairItem], verdicts: Sequence[Verdict]) -> None:
    """Append one line per (item, verdict) to a verdict JSONL file.

    Appending never rewrites earlier lines; if a crash left a partial last line, a newline is written first so new
    records start on their own line (the partial line stays and is reported by :func:`read_verdicts`).

    Args:
        path: File to append to; created with its parent folders if needed.
        items: The judged items.
        verdicts: One verdict per item, same order.

    Raises:
        ValueError: ``items`` and ``verdicts`` differ in length.
    """
    if len(items) != len(verdicts):
        raise ValueError(f"write_verdicts: {len(items)} items but {len(verdicts)} verdicts")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    needs_newline = _ends_without_newline(path)
    with open(path, "a", encoding="utf-8") as fh:
        if needs_newline:
            logger.warning("%s ended with a partial line; starting new records on a fresh line", path)
            fh.write("\n")
        write_verdict_lines(fh, items, verdicts)


def iter_json_objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` per non-blank line; anything but a JSON object is a :class:`VerdictFileError`."""
    try:
        for lineno, value in iter_json_lines(utf8_lines(path), path):
            if not isinstance(value, dict):
                problem = f"expected a JSON object, got {type(value).__name__}"
                raise VerdictFileError(path, lineno, "<line>", problem)
            yield lineno, value
    except JsonLinesError as exc:
        raise VerdictFileError(path, exc.line, "<line>", exc.problem) from exc


def read_verdicts(path: str | Path) -> list[tuple[PairItem, Verdict]]:
    """Read a verdict JSONL file written by :func:`write_verdicts`.

    Args:
        path: The file.

    Returns:
        (item, verdict) pairs in file order.

    Raises:
        VerdictFileError: A line is not JSON, misses a field, or its ``key``/``id`` disagree with its item.
    """
    path = Path(path)
    out: list[tuple[PairItem, Verdict]] = []
    for lineno, record in iter_json_objects(path):
        for name in ("item", "verdict"):
            if not isinstance(record.get(name), dict):
                problem = "missing" if name not in record else f"expected an object, got {type(record[name]).__name__}"
                raise VerdictFileError(path, lineno, name, problem)
        try:
            item = item_from_dict(record["item"])
        except _FieldError as exc:
            raise VerdictFileError(path, lineno, f"item.{exc.field}", exc.problem) from exc
        try:
            verdict = Verdict.from_dict(record["verdict"])
        except (ValueError, TypeError, KeyError) as exc:
            raise VerdictFileError(path, lineno, "verdict", f"not a valid verdict: {exc}") from exc
        if "key" in record and record["key"] != item.key:
            raise VerdictFileError(
                path, lineno, "key", f"{record['key']!r} is not the content key of the item ({item.key}); edited?"
            )
        if "id" in record and record["id"] != item.id:
            raise VerdictFileError(path, lineno, "id", f"{record['id']!r} differs from item.id {item.id!r}")
        out.append((item, verdict))
    return out


def read_pairs(path: str | Path) -> list[PairItem]:
    """Read pairs to judge from a JSONL file.

    Each line is an object with ``instruction``, ``response1``, ``response2`` (strings) and optionally ``input``,
    ``id``, ``reference`` (strings or null) and ``metadata`` (object). A missing ``id`` means the item is identified
    by its content key.

    Raises:
        VerdictFileError: A line is not JSON (or not UTF-8), a field is missing or mistyped, or an ``id`` is used
            twice.
    """
    path = Path(path)
    items: list[PairItem] = []
    first_line: dict[str, int] = {}
    for lineno, record in iter_json_objects(path):
        try:
            item = item_from_dict(record)
        except _FieldError as exc:
            raise VerdictFileError(path, lineno, exc.field, exc.problem) from exc
        if record.get("id") is not None and item.id in first_line:
            raise VerdictFileError(
                path, lineno, "id", f"id {item.id!r} was already used on line {first_line[item.id]}; ids must be unique"
            )
        first_line.setdefault(item.id, lineno)
        items.append(item)
    return items
