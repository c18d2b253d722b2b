"""Simulated tournaments with a scripted judge that errs at a known rate: do the ratings and schedules work?

The world: candidate ``i`` has a true strength ``s_i``; its answer to instruction ``k`` has quality
``s_i + g_ik`` with ``g_ik`` standard Gumbel, so ``P(i's answer is better than j's) = sigmoid(s_i - s_j)`` exactly
(the difference of two Gumbels is logistic): the true strengths *are* Bradley-Terry ratings. The scripted judge sees
which answer is better and reports it, except that it flips each order's verdict with probability ``error``,
independently; a game judged in both orders whose orders disagree is a tie.

Such a judge compresses the ratings (a judge that errs sees smaller differences), so a Bradley-Terry fit of its
verdicts estimates the *judge's* ratings: the fit of its expected outcomes, :func:`judge_ratings`. The interval
coverage of :func:`coverage_study` is measured against those, and against the true strengths when ``error`` is 0.

Run the studies (figures in BENCHMARKS.md)::

    python -m lm_eval_pandalm.ranking.simulate coverage --seeds 200
    python -m lm_eval_pandalm.ranking.simulate adaptive --seeds 200
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..types import Label, PairItem, Verdict
from .ratings import fit_ratings, rate
from .tournament import A_WINS, B_WINS, TIE, Tournament, all_pairs, run_adaptive

__all__ = ["ScriptedJudge", "World", "adaptive_study", "coverage_study", "judge_ratings", "sample_best"]

logger = logging.getLogger(__name__)


def _np() -> Any:
    import numpy

    return numpy


@dataclass
class World:
    """True strengths, every answer's quality, and a judge that flips each order's verdict with ``error``."""

    strengths: Any
    """True Bradley-Terry rating of each candidate."""
    n_instructions: int
    """Instructions answered by every candidate."""
    error: float
    """Probability that the judge flips one order's verdict."""
    seed: int
    """Seeds the answers' qualities and the judge's errors."""
    both_orders: bool = True
    """Judge each game in both orders (disagreement is a tie); else once."""

    def __post_init__(self) -> None:
        np = _np()
        self.strengths = np.asarray(self.strengths, dtype=float)
        rng = np.random.default_rng(self.seed)
        self.quality = self.strengths[:, None] + rng.gumbel(size=(len(self.strengths), self.n_instructions))
        self._rng = np.random.default_rng(self.seed + 1_000_003)
        self.judgments = 0

    def play(self, games: Any) -> Any:
        """Outcome codes of ``(a, b, instruction)`` rows (vectorised :data:`~.tournament.Play`)."""
        np = _np()
        a, b, k = games[:, 0], games[:, 1], games[:, 2]
        truth = self.quality[a, k] > self.quality[b, k]
        first = truth ^ (self._rng.random(len(games)) < self.error)
        if not self.both_orders:
            self.judgments += len(games)
            return np.where(first, A_WINS, B_WINS)
        second = truth ^ (self._rng.random(len(games)) < self.error)
        self.judgments += 2 * len(games)
        return np.where(first == second, np.where(first, A_WINS, B_WINS), TIE)


def sample_best(world: World) -> int:
    """The candidate an all-pairs tournament with unlimited judgments of these answers would rate best: the
    Bradley-Terry fit of the judge's *expected* outcomes on the world's own instructions. With finitely many
    instructions it can differ from the candidate of highest true strength."""
    np = _np()
    q = world.quality
    better = (q[:, None, :] > q[None, :, :]).sum(axis=2).astype(float)  # better[i, j]: instructions i wins
    e = world.error
    if world.both_orders:
        wins = (1 - e) ** 2 * better + e**2 * better.T
        ties = 2 * e * (1 - e) * (better + better.T)
    else:
        wins = (1 - e) * better + e * better.T
        ties = np.zeros_like(better)
    matrix = wins + ties / 2
    np.fill_diagonal(matrix, 0)
    return int(np.argmax(fit_ratings(matrix, alpha=1e-9)))


