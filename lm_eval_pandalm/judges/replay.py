"""Recorded verdicts served as a :class:`~lm_eval_pandalm.judge.Judge`.

A replay judge answers from verdicts someone already recorded: PandaLM's published outputs of PandaLM-7B and
gpt-3.5-turbo on its test set, the human majority labels, LLMBar's recorded outputs of GPT-4 / ChatGPT / LLaMA2 /
PaLM2, or a verdict JSONL file written by :func:`lm_eval_pandalm.verdict_io.write_verdicts`. It lets the whole
evaluation pipeline run offline and reproduce published numbers.

Items are matched on :attr:`PairItem.key`, the order-sensitive content key, so a pair whose responses are swapped is
a different pair: it is served only when a verdict in that order was recorded (LLMBar recorded both orders; humans'
labels do not depend on order). When several recordings share a key (PandaLM's test set repeats some pairs), the
one recorded for the same ``item.id`` is preferred, else the first in file order.

A pair with no recorded verdict is an error (:class:`MissingVerdictError`), not a failed verdict: the replay judge
cannot judge, and pretending it tried would bias every metric computed from its output.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..data.benchmarks import (
    BENCHMARKS,
    LLMBAR_FORMAT_BENCHMARKS,
    BenchmarkFormatError,
    llmbar_evaluator_file,
    load_benchmark,
)
from ..data.sources import (
    FIX_HINT,
    PANDALM_REPO,
    DataUnavailableError,
    SourceFile,
    read_json,
    resolve,
    sha256_file,
    source_file,
)
from ..errors import PandaLMError
from ..types import Label, PairItem, Verdict, VerdictState

__all__ = [
    "DEFAULT_STRATEGY",
    "LLMBAR_JUDGES",
    "REPLAY_NAMES",
    "ConflictingRecordsError",
    "MissingVerdictError",
    "Recording",
    "ReplayJudge",
    "ReplaySource",
    "replay_judge",
]

logger = logging.getLogger(__name__)

DEFAULT_STRATEGY = "Vanilla_NoRules"
"""LLMBar's plain prompting strategy; the only one in the offline mirror."""

LLMBAR_JUDGES: tuple[str, ...] = ("GPT-4", "ChatGPT", "LLaMA2", "PaLM2")
"""Evaluators whose outputs LLMBar recorded (PaLM2 only on the ``Processed`` sets)."""

REPLAY_NAMES: tuple[str, ...] = ("pandalm-7b", "gpt-3.5-turbo", "human", *LLMBAR_JUDGES)
"""Names :func:`replay_judge` accepts, besides a path to a verdict ``.jsonl`` file."""

_PANDALM_FILES = {
    "pandalm-7b": "data/pandalm-7b-testset-v1.json",
    "gpt-3.5-turbo": "data/gpt-3.5-turbo-testset-v1.json",
}
_PANDALM_RESULT = {0: Label.TIE, 1: Label.FIRST, 2: Label.SECOND}  # PandaLM-7B's recorded ints: 0 is Tie
_STRATEGY_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_SHOW_MISSING = 5


class ConflictingRecordsError(PandaLMError, ValueError):
    """A verdict file records different verdicts for one pair and id."""


class MissingVerdictError(PandaLMError, KeyError):
    """Some items have no recorded verdict in any source the replay judge searched."""

    def __init__(self, message: str, missing_ids: Sequence[str]) -> None:
        super().__init__(message)
        self.message = message
        self.missing_ids = list(missing_ids)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


@dataclass(frozen=True)
class Recording:
    """One recorded verdict and the pair presentation it was recorded on."""

    key: str
    """Content key (:attr:`PairItem.key`) of the pair, in the order the judge saw it."""
    item_id: str
    """Id of the benchmark item it belongs to (swapped presentations share the item's id)."""
    verdict: Verdict
    """The verdict, already in the frame of ``key``."""


@dataclass(frozen=True)
class ReplaySource:
    """One lazily loaded set of recorded verdicts."""

    name: str
    """Description used in errors and logs (benchmark and file)."""
    load: Callable[[], list[Recording]]
    """Reads the recordings; raises :class:`~lm_eval_pandalm.data.DataUnavailableError` when the files are not
    available (the source is then skipped while others may still provide the verdicts)."""
    files: tuple[SourceFile, ...] = ()
    """The pinned data files ``load`` reads (checked by :meth:`ReplayJudge.check_available`)."""


