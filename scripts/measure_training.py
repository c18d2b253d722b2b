"""Measure issue 8's training acceptance 1-3 on CPU, through the command lines exactly as a user runs them.

1. The tiny generative judge of examples/train-tiny.yaml: `pandalm meta` accuracy before (the untrained tiny model)
   and after `pandalm train`.
2. Swap augmentation on a position-biased training set (``--first-rate`` of the synthetic generator; the test set
   stays unbiased): swap_aug_ratio 0 against 0.5, both meta-evaluated with ``--protocol both-orders``
   (first_position_rate, positional_agreement, accuracy).
3. The classifier judge: `pandalm meta --judge classifier:OUT` accuracy, and ECE before/after temperature scaling
   from ``classifier_calibration.json``.

Everything is written under ``--workdir`` (synthetic data, tiny models, trained judges, ``figures.json``); every
command is printed before it runs, with its wall time after. Takes tens of minutes on two busy cores.

Usage::

    python scripts/measure_training.py --workdir /tmp/measure [--items 1 2 3] [--first-rate 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TINY_YAML = REPO / "examples" / "train-tiny.yaml"
DATA_FLAGS = ["--train", "6000"]  # the synthetic generator's options in the comment at the top of train-tiny.yaml
META_KEYS = ("accuracy", "accuracy_order_avg", "positional_agreement", "first_position_rate", "failed")


def run(command: list[str], cwd: Path, log: Path) -> tuple[str, float]:
    """Run ``command`` in ``cwd``, its output into ``log``; (stdout, wall seconds). Stops the script on failure."""
    print("$ " + shlex.join(command), flush=True)
    start = time.monotonic()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PANDALM_OFFLINE": "1"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    log.write_text(done.stdout + "\n--- stderr ---\n" + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        sys.exit(f"failed (exit {done.returncode}), see {log}:\n{done.stderr[-2000:]}")
    print(f"  {wall:.0f} s", flush=True)
    return done.stdout, wall


def pandalm(*args: str) -> list[str]:
    return [sys.executable, "-m", "lm_eval_pandalm.cli", *args]


def meta(cwd: Path, test_file: str, judge: str, name: str, protocol: str = "first-order") -> dict[str, Any]:
    """The figures of `pandalm meta --json` (its last line)."""
    out, wall = run(
        pandalm("meta", "--benchmark", f"file:{test_file}", "--judge", judge, "--protocol", protocol, "--json"),
        cwd,
        cwd / f"meta-{name}.log",
    )
    summary = json.loads(out.strip().splitlines()[-1])
    return {"judge": judge, "protocol": protocol, **{k: summary.get(k) for k in META_KEYS}, "wall_s": round(wall)}


def train(cwd: Path, out: str, *flags: str) -> float:
    _, wall = run(
        pandalm("train", "--config", str(TINY_YAML), "--output_dir", out, "--disable_tqdm", "true", *flags),
        cwd,
        cwd / f"train-{Path(out).name}.log",
    )
    return round(wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="scratch folder (created)")
    parser.add_argument("--items", type=int, nargs="+", default=[1, 2, 3], choices=(1, 2, 3))
    parser.add_argument("--first-rate", default="1.0", help="item 2: P(response 1 is better) in the training set")
    args = parser.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {}

    # The recipe in the comment at the top of examples/train-tiny.yaml.
    data_flags = DATA_FLAGS
    run([sys.executable, "-m", "lm_eval_pandalm.testing.synthetic", "data/", *data_flags], work, work / "synth.log")
    run([sys.executable, "-m", "lm_eval_pandalm.testing.tiny_models", "models/"], work, work / "tiny.log")

    if 1 in args.items:
        before = meta(work, "data/test.jsonl", "pandalm:models/judge", "before")
        wall = train(work, "out/tiny-judge")
        after = meta(work, "data/test.jsonl", "pandalm:out/tiny-judge", "after")
        figures["1"] = {"before": before, "after": after, "train_wall_s": wall}
    if 2 in args.items:
        biased = ["--first-rate", args.first_rate, "--test-first-rate", "0.5"]
        run([sys.executable, "-m", "lm_eval_pandalm.testing.synthetic", "biased/", *data_flags, *biased], work,
            work / "synth-biased.log")  # fmt: skip
        figures["2"] = {"train_first_rate": float(args.first_rate)}
        for ratio in ("0", "0.5"):
            out = f"out/biased-swap{ratio}"
            wall = train(work, out, "--train_file", "biased/train.jsonl", "--eval_file", "biased/test.jsonl",
                         "--swap_aug_ratio", ratio, "--final_eval", "false")  # fmt: skip
            result = meta(work, "biased/test.jsonl", f"pandalm:{out}", f"swap{ratio}", protocol="both-orders")
            figures["2"][f"swap_aug_ratio={ratio}"] = {**result, "train_wall_s": wall}
    if 3 in args.items:
        wall = train(work, "out/classifier", "--judge_type", "classifier", "--padding_free", "false")
        result = meta(work, "data/test.jsonl", "classifier:out/classifier", "classifier")
        calibration = json.loads((work / "out/classifier/classifier_calibration.json").read_text())
        figures["3"] = {**result, "calibration": calibration, "train_wall_s": wall}

    (work / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
