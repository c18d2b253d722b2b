"""A comparison's outputs: one JSON-ready dict, a Markdown table, and PNG plots (ratings with intervals, win rates).

matplotlib is imported only when a plot is drawn (``pip install lm_eval_pandalm[rank]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .compare import CompareResult

__all__ = ["plot_heatmap", "plot_ratings", "to_json", "to_markdown"]


def _ratings(result: CompareResult) -> list[dict[str, Any]]:
    counts = result.counts
    index = {name: i for i, name in enumerate(result.names)}
    rows = []
    for row in result.table.rows():
        i = index[row["name"]]
        wins, games = float(counts.wins[i].sum()), float(counts.games[i].sum())
        ties = float(counts.ties[i].sum())
        row.update(
            {
                "games": int(games),
                "wins": int(wins),
                "ties": int(ties),
                "losses": int(games - wins - ties),
                "win_rate": round((wins + ties / 2) / games, 6) if games else None,
            }
        )
        rows.append(row)
    return rows


def to_json(result: CompareResult) -> dict[str, Any]:
    """Every figure of a comparison as one JSON-ready dict (``pairs``, ``ratings``, ``best``, ``partial_order``...)."""
    table = result.table
    out: dict[str, Any] = {
        "judge": result.judge,
        "protocol": result.protocol,
        "schedule": result.schedule,
        "candidates": list(result.names),
        "pairs": result.counts.pairs(),
        "ratings": _ratings(result),
        "best": table.best,
        "best_separated": table.best_separated,
        "partial_order": [list(edge) for edge in table.hasse_edges()],
        "significantly_better": [list(edge) for edge in table.better],
        "confidence": table.confidence,
        "bootstrap_rounds": table.rounds,
        "seed": table.seed,
        "games": len(result.games),
        "judgments": result.judgments,
        "failed": int(result.counts.failed.sum() / 2),
    }
    costs = [g.cost_usd for g in result.games if g.cost_usd is not None]
    out["spend_usd"] = round(sum(costs), 6) if costs else None
    if result.all_pairs_judgments is not None:
        out["all_pairs_judgments"] = result.all_pairs_judgments
    if result.adaptive is not None:
        a = result.adaptive
        out["adaptive"] = {"stop": a.stop, "separated": a.separated, "rounds": a.rounds, "min_z": round(a.min_z, 4)}
    if result.reference is not None:
        out["reference"] = result.reference
    out.update(result.extra)
    return out


def to_markdown(result: CompareResult) -> str:
    """A Markdown report: the ratings table, the pair counts, the partial order."""
    summary = to_json(result)
    pct = f"{summary['confidence']:.0%}"
    lines = [
        f"### Ratings ({result.judge}, {result.protocol}, {summary['games']} games, {summary['judgments']} judgments)",
        "",
        f"| rank | candidate | rating | {pct} interval | wins | ties | losses | win rate |",
        "|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in summary["ratings"]:
        rate = "" if r["win_rate"] is None else f"{r['win_rate']:.3f}"
        lines.append(
            f"| {r['rank']} | {r['name']} | {r['rating']:+.3f} | [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] | "
            f"{r['wins']} | {r['ties']} | {r['losses']} | {rate} |"
        )
    lines += ["", "| a | b | wins a | wins b | ties | failed |", "|---|---|---:|---:|---:|---:|"]
    for p in summary["pairs"]:
        lines.append(f"| {p['a']} | {p['b']} | {p['wins_a']} | {p['wins_b']} | {p['ties']} | {p['failed']} |")
    edges = ", ".join(f"{a} > {b}" for a, b in summary["partial_order"]) or "none"
    separated = "separated from every other" if summary["best_separated"] else "not separated from every other"
    lines += ["", f"Best: **{summary['best']}** ({separated} at {pct}).", f"Significantly better ({pct}): {edges}."]
    lc_rows = result.extra.get("length_controlled")
    if lc_rows:
        lines += [
            "",
            "| candidate | baseline | games | win rate | length-controlled win rate (stderr) | length coef |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in lc_rows:
            lines.append(
                f"| {r['name']} | {r['baseline']} | {r['games']} | {r['win_rate']:.3f} | "
                f"{r['lc_win_rate']:.3f} ({r['lc_stderr']:.3f}) | {r['length_coef']:+.3f} |"
            )
    if result.reference is not None:
        ref = result.reference
        tau, p_value = ref["kendall_tau"], ref["kendall_p_value"]
        lines.append(f"Kendall tau against {ref['judge']}: {tau:.3f} (p = {p_value:.3g}).")
    return "\n".join(lines) + "\n"


def plot_ratings(result: CompareResult, path: str | Path) -> None:
    """Ratings with their bootstrap intervals, best at the top."""
    from ..plots import save

    rows = _ratings(result)[::-1]

    def draw(ax: Any) -> None:
        ys = range(len(rows))
        xs = [r["rating"] for r in rows]
        low = [r["rating"] - r["ci_low"] for r in rows]
        high = [r["ci_high"] - r["rating"] for r in rows]
        ax.errorbar(xs, ys, xerr=[low, high], fmt="o", capsize=3)
        ax.axvline(0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_yticks(list(ys))
        ax.set_yticklabels([r["name"] for r in rows], fontsize=7 if len(rows) > 20 else 9)
        ax.set_xlabel(f"Bradley-Terry rating (logit), {result.table.confidence:.0%} bootstrap interval")

    save(path, [draw], title=f"{result.judge} ({result.protocol})", size=(7, max(3, 0.3 * len(rows) + 1.5)))


def plot_heatmap(result: CompareResult, path: str | Path) -> None:
    """Win rate (ties half) of each row candidate against each column candidate, best first."""
    from ..plots import save

    order = result.table.order
    names = [result.names[i] for i in order]
    counts = result.counts
    games = counts.games

    def draw(ax: Any) -> None:
        import numpy as np

        share = np.full((len(order), len(order)), np.nan)
        for r, i in enumerate(order):
            for c, j in enumerate(order):
                if games[i, j]:
                    share[r, c] = (counts.wins[i, j] + counts.ties[i, j] / 2) / games[i, j]
        image = ax.imshow(share, cmap="RdBu", vmin=0, vmax=1)
        ax.figure.colorbar(image, ax=ax, label="win rate of row against column (ties half)")
        ax.set_xticks(range(len(names)))
        ax.set_yticks(range(len(names)))
        small = len(names) > 12
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=6 if small else 8)
        ax.set_yticklabels(names, fontsize=6 if small else 8)
        if not small:
            for r in range(len(names)):
                for c in range(len(names)):
                    if not np.isnan(share[r, c]):
                        ax.text(c, r, f"{share[r, c]:.2f}", ha="center", va="center", fontsize=7)

    side = max(5, 0.35 * len(names) + 3)
    save(path, [draw], title=f"win rates, {result.judge}", size=(side + 1, side))
