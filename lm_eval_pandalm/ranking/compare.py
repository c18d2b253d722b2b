"""Compare N candidates with a judge: turn games into pairs, judge them (both orders, through the cache), rate.

Two kinds of input:

* :class:`Answers`: every candidate's response to the same instructions (JSONL files of responses, or lm-eval
  samples of ``pandalm_pairwise`` / ``pandalm_pairwise_generate`` runs, see :mod:`.inputs`). Any schedule of
  :mod:`.tournament` chooses the games; each game is judged as the pair ``(response of a, response of b)``.
* A labelled pairwise benchmark whose items name their two models (PandaLM's test set: ``cmp_key`` is
  ``<model of response1>_<model of response2>``): the games are the benchmark's items, as given.

A *protocol* says how a game becomes an outcome (the names of :data:`lm_eval_pandalm.meta.PROTOCOLS`):
``both-orders`` (default: both orders, probabilities averaged), ``paper`` (both orders, a conflict is a tie),
``first-order`` (once, as given) and ``pandalm-legacy`` (once, and an unparsed verdict counts as a tie: how the
win/lose/tie tables in PandaLM's README were counted, with gpt-3.5-turbo's 25 "garbage" answers among the ties).
Under every other protocol a failed judgment is counted as failed, never as a tie or a loss.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import PandaLMError
from ..judge import Judge, check_verdicts
from ..meta import PROTOCOLS
from ..types import Label, PairItem, Verdict, VerdictState
from .ratings import Counts, RatingTable, cluster_matrices, fit_ratings, kendall_tau, rate
from .tournament import A_WINS, B_WINS, FAILED, TIE, AdaptiveResult, Tournament

__all__ = [
    "SCHEDULES",
    "Answers",
    "CompareInputError",
    "CompareResult",
    "GameRecord",
    "benchmark_games",
    "compare_answers",
    "compare_benchmark",
    "length_controlled",
    "outcome_code",
]

logger = logging.getLogger(__name__)

SCHEDULES = ("all-pairs", "baseline", "adaptive")
"""Which games :func:`compare_answers` plays."""

_CODES = {Label.FIRST: A_WINS, Label.SECOND: B_WINS, Label.TIE: TIE}


class CompareInputError(PandaLMError, ValueError):
    """Candidates' inputs that cannot be compared (names, missing instructions, unnamed models)."""


@dataclass(frozen=True)
class Answers:
    """Every candidate's response to the same instructions."""

    names: list[str]
    """Candidate names."""
    instructions: list[tuple[str, str]]
    """``(instruction, input)`` of every instruction."""
    responses: list[list[str]]
    """``responses[candidate][instruction]``."""

    def __post_init__(self) -> None:
        if len(self.responses) != len(self.names):
            raise ValueError(f"{len(self.names)} candidates but {len(self.responses)} response lists")
        for name, row in zip(self.names, self.responses, strict=True):
            if len(row) != len(self.instructions):
                raise ValueError(f"{name}: {len(row)} responses for {len(self.instructions)} instructions")

    def item(self, a: int, b: int, k: int) -> PairItem:
        """The pair that game ``(a, b, k)`` judges: ``a``'s response first."""
        instruction, input_ = self.instructions[k]
        return PairItem(
            instruction=instruction,
            input=input_,
            response1=self.responses[a][k],
            response2=self.responses[b][k],
            id=f"compare/{k}/{self.names[a]}/{self.names[b]}",
            metadata={"a": self.names[a], "b": self.names[b], "instruction_index": k},
        )


@dataclass(frozen=True)
class GameRecord:
    """One judged game."""

    a: int
    """Index of the candidate shown first."""
    b: int
    """Index of the other candidate."""
    instruction: int
    """Index of the instruction (benchmark mode: of the item)."""
    outcome: int
    """Outcome code (:data:`~.tournament.A_WINS` ...)."""
    p_a: float | None
    """The judge's probability that ``a`` is better (``None`` when failed)."""
    p_tie: float | None
    """The judge's probability of a tie."""
    len_a: int
    """Characters of ``a``'s response."""
    len_b: int
    """Characters of ``b``'s response."""
    cost_usd: float | None = None
    """What the game's judgments cost, when the judge says."""


