"""``pandalm meta``: how well does a judge agree with human labels on a benchmark?"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..failures import failure_summary
from ..meta import PROTOCOLS
from . import cascade_options
from .common import add_judge_arguments, cache_setting, cache_write_status

NAME = "meta"
HELP = "evaluate a judge against human labels"
DESCRIPTION = """\
Meta-evaluate a judge: judge every pair of a human-labelled benchmark and compare with the human labels.

Prints a table; with --json also one JSON object with every figure on the last line. Protocols:
  first-order     each pair judged once, in the benchmark's order
  pandalm-legacy  first order, unparsed counted as Tie (only to reproduce PandaLM's README table)
  both-orders     both orders, probabilities averaged (LLMBar's correct_average and equal also reported, and
                  first_position_rate: how often the judge picks the response shown first)
  paper           both orders, PandaLM's rule: a conflict between the orders is a Tie

Example:
  pandalm meta --benchmark pandalm --judge replay:pandalm-7b --protocol pandalm-legacy --json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pandalm meta``."""
    parser.add_argument(
        "--benchmark", required=True, help="benchmark name (pandalm, autoj, llmbar-*, ...) or file:PATH"
    )
    parser.add_argument("--protocol", default="first-order", choices=PROTOCOLS, help="how the judge is asked")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N items")
    parser.add_argument("--json", action="store_true", help="print one JSON object with every figure on the last line")
    parser.add_argument(
        "--truncation",
        choices=("none", "left"),
        help="model judges: a prompt over the judge's context is marked over_context (none) or left-truncated and "
        "scored (left), as lm-eval's hf model does in the pandalm_judge_* tasks (default: the judge config's)",
    )
    cascade_options.add_cascade_options(parser, plot=True)
    add_judge_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Judge the benchmark and print the figures."""
    from ..data.benchmarks import load_benchmark
    from ..judges import make_judge, preflight_spec
    from ..meta import evaluate_judge

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    overrides = {"truncation": args.truncation} if args.truncation else None
    preflight_spec(args.judge, data_dir=args.data_dir, overrides=overrides)
    benchmark = load_benchmark(args.benchmark, data_dir=args.data_dir)
    items, gold = list(benchmark.items), list(benchmark.gold)
    if args.limit is not None:
        items, gold = items[: args.limit], gold[: args.limit]
    judge = make_judge(args.judge, data_dir=args.data_dir, cache=cache_setting(args), overrides=overrides)
    if args.dry_run:
        cascade_options.dry_run_report(judge, items, both_orders=args.protocol in ("both-orders", "paper"))
        return 0
    recorder = cascade_options.Recorder(judge) if args.plot else None
    result = evaluate_judge(recorder or judge, items, gold, args.protocol)
    summary = {"benchmark": benchmark.name, **result.to_dict(), **cascade_options.extra_figures(judge, items, gold)}
    if recorder is not None:
        cascade_options.write_plot(
            args.plot, recorder, items, gold, benchmark=benchmark.name, accuracy_order_avg=result.accuracy_order_avg
        )
    print_table(summary)
    print(failure_summary(result.outcomes))
    over = result.failed_by_state.get("over_context", 0)
    if over:
        print(
            f"note: {over} prompts do not fit the judge's context and count as failed; lm-eval's hf model in the "
            "pandalm_judge_* tasks left-truncates and scores them instead: --truncation left does the same here"
        )
    if args.json:
        print(json.dumps(summary, allow_nan=False))
    return cache_write_status()


def print_table(summary: dict[str, Any]) -> None:
    """The figures of a meta-evaluation as an aligned table, then the confusion matrix."""
    rows = [
        ("benchmark", summary["benchmark"]),
        ("judge", summary["judge"]),
        ("protocol", summary["protocol"]),
        ("n", summary["n"]),
        ("failed", f"{summary['failed']} {summary['failed_by_state'] or ''}".strip()),
    ]
    for key in (
        "accuracy",
        "accuracy_judged",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "accuracy_order_avg",
        "positional_agreement",
        "first_position_rate",
    ):
        if summary.get(key) is not None:
            rows.append((key, f"{summary[key]:.4f}"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    labels = list(summary["confusion"])
    columns = list(next(iter(summary["confusion"].values())))
    print("confusion (rows: human, columns: judge)")
    print(" " * 6 + "".join(f"{c:>8}" for c in columns))
    for label in labels:
        print(f"{label:<6}" + "".join(f"{summary['confusion'][label][c]:>8}" for c in columns))
