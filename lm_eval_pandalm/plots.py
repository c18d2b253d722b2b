"""Plots of meta-evaluations: reliability diagrams and a cascade's accuracy-versus-spend curve (matplotlib, Agg).

Functions here take plain numbers, so they know nothing of judges; :mod:`lm_eval_pandalm.cli.cascade_options`
collects the numbers. matplotlib is imported only when a plot is drawn (``pip install lm_eval_pandalm[cascade]``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["reliability_bins", "reliability_panel", "save", "spend_panel"]

Panel = Callable[[Any], None]
"""Draws itself on a matplotlib ``Axes``."""


def reliability_bins(
    confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10
) -> list[tuple[float, float, int]]:
    """``(mean confidence, accuracy, count)`` per non-empty bin of equal width over [0, 1].

    >>> reliability_bins([0.95, 0.95, 0.25], [True, False, True], n_bins=2)
    [(0.25, 1.0, 1), (0.95, 0.5, 2)]
    """
    if len(confidence) != len(correct):
        raise ValueError(f"{len(confidence)} confidences but {len(correct)} outcomes")
    bins: list[list[tuple[float, bool]]] = [[] for _ in range(n_bins)]
    for value, ok in zip(confidence, correct, strict=True):
        index = min(n_bins - 1, max(0, int(value * n_bins)))
        bins[index].append((value, ok))
    out = []
    for members in bins:
        if members:
            mean = sum(v for v, _ in members) / len(members)
            out.append((round(mean, 10), sum(ok for _, ok in members) / len(members), len(members)))
    return out


def reliability_panel(
    confidence: Sequence[float], correct: Sequence[bool], *, title: str, xlabel: str = "confidence"
) -> Panel:
    """A reliability diagram: accuracy per confidence bin against the diagonal, bin sizes annotated."""
    bins = reliability_bins(confidence, correct)

    def draw(ax: Any) -> None:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        if bins:
            xs, ys, _ = zip(*bins, strict=True)
            ax.plot(xs, ys, marker="o")
            for x, y, n in bins:
                ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("agreement with humans")
        ax.set_title(title, fontsize=9)

    return draw


def spend_panel(
    points: Sequence[Mapping[str, float]], *, operating: tuple[float, float] | None = None, title: str
) -> Panel:
    """Accuracy against dollars over escalation fractions; ``operating`` marks the configured policy's run."""

    def draw(ax: Any) -> None:
        xs = [p["cost_usd"] for p in points]
        ys = [p["accuracy"] for p in points]
        ax.plot(xs, ys, marker=".")
        for p in points[:: max(1, len(points) // 5)]:
            label = f"{p['escalated_fraction']:.0%}"
            ax.annotate(label, (p["cost_usd"], p["accuracy"]), textcoords="offset points", xytext=(4, -10), fontsize=7)
        if operating is not None:
            ax.plot([operating[0]], [operating[1]], marker="*", markersize=12, color="red", label="this policy")
            ax.legend(fontsize=7)
        ax.set_xlabel("spend (USD, estimated where marked)")
        ax.set_ylabel("accuracy (orders averaged)")
        ax.set_title(title, fontsize=9)

    return draw


def save(path: str | Path, panels: Sequence[Panel], *, title: str, size: tuple[float, float] | None = None) -> None:
    """Draw ``panels`` side by side into a PNG at ``path``, through a temporary file renamed on success.

    ``size`` is the figure's (width, height) in inches; by default 4.5 x 4 per panel."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'lm_eval_pandalm[cascade]'") from None

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the path of a .png file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    figsize = size if size is not None else (4.5 * len(panels), 4)
    figure, axes = pyplot.subplots(1, len(panels), figsize=figsize, squeeze=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        for panel, ax in zip(panels, axes[0], strict=True):
            panel(ax)
        figure.suptitle(title)
        figure.tight_layout()
        with os.fdopen(fd, "wb") as handle:
            figure.savefig(handle, format="png", dpi=120)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        pyplot.close(figure)
