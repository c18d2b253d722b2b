"""PandaLM's prompt is the interface the model was trained on: pin it byte for byte."""

from lm_eval_pandalm import PairItem, build_prompt, clean_response, parse_output
from lm_eval_pandalm.prompt import PANDALM_SPECIAL_TOKENS, template_hash
from lm_eval_pandalm.types import Label

WITH_INPUT = (
    "Below are two responses for a given task. The task is defined by the Instruction with an Input that provides "
    "further context. Evaluate the responses and generate a reference answer for the task.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response 1:\n{response1}\n\n"
    "### Response 2:\n{response2}\n\n### Evaluation:\n"
)
WITHOUT_INPUT = (
    "Below are two responses for a given task. The task is defined by the Instruction. Evaluate the responses and "
    "generate a reference answer for the task.\n\n"
    "### Instruction:\n{instruction}\n\n### Response 1:\n{response1}\n\n"
    "### Response 2:\n{response2}\n\n### Evaluation:\n"
)


def test_prompt_with_input_is_byte_identical():
    item = PairItem(instruction="Fix the grammar.", input="me and him goes", response1="He and I go.", response2="ok")
    expected = WITH_INPUT.format(
        instruction="Fix the grammar.", input="me and him goes", response1="He and I go.", response2="ok"
    )
    assert build_prompt(item) == expected


def test_prompt_without_input_is_byte_identical():
    item = PairItem(instruction="Name a colour.", response1="Red", response2="Blue\n")
    assert build_prompt(item) == WITHOUT_INPUT.format(instruction="Name a colour.", response1="Red", response2="Blue")


def test_responses_are_cleaned_of_special_tokens_then_stripped():
    assert len(PANDALM_SPECIAL_TOKENS) == 13
    dirty = " <s>" + "".join(PANDALM_SPECIAL_TOKENS) + " Answer [gMASK]</s>\n"
    assert clean_response(dirty) == "Answer"
    item = PairItem(instruction="q", response1=dirty, response2="<pad>B")
    assert "### Response 1:\nAnswer\n\n### Response 2:\nB\n\n" in build_prompt(item)


def test_empty_response_keeps_the_prompt_shape():
    item = PairItem(instruction="q", response1="", response2="b")
    assert "### Response 1:\n\n\n### Response 2:\nb\n\n" in build_prompt(item)


def test_parse_output_reads_all_three_parts():
    parsed = parse_output("Tie\n\n### Reason: Both are fine.\n\n### Reference: Paris.\n")
    assert parsed.label is Label.TIE
    assert parsed.reason == "Both are fine."
    assert parsed.reference == "Paris."
    assert parse_output("I think so").label is None


def test_template_hash_is_stable_hex():
    assert len(template_hash()) == 64 and template_hash() == template_hash()
