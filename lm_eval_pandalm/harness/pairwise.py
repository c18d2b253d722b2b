"""Documents of the ``pandalm_pairwise`` task: PandaLM's 170 test instructions, each with a baseline response.

The model under evaluation answers each instruction; the judge filter then compares its answer with the baseline
response to the same instruction (see ``task_configs/pandalm/pandalm_pairwise.yaml``). Options come from lm-eval's
``--metadata`` JSON:

``baseline`` (default ``self-instruct``)
    ``self-instruct``: the human-written reference outputs of self-instruct's user-oriented set (the 170 are a
    subset of its 252 instructions). Or the path of a previous run's ``samples_*.jsonl`` (``--log_samples``): the
    baseline is that run's raw generation (``resps``) for the document with the same instruction and input. Or the
    path of any JSON-lines file with ``instruction``, optional ``input`` and ``response`` per line. Every document
    must get a baseline; a missing one is an error that names the file and the instruction.
``judge`` (default ``pandalm:WeOpenML/PandaLM-7B-v1``)
    A judge SPEC, checked before any generation starts.
``protocol`` (default ``both-orders``)
    ``both-orders``, ``paper`` or ``first-order``.
``prompt_format`` (default ``alpaca``)
    How the instruction is shown to the model. ``alpaca``: the Alpaca template PandaLM used to generate its
    candidates' responses ("Below is an instruction that describes a task..."), which a base model needs to follow an
    instruction at all. ``plain``: the instruction, then a blank line and the input; meant for
    ``--apply_chat_template``, where the chat template already marks the turn. (``alpaca`` also works under a chat
    template: the whole Alpaca text becomes the user's message.)

lm-eval hands the task everything in ``--metadata`` together with the ``--model_args`` and its own keys
(``version``, ``config_source``, ...); keys that are not options are ignored, except near-misses of an option name
(``baselines``, ``protocl``), which are errors with a suggestion.

Instructions and inputs are matched after collapsing runs of whitespace (PandaLM's copy of self-instruct collapsed
double spaces and non-breaking spaces). Two of PandaLM's 170 rows lost text in PandaLM's copy and are matched by
their self-instruct id instead (:data:`KNOWN_MISMATCHES`); the documents keep PandaLM's text, which is what the
published PandaLM comparisons used.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..data.sources import PANDALM_REPO, SELF_INSTRUCT_REPO, read_json, read_jsonl, read_jsonl_path, source_file
from ..errors import PandaLMError
from ..judges.registry import check_spec
from .judging import DEFAULT_JUDGE, DEFAULT_PROTOCOL, check_protocol

__all__ = [
    "KNOWN_MISMATCHES",
    "PROMPT_FORMATS",
    "SELF_INSTRUCT",
    "STOP_SEQUENCES",
    "BaselineError",
    "PairwiseOptions",
    "build_docs",
    "candidate_prompt",
    "load_baselines",
    "load_dataset",
    "load_test_instructions",
    "parse_options",
]

logger = logging.getLogger(__name__)

TEST_FILE = source_file(PANDALM_REPO, "data/testset-inference-v1.json")
"""PandaLM's 170 test instructions (``motivation_app``, ``instruction``, ``input``)."""
SELF_INSTRUCT_FILE = source_file(SELF_INSTRUCT_REPO, "human_eval/user_oriented_instructions.jsonl")
"""self-instruct's 252 user-oriented instructions with human-written outputs."""
SELF_INSTRUCT = "self-instruct"
"""The ``baseline`` value that selects self-instruct's human-written outputs."""
PROMPT_FORMATS = ("alpaca", "plain")

KNOWN_MISMATCHES: Mapping[str, str] = {
    # PandaLM's row lost the input (a string of emoji): the movie-from-emoji instruction has no input.
    "pandalm-test/46": "user_oriented_task_185",
    # PandaLM's row lost the instruction ("Provide a pleasant compliment based on the quality you have been
    # given."): the instruction is a single space and the input is "Truthfulness".
    "pandalm-test/161": "user_oriented_task_206",
}
"""Document id (``pandalm-test/<0-based row>``) → self-instruct id, for the rows whose text does not match."""

# Alpaca-LoRA's template, as in PandaLM's pandalm/utils/candidate_model_inference.py.
_ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
_ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
STOP_SEQUENCES = ("### Instruction:", "### Input:", "### Response:", "Below is an instruction that describes a task")
"""Where a base model that starts writing the next Alpaca example is cut off (the task YAML's ``until``)."""