def judge_ratings(strengths: Sequence[float], error: float, both_orders: bool = True) -> Any:
    """The centred Bradley-Terry ratings a fit of infinitely many all-pairs games by the scripted judge converges to."""
    np = _np()
    s = np.asarray(strengths, dtype=float)
    p = 1 / (1 + np.exp(-(s[:, None] - s[None, :])))
    if both_orders:
        wins = (1 - error) ** 2 * p + error**2 * (1 - p)
        ties = 2 * error * (1 - error)
    else:
        wins = (1 - error) * p + error * (1 - p)
        ties = 0.0
    matrix = 1e6 * (wins + ties / 2)
    np.fill_diagonal(matrix, 0)
    return fit_ratings(matrix, alpha=1e-9)


class ScriptedJudge:
    """The world's judge as a :class:`~lm_eval_pandalm.judge.Judge` over real pairs, for whole-pipeline tests.

    Responses are ``"<candidate index>/<instruction index>"`` texts (see :meth:`answers`); each order's verdict is
    flipped with ``error`` by a hash of the pair, so the same pair always gets the same verdict.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self.judge_id = f"scripted(error={world.error})"

    @property
    def fingerprint(self) -> str:
        """Identifies the world (strengths, seed, error)."""
        digest = hashlib.sha256(self.world.quality.tobytes()).hexdigest()[:16]
        return f"scripted/{self.world.error}/{self.world.seed}/{digest}"

    def answers(self, names: Sequence[str] | None = None) -> Any:
        """:class:`~.compare.Answers` whose responses this judge can score."""
        from .compare import Answers

        n, m = self.world.quality.shape
        return Answers(
            names=list(names or [f"c{i}" for i in range(n)]),
            instructions=[(f"instruction {k}", "") for k in range(m)],
            responses=[[f"{i}/{k}" for k in range(m)] for i in range(n)],
        )

    def __call__(self, items: Sequence[PairItem]) -> list[Verdict]:
        """One hard verdict per item."""
        out = []
        for item in items:
            (a, k), (b, _) = (tuple(int(x) for x in r.split("/")) for r in (item.response1, item.response2))
            truth = self.world.quality[a, k] > self.world.quality[b, k]
            flip = int(hashlib.sha256(f"{self.world.seed}|{item.key}".encode()).hexdigest()[:8], 16) / 2**32
            first_wins = bool(truth) ^ (flip < self.world.error)
            out.append(Verdict.hard(self.judge_id, Label.FIRST if first_wins else Label.SECOND))
        return out


def coverage_study(
    *,
    seeds: int = 200,
    strengths: Sequence[float] = (-1.4, -1.0, -0.6, -0.2, 0.2, 0.6, 1.0, 1.4),
    n_instructions: int = 170,
    error: float = 0.15,
    confidence: float = 0.9,
    rounds: int = 1000,
) -> dict[str, Any]:
    """Acceptance 2a: all-pairs tournaments of known strengths; order recovery and interval coverage over seeds."""
    np = _np()
    target = judge_ratings(strengths, error)
    truth = np.asarray(strengths) - np.mean(strengths)
    covered = covered_true = exact = best = 0
    taus = []
    from .ratings import kendall_tau

    started = time.perf_counter()
    for seed in range(seeds):
        world = World(strengths, n_instructions, error, seed)
        tournament = Tournament([f"c{i}" for i in range(len(strengths))], n_instructions)
        tournament.play(all_pairs(len(strengths), n_instructions), world.play)
        table = rate(
            tournament.counts, rounds=rounds, seed=seed, confidence=confidence, clusters=tournament.by_instruction
        )
        low, high = np.array(table.ci_low), np.array(table.ci_high)
        covered += int(((low <= target) & (target <= high)).sum())
        covered_true += int(((low <= truth) & (truth <= high)).sum())
        order = np.argsort(-np.array(table.ratings))
        exact += int((order == np.argsort(-truth)).all())
        best += int(order[0] == int(np.argmax(truth)))
        taus.append(kendall_tau(table.ratings, list(truth))[0])
    n_ratings = seeds * len(strengths)
    return {
        "study": "coverage (acceptance 2a)",
        "seeds": seeds,
        "candidates": len(strengths),
        "strengths": list(strengths),
        "instructions": n_instructions,
        "error": error,
        "confidence": confidence,
        "bootstrap_rounds": rounds,
        "coverage_of_judge_ratings": covered / n_ratings,
        "coverage_of_true_strengths": covered_true / n_ratings,
        "judge_ratings": [round(float(x), 4) for x in target],
        "exact_order_recovered": exact / seeds,
        "best_recovered": best / seeds,
        "mean_kendall_tau": float(np.mean(taus)),
        "seconds": round(time.perf_counter() - started, 1),
    }


def adaptive_study(
    *,
    seeds: int = 200,
    n: int = 80,
    n_instructions: int = 170,
    error: float = 0.15,
    confidence: float = 0.95,
    budget_share: float = 0.15,
    games_per_pair: int = 10,
    pairs_per_round: int = 8,
    all_pairs_too: bool = True,
) -> dict[str, Any]:
    """Acceptance 2b: adaptive tournaments of ``n`` candidates with strengths N(0, 1); best found, judgments used.

    With ``all_pairs_too``, each world is also played all-pairs (same answers, fresh judge errors): how often the
    full tournament finds the true best is the ceiling of what any schedule can reach on 170 instructions."""
    np = _np()
    found = separated = found_all = found_sample = 0
    shares = []
    stops: dict[str, int] = {}
    started = time.perf_counter()
    for seed in range(seeds):
        strengths = np.random.default_rng(10_000 + seed).normal(size=n)
        world = World(strengths, n_instructions, error, seed)
        tournament = Tournament([f"c{i}" for i in range(n)], n_instructions)
        result = run_adaptive(
            tournament,
            world.play,
            confidence=confidence,
            budget=int(budget_share * tournament.all_pairs_games),
            games_per_pair=games_per_pair,
            pairs_per_round=pairs_per_round,
            seed=seed,
        )
        found += int(result.top[0] == int(np.argmax(strengths)))
        found_sample += int(result.top[0] == sample_best(world))
        if all_pairs_too:
            full = Tournament([f"c{i}" for i in range(n)], n_instructions)
            full.play(all_pairs(n, n_instructions), World(strengths, n_instructions, error, seed).play)
            found_all += int(int(np.argmax(fit_ratings(full.counts))) == int(np.argmax(strengths)))
        separated += int(result.separated)
        shares.append(world.judgments / (2 * tournament.all_pairs_games))
        stops[result.stop] = stops.get(result.stop, 0) + 1
    return {
        "study": "adaptive (acceptance 2b)",
        "seeds": seeds,
        "candidates": n,
        "instructions": n_instructions,
        "error": error,
        "confidence": confidence,
        "budget_share": budget_share,
        "best_found": found / seeds,
        "best_found_all_pairs": found_all / seeds if all_pairs_too else None,
        "sample_best_found": found_sample / seeds,
        "separated": separated / seeds,
        "judgment_share_mean": float(np.mean(shares)),
        "judgment_share_max": float(np.max(shares)),
        "stops": stops,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lm_eval_pandalm.ranking.simulate {coverage,adaptive} [--seeds N]``: print the study's JSON."""
    parser = argparse.ArgumentParser(prog="python -m lm_eval_pandalm.ranking.simulate")
    parser.add_argument("study", choices=("coverage", "adaptive"))
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--error", type=float, default=0.15)
    parser.add_argument("--rounds", type=int, default=1000, help="coverage: bootstrap rounds")
    parser.add_argument("--budget-share", type=float, default=0.15, help="adaptive: budget, share of all pairs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from threadpoolctl import threadpool_limits

    # Many small linear-algebra calls: BLAS threads only contend with each other (and with other work).
    threadpool_limits(1)
    if args.study == "coverage":
        out = coverage_study(seeds=args.seeds, error=args.error, rounds=args.rounds)
    else:
        out = adaptive_study(seeds=args.seeds, error=args.error, budget_share=args.budget_share)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
