"""Bradley-Terry ratings from pairwise counts: fit, seeded bootstrap intervals, significance, rank agreement.

Everything here works on a :class:`Counts` table (wins and ties between every two candidates) and knows nothing of
judges. The fit is :func:`choix.ilsr_pairwise_dense`; a tie counts as half a win for each side (the Bradley-Terry
likelihood with a tie split evenly, as arena-hard-auto's "both win once" does up to a factor of two). Ratings are on
the logit scale, centred on mean 0: ``P(a beats b) = 1 / (1 + exp(rating_b - rating_a))``.

Intervals come from a stratified bootstrap: each pair's games are resampled with replacement (a multinomial over its
observed wins, losses and ties, with its own number of games), the model is refitted, and the percentile interval of
each centred rating is reported. :func:`wald_covariance` gives the cheap normal approximation the adaptive schedule
uses between rounds.

    >>> counts = Counts.empty(["a", "b", "c"])
    >>> counts.add(0, 1, wins_a=30, wins_b=10, ties=2); counts.add(1, 2, wins_a=25, wins_b=15, ties=0)
    >>> counts.add(0, 2, wins_a=35, wins_b=5, ties=0)
    >>> fit = fit_ratings(counts)
    >>> [round(float(x), 2) for x in fit]
    [0.97, -0.18, -0.79]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Counts",
    "RatingTable",
    "bootstrap_ratings",
    "cluster_matrices",
    "fit_ratings",
    "kendall_tau",
    "rate",
    "significance",
    "wald_covariance",
]

DEFAULT_ALPHA = 1e-3
"""choix's regularisation: keeps a candidate that won (or lost) every game at a finite rating."""


def _np() -> Any:
    import numpy

    return numpy


@dataclass
class Counts:
    """Wins and ties between every two candidates. ``wins[i][j]`` is how often ``i`` beat ``j``; ``ties`` is
    symmetric; ``failed`` counts judgments that gave no verdict (they are in no other cell)."""

    names: list[str]
    """Candidate names; indices into the matrices."""
    wins: Any
    """``numpy`` array ``(n, n)``."""
    ties: Any
    """``numpy`` array ``(n, n)``, symmetric."""
    failed: Any
    """``numpy`` array ``(n, n)``, symmetric."""

    @classmethod
    def empty(cls, names: Sequence[str]) -> Counts:
        """A table with no games."""
        np = _np()
        n = len(names)
        if len(set(names)) != n:
            raise ValueError(f"candidate names must be distinct, got {list(names)}")
        return cls(list(names), np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n)))

    def add(self, a: int, b: int, *, wins_a: float = 0, wins_b: float = 0, ties: float = 0, failed: float = 0) -> None:
        """Add games between ``a`` and ``b``."""
        if a == b:
            raise ValueError(f"a candidate cannot play itself ({self.names[a]})")
        self.wins[a, b] += wins_a
        self.wins[b, a] += wins_b
        self.ties[a, b] += ties
        self.ties[b, a] += ties
        self.failed[a, b] += failed
        self.failed[b, a] += failed

    @property
    def games(self) -> Any:
        """Games with a verdict between every two candidates (symmetric)."""
        return self.wins + self.wins.T + self.ties

    def comparison_matrix(self) -> Any:
        """``wins + ties / 2``: what the Bradley-Terry fit sees."""
        return self.wins + self.ties / 2

    def pairs(self) -> list[dict[str, Any]]:
        """``{a, b, wins_a, wins_b, ties, failed}`` per pair that played, ``a`` before ``b`` in candidate order."""
        out = []
        n = len(self.names)
        for i in range(n):
            for j in range(i + 1, n):
                if self.games[i, j] or self.failed[i, j]:
                    out.append(
                        {
                            "a": self.names[i],
                            "b": self.names[j],
                            "wins_a": int(self.wins[i, j]),
                            "wins_b": int(self.wins[j, i]),
                            "ties": int(self.ties[i, j]),
                            "failed": int(self.failed[i, j]),
                        }
                    )
        return out


def fit_ratings(counts: Counts, *, alpha: float = DEFAULT_ALPHA, initial: Any = None) -> Any:
    """Centred Bradley-Terry ratings (logit scale) of every candidate; ties count half a win each."""
    import choix

    np = _np()
    matrix = counts.comparison_matrix() if isinstance(counts, Counts) else counts
    params = choix.ilsr_pairwise_dense(np.asarray(matrix, dtype=float), alpha=alpha, initial_params=initial)
    return params - params.mean()