class ReplayJudge:
    """A :class:`~lm_eval_pandalm.judge.Judge` that serves recorded verdicts; build it with :func:`replay_judge`.

    Sources are loaded in order, only until every requested item is found, and stay loaded.
    """

    def __init__(self, judge_id: str, fingerprint: str, sources: Sequence[ReplaySource]) -> None:
        self.judge_id = judge_id
        self._fingerprint = fingerprint
        self._pending: list[ReplaySource] = list(sources)
        self._loaded: list[str] = []
        self._failed: dict[str, DataUnavailableError] = {}
        self._index: dict[str, list[Recording]] = {}

    @property
    def fingerprint(self) -> str:
        """``replay:<name>`` plus strategy and the sha256 of the identities and checksums of the files used."""
        return self._fingerprint

    @property
    def loaded_sources(self) -> tuple[str, ...]:
        """Names of the sources read so far (sources are read lazily, in order, only while items are missing)."""
        return tuple(self._loaded)

    def __repr__(self) -> str:
        return f"ReplayJudge({self.judge_id!r}, loaded={self._loaded}, pending={[s.name for s in self._pending]})"

    def check_available(self, data_dir: str | Path | None = None) -> None:
        """Check, before any work, that the recordings can be read: every file of at least one source is present
        (or can be downloaded); sources already loaded count.

        Raises:
            DataUnavailableError: No source's files can be found (the first source's error, which names the fix).
        """
        if self._loaded or not self._pending:
            return
        first: DataUnavailableError | None = None
        for source in self._pending:
            try:
                for file in source.files:
                    resolve(file, data_dir)
            except DataUnavailableError as exc:
                first = first or exc
                continue
            return
        assert first is not None
        raise first

    def _load_until_found(self, keys: set[str]) -> set[str]:
        missing = {key for key in keys if key not in self._index}
        while missing and self._pending:
            source = self._pending.pop(0)
            try:
                records = source.load()
            except DataUnavailableError as exc:
                logger.info("replay %s: skipping %s: %s", self.judge_id, source.name, exc)
                self._failed[source.name] = exc
                continue
            for record in records:
                self._index.setdefault(record.key, []).append(record)
            self._loaded.append(source.name)
            logger.debug("replay %s: loaded %d recordings from %s", self.judge_id, len(records), source.name)
            missing = {key for key in missing if key not in self._index}
        return missing

    def __call__(self, items: Sequence[PairItem]) -> list[Verdict]:
        """The recorded verdict of every item, in order.

        Raises:
            MissingVerdictError: Some items were recorded by no source (the message lists how many, the first ids,
                the sources searched and those that could not be loaded).
        """
        missing = self._load_until_found({item.key for item in items})
        if missing:
            raise self._missing_error(items, missing)
        verdicts = []
        for item in items:
            candidates = self._index[item.key]
            chosen = next((rec for rec in candidates if rec.item_id == item.id), candidates[0])
            verdicts.append(chosen.verdict)
        return verdicts

    def _missing_error(self, items: Sequence[PairItem], missing: set[str]) -> MissingVerdictError:
        missing_items = [item for item in items if item.key in missing]
        ids = list(dict.fromkeys(item.id for item in missing_items))
        shown = ", ".join(ids[:_SHOW_MISSING]) + (", ..." if len(ids) > _SHOW_MISSING else "")
        lines = [
            f"replay judge {self.judge_id}: no recorded verdict for {len(missing_items)} of {len(items)} items "
            f"(ids: {shown})."
        ]
        other_order = sum(1 for item in missing_items if item.swapped().key in self._index)
        if other_order:
            lines.append(f"{other_order} of them were recorded only with the responses in the other order.")
        lines.append(f"Searched: {', '.join(self._loaded) or 'nothing'}.")
        if self._failed:
            failed = "; ".join(
                f"{name}: {exc.relpath} unavailable, {exc.reason}" if exc.relpath else f"{name}: {exc}"
                for name, exc in self._failed.items()
            )
            lines.append(f"Could not load: {failed}. To use them, {FIX_HINT}.")
        return MissingVerdictError(" ".join(lines), ids)


# -- sources --------------------------------------------------------------------------------------------------------


def _file_identity(file: SourceFile) -> str:
    return f"{file.relpath}@{file.commit}={file.sha256 or 'unpinned'}"


def _benchmark_identity(name: str) -> str:
    if name in BENCHMARKS:
        return _file_identity(BENCHMARKS[name].file)
    path = Path(name.removeprefix("file:")).expanduser()
    return f"{name}={sha256_file(path) if path.is_file() else 'missing'}"


