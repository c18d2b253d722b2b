"""One line saying what was judged and what failed, with the commonest failure's reason and fix.

Every command that judges prints (or logs) this line once at the end, so that 72 prompts over the judge's context are
seen and fixed rather than silently missing from the averages. Core module: standard library only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from .types import VerdictState

__all__ = ["FIXES", "failure_summary"]

FIXES: dict[str, str] = {
    VerdictState.OVER_CONTEXT.value: "set `truncation: left` in a judge YAML (drops the prompt's earliest tokens)",
    VerdictState.UNPARSED.value: "the judge's answer names no verdict (1, 2 or Tie); is it trained on this prompt?",
    VerdictState.ERROR.value: "see the error; these items are judged again on a re-run",
    VerdictState.OVER_BUDGET.value: "raise the judge's budget and re-run: the items judged so far are cached",
}
"""Per failed state, what to do about it."""

_CONTEXT = re.compile(r"context is (\d+) tokens")


def failure_summary(outcomes: Iterable[tuple[str, str | None]], *, what: str = "judged") -> str:
    """``judged N: K ok, F failed (by state); commonest: ...`` for ``(state, error)`` pairs.

    >>> line = failure_summary([("ok", None), ("over_context", "... the judge's context is 1024 tokens; ...")])
    >>> for part in line.split("; "):
    ...     print(part)
    judged 2: 1 ok, 1 failed (1 over_context)
    1 over_context: the judge's context is 1024 tokens
    set `truncation: left` in a judge YAML (drops the prompt's earliest tokens)
    """
    pairs = list(outcomes)
    states = Counter(state for state, _ in pairs)
    ok = states.pop(VerdictState.OK.value, 0)
    line = f"{what} {len(pairs)}: {ok} ok"
    if not states:
        return line + ", none failed"
    failed = sum(states.values())
    by_state = ", ".join(f"{n} {state}" for state, n in states.most_common())
    line += f", {failed} failed ({by_state})"
    state, count = states.most_common(1)[0]
    errors = Counter(error or "" for s, error in pairs if s == state)
    commonest = errors.most_common(1)[0][0]
    if state == VerdictState.OVER_CONTEXT.value:
        context = _CONTEXT.search(commonest)
        reason = f"the judge's context is {context.group(1)} tokens" if context else "prompts longer than the context"
    elif state == VerdictState.ERROR.value:
        reason = " ".join(commonest.split())[:200] or "the judge raised"
    else:
        reason = ""
    fix = FIXES.get(state, "")
    return f"{line}; {count} {state}: " + "; ".join(part for part in (reason, fix) if part)