_OPTION_HELP = {
    "baseline": f"'{SELF_INSTRUCT}', a samples_*.jsonl of an earlier run, or a JSONL with instruction/input/response",
    "judge": "judge SPEC: pandalm:<model>, replay:<name> or a YAML judge config",
    "protocol": f"one of {', '.join(('both-orders', 'paper', 'first-order'))}",
    "prompt_format": f"one of {', '.join(PROMPT_FORMATS)}",
}
# A metadata key this close to an option name is taken for a misspelt option (no lm-eval or HF model argument is).
_TYPO_CUTOFF = 0.75


class BaselineError(PandaLMError, ValueError):
    """A baseline source cannot be read, or does not give every document a baseline response."""


@dataclass(frozen=True)
class PairwiseOptions:
    """The ``pandalm_pairwise`` task's options (from ``--metadata``)."""

    baseline: str = SELF_INSTRUCT
    """Where the baseline responses come from; see the module docs."""
    judge: str = DEFAULT_JUDGE
    """Judge SPEC."""
    protocol: str = DEFAULT_PROTOCOL
    """Judging protocol."""
    prompt_format: str = "alpaca"
    """How the instruction is shown to the model: ``alpaca`` or ``plain``."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"pandalm_pairwise option {f.name!r} must be a non-empty string, got {value!r}")
        try:
            check_protocol(self.protocol)
        except ValueError as exc:
            raise ConfigError(f"pandalm_pairwise option 'protocol': {exc}") from None
        if self.prompt_format not in PROMPT_FORMATS:
            raise ConfigError(
                f"pandalm_pairwise option 'prompt_format' must be one of {', '.join(PROMPT_FORMATS)}, "
                f"got {self.prompt_format!r}"
            )


def parse_options(metadata: Mapping[str, Any]) -> PairwiseOptions:
    """The task's options out of everything lm-eval passes to the dataset function.

    Raises:
        lm_eval_pandalm.config.ConfigError: An option has a bad value, or a key looks like a misspelt option.
    """
    names = list(_OPTION_HELP)
    for key in metadata:
        if key in _OPTION_HELP:
            continue
        close = difflib.get_close_matches(str(key), names, n=1, cutoff=_TYPO_CUTOFF)
        if close:
            raise ConfigError(
                f"pandalm_pairwise: unknown --metadata key {key!r}. Did you mean {close[0]!r}? Options: "
                + "; ".join(f"{name} ({help_})" for name, help_ in _OPTION_HELP.items())
            )
    return PairwiseOptions(**{key: metadata[key] for key in names if key in metadata})


def candidate_prompt(instruction: str, input: str = "", prompt_format: str = "alpaca") -> str:
    """The text the evaluated model answers.

    >>> print(candidate_prompt("Name a colour.", prompt_format="plain"))
    Name a colour.
    >>> candidate_prompt("Name a colour.").endswith("### Instruction:\\nName a colour.\\n\\n### Response:\\n")
    True
    """
    if prompt_format == "plain":
        return f"{instruction}\n\n{input}" if input else instruction
    if prompt_format != "alpaca":
        raise ValueError(f"prompt_format must be one of {', '.join(PROMPT_FORMATS)}, got {prompt_format!r}")
    if input:
        return _ALPACA_WITH_INPUT.format(instruction=instruction, input=input)
    return _ALPACA_NO_INPUT.format(instruction=instruction)


def _key(instruction: str, input: str) -> tuple[str, str]:
    """Match key: whitespace runs collapsed, ends stripped."""
    return " ".join(instruction.split()), " ".join(input.split())


def _short(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "...")


def load_test_instructions(data_dir: str | Path | None = None) -> list[dict[str, str]]:
    """PandaLM's 170 test instructions, in file order, as ``{id, instruction, input, motivation_app}``."""
    rows = read_json(TEST_FILE, data_dir)
    if not isinstance(rows, list):
        raise ValueError(f"{TEST_FILE.relpath}: expected a JSON list, got {type(rows).__name__}")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("instruction"), str):
            raise ValueError(f"{TEST_FILE.relpath}: row {i}: field 'instruction': missing or not a string")
        out.append(
            {
                "id": f"pandalm-test/{i}",
                "instruction": row["instruction"],
                "input": row.get("input") or "",
                "motivation_app": row.get("motivation_app") or "",
            }
        )
    return out


# -- baselines ------------------------------------------------------------------------------------------------------


