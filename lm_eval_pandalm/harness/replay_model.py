"""``pandalm-replay``: recorded judge verdicts served to lm-eval as a language model.

:class:`PandaLMReplayLM` answers the ``loglikelihood`` requests of the ``pandalm_judge_*`` tasks (and of any task that
asks PandaLM's prompt followed by ``1\\n``, ``2\\n`` or ``Tie\\n``) from verdicts someone already recorded
(:mod:`lm_eval_pandalm.judges.replay`): PandaLM-7B's and gpt-3.5-turbo's published outputs, the human labels, or
LLMBar's GPT-4 / ChatGPT / LLaMA2 outputs. The recorded label's continuation gets log-likelihood 0 and the other two
:data:`OTHER_LOGLIKELIHOOD`, so lm-eval's tasks and metrics reproduce the recorded judge's figures offline::

    lm-eval-pandalm --model pandalm-replay --model_args judge=pandalm-7b --tasks pandalm_judge_testset

A request is matched to a pair through its context: the model indexes the PandaLM prompt of every pair of the
benchmarks the judge has recordings for, in both orders, and looks the context up exactly. Where several pairs render
to the same prompt (PandaLM's test set repeats some pairs) and their recordings disagree, the request's doc ``id``
chooses; without one, that is an error rather than a guess.

Every request must be answerable: a context that is no known pair's prompt, a pair with no recording in that order,
or a recording that names no verdict is an error that says how many and what to do. An unparsed recording is counted
as Tie only when asked (``unparsed=tie``, how PandaLM's README table was computed).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from tqdm.auto import tqdm

from ..data.benchmarks import BENCHMARKS, LLMBAR_FORMAT_BENCHMARKS, load_benchmark
from ..data.sources import DataUnavailableError
from ..judges.replay import DEFAULT_STRATEGY, MissingVerdictError, ReplayJudge, replay_judge
from ..prompt import build_prompt
from ..types import Label, PairItem, Verdict, VerdictState

__all__ = ["OTHER_LOGLIKELIHOOD", "UNPARSED_POLICIES", "PandaLMReplayLM", "ReplayRequestError"]

logger = logging.getLogger(__name__)

OTHER_LOGLIKELIHOOD = -1e9
"""Log-likelihood of a continuation that is not the recorded verdict (probability 0 after normalisation, yet finite
so that every lm-eval metric and JSON log can take it)."""
UNPARSED_POLICIES = ("error", "tie")
"""What to do with a recorded verdict that names no label: ``error`` (default) or ``tie`` (PandaLM's legacy count)."""
_SHOW = 5
_PANDALM_RECORDED = ("replay:pandalm-7b", "replay:gpt-3.5-turbo")


class ReplayRequestError(ValueError):
    """Requests the replay model cannot answer: unknown prompts, ambiguous prompts or unusable recordings."""


@dataclass(frozen=True)
class _Presentation:
    """A benchmark pair as a prompt showed it: as given, or with its responses swapped."""

    item: PairItem
    swapped: bool

    @property
    def pair(self) -> PairItem:
        """The pair in the order the prompt shows it (what the replay judge is asked about)."""
        return self.item.swapped() if self.swapped else self.item


@dataclass(frozen=True)
class _Source:
    """Pairs whose prompts the model can recognise, loaded on first need."""

    name: str
    load: Callable[[], Sequence[PairItem]]


def _split_names(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    names = value.split("+") if isinstance(value, str) else list(value)
    names = [name.strip() for name in names if name.strip()]
    return names or None


def _shorten(text: str, limit: int = 80) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _count_line(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))


class PandaLMReplayLM(LM):
    """An lm-eval model that answers PandaLM-prompt verdict requests from recorded verdicts.

    Registered with lm-eval as ``pandalm-replay`` by :mod:`lm_eval_pandalm.harness.registration`; ``--model_args``
    are this constructor's arguments, e.g. ``judge=GPT-4,strategy=Vanilla_NoRules`` or
    ``judge=gpt-3.5-turbo,unparsed=tie``.

    Args:
        judge: What to replay (:func:`~lm_eval_pandalm.judges.replay.replay_judge`): ``pandalm-7b``,
            ``gpt-3.5-turbo``, ``human``, ``GPT-4``, ``ChatGPT``, ``LLaMA2``, ``PaLM2`` (optionally
            ``GPT-4/<strategy>``), or a verdict ``.jsonl`` written by ``pandalm judge``; a ``replay:`` prefix is
            accepted.
        strategy: LLMBar prompting strategy folder (LLMBar judges only).
        unparsed: ``error`` (default): a recorded verdict that names no label stops the run with a count of them;
            ``tie``: count it as Tie, as PandaLM's README table did (``pandalm meta --protocol pandalm-legacy``).
        benchmarks: Benchmarks whose pairs' prompts to recognise, ``+``-separated in ``model_args``
            (``llmbar-natural+llmbar-manual``); default: those the judge has recordings for.
        data_dir: Offline data mirror; default ``$PANDALM_DATA_DIR``. lm-eval also hands ``model_args`` to the
            tasks' datasets, so ``data_dir=`` here reaches the ``pandalm_judge_*`` datasets too.
        batch_size: Accepted and ignored (lm-eval passes it to every model).
        max_batch_size: Accepted and ignored.
        device: Accepted and ignored.

    Raises:
        ValueError: Unknown judge (with the closest name), bad ``unparsed``, or arguments that do not apply.
    """

    def __init__(
        self,
        judge: str,
        strategy: str = DEFAULT_STRATEGY,
        unparsed: str = "error",
        benchmarks: str | Sequence[str] | None = None,
        data_dir: str | None = None,
        batch_size: int | str | None = None,
        max_batch_size: int | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__()
        if unparsed not in UNPARSED_POLICIES:
            raise ValueError(f"unparsed must be one of {', '.join(UNPARSED_POLICIES)}, got {unparsed!r}")
        self.unparsed = unparsed
        self.data_dir = None if data_dir is None else str(data_dir)
        spec = str(judge).strip()
        names = _split_names(benchmarks)
        is_file = spec.removeprefix("replay:").endswith(".jsonl")
        self.judge: ReplayJudge = replay_judge(
            spec,
            strategy=strategy,
            benchmarks=None if is_file or names is None else names,
            data_dir=self.data_dir,
        )
        if is_file:
            if names is not None:
                raise ValueError("benchmarks does not apply when replaying a verdict .jsonl file")
            path = Path(spec.removeprefix("replay:")).expanduser()
            self._sources = [_Source(str(path), lambda: _items_of_verdict_file(path))]
        else:
            self._sources = [self._benchmark_source(name) for name in names or self._default_benchmarks()]
        self._pending = list(self._sources)
        self._loaded: list[str] = []
        self._unavailable: dict[str, str] = {}
        self._by_prompt: dict[str, list[_Presentation]] = {}

    # -- lm-eval API ----------------------------------------------------------------------------------------------

    @classmethod
    def create_from_arg_string(
        cls, arg_string: str, additional_config: dict[str, Any] | None = None
    ) -> PandaLMReplayLM:
        """Build from ``--model_args`` as a string (``judge=...,unparsed=...``); ``judge`` is required."""
        from lm_eval.utils import simple_parse_args_string

        return cls._from_args(simple_parse_args_string(arg_string), additional_config)

    @classmethod
    def create_from_arg_obj(
        cls, arg_dict: dict[str, Any], additional_config: dict[str, Any] | None = None
    ) -> PandaLMReplayLM:
        """Build from ``--model_args`` as lm-eval's command line parses them (a dict); ``judge`` is required."""
        return cls._from_args(dict(arg_dict), additional_config)

    @classmethod
    def _from_args(cls, args: dict[str, Any], additional_config: dict[str, Any] | None) -> PandaLMReplayLM:
        valid = [name for name in inspect.signature(cls.__init__).parameters if name != "self"]
        if "judge" not in args:
            raise ValueError(
                "pandalm-replay needs --model_args judge=<name> (pandalm-7b, gpt-3.5-turbo, human, GPT-4, ChatGPT, "
                f"LLaMA2, or a verdict .jsonl); got {args}"
            )
        unknown = sorted(set(args) - set(valid))
        if unknown:
            raise ValueError(f"pandalm-replay: unknown model_args {', '.join(unknown)}; valid: {', '.join(valid)}")
        # lm-eval adds batch_size, max_batch_size and device for every model; model_args win over them.
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None and k in valid and k not in args}
        return cls(**args, **extra)

    def get_model_info(self) -> dict[str, Any]:
        """What lm-eval records about the model in its results: the replayed judge and its data fingerprint."""
        return {"judge": self.judge.judge_id, "judge_fingerprint": self.judge.fingerprint, "unparsed": self.unparsed}

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """``(0.0, True)`` for the recorded verdict's continuation, ``(OTHER_LOGLIKELIHOOD, False)`` for the others.

        Raises:
            ReplayRequestError: A continuation is not a verdict, a context is no known pair's PandaLM prompt, a
                prompt is ambiguous, or a recording names no verdict (and ``unparsed`` is ``error``).
            MissingVerdictError: A pair has no recording in the order asked.
        """
        if not requests:
            return []
        asked = [_continuation_label(request.args[1]) for request in requests]
        recorded = self._recorded_labels(requests, disable_tqdm=disable_tqdm)
        results = []
        for request, question, answer in zip(requests, asked, recorded, strict=True):
            result = (0.0, True) if question is answer else (OTHER_LOGLIKELIHOOD, False)
            self.cache_hook.add_partial("loglikelihood", request.args, result)
            results.append(result)
        return results

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """Not available: a replay model has verdicts, not a distribution over text."""
        raise NotImplementedError(
            "pandalm-replay only answers loglikelihood requests for the verdicts '1\\n', '2\\n', 'Tie\\n' after a "
            "PandaLM prompt (the pandalm_judge_* tasks); it has no likelihood for arbitrary text"
        )

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Not available: the replay model never generates."""
        raise NotImplementedError(
            "pandalm-replay cannot generate text; it answers loglikelihood requests for the verdicts '1\\n', '2\\n', "
            "'Tie\\n' after a PandaLM prompt (multiple_choice tasks such as pandalm_judge_testset). To judge "
            "generated responses with recorded verdicts, use the judge filter with a replay judge instead"
        )

    def __repr__(self) -> str:
        return f"PandaLMReplayLM(judge={self.judge.judge_id!r}, unparsed={self.unparsed!r})"

    # -- prompt index ---------------------------------------------------------------------------------------------

    def _default_benchmarks(self) -> list[str]:
        if self.judge.judge_id in _PANDALM_RECORDED:
            return ["pandalm"]
        if self.judge.judge_id == "replay:human":
            return list(BENCHMARKS)
        return list(LLMBAR_FORMAT_BENCHMARKS)

    def _benchmark_source(self, name: str) -> _Source:
        if name not in BENCHMARKS and not name.startswith("file:"):
            raise ValueError(f"unknown benchmark {name!r} in benchmarks; valid: {', '.join(BENCHMARKS)}")
        return _Source(name, lambda: load_benchmark(name, self.data_dir).items)

    def _index(self, items: Iterable[PairItem]) -> None:
        for item in items:
            for swapped in (False, True):
                presentation = _Presentation(item, swapped)
                self._by_prompt.setdefault(build_prompt(presentation.pair), []).append(presentation)

    def _lookup(self, context: str) -> list[_Presentation]:
        """Pairs whose prompt is exactly ``context``; loads more sources while there are none."""
        while context not in self._by_prompt and self._pending:
            source = self._pending.pop(0)
            try:
                items = source.load()
            except DataUnavailableError as exc:
                logger.info("pandalm-replay: skipping %s: %s", source.name, exc)
                self._unavailable[source.name] = str(exc)
                continue
            self._index(tqdm(items, desc=f"indexing {source.name} prompts", unit="pair", disable=len(items) < 2000))
            self._loaded.append(source.name)
        return self._by_prompt.get(context, [])

    # -- answering ------------------------------------------------------------------------------------------------

    def _recorded_labels(self, requests: Sequence[Instance], *, disable_tqdm: bool) -> list[Label]:
        """The recorded label for each request's context (requests of one doc and order share it)."""
        keys = [(request.args[0], _doc_id(request.doc)) for request in requests]
        unique = list(dict.fromkeys(keys))
        candidates: dict[tuple[str, str | None], list[_Presentation]] = {}
        unknown: list[tuple[str, str | None]] = []
        for context, doc_id in tqdm(unique, desc="pandalm-replay", unit="prompt", disable=disable_tqdm):
            found = self._lookup(context)
            if doc_id is not None and any(p.item.id == doc_id for p in found):
                found = [p for p in found if p.item.id == doc_id]
            if not found:
                unknown.append((context, doc_id))
            candidates[(context, doc_id)] = found
        if unknown:
            raise self._unknown_error(unknown, len(unique))

        verdicts = self._verdicts({p for found in candidates.values() for p in found})
        labels: dict[tuple[str, str | None], Label] = {}
        missing: list[_Presentation] = []
        ambiguous: list[str] = []
        failed: dict[str, list[str]] = {}
        for key, found in candidates.items():
            outcomes = {p: verdict for p in found if (verdict := verdicts[p]) is not None}
            if not outcomes:
                missing.append(found[0])
                continue
            answers = {self._answer(verdict) for verdict in outcomes.values()}
            if len(answers) > 1:
                ambiguous.append(", ".join(sorted({p.item.id for p in outcomes})))
                continue
            answer = answers.pop()
            if isinstance(answer, Label):
                labels[key] = answer
            else:
                failed.setdefault(answer.value, []).append(next(iter(outcomes)).item.id)
        if missing:
            self._raise_missing(missing, len(unique))
        if ambiguous:
            raise ReplayRequestError(
                f"pandalm-replay ({self.judge.judge_id}): {len(ambiguous)} prompts are the PandaLM prompt of several "
                f"pairs whose recorded verdicts differ (pairs {'; '.join(ambiguous[:_SHOW])}), and the request's doc "
                "has no 'id' naming one of them. Give the docs an 'id' field with the benchmark item id (the "
                "pandalm_judge_* tasks do)."
            )
        if failed:
            raise self._failed_error(failed, len(unique))
        return [labels[key] for key in keys]

    def _answer(self, verdict: Verdict) -> Label | VerdictState:
        """The label a recorded verdict gives under the ``unparsed`` policy, or the state that gives none."""
        if verdict.ok:
            assert verdict.winner is not None  # an OK verdict always has one
            return verdict.winner
        if verdict.state is VerdictState.UNPARSED and self.unparsed == "tie":
            return Label.TIE
        return verdict.state

    def _verdicts(self, presentations: set[_Presentation]) -> dict[_Presentation, Verdict | None]:
        """Recorded verdict of each presentation, ``None`` where there is none (one judge call when all exist)."""
        ordered = sorted(presentations, key=lambda p: (p.item.id, p.swapped, p.item.key))
        try:
            return dict(zip(ordered, self.judge([p.pair for p in ordered]), strict=True))
        except MissingVerdictError:
            pass
        out: dict[_Presentation, Verdict | None] = {}
        for presentation in ordered:
            try:
                out[presentation] = self.judge([presentation.pair])[0]
            except MissingVerdictError:
                out[presentation] = None
        return out

    # -- errors ---------------------------------------------------------------------------------------------------

    def _unknown_error(self, unknown: Sequence[tuple[str, str | None]], total: int) -> ReplayRequestError:
        # Every PandaLM prompt starts and ends alike: name the doc where there is one, else show the instruction.
        shown = "; ".join(
            f"doc {doc_id}" if doc_id else repr(_shorten(_instruction_part(context)))
            for context, doc_id in unknown[:_SHOW]
        )
        searched = ", ".join(self._loaded) or "nothing"
        unavailable = f" Not available offline: {', '.join(self._unavailable)}." if self._unavailable else ""
        return ReplayRequestError(
            f"pandalm-replay ({self.judge.judge_id}): {len(unknown)} of {total} request contexts are not the PandaLM "
            f"prompt of any pair of {searched} ({shown}).{unavailable} The replay model matches "
            "contexts exactly, so run it without --num_fewshot, --system_instruction or --apply_chat_template, on "
            "tasks that ask PandaLM's prompt (pandalm_judge_*); pick the benchmarks with model_args "
            "benchmarks=<name>+<name>."
        )

    def _raise_missing(self, missing: Sequence[_Presentation], total: int) -> None:
        pairs = [p.pair for p in missing]
        try:
            self.judge(pairs)
        except MissingVerdictError as exc:
            raise MissingVerdictError(
                f"pandalm-replay: {len(missing)} of {total} requested prompts have no recorded verdict. {exc.message}",
                exc.missing_ids,
            ) from None
        raise RuntimeError("internal error: a presentation without a verdict was answered on retry")  # pragma: no cover

    def _failed_error(self, failed: Mapping[str, Sequence[str]], total: int) -> ReplayRequestError:
        counts = {state: len(ids) for state, ids in failed.items()}
        ids = [item_id for state in sorted(failed) for item_id in failed[state]]
        shown = ", ".join(ids[:_SHOW]) + (", ..." if len(ids) > _SHOW else "")
        lines = [
            f"pandalm-replay ({self.judge.judge_id}): {sum(counts.values())} of {total} requested prompts have a "
            f"recorded verdict that names no label ({_count_line(counts)}; ids: {shown}). lm-eval scores every choice, "
            "and these recordings support none of them."
        ]
        if "unparsed" in counts:
            lines.append(
                "Choose what an unparsed verdict counts as with --model_args unparsed=tie (counted as Tie: how "
                "PandaLM's README table was computed, as `pandalm meta --protocol pandalm-legacy`), or leave those "
                "pairs out with --samples."
            )
        if set(counts) - {"unparsed"}:
            lines.append("Failed judgments (error, over_context) have no setting: re-judge them or leave them out.")
        return ReplayRequestError(" ".join(lines))


def _doc_id(doc: Any) -> str | None:
    value = doc.get("id") if isinstance(doc, Mapping) else None
    return value if isinstance(value, str) and value else None


def _instruction_part(context: str) -> str:
    marker = "### Instruction:\n"
    start = context.find(marker)
    return context[start + len(marker) :] if start >= 0 else context


def _continuation_label(continuation: str) -> Label:
    """The verdict a requested continuation spells (``1\\n``, ``2\\n``, ``Tie\\n``, optional surrounding space)."""
    text = continuation.strip()
    if text in ("1", "2"):
        return Label(text)
    if text.lower() == "tie":
        return Label.TIE
    raise ReplayRequestError(
        f"pandalm-replay answers only the verdict continuations '1\\n', '2\\n' and 'Tie\\n'; got {continuation!r}"
    )


def _items_of_verdict_file(path: Path) -> list[PairItem]:
    from ..verdict_io import read_verdicts

    return [item for item, _ in read_verdicts(path)]
