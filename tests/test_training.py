"""Judge training end to end on the tiny LLaMA: SFT, LoRA, classifier, resume, padding-free, the command lines.

Every run is a few optimizer steps on a ~180K-parameter model, so the file stays within a couple of minutes on two
cores. The full acceptance run (accuracy >= 0.90 after training) is examples/train-tiny.yaml, run by hand.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("peft")

from lm_eval_pandalm.training.config import parse_config
from lm_eval_pandalm.training.train import train

_COMMON = [
    "--max_length", "256", "--per_device_train_batch_size", "8", "--learning_rate", "0.003", "--report_to", "none",
    "--use_cpu", "true", "--save_strategy", "no", "--logging_steps", "1", "--disable_tqdm", "true", "--seed", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def workspace(training_workspace) -> Path:
    return training_workspace("training", 64, 24)


def _args(ws: Path, out: str, *extra: str) -> list[str]:
    return [
        "--model_name_or_path", str(ws / "base"), "--train_file", str(ws / "data/train.jsonl"),
        "--eval_file", str(ws / "data/test.jsonl"), "--output_dir", str(ws / out), *_COMMON, *extra,
    ]  # fmt: skip


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    (path,) = [p for p in folder.glob("*.safetensors")]
    return load_file(path)


def test_yaml_config_flags_override_and_unknown_keys(tmp_path: Path) -> None:
    from lm_eval_pandalm.config import ConfigError

    yaml = tmp_path / "c.yaml"
    yaml.write_text("model_name_or_path: m\ntrain_file: t.jsonl\nswap_aug_ratio: 0.25\nlearning_rate: 0.01\n")
    config = parse_config(["--config", str(yaml), "--output_dir", str(tmp_path / "o"), "--learning_rate", "0.5"])
    assert (config.swap_aug_ratio, config.learning_rate, config.padding_free) == (0.25, 0.5, True)
    yaml.write_text("model_name_or_path: m\ntrain_file: t.jsonl\nswap_aug_ratoi: 0.25\n")
    with pytest.raises(ConfigError, match=r"unknown option 'swap_aug_ratoi'\. Did you mean 'swap_aug_ratio'"):
        parse_config(["--config", str(yaml)])
    with pytest.raises(ConfigError, match="padding_free cannot be used with judge_type classifier"):
        parse_config(["--model_name_or_path", "m", "--train_file", "t", "--judge_type", "classifier",
                      "--padding_free", "true"])  # fmt: skip


def test_sft_training_changes_weights_and_output_loads_as_judge(workspace: Path) -> None:
    from lm_eval_pandalm.judges import make_judge
    from lm_eval_pandalm.testing.synthetic import synthetic_examples

    figures = train(parse_config(_args(workspace, "sft", "--max_steps", "6")))
    out = workspace / "sft"
    before, after = _weights(workspace / "base"), _weights(out)
    assert any(not before[k].equal(after[k]) for k in before)
    assert figures["eval"]["n"] == 24 and json.loads((out / "eval_results.json").read_text())["n"] == 24
    judge = make_judge(f"pandalm:{out}", cache=False)
    verdicts = judge([e.item for e in synthetic_examples(3, seed=9)])
    assert all(v.ok for v in verdicts)


def test_padding_free_gives_the_padded_loss(workspace: Path) -> None:
    padded = train(parse_config(_args(workspace, "padded", "--max_steps", "3", "--padding_free", "false",
                                      "--final_eval", "false")))  # fmt: skip
    flat = train(parse_config(_args(workspace, "flat", "--max_steps", "3", "--final_eval", "false")))
    assert flat["train_loss"] == pytest.approx(padded["train_loss"], rel=1e-4)


def test_lora_adapter_trains_saves_reloads_and_judges(workspace: Path) -> None:
    from lm_eval_pandalm.judges import make_judge
    from lm_eval_pandalm.testing.synthetic import synthetic_examples

    train(parse_config(_args(workspace, "lora", "--max_steps", "6", "--use_lora", "true", "--lora_r", "4",
                             "--learning_rate", "0.05", "--final_eval", "false")))  # fmt: skip
    out = workspace / "lora"
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    assert any(k for k in _weights(out) if "lora_" in k)
    items = [e.item for e in synthetic_examples(4, seed=9)]
    tuned = make_judge(f"pandalm:{out}", cache=False)(items)
    base = make_judge(f"pandalm:{workspace / 'base'}", cache=False)(items)
    assert all(v.ok for v in tuned)
    assert any(abs(a.p_first - b.p_first) > 1e-4 for a, b in zip(tuned, base, strict=True))  # the adapter is applied


def test_classifier_trains_calibrates_and_is_scored_by_meta(workspace: Path, capsys: pytest.CaptureFixture) -> None:
    from lm_eval_pandalm.cli import main as cli_main

    figures = train(parse_config(_args(workspace, "clf", "--judge_type", "classifier", "--max_steps", "6")))
    out = workspace / "clf"
    calibration = json.loads((out / "classifier_calibration.json").read_text())
    assert calibration["temperature"] > 0 and {"ece_before", "ece_after"} <= set(calibration)
    assert figures["eval"]["judge"] == f"classifier:{out}"
    capsys.readouterr()
    assert cli_main(["meta", "--benchmark", f"file:{workspace / 'data/test.jsonl'}", "--judge", f"classifier:{out}",
                     "--json", "--no-cache"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 24 and result["failed"] == 0


def test_the_same_config_trains_the_same_classifier_and_adapter(workspace: Path) -> None:
    # The classifier's head and LoRA's adapters are new weights: they must come from the config's seed too.
    for extra in (["--judge_type", "classifier"], ["--use_lora", "true", "--lora_r", "4"]):
        for run in ("a", "b"):
            args = [*extra, "--max_steps", "1", "--learning_rate", "0", "--final_eval", "false"]
            train(parse_config(_args(workspace, f"seeded-{extra[1]}-{run}", *args)))
        a, b = (_weights(workspace / f"seeded-{extra[1]}-{run}") for run in ("a", "b"))
        assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a), extra


def test_resume_from_mid_run_checkpoint_equals_uninterrupted_run(workspace: Path) -> None:
    steps = ["--max_steps", "6", "--final_eval", "false", "--save_strategy", "steps", "--save_steps", "3"]
    whole = train(parse_config(_args(workspace, "whole", *steps)))
    # The interrupted run: stopped after its step-3 checkpoint (a copy of that checkpoint stands for the crash).
    import shutil

    shutil.copytree(workspace / "whole/checkpoint-3", workspace / "resumed/checkpoint-3")
    resumed = train(parse_config(_args(workspace, "resumed", *steps, "--resume_from_checkpoint", "last")))
    assert resumed["global_step"] == whole["global_step"] == 6
    a, b = _weights(workspace / "whole"), _weights(workspace / "resumed")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5


def test_pandalm_train_killed_after_a_checkpoint_resumes_to_the_uninterrupted_run(workspace: Path) -> None:
    """As a user meets it: `pandalm train` SIGKILLed once a checkpoint is written, then re-run with
    --resume_from_checkpoint last, ends with the weights of a run that was never stopped. A newer checkpoint folder
    left half-written by the kill is skipped, not loaded."""
    from lm_eval_pandalm.cli import main as cli_main
    from lm_eval_pandalm.testing.processes import sigkill_when
    from lm_eval_pandalm.training.train import last_complete_checkpoint

    steps = ["--max_steps", "8", "--final_eval", "false"]
    saving = ["--save_strategy", "steps", "--save_steps", "2"]
    killed = workspace / "killed"
    command = [sys.executable, "-m", "lm_eval_pandalm.cli", "train", *_args(workspace, "killed", *steps, *saving)]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)  # fmt: skip
    sigkill_when(process, lambda: last_complete_checkpoint(killed) is not None)
    assert process.returncode == -signal.SIGKILL and not (killed / "model.safetensors").exists()
    last = last_complete_checkpoint(killed)
    assert last is not None and int(last.name.split("-")[1]) < 8
    # What a kill while saving the next checkpoint leaves: its weights but not yet its trainer_state.json.
    torn = killed / f"checkpoint-{int(last.name.split('-')[1]) + 2}"
    torn.mkdir(exist_ok=True)
    (torn / "trainer_state.json").unlink(missing_ok=True)
    assert last_complete_checkpoint(killed) == last

    assert cli_main(["train", *_args(workspace, "killed", *steps, *saving, "--resume_from_checkpoint", "last")]) == 0
    # Saving changes nothing in the optimisation: the reference run saves no checkpoint.
    whole = train(parse_config(_args(workspace, "never-killed", *steps, "--save_strategy", "no")))
    assert whole["global_step"] == 8
    a, b = _weights(workspace / "never-killed"), _weights(killed)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5


def test_resume_needs_a_complete_checkpoint(tmp_path: Path) -> None:
    from lm_eval_pandalm.config import ConfigError
    from lm_eval_pandalm.training.train import last_complete_checkpoint

    (tmp_path / "checkpoint-4").mkdir()  # torn: no trainer_state.json
    (tmp_path / "checkpoint-x").mkdir()
    assert last_complete_checkpoint(tmp_path) is None and last_complete_checkpoint(tmp_path / "absent") is None
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2/trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-10").mkdir()
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-2"  # numeric order, torn ones skipped
    config = parse_config(["--model_name_or_path", "m", "--train_file", "t.jsonl", "--output_dir", str(tmp_path / "o"),
                           "--resume_from_checkpoint", "last"])  # fmt: skip
    with pytest.raises(ConfigError, match="no complete checkpoint-N folder"):
        train(config)


def test_pandalm_train_command_line(workspace: Path, tmp_path: Path) -> None:
    from lm_eval_pandalm.cli import main as cli_main

    yaml = tmp_path / "t.yaml"
    yaml.write_text(f"model_name_or_path: {workspace / 'base'}\ntrain_file: {workspace / 'data/train.jsonl'}\n")
    assert cli_main(["train", "--config", str(yaml), "--output_dir", str(tmp_path / "o"), "--max_steps", "2",
                     *_COMMON, "--final_eval", "false"]) == 0  # fmt: skip
    assert (tmp_path / "o/model.safetensors").is_file() and (tmp_path / "o/tokenizer_config.json").is_file()
    summary = json.loads((tmp_path / "o/training_config.json").read_text())
    assert summary["n_train"] + summary["n_held_out"] == 64  # 10% of the instructions held out, none shared
    assert cli_main(["train", "--config", str(yaml), "--output_dir", str(tmp_path / "o"), "--bogus", "1"]) == 2