def load_baselines(
    source: str, instructions: Sequence[Mapping[str, str]], data_dir: str | Path | None = None
) -> list[str]:
    """The baseline response of every instruction, in order.

    Args:
        source: ``self-instruct``, or the path of a ``samples_*.jsonl`` from lm-eval's ``--log_samples``, or of a
            JSON-lines file with ``instruction``, optional ``input`` and ``response``.
        instructions: Rows of :func:`load_test_instructions` (``instruction`` and ``input`` are matched; ``id``
            selects the :data:`KNOWN_MISMATCHES` overrides).
        data_dir: Data mirror for ``self-instruct``.

    Raises:
        BaselineError: The source is neither ``self-instruct`` nor a readable file, a line is malformed, the file
            gives two different responses to one instruction, or an instruction has no baseline.
    """
    if source == SELF_INSTRUCT:
        return _self_instruct_baselines(instructions, data_dir)
    path = Path(source).expanduser()
    if not path.is_file():
        raise BaselineError(
            f"baseline {source!r} is neither {SELF_INSTRUCT!r} nor an existing file (a samples_*.jsonl written by "
            "lm-eval --log_samples, or a JSONL with instruction, input and response per line)"
        )
    try:
        rows = read_jsonl_path(path)
    except (OSError, ValueError) as exc:
        raise BaselineError(f"baseline file {path}: {exc}") from None
    out, missing = _lookup(instructions, _responses_by_key(path, rows))
    if missing:
        raise BaselineError(
            f"baseline file {path} has no response for {len(missing)} of the {len(instructions)} instructions "
            f"(matched on instruction and input): {_listing(missing)}. Every document needs a baseline: a samples "
            "file must come from a run over the whole task (without --limit)."
        )
    return out


def _responses_by_key(path: Path, rows: Sequence[Any]) -> dict[tuple[str, str], str]:
    responses: dict[tuple[str, str], str] = {}
    for line, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise BaselineError(f"baseline file {path}: line {line}: expected a JSON object, got {type(row).__name__}")
        if "doc" in row and "resps" in row:
            instruction, input_, response = _from_sample(path, line, row)
        else:
            instruction, input_, response = _from_plain(path, line, row)
        key = _key(instruction, input_)
        if key in responses and responses[key] != response:
            raise BaselineError(
                f"baseline file {path}: line {line}: a different response to the same instruction appeared earlier "
                f"({_short(instruction)}); keep one response per instruction"
            )
        responses[key] = response
    return responses


def _from_sample(path: Path, line: int, row: Mapping[str, Any]) -> tuple[str, str, str]:
    """One line of lm-eval's samples file: ``doc`` has the instruction, ``resps`` is ``[[generation, ...]]``."""
    doc = row["doc"]
    if not isinstance(doc, dict) or not isinstance(doc.get("instruction"), str):
        raise BaselineError(
            f"baseline file {path}: line {line}: field 'doc.instruction': missing or not a string (samples files "
            "must come from a task whose documents have 'instruction' and 'input', such as pandalm_pairwise)"
        )
    resps = row["resps"]
    try:
        response = resps[0][0]
    except (IndexError, KeyError, TypeError):
        response = None
    if not isinstance(response, str):
        raise BaselineError(
            f"baseline file {path}: line {line}: field 'resps': expected [[generated text, ...]], got {resps!r:.120}"
        )
    return doc["instruction"], doc.get("input") or "", response


def _from_plain(path: Path, line: int, row: Mapping[str, Any]) -> tuple[str, str, str]:
    for name in ("instruction", "response"):
        if not isinstance(row.get(name), str):
            raise BaselineError(
                f"baseline file {path}: line {line}: field {name!r}: missing or not a string (each line needs "
                "instruction, optional input, and response; or use a samples_*.jsonl from lm-eval --log_samples)"
            )
    input_ = row.get("input") or ""
    if not isinstance(input_, str):
        raise BaselineError(f"baseline file {path}: line {line}: field 'input': not a string: {input_!r:.80}")
    return row["instruction"], input_, row["response"]


