"""``pandalm compare``: rank N candidates by pairwise judgments (Bradley-Terry with bootstrap intervals)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_judge_arguments, atomic_output, cache_setting, cache_write_status

NAME = "compare"
HELP = "rank N candidates with a judge: Bradley-Terry ratings, intervals, partial order"
DESCRIPTION = """\
Compare N candidates' answers to the same instructions with a judge and rank them.

Inputs (one kind per run):
  --benchmark NAME          a labelled pairwise benchmark whose items name their two models (PandaLM's test set,
                            cmp_key): its items are the games, judged as given
  --responses NAME=PATH     one JSONL of responses per candidate (instruction, input, response or output, id)
  --samples NAME=PATH       one lm-eval samples_*.jsonl per candidate (pandalm_pairwise[_generate], --log_samples)

The needed pairs are judged through the judgment cache, in both orders by default (--protocol), on all pairs,
against one --baseline, or adaptively (--schedule adaptive: next games chosen from the current uncertainty, stop
when the best, or the top --top-k, is separated at --confidence). Reports win/tie/loss counts per pair, Bradley-Terry
ratings (ties half a win) with seeded bootstrap intervals, the partial order of significantly-better, the best
candidate, and Kendall tau against --reference-judge. --json prints one JSON object on the last line.

Examples:
  pandalm compare --benchmark pandalm --judge replay:human --json
  pandalm compare --benchmark pandalm --judge replay:gpt-3.5-turbo --protocol pandalm-legacy \\
      --reference-judge replay:human --markdown gpt.md --plot-dir plots/
  pandalm compare --responses a=a.jsonl --responses b=b.jsonl --responses c=c.jsonl --judge pandalm:PATH"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pandalm compare``."""
    from ..meta import PROTOCOLS
    from ..ranking.compare import SCHEDULES

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--benchmark", help="labelled benchmark whose items name their models (pandalm, file:PATH)")
    source.add_argument("--responses", action="append", metavar="NAME=PATH", help="a candidate's responses JSONL")
    source.add_argument("--samples", action="append", metavar="NAME=PATH", help="a candidate's lm-eval samples")
    parser.add_argument(
        "--protocol",
        default="both-orders",
        choices=PROTOCOLS,
        help="how a game is judged: both orders averaged, paper (conflict = tie), first-order, or pandalm-legacy "
        "(first order, unparsed = tie: how PandaLM's README tables were counted)",
    )
    parser.add_argument("--schedule", default="all-pairs", choices=SCHEDULES, help="which games to play")
    parser.add_argument(
        "--baseline",
        metavar="NAME",
        help="the baseline candidate: --schedule baseline plays everyone against it; any run also reports each "
        "candidate's length-controlled win rate against it (AlpacaEval-2-style GLM, at zero length difference)",
    )
    parser.add_argument("--top-k", type=int, default=1, help="adaptive: how many leaders must be separated")
    parser.add_argument("--budget", type=int, metavar="GAMES", help="adaptive: most games to play")
    parser.add_argument(
        "--confidence", type=float, default=0.9, help="interval coverage and significance level (0.9: 5-95%%)"
    )
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="ROUNDS", help="bootstrap rounds")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the adaptive schedule")
    parser.add_argument("--reference-judge", metavar="SPEC", help="another judge whose ranking tau is computed against")
    parser.add_argument("--limit", type=int, metavar="N", help="benchmark: only the first N items")
    parser.add_argument("--markdown", metavar="PATH", help="write a Markdown report")
    parser.add_argument("--plot-dir", metavar="DIR", help="write ratings.png (intervals) and winrates.png (heatmap)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with every figure on the last line")
    add_judge_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Judge, rank and report."""
    from ..judges import make_judge, preflight_spec
    from ..ranking import report
    from ..ranking.compare import compare_answers, compare_benchmark, length_controlled
    from ..ranking.inputs import parse_named, read_answers

    if args.bootstrap < 1:
        raise ValueError(f"--bootstrap must be at least 1, got {args.bootstrap}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    specs = [args.judge] + ([args.reference_judge] if args.reference_judge else [])
    for spec in specs:
        preflight_spec(spec, data_dir=args.data_dir)
    if args.benchmark:
        from ..data.benchmarks import load_benchmark

        benchmark = load_benchmark(args.benchmark, data_dir=args.data_dir)
        items = list(benchmark.items)[: args.limit]
        answers = None
    else:
        kind = "responses" if args.responses else "samples"
        named = parse_named(args.responses or args.samples, f"--{kind}")
        answers = read_answers(named, kind)
    judge = make_judge(args.judge, data_dir=args.data_dir, cache=cache_setting(args))
    reference = (
        make_judge(args.reference_judge, data_dir=args.data_dir, cache=cache_setting(args))
        if args.reference_judge
        else None
    )
    options = {"rounds": args.bootstrap, "seed": args.seed, "confidence": args.confidence, "reference": reference}
    if answers is None:
        result = compare_benchmark(items, judge, source=benchmark.source, protocol=args.protocol, **options)
        if args.baseline is not None:
            result.extra["length_controlled"] = length_controlled(result, args.baseline)
    else:
        result = compare_answers(
            answers,
            judge,
            protocol=args.protocol,
            schedule=args.schedule,
            baseline=args.baseline,
            top_k=args.top_k,
            budget=args.budget,
            **options,
        )
    result.extra["judge_spec"] = args.judge
    result.extra["judge_fingerprint"] = judge.fingerprint
    markdown = report.to_markdown(result)
    print(markdown, end="")
    if args.markdown:
        with atomic_output(args.markdown) as handle:
            handle.write(markdown)
    if args.plot_dir:
        folder = Path(args.plot_dir)
        report.plot_ratings(result, folder / "ratings.png")
        report.plot_heatmap(result, folder / "winrates.png")
        print(f"plots: {folder / 'ratings.png'}, {folder / 'winrates.png'}")
    if args.json:
        print(json.dumps(report.to_json(result), allow_nan=False))
    return cache_write_status()
