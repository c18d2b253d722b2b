"""The ``pandalm`` command line.

``pandalm meta``       evaluate a judge against human labels on a benchmark;
``pandalm judge``      judge arbitrary pairs from a JSONL file;
``pandalm score``      judge the samples of a finished ``lm_eval --log_samples`` run (two-stage scoring);
``pandalm tasks-dir``  print the folder of the package's lm-eval tasks (for ``lm_eval --include_path``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .meta import PROTOCOLS

__all__ = ["main", "make_parser"]

logger = logging.getLogger(__name__)

_JUDGE_HELP = (
    "judge SPEC: pandalm:<model id or path>, replay:<name> (pandalm-7b, gpt-3.5-turbo, human, GPT-4, ChatGPT, "
    "LLaMA2, GPT-4/<strategy>, or a verdict .jsonl), or a YAML judge config file"
)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--judge", required=True, metavar="SPEC", help=_JUDGE_HELP)
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="local mirror of the benchmark data laid out as <owner>/<repo>/<path> (default: env PANDALM_DATA_DIR, "
        "else download into the user cache)",
    )
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache", metavar="PATH", help="judgment cache file (default: env PANDALM_CACHE_PATH or the user cache)"
    )
    cache.add_argument("--no-cache", action="store_true", help="do not read or write the judgment cache")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pandalm`` command."""
    parser = argparse.ArgumentParser(prog="pandalm", description="PandaLM-style pairwise judging for lm-eval.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    meta = sub.add_parser("meta", help="evaluate a judge against human labels", description=__doc__)
    meta.add_argument("--benchmark", required=True, help="benchmark name (pandalm, autoj, llmbar-*, ...) or file:PATH")
    meta.add_argument("--protocol", default="first-order", choices=PROTOCOLS, help="how the judge is asked")
    meta.add_argument("--limit", type=int, metavar="N", help="only the first N items")
    meta.add_argument("--json", action="store_true", help="print one JSON object with every figure on the last line")
    _add_common(meta)

    judge = sub.add_parser("judge", help="judge pairs from a JSONL file")
    judge.add_argument(
        "--input", required=True, metavar="PAIRS.jsonl", help="one pair per line: instruction, input, response1, ..."
    )
    judge.add_argument("--output", required=True, metavar="VERDICTS.jsonl", help="where to write the verdicts")
    judge.add_argument(
        "--protocol",
        default="first-order",
        choices=("first-order", "both-orders", "paper"),
        help="judge once, or in both orders combined by averaging (both-orders) or PandaLM's rule (paper)",
    )
    judge.add_argument("--chunk-size", type=int, default=256, help="pairs judged and written per step")
    _add_common(judge)

    score = sub.add_parser(
        "score",
        help="judge the samples of a finished lm_eval --log_samples run",
        description="Two-stage scoring: judge an lm-eval run's logged samples without regenerating, and write a "
        "results JSON in lm-eval's format plus one verdict line per sample.",
    )
    score.add_argument(
        "--samples", required=True, metavar="PATH", help="a samples_*.jsonl, or the run's --output_path folder"
    )
    score.add_argument(
        "--baseline",
        metavar="SOURCE",
        help="baselines when the documents carry none, or to replace them: self-instruct, a samples_*.jsonl, or a "
        "JSONL with instruction, input, response",
    )
    score.add_argument(
        "--protocol", default="both-orders", choices=("both-orders", "paper", "first-order"), help="how to judge"
    )
    score.add_argument("--output-path", metavar="DIR", help="where to write (default: beside the samples)")
    _add_common(score)

    sub.add_parser(
        "tasks-dir",
        help="print the package's lm-eval task folder",
        description='Use as: lm_eval --include_path "$(pandalm tasks-dir)" --tasks pandalm_pairwise ...',
    )
    return parser


def _cache_setting(args: argparse.Namespace) -> str | bool | None:
    if args.no_cache:
        return False
    return args.cache


def _run_meta(args: argparse.Namespace) -> int:
    from .data.benchmarks import load_benchmark
    from .judges import make_judge
    from .meta import evaluate_judge

    benchmark = load_benchmark(args.benchmark, data_dir=args.data_dir)
    items, gold = list(benchmark.items), list(benchmark.gold)
    if args.limit is not None:
        if args.limit < 1:
            raise ValueError(f"--limit must be at least 1, got {args.limit}")
        items, gold = items[: args.limit], gold[: args.limit]
    judge = make_judge(args.judge, data_dir=args.data_dir, cache=_cache_setting(args))
    result = evaluate_judge(judge, items, gold, args.protocol)
    summary = {"benchmark": benchmark.name, **result.to_dict()}
    _print_meta_table(summary)
    if args.json:
        print(json.dumps(summary))
    return 0


def _print_meta_table(summary: dict) -> None:
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


def _run_judge(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .judges import make_judge
    from .verdict_io import read_pairs, write_verdicts

    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    items = read_pairs(args.input)
    judge = make_judge(args.judge, data_dir=args.data_dir, cache=_cache_setting(args))
    if args.protocol != "first-order":
        from .wrappers.both_orders import BothOrdersJudge

        judge = BothOrdersJudge(judge, rule="paper" if args.protocol == "paper" else "average")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("", encoding="utf-8")
    counts: dict[str, int] = {}
    # Written chunk by chunk so an interruption keeps what was judged (and the cache keeps it for a re-run).
    for start in tqdm(range(0, len(items), args.chunk_size), desc="judging", unit="chunk", disable=None):
        chunk = items[start : start + args.chunk_size]
        verdicts = judge(chunk)
        write_verdicts(output, chunk, verdicts)
        for verdict in verdicts:
            key = verdict.winner.value if verdict.winner else verdict.state.value
            counts[key] = counts.get(key, 0) + 1
    print(f"judged {len(items)} pairs with {judge.judge_id} -> {output}: {json.dumps(counts)}")
    return 0


def _run_score(args: argparse.Namespace) -> int:
    from .harness.score import score_samples

    result = score_samples(
        args.samples,
        args.judge,
        baseline=args.baseline,
        protocol=args.protocol,
        output_path=args.output_path,
        data_dir=args.data_dir,
        cache=_cache_setting(args),
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


def _run_tasks_dir(args: argparse.Namespace) -> int:
    from .task_configs import tasks_dir

    print(tasks_dir())
    return 0


def _known_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by the user's input or environment: reported in one line, without a traceback."""
    from .config import ConfigError
    from .data.benchmarks import BenchmarkFormatError
    from .data.sources import ChecksumMismatchError, DataUnavailableError
    from .judges.replay import MissingVerdictError
    from .verdict_io import VerdictFileError

    return (
        ConfigError,
        BenchmarkFormatError,
        ChecksumMismatchError,
        DataUnavailableError,
        MissingVerdictError,
        VerdictFileError,
        FileNotFoundError,
        ValueError,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pandalm`` console script; returns the exit status."""
    args = make_parser().parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(getattr(args, "verbose", 0), 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    run = {"meta": _run_meta, "judge": _run_judge, "score": _run_score, "tasks-dir": _run_tasks_dir}[args.command]
    try:
        return run(args)
    except _known_errors() as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"pandalm {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