def _self_instruct_baselines(instructions: Sequence[Mapping[str, str]], data_dir: str | Path | None) -> list[str]:
    rows = read_jsonl(SELF_INSTRUCT_FILE, data_dir)
    by_key: dict[tuple[str, str], str] = {}
    by_id: dict[str, tuple[str, str, str]] = {}
    for line, row in enumerate(rows, start=1):
        try:
            instance = row["instances"][0]
            entry = (row["instruction"], instance["input"], instance["output"])
            by_id[row["id"]] = entry
        except (KeyError, IndexError, TypeError) as exc:
            raise BaselineError(f"{SELF_INSTRUCT_FILE.relpath}: line {line}: unexpected layout ({exc!r})") from None
        by_key[_key(entry[0], entry[1])] = entry[2]

    def known_mismatch(row: Mapping[str, str]) -> str | None:
        override = KNOWN_MISMATCHES.get(row.get("id", ""))
        if override is None:
            return None
        instruction, input_, output = by_id[override]
        theirs, ours = _key(instruction, input_), _key(row["instruction"], row["input"])
        # The row lost its instruction or its input in PandaLM's copy: the other part must still agree.
        if theirs[0] != ours[0] and theirs[1] != ours[1]:
            raise BaselineError(
                f"{TEST_FILE.relpath}: {row['id']} was expected to match {override} of "
                f"{SELF_INSTRUCT_FILE.relpath} by instruction or by input, but matches neither"
            )
        return output

    out, missing = _lookup(instructions, by_key, known_mismatch)
    if missing:
        raise BaselineError(
            f"{len(missing)} of the {len(instructions)} PandaLM test instructions have no match in "
            f"{SELF_INSTRUCT_FILE.relpath} (matched on instruction and input): {_listing(missing)}"
        )
    return out


def _lookup(
    instructions: Sequence[Mapping[str, str]],
    responses: Mapping[tuple[str, str], str],
    fixed: Callable[[Mapping[str, str]], str | None] | None = None,
) -> tuple[list[str], list[Mapping[str, str]]]:
    """Each row's response by (instruction, input), ``fixed(row)`` first when given; and the rows with none."""
    out: list[str] = []
    missing: list[Mapping[str, str]] = []
    for row in instructions:
        response = fixed(row) if fixed is not None else None
        if response is None:
            response = responses.get(_key(row["instruction"], row["input"]))
        if response is None:
            missing.append(row)
        else:
            out.append(response)
    return out, missing


def _listing(rows: Sequence[Mapping[str, str]], shown: int = 3) -> str:
    """The first few rows' instructions, shortened, for an error message."""
    text = "; ".join(_short(row["instruction"]) for row in rows[:shown])
    return text + (f" and {len(rows) - shown} more" if len(rows) > shown else "")


# -- the dataset ----------------------------------------------------------------------------------------------------


def build_docs(options: PairwiseOptions, data_dir: str | Path | None = None) -> list[dict[str, str]]:
    """The task's documents: PandaLM's test instructions with the prompt, baseline, judge and protocol of each.

    Fields: ``id``, ``instruction``, ``input``, ``motivation_app``, ``prompt`` (what the model answers),
    ``baseline``, ``baseline_source``, ``judge``, ``protocol``.
    """
    instructions = load_test_instructions(data_dir)
    baselines = load_baselines(options.baseline, instructions, data_dir)
    return [
        {
            **row,
            "prompt": candidate_prompt(row["instruction"], row["input"], options.prompt_format),
            "baseline": baseline,
            "baseline_source": options.baseline,
            "judge": options.judge,
            "protocol": options.protocol,
        }
        for row, baseline in zip(instructions, baselines, strict=True)
    ]


def load_dataset(**metadata: Any) -> dict[str, Any]:
    """lm-eval ``custom_dataset`` of ``pandalm_pairwise``: ``{"test": datasets.Dataset}`` of :func:`build_docs`.

    Called by lm-eval with the task's metadata merged with ``--metadata`` and ``--model_args``. The judge SPEC's
    syntax is checked here; the task class (:class:`~lm_eval_pandalm.harness.pairwise_task.PandaLMPairwiseTask`)
    has already checked, before any generation, that the judge can be loaded (the judge-free
    ``pandalm_pairwise_generate`` does not need one).

    Raises:
        lm_eval_pandalm.config.ConfigError: A bad option or judge SPEC.
        BaselineError: A baseline source that does not cover every instruction.
    """
    import datasets

    options = parse_options(metadata)
    check_spec(options.judge)
    docs = build_docs(options)
    logger.info(
        "pandalm_pairwise: %d instructions, baseline %s, judge %s, protocol %s, prompt format %s",
        len(docs),
        options.baseline,
        options.judge,
        options.protocol,
        options.prompt_format,
    )
    return {"test": datasets.Dataset.from_list(docs)}
