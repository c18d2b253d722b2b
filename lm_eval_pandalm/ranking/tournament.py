"""Which games to play: all pairs, every candidate against one baseline, or adaptively until the best is separated.

A *game* is one instruction answered by two candidates ``a`` and ``b``, judged (in both orders, when the protocol
says so) into one outcome in the frame of ``a``: ``A_WINS``, ``B_WINS``, ``TIE`` or ``FAILED`` (a failed judgment,
counted on its own, never as a tie or a loss). The schedules here only decide which ``(a, b, instruction)`` triples
to hand to a ``play`` callback and record what it returns in a :class:`~.ratings.Counts` table, so the same code
runs a real tournament (``play`` judges pairs through the judge and its cache, see :mod:`.compare`) and a simulation
of thousands (``play`` is a vectorised scripted judge, see :mod:`.simulate`).

The adaptive schedule (:func:`run_adaptive`) warms up on a random cycle of pairs (so every candidate is connected
to every other), then repeats: fit Bradley-Terry, take the top ``k``, and compute for every (top, other) pair the
Wald z of their rating difference from the Fisher information (:func:`~.ratings.wald_covariance`). It stops when
every such z exceeds the Bonferroni-corrected one-sided critical value of ``confidence`` (the top ``k`` are
separated), when the budget is spent, or when no unplayed game could help; otherwise it plays more games on the
least separated pairs (on a common opponent once a pair has played every instruction).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .ratings import Counts, fit_ratings, wald_covariance

__all__ = [
    "A_WINS",
    "B_WINS",
    "FAILED",
    "TIE",
    "AdaptiveResult",
    "Play",
    "Tournament",
    "against_baseline",
    "all_pairs",
    "run_adaptive",
]

logger = logging.getLogger(__name__)

A_WINS, B_WINS, TIE, FAILED = 0, 1, 2, -1
"""Outcome codes of a game, in the frame of its first candidate ``a``."""

Play = Callable[[Any], Sequence[int]]
"""Judges games: an ``(k, 3)`` integer array of ``(a, b, instruction)`` rows in, one outcome code per row out."""


def _np() -> Any:
    import numpy

    return numpy


@dataclass
class Tournament:
    """Games played so far between ``names`` on ``n_instructions`` instructions."""

    names: list[str]
    """Candidates."""
    n_instructions: int
    """Instructions every candidate answered; a pair plays each at most once."""
    counts: Counts = field(init=False)
    """Outcomes so far."""
    played: Any = field(init=False)
    """``played[a, b, k]`` (symmetric in ``a, b``): the pair has played instruction ``k``."""
    games_played: int = field(init=False, default=0)
    """Games handed to ``play`` (failed ones included)."""
    by_instruction: Any = field(init=False)
    """``(n_instructions, n, n)`` comparison matrices (wins + ties / 2) per instruction, for the bootstrap that
    resamples instructions (:func:`~.ratings.bootstrap_ratings`)."""

    def __post_init__(self) -> None:
        np = _np()
        if len(self.names) < 2:
            raise ValueError(f"a tournament needs at least two candidates, got {self.names}")
        if self.n_instructions < 1:
            raise ValueError("a tournament needs at least one instruction")
        self.counts = Counts.empty(self.names)
        n = len(self.names)
        self.played = np.zeros((n, n, self.n_instructions), dtype=bool)
        self.by_instruction = np.zeros((self.n_instructions, n, n))

    @property
    def all_pairs_games(self) -> int:
        """Games an all-pairs tournament plays."""
        n = len(self.names)
        return n * (n - 1) // 2 * self.n_instructions

    def play(self, games: Any, play: Play) -> None:
        """Play ``games`` (``(k, 3)`` rows of ``a, b, instruction``) through ``play`` and record the outcomes."""
        np = _np()
        games = np.asarray(games, dtype=np.int64).reshape(-1, 3)
        if not len(games):
            return
        a, b, k = games[:, 0], games[:, 1], games[:, 2]
        if (a == b).any():
            raise ValueError("a game needs two different candidates")
        if self.played[a, b, k].any():
            raise ValueError("a game was scheduled twice")
        codes = np.asarray(list(play(games)), dtype=np.int64)
        if codes.shape != (len(games),):
            raise RuntimeError(f"play returned {codes.shape[0] if codes.ndim else 0} outcomes for {len(games)} games")
        self.played[a, b, k] = True
        self.played[b, a, k] = True
        self.games_played += len(games)
        c = self.counts
        for code, target in ((A_WINS, (a, b)), (B_WINS, (b, a))):
            sel = codes == code
            np.add.at(c.wins, (target[0][sel], target[1][sel]), 1)
        for code, matrix in ((TIE, c.ties), (FAILED, c.failed)):
            sel = codes == code
            np.add.at(matrix, (a[sel], b[sel]), 1)
            np.add.at(matrix, (b[sel], a[sel]), 1)
        for code, first, second, value in (
            (A_WINS, a, b, 1.0),
            (B_WINS, b, a, 1.0),
            (TIE, a, b, 0.5),
            (TIE, b, a, 0.5),
        ):
            sel = codes == code
            np.add.at(self.by_instruction, (k[sel], first[sel], second[sel]), value)

    def unplayed(self, a: int, b: int) -> Any:
        """Instructions the pair has not played yet."""
        return _np().flatnonzero(~self.played[a, b])


def all_pairs(n: int, n_instructions: int) -> Any:
    """Every pair of ``n`` candidates on every instruction: ``(a, b, instruction)`` rows with ``a < b``."""
    np = _np()
    iu, ju = np.triu_indices(n, 1)
    k = np.arange(n_instructions)
    return np.stack([np.repeat(iu, n_instructions), np.repeat(ju, n_instructions), np.tile(k, len(iu))], axis=1).astype(
        np.int64
    )


def against_baseline(n: int, n_instructions: int, baseline: int) -> Any:
    """Every candidate against ``baseline`` on every instruction (the baseline is ``b``)."""
    np = _np()
    others = [i for i in range(n) if i != baseline]
    k = np.arange(n_instructions)
    a = np.repeat(others, n_instructions)
    return np.stack([a, np.full_like(a, baseline), np.tile(k, len(others))], axis=1).astype(np.int64)


@dataclass(frozen=True)
class AdaptiveResult:
    """How an adaptive tournament ended."""

    top: list[int]
    """Indices of the top ``k`` at the end, best first."""
    separated: bool
    """Whether the top ``k`` were separated from every other candidate at the stated confidence."""
    games: int
    """Games played."""
    rounds: int
    """Rounds of fitting and scheduling after the warm-up."""
    stop: str
    """``separated``, ``budget`` or ``exhausted`` (no unplayed game could help)."""
    min_z: float
    """Smallest Wald z between a top-k and another candidate at the end."""


def _nearest(ratings: Any, a: int, b: int, tournament: Tournament) -> int | None:
    """The candidate rated closest to the middle of ``a`` and ``b`` (neither of them) that can still play an
    unplayed game with both; ``None`` when there is none."""
    np = _np()
    target = (ratings[a] + ratings[b]) / 2
    for c in np.argsort(np.abs(ratings - target), kind="stable"):
        c = int(c)
        if c in (a, b):
            continue
        if tournament.played[a, c].all() or tournament.played[b, c].all():
            continue
        return c
    return None


def _pick(rng: Any, pool: Any, size: int) -> Any:
    return rng.choice(pool, size=min(size, len(pool)), replace=False)


def run_adaptive(
    tournament: Tournament,
    play: Play,
    *,
    confidence: float = 0.95,
    top_k: int = 1,
    games_per_pair: int = 10,
    pairs_per_round: int = 8,
    warmup_games: int = 5,
    close_gap: float = 0.3,
    budget: int | None = None,
    seed: int = 0,
) -> AdaptiveResult:
    """Play adaptively until the top ``top_k`` are separated at ``confidence`` (see the module docstring).

    Args:
        tournament: Where games are recorded (may already hold games).
        play: Judges games.
        confidence: One-sided confidence of every (top, other) separation, Bonferroni-corrected over the pairs.
        top_k: How many leaders must be separated from the rest.
        games_per_pair: Games each chosen pair plays per round.
        pairs_per_round: Least separated pairs played per round.
        warmup_games: Games per pair of the warm-up cycle and matching.
        close_gap: A least separated pair whose ratings differ by more than this plays itself only until it has
            met ``games_per_pair`` times; then its weaker member plays the candidate rated nearest to it instead.
        budget: Most games to play in all (``None``: no limit but the all-pairs tournament itself).
        seed: Seeds the warm-up pairing and the choice of instructions.
    """
    from scipy.stats import norm

    np = _np()
    n = len(tournament.names)
    if not 1 <= top_k < n:
        raise ValueError(f"top_k must be between 1 and {n - 1} (the number of candidates - 1), got {top_k}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    limit = tournament.all_pairs_games if budget is None else min(budget, tournament.all_pairs_games)
    rng = np.random.default_rng(seed)

    def games_for(a: int, b: int, size: int) -> list[list[int]]:
        return [[a, b, int(k)] for k in _pick(rng, tournament.unplayed(a, b), size)]

    # Warm-up: a random cycle through every candidate (connected), plus a random matching.
    order = rng.permutation(n)
    warm = [(int(order[i]), int(order[(i + 1) % n])) for i in range(n if n > 2 else 1)]
    matching = rng.permutation(n)
    warm += [(int(matching[i]), int(matching[i + 1])) for i in range(0, n - 1, 2)]
    warm_games = [g for a, b in dict.fromkeys(tuple(sorted(p)) for p in warm) for g in games_for(a, b, warmup_games)]
    tournament.play(np.array(warm_games[: max(0, limit - tournament.games_played)]), play)

    z_crit = float(norm.ppf(1 - (1 - confidence) / (top_k * (n - top_k))))
    ratings = None
    rounds = 0
    while True:
        ratings = fit_ratings(tournament.counts, initial=ratings)
        cov = wald_covariance(tournament.counts, ratings)
        ranked = np.argsort(-ratings, kind="stable")
        top, rest = ranked[:top_k], ranked[top_k:]
        var = np.diag(cov)[top][:, None] + np.diag(cov)[rest][None, :] - 2 * cov[np.ix_(top, rest)]
        z = (ratings[top][:, None] - ratings[rest][None, :]) / np.sqrt(np.maximum(var, 1e-12))
        min_z = float(z.min())
        if min_z >= z_crit:
            stop = "separated"
            break
        room = limit - tournament.games_played
        if room <= 0:
            stop = "budget"
            break
        batch = []
        seen: set[tuple[int, int, int]] = set()
        flat = np.argsort(z, axis=None, kind="stable")[:pairs_per_round]
        for index in flat:
            i, j = (int(x) for x in np.unravel_index(index, z.shape))
            a, b = int(top[i]), int(rest[j])
            close = abs(ratings[a] - ratings[b]) <= close_gap
            direct = close or tournament.counts.games[a, b] < games_per_pair
            found = games_for(a, b, games_per_pair) if direct else []
            if not found and close:
                # The pair has met on every instruction: compare both with a common opponent near them instead.
                c = _nearest(ratings, a, b, tournament)
                if c is not None:
                    found = games_for(a, c, games_per_pair // 2 or 1) + games_for(b, c, games_per_pair // 2 or 1)
            for member in (b, a):
                if found:
                    break
                # Far apart in rating but not separated (or out of common opponents): pin the member down against
                # its nearest rival (a mismatch tells little, and a judge's error floor biases lopsided games).
                rival = _nearest(ratings, member, member, tournament)
                if rival is not None:
                    found = games_for(member, rival, games_per_pair)
            for g in found:
                key = (min(g[0], g[1]), max(g[0], g[1]), g[2])
                if key not in seen:
                    seen.add(key)
                    batch.append(g)
        if not batch:
            stop = "exhausted"
            break
        tournament.play(np.array(batch[:room]), play)
        rounds += 1
    logger.info(
        "adaptive tournament: stopped (%s) after %d games in %d rounds, min z %.2f (critical %.2f)",
        stop,
        tournament.games_played,
        rounds,
        min_z,
        z_crit,
    )
    return AdaptiveResult(
        top=[int(i) for i in ranked[:top_k]],
        separated=stop == "separated",
        games=tournament.games_played,
        rounds=rounds,
        stop=stop,
        min_z=min_z,
    )
