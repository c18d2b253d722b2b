"""The judge-training configuration: :class:`JudgeTrainingConfig`, a ``transformers.TrainingArguments``.

Every field has help text; :func:`make_parser` reads them from flags, a YAML file (``--config``) or both (flags
win). Unknown YAML keys are an error listing the valid ones. All of ``TrainingArguments`` (learning rate, epochs,
``save_steps``, ``resume_from_checkpoint``, ``fsdp``, ``deepspeed``...) is available as is, so a run works unchanged
under ``accelerate launch``.

Why ``TrainingArguments`` rather than TRL's ``SFTConfig``: the judge needs its own tokenization (the verdict tokens
must be those the judge scores, and truncation must never cut them), and with that done, what ``SFTTrainer`` adds
(completion-only loss, padding-free batches) is one collator of transformers (``DataCollatorWithFlattening``) and a
``-100`` label mask; the classifier judge is not SFT at all. One fewer dependency and one fewer moving API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from transformers import HfArgumentParser, TrainingArguments

from ..config import ConfigError, load_yaml_mapping, refuse_unknown_keys
from .data import CONFLICT_POLICIES
from .encoding import TRUNCATION_POLICIES

__all__ = ["JUDGE_TYPES", "JudgeTrainingConfig", "make_parser", "parse_config"]

JUDGE_TYPES = ("generative", "classifier")


@dataclass
class JudgeTrainingConfig(TrainingArguments):
    """Settings of a judge-training run: the data, the judge's shape, LoRA, and all of ``TrainingArguments``."""

    model_name_or_path: str = field(
        default="",
        metadata={"help": "Base model: a local folder or Hub id (a causal LM with a LLaMA-style tokenizer)."},
    )
    train_file: str = field(
        default="",
        metadata={
            "help": "Training data: a JSON/JSONL file in PandaLM's training format (inputs/outputs; also what "
            "pandalm export-escalations writes), a benchmark name (pandalm, llmbar-natural, ...) or file:PATH in "
            "PandaLM's test-set format."
        },
    )
    eval_file: str | None = field(
        default=None,
        metadata={"help": "Held-out data, same formats; None holds out test_fraction of train_file by instruction."},
    )
    test_fraction: float = field(
        default=0.1, metadata={"help": "Share of train_file held out (whole instructions) when eval_file is not set."}
    )
    judge_type: str = field(
        default="generative",
        metadata={
            "help": "'generative': a causal LM writing PandaLM's verdict, reason and reference (loads as "
            "pandalm:OUTPUT_DIR); 'classifier': a 3-way classification head (loads as classifier:OUTPUT_DIR)."
        },
    )
    swap_aug_ratio: float = field(
        default=0.5,
        metadata={
            "help": "Probability of swapping an example's responses (label and 'Response 1/2' flipped); JudgeLM: 0.5."
        },
    )
    ref_drop_ratio: float = field(
        default=0.5,
        metadata={
            "help": "Probability of dropping the '### Reference:' section from an example's target; JudgeLM: 0.5."
        },
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Most tokens per example; None: the model's max_position_embeddings (at most 2048)."},
    )
    truncation: str = field(
        default="responses",
        metadata={
            "help": "Over-long examples: 'responses' cuts the longer response, 'drop' leaves the example out, "
            "'error' stops. The verdict and reason are never cut."
        },
    )
    padding_free: bool | None = field(
        default=None,
        metadata={
            "help": "Concatenate each batch into one row without padding (position ids restart per example). "
            "None: on for the generative judge, off for the classifier (which cannot use it)."
        },
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={
            "help": "The model's attention: None: this package's packed SDPA for padding-free batches (attention per "
            "example, no mask over the whole row; see training/packed_attention.py), 'sdpa' otherwise; or any name "
            "transformers knows, e.g. 'flash_attention_2' on GPUs with flash-attn installed."
        },
    )
    conflicts: str = field(
        default="error",
        metadata={
            "help": "Label conflicts in the data: 'error', 'drop' (both sides) or 'keep'. Duplicates are dropped."
        },
    )
    use_lora: bool = field(default=False, metadata={"help": "Train a LoRA adapter (peft) instead of all weights."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Module names to adapt; None: peft's default for the architecture (q_proj, v_proj for LLaMA)."
        },
    )
    final_eval: bool = field(
        default=True,
        metadata={"help": "After training, meta-evaluate the saved judge on the held-out split (eval_results.json)."},
    )
    final_eval_protocol: str = field(
        default="both-orders", metadata={"help": "Protocol of the final evaluation (see pandalm meta --protocol)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.judge_type not in JUDGE_TYPES:
            raise ValueError(f"judge_type must be one of {JUDGE_TYPES}, got {self.judge_type!r}")
        if self.truncation not in TRUNCATION_POLICIES:
            raise ValueError(f"truncation must be one of {TRUNCATION_POLICIES}, got {self.truncation!r}")
        if self.conflicts not in CONFLICT_POLICIES:
            raise ValueError(f"conflicts must be one of {CONFLICT_POLICIES}, got {self.conflicts!r}")
        if self.padding_free is None:
            self.padding_free = self.judge_type == "generative"
        if self.padding_free and self.judge_type == "classifier":
            raise ValueError("padding_free cannot be used with judge_type classifier (it pools each row's last token)")
        if self.padding_free and self.use_cache:
            raise ValueError(
                "padding_free cannot be used with use_cache true: with a cache, transformers' attention does not keep "
                "the packed examples apart"
            )
        if not self.model_name_or_path or not self.train_file:
            raise ValueError("model_name_or_path and train_file are required")
        # Trainer's column pruning applies to datasets.Dataset only; ours are lists of features.
        self.remove_unused_columns = False
        # Under DDP, Trainer otherwise asks for find_unused_parameters, an extra pass over the autograd graph every
        # step; every parameter of a judge (or every trainable one, with LoRA) takes part in each forward pass.
        if self.ddp_find_unused_parameters is None:
            self.ddp_find_unused_parameters = False


def make_parser() -> HfArgumentParser:
    """The parser of ``pandalm train`` / ``python -m lm_eval_pandalm.training`` (``--config`` is handled by
    :func:`parse_config`)."""
    return HfArgumentParser(JudgeTrainingConfig)  # type: ignore[arg-type]


def parse_config(argv: Sequence[str] | None = None) -> JudgeTrainingConfig:
    """A config from ``--config FILE.yaml`` (optional) and flags; flags override the YAML file.

    Raises:
        ConfigError: An unknown YAML key (with the closest valid one and the list) or a bad value.
    """
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    yaml_path = None
    if "--config" in args:
        at = args.index("--config")
        if at + 1 >= len(args):
            raise ConfigError("--config needs a YAML file")
        yaml_path = args[at + 1]
        del args[at : at + 2]
    parser = make_parser()
    if yaml_path is not None:
        data = load_yaml_mapping(yaml_path)
        valid = {f.name for f in fields(JudgeTrainingConfig) if f.init}
        refuse_unknown_keys(dict(sorted(data.items())), valid, yaml_path)  # the alphabetically first unknown key
        # Paths in the YAML are relative to the working directory, as those given as flags are.
        parser.set_defaults(**data)
        # Options the YAML gives are no longer required on the command line.
        for action in parser._actions:
            if action.dest in data:
                action.required = False
    try:
        (config,) = parser.parse_args_into_dataclasses(args=args)
    except ValueError as exc:
        raise ConfigError(f"{yaml_path or 'command line'}: {exc}") from None
    return config  # type: ignore[no-any-return]


def config_summary(config: JudgeTrainingConfig) -> dict[str, Any]:
    """The judge-specific settings, for the run's ``training_config.json``."""
    own = {f.name for f in fields(JudgeTrainingConfig)} - {f.name for f in fields(TrainingArguments)}
    return {name: getattr(config, name) for name in sorted(own)}
