"""``pandalm train``: fine-tune a PandaLM-style judge (see :mod:`lm_eval_pandalm.training`)."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "train"
HELP = "fine-tune a judge (generative or classifier) on PandaLM-format training data"
DESCRIPTION = """\
Fine-tune a judge on PandaLM training tuples (inputs: instruction, input, response1, response2; outputs:
evaluation_result, evaluation_reason, reference_response), a benchmark's human labels, or a cascade's exported
escalations. Every option of transformers' TrainingArguments is accepted (--learning_rate, --num_train_epochs,
--save_steps, --resume_from_checkpoint, --fsdp, --deepspeed, ...), plus the judge's own (--judge_type,
--swap_aug_ratio, --ref_drop_ratio, --truncation, --padding_free, --use_lora, ...). --config FILE.yaml fills the
same options from a YAML file; flags override it. `python -m lm_eval_pandalm.training --help` lists them all.

The output folder loads as a judge: pandalm:OUTPUT_DIR (generative, LoRA adapters included) or
classifier:OUTPUT_DIR. Multi-GPU: accelerate launch -m lm_eval_pandalm.training --config ... (same options).

Example:
  python -m lm_eval_pandalm.testing.synthetic data/ --train 6000
  pandalm train --config examples/train-tiny.yaml --output_dir out/tiny-judge
  pandalm meta --benchmark file:data/test.jsonl --judge pandalm:out/tiny-judge --json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pandalm train``: ``--config``, and every training option, passed on unparsed."""
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of training options (flags override it)")
    parser.set_defaults(train_args=[])
    # The training options are the fields of JudgeTrainingConfig (a TrainingArguments, ~150 options), parsed by
    # transformers' HfArgumentParser. Building them here would import transformers for every `pandalm` command, so
    # this parser keeps what it does not know for that parser instead of rejecting it.
    plain_parse = parser.parse_known_args

    def parse_known_args(args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        ns, rest = plain_parse(args, namespace)
        ns.train_args = list(getattr(ns, "train_args", [])) + list(rest)
        return ns, []

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign,assignment]


def run(args: argparse.Namespace) -> int:
    """Train the judge."""
    import logging

    from ..training.train import main

    logging.getLogger("lm_eval_pandalm").setLevel(logging.INFO)
    argv = (["--config", args.config] if args.config else []) + list(args.train_args)
    return main(argv)
