"""``pandalm judge``: judge the pairs of a JSONL file and write one verdict per line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..failures import failure_summary
from . import cascade_options
from .common import (
    add_judge_arguments,
    atomic_output,
    cache_setting,
    cache_write_status,
    check_output_is_not_an_input,
)

NAME = "judge"
HELP = "judge pairs from a JSONL file"
DESCRIPTION = """\
Judge the pairs of a JSON-lines file (instruction, optional input, response1, response2, optional id) and write one
verdict line per pair.

Pairs are judged chunk by chunk through the judgment cache, so a run that is interrupted resumes where it stopped.
The output is written to a temporary file beside it and renamed when the run completes: an interrupted run leaves
an earlier output untouched. The output may not be the input or a replayed verdict file.

Example:
  pandalm judge --input pairs.jsonl --judge pandalm:WeOpenML/PandaLM-7B-v1 --protocol both-orders --output v.jsonl"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pandalm judge``."""
    parser.add_argument(
        "--input", required=True, metavar="PAIRS.jsonl", help="one pair per line: instruction, input, response1, ..."
    )
    parser.add_argument("--output", required=True, metavar="VERDICTS.jsonl", help="where to write the verdicts")
    parser.add_argument(
        "--protocol",
        default="first-order",
        choices=("first-order", "both-orders", "paper"),
        help="judge once, or in both orders combined by averaging (both-orders) or PandaLM's rule (paper)",
    )
    parser.add_argument("--chunk-size", type=int, default=256, help="pairs judged, cached and written per step")
    parser.add_argument("--json", action="store_true", help="also print the run's figures as one JSON object")
    cascade_options.add_cascade_options(parser)
    add_judge_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Judge the input's pairs into the output file."""
    from tqdm.auto import tqdm

    from ..judges import make_judge, preflight_spec
    from ..verdict_io import read_pairs, write_verdict_lines

    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    inputs: dict[str, str | Path | None] = {"input (--input)": args.input}
    if args.judge.startswith("replay:") and args.judge.endswith(".jsonl"):
        inputs["replayed verdict file (--judge)"] = args.judge.removeprefix("replay:")
    check_output_is_not_an_input(args.output, inputs, flag="--output")
    preflight_spec(args.judge, data_dir=args.data_dir)
    items = read_pairs(args.input)
    if not items:
        raise ValueError(f"{args.input}: no pairs to judge (the file is empty)")
    judge = make_judge(args.judge, data_dir=args.data_dir, cache=cache_setting(args))
    if args.dry_run:
        cascade_options.dry_run_report(judge, items, both_orders=args.protocol != "first-order")
        return 0
    inner = judge
    if args.protocol != "first-order":
        from ..wrappers.both_orders import BothOrdersJudge

        judge = BothOrdersJudge(judge, rule="paper" if args.protocol == "paper" else "average")
    counts: dict[str, int] = {}
    outcomes: list[tuple[str, str | None]] = []
    with atomic_output(args.output) as handle:
        for start in tqdm(range(0, len(items), args.chunk_size), desc="judging", unit="chunk", disable=None):
            chunk = items[start : start + args.chunk_size]
            verdicts = judge(chunk)
            write_verdict_lines(handle, chunk, verdicts)
            for verdict in verdicts:
                key = verdict.winner.value if verdict.winner else verdict.state.value
                counts[key] = counts.get(key, 0) + 1
                outcomes.append((verdict.state.value, verdict.error))
    print(f"judged {len(items)} pairs with {judge.judge_id} -> {args.output}: {json.dumps(counts)}")
    print(failure_summary(outcomes))
    if args.json:
        figures = {"judged": len(items), "counts": counts, **cascade_options.extra_figures(inner, items)}
        print(json.dumps(figures, allow_nan=False))
    return cache_write_status()
