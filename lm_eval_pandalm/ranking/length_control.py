"""Length-controlled win rate: the win rate a judge would give if both answers were equally long.

AlpacaEval 2's idea, reduced to one candidate against one baseline: regress the judge's preference on the length
difference with a logistic GLM,

    logit P(candidate preferred) = b0 + b1 * tanh(length difference / sd of the length differences),

fitted to the judge's probabilities (``p_candidate + p_tie / 2`` per game: soft targets, so a judge's uncertainty
counts as such), and report ``sigmoid(b0)``: the predicted win rate at zero length difference. A judge that prefers
longer answers inflates the raw win rate of a verbose candidate; the length term absorbs that part.

The standard error is the delta method on a sandwich (robust) covariance of ``(b0, b1)``: soft targets are not
Bernoulli draws, so the model-based information alone would misstate it. scipy does the fit.

    >>> probs = [0.9, 0.8, 0.3, 0.2, 0.6, 0.4]
    >>> diffs = [120, 80, -90, -150, 10, -5]
    >>> lc = length_controlled_win_rate(probs, diffs)
    >>> round(lc.win_rate, 3), round(lc.lc_win_rate, 3), lc.n
    (0.533, 0.546, 6)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["LengthControlled", "length_controlled_win_rate", "length_study"]


@dataclass(frozen=True)
class LengthControlled:
    """A length-controlled win rate and what it came from."""

    lc_win_rate: float
    """Predicted win rate at zero length difference: ``sigmoid(b0)``."""
    lc_stderr: float
    """Delta-method standard error of :attr:`lc_win_rate` (sandwich covariance)."""
    win_rate: float
    """The raw win rate: mean of the targets."""
    length_coef: float
    """``b1``: how much the judge's log-odds move with ``tanh(length difference / scale)``."""
    scale: float
    """The length-difference scale (their standard deviation; 1 when they do not vary)."""
    n: int
    """Games used (failed judgments left out)."""


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def length_controlled_win_rate(
    targets: Sequence[float], length_diffs: Sequence[float], *, ridge: float = 1e-4
) -> LengthControlled:
    """Fit the GLM of the module docstring.

    Args:
        targets: Per game, the judge's probability that the candidate is better plus half its tie probability.
        length_diffs: Per game, the candidate's answer length minus the baseline's (any unit: characters, tokens).
        ridge: A tiny L2 penalty on ``b1`` that keeps the fit finite when the length difference separates the data.

    Raises:
        ValueError: Different lengths, no games, or a target outside [0, 1].
    """
    import numpy as np
    from scipy.optimize import minimize

    y = np.asarray(targets, dtype=float)
    d = np.asarray(length_diffs, dtype=float)
    if y.shape != d.shape:
        raise ValueError(f"{len(y)} targets but {len(d)} length differences")
    if not len(y):
        raise ValueError("no games to fit a length-controlled win rate on")
    if ((y < 0) | (y > 1)).any() or not np.isfinite(d).all():
        raise ValueError("targets must lie in [0, 1] and length differences must be finite")
    scale = float(d.std()) or 1.0
    x = np.stack([np.ones_like(d), np.tanh(d / scale)], axis=1)
    penalty = np.array([0.0, ridge])

    def loss(beta):  # type: ignore[no-untyped-def]
        z = x @ beta
        return float(np.sum(np.logaddexp(0, z) - y * z) + np.sum(penalty * beta**2))

    def grad(beta):  # type: ignore[no-untyped-def]
        p = 1 / (1 + np.exp(-(x @ beta)))
        return x.T @ (p - y) + 2 * penalty * beta

    clipped = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    start = np.array([math.log(clipped / (1 - clipped)), 0.0])
    beta = minimize(loss, start, jac=grad, method="BFGS").x
    p = 1 / (1 + np.exp(-(x @ beta)))
    hessian = (x * (p * (1 - p))[:, None]).T @ x + 2 * np.diag(penalty)
    scores = x * (p - y)[:, None]
    bread = np.linalg.pinv(hessian)
    cov = bread @ (scores.T @ scores) @ bread
    lc = _sigmoid(float(beta[0]))
    return LengthControlled(
        lc_win_rate=lc,
        lc_stderr=float(lc * (1 - lc) * math.sqrt(max(cov[0, 0], 0.0))),
        win_rate=float(y.mean()),
        length_coef=float(beta[1]),
        scale=scale,
        n=len(y),
    )


def length_study(*, seeds: int = 50, n_instructions: int = 170, length_bias: float = 1.5) -> dict[str, object]:
    """Acceptance 3: candidates of known quality and verbosity against one baseline, judged by a judge that prefers
    longer answers; raw and length-controlled win rates against the true (length-free) win rate.

    A candidate of quality ``q`` writing answers of typical length ``L`` (log-normal spread per instruction) is
    preferred to the baseline (quality 0, typical length 200) with probability
    ``sigmoid(q + length_bias * tanh((len - len_baseline) / 200))``; its true win rate is ``sigmoid(q)``.
    """
    import numpy as np

    candidates = {"terse-strong": (0.6, 100), "plain": (0.3, 200), "verbose-weak": (0.0, 450)}
    rows: dict[str, dict[str, list[float]]] = {name: {"raw": [], "lc": []} for name in candidates}
    covered = {name: 0 for name in candidates}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        base_len = 200 * rng.lognormal(0, 0.5, size=n_instructions)
        for name, (quality, length) in candidates.items():
            own = length * rng.lognormal(0, 0.5, size=n_instructions)
            diff = own - base_len
            prob = 1 / (1 + np.exp(-(quality + length_bias * np.tanh(diff / 200))))
            verdict = rng.random(n_instructions) < prob  # a hard verdict per game
            result = length_controlled_win_rate(verdict.astype(float).tolist(), diff.tolist())
            rows[name]["raw"].append(result.win_rate)
            rows[name]["lc"].append(result.lc_win_rate)
            true = _sigmoid(quality)
            covered[name] += abs(result.lc_win_rate - true) <= 1.96 * result.lc_stderr
    out: dict[str, object] = {"study": "length control (acceptance 3)", "seeds": seeds, "length_bias": length_bias}
    for name, (quality, length) in candidates.items():
        out[name] = {
            "quality": quality,
            "typical_length": length,
            "true_win_rate": round(_sigmoid(quality), 4),
            "raw_win_rate": round(float(np.mean(rows[name]["raw"])), 4),
            "lc_win_rate": round(float(np.mean(rows[name]["lc"])), 4),
            "lc_95_interval_coverage": covered[name] / seeds,
        }
    return out