def cluster_matrices(n: int, games: Sequence[tuple[int, int, int, int]], n_clusters: int) -> Any:
    """``(n_clusters, n, n)`` comparison matrices (wins + ties / 2), one per cluster, from ``(a, b, cluster,
    outcome)`` games; outcome 0 = ``a`` wins, 1 = ``b`` wins, 2 = tie, anything else = no verdict (left out)."""
    np = _np()
    out = np.zeros((n_clusters, n, n))
    for a, b, cluster, outcome in games:
        if outcome == 0:
            out[cluster, a, b] += 1
        elif outcome == 1:
            out[cluster, b, a] += 1
        elif outcome == 2:
            out[cluster, a, b] += 0.5
            out[cluster, b, a] += 0.5
    return out


def bootstrap_ratings(
    counts: Counts, *, rounds: int = 1000, seed: int = 0, alpha: float = DEFAULT_ALPHA, clusters: Any = None
) -> Any:
    """``(rounds, n)`` centred ratings refitted on bootstrap resamples (seeded).

    With ``clusters`` (``(m, n, n)`` comparison matrices, one per instruction: :func:`cluster_matrices`), the
    instructions are resampled with replacement, every game of a drawn instruction together: one instruction's
    answers are shared by all of a candidate's games on it, so its games are not independent. Without, each pair's
    games are resampled on their own (stratified by pair).
    """
    np = _np()
    if rounds < 1:
        raise ValueError(f"bootstrap rounds must be at least 1, got {rounds}")
    rng = np.random.default_rng(seed)
    n = len(counts.names)
    if clusters is not None:
        clusters = np.asarray(clusters, dtype=float)
        m = clusters.shape[0]
        weights = rng.multinomial(m, np.full(m, 1 / m), size=rounds)
        start = fit_ratings(clusters.sum(axis=0), alpha=alpha)
        flat = clusters.reshape(m, n * n)
        out = np.empty((rounds, n))
        for r in range(rounds):
            out[r] = fit_ratings((weights[r] @ flat).reshape(n, n), alpha=alpha, initial=start)
        return out
    iu, ju = np.triu_indices(n, 1)
    games = counts.games[iu, ju]
    played = games > 0
    iu, ju, games = iu[played], ju[played], games[played].astype(np.int64)
    # Cells may hold halves only through callers' own arithmetic; the bootstrap resamples whole games.
    probs = np.stack([counts.wins[iu, ju], counts.wins[ju, iu], counts.ties[iu, ju]], axis=1) / games[:, None]
    draws = rng.multinomial(games, probs, size=(rounds, len(games)))  # (rounds, pairs, 3)
    out = np.empty((rounds, n))
    base = fit_ratings(counts, alpha=alpha)
    for r in range(rounds):
        matrix = np.zeros((n, n))
        matrix[iu, ju] = draws[r, :, 0] + draws[r, :, 2] / 2
        matrix[ju, iu] = draws[r, :, 1] + draws[r, :, 2] / 2
        out[r] = fit_ratings(matrix, alpha=alpha, initial=base)
    return out


def wald_covariance(counts: Counts, ratings: Any) -> Any:
    """Covariance of the centred ratings from the Bradley-Terry Fisher information.

    The information is a weighted graph Laplacian ``L``; for a connected graph its pseudo-inverse is
    ``inv(L + J/n) - J/n`` (``J`` all ones), one ``n x n`` solve. Cheap, for choosing the next comparisons; reported
    intervals come from :func:`bootstrap_ratings`.
    """
    np = _np()
    games = counts.games
    diff = ratings[:, None] - ratings[None, :]
    p = 1 / (1 + np.exp(-diff))
    weights = games * p * (1 - p)
    info = np.diag(weights.sum(axis=1)) - weights
    n = len(ratings)
    centre = np.full((n, n), 1 / n)
    return np.linalg.inv(info + centre) - centre


