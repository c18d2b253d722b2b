"""Temperature scaling of the classifier judge and the expected calibration error that measures it.

Temperature scaling (Guo et al., 2017) divides the logits by one scalar ``T`` fitted to minimise the negative
log-likelihood on held-out data; it changes confidences, never the predicted class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["expected_calibration_error", "fit_temperature"]


def expected_calibration_error(probs: Sequence[Sequence[float]], labels: Sequence[int], bins: int = 10) -> float:
    """Top-label ECE: confidence vs accuracy in ``bins`` equal-width confidence bins, weighted by bin size.

    >>> expected_calibration_error([[0.9, 0.1], [0.6, 0.4]], [0, 1])
    0.35
    """
    if len(probs) != len(labels) or not probs:
        raise ValueError(f"need as many labels as rows of probabilities (got {len(labels)} and {len(probs)})")
    totals = [[0.0, 0.0, 0] for _ in range(bins)]  # confidence sum, correct sum, count
    for row, label in zip(probs, labels, strict=True):
        confidence = max(row)
        predicted = list(row).index(confidence)
        b = min(int(confidence * bins), bins - 1)
        totals[b][0] += confidence
        totals[b][1] += predicted == label
        totals[b][2] += 1
    n = len(labels)
    return round(sum(abs(conf - correct) for conf, correct, count in totals if count) / n, 12)


def fit_temperature(logits: Sequence[Sequence[float]], labels: Sequence[int]) -> float:
    """The temperature ``T > 0`` minimising the NLL of ``softmax(logits / T)`` on ``labels`` (LBFGS on ``log T``)."""
    import torch

    x = torch.tensor(logits, dtype=torch.float64)
    y = torch.tensor(labels, dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), y)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    value = float(log_t.detach().exp())
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"temperature fit diverged ({value})")
    return value