@dataclass
class CompareResult:
    """What a comparison found."""

    names: list[str]
    """Candidates."""
    judge: str
    """The judge's id."""
    protocol: str
    """How games were judged."""
    schedule: str
    """``all-pairs``, ``baseline``, ``adaptive`` or ``benchmark`` (the benchmark's own pairs)."""
    counts: Counts
    """Wins, ties and failures per pair."""
    table: RatingTable
    """Ratings, intervals, partial order."""
    games: list[GameRecord]
    """Every judged game."""
    judgments: int
    """Judge calls the games took (two per game in both-orders protocols)."""
    all_pairs_judgments: int | None = None
    """Judgments an all-pairs tournament would take (when the schedule chose the games)."""
    adaptive: AdaptiveResult | None = None
    """How an adaptive schedule ended."""
    reference: dict[str, Any] | None = None
    """Agreement with a reference judge's ranking (judge, ratings, Kendall tau and p-value)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Further figures (length-controlled win rates...)."""


def outcome_code(verdict: Verdict, protocol: str) -> int:
    """The outcome code of a verdict on ``(a, b)``: a win, a loss, a tie, or failed.

    >>> outcome_code(Verdict.hard("j", Label.SECOND), "both-orders")
    1
    >>> outcome_code(Verdict.failed("j", VerdictState.UNPARSED, "garbage"), "pandalm-legacy")
    2
    """
    if verdict.ok:
        return _CODES[verdict.winner]  # type: ignore[index]
    if protocol == "pandalm-legacy" and verdict.state is VerdictState.UNPARSED:
        return TIE
    return FAILED


def _check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid protocols: {', '.join(PROTOCOLS)}")
    return protocol


def _game_judge(judge: Judge, protocol: str) -> tuple[Judge, int]:
    """The judge that gives one verdict per game under ``protocol``, and its judgments per game."""
    if protocol in ("both-orders", "paper"):
        from ..wrappers.both_orders import BothOrdersJudge

        return BothOrdersJudge(judge, rule="paper" if protocol == "paper" else "average"), 2
    return judge, 1


def _judge_items(judge: Judge, items: Sequence[PairItem], protocol: str) -> list[Verdict]:
    wrapped, _ = _game_judge(judge, protocol)
    return check_verdicts(wrapped, items, wrapped(items))


def _records(rows: Any, items: Sequence[PairItem], verdicts: Sequence[Verdict], protocol: str) -> list[GameRecord]:
    out = []
    for (a, b, k), item, verdict in zip(rows, items, verdicts, strict=True):
        out.append(
            GameRecord(
                a=int(a),
                b=int(b),
                instruction=int(k),
                outcome=outcome_code(verdict, protocol),
                p_a=verdict.p_first if verdict.ok else None,
                p_tie=verdict.p_tie if verdict.ok else None,
                len_a=len(item.response1),
                len_b=len(item.response2),
                cost_usd=verdict.cost_usd,
            )
        )
    return out


def _counts_of(names: Sequence[str], records: Sequence[GameRecord]) -> Counts:
    counts = Counts.empty(names)
    for r in records:
        counts.add(
            r.a,
            r.b,
            wins_a=r.outcome == A_WINS,
            wins_b=r.outcome == B_WINS,
            ties=r.outcome == TIE,
            failed=r.outcome == FAILED,
        )
    return counts


