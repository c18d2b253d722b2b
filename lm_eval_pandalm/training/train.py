"""Train a judge: data, model (optionally LoRA), ``transformers.Trainer``, save, calibrate, meta-evaluate.

:func:`train` runs a whole :class:`~lm_eval_pandalm.training.config.JudgeTrainingConfig`; :func:`main` is the
command line (``pandalm train``, ``python -m lm_eval_pandalm.training``), which runs unchanged under
``accelerate launch`` (the Trainer reads the distributed environment; only the main process saves and evaluates;
each process logs ``process I of N``). On CPU, ``accelerate launch --cpu --num_processes 2`` starts one process
unless ``mpirun`` is installed; ``--multi_gpu --num_processes 2`` with ``use_cpu`` goes through torchrun (gloo).

The output folder loads as a judge: ``pandalm:OUTPUT_DIR`` for the generative judge (a LoRA adapter folder
included: the base model is named in its ``adapter_config.json``), ``classifier:OUTPUT_DIR`` for the classifier.
Beside the weights: ``training_config.json`` (the judge-specific settings and the data audit),
``eval_results.json`` (the final meta-evaluation on the held-out split) and, for the classifier,
``classifier_calibration.json`` (the fitted temperature, ECE before and after).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..data.training_format import TrainingExample
from .config import JudgeTrainingConfig, config_summary, parse_config
from .data import TrainingDataError, audit, augment, load_examples, split_by_instruction
from .encoding import CLASSIFIER_LABELS, encode_classifier, encode_generative, setup_tokenizer

__all__ = ["attention_implementation", "build_collator", "last_complete_checkpoint", "load_splits", "main", "train"]

logger = logging.getLogger(__name__)

_MAX_DEFAULT_LENGTH = 2048


def load_splits(config: JudgeTrainingConfig) -> tuple[list[TrainingExample], list[TrainingExample], dict[str, Any]]:
    """(train, held-out, audit summary) from the config's files."""
    examples, report = audit(load_examples(config.train_file), config.conflicts)
    info: dict[str, Any] = {"train_audit": report.summary()}
    if config.eval_file:
        held, held_report = audit(load_examples(config.eval_file), config.conflicts)
        info["eval_audit"] = held_report.summary()
        shared = {e.item.instruction.strip() for e in examples} & {e.item.instruction.strip() for e in held}
        if shared:
            raise TrainingDataError(
                f"{len(shared)} instructions are in both train_file and eval_file (e.g. {sorted(shared)[0][:60]!r}); "
                "the held-out figures would be inflated; remove them from one side"
            )
        train_examples = examples
    else:
        train_examples, held = split_by_instruction(examples, config.test_fraction, seed=config.seed)
    info.update(n_train=len(train_examples), n_held_out=len(held))
    return train_examples, held, info


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The highest-numbered ``checkpoint-N`` folder of ``output_dir`` that the Trainer finished writing.

    The Trainer writes ``trainer_state.json`` last and not atomically, so a run killed while saving leaves a newest
    folder without it, from which ``Trainer.train(resume_from_checkpoint=True)`` would fail; such folders are skipped
    (and logged). ``None`` when there is no complete checkpoint.
    """
    from transformers.trainer_utils import sort_checkpoints

    for path in map(Path, reversed(sort_checkpoints(str(output_dir)))):
        if (path / "trainer_state.json").is_file():
            return path
        logger.warning("skipping %s: incomplete (no trainer_state.json; the run was stopped while saving it)", path)
    return None


def _resume_target(config: JudgeTrainingConfig) -> str | None:
    """The checkpoint ``resume_from_checkpoint`` names: a folder as given, or for ``true``/``last`` the newest
    complete one in ``output_dir``."""
    resume = config.resume_from_checkpoint
    if resume is None or (isinstance(resume, str) and resume.lower() in ("", "false", "none")):
        return None
    if isinstance(resume, str) and resume.lower() not in ("true", "last"):
        return resume
    found = last_complete_checkpoint(str(config.output_dir))
    if found is None:
        raise ConfigError(
            f"resume_from_checkpoint {resume}: no complete checkpoint-N folder in {config.output_dir}; start without "
            "it, or name a checkpoint folder"
        )
    logger.info("resuming from %s", found)
    return str(found)


def build_collator(config: JudgeTrainingConfig, tokenizer: Any) -> Any:
    """Padding-free flattening, or right padding (labels padded with -100)."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening, DataCollatorWithPadding

    if config.judge_type == "classifier":
        return DataCollatorWithPadding(tokenizer)
    if config.padding_free:
        # One row per batch; position ids restart at every example, which the attention uses to keep examples apart.
        # The examples' offsets (cu_seq_lens_*) let the packed SDPA and FlashAttention find them without a sync.
        return DataCollatorWithFlattening(return_position_ids=True, separator_id=-100, return_flash_attn_kwargs=True)
    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)