def _fingerprint(name: str, strategy: str | None, identities: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join(identities).encode("utf-8")).hexdigest()
    return f"replay:{name}|{strategy or '-'}|sha256:{digest}"


def _completion_text(completion: Any) -> str | None:
    # LLMBar stores [text, finish_reason] for API judges; be lenient about other shapes, it is only the raw text.
    if isinstance(completion, list) and completion and isinstance(completion[0], str):
        return completion[0]
    if isinstance(completion, str):
        return completion
    return None if completion is None else repr(completion)


def _pandalm_source(kind: str, judge_id: str, data_dir: str | Path | None) -> tuple[ReplaySource, list[str]]:
    file = source_file(PANDALM_REPO, _PANDALM_FILES[kind])
    bench_file = BENCHMARKS["pandalm"].file
    prefix = "pandalm" if kind == "pandalm-7b" else "gpt"

    def verdict_of(row: Mapping[str, Any]) -> Verdict:
        result = row.get(f"{prefix}_result")
        reason = row.get(f"{prefix}_reason") or None
        reference = row.get(f"{prefix}_reference") or None
        label: Label | None = None
        if isinstance(result, int) and not isinstance(result, bool) and kind == "pandalm-7b":
            label = _PANDALM_RESULT.get(result)
        elif isinstance(result, str):
            label = Label.parse(result)
        if label is None:
            return Verdict.failed(
                judge_id,
                VerdictState.UNPARSED,
                error=f"recorded {prefix}_result {result!r} names no verdict",
                raw=None if result is None else str(result),
                reason=reason,
                reference=reference,
                source="replay",
            )
        return Verdict.hard(judge_id, label, raw=str(result), reason=reason, reference=reference, source="replay")

    def load() -> list[Recording]:
        bench = load_benchmark("pandalm", data_dir)
        rows = read_json(file, data_dir)
        if not isinstance(rows, list):
            raise ValueError(f"{file.relpath}: expected a JSON list, got {type(rows).__name__}")
        by_idx: dict[int, Mapping[str, Any]] = {}
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping) or isinstance(row.get("idx"), bool) or not isinstance(row.get("idx"), int):
                raise BenchmarkFormatError(file.relpath, i, "idx", "missing or not an integer")
            if row["idx"] in by_idx:
                raise BenchmarkFormatError(file.relpath, i, "idx", f"duplicate idx {row['idx']}")
            by_idx[row["idx"]] = row
        records = []
        for item in bench.items:
            row = by_idx.get(item.metadata["idx"])
            if row is not None:
                records.append(Recording(item.key, item.id, verdict_of(row)))
        return records

    source = ReplaySource(f"pandalm ({file.relpath})", load, (bench_file, file))
    return source, [_file_identity(bench_file), _file_identity(file)]


def _human_source(benchmark: str, judge_id: str, data_dir: str | Path | None) -> ReplaySource:
    def load() -> list[Recording]:
        bench = load_benchmark(benchmark, data_dir)
        records = []
        for item, gold in zip(bench.items, bench.gold, strict=True):
            verdict = Verdict.hard(judge_id, gold, source="replay")
            records.append(Recording(item.key, item.id, verdict))
            # Humans judged the pair, not a presentation of it: the swapped pair gets the flipped label.
            records.append(Recording(item.swapped().key, item.id, verdict.flipped()))
        return records

    files = (BENCHMARKS[benchmark].file,) if benchmark in BENCHMARKS else ()
    return ReplaySource(f"{benchmark} (gold labels)", load, files)


