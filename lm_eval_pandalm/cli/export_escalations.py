"""``pandalm export-escalations``: the pairs a cascade escalated, with the strong judge's verdict, as training data."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import add_judge_arguments, atomic_output, cache_setting, check_output_is_not_an_input

NAME = "export-escalations"
HELP = "write a cascade's escalated pairs, judged by its last stage, as PandaLM training data"
DESCRIPTION = """\
Run a cascade (a YAML judge config with type: cascade) on pairs, and write every pair that reached its last stage
with that stage's verdict, in PandaLM's training format, one JSON object per line:

  {"inputs": {"instruction", "input", "response1", "response2"},
   "outputs": {"evaluation_result": "1" | "2" | "Tie", "evaluation_reason", "reference_response"}}

These are the pairs the cheaper stages were unsure or out of their depth on: fine-tuning the local judge on them
closes the loop. Each order the last stage judged is one example (--orders first keeps only the pair as given).
evaluation_reason is the judge's reason, or its raw output when it gave none; reference_response is its reference
answer, or empty. Pairs whose last-stage verdict failed are not written (they are counted). Stages are judged
through the judgment cache, so exporting after a run pays nothing again.

Example:
  pandalm export-escalations --benchmark llmbar-natural --judge examples/cascade-llmbar-replay.yaml \\
      --output escalated.jsonl"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pandalm export-escalations``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="PAIRS.jsonl", help="pairs to judge: instruction, input, response1, ...")
    source.add_argument("--benchmark", metavar="NAME", help="a benchmark's pairs instead (pandalm, llmbar-*, ...)")
    parser.add_argument("--output", required=True, metavar="TRAIN.jsonl", help="where to write the training examples")
    parser.add_argument(
        "--orders", default="both", choices=("both", "first"), help="one example per order judged, or the first only"
    )
    add_judge_arguments(parser)


def training_record(item: Any, verdict: Any) -> dict[str, Any]:
    """One line of PandaLM's training format for ``item`` judged ``verdict`` (which must be usable)."""
    from ..data.training_format import training_record as record

    reason = (verdict.reason or verdict.raw or "").strip()
    return record(item, verdict.winner, reason, (verdict.reference or "").strip())


def run(args: argparse.Namespace) -> int:
    """Judge the pairs and write the escalated ones."""
    from ..config import ConfigError
    from ..judges import make_judge
    from ..wrappers.cascade.report import is_cascade

    check_output_is_not_an_input(args.output, {"input (--input)": args.input}, flag="--output")
    if args.input is not None:
        from ..verdict_io import read_pairs

        items = read_pairs(args.input)
        if not items:
            raise ValueError(f"{args.input}: no pairs (the file is empty)")
    else:
        from ..data.benchmarks import load_benchmark

        items = list(load_benchmark(args.benchmark, data_dir=args.data_dir).items)
    judge = make_judge(args.judge, data_dir=args.data_dir, cache=cache_setting(args))
    if not is_cascade(judge):
        raise ConfigError(f"--judge {args.judge} is not a cascade (a YAML judge config with type: cascade)")
    judge(items)
    written = escalated = failed = 0
    seen: set[tuple[str, str, frozenset[str]]] = set()
    with atomic_output(args.output) as handle:
        for item in items:
            pair = (item.instruction, item.input, frozenset((item.response1, item.response2)))
            if pair in seen:
                continue
            seen.add(pair)
            verdicts = judge.stage_verdicts(item, -1)  # type: ignore[attr-defined]
            if verdicts is None:
                continue
            escalated += 1
            if args.orders == "first":
                verdicts = verdicts[:1]
            if not all(verdict.ok for _, verdict in verdicts):
                failed += 1
                continue
            for shown, verdict in verdicts:
                handle.write(json.dumps(training_record(shown, verdict), ensure_ascii=False) + "\n")
                written += 1
    print(
        f"{escalated} of {len(seen)} pairs reached {judge.stages[-1].name}; "  # type: ignore[attr-defined]
        f"wrote {written} examples to {args.output}" + (f"; skipped {failed} whose verdict failed" if failed else "")
    )
    return 0
