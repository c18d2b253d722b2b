"""An lm-eval filter that judges every generated response against a baseline response, in one batch per task.

lm-eval applies a task's filters once all generation is finished, with every response of the task at once
(``Filter.apply(resps, docs)``), which is where a batched judge belongs: the judge model is loaded only then (after
generation) and judges all of the task's pairs in one call, in both orders by default.

In a task YAML (the package's own tasks reference it by path, so it works whether or not the ``pandalm_judge``
registry name was registered)::

    filter_list:
      - name: pandalm
        filter:
          - function: !function lm_eval_pandalm.harness.judge_filter.PandaLMJudgeFilter
            instruction: "{{ question }}"
            baseline: "{{ reference_answer }}"
            judge: "pandalm:WeOpenML/PandaLM-7B-v1"
          - function: take_first

Each document's filtered response is a one-element list holding the JSON of a
:class:`~lm_eval_pandalm.harness.judging.JudgmentSummary` (after ``take_first``: the JSON string itself), which the
``pandalm_*`` metrics of :mod:`.winrate` read.
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from lm_eval.api.filter import Filter

from ..errors import PandaLMError, describe
from . import judging
from .judging import (
    DEFAULT_JUDGE,
    DEFAULT_PROTOCOL,
    JudgmentSummary,
    check_protocol,
    judge_against_baseline,
    judging_record,
    validate_judge_spec,
)

__all__ = [
    "FILTER_OPTIONS",
    "JudgingFailedError",
    "PandaLMJudgeFilter",
    "TemplateError",
    "current_task",
    "rescue_dir",
    "take_records",
]

logger = logging.getLogger(__name__)

FILTER_OPTIONS = ("instruction", "baseline", "input", "judge", "protocol")
"""The filter's options; each is a Jinja2 template rendered over the document."""
_REQUIRED = ("instruction", "baseline")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIELD = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
_JINJA_MARKERS = ("{{", "{%", "{#")
# StrictUndefined: a template naming a field the document lacks is an error, never an empty string. finalize: a null
# field (JSON null, a missing optional input) prints as nothing, not as "None".
_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
    finalize=lambda value: "" if value is None else value,
)


class TemplateError(ValueError):
    """A filter option's template cannot be rendered for a document (names the option, the document and why)."""


class JudgingFailedError(PandaLMError):
    """Judging failed after generation; the generations were saved for ``pandalm score`` (the message says where)."""

    def __init__(self, message: str, *, rescue_path: Path) -> None:
        super().__init__(message)
        self.rescue_path = rescue_path
        """The samples file holding the generations."""


current_task: contextvars.ContextVar[str | None] = contextvars.ContextVar("pandalm_current_task", default=None)
"""Name of the lm-eval task whose filters are running (set by the package's task class), for file names."""

_RECORDS: list[dict[str, Any]] = []


def take_records() -> list[dict[str, Any]]:
    """What the judge filter judged since the last call (one record per judge and protocol): the SPEC, the resolved
    judge (id, fingerprint and its sha256), protocol, prompt template hash, package version and outcome counts."""
    records = list(_RECORDS)
    _RECORDS.clear()
    return records


