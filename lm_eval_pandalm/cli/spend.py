"""``pandalm spend``: what the API judges have spent, from the spend ledger."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

NAME = "spend"
HELP = "summarise API spending from the spend ledger"
DESCRIPTION = """\
Summarise the spend ledger that API judges (type: openai) append to: one record per API call with its tokens, cost,
latency, outcome and retries. Prints calls, failed calls, tokens and dollars in total and per model, per judge and
per day (UTC); with --json also one JSON object on the last line.

The ledger is the judge config's 'ledger' file, else $PANDALM_LEDGER_PATH, else spend.sqlite beside the judgment
cache (beside --cache PATH when a run was given one: pass the same --cache here, or --ledger).

Example:
  pandalm spend --by model --since 2026-01-01 --json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pandalm spend``."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--ledger", metavar="PATH", help="the ledger file (default: env PANDALM_LEDGER_PATH, else beside the cache)"
    )
    where.add_argument("--cache", metavar="PATH", help="read the ledger beside this judgment cache file")
    parser.add_argument(
        "--by",
        action="append",
        choices=("model", "judge", "day"),
        help="group by this (repeatable; default: all three)",
    )
    parser.add_argument("--since", metavar="DATE", help="only calls on or after this UTC date (YYYY-MM-DD)")
    parser.add_argument("--until", metavar="DATE", help="only calls before this UTC date (YYYY-MM-DD)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with every figure on the last line")


def _date(value: str | None, flag: str) -> float | None:
    if value is None:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{flag} {value!r} is not a date; write it as YYYY-MM-DD") from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp()


def run(args: argparse.Namespace) -> int:
    """Print the ledger's summary."""
    from ..ledger import SpendLedger, default_ledger_path, ledger_beside

    path = args.ledger or (ledger_beside(args.cache) if args.cache else default_ledger_path())
    since, until = _date(args.since, "--since"), _date(args.until, "--until")
    groupings = list(dict.fromkeys(args.by or ["model", "judge", "day"]))
    with SpendLedger(path, create=False) as ledger:
        summary: dict[str, Any] = {
            "ledger": str(path),
            "since": args.since,
            "until": args.until,
            "total": ledger.summary(since=since, until=until)[0],
        }
        for by in groupings:
            summary[f"by_{by}"] = ledger.summary(by, since=since, until=until)
    _print_table(summary, groupings)
    if args.json:
        print(json.dumps(summary, allow_nan=False))
    return 0


_COLUMNS = (
    ("calls", "calls", "{:d}"),
    ("failed", "failed_calls", "{:d}"),
    ("retries", "retries", "{:d}"),
    ("prompt tok", "prompt_tokens", "{:,d}"),
    ("compl. tok", "completion_tokens", "{:,d}"),
    ("USD", "cost_usd", "{:.4f}"),
)


def _print_table(summary: dict[str, Any], groupings: list[str]) -> None:
    rows: list[tuple[str, dict[str, Any]]] = [("total", summary["total"])]
    for by in groupings:
        rows += [(f"{by}: {entry['group']}", entry) for entry in summary[f"by_{by}"]]
    width = max(len(label) for label, _ in rows)
    print(f"spend ledger {summary['ledger']}")
    print(f"{'':<{width}}  " + "  ".join(f"{title:>12}" for title, _, _ in _COLUMNS))
    for label, entry in rows:
        print(f"{label:<{width}}  " + "  ".join(f"{fmt.format(entry[key]):>12}" for _, key, fmt in _COLUMNS))
    total = summary["total"]
    if total["unpriced_calls"]:
        print(f"{total['unpriced_calls']} answered calls have no price: their dollars are not in the figures")
    if total["estimated_token_calls"]:
        print(f"{total['estimated_token_calls']} calls had no usage from the server: their tokens are estimates")
