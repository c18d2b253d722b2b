"""``pandalm calibrate``: fit a cascade's policy on human-labelled benchmarks and write it into a config."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import add_judge_arguments, atomic_output, cache_setting

NAME = "calibrate"
HELP = "calibrate a cascade's escalation policy on labelled benchmarks"
DESCRIPTION = """\
Calibrate an escalation cascade (a YAML judge config with type: cascade) on human-labelled benchmarks, and write the
calibrated policy into a copy of the config.

Every stage judges every pair in both orders (through the judgment cache; replayed stages cost nothing). Per
non-final stage a router (logistic regression over the signals, --score router) or a signal scores each pair, and
the threshold is chosen by fixed-sequence testing with an exact binomial bound (Trust or Escalate): with probability
at least 1 - delta, the pairs a stage keeps agree with humans in both orders at a rate of at least 1 - alpha, on data
like the calibration data. With several benchmarks, each is also held out in turn (calibrated on the others, judged
as new data): those leave-one-benchmark-out figures are what to expect on a benchmark the cascade was not
calibrated on.

Example:
  pandalm calibrate --benchmark llmbar-natural --benchmark llmbar-neighbor --judge cascade.yaml \\
      --alpha 0.1 --delta 0.1 --output cascade-calibrated.yaml --json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pandalm calibrate``."""
    parser.add_argument(
        "--benchmark",
        action="append",
        required=True,
        metavar="NAME",
        help="labelled benchmark to calibrate on (repeat, or comma-separate, for several)",
    )
    parser.add_argument("--alpha", type=float, default=0.1, help="allowed disagreement with humans on kept pairs")
    parser.add_argument("--delta", type=float, default=0.1, help="allowed probability that the bound fails")
    parser.add_argument(
        "--score", default="router", help="what ranks the pairs: 'router' (fitted here) or a signal name"
    )
    parser.add_argument(
        "--features", metavar="A,B,...", help="signals the router may use (default: every signal the config records)"
    )
    parser.add_argument("--output", required=True, metavar="CONFIG.yaml", help="where to write the calibrated config")
    parser.add_argument("--no-leave-one-out", action="store_true", help="skip the leave-one-benchmark-out figures")
    parser.add_argument("--json", action="store_true", help="print one JSON object with every figure on the last line")
    add_judge_arguments(parser)


def _benchmarks(values: list[str]) -> list[str]:
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if len(set(names)) != len(names):
        raise ValueError(f"--benchmark names a benchmark twice: {names}")
    return names


def run(args: argparse.Namespace) -> int:
    """Calibrate and write the config."""
    import yaml

    from ..config import ConfigError, load_yaml_mapping
    from ..data.benchmarks import load_benchmark
    from ..judges import make_judge
    from ..meta import evaluate_judge
    from ..wrappers.cascade.build import with_policy
    from ..wrappers.cascade.calibration import calibrate, collect_traces, leave_one_out
    from ..wrappers.cascade.report import cascade_figures, is_cascade
    from ..wrappers.cascade.signals import SIGNALS

    for name in ("alpha", "delta"):
        value = getattr(args, name)
        if not 0 < value < 1:
            raise ValueError(f"--{name} must be strictly between 0 and 1, got {value}")
    if args.score != "router" and args.score not in SIGNALS:
        raise ValueError(f"--score must be 'router' or a signal ({', '.join(SIGNALS)}), got {args.score!r}")
    if not args.judge.endswith((".yaml", ".yml")):
        raise ConfigError(f"--judge must be a cascade config file (*.yaml with type: cascade), got {args.judge!r}")
    original = load_yaml_mapping(args.judge)
    judge = make_judge(args.judge, data_dir=args.data_dir, cache=cache_setting(args))
    if not is_cascade(judge):
        raise ConfigError(f"{args.judge}: type must be 'cascade' to calibrate (got {original.get('type')!r})")
    features = None
    if args.features:
        features = [f.strip() for f in args.features.split(",") if f.strip()]
        unknown = [f for f in features if f not in SIGNALS]
        if unknown:
            raise ValueError(f"--features: unknown signal(s) {unknown}; valid: {', '.join(SIGNALS)}")
        missing = [f for f in features if f not in judge.signal_names]  # type: ignore[attr-defined]
        if missing:
            raise ValueError(f"--features {missing} are not recorded by {args.judge}; add them to its 'signals'")

    sets = []
    for name in _benchmarks(args.benchmark):
        benchmark = load_benchmark(name, data_dir=args.data_dir)
        sets.append(collect_traces(judge, benchmark.name, list(benchmark.items), list(benchmark.gold)))  # type: ignore[arg-type]
    options: dict[str, Any] = {"alpha": args.alpha, "delta": args.delta, "score": args.score, "features": features}
    policy = calibrate(judge, sets, **options)  # type: ignore[arg-type]
    in_sample = []
    for data in sets:
        live = with_policy(judge, policy)  # type: ignore[arg-type]
        result = evaluate_judge(live, data.items, data.gold, "both-orders")
        figures = cascade_figures(live, data.items, data.gold)
        in_sample.append(
            {
                "benchmark": data.name,
                "n": len(data.items),
                "accuracy_order_avg": result.accuracy_order_avg,
                "last_stage_accuracy_order_avg": sum(t.correct[-1] for t in data.traces) / len(data.traces),
                "escalated_fraction": figures["escalated_fraction"],
                "cost_usd": figures["cost_usd"],
                "agreement_kept": figures["guarantee"].get("agreement_kept"),
            }
        )
    loo = leave_one_out(judge, sets, **options) if len(sets) > 1 and not args.no_leave_one_out else []  # type: ignore[arg-type]

    policy_mapping = {
        key: value
        for key, value in vars(policy).items()
        if key != "routers" and value is not None and key not in ("fraction", "max_usd")
    }
    output = dict(original)
    output["policy"] = policy_mapping
    header = [
        f"Calibrated by `pandalm calibrate` (alpha {args.alpha}, delta {args.delta}, score {args.score}) on",
        f"  {', '.join(s.name for s in sets)}.",
        "In-sample (benchmark: order-averaged accuracy, escalated fraction):",
        *(f"  {r['benchmark']}: {r['accuracy_order_avg']:.4f}, {r['escalated_fraction']:.2f}" for r in in_sample),
    ]
    if loo:
        header.append("Leave-one-benchmark-out (held out: order-averaged accuracy, escalated fraction):")
        header.extend(f"  {r['held_out']}: {r['accuracy_order_avg']:.4f}, {r['escalated_fraction']:.2f}" for r in loo)
    comments = _leading_comments(Path(args.judge).read_text(encoding="utf-8"))
    with atomic_output(args.output) as handle:
        handle.write("".join(f"{line}\n" for line in comments))
        handle.write("".join(f"{_MARK}{line}\n" for line in header))
        yaml.safe_dump(output, handle, sort_keys=False, allow_unicode=True, width=116, default_flow_style=None)
    make_judge(str(Path(args.output)), data_dir=args.data_dir, cache=False)  # the written config must load

    _print_rows("in-sample (calibrated on all)", in_sample, "benchmark")
    if loo:
        _print_rows("leave-one-benchmark-out", loo, "held_out")
    print(f"thresholds {policy.thresholds} -> {args.output}")
    if args.json:
        summary = {
            "benchmarks": [s.name for s in sets],
            "alpha": args.alpha,
            "delta": args.delta,
            "score": args.score,
            "output": str(args.output),
            "policy": policy_mapping,
            "in_sample": in_sample,
            "leave_one_out": loo,
        }
        print(json.dumps(summary, allow_nan=False))
    return 0


_MARK = "# [calibrate] "
"""Starts the comment lines ``pandalm calibrate`` writes (replaced, not repeated, when a config is re-calibrated)."""


def _leading_comments(text: str) -> list[str]:
    """The comment block at the top of a config, without an earlier calibration's lines."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith(_MARK):
            lines.append(line)
    return lines


def _print_rows(title: str, rows: list[dict[str, Any]], key: str) -> None:
    print(title)
    print(f"  {'benchmark':<18}{'n':>5}{'acc(avg)':>10}{'last':>8}{'escal.':>8}{'cost $':>10}{'kept agr.':>11}")
    for row in rows:
        agreement = row.get("agreement_kept")
        shown = "-" if agreement is None else f"{agreement:.4f}"
        print(
            f"  {row[key]:<18}{row['n']:>5}{row['accuracy_order_avg']:>10.4f}"
            f"{row['last_stage_accuracy_order_avg']:>8.4f}{row['escalated_fraction']:>8.2f}{row['cost_usd']:>10.4f}"
            f"{shown:>11}"
        )