def _llmbar_source(
    benchmark: str, judge: str, strategy: str, judge_id: str, data_dir: str | Path | None
) -> tuple[ReplaySource, list[str]]:
    file = llmbar_evaluator_file(benchmark, judge, strategy)

    def verdict_of(entry: Any, row: int, swap: bool) -> Verdict:
        field = f"results[0]['swap = {swap}']"
        if not isinstance(entry, Mapping):
            raise BenchmarkFormatError(file.relpath, row, field, "missing or not an object")
        raw = _completion_text(entry.get("completion"))
        winner = entry.get("winner")
        label = Label.parse(winner) if isinstance(winner, str) else None
        if label is None:
            return Verdict.failed(
                judge_id,
                VerdictState.UNPARSED,
                error=f"LLMBar recorded winner {winner!r} ({benchmark} row {row}, swap = {swap})",
                raw=raw,
                source="replay",
            )
        return Verdict.hard(judge_id, label, raw=raw, source="replay")

    def load() -> list[Recording]:
        bench = load_benchmark(benchmark, data_dir)
        rows = read_json(file, data_dir)
        if not isinstance(rows, list) or len(rows) != len(bench.items):
            size = len(rows) if isinstance(rows, list) else type(rows).__name__
            raise ValueError(
                f"{file.relpath}: expected a list of {len(bench.items)} results aligned with the dataset, got {size}"
            )
        records = []
        for i, (row, item) in enumerate(zip(rows, bench.items, strict=True)):
            if not isinstance(row, Mapping):
                raise BenchmarkFormatError(file.relpath, i, "<row>", "expected an object")
            for field, expected in (
                ("input", item.instruction),
                ("output_1", item.response1),
                ("output_2", item.response2),
            ):
                if field in row and row[field] != expected:
                    raise BenchmarkFormatError(file.relpath, i, field, f"differs from row {i} of {bench.source}")
            results = row.get("results")
            if not isinstance(results, list) or not results or not isinstance(results[0], Mapping):
                raise BenchmarkFormatError(file.relpath, i, "results", "expected a non-empty list of objects")
            first = verdict_of(results[0].get("swap = False"), i, False)
            # LLMBar maps the swapped run's winner back to the original order; flip it into the swapped frame.
            second = verdict_of(results[0].get("swap = True"), i, True).flipped()
            records.append(Recording(item.key, item.id, first))
            records.append(Recording(item.swapped().key, item.id, second))
        return records

    bench_file = BENCHMARKS[benchmark].file
    source = ReplaySource(f"{benchmark} ({file.relpath})", load, (bench_file, file))
    return source, [_file_identity(bench_file), _file_identity(file)]


def _check_conflicts(path: Path, recorded: Sequence[tuple[PairItem, Verdict]]) -> None:
    """Refuse a verdict file that records different verdicts for the same pair and id (which one would be served?)."""
    seen: dict[tuple[str, str], Verdict] = {}
    conflicts: list[str] = []
    for item, verdict in recorded:
        key = (item.key, item.id)
        earlier = seen.setdefault(key, verdict)
        if replace(earlier, source=None, latency_s=None) != replace(verdict, source=None, latency_s=None):
            conflicts.append(item.id)
    if conflicts:
        ids = ", ".join(dict.fromkeys(conflicts))
        raise ConflictingRecordsError(
            f"{path}: different verdicts are recorded for the same pair and id (ids: {ids}); keep one line for each"
        )


def _jsonl_judge(path: Path) -> ReplayJudge:
    from ..verdict_io import read_verdicts

    if not path.is_file():
        raise FileNotFoundError(f"verdict file {path} does not exist")
    recorded = read_verdicts(path)
    _check_conflicts(path, recorded)
    judges = sorted({verdict.judge_id for _, verdict in recorded})
    # Name the replay after the judge that produced the verdicts (replaying a replay keeps its name).
    recorded_by = judges[0].removeprefix("replay:") if len(judges) == 1 else path.name
    judge_id = f"replay:{recorded_by}"
    records = [
        Recording(item.key, item.id, replace(verdict, judge_id=judge_id, source="replay")) for item, verdict in recorded
    ]
    source = ReplaySource(str(path), lambda: records)
    fingerprint = _fingerprint(judge_id.removeprefix("replay:"), None, [f"{path.name}={sha256_file(path)}"])
    return ReplayJudge(judge_id, fingerprint, [source])


# -- factory --------------------------------------------------------------------------------------------------------


def _canonical(name: str) -> str:
    for known in REPLAY_NAMES:
        if name.lower() == known.lower():
            return known
    by_lower = {known.lower(): known for known in REPLAY_NAMES}
    close = difflib.get_close_matches(name, REPLAY_NAMES, n=1, cutoff=0.4) or [
        by_lower[match] for match in difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.4)
    ]
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown replay judge {name!r}.{hint} Valid names: {', '.join(REPLAY_NAMES)} (LLMBar judges optionally "
        f"as <judge>/<strategy>), or a path to a verdict .jsonl file."
    )


def _benchmark_list(benchmarks: Sequence[str] | None, allowed: Sequence[str] | None, judge: str) -> list[str]:
    if isinstance(benchmarks, str):
        benchmarks = [benchmarks]
    names = []
    for name in benchmarks or []:
        key = name if name.startswith("file:") else name.strip().lower()
        if allowed is not None and key not in allowed:
            raise ValueError(f"replay:{judge} has recordings only for {', '.join(allowed)}; got {name!r}")
        if allowed is None and not key.startswith("file:") and key not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {name!r}; valid: {', '.join(BENCHMARKS)} or file:<path>")
        names.append(key)
    return names