def rescue_dir() -> Path:
    """Where generations are saved when judging fails after generation: ``$PANDALM_RESCUE_DIR``, else the
    ``unjudged`` folder of the package's user cache."""
    explicit = os.environ.get("PANDALM_RESCUE_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    from ..data.sources import cache_dir

    return cache_dir() / "unjudged"


class _Template:
    """One option's template, with fast paths for the two common shapes: plain text and a lone ``{{ field }}``.

    lm-eval builds a new filter for every ``apply``, so compiled templates are shared through :func:`_compile`.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        field = _FIELD.match(source)
        self.field = field.group(1) if field else None
        self.constant = not any(marker in source for marker in _JINJA_MARKERS)
        self.jinja = None if self.field or self.constant else _ENV.from_string(source)

    def render(self, doc: Mapping[str, Any]) -> str:
        if self.jinja is not None:
            return self.jinja.render(**doc)
        if self.field is not None:
            if self.field not in doc:
                raise jinja2.UndefinedError(f"{self.field!r} is undefined")
            value = doc[self.field]
            return "" if value is None else str(value)  # what _ENV prints for a value
        return self.source


@functools.lru_cache(maxsize=256)
def _compile(source: str) -> _Template:
    return _Template(source)


class PandaLMJudgeFilter(Filter):
    """Judge each document's first generated response against a baseline response with a pairwise judge.

    Every option is a Jinja2 template rendered over the document (``"{{ reference }}"`` reads the field
    ``reference``; a null field prints as empty text; text without ``{{ }}`` is used as is). A field the document
    lacks is an error, never empty text.

    Args:
        instruction: The instruction both responses answer. Required.
        baseline: The response the candidate is compared with. Required.
        input: Optional further context of the instruction (PandaLM's ``### Input:``); default none.
        judge: Judge SPEC (``pandalm:<model>``, ``replay:<name>`` or a YAML judge config); default
            ``pandalm:WeOpenML/PandaLM-7B-v1``. Documents are grouped by their rendered SPEC and each group is judged
            in one batch; the judge is built once per process and shared between tasks.
        protocol: ``both-orders`` (default), ``paper`` or ``first-order``; see
            :data:`~lm_eval_pandalm.harness.judging.PROTOCOLS`.

    Raises:
        ValueError: A required option is missing or an option is unknown (with the closest valid name).
        TemplateError: A template does not parse.
    """

    def __init__(self, **options: Any) -> None:
        unknown = [name for name in options if name not in FILTER_OPTIONS]
        if unknown:
            close = difflib.get_close_matches(unknown[0], FILTER_OPTIONS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"PandaLMJudgeFilter: unknown option {unknown[0]!r}.{hint} Valid options: {', '.join(FILTER_OPTIONS)}"
            )
        missing = [name for name in _REQUIRED if options.get(name) is None]
        if missing:
            raise ValueError(
                f"PandaLMJudgeFilter needs the option(s) {', '.join(missing)} (Jinja2 templates over the document, "
                f'e.g. instruction: "{{{{ question }}}}", baseline: "{{{{ reference_answer }}}}")'
            )
        self.sources: dict[str, str] = {
            "instruction": options["instruction"],
            "baseline": options["baseline"],
            "input": options.get("input", ""),
            "judge": options.get("judge", DEFAULT_JUDGE),
            "protocol": options.get("protocol", DEFAULT_PROTOCOL),
        }
        self._templates: dict[str, _Template] = {}
        for name, source in self.sources.items():
            if not isinstance(source, str):
                raise ValueError(
                    f"PandaLMJudgeFilter option {name!r} must be a string (a Jinja2 template), got "
                    f"{type(source).__name__}: {source!r}"
                )
            try:
                self._templates[name] = _compile(source)
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateError(f"PandaLMJudgeFilter option {name!r}: invalid template {source!r}: {exc}") from None
        # lm-eval builds the filters when it builds the task, before generation: a judge named as plain text is
        # checked now, so that a misspelt or missing judge fails in seconds, not after the whole generation.
        if self._templates["protocol"].constant:
            try:
                check_protocol(self.sources["protocol"])
            except ValueError as exc:
                raise TemplateError(f"PandaLMJudgeFilter option 'protocol': {exc}") from None
        if self._templates["judge"].constant:
            validate_judge_spec(self.sources["judge"])

    def render(self, doc: Mapping[str, Any], index: int) -> dict[str, str]:
        """Every option rendered for one document.

        Raises:
            TemplateError: A template names a field the document does not have (or fails otherwise), or an option
                is plain text equal to a field name (almost certainly a forgotten ``{{ }}``).
        """
        rendered = {}
        for name, template in self._templates.items():
            source = self.sources[name]
            if template.constant and _IDENTIFIER.match(source) and source in doc and name != "protocol":
                raise TemplateError(
                    f"PandaLMJudgeFilter option {name!r} is the plain text {source!r}, which is also a field of the "
                    f'documents; write {name}: "{{{{ {source} }}}}" to use the field (options are Jinja2 templates)'
                )
            try:
                rendered[name] = template.render(doc)
            except jinja2.UndefinedError as exc:
                raise TemplateError(
                    f"PandaLMJudgeFilter option {name!r} = {source!r} cannot be rendered for document {index}: {exc}; "
                    f"the document's fields are: {', '.join(sorted(map(str, doc)))}"
                ) from None
            except jinja2.TemplateError as exc:
                raise TemplateError(
                    f"PandaLMJudgeFilter option {name!r} = {source!r} failed on document {index}: {exc}"
                ) from None
        try:
            check_protocol(rendered["protocol"])
        except ValueError as exc:
            raise TemplateError(f"PandaLMJudgeFilter option 'protocol' on document {index}: {exc}") from None
        if not rendered["judge"].strip():
            raise TemplateError(f"PandaLMJudgeFilter option 'judge' rendered empty for document {index}")
        return rendered

    def apply(self, resps: Iterable[Any], docs: Sequence[Mapping[str, Any]]) -> list[list[str]]:
        """Judge every document's first response; returns ``[[summary_json], ...]``, one list per document.

        Args:
            resps: Per document, the list of its generated responses (or a single string, if an earlier filter
                already took the first).
            docs: The documents, in the same order.

        Raises:
            ValueError: ``resps`` and ``docs`` differ in length, or a document has no response.
            TemplateError: An option cannot be rendered for a document.
            lm_eval_pandalm.config.ConfigError: A rendered judge SPEC is not understood.
        """
        responses = [_first_response(r, i) for i, r in enumerate(resps)]
        docs = list(docs)
        if len(responses) != len(docs):
            raise ValueError(f"PandaLMJudgeFilter: {len(responses)} responses for {len(docs)} documents")
        rendered = [self.render(doc, i) for i, doc in enumerate(docs)]

        # Normally a single group: every document names the same judge and protocol.
        groups: dict[tuple[str, str], list[int]] = {}
        for i, fields in enumerate(rendered):
            groups.setdefault((fields["judge"], fields["protocol"]), []).append(i)
        out: list[list[str]] = [[] for _ in docs]
        for (spec, protocol), members in groups.items():
            logger.info("PandaLMJudgeFilter: %d documents, judge %s, protocol %s", len(members), spec, protocol)
            try:
                judge = judging.judge_for_spec(spec)  # built once per process, shared by tasks
                judged = judge_against_baseline(
                    judge,
                    instructions=[rendered[i]["instruction"] for i in members],
                    inputs=[rendered[i]["input"] for i in members],
                    responses=[responses[i] for i in members],
                    baselines=[rendered[i]["baseline"] for i in members],
                    protocol=protocol,
                )
            except BaseException as exc:
                path = _rescue(docs, responses, rendered)
                message = (
                    f"judging with {spec} failed after generation ({describe(exc)}). The {len(docs)} generated "
                    f"responses are saved in {path}; judge them without regenerating: pandalm score --samples {path} "
                    f"--judge {spec} --protocol {protocol} (verdicts already judged are served from the judgment cache)"
                )
                logger.error("%s", message)
                if isinstance(exc, Exception):
                    raise JudgingFailedError(message, rescue_path=path) from exc
                raise
            for i, summary in zip(members, judged, strict=True):
                out[i] = [summary.to_json()]
            _record(spec, protocol, judge, judged, [docs[i] for i in members])
        return out


def _record(spec: str, protocol: str, judge: Any, judged: Sequence[JudgmentSummary], docs: Sequence[Any]) -> None:
    baselines = sorted({str(doc["baseline_source"]) for doc in docs if "baseline_source" in doc})
    record = judging_record(spec, protocol, judge, judged, baselines[0] if len(baselines) == 1 else (baselines or None))
    logger.warning("PandaLMJudgeFilter (%s, %s): %s", judge.judge_id, protocol, record["summary"])
    _RECORDS.append(record)


def _rescue(docs: Sequence[Mapping[str, Any]], responses: Sequence[str], rendered: Sequence[Mapping[str, str]]) -> Path:
    """Save every document's generation as an lm-eval-style samples file that ``pandalm score`` can judge."""
    folder = rescue_dir()
    folder.mkdir(parents=True, exist_ok=True)
    task = re.sub(r"[^A-Za-z0-9_.-]+", "_", current_task.get() or "judged_task")
    path = folder / f"samples_{task}_{time.strftime('%Y-%m-%dT%H-%M-%S')}.{os.getpid()}.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for i, (doc, response, fields) in enumerate(zip(docs, responses, rendered, strict=True)):
            row = {
                "doc_id": i,
                "doc": {**_json_safe(doc), **{k: fields[k] for k in ("instruction", "input", "baseline")}},
                "target": fields["baseline"],
                "resps": [[response]],
            }
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def _json_safe(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in doc.items() if isinstance(v, (str, int, float, bool, type(None), list, dict))}


def _first_response(resp: Any, index: int) -> str:
    if isinstance(resp, str):
        return resp
    if isinstance(resp, (list, tuple)):
        if not resp:
            raise ValueError(f"PandaLMJudgeFilter: document {index} has no generated response")
        first = resp[0]
        if isinstance(first, str):
            return first
        resp = first
    raise ValueError(
        f"PandaLMJudgeFilter: document {index}: expected generated text, got {type(resp).__name__}: {resp!r:.120}; "
        "put the judge filter first in its filter pipeline (or after filters that keep text)"
    )
