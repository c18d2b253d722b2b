"""``pandalm submit``: per candidate an lm-eval results JSON with a judge card, for a leaderboard."""

from __future__ import annotations

import argparse

NAME = "submit"
HELP = "write (or push with lm-eval's Hub tracker) per-candidate results with a judge card"
DESCRIPTION = """\
Turn a comparison into leaderboard submissions: one lm-eval results JSON per candidate (task pandalm_compare:
Bradley-Terry rating with stderr, rank, win rate, length-controlled win rate when the comparison had a --baseline)
carrying a judge card (judge SPEC, id, fingerprint with weights revision or hash, prompt template hash, protocol,
the judge's `pandalm meta` figures given with --meta, the judge config such as cascade settings, spend).

Files are written and pushed by lm-eval's own EvaluationTracker (<output-dir>/<candidate>/results_<date>.json);
--dry-run writes exactly the files that would be pushed, and pushes nothing.

Example:
  pandalm compare --benchmark pandalm --judge replay:pandalm-7b --protocol first-order --json | tail -1 > cmp.json
  pandalm meta --benchmark pandalm --judge replay:pandalm-7b --json | tail -1 > meta.json
  pandalm submit --compare cmp.json --meta meta.json --output-dir submission --dry-run"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pandalm submit``."""
    parser.add_argument("--compare", required=True, metavar="JSON", help="saved `pandalm compare --json` output")
    parser.add_argument("--meta", action="append", default=[], metavar="JSON", help="saved `pandalm meta --json`")
    parser.add_argument("--output-dir", required=True, metavar="DIR", help="where the results files go")
    parser.add_argument("--dry-run", action="store_true", help="write the files that would be pushed; push nothing")
    parser.add_argument("--hub-org", help="Hugging Face organisation to push to (needs HF_TOKEN)")
    parser.add_argument("--hub-repo", help="results dataset repository name (lm-eval's default: lm-eval-results)")
    parser.add_argument("--public", action="store_true", help="push to a public repository")


def run(args: argparse.Namespace) -> int:
    """Write (and push) the submissions."""
    from ..harness.submit import submit

    written = submit(
        args.compare,
        args.output_dir,
        meta_files=args.meta,
        dry_run=args.dry_run,
        hub_org=args.hub_org,
        hub_repo=args.hub_repo,
        public=args.public,
    )
    verb = "would push" if args.dry_run else "pushed"
    for path in written:
        print(f"{verb}: {path}")
    return 0