def attention_implementation(config: JudgeTrainingConfig) -> str:
    """The generative judge's ``attn_implementation`` for training (registering the packed SDPA when it is used)."""
    from .packed_attention import PACKED_SDPA, register_packed_sdpa

    name = config.attn_implementation or (PACKED_SDPA if config.padding_free else "sdpa")
    if name == PACKED_SDPA:
        register_packed_sdpa()
    return name


def _model_source(name: str) -> str:
    path = Path(name).expanduser()
    # An absolute path, so that a LoRA adapter's base_model_name_or_path still resolves from elsewhere.
    return str(path.resolve()) if path.is_dir() else name


def _load_model(config: JudgeTrainingConfig, tokenizer: Any) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    source = _model_source(config.model_name_or_path)
    if config.judge_type == "classifier":
        model = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(CLASSIFIER_LABELS),
            id2label=dict(enumerate(CLASSIFIER_LABELS)),
            label2id={label: i for i, label in enumerate(CLASSIFIER_LABELS)},
            pad_token_id=tokenizer.pad_token_id,
        )
    else:
        model = AutoModelForCausalLM.from_pretrained(source, attn_implementation=attention_implementation(config))
    if config.use_lora:
        from peft import LoraConfig, TaskType, get_peft_model

        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS if config.judge_type == "classifier" else TaskType.CAUSAL_LM,
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.lora_target_modules,
        )
        model = get_peft_model(model, lora)
    return model


def _max_length(config: JudgeTrainingConfig, model: Any) -> int:
    if config.max_length is not None:
        return config.max_length
    context = getattr(model.config, "max_position_embeddings", None) or _MAX_DEFAULT_LENGTH
    return int(min(context, _MAX_DEFAULT_LENGTH))


def _encode(
    config: JudgeTrainingConfig,
    tokenizer: Any,
    examples: Sequence[TrainingExample],
    max_length: int,
    *,
    augmented: bool,
) -> list[dict[str, Any]]:
    swap = config.swap_aug_ratio if augmented else 0.0
    # The classifier sees the prompt only: there is no reference in its input to drop.
    ref_drop = config.ref_drop_ratio if augmented and config.judge_type != "classifier" else 0.0
    pairs = augment(examples, swap, ref_drop, seed=config.seed)
    if config.judge_type == "classifier":
        return encode_classifier(tokenizer, [ex for ex, _ in pairs], max_length, config.truncation)
    return encode_generative(tokenizer, pairs, max_length, config.truncation)