def replay_judge(
    name: str,
    *,
    strategy: str = DEFAULT_STRATEGY,
    benchmarks: Sequence[str] | None = None,
    data_dir: str | Path | None = None,
) -> ReplayJudge:
    """Build a judge that serves recorded verdicts.

    Args:
        name: What to replay, with or without a ``replay:`` prefix:

            * ``pandalm-7b`` / ``gpt-3.5-turbo``: PandaLM's recorded outputs on its 999-pair test set, in the
              test set's order only. ``gpt-3.5-turbo`` recorded 25 ``garbage`` answers: ``UNPARSED`` verdicts.
            * ``human``: the human (gold) label of each pair of ``benchmarks`` (default: PandaLM's test set, then
              the other built-in benchmarks, loaded lazily), served in both orders (the swapped pair gets the
              flipped label).
            * ``GPT-4``, ``ChatGPT``, ``LLaMA2``, ``PaLM2`` (optionally ``GPT-4/<strategy>``): LLMBar's recorded
              outputs, both orders, on ``benchmarks`` (default: all LLMBar-format sets, loaded lazily).
            * a path ending in ``.jsonl``: a verdict file written by
              :func:`~lm_eval_pandalm.verdict_io.write_verdicts`.
        strategy: LLMBar's prompting strategy folder (LLMBar judges only).
        benchmarks: Which benchmarks' recordings to search (LLMBar judges and ``human`` only).
        data_dir: Offline mirror laid out as ``<owner>/<repo>/<path>``; defaults to ``$PANDALM_DATA_DIR``.

    Returns:
        The judge. Nothing is read until it is first called (except a ``.jsonl`` file, read at once).

    Raises:
        ValueError: Unknown name (with the closest valid one), or an argument that does not apply to this name.
        FileNotFoundError: A ``.jsonl`` path that does not exist.
    """
    spec = name.removeprefix("replay:").strip()
    if spec.endswith(".jsonl"):
        if benchmarks is not None or strategy != DEFAULT_STRATEGY:
            raise ValueError("strategy and benchmarks do not apply when replaying a verdict .jsonl file")
        return _jsonl_judge(Path(spec).expanduser())

    base, _, inline_strategy = spec.partition("/")
    judge = _canonical(base)
    if inline_strategy:
        if judge not in LLMBAR_JUDGES:
            raise ValueError(
                f"replay:{judge} has no strategies; only {', '.join(LLMBAR_JUDGES)} take <judge>/<strategy>"
            )
        if strategy != DEFAULT_STRATEGY and strategy != inline_strategy:
            raise ValueError(f"strategy given twice and differently: {inline_strategy!r} in the name, {strategy!r}")
        strategy = inline_strategy
    if not _STRATEGY_NAME.match(strategy) or strategy in (".", ".."):
        raise ValueError(
            f"invalid strategy {strategy!r}: use an LLMBar strategy folder name such as {DEFAULT_STRATEGY}"
        )

    if judge in _PANDALM_FILES:
        if strategy != DEFAULT_STRATEGY:
            raise ValueError(f"replay:{judge} has no strategies (got {strategy!r})")
        _benchmark_list(benchmarks, ["pandalm"], judge)
        judge_id = f"replay:{judge}"
        source, identities = _pandalm_source(judge, judge_id, data_dir)
        return ReplayJudge(judge_id, _fingerprint(judge, None, identities), [source])

    if judge == "human":
        if strategy != DEFAULT_STRATEGY:
            raise ValueError(f"replay:human has no strategies (got {strategy!r})")
        # Default: PandaLM's test set first (the documented source), then every other built-in set, lazily.
        names = _benchmark_list(benchmarks, None, judge) or list(BENCHMARKS)
        judge_id = "replay:human"
        identities = [_benchmark_identity(n) for n in names]
        sources = [_human_source(n, judge_id, data_dir) for n in names]
        return ReplayJudge(judge_id, _fingerprint(judge, None, identities), sources)

    names = _benchmark_list(benchmarks, LLMBAR_FORMAT_BENCHMARKS, judge) or list(LLMBAR_FORMAT_BENCHMARKS)
    judge_id = f"replay:{judge}" if strategy == DEFAULT_STRATEGY else f"replay:{judge}/{strategy}"
    sources, identities = [], []
    for bench in names:
        source, ids = _llmbar_source(bench, judge, strategy, judge_id, data_dir)
        sources.append(source)
        identities.extend(ids)
    return ReplayJudge(judge_id, _fingerprint(judge, strategy, identities), sources)