def significance(samples: Any, confidence: float) -> Any:
    """``better[i, j]``: True when ``i`` is rated above ``j`` in more than ``1 - (1 - confidence) / 2`` of the
    bootstrap rounds, i.e. when the ``confidence`` percentile interval of ``rating_i - rating_j`` lies above 0."""
    np = _np()
    above = (samples[:, :, None] > samples[:, None, :]).mean(axis=0)
    better = above > 1 - (1 - confidence) / 2
    np.fill_diagonal(better, False)
    return better


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Kendall's tau-b between two rating vectors of the same candidates, and its p-value (scipy)."""
    from scipy.stats import kendalltau

    if len(a) != len(b):
        raise ValueError(f"rankings of different lengths: {len(a)} and {len(b)}")
    result = kendalltau(list(a), list(b))
    return float(result.statistic), float(result.pvalue)


@dataclass(frozen=True)
class RatingTable:
    """Ratings of every candidate with intervals, the significantly-better relation and the best candidate."""

    names: list[str]
    """Candidates, in the order of :attr:`ratings`."""
    ratings: list[float]
    """Centred Bradley-Terry rating (logit scale)."""
    ci_low: list[float]
    """Lower end of each rating's bootstrap percentile interval."""
    ci_high: list[float]
    """Upper end."""
    confidence: float
    """Coverage of the intervals (0.9: 5th to 95th percentile)."""
    rounds: int
    """Bootstrap rounds."""
    seed: int
    """Bootstrap seed."""
    better: list[tuple[str, str]] = field(default_factory=list)
    """``(a, b)``: ``a`` is significantly better than ``b`` (the ``confidence`` interval of the difference is above
    0)."""

    @property
    def order(self) -> list[int]:
        """Indices of the candidates, best rated first."""
        return sorted(range(len(self.names)), key=lambda i: -self.ratings[i])

    @property
    def best(self) -> str:
        """The candidate with the highest rating."""
        return self.names[self.order[0]]

    @property
    def best_separated(self) -> bool:
        """Whether the best candidate is significantly better than every other."""
        best = self.best
        beaten = {b for a, b in self.better if a == best}
        return len(beaten) == len(self.names) - 1

    def hasse_edges(self) -> list[tuple[str, str]]:
        """The significantly-better relation without the edges implied by transitivity (the partial-order graph)."""
        relation = set(self.better)
        names = self.names
        return [
            (a, b)
            for a, b in self.better
            if not any((a, c) in relation and (c, b) in relation for c in names if c not in (a, b))
        ]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per candidate, best first: ``name, rank, rating, ci_low, ci_high``."""
        return [
            {
                "name": self.names[i],
                "rank": rank,
                "rating": round(self.ratings[i], 6),
                "ci_low": round(self.ci_low[i], 6),
                "ci_high": round(self.ci_high[i], 6),
            }
            for rank, i in enumerate(self.order, start=1)
        ]


def rate(
    counts: Counts, *, rounds: int = 1000, seed: int = 0, confidence: float = 0.9, clusters: Any = None
) -> RatingTable:
    """Fit, bootstrap and test: the :class:`RatingTable` of ``counts``.

    Args:
        counts: The games.
        rounds: Bootstrap rounds (at least 1; 1000 by default).
        seed: Bootstrap seed: the same counts and seed give the same intervals.
        confidence: Interval coverage, also of the differences that decide "significantly better" (``0.9``: 5-95%).
        clusters: Per-instruction comparison matrices: resample instructions rather than games (see
            :func:`bootstrap_ratings`).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if len(counts.names) < 2:
        raise ValueError(f"need at least two candidates to rank, got {counts.names}")
    np = _np()
    ratings = fit_ratings(counts)
    samples = bootstrap_ratings(counts, rounds=rounds, seed=seed, clusters=clusters)
    tail = (1 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1 - tail], axis=0)
    better = significance(samples, confidence)
    names = counts.names
    pairs = [(names[i], names[j]) for i in range(len(names)) for j in range(len(names)) if better[i, j]]
    if not all(math.isfinite(x) for x in ratings):
        raise ValueError("the Bradley-Terry fit did not converge to finite ratings")
    return RatingTable(
        names=list(names),
        ratings=[float(x) for x in ratings],
        ci_low=[float(x) for x in low],
        ci_high=[float(x) for x in high],
        confidence=confidence,
        rounds=rounds,
        seed=seed,
        better=pairs,
    )
