"""Judge training as two data-parallel processes on CPU, launched as users launch it: ``accelerate launch``.

On CPU, ``accelerate launch --cpu --num_processes 2`` starts *one* process unless ``mpirun`` is installed (accelerate's
multi-CPU launcher is MPI); ``--multi_gpu`` goes through torchrun instead, and with ``use_cpu: true`` in the training
config each process joins a gloo process group. The test checks that both processes trained, that only the main one
wrote and evaluated, and that the output loads as a judge. A few steps on the tiny LLaMA: about 20-30 s on two cores.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def workspace(training_workspace) -> Path:
    return training_workspace("ddp", 32, 8)


def _launch(ws: Path, out: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", "0",
        "-m", "lm_eval_pandalm.training",
        "--model_name_or_path", str(ws / "base"), "--train_file", str(ws / "data/train.jsonl"),
        "--eval_file", str(ws / "data/test.jsonl"), "--output_dir", str(out),
        "--max_length", "256", "--per_device_train_batch_size", "4", "--max_steps", "4", "--learning_rate", "0.003",
        "--report_to", "none", "--use_cpu", "true", "--save_strategy", "no", "--disable_tqdm", "true", "--seed", "0",
    ]  # fmt: skip
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PANDALM_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",  # two processes on two cores
        "HF_HOME": str(ws / "hf_home"),  # no user accelerate config (~/.cache/huggingface/accelerate) applies
    }
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=240, check=False)


def test_two_process_cpu_launch_trains_once_saves_once_and_loads_as_judge(workspace: Path) -> None:
    from lm_eval_pandalm.judges import make_judge
    from lm_eval_pandalm.testing.synthetic import synthetic_examples

    out = workspace / "ddp"
    run = _launch(workspace, out)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    # Both processes trained, in one world of two; only process 0 saved and evaluated.
    assert re.findall(r"process (\d) of (\d): saving the judge", log) == [("0", "2")], log[-4000:]
    assert re.findall(r"process (\d) of (\d): done; the main process saves", log) == [("1", "2")], log[-4000:]
    assert log.count("held-out both-orders accuracy") == 1
    summaries = [json.loads(line) for line in run.stdout.splitlines() if line.startswith('{"accuracy"')]
    assert len(summaries) == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "eval_results.json", "generation_config.json", "model.safetensors", "tokenizer.json",
        "tokenizer_config.json", "training_args.bin", "training_config.json",
    ]  # fmt: skip
    results = json.loads((out / "eval_results.json").read_text())
    assert results["n"] == 8 and results["accuracy"] == summaries[0]["accuracy"]
    # Four optimizer steps of a global batch of 2 x 4 examples changed the weights.
    from safetensors.torch import load_file

    before, after = load_file(workspace / "base/model.safetensors"), load_file(out / "model.safetensors")
    assert any(not before[k].equal(after[k]) for k in before)
    verdicts = make_judge(f"pandalm:{out}", cache=False)([e.item for e in synthetic_examples(3, seed=9)])
    assert all(v.ok for v in verdicts)
