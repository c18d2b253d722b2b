"""``pandalm score``: judge the logged samples of a finished lm-eval run (two-stage scoring)."""

from __future__ import annotations

import argparse

from .common import add_judge_arguments, cache_setting, cache_write_status

NAME = "score"
HELP = "judge the samples of a finished lm_eval --log_samples run"
DESCRIPTION = """\
Two-stage scoring: judge an lm-eval run's logged samples without regenerating. Writes an lm-eval run folder of its
own (beside the generating run's, never into it): results_<date>.json in lm-eval's results layout (the generating
run's model info carried over) and samples_<task>_<date>.jsonl with each judgment in filtered_resps; prints lm-eval's
results table. Judging goes through the judgment cache chunk by chunk: a re-run after an interruption judges only
what is missing, and re-scoring a run judged in-run loads no judge weights.

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
    parser.add_argument(
        "--output-path",
        metavar="DIR",
        help="folder for results_<date>.json and samples_<task>_<date>.jsonl (default: <run folder>__pandalm_score "
        "beside the run's folder; never the run's own folder)",
    )
    parser.add_argument(
        "--bootstrap_iters",
        "--bootstrap-iters",
        type=int,
        default=100000,
        metavar="N",
        help="bootstrap resamples for the stderrs (lm-eval's default; 0 skips them)",
    )
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
        bootstrap_iters=args.bootstrap_iters,
    )
    from lm_eval.utils import make_table

    print(make_table(result.results))
    for task, record in result.results["pandalm_score"]["judging"].items():
        print(f"{task}: {record['summary']}")
    print(f"results: {result.results_path}")
    for path in result.samples_paths.values():
        print(f"judged samples: {path}")
    return cache_write_status()