def train(config: JudgeTrainingConfig) -> dict[str, Any]:
    """Run the whole training described by ``config``; returns the final figures (also written to the output dir).

    Raises:
        TrainingDataError: The data cannot be used (conflicts, examples that cannot fit, a leaking eval file).
        BenchmarkFormatError: A row is malformed (file, row and field named).
    """
    from transformers import AutoTokenizer, Trainer, set_seed

    resume = _resume_target(config)  # before any work: a missing checkpoint is the user's to fix
    train_examples, held, info = load_splits(config)
    tokenizer = setup_tokenizer(AutoTokenizer.from_pretrained(_model_source(config.model_name_or_path)))
    # The classifier's new head and LoRA's adapters are initialised when the model is built, before the Trainer
    # seeds anything: seed here, so that the same config gives the same judge.
    set_seed(config.seed)
    model = _load_model(config, tokenizer)
    max_length = _max_length(config, model)
    train_features = _encode(config, tokenizer, train_examples, max_length, augmented=True)
    if not train_features:
        raise TrainingDataError(f"{config.train_file}: no example fits max_length {max_length}")
    eval_features = _encode(config, tokenizer, held, max_length, augmented=False) if held else None
    logger.info("training a %s judge on %d examples (%d held out)", config.judge_type, len(train_features), len(held))

    trainer = Trainer(
        model=model,
        args=config,
        train_dataset=train_features,  # type: ignore[arg-type]
        eval_dataset=eval_features if config.eval_strategy != "no" else None,  # type: ignore[arg-type]
        data_collator=build_collator(config, tokenizer),
        processing_class=tokenizer,
    )
    result = trainer.train(resume_from_checkpoint=resume)
    output_dir = Path(str(config.output_dir))
    trainer.save_model(str(output_dir))
    figures: dict[str, Any] = {"train_loss": result.training_loss, "global_step": result.global_step, **info}
    rank, world = trainer.args.process_index, trainer.args.world_size
    if not trainer.is_world_process_zero():
        # Trainer.save_model wrote the weights from the main process only; the rest is the main process's job too.
        logger.info("process %d of %d: done; the main process saves and evaluates", rank, world)
        return figures
    logger.info("process %d of %d: saving the judge to %s", rank, world, output_dir)
    tokenizer.save_pretrained(str(output_dir))
    summary = {**config_summary(config), "max_length": max_length, **info}
    (output_dir / "training_config.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if config.judge_type == "classifier" and held:
        figures["calibration"] = _calibrate(output_dir, held, config)
    if config.final_eval and held:
        figures["eval"] = final_evaluation(output_dir, held, config)
        (output_dir / "eval_results.json").write_text(json.dumps(figures["eval"], indent=2) + "\n")
    return figures


def _calibrate(output_dir: Path, held: Sequence[TrainingExample], config: JudgeTrainingConfig) -> dict[str, Any]:
    """Fit the temperature on half of the held-out instructions, report ECE on the other half; save it."""
    from ..judges.classifier import CALIBRATION_FILE, ClassifierJudge, ClassifierJudgeConfig, scaled_softmax
    from .calibration import expected_calibration_error, fit_temperature

    judge = ClassifierJudge(ClassifierJudgeConfig(model=str(output_dir), temperature=1.0))
    try:
        fit_part, report_part = split_by_instruction(held, 0.5, seed=config.seed)
    except (TrainingDataError, ValueError):
        fit_part = report_part = list(held)
    figures: dict[str, Any] = {"n_fit": len(fit_part), "n_report": len(report_part)}
    parts = {}
    for name, part in (("fit", fit_part), ("report", report_part)):
        logits = judge.logits([ex.item for ex in part])
        rows = [(row, CLASSIFIER_LABELS.index(ex.label.value)) for row, ex in zip(logits, part, strict=True) if row]
        parts[name] = rows
    temperature = fit_temperature([r for r, _ in parts["fit"]], [y for _, y in parts["fit"]])

    def probs(rows: list[tuple[list[float], int]], t: float) -> list[list[float]]:
        return [scaled_softmax(row, t) for row, _ in rows]

    labels = [y for _, y in parts["report"]]
    figures.update(
        temperature=temperature,
        ece_before=expected_calibration_error(probs(parts["report"], 1.0), labels),
        ece_after=expected_calibration_error(probs(parts["report"], temperature), labels),
    )
    (output_dir / CALIBRATION_FILE).write_text(json.dumps(figures, indent=2) + "\n")
    logger.info("temperature %.3f: ECE %.4f -> %.4f", temperature, figures["ece_before"], figures["ece_after"])
    return figures


def final_evaluation(output_dir: Path, held: Sequence[TrainingExample], config: JudgeTrainingConfig) -> dict[str, Any]:
    """Meta-evaluate the saved judge on the held-out examples (as ``pandalm meta`` would)."""
    from ..judges import make_judge
    from ..meta import evaluate_judge

    spec = f"{'classifier' if config.judge_type == 'classifier' else 'pandalm'}:{output_dir}"
    judge = make_judge(spec, cache=False)
    result = evaluate_judge(judge, [ex.item for ex in held], [ex.label for ex in held], config.final_eval_protocol)
    figures = result.to_dict()
    logger.info("held-out %s accuracy: %.3f", config.final_eval_protocol, figures["accuracy"])
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lm_eval_pandalm.training [--config FILE.yaml] [--FIELD VALUE ...]``; returns the exit status."""
    config = parse_config(argv)
    figures = train(config)
    if "eval" in figures:
        ev = figures["eval"]
        print(json.dumps({"accuracy": ev.get("accuracy"), "positional_agreement": ev.get("positional_agreement")}))
    return 0