def _reference(
    reference: Judge | None, names: Sequence[str], rows: Any, items: Sequence[PairItem], protocol: str, mine: Counts
) -> dict[str, Any] | None:
    if reference is None:
        return None
    verdicts = _judge_items(reference, items, protocol)
    counts = _counts_of(names, _records(rows, items, verdicts, protocol))
    theirs = fit_ratings(counts)
    tau, p_value = kendall_tau(list(fit_ratings(mine)), list(theirs))
    return {
        "judge": reference.judge_id,
        "ratings": {name: round(float(x), 6) for name, x in zip(names, theirs, strict=True)},
        "pairs": counts.pairs(),
        "kendall_tau": tau,
        "kendall_p_value": p_value,
    }


def length_controlled(result: CompareResult, baseline: str) -> list[dict[str, Any]]:
    """Each candidate's raw and length-controlled win rate against ``baseline``, from the games they played
    (see :mod:`.length_control`; failed judgments left out; a candidate that never met the baseline is skipped).

    Raises:
        CompareInputError: ``baseline`` is not a candidate.
    """
    from .length_control import length_controlled_win_rate

    if baseline not in result.names:
        raise CompareInputError(f"baseline {baseline!r} is not a candidate; candidates: {', '.join(result.names)}")
    base = result.names.index(baseline)
    out = []
    for index, name in enumerate(result.names):
        if index == base:
            continue
        targets, diffs = [], []
        for g in result.games:
            if g.p_a is None or {g.a, g.b} != {index, base}:
                continue
            p_a = g.p_a + (g.p_tie or 0.0) / 2
            mine, theirs = (p_a, g.len_a - g.len_b) if g.a == index else (1 - p_a, g.len_b - g.len_a)
            targets.append(min(1.0, max(0.0, mine)))
            diffs.append(theirs)
        if not targets:
            continue
        lc = length_controlled_win_rate(targets, diffs)
        out.append(
            {
                "name": name,
                "baseline": baseline,
                "games": lc.n,
                "win_rate": round(lc.win_rate, 6),
                "lc_win_rate": round(lc.lc_win_rate, 6),
                "lc_stderr": round(lc.lc_stderr, 6),
                "length_coef": round(lc.length_coef, 6),
            }
        )
    return out


