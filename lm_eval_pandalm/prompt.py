"""PandaLM's prompt and output format.

The prompt text is the interface PandaLM-7B was trained on (WeOpenML/PandaLM, ``pandalm/utils``), so the template in
``templates/pandalm_prompt.j2`` reproduces it byte for byte; tests pin it against the literal strings.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import jinja2

from .types import Label, PairItem

__all__ = [
    "PANDALM_SPECIAL_TOKENS",
    "ParsedOutput",
    "build_prompt",
    "clean_response",
    "parse_output",
    "template_hash",
]

# PandaLM removes these strings from responses before judging: they are special tokens of the tokenizers of the
# models it compared, and leaving them in would let a response inject control tokens into the judge's input.
PANDALM_SPECIAL_TOKENS = (
    "<unk>",
    "<pad>",
    "<s>",
    "</s>",
    "[PAD]",
    "<|endoftext|>",
    "[UNK]",
    "[CLS]",
    "[MASK]",
    "<|startofpiece|>",
    "<|endofpiece|>",
    "[gMASK]",
    "[sMASK]",
)

_TEMPLATE_NAME = "pandalm_prompt.j2"


@functools.cache
def _template_source() -> str:
    return resources.files(__package__).joinpath("templates", _TEMPLATE_NAME).read_text(encoding="utf-8")


@functools.cache
def _template() -> jinja2.Template:
    # keep_trailing_newline: the prompt must end in "\n" exactly as PandaLM's does; autoescape off: this is not HTML.
    env = jinja2.Environment(keep_trailing_newline=True, autoescape=False, undefined=jinja2.StrictUndefined)
    return env.from_string(_template_source())


def template_hash() -> str:
    """sha256 of the prompt template source; part of every model judge's cache fingerprint."""
    return hashlib.sha256(_template_source().encode("utf-8")).hexdigest()


def clean_response(text: str) -> str:
    """Remove PandaLM's special-token strings from a response, then strip surrounding whitespace.

    >>> clean_response("  Paris.</s><pad> ")
    'Paris.'
    """
    for token in PANDALM_SPECIAL_TOKENS:
        text = text.replace(token, "")
    return text.strip()


def build_prompt(item: PairItem) -> str:
    """PandaLM's judging prompt for ``item`` (the with-input variant when ``item.input`` is non-empty)."""
    return _template().render(
        instruction=item.instruction,
        input=item.input,
        response1=clean_response(item.response1),
        response2=clean_response(item.response2),
    )


@dataclass(frozen=True)
class ParsedOutput:
    """PandaLM's generated text split into its parts: ``{1|2|Tie}\\n\\n### Reason: ...\\n\\n### Reference: ...``."""

    label: Label | None
    """The verdict on the first line, or ``None`` when the text names none."""
    reason: str | None
    """Text after ``### Reason:``, if present."""
    reference: str | None
    """Text after ``### Reference:``, if present."""


_SECTION = re.compile(r"###\s*(Reason|Reference)\s*:", re.IGNORECASE)


def parse_output(text: str) -> ParsedOutput:
    """Split a PandaLM generation into verdict, reason and reference.

    >>> parse_output("2\\n\\n### Reason: shorter.\\n\\n### Reference: Hi.\\n")
    ParsedOutput(label=<Label.SECOND: '2'>, reason='shorter.', reference='Hi.')
    """
    sections: dict[str, str] = {}
    matches = list(_SECTION.finditer(text))
    head = text[: matches[0].start()] if matches else text
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        sections.setdefault(match.group(1).lower(), text[match.end() : end].strip())
    return ParsedOutput(label=Label.parse(head), reason=sections.get("reason"), reference=sections.get("reference"))
