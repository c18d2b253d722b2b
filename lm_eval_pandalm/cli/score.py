"""``pandalm score``: judge the logged samples of a finished lm-eval run (two-stage scoring)."""

from __future__ import annotations

import argparse

from .common import add_judge_arguments, cache_setting

NAME = "score"
HELP = "judge the samples of a finished lm_eval --log_samples run"
DESCRIPTION = """\
Two-stage scoring: judge an lm-eval run's logged samples without regenerating, and write a results JSON in
lm-eval's format plus one verdict line per sample.

Example:
  lm-eval-pandalm --model hf --model_args pretrained=MODEL --tasks pandalm_pairwise_generate --log_samples \\
    --output_path results
  pandalm score --samples results --judge pandalm:WeOpenML/PandaLM-7B-v1"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pandalm score``."""
    parser.add_argument(
        "--samples", required=True, metavar="PATH", help="a samples_*.jsonl, or the run's --output_path folder"
    )
    parser.add_argument(
        "--baseline",
        metavar="SOURCE",
        help="baselines when the documents carry none, or to replace them: self-instruct, a samples_*.jsonl, or a "
        "JSONL with instruction, input, response",
    )
    parser.add_argument(
        "--protocol", default="both-orders", choices=("both-orders", "paper", "first-order"), help="how to judge"
    )
    parser.add_argument("--output-path", metavar="DIR", help="where to write (default: beside the samples)")
    add_judge_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Score the samples and print where the results went."""
    from ..harness.score import score_samples

    result = score_samples(
        args.samples,
        args.judge,
        baseline=args.baseline,
        protocol=args.protocol,
        output_path=args.output_path,
        data_dir=args.data_dir,
        cache=cache_setting(args),
    )
    for task, metrics in result.results["results"].items():
        shown = ", ".join(
            f"{name.split(',')[0]}={value:.4f}"
            for name, value in metrics.items()
            if name != "alias" and "_stderr" not in name and value is not None
        )
        print(f"{task}: {shown}")
    print(f"results: {result.results_path}")
    for path in result.verdict_paths.values():
        print(f"verdicts: {path}")
    return 0