def benchmark_games(items: Sequence[PairItem], source: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Candidate names and each item's ``(a, b)`` from the items' ``cmp_key`` (``<model 1>_<model 2>``).

    Raises:
        CompareInputError: An item names no models, or not exactly two.
    """
    names: dict[str, int] = {}
    pairs = []
    for row, item in enumerate(items):
        key = item.metadata.get("cmp_key")
        parts = key.split("_") if isinstance(key, str) else []
        if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
            raise CompareInputError(
                f"{source}: row {row}: field 'cmp_key': expected '<model of response1>_<model of response2>', "
                f"got {key!r}; compare needs benchmark items that name their two models"
            )
        pairs.append((names.setdefault(parts[0], len(names)), names.setdefault(parts[1], len(names))))
    return list(names), pairs


def compare_benchmark(
    items: Sequence[PairItem],
    judge: Judge,
    *,
    source: str,
    protocol: str = "both-orders",
    reference: Judge | None = None,
    rounds: int = 1000,
    seed: int = 0,
    confidence: float = 0.9,
) -> CompareResult:
    """Rate the models a labelled benchmark's items name, from ``judge``'s verdicts on those items."""
    _check_protocol(protocol)
    names, pairs = benchmark_games(items, source)
    rows = [(a, b, k) for k, (a, b) in enumerate(pairs)]
    verdicts = _judge_items(judge, items, protocol)
    records = _records(rows, items, verdicts, protocol)
    counts = _counts_of(names, records)
    _, per_game = _game_judge(judge, protocol)
    # Resample instructions, not items: PandaLM's 999 items share 170 instructions.
    instruction_ids: dict[tuple[str, str], int] = {}
    games = [
        (r.a, r.b, instruction_ids.setdefault((item.instruction, item.input), len(instruction_ids)), r.outcome)
        for r, item in zip(records, items, strict=True)
    ]
    clusters = cluster_matrices(len(names), games, len(instruction_ids))
    return CompareResult(
        names=names,
        judge=judge.judge_id,
        protocol=protocol,
        schedule="benchmark",
        counts=counts,
        table=rate(counts, rounds=rounds, seed=seed, confidence=confidence, clusters=clusters),
        games=records,
        judgments=per_game * len(items),
        reference=_reference(reference, names, rows, items, protocol, counts),
    )


def compare_answers(
    answers: Answers,
    judge: Judge,
    *,
    protocol: str = "both-orders",
    schedule: str = "all-pairs",
    baseline: str | None = None,
    reference: Judge | None = None,
    rounds: int = 1000,
    seed: int = 0,
    confidence: float = 0.9,
    top_k: int = 1,
    budget: int | None = None,
) -> CompareResult:
    """Play a tournament between the candidates of ``answers``, judged by ``judge``, and rate them.

    Args:
        answers: Every candidate's responses.
        judge: Any judge (build it with :func:`~lm_eval_pandalm.judges.make_judge`, which adds the cache).
        protocol: One of :data:`~lm_eval_pandalm.meta.PROTOCOLS`.
        schedule: ``all-pairs``, ``baseline`` (every candidate against ``baseline``) or ``adaptive`` (until the top
            ``top_k`` are separated at ``confidence``, or ``budget`` games are spent).
        baseline: The baseline candidate's name: the ``baseline`` schedule plays every candidate against it; under
            any schedule, each candidate's length-controlled win rate against it is reported (``extra``).
        reference: Another judge; its ranking on the same games is compared with Kendall's tau.
        rounds: Bootstrap rounds of the intervals.
        seed: Seeds the bootstrap and the adaptive schedule.
        confidence: Interval coverage and significance level; the adaptive stop uses it too.
        top_k: Adaptive schedule: how many leaders to separate.
        budget: Adaptive schedule: most games to play.
    """
    from .tournament import against_baseline, all_pairs, run_adaptive

    _check_protocol(protocol)
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    if schedule == "baseline" and baseline not in answers.names:
        raise CompareInputError(f"--baseline {baseline!r} is not a candidate; candidates: {', '.join(answers.names)}")
    wrapped, per_game = _game_judge(judge, protocol)
    records: list[GameRecord] = []
    all_items: list[PairItem] = []
    all_rows: list[tuple[int, int, int]] = []

    def play(games: Any) -> list[int]:
        rows = [tuple(int(x) for x in g) for g in games]
        items = [answers.item(a, b, k) for a, b, k in rows]
        verdicts = check_verdicts(wrapped, items, wrapped(items))
        new = _records(rows, items, verdicts, protocol)
        records.extend(new)
        all_items.extend(items)
        all_rows.extend(rows)  # type: ignore[arg-type]
        return [r.outcome for r in new]

    tournament = Tournament(list(answers.names), len(answers.instructions))
    adaptive = None
    if schedule == "all-pairs":
        tournament.play(all_pairs(len(answers.names), len(answers.instructions)), play)
    elif schedule == "baseline":
        index = answers.names.index(baseline)  # type: ignore[arg-type]
        tournament.play(against_baseline(len(answers.names), len(answers.instructions), index), play)
    else:
        adaptive = run_adaptive(tournament, play, confidence=confidence, top_k=top_k, budget=budget, seed=seed)
    counts = tournament.counts
    result = CompareResult(
        names=list(answers.names),
        judge=judge.judge_id,
        protocol=protocol,
        schedule=schedule,
        counts=counts,
        table=rate(counts, rounds=rounds, seed=seed, confidence=confidence, clusters=tournament.by_instruction),
        games=records,
        judgments=per_game * len(records),
        all_pairs_judgments=per_game * tournament.all_pairs_games,
        adaptive=adaptive,
        reference=_reference(reference, answers.names, all_rows, all_items, protocol, counts),
    )
    if baseline is not None:
        result.extra["length_controlled"] = length_controlled(result, baseline)
    return result
