"""The shipped training examples: every train-*.yaml parses as a training config, the accelerate and DeepSpeed
configs are what accelerate reads. Nothing is loaded or launched (no model, no GPU, no deepspeed needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lm_eval_pandalm.training.config import parse_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TRAINING = sorted(EXAMPLES.glob("train-*.yaml"))
ACCELERATE = sorted(EXAMPLES.glob("accelerate-*.yaml"))
DEEPSPEED = sorted(EXAMPLES.glob("deepspeed-*.json"))


def test_the_examples_are_there() -> None:
    names = {p.name for p in TRAINING + ACCELERATE + DEEPSPEED}
    assert {"train-tiny.yaml", "train-pandalm-7b.yaml", "train-lora.yaml", "accelerate-fsdp.yaml",
            "accelerate-deepspeed-zero2.yaml", "deepspeed-zero2.json", "deepspeed-zero3.json"} <= names  # fmt: skip


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: p.name)
def test_training_yaml_parses(path: Path, tmp_path: Path) -> None:
    # --use_cpu: the GPU examples ask for bf16, which TrainingArguments refuses on a machine without a GPU otherwise.
    config = parse_config(["--config", str(path), "--output_dir", str(tmp_path), "--use_cpu", "true"])
    data = yaml.safe_load(path.read_text())
    for key, value in data.items():
        got = getattr(config, key)
        if isinstance(value, (bool, int, float, list)) and key != "use_cpu":
            assert got == value, key
        elif isinstance(value, str) and key != "report_to":  # TrainingArguments turns report_to: none into []
            assert getattr(got, "value", got) == value, key
    assert config.model_name_or_path and config.train_file
    if config.use_lora:
        assert config.lora_r > 0 and config.lora_target_modules


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.name)
def test_accelerate_config_is_what_accelerate_reads(path: Path) -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(path))  # raises on keys accelerate does not know
    assert config.num_processes > 1 and config.num_machines == 1
    kind = str(config.distributed_type.value)
    if kind == "DEEPSPEED":
        deepspeed = config.deepspeed_config
        assert deepspeed is not None
        referenced = Path(__file__).resolve().parents[1] / deepspeed["deepspeed_config_file"]
        assert referenced in DEEPSPEED
        # With a DeepSpeed file, accelerate takes these from the file and refuses them in its own config.
        assert not {"zero_stage", "gradient_accumulation_steps", "offload_optimizer_device"} & set(deepspeed)
        assert config.mixed_precision is None
    else:
        assert kind == "FSDP"
        fsdp = config.fsdp_config
        assert fsdp is not None
        assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
        assert fsdp["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"


@pytest.mark.parametrize("path", DEEPSPEED, ids=lambda p: p.name)
def test_deepspeed_config_defers_to_the_training_config(path: Path) -> None:
    config = json.loads(path.read_text())
    stage = int(path.stem.rsplit("zero", 1)[1])
    assert config["zero_optimization"]["stage"] == stage
    # "auto": the Trainer fills these from the training config, so the two cannot disagree.
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                "gradient_clipping"):  # fmt: skip
        assert config[key] == "auto", key
    assert config["bf16"]["enabled"] == "auto"
    if stage == 3:
        # Without it, save_model writes ZeRO shards instead of weights a judge can load.
        assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_every_judge_training_option_has_help_text() -> None:
    import dataclasses

    from transformers import TrainingArguments

    from lm_eval_pandalm.training.config import JudgeTrainingConfig

    inherited = {f.name for f in dataclasses.fields(TrainingArguments)}
    own = [f for f in dataclasses.fields(JudgeTrainingConfig) if f.name not in inherited]
    assert len(own) >= 10
    assert [f.name for f in own if not str(f.metadata.get("help", "")).strip()] == []
